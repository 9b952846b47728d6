//! Models of the stacks multidriver is compared with: stock rust-libp2p 0.57
//! (`libp2p-stock`) and Berty's always-on multi-driver discovery (`tinder`).
//! Every constant is the library's default, with its source in
//! PARAMETERS.md; where the model assumes something of the app, it says so.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use multidriver_scoring::{Medium, Timestamp};

use super::{
    Agent, DriverRef, Input, Liveness, Output, PING_INTERVAL, PING_TIMEOUT, QUIC_IDLE,
    QUIC_KEEPALIVE, SWARM_IDLE,
};
use crate::world::{AddrKey, IfKind, MDNS_FIRST_PROBE, MDNS_QUERY_INTERVAL, MDNS_TTL, World};

/// Smart dial (libp2p-swarm 0.48 `dial_ranker.rs`, PARAMETERS.md): 30 ms
/// between private addresses, 250 ms between public ones (see
/// [`smart_dial_delays`]). Smart dial is opt-in in rust-libp2p; the baseline
/// turns it on, as the project's real-network baseline does.
const PRIVATE_DELAY: Duration = Duration::from_millis(30);
/// See [`PRIVATE_DELAY`].
const PUBLIC_DELAY: Duration = Duration::from_millis(250);
/// libp2p-swarm dials at most 8 addresses of one peer at once (the default
/// dial concurrency factor).
const DIAL_CONCURRENCY: usize = 8;
/// Kademlia bootstraps every 5 min (libp2p-kad `behaviour.rs`).
const KAD_BOOTSTRAP: Duration = Duration::from_secs(300);
/// Kademlia republishes provider records every 12 h (libp2p-kad
/// `provider_publication_interval`).
const PROVIDER_REPUBLISH: Duration = Duration::from_secs(12 * 3600);
/// Berty polls rendezvous every 30 s (berty/weshnet `pkg/tinder`).
const TINDER_POLL: Duration = Duration::from_secs(30);
/// The app waits this long before trying an unreachable peer again: our
/// assumption of what a stock app does; libp2p has no retry policy.
const APP_RETRY: Duration = Duration::from_secs(10);
/// Registrations last libp2p-rendezvous' default 2 h and are renewed then
/// by a stock app; tinder renews at 4/5 of it (berty/weshnet `pkg/tinder`).
const REGISTRATION_TTL: Duration = Duration::from_secs(7200);

#[derive(Debug, Clone, Copy)]
struct Known {
    expires: Option<Timestamp>,
    /// When it was last reported (newest first among equals).
    learned: Timestamp,
    /// Learned from the DHT: Kademlia prunes it after a failed dial.
    from_dht: bool,
}

#[derive(Debug, Default)]
struct Peer {
    addrs: BTreeMap<AddrKey, Known>,
    conn: Option<u64>,
    dials: Vec<u64>,
    plan: VecDeque<(Timestamp, AddrKey)>,
    retry_at: Option<Timestamp>,
}

pub(crate) struct ClassicAgent {
    me: u32,
    tinder: bool,
    peers: BTreeMap<u32, Peer>,
    conn_peer: BTreeMap<u64, (u32, AddrKey)>,
    queries: BTreeMap<u64, DriverRef>,
    next_id: u64,
    out: VecDeque<Output>,
    dht: bool,
    servers: u16,
    ble: bool,
    mdns_next: Option<Timestamp>,
    mdns_gap: Duration,
    bootstrap_next: Option<Timestamp>,
    publish_next: Option<Timestamp>,
    register_next: Option<Timestamp>,
    poll_next: Option<Timestamp>,
}

