//! `multidriver node`: join a namespace with the engine and print the peers
//! it finds, the route in use to each and why, and route switches as they
//! happen.
//!
//! ```text
//! multidriver node --namespace my-app --rendezvous /ip4/198.51.100.7/tcp/4001/p2p/12D3Koo…
//! multidriver node --namespace my-app --mdns --profile battery-saver
//! multidriver node --namespace my-app --rendezvous ADDR --json --exit-after 60
//! ```
//!
//! The node advertises itself in the namespace and keeps looking it up
//! through every discovery driver given (each `--rendezvous` point, mDNS
//! with `--mdns`), connects to every peer found through the route the
//! engine ranks best under `--profile`, and follows the engine's decisions.
//! Besides the engine's periodic look-ups (every 30 s in the foreground),
//! the node looks the namespace up again 1, 3 and 7 s after it starts
//! ([`WARMUP_LOOKUPS`]: a registration still in flight at its first look-up
//! is missed otherwise), and at once when a peer it does not know connects
//! to it (at most every [`INBOUND_LOOKUP_INTERVAL`]).
//! It runs until Ctrl-C or SIGTERM (exit status 0), or for `--exit-after`
//! seconds.
//!
//! # Output
//!
//! One line per event. Human-readable lines go to stdout and warnings to
//! stderr (`warning: …`). With `--json`, every event, warnings included, is
//! one JSON object on one line of stdout. Every object has `event` (its
//! kind) and `elapsed_ms` (milliseconds since the node started); every
//! other field listed for its kind is always present, `null` where it does
//! not apply. Peer ids are base58, addresses multiaddrs, costs milliseconds
//! rounded to 0.1.
//!
//! | `event` | fields |
//! |---|---|
//! | `started` | `peer` (ours), `namespace`, `profile` (its name), `drivers` (e.g. `["rendezvous /ip4/…/p2p/…", "mdns"]`) |
//! | `listening` | `addr` (a listen address ending in `/p2p/<our id>`) |
//! | `discovered` | `peer`, `source` (`rendezvous`, `mdns`, …), `addrs` (the routes the engine may dial, best first) |
//! | `connected` | `peer`, `addr`, `interface` (e.g. `if1`), `medium` (`loopback`, `wifi`, `ethernet`, `cellular-4g`, …), `transport` (`tcp`, `quic`, `webrtc`, `ble`, or `null`), `inbound` (they dialled us: then `cost` is `null`), `cost`, `why` |
//! | `switched` | `peer`, `from`, `to`, `interface`, `medium`, `transport`, `reason` (`better`, `interface_lost`, `interface_losing`, `connection_closed`), `cost` and `from_cost` (the new and old route's, for `better`), `why` |
//! | `lost` | `peer`, `reason` (`disconnected`: its last connection closed and no route replaces it; `unreachable`: every route tried failed), `tried` (routes tried, for `unreachable`) |
//! | `driver_recovered` | `driver` (a driver that had failed answers again) |
//! | `warning` | `kind` (`rendezvous_unreachable`, `driver_unhealthy`, `listener`, `connect_refused`, `events_dropped`), `driver`, `peer`, `message` (the same sentence human mode prints) |
//! | `stopped` | `reason` (`interrupt`, `terminate`, `exit_after`) |
//!
//! A `cost` is an object `{"total_ms", "latency_ms", "energy_ms",
//! "reliability_ms", "provenance_ms", "costly_link_ms"}`: the route's cost
//! components under the profile when the engine chose it (see
//! `multidriver rank` for what each means).

use std::fmt;
use std::io::{ErrorKind, Write};
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{DialError, Swarm, SwarmEvent};
use libp2p::{Multiaddr, PeerId};
use multidriver::behaviour::{Behaviour, Config};
use multidriver::core::{Event, InterfaceId, SwitchReason};
use multidriver::scoring::rank::Components;
use multidriver::scoring::{Profile, TransportKind};
use multidriver_routing::{Discovery, DiscoveryConfig};
use multidriver_transports::stack::{StackConfig, build_swarm};
use serde::Serialize;

use crate::CliError;

/// The shortest time between two look-ups of the namespace made because an
/// unknown peer connected to us: our choice, so that a burst of inbound
/// connections costs one look-up, not one each. The engine's own periodic
/// look-up (30 s in the foreground) finds them anyway.
const INBOUND_LOOKUP_INTERVAL: Duration = Duration::from_secs(5);

