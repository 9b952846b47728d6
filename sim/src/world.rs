//! The simulated world: nodes, their interfaces and addresses, the paths
//! between them, radios, and the discovery services.

use std::net::Ipv4Addr;
use std::time::Duration;

use multiaddr::{Multiaddr, Protocol};
use multidriver_scoring::rtt::access_hop;
use multidriver_scoring::{CellularGeneration, Medium, PowerState, Timestamp};

use libp2p_identity::PeerId;

use crate::nat::{PunchSide, admits_unsolicited, punchable};
use crate::rng::Rng;
use crate::scenario::{CellularKind, Nat, Scenario};

mod radio;
pub(crate) use radio::{Cause, Radio, radios};

/// A node's interface slots. BLE is a discovery radio only (see the crate
/// docs: the BLE data transport comes with the libp2p adapter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum IfKind {
    Wifi = 0,
    Ethernet = 1,
    Cellular = 2,
    Ble = 3,
}

impl IfKind {
    pub(crate) const ALL: [IfKind; 4] = [
        IfKind::Wifi,
        IfKind::Ethernet,
        IfKind::Cellular,
        IfKind::Ble,
    ];
    /// Interfaces that carry IP traffic.
    pub(crate) const IP: [IfKind; 3] = [IfKind::Wifi, IfKind::Ethernet, IfKind::Cellular];

    pub(crate) fn from_index(i: u32) -> Option<IfKind> {
        IfKind::ALL.get(i as usize).copied()
    }
}

/// One interface of a node.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Iface {
    pub(crate) up: bool,
    /// Up, but silently passing nothing.
    pub(crate) stalled: bool,
    /// The host warned it is going (until it goes or attaches again).
    pub(crate) losing: bool,
    /// The LAN it is attached to (Wi-Fi, Ethernet).
    pub(crate) lan: Option<u16>,
    /// Changes whenever the interface gets a new address.
    pub(crate) epoch: u16,
    /// Counts attachments: connections made over an earlier attachment died
    /// with it, even where the address is the same again.
    pub(crate) attach: u32,
}

impl Iface {
    /// An interface that is up and passing packets, on `lan` (Wi-Fi,
    /// Ethernet) or none (cellular), with its address epoch and attachment
    /// count.
    pub(crate) fn attached(lan: Option<u16>, epoch: u16, attach: u32) -> Iface {
        Iface {
            up: true,
            stalled: false,
            losing: false,
            lan,
            epoch,
            attach,
        }
    }
}

/// An address of a node, as the simulator encodes it into a multiaddr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct AddrKey {
    pub(crate) node: u32,
    pub(crate) kind: IfKind,
    pub(crate) epoch: u16,
    /// A private LAN address (reachable only from the same LAN).
    pub(crate) lan: bool,
    pub(crate) quic: bool,
    /// A relayed address (`/p2p-circuit`) through this relay (a rendezvous
    /// point's index): `node` is the peer behind the relay, and `kind` and
    /// `epoch` mean nothing (the peer's reservation is over whichever
    /// interface it routes through, [`World::reservation`]).
    pub(crate) relay: Option<u16>,
}

/// Port numbers encode the epoch and the interface kind.
const PORT_BASE: u16 = 10_000;
const EPOCHS: u16 = 13_000;

/// The first octet of a relay's public address (`20.0.hi.lo`, the relay's
/// index in the low two octets).
const RELAY_NET: u8 = 20;

impl AddrKey {
    /// `node`'s relayed address through relay `relay`.
    pub(crate) fn relayed(node: u32, relay: u16) -> AddrKey {
        AddrKey {
            node,
            kind: IfKind::Wifi,
            epoch: 0,
            lan: false,
            quic: true,
            relay: Some(relay),
        }
    }

    /// A direct public address of `node` over `kind` at `epoch`, QUIC.
    pub(crate) fn public(node: u32, kind: IfKind, epoch: u16) -> AddrKey {
        AddrKey {
            node,
            kind,
            epoch,
            lan: false,
            quic: true,
            relay: None,
        }
    }

