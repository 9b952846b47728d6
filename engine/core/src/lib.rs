//! The sans-IO engine core: one deterministic state machine that decides
//! which routes to dial, when, and when to move a peer to another route.
//!
//! It never reads the clock, opens a socket or spawns a task. Inputs are
//! `handle_*(…, now)` calls (and [`Engine::connect`] / [`Engine::disconnect`]
//! from the app); outputs are drained with [`Engine::poll_command`] and
//! [`Engine::poll_event`]; [`Engine::poll_timeout`] says when to call
//! [`Engine::handle_timeout`] next. Every [`Command::Dial`] carries a
//! [`ConnectionId`] that its outcome echoes. The libp2p `Behaviour` and the
//! simulator are thin adapters that turn these into real or simulated dials.
//!
//! # What it does today
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
//! let heartbeat = multidriver_core::Liveness::default().heartbeat;
//! assert_eq!(engine.poll_timeout(), Some(t0 + Duration::from_millis(12) + heartbeat));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod budget;
mod config;
mod drivers;
mod error;
mod io;
mod keepalive;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::race::stagger;
use multidriver_scoring::rank::Components;
use multidriver_scoring::switch::beats;
use multidriver_scoring::{
    Context, LinkConditions, Medium, NetworkConditions, PowerState, Profile, Route, RouteId, Scope,
    SwitchDecision, SwitchGuard, Timestamp, TransportKind, rank,
};

pub use config::{Config, DriverSchedule, Liveness, ProfileMap};
pub use drivers::{MAX_NAMESPACE_LEN, MIN_ADVERT_TTL};
pub use error::Error;
pub use io::{
    CloseReason, Command, ConnectionId, Discovered, DriverCaps, DriverId, EnergyClass, Event,
    InterfaceId, NetworkChange, QueryId, QueryOutcome, Reach, SwitchReason,
};

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
    in_flight: Vec<ConnectionId>,
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
    primary: Option<ConnectionId>,
    backup: Option<ConnectionId>,
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
    /// When a better route that failed is tried again (see
    /// [`Config::recheck`]), the wait that led there, and when the last
    /// try was made.
    recheck_at: Option<Timestamp>,
    recheck_wait: Duration,
    recheck_tried: Option<Timestamp>,
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
            recheck_at: None,
            recheck_wait: Duration::ZERO,
            recheck_tried: None,
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
    attempts: BTreeMap<ConnectionId, Attempt>,
    connections: BTreeMap<ConnectionId, Conn>,
    /// Replaced connections closing after the grace period.
    closing: BTreeMap<ConnectionId, Timestamp>,
    commands: VecDeque<Command>,
    events: VecDeque<Event>,
    dropped_events: u64,
    next_id: u64,
    touch: u64,
    drivers: drivers::Drivers,
    /// The latest `now` of any input, to tell passed deadlines from future
    /// ones in `poll_timeout`.
    last_now: Timestamp,
    /// When the next batch of cellular keep-alives is due.
    next_keepalive: Option<Timestamp>,
    next_heartbeat: Option<Timestamp>,
    /// No probe deadline is earlier than this (a lower bound: a probe
    /// answered since leaves it early, costing one spurious wake-up).
    next_probe_due: Option<Timestamp>,
}

