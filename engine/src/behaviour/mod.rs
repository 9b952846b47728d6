//! The libp2p adapter: [`Behaviour`], one `NetworkBehaviour` that runs the
//! engine core over a real swarm.
//!
//! It is a thin layer over [`crate::core::Engine`]:
//!
//! - the core's [`Command::Dial`]s become `ToSwarm::Dial` with one address
//!   each and `PeerCondition::Always` (the core races several routes to one
//!   peer, and dials a better route while the peer is connected), and their
//!   `ConnectionHandle`s are tracked so outcomes reach the core;
//! - a dial the core did not order (the app's `swarm.dial(peer_id)`, a
//!   driver's) is answered in `handle_pending_outbound_connection` with the
//!   core's ranked addresses for the peer, best first;
//! - each connection's handler answers and sends `/ipfs/ping/1.0.0` probes
//!   when the core asks ([`Command::KeepAlive`]), and its RTT feeds the core;
//!   connections the core holds are kept alive, its losers closed with
//!   `ToSwarm::CloseConnection`;
//! - the discovery [`DriverSet`] (a Kademlia DHT, rendezvous points, mDNS:
//!   `multidriver-routing` has them) run inside it and answer the core's
//!   advertise and discover commands;
//! - local addresses from `if-watch`, link states from netlink on Linux (a
//!   link taken down keeps its IPv4 addresses, so only its state tells),
//!   and the host's [`ConnectivityHint`]s are the core's network-change
//!   input; the
//!   interface of a route is the one the kernel's routing table picks for its
//!   address;
//! - the core's [`Event`]s are the behaviour's events.
//!
//! # With the rest of the swarm
//!
//! - **Smart dialing** (`SwarmBuilder::with_smart_dial`, libp2p's ranking of
//!   a dial's addresses by IP family and transport): turn it **off**. The
//!   core already dials one address at a time in its own ranked, staggered
//!   race; smart dialing would re-sort the addresses of a dial the core did
//!   not order and put its QUIC-before-TCP delays in front of the route the
//!   core measured as fastest.
//! - **Idle connection timeout**: the handler keeps the connections the core
//!   holds alive whatever the timeout; the others (losers already closed,
//!   connections other behaviours opened) follow it. A long timeout (the
//!   `multidriver-transports` stack uses 300 s) is safe.
//! - **Kademlia's address pruning**: kad drops a peer's address after a
//!   failed dial to it. During a network switch the dials over the lost
//!   interface fail, and kad would forget addresses that work again a moment
//!   later. The core's routes are not kad's: they carry their own failure
//!   penalty and expire only by TTL, so a switch loses nothing here; the
//!   DHT driver re-reads kad only for discovery.
//!
//! # Example
//!
//! The behaviour goes into the app's `#[derive(NetworkBehaviour)]` struct
//! as one field (`multidriver: Behaviour<Discovery>`); the app tells it what
//! to advertise, what to look up and whom it wants:
//!
//! ```
//! use libp2p::PeerId;
//! use multidriver::behaviour::{Behaviour, Config, DriverSet};
//!
//! fn start<D: DriverSet>(local: PeerId, drivers: D) -> Result<Behaviour<D>, multidriver::Error> {
//!     let mut multidriver = Behaviour::new(local, Config::default(), drivers)?;
//!     multidriver.advertise("my-app")?; // register where the drivers can
//!     multidriver.subscribe("my-app")?; // and keep looking up others
//!     Ok(multidriver)
//! }
//! // Then, on `Event::PeerDiscovered { peer, .. }`: `multidriver.connect(peer)?`.
//! ```
//!
//! `multidriver-routing` builds the drivers and has a full example;
//! `examples/chat` is a complete app.
//!
//! # Bounds
//!
//! Every table is bounded: dials in flight by the engine's attempt bounds
//! (a dial the engine cancelled stays until the transport gives up, since
//! libp2p cannot abort one pending dial; if it connects, the engine closes
//! it as a duplicate); open connections and inbound connections waiting
//! for adoption by `max_connections` (beyond it an inbound connection is
//! left to the swarm, untracked); driver operations by `max_queries`;
//! remembered routes by [`Config::max_remembered_routes`]; commands for the
//! swarm by [`Config::max_pending_actions`]; route look-ups by
//! [`Config::max_route_lookups`].
//!
//! # Metrics and traces
//!
//! Through the `metrics` facade (the library installs no recorder):
//! `multidriver_dials_total{outcome, medium}`,
//! `multidriver_dial_duration_seconds{medium}`,
//! `multidriver_time_to_connect_seconds` (from [`Behaviour::connect`] to the
//! first route), `multidriver_route_switches_total{reason}`,
//! `multidriver_driver_answer_seconds{driver}`,
//! `multidriver_probes_total{outcome}`, and
//! `multidriver_modelled_energy_millijoules_total{medium, activity}`: the
//! radio energy `multidriver_scoring::energy` models for each dial (a
//! promotion and the handshake's bytes) and each probe batch (one wake-up
//! per radio, the probes' bytes), not a measurement. Decisions are `tracing` events under
//! the `multidriver` target; no subscriber is installed.

mod handler;
mod interfaces;
#[cfg(target_os = "linux")]
mod links;

use std::collections::{HashMap, HashSet, VecDeque};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures::StreamExt;
use futures_timer::Delay;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::handler::ConnectionHandlerSelect;
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionHandler, ConnectionId as SwarmConnectionId,
    FromSwarm, NetworkBehaviour, NotifyHandler, THandler, THandlerInEvent, THandlerOutEvent,
    ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use multidriver_scoring::energy::{KEEPALIVE_BYTES, RadioProfile};
