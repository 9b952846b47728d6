//! The local side of routes: which interface a remote address is reached
//! through, fed by OS address events and the host's connectivity hints.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use libp2p::multiaddr::Protocol;
use multiaddr::Multiaddr;
use multidriver_scoring::{Medium, Scope};
use multidriver_transports::connectivity::{
    ConnectivityHint, InterfaceEvent, NetworkId, Watcher, WatcherConfig,
};

use crate::core::{InterfaceId, NetworkChange};

/// A public address the kernel's routing table is asked about (RFC 5737
/// TEST-NET-1; a UDP `connect` sends nothing, it only picks the source).
const PROBE_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// RFC 3849's documentation prefix, for the same question over IPv6.
const PROBE_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

/// The network number the proximity radio's link is tracked under (host
/// hints use the platform's handles, far below it).
const BLUETOOTH_NETWORK: NetworkId = NetworkId(u64::MAX);

#[derive(Debug, Clone)]
struct Local {
    prefix: u8,
    /// The OS interface's name, when known.
    name: Option<String>,
    interface: InterfaceId,
    medium: Medium,
    validated: bool,
}

#[derive(Debug, Clone, Copy)]
struct Hinted {
    medium: Medium,
    validated: bool,
}

/// Local addresses and hinted networks, numbered as engine interfaces.
#[derive(Debug)]
pub(crate) struct Interfaces {
    watcher: Watcher,
    addrs: BTreeMap<IpAddr, Local>,
    hinted: BTreeMap<InterfaceId, Hinted>,
    /// Hinted networks the host warned are going.
    losing: BTreeSet<InterfaceId>,
    /// The proximity radio's link, when a proximity driver runs.
    bluetooth: Option<InterfaceId>,
    /// Remote IP → local source IP the kernel picks; cleared on every
    /// change, and when full.
    lookups: HashMap<IpAddr, Option<IpAddr>>,
    max_lookups: usize,
}

impl Interfaces {
    pub(crate) fn new(max_interfaces: usize, max_lookups: usize) -> Self {
        Interfaces {
            watcher: Watcher::new(WatcherConfig::default().with_max_interfaces(max_interfaces)),
            addrs: BTreeMap::new(),
            hinted: BTreeMap::new(),
            losing: BTreeSet::new(),
            bluetooth: None,
            lookups: HashMap::new(),
            max_lookups,
        }
    }

    /// The OS's addresses now, with interface names, for the first
    /// [`Change`]s before `if-watch` reports anything.
    pub(crate) fn scan() -> Vec<(IpAddr, u8, String)> {
        let Ok(list) = nix::ifaddrs::getifaddrs() else {
            return Vec::new();
        };
        list.filter_map(|a| {
            let addr = a.address?;
            let (ip, prefix) = if let Some(v4) = addr.as_sockaddr_in() {
                let mask = a.netmask.and_then(|m| m.as_sockaddr_in().map(|m| m.ip()));
                (
                    IpAddr::V4(v4.ip()),
                    mask.map_or(32, |m| u32::from(m).count_ones() as u8),
                )
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                let mask = a.netmask.and_then(|m| m.as_sockaddr_in6().map(|m| m.ip()));
                (
                    IpAddr::V6(v6.ip()),
                    mask.map_or(128, |m| u128::from(m).count_ones() as u8),
                )
            } else {
                return None;
            };
            Some((ip, prefix, a.interface_name))
        })
        .collect()
    }

    fn name_of(ip: IpAddr) -> Option<String> {
        Self::scan()
            .into_iter()
            .find(|(a, _, _)| *a == ip)
            .map(|(_, _, name)| name)
    }

    /// An address appeared (`name` when known) or disappeared.
    pub(crate) fn on_address(
        &mut self,
        ip: IpAddr,
        prefix: u8,
        up: bool,
        name: Option<&str>,
    ) -> Result<Option<NetworkChange>, multidriver_transports::Error> {
        self.lookups.clear();
        if up {
            if self.addrs.contains_key(&ip) {
                return Ok(None);
            }
            let looked_up;
            let name = match name {
                Some(n) => Some(n),
                None => {
                    looked_up = Self::name_of(ip);
                    looked_up.as_deref()
                }
            };
            let change = self
                .watcher
                .handle_interface(InterfaceEvent::Up { addr: ip, prefix }, name)?;
            if let Some(NetworkChange::Up {
                interface,
                medium,
                validated,
                ..
            }) = change
            {
                self.addrs.insert(
                    ip,
                    Local {
                        prefix,
                        name: name.map(str::to_owned),
                        interface,
                        medium,
                        validated,
                    },
                );
            }
            Ok(change)
        } else {
            let Some(local) = self.addrs.remove(&ip) else {
                return Ok(None);
            };
            let change = self.watcher.handle_interface(
                InterfaceEvent::Down {
                    addr: ip,
                    prefix: local.prefix,
                },
                None,
            )?;
            Ok(change)
        }
    }