/// When the node looks the namespace up again after its start, besides the
/// engine's periodic look-ups: our choice. Nodes started together miss each
/// other's registrations in their first look-up; without these they would
/// wait for the engine's next one, 30 s later in the foreground.
const WARMUP_LOOKUPS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(7),
];

/// How long the node keeps running after a stop to send its rendezvous
/// unregistrations: our choice, many loopback or LAN round trips. A
/// registration that does not get out lapses by its TTL.
const UNREGISTER_GRACE: Duration = Duration::from_millis(250);

/// `multidriver node`'s flags.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// The namespace to advertise in and look peers up in.
    #[arg(long, value_name = "NS")]
    namespace: String,
    /// A rendezvous point, as `/ip4/…/tcp/…/p2p/<peer id>` (repeatable; each
    /// is a driver of its own, and the engine fails over between them).
    #[arg(long = "rendezvous", value_name = "ADDR", value_parser = parse_point)]
    rendezvous: Vec<Point>,
    /// Find peers on the LAN with mDNS (it has no namespaces: every libp2p
    /// node on the LAN running it is found).
    #[arg(long)]
    mdns: bool,
    /// A listen address (repeatable). Default: TCP and QUIC on every
    /// interface, ports chosen by the OS.
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<Multiaddr>,
    /// A preset name (performance, balanced, battery-saver, background) or
    /// a profile TOML file.
    #[arg(long, value_name = "NAME", default_value = "balanced")]
    profile: String,
    /// Print one JSON object per line per event, for scripts (the fields
    /// are in the README).
    #[arg(long)]
    json: bool,
    /// Exit with status 0 after this many seconds (for scripts and tests).
    #[arg(long, value_name = "SECS")]
    exit_after: Option<u64>,
}

/// A rendezvous point from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Point {
    /// Its peer id.
    peer: PeerId,
    /// Its address, without the `/p2p/<peer id>`.
    addr: Multiaddr,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/p2p/{}", self.addr, self.peer)
    }
}

/// Parses a `--rendezvous` value: a multiaddr ending in `/p2p/<peer id>`
/// with an address before it.
fn parse_point(s: &str) -> Result<Point, String> {
    let full: Multiaddr = s
        .parse()
        .map_err(|e| format!("`{s}` is not a multiaddr: {e}"))?;
    let mut addr = full.clone();
    match addr.pop() {
        Some(Protocol::P2p(peer)) if !addr.is_empty() => Ok(Point { peer, addr }),
        Some(Protocol::P2p(_)) => Err(format!(
            "`{s}` has no address before /p2p/<peer id>; give e.g. /ip4/192.0.2.1/tcp/4001/p2p/<peer id>"
        )),
        _ => Err(format!(
            "`{s}` must end with /p2p/<peer id> of the rendezvous point"
        )),
    }
}

/// What `multidriver node` can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum NodeError {
    /// Neither a rendezvous point nor mDNS.
    #[error("nothing to find peers with: give --rendezvous ADDR (repeatable) or --mdns")]
    NoDiscovery,
    /// The namespace was refused.
    #[error("--namespace: {0}")]
    Namespace(multidriver::Error),
    /// A listen address was refused.
    #[error("--listen {addr}: cannot listen: {message}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        message: String,
    },
    /// The discovery drivers could not start (e.g. mDNS without a
    /// multicast socket).
    #[error("discovery: {0}")]
    Drivers(#[from] multidriver_routing::Error),
    /// The engine refused its configuration.
    #[error("engine: {0}")]
    Engine(#[from] multidriver::Error),
    /// The transport stack could not be built.
    #[error("transport stack: {0}")]
    Stack(#[from] multidriver_transports::Error),
    /// No async runtime.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The signal handlers could not be installed.
    #[error("cannot watch for Ctrl-C and SIGTERM: {0}")]
    Signals(std::io::Error),
    /// Stdout failed (other than closed by the reader).
    #[error("writing the output: {0}")]
    Output(std::io::Error),
    /// The reader of stdout went away (`| head`): not a failure.
    #[error("stdout closed")]
    StdoutClosed,
}

/// Runs `multidriver node` until a signal or `--exit-after`.
pub(crate) fn run(args: NodeArgs) -> Result<(), CliError> {
    if args.rendezvous.is_empty() && !args.mdns {
        return Err(NodeError::NoDiscovery.into());
    }
    let profile = crate::load_profile(&args.profile)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NodeError::Runtime)?;
    match runtime.block_on(node(args, profile)) {
        Ok(()) | Err(NodeError::StdoutClosed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Why the node stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Interrupt,
    Terminate,
    ExitAfter,
}

impl Stop {
    fn as_str(self) -> &'static str {
        match self {
            Stop::Interrupt => "interrupt",
            Stop::Terminate => "terminate",
            Stop::ExitAfter => "exit_after",
        }
    }
}

/// Ctrl-C and SIGTERM, installed before the node starts so that a failure
/// to install them is an error, not an immediate stop.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, NodeError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt()).map_err(NodeError::Signals)?,
                terminate: signal(SignalKind::terminate()).map_err(NodeError::Signals)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    async fn next(&mut self) -> Stop {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Stop::Interrupt,
                _ = self.terminate.recv() => Stop::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => Stop::Interrupt,
                // No handler: run until `--exit-after` or forever.
                Err(_) => std::future::pending().await,
            }
        }
    }
}

