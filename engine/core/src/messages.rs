//! What goes into the engine core and what comes out of it.

use std::fmt;
use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::rank::Components;
use multidriver_scoring::{Medium, NetworkConditions, Source, Timestamp};

/// A local network interface, numbered by the adapter (an OS interface
/// index, or a simulated host's interface number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InterfaceId(pub u32);

impl fmt::Display for InterfaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "if{}", self.0)
    }
}

/// A connection or dial attempt, numbered by the engine. A dial command
/// carries the id of the connection it opens; results and later commands
/// about that connection echo it. Adapters map it to their own handles
/// (e.g. a libp2p `ConnectionId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionHandle(pub(crate) u64);

impl ConnectionHandle {
    /// The number behind the id, for logs and maps.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// A route a discovery driver reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    /// The peer.
    pub peer: PeerId,
    /// Its address.
    pub addr: Multiaddr,
    /// The local interface the route leaves through.
    pub interface: InterfaceId,
    /// The driver kind that found it.
    pub source: Source,
    /// Whether it came in a signed peer record.
    pub signed: bool,
    /// How long the report stays valid; the route is never dialled after.
    pub ttl: Duration,
}

/// A change of the device's network, from OS interface events or from the
/// host app's hints (Android `NetworkCallback`, iOS `NWPathMonitor`). Both
/// sources feed the same input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NetworkChange {
    /// An interface came up, or attached to a different network (a new
    /// Wi-Fi, say). RTT history of routes over it is flushed: it described
    /// the old attachment.
    Up {
        /// The interface.
        interface: InterfaceId,
        /// Its medium.
        medium: Medium,
        /// Metered, expensive, constrained.
        conditions: NetworkConditions,
        /// Whether the OS validated internet access over it (Android
        /// `NET_CAPABILITY_VALIDATED`). Over an unvalidated interface (a
        /// captive portal, a LAN without uplink) only LAN routes are dialled.
        validated: bool,
    },
    /// The host reports new conditions or validation for an interface that
    /// stays attached to the same network; routes are re-ranked.
    Changed {
        /// The interface.
        interface: InterfaceId,
        /// Metered, expensive, constrained.
        conditions: NetworkConditions,
        /// Whether internet access over it is validated.
        validated: bool,
    },
    /// The host warns that the interface is about to go (Android
    /// `onLosing`, iOS path status turning unsatisfied): connected peers are
    /// moved to other interfaces make-before-break, without hysteresis.
    Losing {
        /// The interface.
        interface: InterfaceId,
    },
    /// The interface is gone: its routes are dead at once, its connections
    /// closed, and their peers re-raced over the surviving routes.
    Down {
        /// The interface.
        interface: InterfaceId,
    },
}

