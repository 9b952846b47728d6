//! What crosses the binding: the node's configuration, the host's inputs
//! (networks, lifecycle, battery), the routes and events it reports.

use multidriver::scoring::{CellularGeneration, Lifecycle};
use multidriver::transports::connectivity::{HostTransport, NetworkState};

/// How a [`Node`](crate::Node) starts. Every field has a default in the
/// generated Kotlin, Swift and Python constructors.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct NodeConfig {
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/0` and
    /// `/ip4/0.0.0.0/udp/0/quic-v1` (TCP and QUIC on every interface, ports
    /// chosen by the OS). Empty: no IP listener (proximity links only, or a
    /// node that only dials).
    #[uniffi(default = [])]
    pub listen_addrs: Vec<String>,
    /// Rendezvous points, each `/ip4/…/tcp/…/p2p/<peer id>`.
    #[uniffi(default = [])]
    pub rendezvous_points: Vec<String>,
    /// Find peers on the LAN with mDNS.
    #[uniffi(default = false)]
    pub mdns: bool,
    /// The foreground scoring profile: a preset's name (`performance`,
    /// `balanced`, `battery-saver`, `background`) or a profile file's TOML
    /// text. In the background and while suspended the node uses
    /// `background`, on low battery or in power-saving mode
    /// `battery-saver`.
    #[uniffi(default = "balanced")]
    pub profile: String,
    /// The node's identity from an earlier [`Node::identity`](crate::Node::identity)
    /// (a protobuf-encoded keypair), so that contacts keep finding the same
    /// peer id; `None` makes a new Ed25519 identity. Keep it in the
    /// platform's key store.
    #[uniffi(default = None)]
    pub identity: Option<Vec<u8>>,
    /// Route memory from an earlier [`Node::export_memory`](crate::Node::export_memory):
    /// contacts' last best routes are dialled at once, without
    /// rediscovery.
    #[uniffi(default = None)]
    pub route_memory: Option<Vec<u8>>,
    /// Also watch the OS's interfaces and addresses directly (`if-watch`,
    /// netlink). Off on phones, where the host's network callbacks are the
    /// truth and apps may not read netlink; on for desktop hosts without
    /// such callbacks.
    #[uniffi(default = false)]
    pub watch_os_interfaces: bool,
    /// Most events waiting for the host's listener. At the bound newer
    /// events are dropped and counted, and the next event delivered is a
    /// [`NodeEvent::Warning`] saying how many were lost.
    #[uniffi(default = 1024)]
    pub max_pending_events: u32,
    /// Most host calls waiting for the node's task. At the bound a call
    /// fails with [`MobileError::Busy`](crate::MobileError::Busy) and
    /// nothing is queued.
    #[uniffi(default = 1024)]
    pub max_pending_calls: u32,
}

/// What carries a network, from Android's `NetworkCapabilities.TRANSPORT_*`
/// or iOS's `NWInterface.InterfaceType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
#[non_exhaustive]
pub enum NetworkTransport {
    /// Wi-Fi.
    Wifi,
    /// Cellular; `generation` 2 to 5, or 0 when the host does not know
    /// (Android `TelephonyManager.getDataNetworkType`, iOS
    /// `CTTelephonyNetworkInfo.serviceCurrentRadioAccessTechnology`).
    Cellular {
        /// 2, 3, 4 or 5; 0 for unknown.
        generation: u8,
    },
    /// Wired Ethernet.
    Ethernet,
    /// Bluetooth tethering or PAN.
    Bluetooth,
    /// A VPN.
    Vpn,
    /// Anything else.
    Other,
}

/// What the OS says of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct NetworkInfo {
    /// What carries it.
    pub transport: NetworkTransport,
    /// Billed by volume (Android: no `NET_CAPABILITY_NOT_METERED`).
    #[uniffi(default = false)]
    pub metered: bool,
    /// Expensive (iOS `NWPath.isExpensive`; Android: roaming).
    #[uniffi(default = false)]
    pub expensive: bool,
    /// Constrained (iOS Low Data Mode; Android Data Saver).
    #[uniffi(default = false)]
    pub constrained: bool,
    /// Internet access confirmed (Android `NET_CAPABILITY_VALIDATED`; iOS
    /// path status `.satisfied`).
    #[uniffi(default = true)]
    pub validated: bool,
}

impl NetworkInfo {
    pub(crate) fn state(self) -> NetworkState {
        let transport = match self.transport {
            NetworkTransport::Wifi => HostTransport::Wifi,
            NetworkTransport::Cellular { generation } => {
                HostTransport::Cellular(match generation {
                    2 => CellularGeneration::G2,
                    3 => CellularGeneration::G3,
                    4 => CellularGeneration::G4,
                    5 => CellularGeneration::G5,
                    _ => CellularGeneration::Unknown,
                })
            }
            NetworkTransport::Ethernet => HostTransport::Ethernet,
            NetworkTransport::Bluetooth => HostTransport::Bluetooth,
            NetworkTransport::Vpn => HostTransport::Vpn,
            NetworkTransport::Other => HostTransport::Other,
        };
        NetworkState {
            transport,
            metered: self.metered,
            expensive: self.expensive,
            constrained: self.constrained,
            validated: self.validated,
        }
    }
}