async fn node(args: NodeArgs, profile: Profile) -> Result<(), NodeError> {
    // `RUST_LOG=multidriver=debug` shows the engine's dials and decisions.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut out = Out::new(args.json);
    let mut signals = Signals::install()?;

    let key = Keypair::generate_ed25519();
    let me = key.public().to_peer_id();
    // Driver labels in the order `Discovery` numbers its drivers: the
    // rendezvous points, then mDNS.
    let mut drivers = DiscoveryConfig::default();
    let mut labels = Vec::new();
    for point in &args.rendezvous {
        drivers = drivers.with_rendezvous(point.peer, point.addr.clone());
        labels.push(format!("rendezvous {point}"));
    }
    if args.mdns {
        drivers = drivers.with_mdns();
        labels.push("mdns".to_owned());
    }
    let discovery = Discovery::new(&key, drivers)?;
    let config = Config::default().with_engine(
        multidriver::core::Config::default()
            .with_profile(profile.clone())
            // The profile asked for stays, whatever the power state.
            .with_profile_map(None),
    );
    let behaviour = Behaviour::new(me, config, discovery)?;
    let mut swarm = build_swarm(key, &StackConfig::default(), |_| behaviour)?;
    let listen = if args.listen.is_empty() {
        vec![
            Multiaddr::empty()
                .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                .with(Protocol::Tcp(0)),
            Multiaddr::empty()
                .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                .with(Protocol::Udp(0))
                .with(Protocol::QuicV1),
        ]
    } else {
        args.listen.clone()
    };
    for addr in listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NodeError::Listen {
                addr,
                message: e.to_string(),
            })?;
    }
    swarm
        .behaviour_mut()
        .advertise(&args.namespace)
        .map_err(NodeError::Namespace)?;
    swarm
        .behaviour_mut()
        .subscribe(&args.namespace)
        .map_err(NodeError::Namespace)?;
    out.emit(&Report::Started {
        peer: me.to_string(),
        namespace: args.namespace.clone(),
        profile: profile.name.clone(),
        drivers: labels.clone(),
    })?;

    let mut state = State {
        me,
        namespace: &args.namespace,
        points: &args.rendezvous,
        labels,
        last_lookup: None,
    };
    let exit_after = async {
        match args.exit_after {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(exit_after);
    let started = tokio::time::Instant::now();
    let mut warmup = WARMUP_LOOKUPS.iter().map(|after| started + *after);
    let mut next_warmup = warmup.next();
    let stop = loop {
        let warmup_due = tokio::time::sleep_until(next_warmup.unwrap_or(started));
        tokio::select! {
            stop = signals.next() => break stop,
            () = &mut exit_after => break Stop::ExitAfter,
            () = warmup_due, if next_warmup.is_some() => {
                next_warmup = warmup.next();
                swarm
                    .behaviour_mut()
                    .discover(&args.namespace)
                    .map_err(NodeError::Namespace)?;
            }
            event = swarm.select_next_some() => state.on_event(&mut swarm, event, &mut out)?,
        }
    };
    // Withdraw the registrations, and give them a moment to get out.
    swarm.behaviour_mut().stop_advertising(&args.namespace);
    let _ = tokio::time::timeout(UNREGISTER_GRACE, async {
        loop {
            swarm.select_next_some().await;
        }
    })
    .await;
    out.emit(&Report::Stopped {
        reason: stop.as_str(),
    })
}

type NodeSwarm = Swarm<Behaviour<Discovery>>;

/// What the event loop keeps between events.
struct State<'a> {
    me: PeerId,
    namespace: &'a str,
    points: &'a [Point],
    /// Driver labels by driver index.
    labels: Vec<String>,
    /// The last look-up made because an unknown peer connected.
    last_lookup: Option<Instant>,
}