impl ClassicAgent {
    pub(crate) fn new(me: u32, tinder: bool, world: &World) -> ClassicAgent {
        let node = &world.nodes[me as usize];
        ClassicAgent {
            me,
            tinder,
            peers: node
                .contacts
                .iter()
                .map(|&c| (c, Peer::default()))
                .collect(),
            conn_peer: BTreeMap::new(),
            queries: BTreeMap::new(),
            next_id: 0,
            out: VecDeque::new(),
            dht: world.scenario.dht.is_some(),
            servers: u16::try_from(world.servers.len()).unwrap_or(u16::MAX),
            ble: tinder && node.ifaces[IfKind::Ble as usize].up,
            mdns_next: None,
            mdns_gap: MDNS_FIRST_PROBE,
            bootstrap_next: None,
            publish_next: None,
            register_next: None,
            poll_next: None,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn rendezvous_points(&self) -> impl Iterator<Item = u16> + use<> {
        // A stock app talks to the one rendezvous point it was configured
        // with (the client API takes one); tinder to every one.
        let n = if self.tinder {
            self.servers
        } else {
            self.servers.min(1)
        };
        0..n
    }

    /// Registers with the rendezvous points, and publishes the DHT provider
    /// record when `dht`.
    fn advertise_all(&mut self, dht: bool) {
        if dht && self.dht {
            let q = self.id();
            self.queries.insert(q, DriverRef::Dht);
            self.out.push_back(Output::Advertise {
                query: q,
                driver: DriverRef::Dht,
            });
        }
        for s in self.rendezvous_points() {
            let q = self.id();
            self.queries.insert(q, DriverRef::Rendezvous(s));
            self.out.push_back(Output::Advertise {
                query: q,
                driver: DriverRef::Rendezvous(s),
            });
        }
    }

    fn discover(&mut self, peer: u32, driver: DriverRef) {
        let q = self.id();
        self.queries.insert(q, driver);
        // A BLE scan hears every advertiser; lookups name the peer.
        self.out.push_back(Output::Discover {
            query: q,
            driver,
            peer: (driver != DriverRef::Proximity).then_some(peer),
        });
    }

    /// Looks a peer up on the internet drivers (stock: Kademlia and its
    /// rendezvous point; tinder: every driver).
    fn lookup(&mut self, peer: u32) {
        if self.dht {
            self.discover(peer, DriverRef::Dht);
        }
        for s in self.rendezvous_points().collect::<Vec<_>>() {
            self.discover(peer, DriverRef::Rendezvous(s));
        }
        if self.ble {
            self.discover(peer, DriverRef::Proximity);
        }
    }

    /// Dials a peer the way libp2p-swarm does: its known addresses ranked
    /// statically (private before public, QUIC before TCP) and staggered.
    fn dial(&mut self, peer: u32, now: Timestamp) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.conn.is_some() || !p.dials.is_empty() || !p.plan.is_empty() {
            return;
        }
        p.addrs.retain(|_, k| k.expires.is_none_or(|e| e > now));
        let mut plan: Vec<(Timestamp, AddrKey)> = Vec::new();
        for lan in [true, false] {
            // Within a group: QUIC before TCP; the real ranker then prefers
            // IPv6 and lower ports, which mean nothing in the simulator's
            // encoding, so the most recently learned address goes first.
            let mut group: Vec<(&AddrKey, &Known)> =
                p.addrs.iter().filter(|(a, _)| a.lan == lan).collect();
            group.sort_by_key(|(a, k)| (!a.quic, std::cmp::Reverse(k.learned), **a));
            let d = if lan { PRIVATE_DELAY } else { PUBLIC_DELAY };
            for (at, a) in smart_dial_delays(group.iter().map(|(a, _)| **a), d) {
                plan.push((now + at, a));
            }
        }
        plan.sort_by_key(|(t, a)| (*t, !a.lan));
        p.plan.extend(plan);
        if p.plan.is_empty() {
            self.lookup(peer);
        }
        self.advance(peer, now);
    }

    /// Starts the attempts that are due. go-libp2p (tinder) fast-forwards to
    /// the next address when nothing is in flight; rust-libp2p does not.
    fn advance(&mut self, peer: u32, now: Timestamp) {
        let tinder = self.tinder;
        let mut starts = Vec::new();
        {
            let Some(p) = self.peers.get_mut(&peer) else {
                return;
            };
            while let Some(&(at, a)) = p.plan.front() {
                let due = at <= now || (tinder && p.dials.is_empty() && starts.is_empty());
                if !due || p.dials.len() + starts.len() >= DIAL_CONCURRENCY {
                    break;
                }
                p.plan.pop_front();
                starts.push(a);
            }
        }
        for a in starts {
            let conn = self.id();
            self.conn_peer.insert(conn, (peer, a));
            if let Some(p) = self.peers.get_mut(&peer) {
                p.dials.push(conn);
            }
            self.out.push_back(Output::Dial {
                conn,
                peer,
                addr: a,
                // The OS picks the interface: see `route_for`.
                via: None,
            });
        }
    }

    fn after_failure(&mut self, peer: u32, now: Timestamp) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.conn.is_none() && p.dials.is_empty() && p.plan.is_empty() {
            // Every address failed: look the peer up again, and try again
            // after a pause.
            p.retry_at = Some(now + APP_RETRY);
            self.lookup(peer);
        }
    }