    /// The multiaddr of a direct address; a relayed one needs the peer ids
    /// ([`AddrKey::to_multiaddr_with`]).
    pub(crate) fn to_multiaddr(self) -> Multiaddr {
        let [_, b, c, d] = self.node.to_be_bytes();
        // LAN addresses in 10/8 (private, so scoring sees a LAN scope);
        // public ones in 21/8–23/8 by interface kind.
        let first = if self.lan { 10 } else { 21 + self.kind as u8 };
        let port = PORT_BASE + (self.epoch % EPOCHS) * 4 + self.kind as u16;
        let ip = Multiaddr::empty().with(Protocol::Ip4(Ipv4Addr::new(first, b, c, d)));
        if self.quic {
            ip.with(Protocol::Udp(port)).with(Protocol::QuicV1)
        } else {
            ip.with(Protocol::Tcp(port))
        }
    }

    /// The multiaddr of any address: a relayed one is the relay's QUIC
    /// address, its peer id, `/p2p-circuit` and the peer's id.
    pub(crate) fn to_multiaddr_with(
        self,
        relays: &[PeerId],
        peers: &[PeerId],
    ) -> Option<Multiaddr> {
        let Some(r) = self.relay else {
            return Some(self.to_multiaddr());
        };
        let [_, _, hi, lo] = u32::from(r).to_be_bytes();
        Some(
            Multiaddr::empty()
                .with(Protocol::Ip4(Ipv4Addr::new(RELAY_NET, 0, hi, lo)))
                .with(Protocol::Udp(4001))
                .with(Protocol::QuicV1)
                .with(Protocol::P2p(*relays.get(usize::from(r))?))
                .with(Protocol::P2pCircuit)
                .with(Protocol::P2p(*peers.get(self.node as usize)?)),
        )
    }

    /// Reads an address [`AddrKey::to_multiaddr_with`] wrote; `index` finds
    /// a relayed address's peer.
    pub(crate) fn from_multiaddr_with(
        addr: &Multiaddr,
        index: &std::collections::HashMap<PeerId, u32>,
    ) -> Option<AddrKey> {
        if !addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
            return AddrKey::from_multiaddr(addr);
        }
        let mut relay = None;
        let mut peer = None;
        for p in addr.iter() {
            match p {
                Protocol::Ip4(a) => {
                    let [first, _, hi, lo] = a.octets();
                    if first == RELAY_NET {
                        relay = Some(u16::from_be_bytes([hi, lo]));
                    }
                }
                Protocol::P2p(id) => peer = Some(id),
                _ => {}
            }
        }
        Some(AddrKey::relayed(*index.get(&peer?)?, relay?))
    }

    pub(crate) fn from_multiaddr(addr: &Multiaddr) -> Option<AddrKey> {
        let mut ip = None;
        let mut port = None;
        let mut quic = false;
        for p in addr.iter() {
            match p {
                Protocol::Ip4(a) => ip = Some(a),
                Protocol::Tcp(p) => port = Some(p),
                Protocol::Udp(p) => port = Some(p),
                Protocol::QuicV1 => quic = true,
                _ => {}
            }
        }
        let [first, b, c, d] = ip?.octets();
        let port = port?.checked_sub(PORT_BASE)?;
        let kind = IfKind::from_index(u32::from(port % 4))?;
        Some(AddrKey {
            node: u32::from_be_bytes([0, b, c, d]),
            kind,
            epoch: port / 4,
            lan: first == 10,
            quic,
            relay: None,
        })
    }
}

/// The class of a path, for "is this the best route": which interface it
/// leaves through, which it reaches, and whether it stays on the LAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PathClass {
    pub(crate) from: IfKind,
    pub(crate) to: IfKind,
    pub(crate) lan: bool,
    /// Through a relay.
    pub(crate) relayed: bool,
}

