//! The rendezvous point on a libp2p swarm: TCP and QUIC, identify and ping
//! beside the rendezvous protocol, connection limits, a sweep timer, and
//! `/metrics`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::metrics::{Metrics, Recorder, Registry};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder, autonat, connection_limits, identify, noise, ping,
    relay, tcp, yamux,
};
use metrics_exporter_prometheus::PrometheusHandle;
use multidriver_transports::ports::ensure_port_free;

use crate::Error;
use crate::config::Config;
use crate::http;
use crate::ip_limit::PerIpLimit;
use crate::protocol::{self, Codec, PROTOCOL, ResponseStatus};
use crate::relay::{RelayStats, relay_config};
use crate::service::{Outcome, Service};
use crate::store::Store;

/// How long a request may take before the stream is dropped: 10 s,
/// libp2p-request-response's default.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for answers already given to reach their
/// clients (our choice: a loopback or LAN client takes them in
/// milliseconds).
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// Room in a request beside its signed record: the namespace (255 bytes)
/// and the protobuf framing, rounded up.
const REQUEST_OVERHEAD: usize = 4096;

/// The identify protocol version we announce.
const IDENTIFY_PROTOCOL: &str = "/multidriver/rendezvous/1.0.0";

/// The point's protocols, side by side on each connection.
#[derive(NetworkBehaviour)]
struct Behaviour {
    /// First: a connection refused by address takes no other slot.
    per_ip: PerIpLimit,
    limits: connection_limits::Behaviour,
    rendezvous: request_response::Behaviour<Codec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    relay: Toggle<relay::Behaviour>,
    /// AutoNAT v2's server beside the relay: peers learn whether they are
    /// reachable directly (and so whether they need a reservation here).
    autonat: Toggle<autonat::v2::server::Behaviour>,
}

/// What the point reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// Listening on this address (with `/p2p/<id>` appended).
    Listening(Multiaddr),
    /// No longer listening on this address.
    Expired(Multiaddr),
    /// Announcing this address to clients.
    Announcing(Multiaddr),
    /// `/metrics` is served here.
    Metrics(SocketAddr),
    /// Expired registrations were swept.
    Swept {
        /// How many.
        expired: u64,
        /// How many are left.
        left: u64,
    },
    /// Shutting down on request.
    Stopping,
}