impl State<'_> {
    fn driver_label(&self, swarm: &NodeSwarm, driver: multidriver::core::DriverId) -> String {
        swarm
            .behaviour()
            .driver_index(driver)
            .and_then(|i| self.labels.get(i).cloned())
            .unwrap_or_else(|| format!("driver {driver}"))
    }

    fn on_event(
        &mut self,
        swarm: &mut NodeSwarm,
        event: SwarmEvent<Event>,
        out: &mut Out,
    ) -> Result<(), NodeError> {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                // Rendezvous registrations carry the external addresses. A
                // deployment behind NAT would learn its public ones (AutoNAT,
                // identify); the node announces what it listens on.
                swarm.add_external_address(address.clone());
                out.emit(&Report::Listening {
                    addr: address.with(Protocol::P2p(self.me)).to_string(),
                })
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                swarm.remove_external_address(&address);
                Ok(())
            }
            SwarmEvent::ListenerError { error, .. } => out.emit(&Report::warning(
                "listener",
                None,
                None,
                format!("a listener failed: {}", one_line(&error.to_string())),
            )),
            SwarmEvent::ListenerClosed {
                addresses,
                reason: Err(error),
                ..
            } => {
                let addrs: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                out.emit(&Report::warning(
                    "listener",
                    None,
                    None,
                    format!(
                        "stopped listening on {}: {}",
                        addrs.join(", "),
                        one_line(&error.to_string())
                    ),
                ))
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => match self.points.iter().position(|p| p.peer == peer) {
                Some(i) => out.emit(&Report::warning(
                    "rendezvous_unreachable",
                    self.labels.get(i).cloned(),
                    None,
                    format!(
                        "rendezvous point {} unreachable: {}",
                        self.points[i],
                        dial_failure(&error)
                    ),
                )),
                // The engine's own dials: a failed route is part of a race,
                // and the engine reports a peer it cannot reach.
                None => Ok(()),
            },
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } if endpoint.is_listener()
                && swarm.behaviour().engine().route_count(&peer_id) == 0
                && !self.points.iter().any(|p| p.peer == peer_id) =>
            {
                // Someone found us first: look them up now rather than at
                // the next periodic look-up.
                if self
                    .last_lookup
                    .is_none_or(|t| t.elapsed() >= INBOUND_LOOKUP_INTERVAL)
                {
                    self.last_lookup = Some(Instant::now());
                    swarm
                        .behaviour_mut()
                        .discover(self.namespace)
                        .map_err(NodeError::Namespace)?;
                }
                Ok(())
            }
            SwarmEvent::Behaviour(event) => self.on_engine_event(swarm, event, out),
            _ => Ok(()),
        }
    }

    fn on_engine_event(
        &mut self,
        swarm: &mut NodeSwarm,
        event: Event,
        out: &mut Out,
    ) -> Result<(), NodeError> {
        match event {
            Event::PeerDiscovered { peer, source } => {
                let addrs = swarm
                    .behaviour()
                    .ranked_routes(&peer)
                    .into_iter()
                    .map(|(addr, _, _)| addr.to_string())
                    .collect();
                out.emit(&Report::Discovered {
                    peer: peer.to_string(),
                    source: source.as_str(),
                    addrs,
                })?;
                match swarm.behaviour_mut().connect(peer) {
                    Ok(()) => Ok(()),
                    Err(e) => out.emit(&Report::warning(
                        "connect_refused",
                        None,
                        Some(peer),
                        format!("cannot connect to {peer}: {e}"),
                    )),
                }
            }
            Event::RouteSelected {
                peer,
                addr,
                interface,
                reason,
                ..
            } => {
                // An inbound connection has no route of ours, hence no cost
                // (the engine gives default components).
                let inbound = reason == Components::default();
                let (cost, why) = if inbound {
                    (None, "they dialled us".to_owned())
                } else {
                    (Some(Cost::from(&reason)), why(&reason))
                };
                let link = Link::new(swarm, &addr, interface);
                out.emit(&Report::Connected {
                    peer: peer.to_string(),
                    addr: addr.to_string(),
                    interface: link.interface,
                    medium: link.medium,
                    transport: link.transport,
                    inbound,
                    cost,
                    why,
                })
            }
            Event::RouteSwitched {
                peer,
                from,
                to,
                interface,
                reason,
                ..
            } => {
                let (label, cost, from_cost, why) = switch_reason(&reason);
                let link = Link::new(swarm, &to, interface);
                out.emit(&Report::Switched {
                    peer: peer.to_string(),
                    from: from.to_string(),
                    to: to.to_string(),
                    interface: link.interface,
                    medium: link.medium,
                    transport: link.transport,
                    reason: label,
                    cost,
                    from_cost,
                    why,
                })
            }
            Event::PeerDisconnected { peer } => out.emit(&Report::Lost {
                peer: peer.to_string(),
                reason: "disconnected",
                tried: None,
            }),
            Event::PeerUnreachable { peer, tried } => out.emit(&Report::Lost {
                peer: peer.to_string(),
                reason: "unreachable",
                tried: Some(tried),
            }),
            Event::DriverHealthChanged {
                driver,
                healthy: true,
                ..
            } => out.emit(&Report::DriverRecovered {
                driver: self.driver_label(swarm, driver),
            }),
            Event::DriverHealthChanged {
                driver,
                healthy: false,
                consecutive_failures,
                ..
            } => {
                let label = self.driver_label(swarm, driver);
                let message = format!(
                    "{label} failed ({consecutive_failures} in a row); the engine backs off and tries it again later"
                );
                out.emit(&Report::warning(
                    "driver_unhealthy",
                    Some(label),
                    None,
                    message,
                ))
            }
            Event::EventsDropped { count } => out.emit(&Report::warning(
                "events_dropped",
                None,
                None,
                format!("{count} engine events were dropped: the node fell behind"),
            )),
            _ => Ok(()),
        }
    }
}

