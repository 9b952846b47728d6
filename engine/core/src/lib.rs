//! The sans-IO engine core: one deterministic state machine that decides
//! which routes to dial, when, and when to move a peer to another route.
//!
//! It never reads the clock, opens a socket or spawns a task. Inputs are
//! `handle_*(…, now)` calls (and [`Engine::connect`] / [`Engine::disconnect`]
//! from the app); outputs are drained with [`Engine::poll_command`] and
//! [`Engine::poll_event`]; [`Engine::poll_timeout`] says when to call
//! [`Engine::handle_timeout`] next. Every [`Command::Dial`] carries a
//! [`ConnectionHandle`] that its outcome echoes. The libp2p `Behaviour` and the
//! simulator are thin adapters that turn these into real or simulated dials.
//!
//! # What it does
//!
//! - Routes per peer from any driver, with provenance, TTL expiry and a cap
//!   per peer; peers capped in total.
//! - Racing dialer: ranks a peer's dialable routes under the profile, dials
//!   the best at once and the next after the leader's expected handshake
//!   time, fast-forwards when an attempt fails, takes the first connection,
//!   cancels the rest (or keeps one warm backup when the profile asks).
//!   Routes discovered mid-race join the race in rank order. Attempts are
//!   bounded per peer and in total, and time out.
//! - Route maintenance: dial outcomes and RTT samples feed the estimator;
//!   a clearly better route (hysteresis) is connected, promoted, and the old
//!   connection closed after a grace period (make-before-break).
//! - Network changes: an interface going down kills its routes, closes its
//!   connections and re-races their peers at once; an interface warned as
//!   losing moves its peers away make-before-break; an interface coming up
//!   flushes the RTT history of its routes and lets peers upgrade to it; a
//!   change of conditions re-ranks.
//!
//! - Discovery drivers: a registry of driver instances with declared
//!   capabilities; advertise and discover per namespace fanned out to the
//!   drivers the [`DriverSchedule`] allows in the current lifecycle and
//!   battery state, LAN drivers only while a LAN exists and internet drivers
//!   only over a validated interface; re-advertising at 4/5 of the TTL and at
//!   once when local addresses change; per-driver health (answer latency,
//!   outcomes) with exponential backoff and jitter, so several rendezvous
//!   points fail over to each other; DHT-less operation is just a set of
//!   drivers without a DHT.
//! - Power: a [`ProfileMap`] selects the profile from lifecycle, battery and
//!   charging.
//! - A connection manager: low/high watermarks, a grace period for new
//!   connections, protected and recently used peers, lowest value first.
//!
//! - Keep-alives on cellular links are batched ([`Command::KeepAlive`]) so
//!   one radio wake-up per interval serves every connection; the interval
//!   follows the profile (30 s balanced, 60 s battery-saver, 120 s
//!   background). High-energy drivers (a DHT) stay off while every validated
//!   link is metered.
//!
//! - Liveness ([`Config::liveness`], on by default): connections are probed
//!   (batched on cellular, a heartbeat elsewhere, riding on app traffic
//!   reported with [`Engine::mark_used`]); an unanswered probe closes the
//!   connection and re-races the peer at once. A connection that the adapter
//!   saw die ([`Engine::handle_connection_lost`]) penalises every route to
//!   that host over that interface.
//!
//! - Rechecks ([`Config::recheck`]): a connected peer tries again, make-
//!   before-break, a better route that failed (5 s after the failure,
//!   doubling up to [`Config::max_recheck`] while tries keep failing), so it
//!   returns to a path that recovered without any network event.
//!
//! - Subscriptions: [`Engine::subscribe`] looks a namespace up again every
//!   [`DriverSchedule::interval`] of the lifecycle state (30 s in the
//!   foreground, 5 min in the background, none while suspended); once one
//!   driver answered with routes, the others' lookups are cancelled when the
//!   profile says so (`racing.cancel_slower_discovery`).
//!
//! - NATs: relayed routes race beside direct ones while a peer's direct
//!   routes are unproven, a hole-punched connection replaces a relayed one
//!   make-before-break, and failed punches back off (the `nat` module); the
//!   node's own [`Reachability`] decides whether it holds a relay
//!   reservation ([`Command::Reserve`]), renewed after a network change
//!   (the `reach` module).
//!
//! # Example: driving it by hand
//!
//! ```
//! use std::time::Duration;
//! use multidriver_core::{Command, Config, Discovered, Engine, Event, InterfaceId, NetworkChange};
//! use multidriver_scoring::{Medium, NetworkConditions, Source, Timestamp};
//!
//! let mut engine = Engine::new(Config::default())?;
//! let wifi = InterfaceId(1);
//! let t0 = Timestamp::ZERO;
//! engine.handle_network_change(
//!     NetworkChange::Up { interface: wifi, medium: Medium::Wifi, conditions: NetworkConditions::default(), validated: true },
//!     t0,
//! )?;
//!
//! // A driver found the peer on the LAN; the app wants to talk to it.
//! let peer = libp2p_identity::PeerId::random();
//! engine.handle_discovered(
//!     Discovered {
//!         peer,
//!         addr: "/ip4/192.168.1.20/udp/4001/quic-v1".parse()?,
//!         interface: wifi,
//!         source: Source::Mdns,
//!         signed: false,
//!         ttl: Duration::from_secs(360),
//!     },
//!     t0,
//! )?;
//! engine.connect(peer, t0)?;
//!
//! // The engine asks for a dial; the adapter performs it and reports back.
//! let Some(Command::Dial { connection, .. }) = engine.poll_command() else { panic!("a dial") };
//! engine.handle_dial_succeeded(connection, t0 + Duration::from_millis(12));
//!
//! assert!(matches!(engine.poll_event(), Some(Event::PeerDiscovered { .. })));
//! assert!(matches!(engine.poll_event(), Some(Event::RouteSelected { .. })));
//! // Next: a liveness probe of the new connection, one heartbeat later.
//! let heartbeat = multidriver_core::Liveness::default().heartbeat();
//! assert_eq!(engine.poll_timeout(), Some(t0 + Duration::from_millis(12) + heartbeat));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod conn_manager;
mod connections;
mod discovery;
mod error;
mod keepalive;
mod memory;
mod messages;
mod nat;
mod network;
mod peers;
mod race;
mod reach;
mod schedule;
mod switching;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::{
    Context, LinkConditions, Medium, NetworkConditions, PowerState, Profile, Route, SwitchGuard,
    Timestamp,
};

