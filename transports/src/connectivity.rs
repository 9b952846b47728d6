//! The connectivity watcher: OS interface events and the host app's network
//! hints, turned into one stream of interface changes for the engine.
//!
//! Two sources describe the device's networks:
//!
//! - **Host hints** ([`ConnectivityHint`]), pushed by the app from Android's
//!   `ConnectivityManager.NetworkCallback` or iOS's `NWPathMonitor`. They
//!   carry what the OS knows and address lists do not: the medium, whether
//!   the network is metered or expensive, constrained (Low Data Mode, Data
//!   Saver), validated (internet access confirmed), and the warning that it
//!   is about to go (`onLosing`).
//! - **Interface events** ([`InterfaceEvent`]), from `if-watch` on desktops
//!   and servers: an address appeared or disappeared. The medium is guessed
//!   from the interface name when the caller knows it ([`classify`]).
//!
//! [`Watcher`] numbers each network or address with an [`InterfaceId`] and
//! reports the engine core's own [`NetworkChange`]s, ready for its
//! network-change input. It is sans-IO: feed it events, act on what it
//! returns.
//!
//! ```
//! use multidriver_core::NetworkChange as Change;
//! use multidriver_transports::connectivity::{
//!     ConnectivityHint, HostTransport, NetworkId, NetworkState, Watcher, WatcherConfig,
//! };
//!
//! let mut watcher = Watcher::new(WatcherConfig::default());
//! let wifi = NetworkId(100); // Android's `Network` handle, say
//! let state = NetworkState { transport: HostTransport::Wifi, validated: true, ..NetworkState::default() };
//! let up = watcher.handle_hint(ConnectivityHint::Available { network: wifi, state })?;
//! assert!(matches!(up, Some(Change::Up { validated: true, .. })));
//! let going = watcher.handle_hint(ConnectivityHint::Losing { network: wifi })?;
//! assert!(matches!(going, Some(Change::Losing { .. })));
//! let gone = watcher.handle_hint(ConnectivityHint::Lost { network: wifi })?;
//! assert!(matches!(gone, Some(Change::Down { .. })));
//! # Ok::<(), multidriver_transports::Error>(())
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;

pub use multidriver_core::{InterfaceId, NetworkChange};

use multidriver_scoring::{CellularGeneration, Medium, NetworkConditions};

use crate::Error;

/// The host's handle of a network (Android's `Network.getNetworkHandle()`,
/// or an index the iOS app gives each `NWInterface`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetworkId(pub u64);

/// What carries a network, as the host reports it (Android
/// `NetworkCapabilities.TRANSPORT_*`, iOS `NWInterface.InterfaceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum HostTransport {
    /// Wi-Fi.
    Wifi,
    /// Cellular, with its generation when the host knows it.
    Cellular(CellularGeneration),
    /// Wired Ethernet.
    Ethernet,
    /// Bluetooth tethering or PAN.
    Bluetooth,
    /// A VPN over some other network.
    Vpn,
    /// Anything else, or not known.
    #[default]
    Other,
}

impl HostTransport {
    /// The medium routes over this network are scored as. A VPN's medium is
    /// the underlying network's, which the host does not say: unknown.
    pub fn medium(self) -> Medium {
        match self {
            HostTransport::Wifi => Medium::Wifi,
            HostTransport::Cellular(g) => Medium::Cellular(g),
            HostTransport::Ethernet => Medium::Ethernet,
            HostTransport::Bluetooth => Medium::Bluetooth,
            HostTransport::Vpn | HostTransport::Other => Medium::Unknown,
        }
    }
}

/// What the host knows of a network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkState {
    /// What carries it.
    pub transport: HostTransport,
    /// Billed by volume (Android: lacks `NET_CAPABILITY_NOT_METERED`).
    pub metered: bool,
    /// Expensive (iOS `NWPath.isExpensive`; Android: roaming).
    pub expensive: bool,
    /// Constrained (iOS Low Data Mode; Android Data Saver).
    pub constrained: bool,
    /// Internet access confirmed (Android `NET_CAPABILITY_VALIDATED`; iOS
    /// path status `satisfied`).
    pub validated: bool,
}

impl NetworkState {
    fn conditions(self) -> NetworkConditions {
        NetworkConditions {
            metered: self.metered,
            expensive: self.expensive,
            constrained: self.constrained,
        }
    }
}

/// A report from the host app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectivityHint {
    /// A network became available (`onAvailable`; a new `NWInterface` in
    /// the path).
    Available {
        /// The network.
        network: NetworkId,
        /// What the host knows of it.
        state: NetworkState,
    },
    /// Its capabilities changed (`onCapabilitiesChanged`; a path update).
    Changed {
        /// The network.
        network: NetworkId,
        /// Its new state.
        state: NetworkState,
    },
    /// It is about to go (`onLosing`).
    Losing {
        /// The network.
        network: NetworkId,
    },
    /// It is gone (`onLost`; the interface left the path).
    Lost {
        /// The network.
        network: NetworkId,
    },
}