/// A node of the world.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) region: u16,
    pub(crate) online: bool,
    pub(crate) ifaces: [Iface; 4],
    pub(crate) cellular: Option<CellularKind>,
    pub(crate) position: [f64; 2],
    pub(crate) power: PowerState,
    pub(crate) contacts: Vec<u32>,
    pub(crate) radios: [Radio; 4],
    /// Answers mDNS queries on its LANs.
    pub(crate) mdns_visible: bool,
    /// Advertises over BLE.
    pub(crate) ble_visible: bool,
    /// The address epoch a cellular attach uses next.
    pub(crate) next_cell_epoch: u16,
    /// The NAT of its cellular carrier (Wi-Fi and Ethernet have their
    /// LAN's).
    pub(crate) cell_nat: Nat,
}

impl Node {
    pub(crate) fn medium(&self, kind: IfKind) -> Medium {
        match kind {
            IfKind::Wifi => Medium::Wifi,
            IfKind::Ethernet => Medium::Ethernet,
            IfKind::Cellular => Medium::Cellular(match self.cellular {
                Some(CellularKind::G5) => CellularGeneration::G5,
                _ => CellularGeneration::G4,
            }),
            IfKind::Ble => Medium::Bluetooth,
        }
    }

    pub(crate) fn usable(&self, kind: IfKind) -> bool {
        let i = &self.ifaces[kind as usize];
        self.online && i.up && !i.stalled
    }

    /// Whether the interface reaches the internet (validated).
    pub(crate) fn has_internet(&self, kind: IfKind, world: &World) -> bool {
        let i = &self.ifaces[kind as usize];
        i.up && match kind {
            IfKind::Cellular => true,
            IfKind::Wifi | IfKind::Ethernet => {
                i.lan.is_some_and(|l| world.lans[l as usize].internet)
            }
            IfKind::Ble => false,
        }
    }

    /// The interface the OS routes internet traffic through: Ethernet, then
    /// validated Wi-Fi, then cellular (Android keeps cellular as the default
    /// network while Wi-Fi is unvalidated).
    pub(crate) fn default_route(&self, world: &World) -> Option<IfKind> {
        if !self.online {
            return None;
        }
        [IfKind::Ethernet, IfKind::Wifi, IfKind::Cellular]
            .into_iter()
            .find(|&k| self.has_internet(k, world))
    }

    /// Every address the node has now: public ones for interfaces with
    /// internet access, LAN ones for LAN interfaces; QUIC and TCP each.
    pub(crate) fn addresses(
        &self,
        id: u32,
        world: &World,
        lan: bool,
        public: bool,
    ) -> Vec<AddrKey> {
        let mut out = Vec::new();
        if !self.online {
            return out;
        }
        for kind in IfKind::IP {
            let i = &self.ifaces[kind as usize];
            if !i.up {
                continue;
            }
            let mut scopes = Vec::with_capacity(2);
            if lan && i.lan.is_some() {
                scopes.push(true);
            }
            if public && self.has_internet(kind, world) {
                scopes.push(false);
            }
            for is_lan in scopes {
                for quic in [true, false] {
                    out.push(AddrKey {
                        node: id,
                        kind,
                        epoch: i.epoch,
                        lan: is_lan,
                        quic,
                        relay: None,
                    });
                }
            }
        }
        // A private node (its default route behind a NAT) holds a
        // reservation on every relay that is up and advertises the relayed
        // addresses beside its own.
        if public && world.reservation(id).is_some() {
            for (s, srv) in world.servers.iter().enumerate() {
                if srv.relay && srv.up {
                    out.push(AddrKey::relayed(id, s as u16));
                }
            }
        }
        out
    }
}

/// The state of a rendezvous point.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub(crate) region: u16,
    pub(crate) up: bool,
    /// Registrations by namespace (the registering node): addresses and
    /// expiry. One per node: a node advertises its own namespace.
    pub(crate) registrations: Vec<Option<(Vec<AddrKey>, Timestamp)>>,
    /// It also serves circuit relay v2.
    pub(crate) relay: bool,
    /// Counts outages: a circuit opened before the last one died with it.
    pub(crate) epoch: u32,
}