pub use config::{Config, Liveness};
pub use discovery::{MAX_NAMESPACE_LEN, MIN_ADVERT_TTL};
pub use error::Error;
pub use keepalive::{RIDE_WINDOW, UDP_BINDING_KEEPALIVE};
pub use memory::{
    ImportReport, MEMORY_MAGIC, MEMORY_MAX_ADDR_BYTES, MEMORY_MAX_PEERS, MEMORY_MAX_RELAYS,
    MEMORY_MAX_ROUTES, MEMORY_VERSION, RememberedPeer, RememberedPunch, RememberedRelay,
    RememberedRoute, RememberedSighting, RouteMemory,
};
pub use messages::{
    CloseReason, Command, ConnectionHandle, Discovered, DriverCaps, DriverId, EnergyClass, Event,
    InterfaceId, NetworkChange, QueryId, QueryOutcome, Reach, SwitchReason,
};
pub use nat::{PUNCH_BACKOFF_BASE, PUNCH_BACKOFF_MAX, RELAYS_AHEAD};
pub use reach::{Reachability, ReservationState};
pub use schedule::{DriverSchedule, ProfileMap};

/// A route's number within its peer; stable while the route exists.
type RouteNo = u32;

#[derive(Debug, Clone)]
struct Interface {
    medium: Medium,
    conditions: NetworkConditions,
    validated: bool,
    up: bool,
    losing: bool,
}