use multidriver_scoring::{Medium, PowerState, Source, Timestamp, TransportKind};
use multidriver_transports::connectivity::ConnectivityHint;

pub use handler::{Handler as ProbeHandler, In as ProbeIn, Out as ProbeOut, PROBE_PROTOCOL};
use interfaces::Interfaces;

use crate::Error;
use crate::core::{
    Command, ConnectionHandle, Discovered, DriverId, Engine, Event, InterfaceId, NetworkChange,
    QueryId, QueryOutcome,
};
pub use multidriver_routing::{DriverEvent, DriverSet};

/// How the [`Behaviour`] runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The engine core's configuration (bounds, profile, liveness).
    pub engine: crate::core::Config,
    /// Watch the OS's addresses with `if-watch` (default). Turn off on
    /// mobile when the app reports networks with
    /// [`Behaviour::handle_hint`] instead; routes then leave through the
    /// hinted default network.
    pub watch_interfaces: bool,
    /// How long the handler waits for one probe's echo before reporting it
    /// failed. Default 20 s, libp2p-ping's timeout; the engine's liveness
    /// timeout (2 s) acts first.
    pub probe_timeout: Duration,
    /// Remote addresses whose local interface is remembered. At the bound
    /// the memory is cleared and the kernel asked again; it is cleared on
    /// every network change anyway. Default 256.
    pub max_route_lookups: usize,
    /// Routes remembered so that each follows its address to another
    /// interface when the network changes (the kernel routes an address
    /// through whichever interface is up). At the bound the route that
    /// lapses first is forgotten; the engine keeps it, but it no longer
    /// moves. Default 4096.
    pub max_remembered_routes: usize,
    /// Most commands for the swarm waiting at once (dials, closes,
    /// probes). The engine's own bounds keep it far below; at the bound the
    /// behaviour stops taking commands from the engine until the swarm has
    /// taken some. Default 1024.
    pub max_pending_actions: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            engine: crate::core::Config::default(),
            watch_interfaces: true,
            // libp2p-ping's default timeout (ping `handler.rs`).
            probe_timeout: Duration::from_secs(20),
            max_route_lookups: 256,
            max_remembered_routes: 4096,
            max_pending_actions: 1024,
        }
    }
}

impl Config {
    /// Replaces the engine configuration.
    pub fn with_engine(mut self, engine: crate::core::Config) -> Self {
        self.engine = engine;
        self
    }

    /// Turns the `if-watch` address watcher on or off.
    pub fn with_interface_watching(mut self, on: bool) -> Self {
        self.watch_interfaces = on;
        self
    }
}

type Handler<D> = ConnectionHandlerSelect<handler::Handler, THandler<D>>;
type Action<D> = ToSwarm<Event, THandlerInEvent<Behaviour<D>>>;

#[derive(Debug, Clone, Copy)]
struct Dial {
    engine: ConnectionHandle,
    medium: Medium,
    started: Instant,
}

/// A route the behaviour gave the engine, remembered to follow its address.
#[derive(Debug, Clone, Copy)]
struct Known {
    source: Source,
    signed: bool,
    expires: Timestamp,
    /// `None` while no interface reaches it.
    interface: Option<InterfaceId>,
}

/// An inbound connection of a peer the engine did not know yet.
#[derive(Debug, Clone)]
struct Untracked {
    peer: PeerId,
    local: Multiaddr,
    remote: Multiaddr,
}

#[derive(Debug, Clone, Copy)]
struct Open {
    engine: ConnectionHandle,
    peer: PeerId,
}

/// multidriver as one `NetworkBehaviour`; see the [module docs](self).
pub struct Behaviour<D: DriverSet> {
    engine: Engine,
    drivers: D,
    driver_ids: Vec<DriverId>,
    driver_kinds: Vec<Source>,
    local_peer: PeerId,
    config: Config,
    start: Instant,
    interfaces: Interfaces,
    if_watch: Option<if_watch::tokio::IfWatcher>,
    if_watch_failed: bool,
    #[cfg(target_os = "linux")]
    links: Option<links::LinkWatcher>,
    #[cfg(target_os = "linux")]
    links_failed: bool,
    timer: Option<(Timestamp, Delay)>,
    waker: Option<Waker>,
    /// Dials the engine ordered, by swarm id.
    dials: HashMap<SwarmConnectionId, Dial>,
    /// Open connections the engine tracks, by swarm id.
    open: HashMap<SwarmConnectionId, Open>,
    by_engine: HashMap<ConnectionHandle, (SwarmConnectionId, PeerId)>,
    /// Connections the engine closed; their close is not a loss.
    closing: HashSet<SwarmConnectionId>,
    /// Driver operations in flight: when sent, routes reported.
    queries: HashMap<QueryId, (Instant, usize, Source)>,
    /// When the app asked for a peer, until its first route.
    wanted_since: HashMap<PeerId, Instant>,
    /// Routes given to the engine, to move when their address moves.
    known: HashMap<(PeerId, Multiaddr), Known>,
    /// Inbound connections waiting for the engine to know their peer.
    untracked: HashMap<SwarmConnectionId, Untracked>,
    /// The swarm's confirmed external addresses.
    external: libp2p::swarm::ExternalAddresses,
    actions: VecDeque<Action<D>>,
}