/// The interface, medium and transport of a route, as printed.
struct Link {
    interface: String,
    medium: String,
    transport: Option<String>,
}

impl Link {
    fn new(swarm: &NodeSwarm, addr: &Multiaddr, interface: InterfaceId) -> Self {
        Link {
            interface: interface.to_string(),
            medium: swarm.behaviour().interface_medium(interface).to_string(),
            transport: TransportKind::from_multiaddr(addr).map(|t| t.to_string()),
        }
    }
}

/// Text on one line: libp2p's errors span several.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The innermost cause of an error, on one line: what the OS said, not the
/// layers that wrapped it.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    // Bounded: error chains are a few links deep.
    for _ in 0..16 {
        match current.source() {
            Some(inner) => current = inner,
            None => break,
        }
    }
    one_line(&current.to_string())
}

/// Why a dial failed, on one line: the cause, or with several addresses
/// tried, each address and its cause.
fn dial_failure(error: &DialError) -> String {
    match error {
        DialError::Transport(attempts) if attempts.len() == 1 => root_cause(&attempts[0].1),
        DialError::Transport(attempts) if !attempts.is_empty() => attempts
            .iter()
            .map(|(addr, e)| format!("{addr}: {}", root_cause(e)))
            .collect::<Vec<_>>()
            .join("; "),
        other => one_line(&other.to_string()),
    }
}

/// The label, new and old costs, and explanation of a switch.
fn switch_reason(reason: &SwitchReason) -> (&'static str, Option<Cost>, Option<Cost>, String) {
    match reason {
        SwitchReason::Better { from, to } => (
            "better",
            Some(Cost::from(to)),
            Some(Cost::from(from)),
            format!(
                "better: {:.1} ms against {:.1} ms ({})",
                to.total_ms(),
                from.total_ms(),
                why(to)
            ),
        ),
        SwitchReason::InterfaceLost => (
            "interface_lost",
            None,
            None,
            "the old route's interface went down".to_owned(),
        ),
        SwitchReason::InterfaceLosing => (
            "interface_losing",
            None,
            None,
            "the old route's interface is going".to_owned(),
        ),
        SwitchReason::ConnectionClosed => (
            "connection_closed",
            None,
            None,
            "the old connection closed".to_owned(),
        ),
        other => ("other", None, None, format!("{other:?}")),
    }
}

/// A route's cost components in words (as `examples/chat` prints them,
/// with the costly-link penalty).
fn why(c: &Components) -> String {
    format!(
        "cost {:.1} ms: latency {:.1}, energy {:.1}, reliability {:.1}, provenance {:.1}, costly link {:.1}",
        c.total_ms(),
        c.latency_ms,
        c.energy_ms,
        c.reliability_ms,
        c.provenance_ms,
        c.costly_link_ms,
    )
}

/// Milliseconds rounded to 0.1, as printed.
fn ms(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A route's cost components in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Cost {
    total_ms: f64,
    latency_ms: f64,
    energy_ms: f64,
    reliability_ms: f64,
    provenance_ms: f64,
    costly_link_ms: f64,
}