#[derive(Debug, Clone)]
struct RouteMeta {
    no: RouteNo,
    interface: InterfaceId,
    expires: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Purpose {
    /// Get the peer connected.
    Connect,
    /// Replace the primary connection.
    Upgrade {
        reason: SwitchReason,
        /// Dial only this route.
        only: Option<RouteNo>,
        /// Never dial through this interface.
        avoid: Option<InterfaceId>,
    },
}

#[derive(Debug, Clone)]
struct Race {
    purpose: Purpose,
    tried: Vec<RouteNo>,
    in_flight: Vec<ConnectionHandle>,
    /// When the next attempt may start.
    next_due: Timestamp,
    /// When the race wants to be woken (`None` while it waits for an
    /// outcome or for capacity).
    wake: Option<Timestamp>,
}

#[derive(Debug, Clone)]
struct Peer {
    routes: Vec<Route>,
    meta: Vec<RouteMeta>,
    next_route_no: RouteNo,
    wanted: bool,
    primary: Option<ConnectionHandle>,
    backup: Option<ConnectionHandle>,
    race: Option<Race>,
    guard: SwitchGuard<RouteNo>,
    guard_until: Option<Timestamp>,
    /// The route the peer lost, to report the switch once a new one is up.
    lost: Option<(Multiaddr, SwitchReason)>,
    wake: Option<Timestamp>,
    last_touch: u64,
    /// Protected from trimming by the app.
    protected: bool,
    /// When the app last reported using the peer.
    last_used: Option<Timestamp>,
    /// Wanted but left unconnected while the app is quiet: its connection
    /// closed or was lost while the peer was quiet (see
    /// [`Quiet`](multidriver_scoring::profile::Quiet)), and it is dialled
    /// again only when the app next uses it.
    dormant: bool,
    /// When a better route that failed is tried again (see
    /// [`Config::recheck`]), the wait that led there, and when the last
    /// try was made.
    recheck_at: Option<Timestamp>,
    recheck_wait: Duration,
    recheck_tried: Option<Timestamp>,
    /// Hole punches to the peer that failed, by the local interface (its
    /// NAT): failures in a row and when direct routes through it are
    /// tried again (see [`Engine::handle_hole_punch_failed`]).
    punch_backoff: BTreeMap<InterfaceId, (u32, Timestamp)>,
}

impl Peer {
    fn new(touch: u64) -> Self {
        Peer {
            routes: Vec::new(),
            meta: Vec::new(),
            next_route_no: 0,
            wanted: false,
            primary: None,
            backup: None,
            race: None,
            guard: SwitchGuard::new(),
            guard_until: None,
            lost: None,
            wake: None,
            last_touch: touch,
            protected: false,
            last_used: None,
            dormant: false,
            recheck_at: None,
            recheck_wait: Duration::ZERO,
            recheck_tried: None,
            punch_backoff: BTreeMap::new(),
        }
    }

    fn index_of(&self, no: RouteNo) -> Option<usize> {
        self.meta.iter().position(|m| m.no == no)
    }
}

#[derive(Debug, Clone)]
struct Attempt {
    peer: PeerId,
    route: RouteNo,
    started: Timestamp,
}

#[derive(Debug, Clone)]
struct Conn {
    peer: PeerId,
    /// The route it runs over; `None` for an inbound connection.
    route: Option<RouteNo>,
    addr: Multiaddr,
    interface: InterfaceId,
    opened: Timestamp,
    /// Last time an answer proved the connection alive (an RTT sample).
    last_traffic: Timestamp,
    /// When the last probe was asked.
    last_probe: Option<Timestamp>,
    /// The deadline of an unanswered probe.
    probe_due: Option<Timestamp>,
    /// The remote does not answer probes: none are sent, and its liveness
    /// is left to the transport.
    unprobeable: bool,
}

impl Conn {
    /// A connection that opened at `now` (the handshake proved it alive).
    fn new(
        peer: PeerId,
        route: Option<RouteNo>,
        addr: Multiaddr,
        interface: InterfaceId,
        now: Timestamp,
    ) -> Self {
        Conn {
            peer,
            route,
            addr,
            interface,
            opened: now,
            last_traffic: now,
            last_probe: None,
            probe_due: None,
            unprobeable: false,
        }
    }
}

/// Commands for the adapter, bounded by [`Config::max_pending_commands`].
#[derive(Debug, Clone)]
struct CommandQueue {
    queue: VecDeque<Command>,
    /// Dropped at the bound, in all.
    dropped: u64,
    bound: usize,
}

impl CommandQueue {
    /// Queues a command. At the bound the oldest command whose work ends by
    /// a deadline of its own is dropped (see
    /// [`Config::max_pending_commands`]); only when every waiting command is
    /// one without (reservations, releases, closes) does the oldest of
    /// those go.
    fn push(&mut self, command: Command) {
        if self.queue.len() >= self.bound {
            let at = self.queue.iter().position(|c| !Self::kept(c)).unwrap_or(0);
            self.queue.remove(at);
            self.dropped += 1;
        }
        self.queue.push_back(command);
    }