impl<D: DriverSet> std::fmt::Debug for Behaviour<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour")
            .field("local_peer", &self.local_peer)
            .field("connections", &self.open.len())
            .field("dials", &self.dials.len())
            .finish_non_exhaustive()
    }
}

fn medium_label(m: Medium) -> &'static str {
    match m {
        Medium::Loopback => "loopback",
        Medium::Ethernet => "ethernet",
        Medium::Wifi => "wifi",
        Medium::Cellular(_) => "cellular",
        Medium::Bluetooth => "bluetooth",
        _ => "unknown",
    }
}

/// Whether a connection's end says its path failed (a timeout, a reset, an
/// unreachable network) rather than that someone closed it: only a failure
/// penalises the other routes to the host. A remote's deliberate close
/// reaches us as an I/O error too, of another kind. Muxers wrap their
/// errors (`StreamMuxerBox` makes every one `io::Error::other`), so the
/// whole chain is searched: an I/O error of a failure kind at any depth, or
/// an error that says it timed out (quinn's idle timeout has no I/O kind).
fn is_loss(cause: Option<&libp2p::swarm::ConnectionError>) -> bool {
    use std::io::ErrorKind as K;
    let Some(libp2p::swarm::ConnectionError::IO(e)) = cause else {
        return false;
    };
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    // Bounded: error chains are a few links deep.
    for _ in 0..16 {
        let Some(err) = current else {
            return false;
        };
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                K::TimedOut
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::HostUnreachable
                    | K::NetworkUnreachable
                    | K::NetworkDown
            ) {
                return true;
            }
            if let Some(inner) = io.get_ref() {
                current = Some(inner);
                continue;
            }
        }
        if err.to_string().to_ascii_lowercase().contains("timed out") {
            return true;
        }
        current = err.source();
    }
    false
}

/// Adds modelled radio energy to `multidriver_modelled_energy_millijoules_total`.
fn record_energy(medium: Medium, activity: &'static str, joules: f64) {
    // Millijoules, rounded: counters count whole units.
    let mj = (joules * 1000.0).round().max(0.0) as u64;
    metrics::counter!(
        "multidriver_modelled_energy_millijoules_total",
        "medium" => medium_label(medium),
        "activity" => activity
    )
    .increment(mj);
}