impl From<&Components> for Cost {
    fn from(c: &Components) -> Self {
        Cost {
            total_ms: ms(c.total_ms()),
            latency_ms: ms(c.latency_ms),
            energy_ms: ms(c.energy_ms),
            reliability_ms: ms(c.reliability_ms),
            provenance_ms: ms(c.provenance_ms),
            costly_link_ms: ms(c.costly_link_ms),
        }
    }
}

/// One event as printed; the JSON field names are the documented schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Report {
    Started {
        peer: String,
        namespace: String,
        profile: String,
        drivers: Vec<String>,
    },
    Listening {
        addr: String,
    },
    Discovered {
        peer: String,
        source: &'static str,
        addrs: Vec<String>,
    },
    Connected {
        peer: String,
        addr: String,
        interface: String,
        medium: String,
        transport: Option<String>,
        inbound: bool,
        cost: Option<Cost>,
        why: String,
    },
    Switched {
        peer: String,
        from: String,
        to: String,
        interface: String,
        medium: String,
        transport: Option<String>,
        reason: &'static str,
        cost: Option<Cost>,
        from_cost: Option<Cost>,
        why: String,
    },
    Lost {
        peer: String,
        reason: &'static str,
        tried: Option<usize>,
    },
    DriverRecovered {
        driver: String,
    },
    Warning {
        kind: &'static str,
        driver: Option<String>,
        peer: Option<String>,
        message: String,
    },
    Stopped {
        reason: &'static str,
    },
}

impl Report {
    fn warning(
        kind: &'static str,
        driver: Option<String>,
        peer: Option<PeerId>,
        message: String,
    ) -> Self {
        Report::Warning {
            kind,
            driver,
            peer: peer.map(|p| p.to_string()),
            message,
        }
    }

    /// The human-readable line (without the newline).
    fn human(&self) -> String {
        let how = |medium: &str, transport: &Option<String>| match transport {
            Some(t) => format!("{medium}, {t}"),
            None => medium.to_owned(),
        };
        match self {
            Report::Started {
                peer,
                namespace,
                profile,
                drivers,
            } => format!(
                "I am {peer}; namespace `{namespace}`, profile `{profile}`, finding peers through {}",
                drivers.join(", ")
            ),
            Report::Listening { addr } => format!("listening on {addr}"),
            Report::Discovered {
                peer,
                source,
                addrs,
            } => format!(
                "discovered {peer} through {source}: {}",
                if addrs.is_empty() {
                    "no dialable address".to_owned()
                } else {
                    addrs.join(", ")
                }
            ),
            Report::Connected {
                peer,
                addr,
                interface,
                medium,
                transport,
                why,
                ..
            } => format!(
                "route to {peer}: {addr} on {interface} ({}); {why}",
                how(medium, transport)
            ),
            Report::Switched {
                peer,
                from,
                to,
                interface,
                medium,
                transport,
                why,
                ..
            } => format!(
                "route to {peer} switched: {from} → {to} on {interface} ({}); {why}",
                how(medium, transport)
            ),
            Report::Lost {
                peer,
                reason,
                tried,
            } => match tried {
                Some(1) => format!("lost {peer}: {reason}, the one route tried failed"),
                Some(n) => format!("lost {peer}: {reason}, all {n} routes tried failed"),
                None => format!("lost {peer}: {reason}, no route left to replace the connection"),
            },
            Report::DriverRecovered { driver } => format!("{driver} answers again"),
            Report::Warning { message, .. } => format!("warning: {message}"),
            Report::Stopped { reason } => format!("stopped ({reason})"),
        }
    }

    /// The JSON line (without the newline), with the time since the start.
    fn json(&self, elapsed: Duration) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            #[serde(flatten)]
            report: &'a Report,
            elapsed_ms: u64,
        }
        let line = Line {
            report: self,
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        };
        // Strings, numbers, booleans and arrays of them: this cannot fail.
        serde_json::to_string(&line).unwrap_or_else(|e| {
            format!(
                r#"{{"event":"warning","kind":"output","message":"cannot encode an event: {e}"}}"#
            )
        })
    }
}

/// Where events go.
struct Out {
    json: bool,
    start: Instant,
}

impl Out {
    fn new(json: bool) -> Self {
        Out {
            json,
            start: Instant::now(),
        }
    }