/// What the engine asks its adapter to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// Dial `addr` through `interface`; report the outcome with
    /// [`Engine::handle_dial_succeeded`] or [`Engine::handle_dial_failed`]
    /// for `connection`.
    ///
    /// [`Engine::handle_dial_succeeded`]: crate::Engine::handle_dial_succeeded
    /// [`Engine::handle_dial_failed`]: crate::Engine::handle_dial_failed
    Dial {
        /// The id the outcome must echo.
        connection: ConnectionHandle,
        /// The peer.
        peer: PeerId,
        /// The address.
        addr: Multiaddr,
        /// The interface to leave through.
        interface: InterfaceId,
    },
    /// Abandon a dial started by an earlier [`Command::Dial`]; no outcome is
    /// expected any more (one that still arrives is ignored).
    CancelDial {
        /// The dial's id.
        connection: ConnectionHandle,
    },
    /// Register `namespace` with a driver for `ttl`; report with
    /// [`Engine::handle_query_outcome`].
    ///
    /// [`Engine::handle_query_outcome`]: crate::Engine::handle_query_outcome
    Advertise {
        /// The id the outcome must echo.
        query: QueryId,
        /// The driver.
        driver: DriverId,
        /// The namespace.
        namespace: String,
        /// How long the registration should last.
        ttl: Duration,
    },
    /// Withdraw `namespace` from a driver (the schedule no longer runs it, or
    /// the app stopped advertising). No outcome is expected.
    StopAdvertising {
        /// The driver.
        driver: DriverId,
        /// The namespace.
        namespace: String,
    },
    /// Look up peers in `namespace` with a driver: report each route with
    /// [`Engine::handle_discovered`], then the outcome with
    /// [`Engine::handle_query_outcome`].
    ///
    /// [`Engine::handle_discovered`]: crate::Engine::handle_discovered
    /// [`Engine::handle_query_outcome`]: crate::Engine::handle_query_outcome
    Discover {
        /// The id the outcome must echo.
        query: QueryId,
        /// The driver.
        driver: DriverId,
        /// The namespace.
        namespace: String,
    },
    /// Abandon a driver operation; no outcome is expected any more.
    CancelQuery {
        /// The operation.
        query: QueryId,
    },
    /// Send one keep-alive (a ping) on each of these connections now and
    /// report each answer with [`Engine::handle_rtt_sample`]. Cellular ones
    /// are batched so that one radio wake-up serves every connection; with
    /// [`Config::liveness`] set, other connections are probed every
    /// heartbeat and an unanswered probe closes its connection. The adapter
    /// should turn off its own per-connection keep-alive timers and rely on
    /// this command instead.
    ///
    /// [`Engine::handle_rtt_sample`]: crate::Engine::handle_rtt_sample
    /// [`Config::liveness`]: crate::Config::liveness
    KeepAlive {
        /// The connections.
        connections: Vec<ConnectionHandle>,
    },
    /// Send one keep-alive (a ping) on a connection to each relay holding
    /// one of this node's reservations, so that the NAT in front of this
    /// node keeps the connection's binding and the relay can still reach
    /// it. Asked for at the longest interval that holds a binding
    /// ([`UDP_BINDING_KEEPALIVE`](crate::UDP_BINDING_KEEPALIVE) over UDP,
    /// the profile's keep-alive interval over TCP), batched with the
    /// engine's other radio work. No answer is expected: a reservation
    /// that dies is reported with
    /// [`Engine::handle_reservation_failed`](crate::Engine::handle_reservation_failed).
    KeepReservations {
        /// The relays.
        relays: Vec<PeerId>,
    },
    /// Hold a reservation on `relay` (listen on
    /// `addr/p2p/<relay>/p2p-circuit`), replacing one already held on it
    /// (renewing it over the interfaces up now); report the outcome with
    /// [`Engine::handle_reservation_accepted`] or
    /// [`Engine::handle_reservation_failed`], and the reservation's end
    /// with the latter. While it holds, the relayed address is this node's
    /// to advertise. The adapter must answer every `Reserve` (libp2p's
    /// relay client always does: a refused, failed or timed-out request
    /// closes its listener); until it does, the relay stays requested.
    ///
    /// [`Engine::handle_reservation_accepted`]: crate::Engine::handle_reservation_accepted
    /// [`Engine::handle_reservation_failed`]: crate::Engine::handle_reservation_failed
    Reserve {
        /// The relay.
        relay: PeerId,
        /// Its address, without `/p2p-circuit`.
        addr: Multiaddr,
    },
    /// Release the reservation on `relay` (stop listening through it and
    /// stop advertising its relayed address). No outcome is expected.
    Unreserve {
        /// The relay.
        relay: PeerId,
    },
    /// Close an open connection; the engine already forgot it.
    CloseConnection {
        /// The connection.
        connection: ConnectionHandle,
        /// Why.
        reason: CloseReason,
    },
}

/// Why the engine closes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// A better route took over and the grace period ended.
    Replaced,
    /// Its interface went down.
    InterfaceDown,
    /// The app no longer wants the peer.
    NotWanted,
    /// A connection to the same peer over the same route already existed.
    Duplicate,
    /// The connection manager trimmed it: above the high watermark, and of
    /// the lowest value.
    Trimmed,
    /// A probe went unanswered ([`Liveness`](crate::Liveness)): the
    /// path is dead.
    Unresponsive,
    /// The peer's app went quiet and the connection ran over cellular for
    /// the profile's `quiet.cellular_idle_close_s`: it is dialled again
    /// through its best known route when the app next uses the peer.
    Idle,
}

/// Why a peer's route changed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum SwitchReason {
    /// The new route beat the old one by the profile's margins for its dwell
    /// time; the cost components of both, old first.
    Better {
        /// The old route's cost components when the switch was decided.
        from: Components,
        /// The new route's.
        to: Components,
    },
    /// The old route's interface went down.
    InterfaceLost,
    /// The host warned that the old route's interface is going.
    InterfaceLosing,
    /// The old connection closed.
    ConnectionClosed,
    /// The old route was relayed and a hole punch (DCUtR) opened a direct
    /// connection.
    HolePunched,
}

impl SwitchReason {
    /// A short name for logs and metric labels: `better`, `interface_lost`,
    /// `interface_losing`, `connection_closed`, `hole_punched`.
    pub fn label(&self) -> &'static str {
        match self {
            SwitchReason::Better { .. } => "better",
            SwitchReason::InterfaceLost => "interface_lost",
            SwitchReason::InterfaceLosing => "interface_losing",
            SwitchReason::ConnectionClosed => "connection_closed",
            SwitchReason::HolePunched => "hole_punched",
        }
    }
}