    /// Commands with no deadline behind them: dropping one would leave a
    /// relay requested, or a reservation, an advertisement or a connection
    /// on the adapter's side that the engine has let go.
    fn kept(command: &Command) -> bool {
        matches!(
            command,
            Command::Reserve { .. }
                | Command::Unreserve { .. }
                | Command::StopAdvertising { .. }
                | Command::CloseConnection { .. }
        )
    }
}

/// The engine core. See the [module docs](self).
///
/// It is `Clone`: a copy is an independent engine in the same state (the
/// simulator and benchmarks use that to branch a run).
#[derive(Debug, Clone)]
pub struct Engine {
    config: Config,
    profile: Profile,
    power: PowerState,
    interfaces: BTreeMap<InterfaceId, Interface>,
    peers: BTreeMap<PeerId, Peer>,
    /// Peers by wake-up time.
    wakes: BTreeSet<(Timestamp, PeerId)>,
    /// Peers whose race waits for capacity.
    blocked: BTreeSet<PeerId>,
    attempts: BTreeMap<ConnectionHandle, Attempt>,
    connections: BTreeMap<ConnectionHandle, Conn>,
    /// Replaced connections closing after the grace period.
    closing: BTreeMap<ConnectionHandle, Timestamp>,
    commands: CommandQueue,
    events: VecDeque<Event>,
    dropped_events: u64,
    next_id: u64,
    touch: u64,
    drivers: discovery::DriverRegistry,
    /// The latest `now` of any input, to tell passed deadlines from future
    /// ones in `poll_timeout`.
    last_now: Timestamp,
    /// When due re-advertisements were last looked at (`schedule_drivers`):
    /// a deadline up to then that did not run waits for capacity; a later
    /// one is still due, even when an input moved `last_now` past it.
    drivers_checked: Timestamp,
    /// When the connection manager last trimmed: a grace period that ended
    /// after that is still to be looked at.
    trim_checked: Timestamp,
    /// When the next batch of cellular keep-alives is due.
    next_keepalive: Option<Timestamp>,
    next_heartbeat: Option<Timestamp>,
    /// No probe deadline is earlier than this (a lower bound: a probe
    /// answered since leaves it early, costing one spurious wake-up).
    next_probe_due: Option<Timestamp>,
    /// Reachability and the relays this node may reserve on.
    relays: reach::Relays,
    /// When the next keep-alive of the connections holding relay
    /// reservations is due (their NAT bindings).
    next_binding: Option<Timestamp>,
    /// When each interface's radio last carried a packet the engine knows
    /// of: work started soon after rides on that wake-up (at most one entry
    /// per interface).
    last_packet: BTreeMap<InterfaceId, Timestamp>,
    /// Imported routes waiting for an interface, and imported confirmation
    /// times (see the `memory` module).
    memory: memory::MemoryState,
}

impl Engine {
    /// An engine with no interfaces, peers or connections.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] or [`Error::Scoring`] if `config` is invalid.
    pub fn new(config: Config) -> Result<Self, Error> {
        let command_bound = config.max_pending_commands;
        config.validate()?;
        let config_seed = config.seed;
        Ok(Engine {
            profile: config.profile.clone(),
            config,
            power: PowerState::MAINS,
            interfaces: BTreeMap::new(),
            peers: BTreeMap::new(),
            wakes: BTreeSet::new(),
            blocked: BTreeSet::new(),
            attempts: BTreeMap::new(),
            connections: BTreeMap::new(),
            closing: BTreeMap::new(),
            commands: CommandQueue {
                queue: VecDeque::new(),
                dropped: 0,
                bound: command_bound,
            },
            events: VecDeque::new(),
            dropped_events: 0,
            next_id: 0,
            touch: 0,
            drivers: discovery::DriverRegistry::new(config_seed),
            last_now: Timestamp::ZERO,
            drivers_checked: Timestamp::ZERO,
            trim_checked: Timestamp::ZERO,
            next_keepalive: None,
            next_heartbeat: None,
            next_probe_due: None,
            relays: reach::Relays::default(),
            next_binding: None,
            last_packet: BTreeMap::new(),
            memory: memory::MemoryState::default(),
        })
    }

    // ------------------------------------------------------------------
    // Outputs
    // ------------------------------------------------------------------

    /// The next command for the adapter. Drain after every input: a host
    /// that does, never loses one. A host that does not poll finds at most
    /// [`Config::max_pending_commands`] waiting: past that bound the oldest
    /// is dropped and counted ([`Engine::dropped_commands`]).
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.queue.pop_front()
    }