/// An address event from the OS (what `if-watch` reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InterfaceEvent {
    /// An address appeared.
    Up {
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix: u8,
    },
    /// An address disappeared.
    Down {
        /// The address.
        addr: IpAddr,
        /// Its prefix length.
        prefix: u8,
    },
}

/// Bounds of a [`Watcher`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatcherConfig {
    pub(crate) max_interfaces: usize,
}

/// Read access to every setting; each says what happens at its bound.
impl WatcherConfig {
    /// Most networks and addresses tracked at once. At the bound a new one
    /// is refused with [`Error::TableFull`] and nothing changes; the host
    /// should report a `Lost` or an address `Down` first. Default 16, the
    /// engine's own interface bound.
    pub fn max_interfaces(&self) -> usize {
        self.max_interfaces
    }

    /// Builder: sets [`max_interfaces`](Self::max_interfaces).
    pub fn with_max_interfaces(mut self, max_interfaces: usize) -> Self {
        self.max_interfaces = max_interfaces;
        self
    }
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig { max_interfaces: 16 }
    }
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    interface: InterfaceId,
    state: NetworkState,
}

/// Turns host hints and interface events into [`NetworkChange`]s.
#[derive(Debug, Clone)]
pub struct Watcher {
    config: WatcherConfig,
    networks: BTreeMap<NetworkId, Tracked>,
    addresses: BTreeMap<(IpAddr, u8), InterfaceId>,
    next: u32,
}

impl Watcher {
    /// A watcher with nothing up.
    pub fn new(config: WatcherConfig) -> Self {
        Watcher {
            config,
            networks: BTreeMap::new(),
            addresses: BTreeMap::new(),
            next: 1,
        }
    }

    /// How many networks and addresses are tracked.
    pub fn len(&self) -> usize {
        self.networks.len() + self.addresses.len()
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn allocate(&mut self) -> Result<InterfaceId, Error> {
        if self.len() >= self.config.max_interfaces {
            return Err(Error::TableFull {
                table: "interfaces",
                limit: self.config.max_interfaces,
            });
        }
        let id = InterfaceId(self.next);
        // Numbers are never reused while the watcher lives, so a late
        // report about a gone interface cannot hit a new one.
        self.next = self.next.wrapping_add(1).max(1);
        Ok(id)
    }

    /// Takes a hint from the host. Returns the change for the engine, or
    /// `None` when nothing changed (a repeated report, or news of a network
    /// never reported available).
    ///
    /// # Errors
    /// [`Error::TableFull`] for a new network beyond
    /// [`WatcherConfig::max_interfaces`]; nothing is recorded.
    pub fn handle_hint(&mut self, hint: ConnectivityHint) -> Result<Option<NetworkChange>, Error> {
        Ok(match hint {
            // Android may report capabilities before `onAvailable`: an
            // unknown network is treated as available either way.
            ConnectivityHint::Available { network, state }
            | ConnectivityHint::Changed { network, state } => match self.networks.get_mut(&network)
            {
                Some(t) if t.state == state => None,
                // Another medium is another attachment as far as routes go.
                Some(t) if t.state.transport == state.transport => {
                    t.state = state;
                    Some(NetworkChange::Changed {
                        interface: t.interface,
                        conditions: state.conditions(),
                        validated: state.validated,
                    })
                }
                Some(t) => {
                    t.state = state;
                    Some(up(t.interface, state))
                }
                None => {
                    let interface = self.allocate()?;
                    self.networks.insert(network, Tracked { interface, state });
                    Some(up(interface, state))
                }
            },
            ConnectivityHint::Losing { network } => {
                self.networks.get(&network).map(|t| NetworkChange::Losing {
                    interface: t.interface,
                })
            }
            ConnectivityHint::Lost { network } => {
                self.networks.remove(&network).map(|t| NetworkChange::Down {
                    interface: t.interface,
                })
            }
        })
    }

    /// Takes an address event from the OS; `name` is the interface's name
    /// when the caller knows it (for [`classify`]). Without host hints the
    /// OS says nothing of cost or validation: addresses are reported
    /// unmetered and validated, except link-local ones (no internet).
    ///
    /// # Errors
    /// [`Error::TableFull`] for a new address beyond
    /// [`WatcherConfig::max_interfaces`]; nothing is recorded.
    pub fn handle_interface(
        &mut self,
        event: InterfaceEvent,
        name: Option<&str>,
    ) -> Result<Option<NetworkChange>, Error> {
        Ok(match event {
            InterfaceEvent::Up { addr, prefix } => {
                if self.addresses.contains_key(&(addr, prefix)) {
                    return Ok(None);
                }
                let interface = self.allocate()?;
                self.addresses.insert((addr, prefix), interface);
                Some(NetworkChange::Up {
                    interface,
                    medium: classify(addr, name),
                    conditions: NetworkConditions::default(),
                    validated: !is_link_local(addr),
                })
            }
            InterfaceEvent::Down { addr, prefix } => self
                .addresses
                .remove(&(addr, prefix))
                .map(|interface| NetworkChange::Down { interface }),
        })
    }
}

fn up(interface: InterfaceId, state: NetworkState) -> NetworkChange {
    NetworkChange::Up {
        interface,
        medium: state.transport.medium(),
        conditions: state.conditions(),
        validated: state.validated,
    }
}

fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.is_unicast_link_local(),
    }
}