/// The lowest-RTT path from one node to another that a connection can take
/// now, NATs considered.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Best {
    pub(crate) rtt: Duration,
    /// The interface it leaves through.
    pub(crate) via: IfKind,
    /// The address it reaches: direct (also when punched) or relayed.
    pub(crate) addr: AddrKey,
    pub(crate) how: Reach,
}

/// How a path gets past the NATs on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// A plain dial: the same LAN, or no NAT in front of the peer.
    Direct,
    /// Direct, but only after a hole punch over a relayed connection that
    /// leaves through the same interface (which would succeed).
    Punched,
    /// Through a relay the peer holds a reservation on.
    Relayed,
}

/// The world one policy runs in.
pub(crate) struct World {
    pub(crate) scenario: std::sync::Arc<Scenario>,
    /// The run's seed (hole-punch outcomes are drawn from it).
    pub(crate) seed: u64,
    pub(crate) nodes: Vec<Node>,
    pub(crate) lans: Vec<crate::scenario::Lan>,
    pub(crate) servers: Vec<Server>,
    /// The DHT's provider record per node: addresses, visible from, expiry.
    pub(crate) dht: Vec<Option<(Vec<AddrKey>, Timestamp, Timestamp)>>,
    /// Per-node random streams for link sampling.
    pub(crate) link_rng: Vec<Rng>,
}

/// DHT lookup latency quantiles, seconds: p50 0.557, p90 1.10, p99 1.50
/// (probe-lab, `plots/2023/05/11/dht-lookup-performance-quartiles.json`,
/// docs/PARAMETERS.md). The 0th percentile (0.2 s) and the maximum (3 s) close the
/// curve; they are our assumption.
pub(crate) const DHT_LOOKUP: [(f64, f64); 5] = [
    (0.0, 0.2),
    (0.5, 0.557),
    (0.9, 1.10),
    (0.99, 1.50),
    (1.0, 3.0),
];
/// DHT publish latency quantiles, seconds: p50 8.28, p90 22.8, p99 104
/// (probe-lab, `plots/2023/05/10/dht-publish-performance-quartiles.json`).
/// The 0th percentile (2 s) and maximum (150 s) are our assumption.
pub(crate) const DHT_PUBLISH: [(f64, f64); 5] = [
    (0.0, 2.0),
    (0.5, 8.28),
    (0.9, 22.8),
    (0.99, 104.0),
    (1.0, 150.0),
];
/// Bytes a DHT lookup or publish moves: ~20 peers contacted with a request
/// and a response of a few hundred bytes each. An estimate from the kad
/// message sizes, not a measurement.
pub(crate) const DHT_OP_BYTES: u64 = 20_000;
/// Bytes of a rendezvous request and its answer (a signed peer record of a
/// few addresses): an estimate, not a measurement.
pub(crate) const RENDEZVOUS_OP_BYTES: u64 = 1_500;
/// An mDNS query and one response: a few hundred bytes.
pub(crate) const MDNS_OP_BYTES: u64 = 400;
/// The first mDNS probe goes out 500 ms after an interface comes up
/// (libp2p-mdns `behaviour/iface.rs`, docs/PARAMETERS.md).
pub(crate) const MDNS_FIRST_PROBE: Duration = Duration::from_millis(500);
/// libp2p-mdns' query interval after the doubling: 5 min.
pub(crate) const MDNS_QUERY_INTERVAL: Duration = Duration::from_secs(300);
/// libp2p-mdns record TTL: 6 min.
pub(crate) const MDNS_TTL: Duration = Duration::from_secs(360);
/// A BLE scan that finds an advertiser in range: one balanced-mode scan
/// period, 730 ms (AOSP `ScanManager.java`, docs/PARAMETERS.md).
pub(crate) const BLE_SCAN: Duration = Duration::from_millis(730);
/// A server that does not answer is given up after 5 s, libp2p-quic's
/// handshake timeout (libp2p-quic 0.14 `config.rs`).
pub(crate) const UNREACHABLE_TIMEOUT: Duration = Duration::from_secs(5);
/// A rendezvous point's own processing time: our assumption.
const SERVER_TIME: Duration = Duration::from_millis(1);