    /// Commands dropped because the host let [`Config::max_pending_commands`]
    /// pile up, since the engine was made.
    pub fn dropped_commands(&self) -> u64 {
        self.commands.dropped
    }

    /// The next event for the app (see [`Config::max_pending_events`]).
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.dropped_events > 0 {
            let count = std::mem::take(&mut self.dropped_events);
            return Some(Event::EventsDropped { count });
        }
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next, if
    /// anything is scheduled. An instant already passed (a deadline an
    /// input moved the clock past before its timeout was delivered) means
    /// now.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let attempts = self
            .attempts
            .values()
            .map(|a| a.started + self.config.dial_timeout)
            .min();
        let closing = self.closing.values().copied().min();
        let peers = self.wakes.first().map(|(t, _)| *t);
        let drivers = self.drivers_next_timeout();
        let conn_manager = self.conn_manager_next_timeout();
        [
            attempts,
            closing,
            peers,
            drivers,
            conn_manager,
            self.next_keepalive,
            self.next_binding,
            self.liveness_next_timeout(),
            self.relays.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ------------------------------------------------------------------
    // Inputs
    // ------------------------------------------------------------------

    /// Sets the scoring profile (the app's or the lifecycle mapping's
    /// choice) and re-evaluates connected peers.
    ///
    /// # Errors
    /// [`Error::Scoring`] if the profile is invalid; the old one stays.
    pub fn set_profile(&mut self, profile: Profile, now: Timestamp) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        profile.validate()?;
        self.profile = profile;
        self.reevaluate_all(now);
        Ok(())
    }

    /// The profile in force.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Updates the device's power state and app lifecycle: with a
    /// [`ProfileMap`] the profile follows it, the driver schedule changes
    /// which drivers run (registrations of drivers that may no longer run are
    /// withdrawn), and routes are re-ranked.
    pub fn handle_power(&mut self, power: PowerState, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        self.power = power;
        if let Some(map) = &self.config.profile_map {
            self.profile = map.select(power).clone();
        }
        self.schedule_drivers(now);
        self.reschedule_subscriptions(now);
        self.reevaluate_all(now);
        self.reschedule_heartbeat(now);
    }

