//! The libp2p adapter: [`Behaviour`], one `NetworkBehaviour` that runs the
//! engine core over a real swarm.
//!
//! It is a thin layer over [`crate::core::Engine`]:
//!
//! - the core's [`Command::Dial`](crate::core::Command::Dial)s become `ToSwarm::Dial` with one address
//!   each and `PeerCondition::Always` (the core races several routes to one
//!   peer, and dials a better route while the peer is connected), and their
//!   `ConnectionHandle`s are tracked so outcomes reach the core;
//! - a dial the core did not order (the app's `swarm.dial(peer_id)`, a
//!   driver's) is answered in `handle_pending_outbound_connection` with the
//!   core's ranked addresses for the peer, best first;
//! - each connection's handler sends probes when the core asks
//!   ([`Command::KeepAlive`](crate::core::Command::KeepAlive)) on our own
//!   protocol, [`PROBE_PROTOCOL`] (falling back to `/ipfs/ping/1.0.0` for a
//!   peer that does not speak it), answers the remote's, and its RTT
//!   feeds the core; connections the core holds are kept alive, its losers
//!   closed with `ToSwarm::CloseConnection`;
//! - the discovery [`DriverSet`] (a Kademlia DHT, rendezvous points, mDNS:
//!   `multidriver-routing` has them) runs inside it and answers the core's
//!   advertise and discover commands; routes from an app's own discovery
//!   behaviours come in through [`Behaviour::handle_driver_event`];
//! - local addresses from `if-watch`, link states from netlink on Linux (a
//!   link taken down keeps its IPv4 addresses, so only its state tells),
//!   and the host's [`ConnectivityHint`](crate::transports::connectivity::ConnectivityHint)s are the core's network-change
//!   input; the interface of a route is the one the kernel's routing table
//!   picks for its address;
//! - the core's events are the behaviour's [`Event`]s, with the swarm's own
//!   `ConnectionId`s.
//!
//! # With the rest of the swarm
//!
//! - **Ping**: the handler answers `/ipfs/ping/1.0.0` unless the app runs
//!   its own `ping::Behaviour` and says so with
//!   [`Config::with_ping_answers`]`(false)` (one handler per protocol).
//!   Pings keep nothing alive; a connection is held open while the core
//!   holds it or while the remote's engine probes it on our protocol.
//! - **Idle connection timeout**: every connection the core does not hold
//!   follows it (the transport stack uses libp2p's 10 s).
//! - **Smart dialing** (`SwarmBuilder::with_smart_dial`, libp2p's ranking of
//!   a dial's addresses by IP family and transport): turn it **off**. The
//!   core already dials one address at a time in its own ranked, staggered
//!   race; smart dialing would re-sort the addresses of a dial the core did
//!   not order and put its QUIC-before-TCP delays in front of the route the
//!   core measured as fastest.
//! - **Connection choice**: other behaviours pick their own connection to
//!   a peer (request-response: request id modulo the peer's open
//!   connections; gossipsub: the oldest). They use the core's choice once it
//!   is the only connection; during a make-before-break switch both are open
//!   for the core's grace period.
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
//! The crate root has a full example with the drivers and the transport
//! stack; `examples/chat` is a complete app.
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
//! `multidriver_probes_total{outcome}`, `multidriver_hole_punches_total{outcome}`
//! (with the `relay` feature), `multidriver_reservation_keepalives_total`
//! (pings that hold the NAT binding of a relay reservation's connection),
//! and
//! `multidriver_modelled_energy_millijoules_total{medium, activity}`: the
//! radio energy `multidriver_scoring::energy` models for each dial (a
//! promotion and the handshake's bytes) and each probe batch (one wake-up
//! per radio, the probes' bytes), not a measurement. Decisions are `tracing` events under
//! the `multidriver` target; no subscriber is installed.

mod commands;
mod config;
mod counters;
mod event;
mod handler;
mod interfaces;
#[cfg(target_os = "linux")]
mod links;
#[cfg(feature = "relay")]
mod nat;
mod network;
mod reach;
mod routes;
mod swarm;

use std::collections::{HashMap, HashSet, VecDeque};
use std::task::Waker;
use std::time::{Duration, Instant};

use futures_timer::Delay;
use libp2p::swarm::handler::ConnectionHandlerSelect;
use libp2p::swarm::{ConnectionId as SwarmConnectionId, THandler, THandlerInEvent, ToSwarm};
use libp2p::{Multiaddr, PeerId};
use multidriver_scoring::{Medium, Source, Timestamp};

pub use config::Config;
pub use event::Event;
pub use handler::{
    Handler as ProbeHandler, In as ProbeIn, Out as ProbeOut, PING_PROTOCOL, PROBE_PROTOCOL,
    ProbeListen, ProbeUpgrade,
};
use interfaces::Interfaces;

use crate::Error;
use crate::core::{ConnectionHandle, DriverId, Engine, InterfaceId, QueryId};
pub use crate::core::{ImportReport, RouteMemory};
pub use multidriver_routing::{DriverEvent, DriverSet};

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
    /// Outbound connections the engine did not order (another behaviour's
    /// dial, a hole punch's), by peer and remote address, so that a hole
    /// punch's can be handed to the engine. Bounded by `max_connections`.
    unordered: HashMap<SwarmConnectionId, (PeerId, Multiaddr)>,
    /// The swarm's confirmed external addresses.
    external: libp2p::swarm::ExternalAddresses,
    /// Reservations the engine asked for, by relay; bounded by the engine
    /// config's `max_relays`.
    reservations: HashMap<PeerId, reach::Reservation>,
    /// The swarm refused a relayed listener: no relay transport, so no
    /// relay is offered to the engine any more.
    no_relay_transport: bool,
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