impl World {
    /// The NAT in front of `node`'s interface `kind` as attached now.
    pub(crate) fn nat(&self, node: u32, kind: IfKind) -> Nat {
        let n = &self.nodes[node as usize];
        match kind {
            IfKind::Wifi | IfKind::Ethernet => n.ifaces[kind as usize]
                .lan
                .map_or(Nat::None, |l| self.lans[l as usize].nat),
            IfKind::Cellular => n.cell_nat,
            IfKind::Ble => Nat::None,
        }
    }

    /// The interface over which `node` holds its relay reservations: its
    /// default route, when a NAT stands in front of it (a public node needs
    /// none).
    pub(crate) fn reservation(&self, node: u32) -> Option<IfKind> {
        let n = &self.nodes[node as usize];
        n.default_route(self)
            .filter(|&k| n.usable(k) && self.nat(node, k) != Nat::None)
    }

    /// One side of a hole punch from `node`'s interface `kind`.
    pub(crate) fn punch_side(&self, node: u32, kind: IfKind) -> PunchSide {
        PunchSide {
            node,
            kind: kind as u8,
            attach: self.nodes[node as usize].ifaces[kind as usize].attach,
            nat: self.nat(node, kind),
        }
    }

    /// The round trip of a circuit from `from`'s interface `via` through
    /// relay `relay` to `to`'s interface `to_kind`: the leg to the relay
    /// plus the leg from the relay to the peer, if the relay is up and both
    /// legs work.
    pub(crate) fn relay_rtt(
        &self,
        from: u32,
        via: IfKind,
        relay: u16,
        to: u32,
        to_kind: IfKind,
    ) -> Option<Duration> {
        let srv = self.servers.get(usize::from(relay))?;
        let (a, b) = (&self.nodes[from as usize], &self.nodes[to as usize]);
        let ok = srv.relay
            && srv.up
            && a.usable(via)
            && a.has_internet(via, self)
            && b.usable(to_kind)
            && b.has_internet(to_kind, self);
        ok.then(|| {
            self.server_rtt(from, via, usize::from(relay))
                + self.server_rtt(to, to_kind, usize::from(relay))
        })
    }

    /// The path a new dial of `to` from `via` would take, if the dial can
    /// get through: as [`World::usable_path`], and a direct internet
    /// address only when no NAT stands in front of it (a NAT drops the
    /// unsolicited packets: the dial times out).
    pub(crate) fn dial_path(&self, from: u32, via: IfKind, to: AddrKey) -> Option<Duration> {
        if !to.lan && to.relay.is_none() && !admits_unsolicited(self.nat(to.node, to.kind)) {
            return None;
        }
        self.usable_path(from, via, to)
    }

    /// The path packets between `from`'s `via` and `to` take, if it works
    /// now, NATs aside (a connection already open, or punched, passes its
    /// NATs).
    pub(crate) fn usable_path(&self, from: u32, via: IfKind, to: AddrKey) -> Option<Duration> {
        if let Some(relay) = to.relay {
            let k = self.reservation(to.node)?;
            return self.relay_rtt(from, via, relay, to.node, k);
        }
        let a = &self.nodes[from as usize];
        let b = &self.nodes[to.node as usize];
        if !a.usable(via) || !b.usable(to.kind) || via == IfKind::Ble || to.kind == IfKind::Ble {
            return None;
        }
        let bi = &b.ifaces[to.kind as usize];
        if bi.epoch != to.epoch {
            return None;
        }
        if to.lan {
            let ai = &a.ifaces[via as usize];
            let lan = ai.lan.filter(|l| bi.lan == Some(*l))?;
            Some(Duration::from_secs_f64(
                self.lans[lan as usize].rtt_ms / 1000.0,
            ))
        } else {
            if !a.has_internet(via, self) || !b.has_internet(to.kind, self) {
                return None;
            }
            Some(self.internet_rtt(from, a.medium(via), to.node, b.medium(to.kind)))
        }
    }