impl<D: DriverSet> Behaviour<D> {
    /// A behaviour for the swarm of `local_peer`, running `drivers`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an engine configuration that does not
    /// validate, [`Error::TableFull`] for more drivers than
    /// `max_drivers`.
    pub fn new(local_peer: PeerId, config: Config, drivers: D) -> Result<Self, Error> {
        let mut engine = Engine::new(config.engine.clone())?;
        let mut driver_ids = Vec::new();
        let mut driver_kinds = Vec::new();
        for caps in drivers.capabilities() {
            driver_ids.push(engine.register_driver(caps, Timestamp::ZERO)?);
            driver_kinds.push(caps.kind);
        }
        let mut behaviour = Behaviour {
            interfaces: Interfaces::new(config.engine.max_interfaces, config.max_route_lookups),
            driver_ids,
            driver_kinds,
            local_peer,
            start: Instant::now(),
            if_watch: None,
            if_watch_failed: false,
            #[cfg(target_os = "linux")]
            links: None,
            #[cfg(target_os = "linux")]
            links_failed: false,
            timer: None,
            waker: None,
            dials: HashMap::new(),
            open: HashMap::new(),
            by_engine: HashMap::new(),
            closing: HashSet::new(),
            queries: HashMap::new(),
            wanted_since: HashMap::new(),
            known: HashMap::new(),
            untracked: HashMap::new(),
            external: libp2p::swarm::ExternalAddresses::default(),
            actions: VecDeque::new(),
            engine,
            drivers,
            config,
        };
        if behaviour.driver_kinds.contains(&Source::Proximity)
            && let Some(change) = behaviour.interfaces.bring_up_bluetooth()
        {
            // The proximity radio's links are an interface of their own.
            behaviour.network_change(change);
        }
        if behaviour.config.watch_interfaces {
            // The addresses up now, so that routes found before the first
            // `if-watch` report have an interface.
            for (ip, prefix, name) in Interfaces::scan() {
                behaviour.on_address(ip, prefix, true, Some(&name));
            }
        }
        Ok(behaviour)
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.start.elapsed())
    }

    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// The engine core, for introspection.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The drivers, e.g. to add a Kademlia bootstrap node.
    pub fn drivers_mut(&mut self) -> &mut D {
        &mut self.drivers
    }

    /// The engine's id of a swarm connection, if the engine tracks it.
    pub fn engine_connection(&self, connection: SwarmConnectionId) -> Option<ConnectionHandle> {
        self.open.get(&connection).map(|o| o.engine)
    }

    /// The swarm's id of one of the engine's connections (from an
    /// [`Event`]).
    pub fn swarm_connection(&self, connection: ConnectionHandle) -> Option<SwarmConnectionId> {
        self.by_engine.get(&connection).map(|(c, _)| *c)
    }

    /// The peer's routes the engine may dial now, best first, with their
    /// interface and modelled cost in milliseconds (see
    /// [`Engine::ranked_routes`]); e.g. to show what a driver found.
    pub fn ranked_routes(&self, peer: &PeerId) -> Vec<(Multiaddr, InterfaceId, f64)> {
        self.engine.ranked_routes(peer, self.now())
    }

    /// The peer's primary connection: the swarm's id and the address.
    pub fn primary(&self, peer: &PeerId) -> Option<(SwarmConnectionId, Multiaddr)> {
        let c = self.engine.primary(peer)?;
        let (swarm, _) = self.by_engine.get(&c)?;
        let (addr, _) = self.engine.connection(c)?;
        Some((*swarm, addr.clone()))
    }

    /// Advertises `namespace` through every driver the schedule allows,
    /// with the engine's default TTL of 2 h (rendezvous' minimum,
    /// libp2p-rendezvous `lib.rs`), re-advertised before it lapses.
    ///
    /// # Errors
    /// As [`Engine::advertise`].
    pub fn advertise(&mut self, namespace: &str) -> Result<(), Error> {
        self.advertise_for(namespace, Duration::from_secs(2 * 60 * 60))
    }

    /// [`advertise`](Self::advertise) with a TTL.
    ///
    /// # Errors
    /// As [`Engine::advertise`].
    pub fn advertise_for(&mut self, namespace: &str, ttl: Duration) -> Result<(), Error> {
        let now = self.now();
        self.engine.advertise(namespace, ttl, now)?;
        self.wake();
        Ok(())
    }

    /// Stops advertising `namespace`.
    pub fn stop_advertising(&mut self, namespace: &str) {
        let now = self.now();
        self.engine.stop_advertising(namespace, now);
        self.wake();
    }

    /// Keeps looking up `namespace` (see [`Engine::subscribe`]).
    ///
    /// # Errors
    /// As [`Engine::subscribe`].
    pub fn subscribe(&mut self, namespace: &str) -> Result<(), Error> {
        let now = self.now();
        self.engine.subscribe(namespace, now)?;
        self.wake();
        Ok(())
    }

    /// Looks `namespace` up once with every driver that may run.
    ///
    /// # Errors
    /// As [`Engine::discover`].
    pub fn discover(&mut self, namespace: &str) -> Result<usize, Error> {
        let now = self.now();
        let n = self.engine.discover(namespace, now)?;
        self.wake();
        Ok(n)
    }

    /// The app wants `peer` connected, now and after every loss.
    ///
    /// # Errors
    /// As [`Engine::connect`].
    pub fn connect(&mut self, peer: PeerId) -> Result<(), Error> {
        let now = self.now();
        self.engine.connect(peer, now)?;
        if self.wanted_since.len() < self.config.engine.max_peers {
            self.wanted_since.entry(peer).or_insert_with(Instant::now);
        }
        self.adopt(peer, now);
        self.wake();
        Ok(())
    }

    /// The app no longer wants `peer`.
    pub fn disconnect(&mut self, peer: PeerId) {
        let now = self.now();
        self.wanted_since.remove(&peer);
        self.engine.disconnect(peer, now);
        self.wake();
    }

    /// The app sent to or received from `peer` (see [`Engine::mark_used`]).
    pub fn mark_used(&mut self, peer: PeerId) {
        let now = self.now();
        self.engine.mark_used(peer, now);
        self.wake();
    }

    /// The app adds a route it learned elsewhere (a QR code, its own
    /// protocol); it lasts `ttl`.
    ///
    /// # Errors
    /// [`Error::UnknownInterface`] when no local interface reaches the
    /// address, or as [`Engine::handle_discovered`].
    pub fn add_route(&mut self, peer: PeerId, addr: Multiaddr, ttl: Duration) -> Result<(), Error> {
        let now = self.now();
        self.feed(peer, addr, Source::Manual, false, ttl, now)?;
        self.adopt(peer, now);
        self.wake();
        Ok(())
    }

    /// Gives the engine a route over the interface the address is reached
    /// through now, and remembers it so that it follows the address to
    /// another interface when the network changes.
    fn feed(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        source: Source,
        signed: bool,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<(), Error> {
        let Some(interface) = self.interfaces.route(&addr) else {
            // Unreachable now; remembered, it is given to the engine when a
            // network change makes it reachable.
            self.remember(peer, addr.clone(), source, signed, now + ttl, None);
            return Err(Error::NoInterfaceFor {
                addr: addr.to_string(),
            });
        };
        self.engine.handle_discovered(
            Discovered {
                peer,
                addr: addr.clone(),
                interface,
                source,
                signed,
                ttl,
            },
            now,
        )?;
        self.remember(peer, addr, source, signed, now + ttl, Some(interface));
        Ok(())
    }

    fn remember(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        source: Source,
        signed: bool,
        expires: Timestamp,
        interface: Option<InterfaceId>,
    ) {
        let key = (peer, addr);
        if !self.known.contains_key(&key) && self.known.len() >= self.config.max_remembered_routes {
            // Forget the route that lapses first.
            let first = self
                .known
                .iter()
                .min_by_key(|(_, k)| k.expires)
                .map(|(key, _)| key.clone());
            if let Some(first) = first {
                self.known.remove(&first);
            }
        }
        let known = self.known.entry(key).or_insert(Known {
            source,
            signed,
            expires,
            interface,
        });
        known.expires = known.expires.max(expires);
        known.interface = interface;
    }

    /// The network changed: each remembered route whose address is now
    /// reached through another interface is given to the engine over that
    /// interface.
    fn refeed(&mut self, now: Timestamp) {
        self.known.retain(|_, k| k.expires > now);
        let moved: Vec<((PeerId, Multiaddr), Known, InterfaceId)> = self
            .known
            .iter()
            .filter_map(|(key, k)| {
                let to = self.interfaces.route(&key.1)?;
                (Some(to) != k.interface).then(|| (key.clone(), *k, to))
            })
            .collect();
        for ((peer, addr), k, to) in moved {
            let found = Discovered {
                peer,
                addr: addr.clone(),
                interface: to,
                source: k.source,
                signed: k.signed,
                ttl: k.expires.saturating_duration_since(now),
            };
            match self.engine.handle_discovered(found, now) {
                Ok(()) => {
                    tracing::debug!(target: "multidriver", %peer, %addr, from = ?k.interface, %to, "route follows its address to another interface");
                    if let Some(known) = self.known.get_mut(&(peer, addr)) {
                        known.interface = Some(to);
                    }
                }
                Err(e) => {
                    tracing::debug!(target: "multidriver", %peer, %addr, error = %e, "route not moved")
                }
            }
        }
    }

    /// Hands the engine the inbound connections of `peer` it did not take
    /// when they opened (it did not know the peer then).
    fn adopt(&mut self, peer: PeerId, now: Timestamp) {
        if !self.engine.wants(&peer) && self.engine.route_count(&peer) == 0 {
            return;
        }
        let theirs: Vec<SwarmConnectionId> = self
            .untracked
            .iter()
            .filter(|(_, u)| u.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in theirs {
            if let Some(u) = self.untracked.remove(&id) {
                self.track_inbound(id, u.peer, &u.local, u.remote, now);
            }
        }
    }

    fn track_inbound(
        &mut self,
        connection: SwarmConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: Multiaddr,
        now: Timestamp,
    ) {
        let Some(interface) = self.interfaces.of_local(local) else {
            return;
        };
        match self.engine.handle_inbound(peer, remote, interface, now) {
            Ok(engine) => {
                self.track(connection, engine, peer);
                self.actions.push_back(ToSwarm::NotifyHandler {
                    peer_id: peer,
                    handler: NotifyHandler::One(connection),
                    event: either::Either::Left(handler::In::KeepAlive(true)),
                });
            }
            Err(err) => {
                tracing::debug!(target: "multidriver", %peer, error = %err, "inbound connection not tracked")
            }
        }
    }

    /// Battery and lifecycle changed: the profile map may pick another
    /// profile.
    pub fn set_power(&mut self, power: PowerState) {
        let now = self.now();
        self.engine.handle_power(power, now);
        self.wake();
    }

    /// A network hint from the host app (Android `NetworkCallback`, iOS
    /// `NWPathMonitor`).
    ///
    /// # Errors
    /// [`Error::Transports`] when the watcher's table is full (report a
    /// `Lost` first); nothing changes then.
    pub fn handle_hint(&mut self, hint: ConnectivityHint) -> Result<(), Error> {
        let change = self.interfaces.on_hint(hint)?;
        if let Some(change) = change {
            self.network_change(change);
        }
        self.wake();
        Ok(())
    }

    fn network_change(&mut self, change: NetworkChange) {
        let now = self.now();
        tracing::debug!(target: "multidriver", ?change, "network change");
        // Routes move off a going interface before the engine re-races its
        // peers; onto a new one only after the engine knows it.
        let going = matches!(
            change,
            NetworkChange::Down { .. } | NetworkChange::Losing { .. }
        );
        if going {
            self.refeed(now);
        }
        if let Err(e) = self.engine.handle_network_change(change, now) {
            tracing::warn!(target: "multidriver", error = %e, ?change, "network change refused");
        }
        if !going {
            self.refeed(now);
        }
    }

    fn on_address(&mut self, ip: std::net::IpAddr, prefix: u8, up: bool, name: Option<&str>) {
        match self.interfaces.on_address(ip, prefix, up, name) {
            Ok(Some(change)) => self.network_change(change),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: "multidriver", error = %e, %ip, "address ignored")
            }
        }
    }

    fn on_driver_event(&mut self, event: DriverEvent) {
        let now = self.now();
        match event {
            DriverEvent::Discovered {
                query,
                source,
                peer,
                addrs,
                signed,
                ttl,
            } => {
                if peer == self.local_peer {
                    return;
                }
                for addr in addrs {
                    // Strip a trailing `/p2p/<peer>`: routes are per peer.
                    let addr = match addr.iter().last() {
                        Some(Protocol::P2p(_)) => {
                            let mut a = addr.clone();
                            a.pop();
                            a
                        }
                        _ => addr,
                    };
                    match self.feed(peer, addr.clone(), source, signed, ttl, now) {
                        Ok(()) => {
                            if let Some(q) = query.and_then(|q| self.queries.get_mut(&q)) {
                                q.1 += 1;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(target: "multidriver", %peer, %addr, error = %e, "route refused")
                        }
                    }
                }
                self.adopt(peer, now);
            }
            DriverEvent::Finished { query, result } => {
                let Some((sent, found, source)) = self.queries.remove(&query) else {
                    return;
                };
                metrics::histogram!("multidriver_driver_answer_seconds", "driver" => source.as_str())
                    .record(sent.elapsed().as_secs_f64());
                let outcome = match result {
                    Ok(()) => {
                        tracing::debug!(target: "multidriver", %query, driver = source.as_str(), found, "driver operation succeeded");
                        QueryOutcome::Succeeded { found }
                    }
                    Err(reason) => {
                        tracing::debug!(target: "multidriver", %query, %reason, "driver operation failed");
                        QueryOutcome::Failed
                    }
                };
                self.engine.handle_query_outcome(query, outcome, now);
            }
            other => {
                tracing::debug!(target: "multidriver", event = ?other, "a driver event this adapter does not know; ignored")
            }
        }
    }

    /// Turns one engine command into swarm actions or driver calls.
    fn on_command(&mut self, command: Command) {
        tracing::trace!(target: "multidriver", ?command, "engine command");
        match command {
            Command::Dial {
                connection,
                peer,
                addr,
                interface,
            } => {
                let opts = DialOpts::peer_id(peer)
                    .addresses(vec![addr.clone()])
                    .condition(PeerCondition::Always)
                    .build();
                let medium = self.interfaces.medium(interface);
                if let Some(transport) = TransportKind::from_multiaddr(&addr) {
                    record_energy(
                        medium,
                        "dial",
                        RadioProfile::for_medium(medium).setup_energy(transport),
                    );
                }
                tracing::debug!(target: "multidriver", %peer, %addr, %interface, engine = %connection, "dial");
                self.dials.insert(
                    opts.connection_id(),
                    Dial {
                        engine: connection,
                        medium,
                        started: Instant::now(),
                    },
                );
                self.actions.push_back(ToSwarm::Dial { opts });
            }
            // libp2p cannot abort one pending dial; if it still connects,
            // the engine closes it as a duplicate.
            Command::CancelDial { .. } => {}
            Command::Advertise {
                query,
                driver,
                namespace,
                ttl,
            } => match self.driver_index(driver) {
                Some(i) => {
                    let source = self.drivers_kind(i);
                    self.queries.insert(query, (Instant::now(), 0, source));
                    self.drivers.advertise(i, query, &namespace, ttl);
                }
                None => self
                    .engine
                    .handle_query_outcome(query, QueryOutcome::Failed, self.now()),
            },
            Command::StopAdvertising { driver, namespace } => {
                if let Some(i) = self.driver_index(driver) {
                    self.drivers.stop_advertising(i, &namespace);
                }
            }
            Command::Discover {
                query,
                driver,
                namespace,
            } => match self.driver_index(driver) {
                Some(i) => {
                    let source = self.drivers_kind(i);
                    self.queries.insert(query, (Instant::now(), 0, source));
                    self.drivers.discover(i, query, &namespace);
                }
                None => self
                    .engine
                    .handle_query_outcome(query, QueryOutcome::Failed, self.now()),
            },
            Command::CancelQuery { query } => {
                self.queries.remove(&query);
                self.drivers.cancel(query);
            }
            Command::KeepAlive { connections } => {
                // One batch wakes each radio once: a promotion and a tail per
                // medium, plus each probe's bytes (32 each way, framed).
                let mut woken: Vec<Medium> = Vec::new();
                for c in &connections {
                    let Some((_, interface)) = self.engine.connection(*c) else {
                        continue;
                    };
                    let medium = self.interfaces.medium(interface);
                    let radio = RadioProfile::for_medium(medium);
                    let mut joules = radio.transfer_energy(KEEPALIVE_BYTES, KEEPALIVE_BYTES);
                    if !woken.contains(&medium) {
                        woken.push(medium);
                        joules += radio.isolated_wakeup_energy();
                    }
                    record_energy(medium, "probe", joules);
                }
                for c in connections {
                    if let Some((swarm, peer)) = self.by_engine.get(&c) {
                        self.actions.push_back(ToSwarm::NotifyHandler {
                            peer_id: *peer,
                            handler: NotifyHandler::One(*swarm),
                            event: either::Either::Left(handler::In::Probe),
                        });
                    }
                }
            }
            Command::CloseConnection { connection, reason } => {
                if let Some((swarm, peer)) = self.by_engine.remove(&connection) {
                    tracing::debug!(target: "multidriver", %peer, engine = %connection, ?reason, "close");
                    self.open.remove(&swarm);
                    self.closing.insert(swarm);
                    self.actions.push_back(ToSwarm::CloseConnection {
                        peer_id: peer,
                        connection: CloseConnection::One(swarm),
                    });
                }
            }
            other => {
                tracing::debug!(target: "multidriver", command = ?other, "a command this adapter does not know; ignored")
            }
        }
    }

    /// The position in [`DriverSet::capabilities`] of one of the engine's
    /// drivers (as an [`Event::DriverHealthChanged`] names it), e.g. to say
    /// which rendezvous point failed.
    pub fn driver_index(&self, driver: DriverId) -> Option<usize> {
        self.driver_ids.iter().position(|d| *d == driver)
    }

    fn drivers_kind(&self, index: usize) -> Source {
        self.driver_kinds
            .get(index)
            .copied()
            .unwrap_or(Source::Manual)
    }

    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RouteSelected {
                peer,
                addr,
                interface,
                ..
            } => {
                tracing::info!(target: "multidriver", %peer, %addr, %interface, "route selected");
                if let Some(since) = self.wanted_since.remove(peer) {
                    metrics::histogram!("multidriver_time_to_connect_seconds")
                        .record(since.elapsed().as_secs_f64());
                }
            }
            Event::RouteSwitched {
                peer,
                from,
                to,
                reason,
                ..
            } => {
                let label = reason.label();
                tracing::info!(target: "multidriver", %peer, %from, %to, reason = label, "route switched");
                metrics::counter!("multidriver_route_switches_total", "reason" => label)
                    .increment(1);
            }
            _ => {}
        }
    }

    fn poll_interfaces(&mut self, cx: &mut Context<'_>) {
        if !self.config.watch_interfaces {
            return;
        }
        #[cfg(target_os = "linux")]
        self.poll_links(cx);
        if self.if_watch_failed {
            return;
        }
        if self.if_watch.is_none() {
            match if_watch::tokio::IfWatcher::new() {
                Ok(w) => self.if_watch = Some(w),
                Err(e) => {
                    tracing::warn!(target: "multidriver", error = %e, "if-watch unavailable: addresses are not watched");
                    self.if_watch_failed = true;
                    return;
                }
            }
        }
        // Bounded: at most this many address events per poll.
        for _ in 0..64 {
            let Some(w) = self.if_watch.as_mut() else {
                return;
            };
            match w.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(if_watch::IfEvent::Up(net)))) => {
                    self.on_address(net.addr(), net.prefix_len(), true, None)
                }
                Poll::Ready(Some(Ok(if_watch::IfEvent::Down(net)))) => {
                    self.on_address(net.addr(), net.prefix_len(), false, None)
                }
                Poll::Ready(Some(Err(e))) => {
                    tracing::debug!(target: "multidriver", error = %e, "if-watch error")
                }
                Poll::Ready(None) => {
                    self.if_watch = None;
                    self.if_watch_failed = true;
                    return;
                }
                Poll::Pending => return,
            }
        }
        // More events than one poll takes: come back for the rest.
        cx.waker().wake_by_ref();
    }
}