/// A running rendezvous point.
pub struct Server {
    swarm: Swarm<Behaviour>,
    service: Service,
    libp2p_metrics: Metrics,
    registry: Arc<Registry>,
    prometheus: Option<PrometheusHandle>,
    config: Config,
    listeners: Vec<libp2p::core::transport::ListenerId>,
    /// The `/metrics` socket, bound before the store opened.
    metrics_listener: Option<std::net::TcpListener>,
    /// Answers handed to the swarm and not yet taken by their clients.
    in_flight: HashMap<request_response::InboundRequestId, usize>,
    in_flight_bytes: usize,
    /// Expired registrations already counted in the metric.
    expired_counted: u64,
    /// The relay's reservations and circuits, when it runs.
    relay_stats: RelayStats,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("peer_id", self.swarm.local_peer_id())
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// Seconds since the Unix epoch; the store's clock.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Server {
    /// Opens the store, builds the swarm and starts listening. `prometheus`
    /// is the handle of the process's installed metrics recorder (see
    /// [`crate::install_recorder`]); without one `/metrics` shows libp2p's
    /// metrics only.
    pub fn new(
        config: Config,
        keypair: Keypair,
        prometheus: Option<PrometheusHandle>,
    ) -> Result<Server, Error> {
        config.validate()?;
        // Ports first, the database after: a point that cannot listen must
        // not have created (or locked) a database. A taken listen port would
        // otherwise be shared through libp2p-tcp's SO_REUSEPORT, and clients
        // split between two points.
        for addr in &config.listen {
            ensure_port_free(addr).map_err(|e| Error::Listen {
                addr: addr.clone(),
                message: e.to_string(),
            })?;
        }
        let metrics_listener = match config.metrics {
            Some(addr) => Some(
                std::net::TcpListener::bind(addr)
                    .and_then(|l| l.set_nonblocking(true).map(|()| l))
                    .map_err(|e| Error::MetricsListen { addr, source: e })?,
            ),
            None => None,
        };
        let store = Store::open(&config.db, config.durability)?;
        let service = Service::new(config.limits.clone(), store)?;
        let mut registry = Registry::default();
        let stack = |part: &'static str| {
            move |e: &dyn std::fmt::Display| Error::Stack {
                part,
                message: e.to_string(),
            }
        };
        let limits = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(config.max_connections))
            .with_max_established_per_peer(Some(config.max_connections_per_peer))
            .with_max_pending_incoming(Some(config.max_connections));
        let idle = Duration::from_secs(config.idle_connection_timeout_secs);
        let mut swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| stack("tcp + noise + yamux")(&e))?
            .with_quic()
            .with_bandwidth_metrics(&mut registry)
            .with_behaviour(|key| Behaviour {
                per_ip: PerIpLimit::new(config.max_connections_per_ip.min(config.max_connections)),
                limits: connection_limits::Behaviour::new(limits),
                rendezvous: request_response::Behaviour::with_codec(
                    Codec::with_max_request(config.limits.max_record_bytes + REQUEST_OVERHEAD),
                    [(PROTOCOL, ProtocolSupport::Inbound)],
                    request_response::Config::default()
                        .with_request_timeout(REQUEST_TIMEOUT)
                        .with_max_concurrent_streams(config.max_streams_per_connection),
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_PROTOCOL.into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                relay: config
                    .relay
                    .enabled
                    .then(|| {
                        relay::Behaviour::new(key.public().to_peer_id(), relay_config(&config))
                    })
                    .into(),
                autonat: config
                    .relay
                    .enabled
                    .then(autonat::v2::server::Behaviour::default)
                    .into(),
            })
            .map_err(|e| stack("behaviour")(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .with_connection_timeout(Duration::from_secs(config.handshake_timeout_secs))
            .build();
        let libp2p_metrics = Metrics::new(&mut registry);
        let mut listeners = Vec::new();
        for addr in &config.listen {
            listeners.push(swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
                addr: addr.clone(),
                message: e.to_string(),
            })?);
        }
        for addr in &config.announce {
            swarm.add_external_address(addr.clone());
        }
        Ok(Server {
            swarm,
            service,
            libp2p_metrics,
            registry: Arc::new(registry),
            prometheus,
            config,
            listeners,
            metrics_listener,
            in_flight: HashMap::new(),
            in_flight_bytes: 0,
            expired_counted: 0,
            relay_stats: RelayStats::default(),
        })
    }

    /// Registrations held now.
    pub fn registrations(&self) -> u64 {
        self.service.store().len()
    }

    /// Relay reservations held now (0 without `--relay`).
    pub fn relay_reservations(&self) -> u64 {
        self.relay_stats.reservations()
    }

    /// Relayed circuits open now (0 without `--relay`).
    pub fn relay_circuits(&self) -> u64 {
        self.relay_stats.circuits()
    }

    /// The point's peer id.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Runs until `shutdown` completes, reporting through `events`.
    /// Registrations are committed as they arrive, so stopping (or being
    /// killed) loses none.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
        mut events: impl FnMut(ServerEvent),
    ) -> Result<(), Error> {
        let id = self.peer_id();
        for addr in &self.config.announce {
            events(ServerEvent::Announcing(with_id(addr.clone(), id)));
        }
        let http = match (self.metrics_listener.take(), self.config.metrics) {
            (Some(listener), Some(addr)) => {
                let listener = tokio::net::TcpListener::from_std(listener)
                    .map_err(|e| Error::MetricsListen { addr, source: e })?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| Error::MetricsListen { addr, source: e })?;
                events(ServerEvent::Metrics(bound));
                let prometheus = self.prometheus.clone();
                let registry = Arc::clone(&self.registry);
                Some(tokio::spawn(http::serve(listener, move || {
                    http::render(prometheus.as_ref(), &registry)
                })))
            }
            _ => None,
        };
        metrics::gauge!("multidriver_rendezvous_registrations")
            .set(self.service.store().len() as f64);
        let mut sweep = tokio::time::interval(self.config.sweep_interval());
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => {
                    events(ServerEvent::Stopping);
                    break;
                }
                _ = sweep.tick() => {
                    match self.service.sweep(unix_now()) {
                        Ok(expired) => {
                            let left = self.service.store().len();
                            self.count_store();
                            if expired > 0 {
                                events(ServerEvent::Swept { expired, left });
                            }
                        }
                        Err(e) => tracing::error!(target: "multidriver_rendezvous", "sweep: {e}"),
                    }
                }
                event = self.swarm.select_next_some() => self.on_event(event, id, &mut events),
            }
        }
        // Stop taking connections, then give answers already handed out a
        // moment to reach their clients: the registrations they confirm are
        // committed either way.
        for listener in std::mem::take(&mut self.listeners) {
            self.swarm.remove_listener(listener);
        }
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, async {
            while !self.in_flight.is_empty() {
                let event = self.swarm.select_next_some().await;
                self.on_event(event, id, &mut events);
            }
        })
        .await;
        if let Some(task) = http {
            task.abort();
        }
        Ok(())
    }

    /// Brings the store's gauges and the expiry counter up to date.
    fn count_store(&mut self) {
        let store = self.service.store();
        let expired = store.expired();
        metrics::counter!("multidriver_rendezvous_expired_total")
            .increment(expired - self.expired_counted);
        self.expired_counted = expired;
        metrics::gauge!("multidriver_rendezvous_registrations").set(store.len() as f64);
    }

    fn answered(&mut self, request: request_response::InboundRequestId) {
        if let Some(bytes) = self.in_flight.remove(&request) {
            self.in_flight_bytes -= bytes;
            metrics::gauge!("multidriver_rendezvous_answer_bytes_in_flight")
                .set(self.in_flight_bytes as f64);
        }
    }

    fn on_event(
        &mut self,
        event: SwarmEvent<BehaviourEvent>,
        id: PeerId,
        events: &mut impl FnMut(ServerEvent),
    ) {
        self.libp2p_metrics.record(&event);
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                // A relay serves only once it has an external address; with
                // nothing announced, the listen addresses are the ones
                // clients reach (link-local ones reach nobody; a public point
                // names its public address with `--announce`).
                if self.config.relay.enabled
                    && self.config.announce.is_empty()
                    && !is_link_local(&address)
                {
                    self.swarm.add_external_address(address.clone());
                }
                events(ServerEvent::Listening(with_id(address, id)));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                if self.config.relay.enabled && self.config.announce.is_empty() {
                    self.swarm.remove_external_address(&address);
                }
                events(ServerEvent::Expired(with_id(address, id)));
            }
            SwarmEvent::ConnectionEstablished { .. } | SwarmEvent::ConnectionClosed { .. } => {
                metrics::gauge!("multidriver_rendezvous_connections").set(f64::from(
                    self.swarm
                        .network_info()
                        .connection_counters()
                        .num_established(),
                ));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => self.libp2p_metrics.record(&e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.libp2p_metrics.record(&e),
            SwarmEvent::Behaviour(BehaviourEvent::Rendezvous(e)) => self.on_rendezvous(e),
            SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => {
                self.libp2p_metrics.record(&e);
                self.relay_stats.on_event(&e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(e)) => {
                let result = if e.result.is_ok() {
                    "reachable"
                } else {
                    "unreachable"
                };
                metrics::counter!("multidriver_rendezvous_autonat_tests_total", "result" => result)
                    .increment(1);
            }
            _ => {}
        }
    }

    fn on_rendezvous(
        &mut self,
        event: request_response::Event<protocol::Message, protocol::Message>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request_id,
                        request,
                        channel,
                    },
                ..
            } => {
                let started = Instant::now();
                let (mut answer, mut outcome) = self.service.handle(&peer, request, unix_now());
                let mut size = answer.as_ref().map_or(0, prost::Message::encoded_len);
                if matches!(outcome, Outcome::Discover(ResponseStatus::Ok, _))
                    && self.in_flight_bytes + size > self.config.max_answer_bytes_in_flight
                {
                    let busy = protocol::discover_error(
                        ResponseStatus::Unavailable,
                        "busy: too many answers waiting for their clients; retry shortly".into(),
                    );
                    size = prost::Message::encoded_len(&busy);
                    answer = Some(busy);
                    outcome = Outcome::Discover(ResponseStatus::Unavailable, 0);
                }
                let kind = outcome.kind();
                metrics::histogram!("multidriver_rendezvous_request_duration_seconds", "kind" => kind)
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!(
                    "multidriver_rendezvous_requests_total",
                    "kind" => kind,
                    "status" => outcome.status()
                )
                .increment(1);
                if let Outcome::Discover(_, n) = outcome {
                    metrics::counter!("multidriver_rendezvous_discovered_total")
                        .increment(n as u64);
                }
                self.count_store();
                tracing::debug!(target: "multidriver_rendezvous", %peer, ?outcome, "request");
                if let Some(answer) = answer
                    // Fails only if the peer is gone; nothing to track then.
                    && self
                        .swarm
                        .behaviour_mut()
                        .rendezvous
                        .send_response(channel, answer)
                        .is_ok()
                {
                    self.in_flight.insert(request_id, size);
                    self.in_flight_bytes += size;
                    metrics::gauge!("multidriver_rendezvous_answer_bytes_in_flight")
                        .set(self.in_flight_bytes as f64);
                }
            }
            request_response::Event::ResponseSent { request_id, .. } => self.answered(request_id),
            request_response::Event::InboundFailure {
                peer,
                error,
                request_id,
                ..
            } => {
                self.answered(request_id);
                let reason = match error {
                    request_response::InboundFailure::Timeout => "timeout",
                    request_response::InboundFailure::ConnectionClosed => "connection_closed",
                    request_response::InboundFailure::UnsupportedProtocols => "unsupported",
                    request_response::InboundFailure::ResponseOmission => "no_response",
                    request_response::InboundFailure::Io(_) => "malformed",
                };
                // Unregistrations get no answer by design: not a failure.
                if reason != "no_response" {
                    tracing::debug!(target: "multidriver_rendezvous", %peer, %error, "inbound failure");
                    metrics::counter!("multidriver_rendezvous_inbound_failures_total", "reason" => reason)
                        .increment(1);
                }
            }
            _ => {}
        }
    }
}

/// Whether an address is link-local (IPv4 169.254/16, IPv6 fe80::/10).
fn is_link_local(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_link_local(),
        Protocol::Ip6(ip) => ip.is_unicast_link_local(),
        _ => false,
    })
}

fn with_id(addr: Multiaddr, id: PeerId) -> Multiaddr {
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr
    } else {
        addr.with(Protocol::P2p(id))
    }
}