    /// A medium's access hop: the scoring crate's prior, or the scenario's
    /// `links.cellular_access_rtt_ms` for cellular.
    pub(crate) fn access(&self, medium: Medium) -> Duration {
        match (medium, self.scenario.links.cellular_access_rtt_ms) {
            (Medium::Cellular(_), Some(ms)) => Duration::from_secs_f64(ms / 1000.0),
            _ => access_hop(medium),
        }
    }

    /// Access hop of both ends plus the core between their regions.
    pub(crate) fn internet_rtt(&self, a: u32, am: Medium, b: u32, bm: Medium) -> Duration {
        let ra = self.nodes[a as usize].region as usize;
        let rb = self.nodes[b as usize].region as usize;
        let core = self.scenario.regions[ra].core_rtt_ms[rb];
        self.access(am) + self.access(bm) + Duration::from_secs_f64(core / 1000.0)
    }

    /// Round trip from a node's interface to a rendezvous point.
    pub(crate) fn server_rtt(&self, node: u32, via: IfKind, server: usize) -> Duration {
        let n = &self.nodes[node as usize];
        let core = self.scenario.regions[n.region as usize].core_rtt_ms
            [self.servers[server].region as usize];
        self.access(n.medium(via)) + Duration::from_secs_f64(core / 1000.0) + SERVER_TIME
    }

    /// One round trip's sample over a path with base RTT `base`: jitter with
    /// a heavy tail. Our model, not a measurement: +10 % on average
    /// (exponential), and 2 % of round trips take a Pareto(α = 2) spike of at
    /// least half the base, which gives the Wi-Fi study's "10 % of packets
    /// above 5× the median" order of tail at the access hop.
    pub(crate) fn sample_rtt(&mut self, node: u32, base: Duration) -> Duration {
        let r = &mut self.link_rng[node as usize];
        let b = base.as_secs_f64();
        let mut x = b * (1.0 + r.exp(0.1));
        if r.chance(0.02) {
            x += r.pareto(0.5 * b, 2.0).min(20.0 * b);
        }
        Duration::from_secs_f64(x)
    }

    /// Loss probability of one round trip leaving through `via`.
    pub(crate) fn loss(&self, via: IfKind) -> f64 {
        match via {
            IfKind::Wifi => self.scenario.links.wifi_loss,
            IfKind::Cellular => self.scenario.links.cellular_loss,
            IfKind::Ethernet | IfKind::Ble => 0.0,
        }
    }

    /// Time to complete a handshake of `rounds` round trips over a path:
    /// radio promotion if the radio is idle, sampled round trips, and one
    /// retransmission timeout (1 s, RFC 6298's initial RTO) per lost round.
    pub(crate) fn handshake_time(
        &mut self,
        node: u32,
        via: IfKind,
        base: Duration,
        rounds: u32,
        now: Timestamp,
    ) -> Duration {
        let mut t = self.nodes[node as usize].radios[via as usize].promotion_delay(now);
        let loss = self.loss(via);
        for _ in 0..rounds {
            t += self.sample_rtt(node, base);
            if self.link_rng[node as usize].chance(loss) {
                t += Duration::from_secs(1);
            }
        }
        t
    }

    /// Distance between two nodes, metres.
    pub(crate) fn distance(&self, a: u32, b: u32) -> f64 {
        let pa = self.nodes[a as usize].position;
        let pb = self.nodes[b as usize].position;
        ((pa[0] - pb[0]).powi(2) + (pa[1] - pb[1]).powi(2)).sqrt()
    }