    /// Time passed: attempts time out, replaced connections close, races
    /// start their next attempts, pending switches are decided, routes
    /// expire.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        self.drivers_timeout(now);
        self.keepalive_timeout(now);
        self.reservations_timeout(now);
        let timed_out: Vec<ConnectionHandle> = self
            .attempts
            .iter()
            .filter(|(_, a)| a.started + self.config.dial_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in timed_out {
            if let Some(attempt) = self.attempts.remove(&id) {
                self.commands.push(Command::CancelDial { connection: id });
                self.record_failure(&attempt, id, now);
            }
        }
        let due: Vec<ConnectionHandle> = self
            .closing
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.closing.remove(&id);
            if self.connections.remove(&id).is_some() {
                self.commands.push(Command::CloseConnection {
                    connection: id,
                    reason: CloseReason::Replaced,
                });
            }
        }
        // Each due peer is handled once per call, so this ends even if a
        // peer were to ask for `now` again.
        let due: Vec<(Timestamp, PeerId)> = self
            .wakes
            .iter()
            .take_while(|(t, _)| *t <= now)
            .copied()
            .collect();
        for (t, peer) in due {
            self.wakes.remove(&(t, peer));
            if let Some(p) = self.peers.get_mut(&peer) {
                p.wake = None;
            }
            self.expire_routes(peer, now);
            self.progress(peer, now);
        }
        self.release_capacity(now);
        self.trim(now);
        // What the dials above woke up, the pending work rides on.
        self.piggyback(now, None);
    }

    // ------------------------------------------------------------------
    // Introspection (for adapters, tests and tools)
    // ------------------------------------------------------------------

    /// The peer's primary connection, if it is connected.
    pub fn primary(&self, peer: &PeerId) -> Option<ConnectionHandle> {
        self.peers.get(peer).and_then(|p| p.primary)
    }

    /// Whether the app wants `peer` connected ([`Engine::connect`]).
    pub fn wants(&self, peer: &PeerId) -> bool {
        self.peers.get(peer).is_some_and(|p| p.wanted)
    }

    /// Dial attempts in flight.
    pub fn attempts_in_flight(&self) -> usize {
        self.attempts.len()
    }

    /// Dial attempts in flight for one peer.
    pub fn attempts_in_flight_for(&self, peer: &PeerId) -> usize {
        self.attempts.values().filter(|a| a.peer == *peer).count()
    }

    /// Peers tracked.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Routes tracked for a peer.
    pub fn route_count(&self, peer: &PeerId) -> usize {
        self.peers.get(peer).map_or(0, |p| p.routes.len())
    }

    /// Open connections tracked.
    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// The open connections the engine tracks, in id order.
    pub fn connections(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.connections.keys().copied()
    }

    /// The address and interface of a connection.
    pub fn connection(&self, connection: ConnectionHandle) -> Option<(&Multiaddr, InterfaceId)> {
        self.connections
            .get(&connection)
            .map(|c| (&c.addr, c.interface))
    }

    /// A route's smoothed RTT and how many samples it rests on (probes,
    /// and a provisional one from the handshake), for tools and tests;
    /// `None` if the peer has no route to `addr`.
    pub fn route_rtt(&self, peer: &PeerId, addr: &Multiaddr) -> Option<(Duration, u32)> {
        let p = self.peers.get(peer)?;
        let r = p.routes.iter().find(|r| r.id.addr == *addr)?;
        Some((r.rtt.srtt(), r.rtt.samples()))
    }

    /// The peer's routes that may be dialled `now`, best first, with their
    /// interface and modelled cost in milliseconds: what the racing dialer
    /// would try, in its order. An adapter answers a dial it did not order
    /// (the app dialling a peer by id) with these addresses.
    pub fn ranked_routes(
        &self,
        peer: &PeerId,
        now: Timestamp,
    ) -> Vec<(Multiaddr, InterfaceId, f64)> {
        let Some(p) = self.peers.get(peer) else {
            return Vec::new();
        };
        self.candidates(p, now)
            .into_iter()
            .filter_map(|(no, _, cost)| {
                let i = p.index_of(no)?;
                Some((p.routes[i].id.addr.clone(), p.meta[i].interface, cost))
            })
            .collect()
    }

    /// Events waiting to be polled.
    pub fn pending_events(&self) -> usize {
        self.events.len()
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    pub(crate) fn new_id(&mut self) -> ConnectionHandle {
        self.next_id += 1;
        ConnectionHandle(self.next_id)
    }

    pub(crate) fn interface_mut(&mut self, id: InterfaceId) -> Result<&mut Interface, Error> {
        self.interfaces
            .get_mut(&id)
            .ok_or(Error::UnknownInterface(id))
    }

    pub(crate) fn push_event(&mut self, event: Event) {
        if self.events.len() >= self.config.max_pending_events {
            self.events.pop_front();
            self.dropped_events += 1;
        }
        self.events.push_back(event);
    }

    pub(crate) fn links(&self) -> LinkConditions {
        let mut links = LinkConditions::all_free();
        for i in self.interfaces.values().filter(|i| i.up) {
            links.set(i.medium, i.conditions);
        }
        links
    }

    pub(crate) fn context<'a>(&'a self, links: &'a LinkConditions, now: Timestamp) -> Context<'a> {
        Context {
            profile: &self.profile,
            links,
            power: self.power,
            now,
        }
    }

    /// Recomputes when the peer wants to be woken: its race's next attempt,
    /// a pending switch decision, or its next route expiry.
    pub(crate) fn refresh_wake(&mut self, peer_id: PeerId, now: Timestamp) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let race = peer.race.as_ref().and_then(|r| r.wake);
        let expiry = peer.meta.iter().map(|m| m.expires).min();
        // A hole-punch backoff ending lets held-back routes be dialled.
        let punch = peer
            .punch_backoff
            .values()
            .map(|(_, until)| *until)
            .filter(|t| *t > now)
            .min();
        // Whatever was due by `now` has just been handled: only later times
        // count, so a stale deadline can never make the adapter spin.
        let wake = [race, peer.guard_until, expiry, peer.recheck_at, punch]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .min();
        if peer.wake != wake {
            if let Some(old) = peer.wake {
                self.wakes.remove(&(old, peer_id));
            }
            if let Some(new) = wake {
                self.wakes.insert((new, peer_id));
            }
            peer.wake = wake;
        }
    }
}
