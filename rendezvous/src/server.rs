//! The rendezvous point on a libp2p swarm: TCP and QUIC, identify and ping
//! beside the rendezvous protocol, connection limits, a sweep timer, and
//! `/metrics`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
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
use crate::backend::{ANSWER_MEMORY_FACTOR, AnswerBudget, Done, release_pages};
use crate::config::Config;
use crate::http;
use crate::ip_limit::PerIpLimit;
use crate::postgres::{PgOptions, PgStore};
use crate::protocol::{self, PROTOCOL, ServerCodec};
use crate::relay::{RelayStats, relay_config};
use crate::service::{Ask, Outcome, Plan, Service};
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

/// How often a point on a shared registry checks that it can reach it
/// when nothing else did (our choice: `/health` is at most this stale).
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// The identify protocol version we announce.
const IDENTIFY_PROTOCOL: &str = "/multidriver/rendezvous/1.0.0";

/// The point's protocols, side by side on each connection.
#[derive(NetworkBehaviour)]
struct Behaviour {
    /// First: a connection refused by address takes no other slot.
    per_ip: PerIpLimit,
    limits: connection_limits::Behaviour,
    rendezvous: request_response::Behaviour<ServerCodec>,
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
    /// The store is open (a shared registry: reached, its schema checked)
    /// and holds this many registrations.
    Store {
        /// The store (`sqlite <file>`, `postgres <url without password>`).
        store: String,
        /// Registrations it holds.
        registrations: u64,
    },
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
    /// What each is charged in `answers`.
    in_flight: HashMap<request_response::InboundRequestId, usize>,
    /// The memory answers hold, from a page built to its client taking it
    /// ([`Config::max_answer_bytes_in_flight`]), shared with the store.
    answers: Arc<AnswerBudget>,
    /// The most answer memory held since memory was last given back.
    in_flight_high: usize,
    /// Expired registrations already counted in the metric.
    expired_counted: u64,
    /// The relay's reservations and circuits, when it runs.
    relay_stats: RelayStats,
    /// Requests received and not yet handled: they are handled in order and
    /// committed together at the end of the burst they came in
    /// ([`Config::max_batch`] at most).
    batch: Vec<Pending>,
    /// Batches, sweeps and probes the store is working on
    /// ([`Backend::concurrency`] batches at most).
    running: FuturesUnordered<BoxFuture<'static, Finished>>,
    /// Batches among `running`.
    batches_running: usize,
    /// Whether a sweep, a probe is among `running`.
    sweeping: bool,
    probing: bool,
}

/// A request whose answer waits for its batch.
struct Waiting {
    peer: PeerId,
    request_id: request_response::InboundRequestId,
    channel: request_response::ResponseChannel<protocol::Answer>,
    received: Instant,
    ask: Ask,
}

/// What the store finished.
enum Finished {
    Batch {
        waiting: Vec<Waiting>,
        done: Result<Vec<Done>, Error>,
        now: u64,
    },
    Sweep(Result<Option<u64>, Error>),
    Probe(Result<(), Error>),
}