    /// The lowest-RTT path from `from` to `to` that a connection can take
    /// now, if any: a direct path the NATs let a dial through, a direct
    /// path a hole punch would open (over a relayed connection through the
    /// same interface), or a relayed one.
    pub(crate) fn best_path(&self, from: u32, to: u32) -> Option<Best> {
        let b = &self.nodes[to as usize];
        let mut best: Option<Best> = None;
        let mut offer = |c: Best| {
            if best.is_none_or(|x| c.rtt < x.rtt) {
                best = Some(c);
            }
        };
        for via in IfKind::IP {
            for kind in IfKind::IP {
                let epoch = b.ifaces[kind as usize].epoch;
                for lan in [true, false] {
                    let key = AddrKey {
                        node: to,
                        kind,
                        epoch,
                        lan,
                        quic: true,
                        relay: None,
                    };
                    if let Some(rtt) = self.dial_path(from, via, key) {
                        offer(Best {
                            rtt,
                            via,
                            addr: key,
                            how: Reach::Direct,
                        });
                    }
                }
            }
            let Some((rtt, relayed)) = self.best_relayed(from, to, via) else {
                continue;
            };
            offer(Best {
                rtt,
                via,
                addr: relayed,
                how: Reach::Relayed,
            });
            // DCUtR over that circuit punches toward the peer's
            // reservation interface.
            if let Some(k) = self.reservation(to) {
                let key = AddrKey::public(to, k, b.ifaces[k as usize].epoch);
                if let Some(rtt) = self.usable_path(from, via, key)
                    && punchable(
                        self.seed,
                        self.punch_side(from, via),
                        self.punch_side(to, k),
                    )
                {
                    offer(Best {
                        rtt,
                        via,
                        addr: key,
                        how: Reach::Punched,
                    });
                }
            }
        }
        best
    }

    /// The lowest-RTT relayed path from `from`'s `via` to `to`.
    pub(crate) fn best_relayed(
        &self,
        from: u32,
        to: u32,
        via: IfKind,
    ) -> Option<(Duration, AddrKey)> {
        let k = self.reservation(to)?;
        (0..self.servers.len() as u16)
            .filter_map(|s| {
                self.relay_rtt(from, via, s, to, k)
                    .map(|rtt| (rtt, AddrKey::relayed(to, s)))
            })
            .min_by_key(|(rtt, a)| (*rtt, a.relay))
    }

    /// Nodes on the same LAN as `node`'s interface `via` that answer mDNS.
    pub(crate) fn mdns_neighbours(&self, node: u32, via: IfKind) -> Vec<u32> {
        let a = &self.nodes[node as usize];
        let Some(lan) = a.ifaces[via as usize].lan.filter(|_| a.usable(via)) else {
            return Vec::new();
        };
        a.contacts
            .iter()
            .copied()
            .filter(|&c| {
                let b = &self.nodes[c as usize];
                b.mdns_visible
                    && [IfKind::Wifi, IfKind::Ethernet]
                        .iter()
                        .any(|&k| b.usable(k) && b.ifaces[k as usize].lan == Some(lan))
            })
            .collect()
    }

    /// Contacts of `node` advertising over BLE within range.
    pub(crate) fn ble_neighbours(&self, node: u32) -> Vec<u32> {
        let a = &self.nodes[node as usize];
        if !a.usable(IfKind::Ble) {
            return Vec::new();
        }
        let range = self.scenario.links.ble_range_m;
        a.contacts
            .iter()
            .copied()
            .filter(|&c| {
                let b = &self.nodes[c as usize];
                b.ble_visible && b.usable(IfKind::Ble) && self.distance(node, c) <= range
            })
            .collect()
    }