/// A fact for the app, in the past tense.
///
/// `C` names connections: the engine's [`ConnectionHandle`]; an adapter
/// hands the same facts on with its own connection ids
/// ([`Event::map_connection`]), as the libp2p `Behaviour` does with the
/// swarm's `ConnectionId`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event<C = ConnectionHandle> {
    /// The first route to a peer was discovered.
    PeerDiscovered {
        /// The peer.
        peer: PeerId,
        /// The driver kind that found it.
        source: Source,
    },
    /// A peer became connected over its first route.
    RouteSelected {
        /// The peer.
        peer: PeerId,
        /// The connection.
        connection: C,
        /// The route's address.
        addr: Multiaddr,
        /// The interface it leaves through.
        interface: InterfaceId,
        /// The route's cost components when it was chosen.
        reason: Components,
    },
    /// A connected peer moved to another route.
    RouteSwitched {
        /// The peer.
        peer: PeerId,
        /// The old route's address.
        from: Multiaddr,
        /// The new route's address.
        to: Multiaddr,
        /// The new connection.
        connection: C,
        /// The new route's interface.
        interface: InterfaceId,
        /// Why.
        reason: SwitchReason,
    },
    /// Every dialable route to a peer the app wants failed. When the race
    /// was to replace a connection the peer lost, [`PeerDisconnected`]
    /// comes just before.
    ///
    /// [`PeerDisconnected`]: Event::PeerDisconnected
    PeerUnreachable {
        /// The peer.
        peer: PeerId,
        /// Routes tried in the race that failed.
        tried: usize,
    },
    /// A peer's last connection closed and no route can replace it.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A driver became unhealthy (it failed and backs off) or healthy again.
    DriverHealthChanged {
        /// The driver.
        driver: DriverId,
        /// Whether it is healthy now.
        healthy: bool,
        /// Failures in a row (0 when healthy).
        consecutive_failures: u32,
        /// When it will be tried again, if it backs off.
        retry_at: Option<Timestamp>,
    },
    /// This node's reachability changed ([`Engine::handle_reachability`],
    /// or unknown again after a network change).
    ///
    /// [`Engine::handle_reachability`]: crate::Engine::handle_reachability
    ReachabilityChanged {
        /// What it is now.
        reachability: crate::Reachability,
    },
    /// Events were dropped because nobody polled them in time
    /// ([`Config::max_pending_events`]).
    ///
    /// [`Config::max_pending_events`]: crate::Config::max_pending_events
    EventsDropped {
        /// How many.
        count: u64,
    },
}

impl<C> Event<C> {
    /// The same event with its connection (if it names one) renamed by
    /// `rename`; `None` when `rename` knows no such connection (it closed in
    /// between, say).
    pub fn map_connection<D>(self, rename: impl FnOnce(C) -> Option<D>) -> Option<Event<D>> {
        Some(match self {
            Event::PeerDiscovered { peer, source } => Event::PeerDiscovered { peer, source },
            Event::RouteSelected {
                peer,
                connection,
                addr,
                interface,
                reason,
            } => Event::RouteSelected {
                peer,
                connection: rename(connection)?,
                addr,
                interface,
                reason,
            },
            Event::RouteSwitched {
                peer,
                from,
                to,
                connection,
                interface,
                reason,
            } => Event::RouteSwitched {
                peer,
                from,
                to,
                connection: rename(connection)?,
                interface,
                reason,
            },
            Event::PeerUnreachable { peer, tried } => Event::PeerUnreachable { peer, tried },
            Event::PeerDisconnected { peer } => Event::PeerDisconnected { peer },
            Event::DriverHealthChanged {
                driver,
                healthy,
                consecutive_failures,
                retry_at,
            } => Event::DriverHealthChanged {
                driver,
                healthy,
                consecutive_failures,
                retry_at,
            },
            Event::ReachabilityChanged { reachability } => {
                Event::ReachabilityChanged { reachability }
            }
            Event::EventsDropped { count } => Event::EventsDropped { count },
        })
    }
}

/// A discovery driver instance, numbered by the engine when registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DriverId(pub(crate) u32);

impl DriverId {
    /// The number behind the id.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for DriverId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}", self.0)
    }
}

/// A driver operation (advertise or discover), numbered by the engine; its
/// outcome echoes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub(crate) u64);

impl QueryId {
    /// An id with this number, for driver tests; the engine numbers the
    /// ids of its own commands.
    pub fn from_raw(n: u64) -> Self {
        QueryId(n)
    }

    /// The number behind the id.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for QueryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "q{}", self.0)
    }
}

/// Where a driver finds peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reach {
    /// Only on the local network (mDNS, BLE proximity): run only while a
    /// LAN-capable interface (Wi-Fi, Ethernet, Bluetooth) is up.
    Lan,
    /// Across the internet (DHT, rendezvous): run only while an interface
    /// with validated internet access is up.
    Internet,
}

/// How much battery a driver costs while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EnergyClass {
    /// Occasional small exchanges (a rendezvous registration).
    Low,
    /// Periodic multicast or scanning (mDNS, BLE).
    Medium,
    /// Many connections and background traffic (a DHT).
    High,
}

/// What a driver declares about itself when registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverCaps {
    /// The kind of driver; routes it finds carry this source.
    pub kind: Source,
    /// LAN-only or internet.
    pub reach: Reach,
    /// Its energy class.
    pub energy: EnergyClass,
    /// How long it typically takes to answer.
    pub typical_latency: Duration,
    /// Whether it returns signed peer records.
    pub signed_records: bool,
}

/// The outcome of a driver operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOutcome {
    /// It worked. For a discovery, `found` routes were reported (with
    /// [`Engine::handle_discovered`]) before this outcome.
    ///
    /// [`Engine::handle_discovered`]: crate::Engine::handle_discovered
    Succeeded {
        /// Routes found (0 for an advertisement).
        found: usize,
    },
    /// It failed (unreachable server, timeout, protocol error).
    Failed,
}