/// The medium of a local address, from its interface name when known.
///
/// Names follow the OS conventions: Linux `wlan*`/`wlp*` (Wi-Fi),
/// `eth*`/`enp*`/`eno*`/`ens*`/`enx*` (Ethernet), Android `rmnet*`/`ccmni*`
/// and iOS `pdp_ip*` and Linux `wwan*`/`wwp*` (cellular), `bnep*`/`bt-pan`
/// (Bluetooth PAN), `lo`/`lo0` (loopback). macOS `en*` names both Wi-Fi and
/// Ethernet, and tunnels (`utun*`, `tun*`, `wg*`) hide the medium: those are
/// [`Medium::Unknown`], as is any address without a name except loopback.
pub fn classify(addr: IpAddr, name: Option<&str>) -> Medium {
    if addr.is_loopback() {
        return Medium::Loopback;
    }
    let Some(name) = name else {
        return Medium::Unknown;
    };
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| name.starts_with(p));
    if name == "lo" || name == "lo0" {
        Medium::Loopback
    } else if starts(&["wlan", "wlp", "wlx", "wifi", "ath"]) {
        Medium::Wifi
    } else if starts(&["rmnet", "ccmni", "pdp_ip", "wwan", "wwp", "seth_lte"]) {
        Medium::Cellular(CellularGeneration::Unknown)
    } else if starts(&["bnep", "bt-pan"]) {
        Medium::Bluetooth
    } else if starts(&["eth", "enp", "eno", "ens", "enx"]) {
        Medium::Ethernet
    } else {
        Medium::Unknown
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn state(transport: HostTransport) -> NetworkState {
        NetworkState {
            transport,
            validated: true,
            ..NetworkState::default()
        }
    }

    #[test]
    fn a_phone_moving_from_wifi_to_lte() {
        let mut w = Watcher::new(WatcherConfig::default());
        let (wifi, lte) = (NetworkId(1), NetworkId(2));
        let g4 = HostTransport::Cellular(CellularGeneration::G4);
        let Some(NetworkChange::Up {
            interface: wi,
            medium,
            ..
        }) = w
            .handle_hint(ConnectivityHint::Available {
                network: wifi,
                state: state(HostTransport::Wifi),
            })
            .unwrap()
        else {
            panic!("up")
        };
        assert_eq!(medium, Medium::Wifi);
        let metered = NetworkState {
            metered: true,
            ..state(g4)
        };
        let Some(NetworkChange::Up {
            interface: li,
            medium,
            conditions,
            ..
        }) = w
            .handle_hint(ConnectivityHint::Available {
                network: lte,
                state: metered,
            })
            .unwrap()
        else {
            panic!("up")
        };
        assert_ne!(wi, li);
        assert_eq!(medium, Medium::Cellular(CellularGeneration::G4));
        assert!(conditions.metered);
        // A repeated report changes nothing.
        assert_eq!(
            w.handle_hint(ConnectivityHint::Changed {
                network: lte,
                state: metered
            })
            .unwrap(),
            None
        );
        // Validation lost on Wi-Fi: a change, same interface.
        let unvalidated = NetworkState {
            validated: false,
            ..state(HostTransport::Wifi)
        };
        assert_eq!(
            w.handle_hint(ConnectivityHint::Changed {
                network: wifi,
                state: unvalidated
            })
            .unwrap(),
            Some(NetworkChange::Changed {
                interface: wi,
                conditions: NetworkConditions::default(),
                validated: false
            })
        );
        assert_eq!(
            w.handle_hint(ConnectivityHint::Losing { network: wifi })
                .unwrap(),
            Some(NetworkChange::Losing { interface: wi })
        );
        assert_eq!(
            w.handle_hint(ConnectivityHint::Lost { network: wifi })
                .unwrap(),
            Some(NetworkChange::Down { interface: wi })
        );
        // News of a network that is gone, or never came: nothing.
        assert_eq!(
            w.handle_hint(ConnectivityHint::Lost { network: wifi })
                .unwrap(),
            None
        );
        assert_eq!(
            w.handle_hint(ConnectivityHint::Losing {
                network: NetworkId(9)
            })
            .unwrap(),
            None
        );
        // Wi-Fi comes back: a new number, never the old one.
        let Some(NetworkChange::Up {
            interface: again, ..
        }) = w
            .handle_hint(ConnectivityHint::Available {
                network: wifi,
                state: state(HostTransport::Wifi),
            })
            .unwrap()
        else {
            panic!("up")
        };
        assert!(again != wi && again != li);
    }

    #[test]
    fn a_new_medium_on_the_same_handle_is_a_new_attachment() {
        let mut w = Watcher::new(WatcherConfig::default());
        let n = NetworkId(7);
        w.handle_hint(ConnectivityHint::Available {
            network: n,
            state: state(HostTransport::Other),
        })
        .unwrap();
        let c = w
            .handle_hint(ConnectivityHint::Changed {
                network: n,
                state: state(HostTransport::Wifi),
            })
            .unwrap();
        assert!(
            matches!(
                c,
                Some(NetworkChange::Up {
                    medium: Medium::Wifi,
                    ..
                })
            ),
            "{c:?}"
        );
    }

    #[test]
    fn the_table_is_bounded_and_a_refusal_records_nothing() {
        let mut w = Watcher::new(WatcherConfig { max_interfaces: 2 });
        for n in 0..2 {
            w.handle_hint(ConnectivityHint::Available {
                network: NetworkId(n),
                state: state(HostTransport::Wifi),
            })
            .unwrap();
        }
        let e = w
            .handle_interface(
                InterfaceEvent::Up {
                    addr: Ipv4Addr::new(192, 168, 1, 2).into(),
                    prefix: 24,
                },
                None,
            )
            .unwrap_err();
        assert_eq!(
            e,
            Error::TableFull {
                table: "interfaces",
                limit: 2
            }
        );
        assert!(e.to_string().contains("2"), "{e}");
        assert_eq!(w.len(), 2);
        w.handle_hint(ConnectivityHint::Lost {
            network: NetworkId(0),
        })
        .unwrap();
        assert!(
            w.handle_interface(
                InterfaceEvent::Up {
                    addr: Ipv4Addr::new(192, 168, 1, 2).into(),
                    prefix: 24
                },
                None
            )
            .unwrap()
            .is_some()
        );
    }

    #[test]
    fn addresses_from_the_os() {
        let mut w = Watcher::new(WatcherConfig::default());
        let a: IpAddr = Ipv4Addr::new(10, 0, 0, 5).into();
        let Some(NetworkChange::Up {
            interface,
            medium,
            validated,
            ..
        }) = w
            .handle_interface(
                InterfaceEvent::Up {
                    addr: a,
                    prefix: 24,
                },
                Some("wlp2s0"),
            )
            .unwrap()
        else {
            panic!("up")
        };
        assert_eq!((medium, validated), (Medium::Wifi, true));
        assert_eq!(
            w.handle_interface(
                InterfaceEvent::Up {
                    addr: a,
                    prefix: 24
                },
                Some("wlp2s0")
            )
            .unwrap(),
            None
        );
        let ll: IpAddr = "fe80::1".parse::<Ipv6Addr>().unwrap().into();
        let Some(NetworkChange::Up { validated, .. }) = w
            .handle_interface(
                InterfaceEvent::Up {
                    addr: ll,
                    prefix: 64,
                },
                None,
            )
            .unwrap()
        else {
            panic!("up")
        };
        assert!(!validated, "link-local has no internet");
        assert_eq!(
            w.handle_interface(
                InterfaceEvent::Down {
                    addr: a,
                    prefix: 24
                },
                None
            )
            .unwrap(),
            Some(NetworkChange::Down { interface })
        );
    }

    #[test]
    fn names_classify_the_medium() {
        let a: IpAddr = Ipv4Addr::new(192, 168, 1, 2).into();
        for (name, medium) in [
            ("wlan0", Medium::Wifi),
            ("wlp3s0", Medium::Wifi),
            ("rmnet_data0", Medium::Cellular(CellularGeneration::Unknown)),
            ("ccmni1", Medium::Cellular(CellularGeneration::Unknown)),
            ("pdp_ip0", Medium::Cellular(CellularGeneration::Unknown)),
            ("eth0", Medium::Ethernet),
            ("enp0s31f6", Medium::Ethernet),
            ("bnep0", Medium::Bluetooth),
            ("lo", Medium::Loopback),
            ("en0", Medium::Unknown),
            ("utun3", Medium::Unknown),
        ] {
            assert_eq!(classify(a, Some(name)), medium, "{name}");
        }
        assert_eq!(classify(Ipv4Addr::LOCALHOST.into(), None), Medium::Loopback);
        assert_eq!(classify(a, None), Medium::Unknown);
    }
}