    /// Forgets a closed connection; the peer it served, if any.
    fn closed(&mut self, conn: u64) -> Option<u32> {
        let (peer, _) = self.conn_peer.remove(&conn)?;
        if let Some(p) = self.peers.get_mut(&peer)
            && p.conn == Some(conn)
        {
            p.conn = None;
            self.out.push_back(Output::Primary { peer, conn: None });
        }
        Some(peer)
    }

    fn restart_mdns(&mut self, now: Timestamp) {
        self.mdns_gap = MDNS_FIRST_PROBE;
        self.mdns_next = Some(now + MDNS_FIRST_PROBE);
    }
}

/// Smart dial's delays within one group of addresses (libp2p-swarm
/// `dial_ranker.rs`, `group_delays`): the first QUIC address at once, the
/// other QUIC addresses after `d`; TCP starts `d` after the last QUIC
/// address, its first at once and the others `d` later. Private and public
/// groups both start at zero.
fn smart_dial_delays(
    sorted: impl Iterator<Item = AddrKey>,
    d: Duration,
) -> Vec<(Duration, AddrKey)> {
    let mut out = Vec::new();
    let (mut quic, mut tcp) = (0, 0);
    let mut tcp_start = Duration::ZERO;
    for a in sorted {
        let delay = if a.quic {
            let x = if quic == 0 { Duration::ZERO } else { d };
            quic += 1;
            tcp_start = x + d;
            x
        } else {
            let x = if tcp == 0 { Duration::ZERO } else { d };
            tcp += 1;
            tcp_start + x
        };
        out.push((delay, a));
    }
    out
}

/// Fills in the interface a classic stack's dial leaves through: the OS
/// routing table. A LAN address goes out of a LAN interface if one is up
/// (its subnet route), anything else by the default route.
pub(crate) fn route_for(world: &World, node: u32, addr: AddrKey) -> Option<IfKind> {
    let n = &world.nodes[node as usize];
    if addr.lan
        && let Some(k) = [IfKind::Ethernet, IfKind::Wifi]
            .into_iter()
            .find(|&k| n.online && n.ifaces[k as usize].up && n.ifaces[k as usize].lan.is_some())
    {
        return Some(k);
    }
    n.default_route(world)
}