    /// The addresses tracked on the OS interface named `name`.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn addresses_of(&self, name: &str) -> Vec<(IpAddr, u8)> {
        self.addrs
            .iter()
            .filter(|(_, l)| l.name.as_deref() == Some(name))
            .map(|(ip, l)| (*ip, l.prefix))
            .collect()
    }

    /// A host hint.
    pub(crate) fn on_hint(
        &mut self,
        hint: ConnectivityHint,
    ) -> Result<Option<NetworkChange>, multidriver_transports::Error> {
        self.lookups.clear();
        let change = self.watcher.handle_hint(hint)?;
        match change {
            Some(NetworkChange::Up {
                interface,
                medium,
                validated,
                ..
            }) => {
                self.losing.remove(&interface);
                self.hinted.insert(interface, Hinted { medium, validated });
            }
            Some(NetworkChange::Changed {
                interface,
                validated,
                ..
            }) => {
                if let Some(h) = self.hinted.get_mut(&interface) {
                    h.validated = validated;
                }
            }
            Some(NetworkChange::Down { interface }) => {
                self.hinted.remove(&interface);
                self.losing.remove(&interface);
            }
            Some(NetworkChange::Losing { interface }) => {
                self.losing.insert(interface);
            }
            // A kind of change this adapter does not know yet: nothing of
            // its own to track, the engine still gets it.
            Some(_) | None => {}
        }
        Ok(change)
    }

    /// The interface a local address belongs to (the local end of an
    /// inbound connection).
    pub(crate) fn of_local(&self, addr: &Multiaddr) -> Option<InterfaceId> {
        if addr.iter().any(|p| matches!(p, Protocol::Memory(_))) {
            return self.bluetooth;
        }
        let ip = ip_of(addr)?;
        if let Some(l) = self.addrs.get(&ip) {
            return Some(l.interface);
        }
        // Bound to a wildcard, or only hints: the default network, a going
        // one included (the connection came in over it).
        let lan = Scope::of(addr) != Scope::Internet;
        self.hinted_pick(lan, true)
            .or_else(|| self.address_default())
    }

    /// The medium of an interface we numbered.
    pub(crate) fn medium(&self, interface: InterfaceId) -> Medium {
        if self.bluetooth == Some(interface) {
            return Medium::Bluetooth;
        }
        self.addrs
            .values()
            .find(|l| l.interface == interface)
            .map(|l| l.medium)
            .or_else(|| self.hinted.get(&interface).map(|h| h.medium))
            .unwrap_or(Medium::Unknown)
    }

    /// The interface a route to `addr` leaves through:
    ///
    /// - a BLE-style `/memory/` link: the proximity radio's interface;
    /// - an IP address: the interface of the source address the kernel's
    ///   routing table picks for it;
    /// - a DNS name: the interface the kernel picks for the internet;
    /// - when the kernel's pick is not a watched address (the host reports
    ///   networks with hints instead), the hinted network for the
    ///   address's scope: a Wi-Fi or Ethernet network for a LAN address,
    ///   validated or not, else the default validated network.
    ///
    /// `None` when no route exists: the address is unreachable now (it may
    /// become reachable after a network change).
    pub(crate) fn route(&mut self, addr: &Multiaddr) -> Option<InterfaceId> {
        if addr.iter().any(|p| matches!(p, Protocol::Memory(_))) {
            return self.bluetooth;
        }
        let ip = ip_of(addr);
        let is_v6 = matches!(ip, Some(IpAddr::V6(_)))
            || addr.iter().any(|p| matches!(p, Protocol::Dns6(_)));
        let remote = ip.unwrap_or(if is_v6 {
            IpAddr::V6(PROBE_V6)
        } else {
            IpAddr::V4(PROBE_V4)
        });
        let lan = ip.is_some_and(|ip| Scope::of(addr) != Scope::Internet && !ip.is_loopback());
        match self.source_for(remote) {
            Some(source) => self
                .addrs
                .get(&source)
                .map(|l| l.interface)
                .or_else(|| self.hinted_default(lan))
                .or_else(|| self.address_default()),
            // No route in the kernel: only a hinted network can say more
            // (the host may route per network where the kernel cannot).
            None => self.hinted_default(lan),
        }
    }

    /// Brings up the proximity radio's link as an interface; returns its
    /// change for the engine (once).
    pub(crate) fn bring_up_bluetooth(&mut self) -> Option<NetworkChange> {
        if self.bluetooth.is_some() {
            return None;
        }
        let change = self
            .watcher
            .handle_hint(ConnectivityHint::Available {
                network: BLUETOOTH_NETWORK,
                state: multidriver_transports::connectivity::NetworkState {
                    transport: multidriver_transports::connectivity::HostTransport::Bluetooth,
                    ..Default::default()
                },
            })
            .ok()
            .flatten()?;
        if let NetworkChange::Up { interface, .. } = change {
            self.bluetooth = Some(interface);
        }
        Some(change)
    }

    fn source_for(&mut self, remote: IpAddr) -> Option<IpAddr> {
        if let Some(hit) = self.lookups.get(&remote) {
            return *hit;
        }
        let unspecified: IpAddr = match remote {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        // Port 9 (discard): the port is irrelevant, nothing is sent.
        let source = UdpSocket::bind(SocketAddr::new(unspecified, 0))
            .and_then(|s| s.connect(SocketAddr::new(remote, 9)).map(|()| s))
            .and_then(|s| s.local_addr())
            .ok()
            .map(|a| a.ip());
        if self.lookups.len() >= self.max_lookups {
            self.lookups.clear();
        }
        self.lookups.insert(remote, source);
        source
    }

    /// The hinted network a route defaults to: for a LAN address a Wi-Fi or
    /// Ethernet network whatever its validation, one the host warned is
    /// going only if there is no other (a LAN address is not reached over
    /// cellular while the LAN is still there); else a validated one (Wi-Fi
    /// and Ethernet before cellular, as the OSes choose), never one the host
    /// warned is going.
    fn hinted_default(&self, lan: bool) -> Option<InterfaceId> {
        self.hinted_pick(lan, false)
    }

    fn hinted_pick(&self, lan: bool, with_losing: bool) -> Option<InterfaceId> {
        let usable = self.hinted.iter().filter(|(id, h)| {
            (with_losing || !self.losing.contains(id)) && h.medium != Medium::Bluetooth
        });
        if lan {
            let local = self
                .hinted
                .iter()
                .filter(|(_, h)| matches!(h.medium, Medium::Wifi | Medium::Ethernet))
                .min_by_key(|(id, h)| {
                    let going = !with_losing && self.losing.contains(id);
                    (going, default_rank(h.medium), **id)
                });
            if let Some((id, _)) = local {
                return Some(*id);
            }
        }
        usable
            .filter(|(_, h)| h.validated)
            .min_by_key(|(id, h)| (default_rank(h.medium), **id))
            .map(|(id, _)| *id)
    }

    /// Without hints: a validated non-loopback address's interface, else
    /// any address's.
    fn address_default(&self) -> Option<InterfaceId> {
        self.addrs
            .iter()
            .filter(|(ip, _)| !ip.is_loopback())
            .min_by_key(|(_, l)| (!l.validated, default_rank(l.medium), l.interface))
            .or_else(|| self.addrs.iter().next())
            .map(|(_, l)| l.interface)
    }
}