/// The app's lifecycle state (Android `ProcessLifecycleOwner`, iOS scene
/// phases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum AppLifecycle {
    /// Visible to the user (`ON_START`; `.active`).
    Foreground,
    /// Running but not visible (`ON_STOP`; `.background`).
    Background,
    /// The OS grants only short wake-ups (Android Doze; iOS after
    /// `beginBackgroundTask` expired).
    Suspended,
}

impl From<AppLifecycle> for Lifecycle {
    fn from(l: AppLifecycle) -> Self {
        match l {
            AppLifecycle::Foreground => Lifecycle::Foreground,
            AppLifecycle::Background => Lifecycle::Background,
            AppLifecycle::Suspended => Lifecycle::Suspended,
        }
    }
}

/// The device's battery (Android `BatteryManager` and `PowerManager`, iOS
/// `UIDevice` and `ProcessInfo`).
#[derive(Debug, Clone, Copy, PartialEq, uniffi::Record)]
pub struct BatteryInfo {
    /// Charge, `0.0..=1.0`; `None` for a device without a battery.
    pub level: Option<f64>,
    /// Plugged in.
    #[uniffi(default = false)]
    pub charging: bool,
    /// The OS's power-saving mode (Android `isPowerSaveMode`, iOS
    /// `isLowPowerModeEnabled`): treated as a low battery.
    #[uniffi(default = false)]
    pub power_save: bool,
}

/// The route a peer is reached through, and why it was chosen.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct RouteInfo {
    /// The peer.
    pub peer: String,
    /// The route's address.
    pub addr: String,
    /// Its medium: `wifi`, `cellular-4g`, `ethernet`, `bluetooth`,
    /// `relay`, `unknown`...
    pub medium: String,
    /// Whether we dialled it (`false`: the peer dialled us, and the route
    /// has no cost of ours).
    pub dialled: bool,
    /// The total cost it was ranked by, ms-equivalents (lower is better).
    pub cost_ms: f64,
    /// Expected time to a first answer, weighted.
    pub latency_ms: f64,
    /// Modelled battery energy, weighted.
    pub energy_ms: f64,
    /// Estimated failure probability, weighted.
    pub reliability_ms: f64,
    /// The explanation in one line, for logs and UIs.
    pub explanation: String,
}

/// What the node tells the host, in the order it happened.
#[derive(Debug, Clone, PartialEq, uniffi::Enum)]
#[non_exhaustive]
pub enum NodeEvent {
    /// The node listens on a new address.
    Listening {
        /// The address.
        addr: String,
    },
    /// A peer was found for the first time.
    PeerDiscovered {
        /// The peer.
        peer: String,
        /// The driver that found it: `dht`, `rendezvous`, `mdns`,
        /// `proximity`...
        source: String,
    },
    /// A peer became connected over its first route.
    RouteSelected {
        /// The route and why.
        route: RouteInfo,
    },
    /// A connected peer moved to another route.
    RouteSwitched {
        /// The old route's address.
        from: String,
        /// The new route and its cost.
        route: RouteInfo,
        /// Why: `better`, `interface_lost`, `interface_losing`,
        /// `connection_closed`, `hole_punched`.
        reason: String,
    },
    /// A connected peer is no longer connected: its last connection closed
    /// and no route replaces it (a [`NodeEvent::PeerUnreachable`] may
    /// follow when no route could be dialled).
    PeerLost {
        /// The peer.
        peer: String,
    },
    /// Every route to a peer the app wants failed.
    PeerUnreachable {
        /// The peer.
        peer: String,
        /// Routes tried.
        tried: u32,
    },
    /// A message arrived on the trial protocol.
    MessageReceived {
        /// From whom.
        peer: String,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// A message from [`Node::send`](crate::Node::send) was acknowledged.
    MessageDelivered {
        /// To whom.
        peer: String,
        /// The id `send` returned.
        id: u64,
    },
    /// A message from [`Node::send`](crate::Node::send) was not delivered.
    MessageFailed {
        /// To whom.
        peer: String,
        /// The id `send` returned.
        id: u64,
        /// Why.
        reason: String,
    },
    /// A lifecycle or battery input changed the scoring profile in force.
    ProfileChanged {
        /// The profile's name.
        name: String,
    },
    /// Route memory was imported.
    MemoryImported {
        /// Peers remembered.
        peers: u32,
        /// Routes dialable now.
        routes: u32,
        /// Routes waiting for a network of their medium
        /// ([`Node::network_available`](crate::Node::network_available)).
        waiting: u32,
        /// Routes whose lifetime passed while the app was down.
        expired: u32,
    },
    /// Something the host should know but need not act on: a call the
    /// engine refused after it was queued, events dropped, a radio error.
    Warning {
        /// What happened.
        text: String,
    },
}

/// A log level the host sets for the log bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum LogLevel {
    /// Failures.
    Error,
    /// Also what may need attention.
    Warn,
    /// Also the engine's decisions (routes chosen and switched).
    Info,
    /// Also dials, probes and lookups.
    Debug,
    /// Everything.
    Trace,
}

impl From<LogLevel> for tracing::level_filters::LevelFilter {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => Self::ERROR,
            LogLevel::Warn => Self::WARN,
            LogLevel::Info => Self::INFO,
            LogLevel::Debug => Self::DEBUG,
            LogLevel::Trace => Self::TRACE,
        }
    }
}