impl Agent for ClassicAgent {
    fn handle(&mut self, input: Input, now: Timestamp, world: &World) {
        match input {
            Input::Start => {
                let node = &world.nodes[self.me as usize];
                if node.ifaces[IfKind::Wifi as usize].up
                    || node.ifaces[IfKind::Ethernet as usize].up
                {
                    self.restart_mdns(now);
                }
                if self.dht {
                    self.bootstrap_next = Some(now);
                }
                self.advertise_all(true);
                self.publish_next = Some(now + PROVIDER_REPUBLISH);
                self.register_next = Some(
                    now + if self.tinder {
                        REGISTRATION_TTL.mul_f64(0.8)
                    } else {
                        REGISTRATION_TTL
                    },
                );
                if self.tinder {
                    self.poll_next = Some(now);
                }
                let contacts: Vec<u32> = self.peers.keys().copied().collect();
                for c in contacts {
                    self.dial(c, now);
                }
            }
            Input::Up { kind, .. } => {
                if matches!(kind, IfKind::Wifi | IfKind::Ethernet) {
                    self.restart_mdns(now);
                }
                if self.tinder {
                    // Tinder re-advertises when its addresses change.
                    self.advertise_all(true);
                }
            }
            Input::Down { .. } => {
                if self.tinder {
                    self.advertise_all(true);
                }
            }
            Input::Losing { .. }
            | Input::Power(_)
            | Input::Rtt { .. }
            | Input::PathsChanged { .. }
            | Input::AppTraffic { .. } => {}
            Input::Answer {
                query,
                driver,
                found,
                ..
            } => {
                if self.queries.remove(&query).is_none() {
                    return;
                }
                let mut fresh = Vec::new();
                for f in found {
                    let Some(p) = self.peers.get_mut(&f.peer) else {
                        continue;
                    };
                    // Tinder's union never expires. libp2p keeps mDNS entries
                    // for their TTL; Kademlia's until a dial to them fails;
                    // the stock app keeps what its rendezvous point returned.
                    let expires =
                        (!self.tinder && driver == DriverRef::Mdns).then(|| now + MDNS_TTL);
                    for a in f.addrs {
                        p.addrs.insert(
                            a,
                            Known {
                                expires,
                                learned: now,
                                from_dht: driver == DriverRef::Dht,
                            },
                        );
                    }
                    fresh.push(f.peer);
                }
                for peer in fresh {
                    self.dial(peer, now);
                }
            }
            Input::DialSucceeded { conn } => {
                let Some(&(peer, _)) = self.conn_peer.get(&conn) else {
                    return;
                };
                let mut cancel = Vec::new();
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.dials.retain(|&d| {
                        if d == conn {
                            false
                        } else {
                            cancel.push(d);
                            false
                        }
                    });
                    p.plan.clear();
                    p.retry_at = None;
                    if p.conn.is_none() {
                        p.conn = Some(conn);
                        self.out.push_back(Output::Primary {
                            peer,
                            conn: Some(conn),
                        });
                    } else {
                        cancel.push(conn);
                    }
                }
                for c in cancel {
                    self.conn_peer.remove(&c);
                    self.out.push_back(if c == conn {
                        Output::Close { conn: c }
                    } else {
                        Output::CancelDial { conn: c }
                    });
                }
            }
            Input::DialFailed { conn } => {
                let Some((peer, addr)) = self.conn_peer.remove(&conn) else {
                    return;
                };
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.dials.retain(|&d| d != conn);
                    // Kademlia removes an address from its table when a dial
                    // to it fails (libp2p-kad `behaviour.rs`); tinder's union
                    // keeps everything.
                    if !self.tinder && p.addrs.get(&addr).is_some_and(|k| k.from_dht) {
                        p.addrs.remove(&addr);
                    }
                }
                self.advance(peer, now);
                self.after_failure(peer, now);
            }
            Input::ConnectionLost { conn } => {
                // The app redials on connection loss.
                if let Some(peer) = self.closed(conn) {
                    self.dial(peer, now);
                }
            }
            // An idle connection closed: the app dials again when it has
            // something to send.
            Input::IdleClosed { conn } => {
                self.closed(conn);
            }
            Input::NeedPeer { peer } => self.dial(peer, now),
        }
    }

    fn handle_timeout(&mut self, now: Timestamp, world: &World) {
        if self.mdns_next.is_some_and(|t| t <= now) {
            // libp2p-mdns: probes doubling from 500 ms to the 5 min interval.
            for kind in [IfKind::Wifi, IfKind::Ethernet] {
                if world.nodes[self.me as usize].usable(kind) {
                    // One multicast query; every contact on the LAN answers.
                    let q = self.id();
                    self.queries.insert(q, DriverRef::Mdns);
                    self.out.push_back(Output::Discover {
                        query: q,
                        driver: DriverRef::Mdns,
                        peer: None,
                    });
                    break;
                }
            }
            self.mdns_gap = (self.mdns_gap * 2).min(MDNS_QUERY_INTERVAL);
            self.mdns_next = Some(now + self.mdns_gap);
        }
        if self.bootstrap_next.is_some_and(|t| t <= now) {
            // A bootstrap is a lookup of our own id: a DHT lookup's radio
            // use, no record found.
            let q = self.id();
            self.queries.insert(q, DriverRef::Dht);
            self.out.push_back(Output::Discover {
                query: q,
                driver: DriverRef::Dht,
                peer: None,
            });
            self.bootstrap_next = Some(now + KAD_BOOTSTRAP);
        }
        if self.publish_next.is_some_and(|t| t <= now) {
            if self.dht {
                let q = self.id();
                self.queries.insert(q, DriverRef::Dht);
                self.out.push_back(Output::Advertise {
                    query: q,
                    driver: DriverRef::Dht,
                });
            }
            self.publish_next = Some(now + PROVIDER_REPUBLISH);
        }
        if self.register_next.is_some_and(|t| t <= now) {
            // Tinder re-advertises on every driver; a stock app renews its
            // registration, while Kademlia republishes on its own 12 h timer.
            self.advertise_all(self.tinder);
            self.register_next = Some(
                now + if self.tinder {
                    REGISTRATION_TTL.mul_f64(0.8)
                } else {
                    REGISTRATION_TTL
                },
            );
        }
        if self.poll_next.is_some_and(|t| t <= now) {
            // Tinder's subscriptions poll the rendezvous points; its BLE
            // driver scans on the same beat.
            let contacts: Vec<u32> = self.peers.keys().copied().collect();
            for c in contacts {
                for s in self.rendezvous_points().collect::<Vec<_>>() {
                    self.discover(c, DriverRef::Rendezvous(s));
                }
            }
            if self.ble
                && let Some(&first) = self.peers.keys().next()
            {
                self.discover(first, DriverRef::Proximity);
            }
            self.poll_next = Some(now + TINDER_POLL);
        }
        let contacts: Vec<u32> = self.peers.keys().copied().collect();
        for c in contacts {
            let retry = self
                .peers
                .get(&c)
                .and_then(|p| p.retry_at)
                .is_some_and(|t| t <= now);
            if retry {
                if let Some(p) = self.peers.get_mut(&c) {
                    p.retry_at = None;
                }
                self.dial(c, now);
            }
            self.advance(c, now);
        }
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t = [
            self.mdns_next,
            self.bootstrap_next,
            self.publish_next,
            self.register_next,
            self.poll_next,
        ]
        .into_iter()
        .flatten()
        .min();
        for p in self.peers.values() {
            for x in [
                p.retry_at,
                p.plan
                    .front()
                    .map(|f| f.0)
                    .filter(|_| p.dials.len() < DIAL_CONCURRENCY),
            ]
            .into_iter()
            .flatten()
            {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        }
        t
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn liveness(&self, quic: bool, _medium: Medium) -> Liveness {
        Liveness {
            ping_every: Some(PING_INTERVAL),
            ping_timeout: Some(PING_TIMEOUT),
            quic_keepalive: quic.then_some(QUIC_KEEPALIVE),
            quic_idle: quic.then_some(QUIC_IDLE),
            // go-libp2p (tinder) has no idle timeout; rust-libp2p closes a
            // connection without streams after 10 s.
            idle_close: (!self.tinder).then_some(SWARM_IDLE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(node: u32, quic: bool, epoch: u16) -> AddrKey {
        AddrKey {
            node,
            kind: IfKind::Wifi,
            epoch,
            lan: false,
            quic,
        }
    }

    #[test]
    fn smart_dial_delays_follow_the_rust_libp2p_ranker() {
        // libp2p-swarm `dial_ranker.rs` tests: three public QUIC addresses
        // get 0, 250 ms, 250 ms; TCP starts 250 ms after the last QUIC one.
        let ms = Duration::from_millis;
        let sorted = [
            addr(1, true, 1),
            addr(1, true, 2),
            addr(1, true, 3),
            addr(1, false, 1),
            addr(1, false, 2),
        ];
        let got: Vec<Duration> = smart_dial_delays(sorted.into_iter(), PUBLIC_DELAY)
            .into_iter()
            .map(|(d, _)| d)
            .collect();
        assert_eq!(got, [ms(0), ms(250), ms(250), ms(500), ms(750)]);
        // Private addresses: the same shape at 30 ms.
        let got: Vec<Duration> = smart_dial_delays(
            [addr(1, true, 1), addr(1, false, 1)].into_iter(),
            PRIVATE_DELAY,
        )
        .into_iter()
        .map(|(d, _)| d)
        .collect();
        assert_eq!(got, [ms(0), ms(30)]);
    }
}