/// The order in which the OSes pick a default network: Ethernet, Wi-Fi,
/// cellular, anything else.
fn default_rank(m: Medium) -> u8 {
    match m {
        Medium::Ethernet => 0,
        Medium::Wifi => 1,
        Medium::Cellular(_) => 2,
        _ => 3,
    }
}

/// The IP address of a multiaddr, if it has one.
pub(crate) fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(a) => Some(IpAddr::V4(a)),
        Protocol::Ip6(a) => Some(IpAddr::V6(a)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_routes_leave_through_the_loopback_address() {
        let mut i = Interfaces::new(16, 8);
        let lo = i
            .on_address(Ipv4Addr::LOCALHOST.into(), 8, true, Some("lo"))
            .unwrap();
        let Some(NetworkChange::Up {
            interface, medium, ..
        }) = lo
        else {
            panic!("loopback came up: {lo:?}");
        };
        assert_eq!(medium, Medium::Loopback);
        let route = i.route(&"/ip4/127.0.0.1/tcp/4001".parse().unwrap());
        assert_eq!(route, Some(interface));
        assert_eq!(
            i.of_local(&"/ip4/127.0.0.1/tcp/1".parse().unwrap()),
            Some(interface)
        );
        // The address goes: so does its interface.
        let down = i
            .on_address(Ipv4Addr::LOCALHOST.into(), 8, false, None)
            .unwrap();
        assert_eq!(down, Some(NetworkChange::Down { interface }));
        assert_eq!(i.route(&"/ip4/127.0.0.1/tcp/4001".parse().unwrap()), None);
    }

    #[test]
    fn hinted_networks_are_the_default_for_unknown_sources() {
        use multidriver_transports::connectivity::{HostTransport, NetworkId, NetworkState};
        let mut i = Interfaces::new(16, 8);
        let state = |t| NetworkState {
            transport: t,
            validated: true,
            ..NetworkState::default()
        };
        let lte = i
            .on_hint(ConnectivityHint::Available {
                network: NetworkId(2),
                state: state(HostTransport::Cellular(
                    multidriver_scoring::CellularGeneration::G4,
                )),
            })
            .unwrap();
        let wifi = i
            .on_hint(ConnectivityHint::Available {
                network: NetworkId(1),
                state: state(HostTransport::Wifi),
            })
            .unwrap();
        let (
            Some(NetworkChange::Up { interface: lte, .. }),
            Some(NetworkChange::Up {
                interface: wifi, ..
            }),
        ) = (lte, wifi)
        else {
            panic!("both networks came up");
        };
        let dns: Multiaddr = "/dns4/example.com/tcp/4001".parse().unwrap();
        assert_eq!(i.route(&dns), Some(wifi), "Wi-Fi is the default network");
        i.on_hint(ConnectivityHint::Lost {
            network: NetworkId(1),
        })
        .unwrap();
        assert_eq!(i.route(&dns), Some(lte), "then cellular");
        assert_eq!(
            i.medium(lte),
            Medium::Cellular(multidriver_scoring::CellularGeneration::G4)
        );
    }
}