    /// A node's LAN addresses on the LAN `lan`.
    pub(crate) fn lan_addresses(&self, node: u32, lan: u16) -> Vec<AddrKey> {
        let n = &self.nodes[node as usize];
        let mut out = Vec::new();
        for kind in [IfKind::Wifi, IfKind::Ethernet] {
            let i = &n.ifaces[kind as usize];
            if n.usable(kind) && i.lan == Some(lan) {
                for quic in [true, false] {
                    out.push(AddrKey {
                        node,
                        kind,
                        epoch: i.epoch,
                        lan: true,
                        quic,
                        relay: None,
                    });
                }
            }
        }
        out
    }
}

/// Builds a node's initial power state.
pub(crate) fn power_of(group: &crate::scenario::Group) -> PowerState {
    let mut p = match group.battery {
        Some(level) => PowerState::on_battery(level),
        None => PowerState::MAINS,
    };
    p.charging = group.charging;
    p.lifecycle = group.lifecycle;
    p
}

#[cfg(test)]
mod tests {
    use multidriver_scoring::energy;

    use super::*;

    #[test]
    fn addresses_round_trip_through_multiaddrs() {
        for kind in IfKind::IP {
            for lan in [true, false] {
                for quic in [true, false] {
                    let k = AddrKey {
                        node: 0x0a_bc_de,
                        kind,
                        epoch: 12_345,
                        lan,
                        quic,
                        relay: None,
                    };
                    let m = k.to_multiaddr();
                    assert_eq!(AddrKey::from_multiaddr(&m), Some(k), "{m}");
                    assert_eq!(
                        multidriver_scoring::Scope::of(&m) == multidriver_scoring::Scope::Lan,
                        lan
                    );
                }
            }
        }
    }

    #[test]
    fn relayed_addresses_round_trip_through_multiaddrs() {
        let id = |b: u8| {
            libp2p_identity::Keypair::ed25519_from_bytes([b; 32])
                .unwrap()
                .public()
                .to_peer_id()
        };
        let peers = vec![id(1), id(2), id(3)];
        let relays = vec![id(9), id(8)];
        let index = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i as u32))
            .collect();
        let k = AddrKey::relayed(2, 1);
        let m = k.to_multiaddr_with(&relays, &peers).unwrap();
        let text = m.to_string();
        assert!(
            text.ends_with(&format!("/p2p/{}/p2p-circuit/p2p/{}", relays[1], peers[2])),
            "{text}"
        );
        assert_eq!(AddrKey::from_multiaddr_with(&m, &index), Some(k));
        assert_eq!(
            multidriver_scoring::Scope::of(&m),
            multidriver_scoring::Scope::Internet
        );
        // A relay or peer the tables do not hold has no address.
        assert_eq!(
            AddrKey::relayed(7, 1).to_multiaddr_with(&relays, &peers),
            None
        );
        // Direct addresses read back as before.
        let d = AddrKey::public(2, IfKind::Cellular, 3);
        assert_eq!(
            AddrKey::from_multiaddr_with(&d.to_multiaddr(), &index),
            Some(d)
        );
    }

    #[test]
    fn a_radio_pays_one_promotion_per_wake_up_and_the_tail_once() {
        let mut r = Radio::new(energy::LTE);
        let t = Timestamp::from_millis(1_000);
        r.activity(t, 0, 0, Cause::App);
        // Two more packets inside the tail: no new promotion.
        r.activity(t + Duration::from_secs(3), 0, 0, Cause::App);
        r.activity(t + Duration::from_secs(6), 0, 0, Cause::App);
        // One long after: a second wake-up.
        r.activity(t + Duration::from_secs(60), 0, 0, Cause::App);
        r.finish(t + Duration::from_secs(600));
        assert_eq!(r.promotions, 2);
        let expected = 2.0 * energy::LTE.isolated_wakeup_energy()
            + energy::LTE.tail_energy_within(Duration::from_secs(6));
        assert!(
            (r.joules - expected).abs() < 1e-6,
            "{} vs {expected}",
            r.joules
        );
    }
}
