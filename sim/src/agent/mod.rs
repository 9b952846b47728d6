//! The policies a node can run, behind one sans-IO interface: the simulator
//! feeds [`Input`]s and performs the [`Output`]s, exactly as the libp2p
//! adapter does for the real engine.

use std::time::Duration;

use multidriver_scoring::{Medium, NetworkConditions, PowerState, Source, Timestamp};

use crate::world::{AddrKey, IfKind, Node, World};

pub(crate) mod classic;
pub(crate) mod engine;
pub(crate) mod oracle;

/// A discovery service instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum DriverRef {
    Dht,
    Rendezvous(u16),
    Mdns,
    Proximity,
}

impl DriverRef {
    pub(crate) fn source(self) -> Source {
        match self {
            DriverRef::Dht => Source::Dht,
            DriverRef::Rendezvous(_) => Source::Rendezvous,
            DriverRef::Mdns => Source::Mdns,
            DriverRef::Proximity => Source::Proximity,
        }
    }
}

/// Peers a discovery answer found.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    pub(crate) peer: u32,
    pub(crate) addrs: Vec<AddrKey>,
    pub(crate) ttl: Duration,
    pub(crate) signed: bool,
}

/// What the simulator tells a policy.
#[derive(Debug, Clone)]
pub(crate) enum Input {
    /// The node came online (the app started).
    Start,
    /// An interface came up or attached to a new network.
    Up {
        kind: IfKind,
        medium: Medium,
        conditions: NetworkConditions,
        validated: bool,
    },
    /// The OS reports an interface gone.
    Down {
        kind: IfKind,
    },
    /// The host warns an interface is going.
    Losing {
        kind: IfKind,
    },
    /// Power or lifecycle changed.
    Power(PowerState),
    /// A discovery operation ended (`found` empty for an advertisement).
    Answer {
        query: u64,
        driver: DriverRef,
        ok: bool,
        found: Vec<Found>,
    },
    DialSucceeded {
        conn: u64,
    },
    DialFailed {
        conn: u64,
    },
    /// The policy's keep-alive machinery noticed a dead connection.
    ConnectionLost {
        conn: u64,
    },
    /// The swarm closed an idle connection (no app stream for a while).
    IdleClosed {
        conn: u64,
    },
    /// A ping answered.
    Rtt {
        conn: u64,
        rtt: Duration,
    },
    /// The app has a message for a contact it is not connected to.
    NeedPeer {
        peer: u32,
    },
    /// The app sends a message to a contact over its connection.
    AppTraffic {
        peer: u32,
    },
    /// Paths to this contact changed (only the oracle is told).
    PathsChanged {
        peer: u32,
    },
    /// DCUtR over the relayed connection `relayed` opened a direct path to
    /// `peer`'s address `addr` from the interface `via`. The policy takes
    /// the new connection with [`Output::Adopt`] (or leaves it).
    HolePunched {
        relayed: u64,
        peer: u32,
        addr: AddrKey,
        via: IfKind,
    },
    /// Every DCUtR attempt over a relayed connection to `peer` (leaving
    /// through `via`) failed; the circuit stays.
    HolePunchFailed {
        peer: u32,
        via: IfKind,
    },
}

/// What a policy asks the simulator to do.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    Dial {
        conn: u64,
        peer: u32,
        addr: AddrKey,
        /// The interface to bind to; `None` lets the OS route it.
        via: Option<IfKind>,
    },
    CancelDial {
        conn: u64,
    },
    Close {
        conn: u64,
    },
    Advertise {
        query: u64,
        driver: DriverRef,
    },
    StopAdvertising {
        driver: DriverRef,
    },
    /// Look up `peer`'s namespace; `None` for an unscoped query (a plain
    /// mDNS or BLE scan that reports every contact it hears).
    Discover {
        query: u64,
        driver: DriverRef,
        peer: Option<u32>,
    },
    /// One keep-alive on each of these connections now.
    KeepAlive {
        conns: Vec<u64>,
    },
    /// The connection app traffic to `peer` now uses (`None`: none).
    Primary {
        peer: u32,
        conn: Option<u64>,
    },
    /// The direct connection a hole punch opened ([`Input::HolePunched`]),
    /// numbered `conn` by the policy.
    Adopt {
        conn: u64,
        peer: u32,
        addr: AddrKey,
        via: IfKind,
    },
}

/// How a policy's stack keeps a connection alive and notices it died.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Liveness {
    /// A ping every this long (libp2p-ping), if the stack pings by itself.
    pub(crate) ping_every: Option<Duration>,
    /// How long after the first unanswered ping the stack reports the
    /// connection dead (libp2p-ping reports only its second failure);
    /// `None` when the policy decides that itself (the engine times its own
    /// probes).
    pub(crate) ping_timeout: Option<Duration>,
    /// QUIC keep-alive packets every this long.
    pub(crate) quic_keepalive: Option<Duration>,
    /// QUIC closes a connection that received nothing for this long.
    pub(crate) quic_idle: Option<Duration>,
    /// The swarm closes a connection without app streams for this long.
    pub(crate) idle_close: Option<Duration>,
}

/// libp2p-ping: every 15 s, 20 s timeout (libp2p-ping `handler.rs`,
/// docs/PARAMETERS.md).
pub(crate) const PING_INTERVAL: Duration = Duration::from_secs(15);
/// See [`PING_INTERVAL`].
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(20);
/// libp2p-quic: keep-alive 5 s, max idle 10 s (libp2p-quic 0.14
/// `config.rs`, docs/PARAMETERS.md).
pub(crate) const QUIC_KEEPALIVE: Duration = Duration::from_secs(5);
/// See [`QUIC_KEEPALIVE`].
pub(crate) const QUIC_IDLE: Duration = Duration::from_secs(10);
/// libp2p-swarm's idle connection timeout, 10 s (libp2p-swarm `Config`).
pub(crate) const SWARM_IDLE: Duration = Duration::from_secs(10);

/// A node's policy.
pub(crate) trait Agent: Send {
    fn handle(&mut self, input: Input, now: Timestamp, world: &World);
    fn handle_timeout(&mut self, now: Timestamp, world: &World);
    fn poll_timeout(&self) -> Option<Timestamp>;
    fn poll_output(&mut self) -> Option<Output>;
    /// How connections this policy opens are kept alive.
    fn liveness(&self, quic: bool, medium: Medium) -> Liveness;
    /// Whether the simulator should tell it [`Input::PathsChanged`].
    fn wants_path_changes(&self) -> bool {
        false
    }
    /// What it remembers across an app restart, as the bytes an app would
    /// store; `None` for a policy that remembers nothing.
    fn export_memory(&self, _now: Timestamp) -> Option<Vec<u8>> {
        None
    }
    /// Takes what [`Agent::export_memory`] stored, before
    /// [`Input::Start`].
    fn import_memory(&mut self, _stored: &[u8], _now: Timestamp) {}
}

/// The input that reports `kind` up with the node's current conditions:
/// cellular is metered and expensive, as Android reports it by default.
pub(crate) fn up_input(node: &Node, kind: IfKind, world: &World) -> Input {
    let cellular = kind == IfKind::Cellular;
    Input::Up {
        kind,
        medium: node.medium(kind),
        conditions: NetworkConditions {
            metered: cellular,
            expensive: cellular,
            constrained: false,
        },
        validated: node.has_internet(kind, world),
    }
}