/// A request waiting for its batch.
struct Pending {
    peer: PeerId,
    request_id: request_response::InboundRequestId,
    request: protocol::Inbound,
    channel: request_response::ResponseChannel<protocol::Answer>,
    received: Instant,
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
        let service = match &config.store {
            Some(url) => Service::new(
                config.limits.clone(),
                PgStore::new(&PgOptions {
                    url: url.clone(),
                    pool_size: config.store_pool_size,
                    timeout: Duration::from_secs(config.store_timeout_secs),
                    ca: config.store_ca.clone(),
                })?,
            )?,
            None => Service::new(
                config.limits.clone(),
                Store::open(&config.db, config.durability)?,
            )?,
        };
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
                    ServerCodec::new(
                        config.limits.max_record_bytes + REQUEST_OVERHEAD,
                        config.limits.max_record_bytes,
                        config.limits.accept_spec_records,
                    ),
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
        let answers = AnswerBudget::new(config.max_answer_bytes_in_flight);
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
            answers,
            in_flight_high: 0,
            expired_counted: 0,
            relay_stats: RelayStats::default(),
            batch: Vec::new(),
            running: FuturesUnordered::new(),
            batches_running: 0,
            sweeping: false,
            probing: false,
        })
    }

    /// Registrations held now (on a shared registry: as of this point's
    /// last transaction).
    pub fn registrations(&self) -> u64 {
        self.service.store().counts().rows
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
    /// Requests that arrive together are committed together before any of
    /// them is answered (see [`Config::max_batch`]), so stopping (or being
    /// killed) loses no confirmed registration.
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
        mut events: impl FnMut(ServerEvent),
    ) -> Result<(), Error> {
        let id = self.peer_id();
        for addr in &self.config.announce {
            events(ServerEvent::Announcing(with_id(addr.clone(), id)));
        }
        // A shared registry is reached, and its schema created or checked,
        // before anything is served: a point on a newer schema stops here.
        if let Some(start) = self.service.store_mut().start() {
            start.await?;
        }
        let store = self.service.store();
        events(ServerEvent::Store {
            store: match (store.health())() {
                Ok(what) | Err(what) => what,
            },
            registrations: store.counts().rows,
        });
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
                let health = self.service.store().health();
                Some(tokio::spawn(http::serve(
                    listener,
                    move || http::render(prometheus.as_ref(), &registry),
                    move || health(),
                )))
            }
            _ => None,
        };
        self.count_store();
        let mut sweep = tokio::time::interval(self.config.sweep_interval());
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut probe = tokio::time::interval(PROBE_INTERVAL);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            // With every batch slot taken and a full batch waiting, the
            // swarm is left unpolled until a batch finishes: requests wait
            // in their connections (bounded by the stream limits) instead
            // of in the point.
            let room = self.batch.len() < self.config.max_batch || self.has_slot();
            tokio::select! {
                () = &mut shutdown => {
                    events(ServerEvent::Stopping);
                    break;
                }
                _ = sweep.tick() => self.sweep(&mut events),
                _ = probe.tick() => self.probe(),
                Some(finished) = self.running.next(), if !self.running.is_empty() => {
                    self.finished(finished, &mut events);
                    self.flush();
                }
                event = self.swarm.select_next_some(), if room => {
                    self.on_event(event, id, &mut events);
                    // Take in what else is ready (at most `max_batch` more
                    // events, so a busy swarm cannot keep the timer and the
                    // stop signal waiting), then commit it together.
                    for _ in 0..self.config.max_batch {
                        if self.batch.len() >= self.config.max_batch {
                            break;
                        }
                        match self.swarm.next().now_or_never() {
                            Some(Some(event)) => self.on_event(event, id, &mut events),
                            _ => break,
                        }
                    }
                    self.flush();
                }
            }
        }
        // What was received is handled, and what the store works on
        // finished (each batch within the store's own timeout), before the
        // point stops.
        loop {
            self.flush();
            if self.batch.is_empty() && self.batches_running == 0 {
                break;
            }
            match self.running.next().await {
                Some(finished) => self.finished(finished, &mut events),
                None => break,
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
                self.flush();
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
        let counts = store.counts();
        metrics::counter!("multidriver_rendezvous_expired_total")
            .increment(counts.expired.saturating_sub(self.expired_counted));
        self.expired_counted = counts.expired;
        metrics::gauge!("multidriver_rendezvous_registrations").set(counts.rows as f64);
        store.record_metrics();
    }

    /// Whether the store may take another batch now.
    fn has_slot(&self) -> bool {
        self.batches_running < self.service.store().concurrency()
    }

    /// Starts a sweep, unless one is running.
    fn sweep(&mut self, events: &mut impl FnMut(ServerEvent)) {
        if self.sweeping {
            return;
        }
        let mut job = self
            .service
            .store_mut()
            .sweep(unix_now(), self.config.sweep_interval_secs);
        match (&mut job).now_or_never() {
            Some(result) => self.finished(Finished::Sweep(result), events),
            None => {
                self.sweeping = true;
                self.running
                    .push(Box::pin(async move { Finished::Sweep(job.await) }));
            }
        }
    }

    /// Checks that a store that can be lost is still there, unless a check
    /// or a batch is already running (its outcome tells the same).
    fn probe(&mut self) {
        if self.probing || self.batches_running > 0 {
            return;
        }
        if let Some(job) = self.service.store_mut().probe() {
            self.probing = true;
            self.running
                .push(Box::pin(async move { Finished::Probe(job.await) }));
        }
    }

    fn finished(&mut self, finished: Finished, events: &mut impl FnMut(ServerEvent)) {
        match finished {
            Finished::Batch { waiting, done, now } => {
                self.batches_running = self.batches_running.saturating_sub(1);
                self.answer_batch(waiting, done, now);
            }
            Finished::Sweep(result) => {
                self.sweeping = false;
                match result {
                    Ok(Some(expired)) => {
                        metrics::counter!("multidriver_rendezvous_sweeps_total", "by" => "this_point")
                            .increment(1);
                        let left = self.service.store().counts().rows;
                        if expired > 0 {
                            events(ServerEvent::Swept { expired, left });
                        }
                    }
                    Ok(None) => {
                        metrics::counter!("multidriver_rendezvous_sweeps_total", "by" => "another_point")
                            .increment(1);
                    }
                    Err(e) => tracing::error!(target: "multidriver_rendezvous", "sweep: {e}"),
                }
            }
            Finished::Probe(result) => {
                self.probing = false;
                if let Err(e) = result {
                    tracing::warn!(target: "multidriver_rendezvous", "registry check: {e}");
                }
            }
        }
        self.count_store();
    }

    fn answered(&mut self, request: request_response::InboundRequestId) {
        if let Some(bytes) = self.in_flight.remove(&request) {
            self.answers.release(bytes);
            self.count_answers();
            self.give_memory_back();
        }
    }

    fn count_answers(&self) {
        metrics::gauge!("multidriver_rendezvous_answer_bytes_in_flight")
            .set(self.answers.charged() as f64);
    }

    /// Once answers that held at least half the in-flight limit are gone
    /// (less than an eighth is left), hands the freed memory back to the
    /// system: the allocator keeps freed pages for reuse, and after a burst
    /// of large answers that is tens of MiB the point would hold for good.
    fn give_memory_back(&mut self) {
        let held = self.answers.charged() * ANSWER_MEMORY_FACTOR;
        let limit = self.config.max_answer_bytes_in_flight;
        self.in_flight_high = self.in_flight_high.max(held);
        if self.in_flight_high >= limit / 2 && held <= limit / 8 {
            self.in_flight_high = held;
            crate::files::release_free_memory();
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

    /// Plans the waiting requests, answers at once those that need no
    /// store, and hands the others to the store as one batch (one
    /// transaction), when it has a slot; their answers wait for it to
    /// commit ([`Server::answer_batch`]), so a registration is confirmed
    /// only once it is committed and one commit serves the whole batch.
    fn flush(&mut self) {
        if self.batch.is_empty() || !self.has_slot() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        let now = unix_now();
        let mut ops = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for Pending {
            peer,
            request_id,
            request,
            channel,
            received,
        } in batch
        {
            match self.service.plan(&peer, request, now) {
                Plan::Answer(answer, outcome) => {
                    self.deliver(peer, request_id, channel, received, answer, outcome, 0);
                }
                Plan::Store(op, ask) => {
                    ops.push(op);
                    waiting.push(Waiting {
                        peer,
                        request_id,
                        channel,
                        received,
                        ask,
                    });
                }
            }
        }
        if !ops.is_empty() {
            if self.service.store().is_down() {
                // Known out of reach: answered now, not after a timeout;
                // the probe finds out when it is back.
                let why = match (self.service.store().health())() {
                    Ok(what) | Err(what) => what,
                };
                let down = Error::Registry {
                    url: String::new(),
                    message: format!("out of reach, checked every 2 s ({why})"),
                    unavailable: true,
                };
                for w in waiting {
                    self.answer_waiting(w, Err(&down), now);
                }
            } else {
                let mut job = self.service.store_mut().run(ops, now, &self.answers);
                match (&mut job).now_or_never() {
                    Some(done) => self.answer_batch(waiting, done, now),
                    None => {
                        self.batches_running += 1;
                        self.running.push(Box::pin(async move {
                            Finished::Batch {
                                waiting,
                                done: job.await,
                                now,
                            }
                        }));
                    }
                }
            }
        }
        self.count_answers();
        self.count_store();
    }

    /// Answers the requests of a finished batch. If it failed, none of its
    /// writes happened and every register and discover in it is answered
    /// with the failure (`E_UNAVAILABLE` when the store cannot be reached,
    /// `E_INTERNAL_ERROR` otherwise).
    fn answer_batch(&mut self, waiting: Vec<Waiting>, done: Result<Vec<Done>, Error>, now: u64) {
        let (done, failure) = match done {
            Ok(done) if done.len() == waiting.len() => (done, None),
            Ok(done) => {
                release_pages(&done, &self.answers);
                (Vec::new(), Some(Error::missing_answer()))
            }
            Err(e) => {
                tracing::error!(
                    target: "multidriver_rendezvous",
                    "batch of {} requests: {e}; none of them took effect",
                    waiting.len()
                );
                (Vec::new(), Some(e))
            }
        };
        let mut done = done.into_iter();
        let missing = Error::missing_answer();
        for w in waiting {
            let result = match &failure {
                Some(e) => Err(e),
                None => done.next().ok_or(&missing),
            };
            self.answer_waiting(w, result, now);
        }
        self.count_answers();
    }

    /// Answers one request of a batch from what its op came to.
    fn answer_waiting(&mut self, w: Waiting, result: Result<Done, &Error>, now: u64) {
        // A page was charged when the store built it.
        let charged = match &result {
            Ok(Done::Discover(page)) => page.charged,
            _ => 0,
        };
        let (answer, outcome) = self.service.answer(&w.ask, result, now);
        self.deliver(
            w.peer,
            w.request_id,
            w.channel,
            w.received,
            answer,
            outcome,
            charged,
        );
    }

    /// Sends one answer (if one is due) and counts the request. A page
    /// holds what the store charged for it (`charged`) until its client
    /// takes it; any other answer is charged now, as it is (a few bytes).
    #[allow(clippy::too_many_arguments)]
    fn deliver(
        &mut self,
        peer: PeerId,
        request_id: request_response::InboundRequestId,
        channel: request_response::ResponseChannel<protocol::Answer>,
        received: Instant,
        answer: Option<protocol::Message>,
        outcome: Outcome,
        charged: usize,
    ) {
        let kind = outcome.kind();
        metrics::histogram!("multidriver_rendezvous_request_duration_seconds", "kind" => kind)
            .record(received.elapsed().as_secs_f64());
        metrics::counter!(
            "multidriver_rendezvous_requests_total",
            "kind" => kind,
            "status" => outcome.status()
        )
        .increment(1);
        if let Outcome::Discover(_, n) = outcome {
            metrics::counter!("multidriver_rendezvous_discovered_total").increment(n as u64);
        }
        tracing::debug!(target: "multidriver_rendezvous", %peer, ?outcome, "request");
        let held = match &answer {
            Some(_) if charged > 0 => charged,
            Some(m) => {
                let size = prost::Message::encoded_len(m);
                self.answers.charge(size);
                size
            }
            None => {
                self.answers.release(charged);
                return;
            }
        };
        // Encoded here, on the point's own thread, so the decoded page
        // is freed where it was made and only the bytes wait for the
        // client.
        let sent = match answer.map(|m| protocol::Answer::new(&m)) {
            // Fails only if the peer is gone; nothing to track then.
            Some(answer) => self
                .swarm
                .behaviour_mut()
                .rendezvous
                .send_response(channel, answer)
                .is_ok(),
            None => false,
        };
        if sent {
            self.in_flight.insert(request_id, held);
        } else {
            self.answers.release(held);
        }
    }

    fn on_rendezvous(
        &mut self,
        event: request_response::Event<protocol::Inbound, protocol::Answer>,
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
            } => self.batch.push(Pending {
                peer,
                request_id,
                request,
                channel,
                received: Instant::now(),
            }),
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