#[cfg(target_os = "linux")]
impl<D: DriverSet> Behaviour<D> {
    /// A link taken down keeps its addresses (no `if-watch` event) but
    /// carries nothing: its addresses are reported gone at once, and back
    /// when the link returns.
    fn poll_links(&mut self, cx: &mut Context<'_>) {
        if self.links_failed {
            return;
        }
        if self.links.is_none() {
            match links::LinkWatcher::new() {
                Ok(w) => self.links = Some(w),
                Err(e) => {
                    tracing::warn!(target: "multidriver", error = %e, "link states unavailable: a link taken down is noticed by probes only");
                    self.links_failed = true;
                    return;
                }
            }
        }
        for _ in 0..16 {
            let Some(w) = self.links.as_mut() else {
                return;
            };
            match w.poll_next(cx) {
                Poll::Ready(Some(event)) => {
                    tracing::debug!(target: "multidriver", link = %event.name, up = event.up, "link state");
                    if event.up {
                        for (ip, prefix, name) in Interfaces::scan() {
                            if name == event.name {
                                self.on_address(ip, prefix, true, Some(&name));
                            }
                        }
                    } else {
                        for (ip, prefix) in self.interfaces.addresses_of(&event.name) {
                            self.on_address(ip, prefix, false, None);
                        }
                    }
                }
                Poll::Ready(None) => {
                    self.links = None;
                    self.links_failed = true;
                    return;
                }
                Poll::Pending => return,
            }
        }
        cx.waker().wake_by_ref();
    }
}