impl<D: DriverSet> Behaviour<D> {
    /// A behaviour for the swarm of `local_peer`, running `drivers`.
    ///
    /// # Errors
    /// [`Error::Core`] with the core's `InvalidConfig` for an engine
    /// configuration that does not validate, or its `TableFull` for more
    /// drivers than `max_drivers`.
    pub fn new(local_peer: PeerId, config: Config, drivers: D) -> Result<Self, Error> {
        let mut engine = Engine::new(config.engine.clone())?;
        let mut driver_ids = Vec::new();
        let mut driver_kinds = Vec::new();
        for caps in drivers.capabilities() {
            driver_ids.push(engine.register_driver(caps, Timestamp::ZERO)?);
            driver_kinds.push(caps.kind);
        }
        let mut behaviour = Behaviour {
            interfaces: Interfaces::new(config.engine.max_interfaces(), config.max_route_lookups),
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
            unordered: HashMap::new(),
            reservations: HashMap::new(),
            no_relay_transport: false,
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

    pub(crate) fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.start.elapsed())
    }

    pub(crate) fn wake(&mut self) {
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
        // Connections the peer opened before the app wanted it go to the
        // engine first: it then holds the peer as connected instead of
        // racing its routes (and reporting it unreachable with none).
        self.adopt_untracked(peer, now);
        self.engine.connect(peer, now)?;
        if self.wanted_since.len() < self.config.engine.max_peers() {
            self.wanted_since.entry(peer).or_insert_with(Instant::now);
        }
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
    /// Call it for every message: a peer not used for the profile's
    /// `quiet.after_s` is quiet (no timed probes, not redialled when its
    /// connection closes until the next use).
    pub fn mark_used(&mut self, peer: PeerId) {
        let now = self.now();
        self.engine.mark_used(peer, now);
        self.wake();
    }

    /// The position in [`DriverSet::capabilities`] of one of the engine's
    /// drivers (as an [`Event::DriverHealthChanged`] names it), e.g. to say
    /// which rendezvous point failed.
    pub fn driver_index(&self, driver: DriverId) -> Option<usize> {
        self.driver_ids.iter().position(|d| *d == driver)
    }

    pub(crate) fn drivers_kind(&self, index: usize) -> Source {
        self.driver_kinds
            .get(index)
            .copied()
            .unwrap_or(Source::Manual)
    }

    pub(crate) fn track(
        &mut self,
        swarm: SwarmConnectionId,
        engine: ConnectionHandle,
        peer: PeerId,
    ) {
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

    /// What the engine learned (routes with their measurements, relays,
    /// reachability; see [`RouteMemory`]), stamped with the wall-clock
    /// time, for the app to store before it stops
    /// ([`RouteMemory::to_bytes`]) and give to
    /// [`import_memory`](Self::import_memory) at its next start.
    ///
    /// ```
    /// use multidriver::RouteMemory;
    /// use multidriver::behaviour::{Behaviour, DriverSet};
    ///
    /// // Before the app stops:
    /// fn save<D: DriverSet>(multidriver: &Behaviour<D>) -> Vec<u8> {
    ///     multidriver.export_memory().to_bytes()
    /// }
    ///
    /// // At its next start, before it asks for peers: the remembered best
    /// // route of each is dialled at once, without waiting for discovery.
    /// fn restore<D: DriverSet>(
    ///     multidriver: &mut Behaviour<D>,
    ///     stored: &[u8],
    /// ) -> Result<(), multidriver::Error> {
    ///     let memory = RouteMemory::from_bytes(stored)?;
    ///     let report = multidriver.import_memory(&memory)?;
    ///     println!("{} routes to {} peers remembered", report.routes + report.waiting, report.peers);
    ///     Ok(())
    /// }
    /// ```
    pub fn export_memory(&self) -> RouteMemory {
        let memory = self.engine.export_memory(self.now());
        match unix_ms() {
            Some(t) => memory.with_saved_at_unix_ms(t),
            None => memory,
        }
    }

    /// Takes a memory from [`export_memory`](Self::export_memory) (see
    /// [`Engine::import_memory`]), aged first by the wall-clock time since
    /// it was exported, so that routes whose lifetime passed while the app
    /// was down stay out. Imported routes go over an interface of the
    /// medium they were remembered with, not through the kernel's routing
    /// table, and do not follow their address to another interface as
    /// routes from the drivers do.
    ///
    /// # Errors
    /// As [`Engine::import_memory`].
    pub fn import_memory(&mut self, memory: &RouteMemory) -> Result<ImportReport, Error> {
        // A clock that went backwards counts as no time down.
        let down = memory
            .saved_at_unix_ms()
            .zip(unix_ms())
            .map_or(Duration::ZERO, |(saved, now)| {
                Duration::from_millis(now.saturating_sub(saved))
            });
        let now = self.now();
        let report = self.engine.import_memory(&memory.aged(down), now)?;
        self.wake();
        Ok(report)
    }
}

/// The wall clock in milliseconds since the Unix epoch, if it is after it.
fn unix_ms() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| u64::try_from(d.as_millis()).ok())
}