impl Engine {
    /// An engine with no interfaces, peers or connections.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] or [`Error::Scoring`] if `config` is invalid.
    pub fn new(config: Config) -> Result<Self, Error> {
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
            commands: VecDeque::new(),
            events: VecDeque::new(),
            dropped_events: 0,
            next_id: 0,
            touch: 0,
            drivers: drivers::Drivers::new(config_seed),
            last_now: Timestamp::ZERO,
            next_keepalive: None,
            next_heartbeat: None,
            next_probe_due: None,
        })
    }

    // ------------------------------------------------------------------
    // Outputs
    // ------------------------------------------------------------------

    /// The next command for the adapter. Drain after every input: commands
    /// are never dropped, and their number is bounded by the attempts and
    /// connections the engine tracks.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
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
    /// anything is scheduled.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let attempts = self
            .attempts
            .values()
            .map(|a| a.started + self.config.dial_timeout)
            .min();
        let closing = self.closing.values().copied().min();
        let peers = self.wakes.first().map(|(t, _)| *t);
        let drivers = self.drivers_next_timeout();
        let budget = self.budget_next_timeout();
        [
            attempts,
            closing,
            peers,
            drivers,
            budget,
            self.next_keepalive,
            self.liveness_next_timeout(),
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

    /// A network change from the OS or the host app.
    ///
    /// # Errors
    /// [`Error::UnknownInterface`] for a change of an interface never
    /// reported [`Up`](NetworkChange::Up); [`Error::TableFull`] for a new
    /// interface beyond [`Config::max_interfaces`].
    pub fn handle_network_change(
        &mut self,
        change: NetworkChange,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        match change {
            NetworkChange::Up {
                interface,
                medium,
                conditions,
                validated,
            } => {
                if !self.interfaces.contains_key(&interface)
                    && self.interfaces.len() >= self.config.max_interfaces
                {
                    // Forget the oldest interface that is down (hosts number
                    // each new attachment afresh); its routes are dead.
                    let Some(victim) = self
                        .interfaces
                        .iter()
                        .find(|(_, i)| !i.up)
                        .map(|(id, _)| *id)
                    else {
                        return Err(Error::TableFull {
                            table: "interfaces",
                            limit: self.config.max_interfaces,
                        });
                    };
                    self.forget_interface(victim);
                }
                self.interfaces.insert(
                    interface,
                    Interface {
                        medium,
                        conditions,
                        validated,
                        up: true,
                        losing: false,
                    },
                );
                // A new attachment: what we measured over this interface
                // described another network.
                for peer in self.peers.values_mut() {
                    for (route, meta) in peer.routes.iter_mut().zip(&peer.meta) {
                        if meta.interface == interface {
                            route.medium = route_medium(&route.id.addr, medium);
                            route.rtt.reset();
                        }
                    }
                }
                // New local addresses: renew every registration, and start
                // LAN drivers if this brought a LAN.
                self.readvertise_all(now);
                self.reevaluate_all(now);
                // The medium may have changed kind (cellular or not): the
                // connections over it join the other keep-alive schedule.
                self.schedule_keepalive(now);
            }
            NetworkChange::Changed {
                interface,
                conditions,
                validated,
            } => {
                let i = self.interface_mut(interface)?;
                i.conditions = conditions;
                i.validated = validated;
                self.schedule_drivers(now);
                self.reevaluate_all(now);
            }
            NetworkChange::Losing { interface } => {
                self.interface_mut(interface)?.losing = true;
                self.cancel_attempts_on(interface, now);
                let moving: Vec<PeerId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.race.is_none())
                    .filter(|(_, p)| {
                        p.primary
                            .and_then(|c| self.connections.get(&c))
                            .is_some_and(|c| c.interface == interface)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for peer in moving {
                    self.start_race(
                        peer,
                        Purpose::Upgrade {
                            reason: SwitchReason::InterfaceLosing,
                            only: None,
                            avoid: Some(interface),
                        },
                        now,
                    );
                }
                // Races whose attempts over the interface were cancelled go on.
                self.reevaluate_all(now);
                self.release_capacity(now);
            }
            NetworkChange::Down { interface } => {
                let i = self.interface_mut(interface)?;
                i.up = false;
                i.losing = false;
                self.interface_down(interface, now);
                self.readvertise_all(now);
            }
        }
        Ok(())
    }

    /// A driver reported a route.
    ///
    /// A route already known (same peer, address and interface) is refreshed:
    /// the source is recorded and the expiry extended. A new route joins a
    /// race in progress in rank order, starts one if the app wants the peer
    /// and it is not connected, or may upgrade a connected peer.
    ///
    /// # Errors
    /// [`Error::UnknownInterface`], [`Error::Scoring`] for an address that
    /// names no transport, or [`Error::TableFull`] when the peer or route
    /// table is full of entries in use; the route is then dropped.
    pub fn handle_discovered(&mut self, d: Discovered, now: Timestamp) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        let medium = self
            .interfaces
            .get(&d.interface)
            .ok_or(Error::UnknownInterface(d.interface))?
            .medium;
        let transport = TransportKind::from_multiaddr(&d.addr).ok_or_else(|| {
            multidriver_scoring::Error::UnknownTransport {
                addr: d.addr.to_string(),
            }
        })?;
        let created = self.ensure_peer(d.peer)?;
        let max_routes = self.config.max_routes_per_peer;
        let expires = now + d.ttl;
        let attempts = &self.attempts;
        let connections = &self.connections;
        let peer = self.peers.get_mut(&d.peer).expect("ensured above");
        match peer
            .routes
            .iter()
            .zip(&peer.meta)
            .position(|(r, m)| r.id.addr == d.addr && m.interface == d.interface)
        {
            Some(i) => {
                peer.routes[i].record_sighting(d.source, d.signed, now);
                peer.meta[i].expires = peer.meta[i].expires.max(expires);
            }
            None => {
                if peer.routes.len() >= max_routes {
                    let in_use = |no: RouteNo| {
                        attempts.values().any(|a| a.peer == d.peer && a.route == no)
                            || connections
                                .values()
                                .any(|c| c.peer == d.peer && c.route == Some(no))
                    };
                    let victim = peer
                        .meta
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| !in_use(m.no))
                        .min_by_key(|(_, m)| (m.expires, m.no))
                        .map(|(i, _)| i);
                    let Some(victim) = victim else {
                        if created {
                            self.peers.remove(&d.peer);
                        }
                        return Err(Error::TableFull {
                            table: "routes",
                            limit: max_routes,
                        });
                    };
                    peer.routes.remove(victim);
                    peer.meta.remove(victim);
                }
                let medium = route_medium(&d.addr, medium);
                let id = RouteId {
                    peer: d.peer,
                    addr: d.addr,
                };
                let mut route = Route::new(id, medium, transport);
                route.record_sighting(d.source, d.signed, now);
                let no = peer.next_route_no;
                peer.next_route_no = peer.next_route_no.wrapping_add(1);
                peer.routes.push(route);
                peer.meta.push(RouteMeta {
                    no,
                    interface: d.interface,
                    expires,
                });
            }
        }
        if created {
            self.push_event(Event::PeerDiscovered {
                peer: d.peer,
                source: d.source,
            });
        }
        self.touch_peer(d.peer);
        self.progress(d.peer, now);
        Ok(())
    }

    /// The app wants `peer` connected, now and after every loss, until
    /// [`disconnect`](Self::disconnect). A peer with no route yet is raced as
    /// soon as one is discovered.
    ///
    /// # Errors
    /// [`Error::TableFull`] if the peer is new and the peer table is full of
    /// peers in use.
    pub fn connect(&mut self, peer: PeerId, now: Timestamp) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        self.ensure_peer(peer)?;
        self.touch_peer(peer);
        self.peers.get_mut(&peer).expect("ensured above").wanted = true;
        self.progress(peer, now);
        Ok(())
    }

    /// The app no longer wants `peer`: its race is cancelled and its
    /// connections closed. Its routes are kept until they expire.
    pub fn disconnect(&mut self, peer: PeerId, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.wanted = false;
        p.primary = None;
        p.backup = None;
        p.lost = None;
        self.cancel_race(peer);
        let conns: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for c in conns {
            self.close(c, CloseReason::NotWanted);
        }
        self.refresh_wake(peer, now);
        self.release_capacity(now);
    }

    /// A dial succeeded `now`; the time since the dial command gives an RTT
    /// sample (elapsed ÷ the transport's handshake round trips).
    pub fn handle_dial_succeeded(&mut self, connection: ConnectionId, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(attempt) = self.attempts.remove(&connection) else {
            // A dial we cancelled or timed out still connected: the adapter
            // holds a connection nobody wants.
            self.commands.push_back(Command::CloseConnection {
                connection,
                reason: CloseReason::Duplicate,
            });
            return;
        };
        let peer_id = attempt.peer;
        let keep_backup = self.profile.racing.keep_warm_backup;
        let Some(i) = self
            .peers
            .get(&peer_id)
            .and_then(|p| p.index_of(attempt.route))
        else {
            // The peer or route is gone: nobody wants this connection.
            self.commands.push_back(Command::CloseConnection {
                connection,
                reason: CloseReason::Duplicate,
            });
            self.release_capacity(now);
            return;
        };
        let peer = self.peers.get_mut(&peer_id).expect("looked up above");
        let route = &mut peer.routes[i];
        route.dials.record_success();
        route.rtt.on_success();
        let elapsed = now.saturating_duration_since(attempt.started);
        route
            .rtt
            .on_handshake_sample(elapsed / route.transport.handshake_round_trips().max(1));
        let addr = route.id.addr.clone();
        let interface = peer.meta[i].interface;
        self.connections.insert(
            connection,
            Conn::new(peer_id, Some(attempt.route), addr.clone(), interface, now),
        );
        let peer = self.peers.get_mut(&peer_id).expect("looked up above");
        // Only one of the race's own attempts can win it; a kept backup dial
        // that lands meanwhile is a straggler.
        let purpose = peer.race.as_mut().and_then(|r| {
            let mine = r.in_flight.contains(&connection);
            r.in_flight.retain(|c| *c != connection);
            mine.then_some(r.purpose)
        });
        match (purpose, peer.primary) {
            (Some(Purpose::Upgrade { reason, .. }), Some(old)) => {
                peer.primary = Some(connection);
                peer.race = None;
                peer.recheck_at = None;
                let from = self
                    .connections
                    .get(&old)
                    .map(|c| c.addr.clone())
                    .unwrap_or_else(|| addr.clone());
                self.closing.insert(old, now + self.config.close_grace);
                // It is on its way out: no probe verdict for it.
                if let Some(c) = self.connections.get_mut(&old) {
                    c.probe_due = None;
                }
                self.push_event(Event::RouteSwitched {
                    peer: peer_id,
                    from,
                    to: addr,
                    connection,
                    interface,
                    reason,
                });
                self.cancel_race_attempts(peer_id, None);
            }
            (_, None) => {
                peer.primary = Some(connection);
                peer.race = None;
                let reason = self.components_of(peer_id, attempt.route, now);
                self.announce_primary(peer_id, connection, addr, interface, reason);
                // Keep one runner-up dialling as a warm backup if asked.
                let keep = if keep_backup {
                    self.attempts
                        .iter()
                        .find(|(_, a)| a.peer == peer_id)
                        .map(|(id, _)| *id)
                } else {
                    None
                };
                self.cancel_race_attempts(peer_id, keep);
            }
            (_, Some(_)) => {
                // A straggler of a finished race, or a connection for an
                // upgrade that lost its primary meanwhile.
                if keep_backup && peer.backup.is_none() {
                    peer.backup = Some(connection);
                } else {
                    self.close(connection, CloseReason::Duplicate);
                }
            }
        }
        self.release_capacity(now);
        self.refresh_wake(peer_id, now);
        self.trim(now);
        self.schedule_keepalive(now);
    }

    /// A dial failed: the route is penalised and the race moves on at once
    /// (fast-forward).
    pub fn handle_dial_failed(&mut self, connection: ConnectionId, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(attempt) = self.attempts.remove(&connection) else {
            return;
        };
        self.record_failure(&attempt, connection, now);
        self.release_capacity(now);
    }

    /// The remote of `connection` does not speak the probe protocol: no
    /// probe is sent on it any more and an unanswered one is forgiven, so
    /// liveness does not close a healthy connection to a peer without
    /// ping. Its failure is then noticed by the transport alone.
    pub fn handle_probe_unsupported(&mut self, connection: ConnectionId, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        if let Some(c) = self.connections.get_mut(&connection) {
            c.unprobeable = true;
            c.probe_due = None;
        }
        self.next_probe_due = self.connections.values().filter_map(|c| c.probe_due).min();
    }

    /// An RTT measurement on an open connection (a ping, a QUIC RTT
    /// estimate); it may trigger an upgrade to a better route.
    pub fn handle_rtt_sample(&mut self, connection: ConnectionId, rtt: Duration, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(conn) = self.connections.get_mut(&connection) else {
            return;
        };
        conn.last_traffic = conn.last_traffic.max(now);
        conn.probe_due = None;
        let (peer_id, route) = (conn.peer, conn.route);
        if let (Some(peer), Some(no)) = (self.peers.get_mut(&peer_id), route)
            && let Some(i) = peer.index_of(no)
        {
            peer.routes[i].rtt.on_sample(rtt);
        }
        self.progress(peer_id, now);
    }

    /// A connection stopped answering: a keep-alive or an idle timeout
    /// killed it, rather than a close by either side. Like
    /// [`handle_connection_closed`](Self::handle_connection_closed), and in
    /// addition its route and every other route to the same host address
    /// over the same local interface count a failure (the RTT estimator's
    /// decaying penalty), so the re-race tries the peer's other addresses
    /// first instead of waiting for dials to a host that just went dark to
    /// time out. Routes over other interfaces are left alone: when the local
    /// link is what died, they are the way out.
    pub fn handle_connection_lost(&mut self, connection: ConnectionId, now: Timestamp) {
        self.penalise_host(connection, now);
        self.handle_connection_closed(connection, now);
    }

    /// Counts a failure on every route to `connection`'s host over its
    /// interface (see [`handle_connection_lost`](Self::handle_connection_lost)).
    fn penalise_host(&mut self, connection: ConnectionId, now: Timestamp) {
        if let Some(peer) = self.connections.get(&connection).map(|c| c.peer) {
            self.schedule_recheck(peer, now);
        }
        if let Some(conn) = self.connections.get(&connection)
            && let Some(peer) = self.peers.get_mut(&conn.peer)
        {
            let host = host_of(&conn.addr);
            for (route, meta) in peer.routes.iter_mut().zip(&peer.meta) {
                let same = meta.interface == conn.interface
                    && match &host {
                        Some(h) => host_of(&route.id.addr).as_ref() == Some(h),
                        None => route.id.addr == conn.addr,
                    };
                if same {
                    route.rtt.on_failure(now);
                }
            }
        }
    }

    /// A connection closed (by the remote, an error, or the adapter).
    pub fn handle_connection_closed(&mut self, connection: ConnectionId, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        self.closing.remove(&connection);
        let Some(conn) = self.connections.remove(&connection) else {
            return;
        };
        self.lost_connection(
            conn.peer,
            connection,
            conn.addr,
            SwitchReason::ConnectionClosed,
            now,
        );
        self.release_capacity(now);
    }

    /// A peer connected to us. It becomes the peer's primary connection if
    /// it has none. Open connections plus dials in flight never exceed
    /// [`Config::max_connections`].
    ///
    /// # Errors
    /// [`Error::UnknownInterface`], or [`Error::TableFull`] when the peer or
    /// connection table is full; the adapter should close the connection.
    pub fn handle_inbound(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        interface: InterfaceId,
        now: Timestamp,
    ) -> Result<ConnectionId, Error> {
        self.last_now = self.last_now.max(now);
        if !self.interfaces.contains_key(&interface) {
            return Err(Error::UnknownInterface(interface));
        }
        // Dials in flight hold their place: they may all succeed.
        if self.connections.len() + self.attempts.len() >= self.config.max_connections {
            return Err(Error::TableFull {
                table: "connections",
                limit: self.config.max_connections,
            });
        }
        self.ensure_peer(peer)?;
        self.touch_peer(peer);
        let connection = self.new_id();
        self.connections.insert(
            connection,
            Conn::new(peer, None, addr.clone(), interface, now),
        );
        let p = self.peers.get_mut(&peer).expect("ensured above");
        if p.primary.is_none() {
            p.primary = Some(connection);
            self.cancel_race(peer);
            // An inbound connection has no route of ours, hence no cost
            // components to give as the reason.
            self.announce_primary(peer, connection, addr, interface, Components::default());
        }
        self.refresh_wake(peer, now);
        self.trim(now);
        self.schedule_keepalive(now);
        Ok(connection)
    }

    /// Time passed: attempts time out, replaced connections close, races
    /// start their next attempts, pending switches are decided, routes
    /// expire.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        self.drivers_timeout(now);
        self.keepalive_timeout(now);
        let timed_out: Vec<ConnectionId> = self
            .attempts
            .iter()
            .filter(|(_, a)| a.started + self.config.dial_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in timed_out {
            if let Some(attempt) = self.attempts.remove(&id) {
                self.commands
                    .push_back(Command::CancelDial { connection: id });
                self.record_failure(&attempt, id, now);
            }
        }
        let due: Vec<ConnectionId> = self
            .closing
            .iter()
            .filter(|(_, t)| **t <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.closing.remove(&id);
            if self.connections.remove(&id).is_some() {
                self.commands.push_back(Command::CloseConnection {
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
    }

    // ------------------------------------------------------------------
    // Introspection (for adapters, tests and tools)
    // ------------------------------------------------------------------

    /// The peer's primary connection, if it is connected.
    pub fn primary(&self, peer: &PeerId) -> Option<ConnectionId> {
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
    pub fn connections(&self) -> impl Iterator<Item = ConnectionId> + '_ {
        self.connections.keys().copied()
    }

    /// The address and interface of a connection.
    pub fn connection(&self, connection: ConnectionId) -> Option<(&Multiaddr, InterfaceId)> {
        self.connections
            .get(&connection)
            .map(|c| (&c.addr, c.interface))
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

    fn new_id(&mut self) -> ConnectionId {
        self.next_id += 1;
        ConnectionId(self.next_id)
    }

    fn interface_mut(&mut self, id: InterfaceId) -> Result<&mut Interface, Error> {
        self.interfaces
            .get_mut(&id)
            .ok_or(Error::UnknownInterface(id))
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= self.config.max_pending_events {
            self.events.pop_front();
            self.dropped_events += 1;
        }
        self.events.push_back(event);
    }

    fn touch_peer(&mut self, peer: PeerId) {
        self.touch += 1;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.last_touch = self.touch;
        }
    }

    /// Creates the peer if needed; returns whether it did.
    fn ensure_peer(&mut self, peer: PeerId) -> Result<bool, Error> {
        if self.peers.contains_key(&peer) {
            return Ok(false);
        }
        if self.peers.len() >= self.config.max_peers {
            let victim = self
                .peers
                .iter()
                .filter(|(id, p)| {
                    !p.wanted
                        && p.primary.is_none()
                        && p.backup.is_none()
                        && p.race.is_none()
                        && !self.connections.values().any(|c| c.peer == **id)
                })
                .min_by_key(|(id, p)| (p.last_touch, **id))
                .map(|(id, _)| *id);
            let Some(victim) = victim else {
                return Err(Error::TableFull {
                    table: "peers",
                    limit: self.config.max_peers,
                });
            };
            self.remove_peer(victim);
        }
        self.touch += 1;
        self.peers.insert(peer, Peer::new(self.touch));
        Ok(true)
    }

    fn remove_peer(&mut self, peer: PeerId) {
        self.cancel_race_attempts(peer, None);
        if let Some(p) = self.peers.remove(&peer)
            && let Some(w) = p.wake
        {
            self.wakes.remove(&(w, peer));
        }
        self.blocked.remove(&peer);
    }

    fn links(&self) -> LinkConditions {
        let mut links = LinkConditions::all_free();
        for i in self.interfaces.values().filter(|i| i.up) {
            links.set(i.medium, i.conditions);
        }
        links
    }

    fn context<'a>(&'a self, links: &'a LinkConditions, now: Timestamp) -> Context<'a> {
        Context {
            profile: &self.profile,
            links,
            power: self.power,
            now,
        }
    }

    /// Whether a route may be dialled now.
    fn dialable(&self, route: &Route, meta: &RouteMeta, now: Timestamp) -> bool {
        let Some(i) = self.interfaces.get(&meta.interface) else {
            return false;
        };
        i.up && !i.losing
            && now < meta.expires
            && (i.validated || Scope::of(&route.id.addr) != Scope::Internet)
    }

    /// The peer's routes that may be dialled, ranked best first, as (route
    /// number, components, cost).
    fn candidates(&self, peer: &Peer, now: Timestamp) -> Vec<(RouteNo, Components, f64)> {
        let links = self.links();
        let ctx = self.context(&links, now);
        rank(&peer.routes, &ctx)
            .eligible()
            .filter(|e| self.dialable(&peer.routes[e.index], &peer.meta[e.index], now))
            .map(|e| (peer.meta[e.index].no, e.components, e.cost_ms))
            .collect()
    }

    /// The cost components of one route of a peer, dialable or not.
    fn components_of(&self, peer: PeerId, no: RouteNo, now: Timestamp) -> Components {
        let Some(p) = self.peers.get(&peer) else {
            return Components::default();
        };
        let Some(i) = p.index_of(no) else {
            return Components::default();
        };
        let links = self.links();
        let ctx = self.context(&links, now);
        rank::breakdown(&p.routes[i], &ctx).0.components
    }

    fn reevaluate_all(&mut self, now: Timestamp) {
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            self.progress(peer, now);
        }
    }

    /// Moves a peer forward: continue its race, start one if it is wanted
    /// and unconnected, or consider an upgrade if it is connected.
    fn progress(&mut self, peer_id: PeerId, now: Timestamp) {
        let Some(peer) = self.peers.get(&peer_id) else {
            return;
        };
        if peer.race.is_some() {
            self.advance(peer_id, now);
        } else if peer.primary.is_none() {
            if peer.wanted {
                self.start_race(peer_id, Purpose::Connect, now);
            }
        } else {
            self.consider_upgrade(peer_id, now);
        }
        self.refresh_wake(peer_id, now);
    }

    fn start_race(&mut self, peer_id: PeerId, purpose: Purpose, now: Timestamp) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        peer.race = Some(Race {
            purpose,
            tried: Vec::new(),
            in_flight: Vec::new(),
            next_due: now,
            wake: None,
        });
        peer.guard.reset();
        peer.guard_until = None;
        self.advance(peer_id, now);
        self.refresh_wake(peer_id, now);
    }

    /// Starts the race's next attempts while they are due and capacity
    /// allows; ends the race when nothing is left to try.
    fn advance(&mut self, peer_id: PeerId, now: Timestamp) {
        let per_peer = self
            .config
            .max_attempts_per_peer
            .min(self.profile.racing.max_attempts as usize);
        loop {
            let Some(peer) = self.peers.get(&peer_id) else {
                return;
            };
            let Some(race) = &peer.race else {
                return;
            };
            let primary_route = peer
                .primary
                .and_then(|c| self.connections.get(&c))
                .and_then(|c| c.route);
            let next = self.candidates(peer, now).into_iter().find(|(no, _, _)| {
                !race.tried.contains(no)
                    && Some(*no) != primary_route
                    && match race.purpose {
                        Purpose::Connect => true,
                        Purpose::Upgrade { only, avoid, .. } => {
                            only.is_none_or(|o| o == *no)
                                && avoid.is_none_or(|a| {
                                    peer.index_of(*no)
                                        .is_some_and(|i| peer.meta[i].interface != a)
                                })
                        }
                    }
            });
            let in_flight = race.in_flight.len();
            let next_due = race.next_due;
            let purpose = race.purpose;
            let tried = race.tried.len();
            let Some((no, _, _)) = next else {
                if in_flight == 0 {
                    self.end_race(peer_id, purpose, tried);
                } else {
                    // Nothing more to start: wait for the outcomes.
                    self.set_race_wake(peer_id, None);
                }
                return;
            };
            if in_flight >= per_peer {
                self.set_race_wake(peer_id, None);
                return;
            }
            if self.attempts.len() >= self.config.max_attempts_total
                || self.attempts.len() + self.connections.len() >= self.config.max_connections
            {
                self.blocked.insert(peer_id);
                self.set_race_wake(peer_id, None);
                return;
            }
            if next_due > now {
                self.set_race_wake(peer_id, Some(next_due));
                return;
            }
            self.blocked.remove(&peer_id);
            let id = self.new_id();
            let peer = self.peers.get_mut(&peer_id).expect("looked up above");
            let i = peer.index_of(no).expect("a candidate exists");
            let route = &peer.routes[i];
            let wait = stagger(route, &self.profile.racing);
            self.commands.push_back(Command::Dial {
                connection: id,
                peer: peer_id,
                addr: route.id.addr.clone(),
                interface: peer.meta[i].interface,
            });
            let race = peer.race.as_mut().expect("looked up above");
            race.tried.push(no);
            race.in_flight.push(id);
            race.next_due = now + wait;
            self.attempts.insert(
                id,
                Attempt {
                    peer: peer_id,
                    route: no,
                    started: now,
                },
            );
        }
    }

    fn set_race_wake(&mut self, peer_id: PeerId, wake: Option<Timestamp>) {
        if let Some(race) = self.peers.get_mut(&peer_id).and_then(|p| p.race.as_mut()) {
            race.wake = wake;
        }
    }

    fn end_race(&mut self, peer_id: PeerId, purpose: Purpose, tried: usize) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        peer.race = None;
        self.blocked.remove(&peer_id);
        if purpose == Purpose::Connect && peer.primary.is_none() && peer.wanted {
            peer.lost = None;
            self.push_event(Event::PeerUnreachable {
                peer: peer_id,
                tried,
            });
        }
    }

    /// Cancels every attempt of the peer's race but `keep`, and ends it.
    fn cancel_race_attempts(&mut self, peer_id: PeerId, keep: Option<ConnectionId>) {
        let ids: Vec<ConnectionId> = self
            .attempts
            .iter()
            .filter(|(id, a)| a.peer == peer_id && Some(**id) != keep)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.attempts.remove(&id);
            self.commands
                .push_back(Command::CancelDial { connection: id });
        }
        if let Some(p) = self.peers.get_mut(&peer_id) {
            p.race = None;
        }
        self.blocked.remove(&peer_id);
    }

    fn cancel_race(&mut self, peer_id: PeerId) {
        self.cancel_race_attempts(peer_id, None);
    }

    fn record_failure(&mut self, attempt: &Attempt, connection: ConnectionId, now: Timestamp) {
        let peer_id = attempt.peer;
        if let Some(peer) = self.peers.get_mut(&peer_id) {
            if let Some(i) = peer.index_of(attempt.route) {
                peer.routes[i].dials.record_failure();
                peer.routes[i].rtt.on_failure(now);
            }
            if let Some(race) = peer.race.as_mut() {
                race.in_flight.retain(|c| *c != connection);
                // Fast-forward: the next attempt starts at once.
                race.next_due = now;
            }
        }
        self.schedule_recheck(peer_id, now);
        self.progress(peer_id, now);
    }

    /// Lets peers that waited for attempt or connection capacity go on.
    fn release_capacity(&mut self, now: Timestamp) {
        while self.attempts.len() < self.config.max_attempts_total {
            let Some(peer) = self.blocked.pop_first() else {
                return;
            };
            self.progress(peer, now);
            if self.blocked.contains(&peer) {
                // Still blocked (connection capacity); try again later.
                return;
            }
        }
    }

    fn consider_upgrade(&mut self, peer_id: PeerId, now: Timestamp) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        peer.guard_until = None;
        let peer = &self.peers[&peer_id];
        let Some(primary) = peer.primary.and_then(|c| self.connections.get(&c)) else {
            return;
        };
        let Some(current_no) = primary.route else {
            // Inbound connections have no route of ours to compare.
            return;
        };
        let Some(ci) = peer.index_of(current_no) else {
            return;
        };
        let links = self.links();
        let ctx = self.context(&links, now);
        let current = rank::breakdown(&peer.routes[ci], &ctx).0.components;
        let best = self
            .candidates(peer, now)
            .into_iter()
            .find(|(no, _, _)| *no != current_no);
        let switching = self.profile.switching;
        let peer = self.peers.get_mut(&peer_id).expect("looked up above");
        let decision = peer.guard.evaluate(
            current.total_ms(),
            best.map(|(no, _, cost)| (no, cost)),
            &switching,
            now,
        );
        peer.guard_until = None;
        match decision {
            SwitchDecision::Stay => self.recheck(peer_id, current, now),
            SwitchDecision::Wait { until } => peer.guard_until = Some(until),
            SwitchDecision::Switch => {
                let (no, to, _) = best.expect("a switch needs a candidate");
                self.upgrade_to(peer_id, no, current, to, now);
            }
        }
    }

    /// Races one route, make-before-break, to replace a connected peer's
    /// route costing `from` by one costing `to`.
    fn upgrade_to(
        &mut self,
        peer_id: PeerId,
        no: RouteNo,
        from: Components,
        to: Components,
        now: Timestamp,
    ) {
        self.start_race(
            peer_id,
            Purpose::Upgrade {
                reason: SwitchReason::Better { from, to },
                only: Some(no),
                avoid: None,
            },
            now,
        );
    }

    /// A connected peer stays on its route: if another route would beat it
    /// but for the failure penalty of recent failed dials, try that route
    /// again now and then (make-before-break, only that route), since the
    /// path that failed may work again without any network event (a Wi-Fi
    /// that stopped passing packets and recovered). The first try comes
    /// [`Config::recheck`] after the failure; while tries keep failing, or
    /// keep finding a path that fails again soon, the wait doubles up to
    /// [`Config::max_recheck`]. It starts afresh once no try was needed for
    /// twice `max_recheck`.
    fn recheck(&mut self, peer_id: PeerId, current: Components, now: Timestamp) {
        if self.config.recheck.is_none() {
            return;
        }
        let Some(peer) = self.peers.get(&peer_id) else {
            return;
        };
        if peer.recheck_at.is_some_and(|at| now < at) {
            return;
        }
        // The common case, no penalised route, costs no ranking.
        if peer
            .routes
            .iter()
            .all(|r| r.rtt.failure_penalty(now).is_zero())
        {
            if let Some(peer) = self.peers.get_mut(&peer_id) {
                peer.recheck_at = None;
            }
            return;
        }
        let current_no = peer
            .primary
            .and_then(|c| self.connections.get(&c))
            .and_then(|c| c.route);
        let switching = self.profile.switching;
        let links = self.links();
        let ctx = self.context(&links, now);
        // Each candidate as it would rank with its penalty forgiven (the
        // penalty enters the cost through the profile's weights).
        let pick = self
            .candidates(peer, now)
            .into_iter()
            .filter(|(no, _, _)| Some(*no) != current_no)
            .filter_map(|(no, _, _)| {
                let route = &peer.routes[peer.index_of(no)?];
                if route.rtt.failure_penalty(now).is_zero() {
                    return None;
                }
                let mut forgiven = route.clone();
                forgiven.rtt.on_success();
                let to = rank::breakdown(&forgiven, &ctx).0.components;
                beats(to.total_ms(), current.total_ms(), &switching).then_some((no, to))
            })
            .min_by(|a, b| a.1.total_ms().total_cmp(&b.1.total_ms()));
        let Some((no, to)) = pick else {
            if let Some(peer) = self.peers.get_mut(&peer_id) {
                peer.recheck_at = None;
            }
            return;
        };
        if peer.recheck_at.is_none() {
            self.schedule_recheck(peer_id, now);
            return;
        }
        let peer = self.peers.get_mut(&peer_id).expect("looked up above");
        peer.recheck_at = None;
        peer.recheck_tried = Some(now);
        self.upgrade_to(peer_id, no, current, to, now);
    }

    /// A route of the peer failed: unless a try is already due, schedule
    /// one (see [`Engine::recheck`]). Before trying, wait: the route has
    /// just failed; after a recent try whose path failed again, wait twice
    /// as long as last time.
    fn schedule_recheck(&mut self, peer_id: PeerId, now: Timestamp) {
        let Some(first) = self.config.recheck else {
            return;
        };
        let max = self.config.max_recheck.max(first);
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        if peer.recheck_at.is_some() {
            return;
        }
        let recent = peer
            .recheck_tried
            .is_some_and(|t| now.saturating_duration_since(t) < 2 * max);
        peer.recheck_wait = if recent {
            (peer.recheck_wait * 2).clamp(first, max)
        } else {
            first
        };
        peer.recheck_at = Some(now + peer.recheck_wait);
        self.refresh_wake(peer_id, now);
    }

    fn interface_down(&mut self, interface: InterfaceId, now: Timestamp) {
        self.cancel_attempts_on(interface, now);
        let conns: Vec<(ConnectionId, Conn)> = self
            .connections
            .iter()
            .filter(|(_, c)| c.interface == interface)
            .map(|(id, c)| (*id, c.clone()))
            .collect();
        // Forget every connection over the interface before reacting to any
        // loss, so a backup on the same interface is never promoted.
        for (id, _) in &conns {
            self.connections.remove(id);
            self.closing.remove(id);
            self.commands.push_back(Command::CloseConnection {
                connection: *id,
                reason: CloseReason::InterfaceDown,
            });
        }
        for (id, conn) in conns {
            self.lost_connection(conn.peer, id, conn.addr, SwitchReason::InterfaceLost, now);
        }
        self.reevaluate_all(now);
        self.release_capacity(now);
    }

    /// Forgets a down interface and every route over it.
    fn forget_interface(&mut self, interface: InterfaceId) {
        self.interfaces.remove(&interface);
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer_id in peers {
            let Some(peer) = self.peers.get_mut(&peer_id) else {
                continue;
            };
            let mut i = 0;
            while i < peer.meta.len() {
                if peer.meta[i].interface == interface {
                    peer.meta.remove(i);
                    peer.routes.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Cancels every dial attempt through `interface`; their races move on.
    fn cancel_attempts_on(&mut self, interface: InterfaceId, now: Timestamp) {
        let attempts: Vec<(ConnectionId, PeerId)> = self
            .attempts
            .iter()
            .filter(|(_, a)| {
                self.peers
                    .get(&a.peer)
                    .and_then(|p| p.index_of(a.route).map(|i| p.meta[i].interface))
                    == Some(interface)
            })
            .map(|(id, a)| (*id, a.peer))
            .collect();
        for (id, peer) in attempts {
            self.attempts.remove(&id);
            self.commands
                .push_back(Command::CancelDial { connection: id });
            if let Some(race) = self.peers.get_mut(&peer).and_then(|p| p.race.as_mut()) {
                race.in_flight.retain(|c| *c != id);
                race.next_due = now;
            }
        }
    }

    /// A peer lost `connection`: promote its backup, or re-race.
    fn lost_connection(
        &mut self,
        peer_id: PeerId,
        connection: ConnectionId,
        addr: Multiaddr,
        reason: SwitchReason,
        now: Timestamp,
    ) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        if peer.backup == Some(connection) {
            peer.backup = None;
        }
        if peer.primary != Some(connection) {
            return;
        }
        peer.primary = None;
        if let Some(backup) = peer.backup.take()
            && let Some(b) = self.connections.get(&backup)
        {
            peer.primary = Some(backup);
            let (to, interface) = (b.addr.clone(), b.interface);
            self.push_event(Event::RouteSwitched {
                peer: peer_id,
                from: addr,
                to,
                connection: backup,
                interface,
                reason,
            });
            return;
        }
        if !peer.wanted {
            // Nobody asked to keep this peer connected: no redial.
            peer.lost = None;
            self.cancel_race(peer_id);
            self.push_event(Event::PeerDisconnected { peer: peer_id });
            self.refresh_wake(peer_id, now);
            return;
        }
        // An upgrade in progress becomes the way back.
        if let Some(race) = peer.race.as_mut() {
            race.purpose = Purpose::Connect;
        }
        peer.lost = Some((addr, reason));
        let wanted = peer.wanted;
        let racing = peer.race.is_some();
        self.progress(peer_id, now);
        let peer = &self.peers[&peer_id];
        if !racing && peer.race.is_none() && peer.primary.is_none() {
            let lost = peer.lost.is_some();
            if let Some(p) = self.peers.get_mut(&peer_id) {
                p.lost = None;
            }
            if lost || !wanted {
                self.push_event(Event::PeerDisconnected { peer: peer_id });
            }
        }
    }

    /// Tells the app that `connection` became the peer's primary: a switch
    /// from the route it lost, or its first route.
    fn announce_primary(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        addr: Multiaddr,
        interface: InterfaceId,
        reason: Components,
    ) {
        let lost = self.peers.get_mut(&peer).and_then(|p| p.lost.take());
        self.push_event(match lost {
            Some((from, why)) => Event::RouteSwitched {
                peer,
                from,
                to: addr,
                connection,
                interface,
                reason: why,
            },
            None => Event::RouteSelected {
                peer,
                connection,
                addr,
                interface,
                reason,
            },
        });
    }

    fn close(&mut self, connection: ConnectionId, reason: CloseReason) {
        self.closing.remove(&connection);
        if self.connections.remove(&connection).is_some() {
            self.commands
                .push_back(Command::CloseConnection { connection, reason });
        }
    }

    /// Removes expired routes that carry no connection or attempt.
    fn expire_routes(&mut self, peer_id: PeerId, now: Timestamp) {
        let attempts = &self.attempts;
        let connections = &self.connections;
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let mut i = 0;
        while i < peer.meta.len() {
            let no = peer.meta[i].no;
            let in_use = attempts
                .values()
                .any(|a| a.peer == peer_id && a.route == no)
                || connections
                    .values()
                    .any(|c| c.peer == peer_id && c.route == Some(no));
            if peer.meta[i].expires <= now && !in_use {
                peer.meta.remove(i);
                peer.routes.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Recomputes when the peer wants to be woken: its race's next attempt,
    /// a pending switch decision, or its next route expiry.
    fn refresh_wake(&mut self, peer_id: PeerId, now: Timestamp) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let race = peer.race.as_ref().and_then(|r| r.wake);
        let expiry = peer.meta.iter().map(|m| m.expires).min();
        // Whatever was due by `now` has just been handled: only later times
        // count, so a stale deadline can never make the adapter spin.
        let wake = [race, peer.guard_until, expiry, peer.recheck_at]
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

/// The host part of an address (its first IP or DNS component), if any.
fn host_of(addr: &Multiaddr) -> Option<multiaddr::Protocol<'static>> {
    addr.iter()
        .find(|p| {
            matches!(
                p,
                multiaddr::Protocol::Ip4(_)
                    | multiaddr::Protocol::Ip6(_)
                    | multiaddr::Protocol::Dns(_)
                    | multiaddr::Protocol::Dns4(_)
                    | multiaddr::Protocol::Dns6(_)
            )
        })
        .map(|p| p.acquire())
}

/// A relayed address is a relay route whatever interface it leaves through.
fn route_medium(addr: &Multiaddr, interface_medium: Medium) -> Medium {
    if addr
        .iter()
        .any(|p| matches!(p, multiaddr::Protocol::P2pCircuit))
    {
        Medium::Relay
    } else {
        interface_medium
    }
}