impl<D: DriverSet> NetworkBehaviour for Behaviour<D> {
    type ConnectionHandler = Handler<D>;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: SwarmConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.drivers
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: SwarmConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.drivers.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        Ok(handler::Handler::new(false, self.config.probe_timeout).select(inner))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: SwarmConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let theirs = self.drivers.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?;
        if self.dials.contains_key(&connection_id) {
            // The engine's own dial: exactly the address it chose.
            return Ok(Vec::new());
        }
        let Some(peer) = maybe_peer else {
            return Ok(theirs);
        };
        let mut ours: Vec<Multiaddr> = self
            .engine
            .ranked_routes(&peer, self.now())
            .into_iter()
            .map(|(a, _, _)| a)
            .collect();
        for a in theirs {
            if !ours.contains(&a) {
                ours.push(a);
            }
        }
        Ok(ours)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: SwarmConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.drivers.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        let ours = self.dials.contains_key(&connection_id);
        Ok(handler::Handler::new(ours, self.config.probe_timeout).select(inner))
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        self.drivers.on_swarm_event(event);
        let now = self.now();
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if let Some(dial) = self.dials.remove(&e.connection_id) {
                    let medium = medium_label(dial.medium);
                    metrics::counter!("multidriver_dials_total", "outcome" => "success", "medium" => medium)
                        .increment(1);
                    metrics::histogram!("multidriver_dial_duration_seconds", "medium" => medium)
                        .record(dial.started.elapsed().as_secs_f64());
                    self.track(e.connection_id, dial.engine, e.peer_id);
                    self.engine.handle_dial_succeeded(dial.engine, now);
                } else if let ConnectedPoint::Listener {
                    local_addr,
                    send_back_addr,
                } = e.endpoint
                {
                    // Only peers the engine knows or wants: a DHT neighbour
                    // querying us is not held open or probed. Others wait
                    // (bounded) until the app wants them or a route appears.
                    if self.engine.wants(&e.peer_id) || self.engine.route_count(&e.peer_id) > 0 {
                        self.track_inbound(
                            e.connection_id,
                            e.peer_id,
                            local_addr,
                            send_back_addr.clone(),
                            now,
                        );
                    } else if self.untracked.len() < self.config.engine.max_connections {
                        self.untracked.insert(
                            e.connection_id,
                            Untracked {
                                peer: e.peer_id,
                                local: local_addr.clone(),
                                remote: send_back_addr.clone(),
                            },
                        );
                    }
                }
            }
            // The swarm repeats confirmations (every AutoNAT success):
            // registrations are renewed only when the set changed.
            FromSwarm::ExternalAddrConfirmed(_) | FromSwarm::ExternalAddrExpired(_)
                if self.external.on_swarm_event(&event) =>
            {
                self.engine.handle_local_addresses_changed(now);
            }
            FromSwarm::DialFailure(f) => {
                if let Some(dial) = self.dials.remove(&f.connection_id) {
                    metrics::counter!("multidriver_dials_total", "outcome" => "failure", "medium" => medium_label(dial.medium))
                        .increment(1);
                    tracing::debug!(target: "multidriver", peer = ?f.peer_id, error = %f.error, engine = %dial.engine, "dial failed");
                    self.engine.handle_dial_failed(dial.engine, now);
                }
            }
            FromSwarm::ConnectionClosed(c) => {
                self.untracked.remove(&c.connection_id);
                if self.closing.remove(&c.connection_id) {
                    return;
                }
                if let Some(open) = self.open.remove(&c.connection_id) {
                    self.by_engine.remove(&open.engine);
                    tracing::debug!(target: "multidriver", peer = %open.peer, engine = %open.engine, cause = ?c.cause, "connection closed");
                    if is_loss(c.cause) {
                        self.engine.handle_connection_lost(open.engine, now);
                    } else {
                        self.engine.handle_connection_closed(open.engine, now);
                    }
                }
            }
            _ => {}
        }
        self.wake();
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: SwarmConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            either::Either::Left(out) => {
                let Some(open) = self.open.get(&connection_id).copied() else {
                    return;
                };
                match out {
                    handler::Out::Rtt(rtt) => {
                        metrics::counter!("multidriver_probes_total", "outcome" => "answered")
                            .increment(1);
                        let now = self.now();
                        self.engine.handle_rtt_sample(open.engine, rtt, now);
                    }
                    handler::Out::Unsupported => {
                        metrics::counter!("multidriver_probes_total", "outcome" => "unsupported")
                            .increment(1);
                        let now = self.now();
                        self.engine.handle_probe_unsupported(open.engine, now);
                        tracing::debug!(target: "multidriver", peer = %peer_id, "peer does not answer pings: liveness cannot be measured");
                    }
                    handler::Out::Failed(reason) => {
                        metrics::counter!("multidriver_probes_total", "outcome" => "failed")
                            .increment(1);
                        tracing::debug!(target: "multidriver", peer = %peer_id, %reason, "probe failed");
                    }
                }
            }
            either::Either::Right(inner) => {
                self.drivers
                    .on_connection_handler_event(peer_id, connection_id, inner)
            }
        }
        self.wake();
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Action<D>> {
        self.waker = Some(cx.waker().clone());
        self.poll_interfaces(cx);
        // Bounded: a few rounds of timer, drivers and engine per call.
        for _ in 0..16 {
            if let Some(action) = self.actions.pop_front() {
                return Poll::Ready(action);
            }
            if let Some(event) = self.engine.poll_event() {
                self.on_event(&event);
                return Poll::Ready(ToSwarm::GenerateEvent(event));
            }
            match self.drivers.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(e)) => {
                    self.on_driver_event(e);
                    continue;
                }
                Poll::Ready(other) => {
                    return Poll::Ready(
                        other
                            .map_in(either::Either::Right)
                            .map_out(|_| unreachable!("driver events are taken above")),
                    );
                }
                Poll::Pending => {}
            }
            let now = self.now();
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
            }
            let mut progressed = false;
            while self.actions.len() < self.config.max_pending_actions {
                let Some(command) = self.engine.poll_command() else {
                    break;
                };
                self.on_command(command);
                progressed = true;
            }
            if progressed || self.engine.pending_events() > 0 || !self.actions.is_empty() {
                continue;
            }
            // Idle: arm the timer for the engine's next deadline.
            let Some(deadline) = self.engine.poll_timeout() else {
                self.timer = None;
                return Poll::Pending;
            };
            if self.timer.as_ref().is_none_or(|(at, _)| *at != deadline) {
                let wait = deadline.saturating_duration_since(now);
                self.timer = Some((deadline, Delay::new(wait)));
            }
            if let Some((_, delay)) = self.timer.as_mut()
                && delay.poll_unpin(cx).is_pending()
            {
                return Poll::Pending;
            }
            self.timer = None;
        }
        // More work than one call should do: come back at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl<D: DriverSet> Behaviour<D> {
    fn track(&mut self, swarm: SwarmConnectionId, engine: ConnectionHandle, peer: PeerId) {
        self.open.insert(swarm, Open { engine, peer });
        self.by_engine.insert(engine, (swarm, peer));
    }

    /// The medium of one of the engine's interfaces (as named in an
    /// [`Event`]).
    pub fn interface_medium(&self, interface: InterfaceId) -> Medium {
        self.interfaces.medium(interface)
    }

    /// The interface the engine would use for a route to `addr`.
    pub fn interface_for(&mut self, addr: &Multiaddr) -> Option<InterfaceId> {
        self.interfaces.route(addr)
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use libp2p::swarm::ConnectionError;

    use super::is_loss;

    #[test]
    fn losses_are_found_however_deep_the_muxer_wrapped_them() {
        let wrapped = |e: io::Error| ConnectionError::IO(io::Error::other(io::Error::other(e)));
        assert!(is_loss(Some(&wrapped(io::ErrorKind::BrokenPipe.into()))));
        assert!(is_loss(Some(&wrapped(
            io::ErrorKind::ConnectionReset.into()
        ))));
        assert!(is_loss(Some(&ConnectionError::IO(io::Error::other(
            "connection timed out (idle)"
        )))));
        // A deliberate close, an idle timeout of our own, nothing at all.
        assert!(!is_loss(Some(&wrapped(io::Error::other(
            "connection is closed"
        )))));
        assert!(!is_loss(Some(&ConnectionError::KeepAliveTimeout)));
        assert!(!is_loss(None));
    }
}