    fn emit(&mut self, report: &Report) -> Result<(), NodeError> {
        if self.json {
            let line = report.json(self.start.elapsed());
            return writeln!(std::io::stdout().lock(), "{line}").map_err(|e| {
                if e.kind() == ErrorKind::BrokenPipe {
                    NodeError::StdoutClosed
                } else {
                    NodeError::Output(e)
                }
            });
        }
        let line = report.human();
        if matches!(report, Report::Warning { .. }) {
            // A closed stderr loses the warning, nothing else.
            let _ = writeln!(std::io::stderr().lock(), "{line}");
            return Ok(());
        }
        writeln!(std::io::stdout().lock(), "{line}").map_err(|e| {
            if e.kind() == ErrorKind::BrokenPipe {
                NodeError::StdoutClosed
            } else {
                NodeError::Output(e)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn json(r: &Report) -> Value {
        serde_json::from_str(&r.json(Duration::from_millis(1500))).unwrap()
    }

    #[test]
    fn a_json_line_is_one_object_with_the_event_first_and_every_field() {
        let c = Components {
            latency_ms: 40.31,
            energy_ms: 0.0,
            reliability_ms: 66.66,
            provenance_ms: 0.0,
            costly_link_ms: 0.0,
        };
        let r = Report::Connected {
            peer: "12D3KooWpeer".to_owned(),
            addr: "/ip4/127.0.0.1/tcp/4001".to_owned(),
            interface: "if1".to_owned(),
            medium: "loopback".to_owned(),
            transport: Some("tcp".to_owned()),
            inbound: false,
            cost: Some(Cost::from(&c)),
            why: why(&c),
        };
        let line = r.json(Duration::from_millis(1500));
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with(r#"{"event":"connected","#), "{line}");
        let v = json(&r);
        assert_eq!(v["elapsed_ms"], 1500);
        assert_eq!(v["peer"], "12D3KooWpeer");
        assert_eq!(v["medium"], "loopback");
        assert_eq!(v["transport"], "tcp");
        assert_eq!(v["inbound"], false);
        assert_eq!(v["cost"]["total_ms"], 107.0);
        assert_eq!(v["cost"]["latency_ms"], 40.3);
        assert_eq!(v["cost"]["reliability_ms"], 66.7);
        assert_eq!(v["cost"]["costly_link_ms"], 0.0);
        assert_eq!(
            v["why"],
            "cost 107.0 ms: latency 40.3, energy 0.0, reliability 66.7, provenance 0.0, costly link 0.0"
        );
    }

    #[test]
    fn fields_that_do_not_apply_are_null_not_missing() {
        let v = json(&Report::Lost {
            peer: "p".to_owned(),
            reason: "disconnected",
            tried: None,
        });
        assert_eq!(v["event"], "lost");
        assert!(v.as_object().unwrap().contains_key("tried"));
        assert!(v["tried"].is_null());
        let v = json(&Report::warning(
            "rendezvous_unreachable",
            Some("rendezvous /ip4/127.0.0.1/tcp/1/p2p/x".to_owned()),
            None,
            "unreachable".to_owned(),
        ));
        assert_eq!(v["event"], "warning");
        assert_eq!(v["kind"], "rendezvous_unreachable");
        assert!(v.as_object().unwrap().contains_key("peer"));
        assert!(v["peer"].is_null());
    }

    #[test]
    fn switches_name_their_reason_and_both_costs_when_better() {
        let old = Components {
            latency_ms: 120.0,
            ..Components::default()
        };
        let new = Components {
            latency_ms: 30.0,
            ..Components::default()
        };
        let (label, cost, from_cost, why) =
            switch_reason(&SwitchReason::Better { from: old, to: new });
        assert_eq!(label, "better");
        assert_eq!(cost.unwrap().total_ms, 30.0);
        assert_eq!(from_cost.unwrap().total_ms, 120.0);
        assert!(why.starts_with("better: 30.0 ms against 120.0 ms"), "{why}");
        let (label, cost, from_cost, _) = switch_reason(&SwitchReason::InterfaceLost);
        assert_eq!((label, cost, from_cost), ("interface_lost", None, None));
    }

    #[test]
    fn human_lines_are_one_line_each() {
        let r = Report::Discovered {
            peer: "p".to_owned(),
            source: "rendezvous",
            addrs: vec!["/ip4/127.0.0.1/tcp/1".to_owned()],
        };
        assert_eq!(
            r.human(),
            "discovered p through rendezvous: /ip4/127.0.0.1/tcp/1"
        );
        let r = Report::Stopped {
            reason: Stop::ExitAfter.as_str(),
        };
        assert_eq!(r.human(), "stopped (exit_after)");
    }

    /// One report of every kind; the match makes a new kind fail to
    /// compile until it is added here (and so checked against the README).
    fn one_of_each() -> Vec<Report> {
        let c = Cost::from(&Components::default());
        let all = vec![
            Report::Started {
                peer: "p".into(),
                namespace: "ns".into(),
                profile: "balanced".into(),
                drivers: vec!["mdns".into()],
            },
            Report::Listening { addr: "a".into() },
            Report::Discovered {
                peer: "p".into(),
                source: "mdns",
                addrs: Vec::new(),
            },
            Report::Connected {
                peer: "p".into(),
                addr: "a".into(),
                interface: "if1".into(),
                medium: "wifi".into(),
                transport: None,
                inbound: true,
                cost: None,
                why: String::new(),
            },
            Report::Switched {
                peer: "p".into(),
                from: "a".into(),
                to: "b".into(),
                interface: "if1".into(),
                medium: "wifi".into(),
                transport: None,
                reason: "better",
                cost: Some(c),
                from_cost: Some(c),
                why: String::new(),
            },
            Report::Lost {
                peer: "p".into(),
                reason: "unreachable",
                tried: Some(2),
            },
            Report::DriverRecovered {
                driver: "mdns".into(),
            },
            Report::warning("listener", None, None, String::new()),
            Report::Stopped {
                reason: "interrupt",
            },
        ];
        for r in &all {
            match r {
                Report::Started { .. }
                | Report::Listening { .. }
                | Report::Discovered { .. }
                | Report::Connected { .. }
                | Report::Switched { .. }
                | Report::Lost { .. }
                | Report::DriverRecovered { .. }
                | Report::Warning { .. }
                | Report::Stopped { .. } => {}
            }
        }
        all
    }

    #[test]
    fn the_readme_documents_every_event_and_field() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
        )
        .unwrap();
        let start = readme
            .find("### `multidriver node`")
            .expect("a `multidriver node` section");
        let section = &readme[start..];
        let section = &section[..section[4..].find("\n#").map_or(section.len(), |e| e + 4)];
        let mut names = Vec::new();
        for r in one_of_each() {
            let v = json(&r);
            let object = v.as_object().unwrap();
            names.push(format!("| `{}` |", v["event"].as_str().unwrap()));
            names.extend(object.keys().map(|k| format!("`{k}`")));
            for cost in ["cost", "from_cost"] {
                if let Some(c) = object.get(cost).and_then(Value::as_object) {
                    names.extend(c.keys().map(|k| format!("\"{k}\"")));
                }
            }
        }
        for name in names {
            assert!(
                section.contains(&name),
                "the README does not document {name}"
            );
        }
    }

    #[test]
    fn a_dial_failure_is_one_line_with_the_os_error_per_address() {
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        let refused = std::io::Error::from(ErrorKind::ConnectionRefused);
        let wrapped =
            std::io::Error::other(format!("Multiple dial errors occurred:\n - {refused}"));
        let e = DialError::Transport(vec![(
            addr,
            libp2p::TransportError::Other(std::io::Error::other(wrapped)),
        )]);
        let text = dial_failure(&e);
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.starts_with("Multiple dial errors occurred: - "),
            "{text}"
        );
        let DialError::Transport(mut attempts) = e else {
            unreachable!()
        };
        let second: Multiaddr = "/ip4/127.0.0.1/tcp/2".parse().unwrap();
        attempts.push((second, libp2p::TransportError::Other(refused)));
        let text = dial_failure(&DialError::Transport(attempts));
        assert!(text.starts_with("/ip4/127.0.0.1/tcp/1: "), "{text}");
        assert!(
            text.ends_with("; /ip4/127.0.0.1/tcp/2: connection refused"),
            "{text}"
        );
        assert_eq!(one_line("a\n - b  c"), "a - b c");
    }

    #[test]
    fn rendezvous_addresses_need_the_point_s_peer_id() {
        let id = PeerId::random();
        let p = parse_point(&format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}")).unwrap();
        assert_eq!(p.peer, id);
        assert_eq!(p.addr.to_string(), "/ip4/127.0.0.1/tcp/4001");
        assert_eq!(p.to_string(), format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}"));

        let e = parse_point("/ip4/127.0.0.1/tcp/4001").unwrap_err();
        assert!(e.contains("`/ip4/127.0.0.1/tcp/4001`"), "{e}");
        assert!(e.contains("/p2p/<peer id>"), "{e}");
        let e = parse_point(&format!("/p2p/{id}")).unwrap_err();
        assert!(e.contains("no address before"), "{e}");
        let e = parse_point("not-an-address").unwrap_err();
        assert!(e.contains("`not-an-address` is not a multiaddr"), "{e}");
    }
}
