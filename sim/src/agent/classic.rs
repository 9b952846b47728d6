//! Models of the stacks multidriver is compared with: stock rust-libp2p 0.57
//! at its defaults (`libp2p-stock`), the same stack tuned as a competent
//! mobile developer would tune it (`libp2p-tuned`), and Berty's always-on
//! multi-driver discovery (`tinder`). Every constant is the library's
//! default or the tuned value, with its source; where the model assumes
//! something of the app, it says so.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use multidriver_scoring::{Medium, Timestamp};

use super::{
    Agent, DriverRef, Input, Liveness, Output, PING_INTERVAL, PING_TIMEOUT, QUIC_IDLE,
    QUIC_KEEPALIVE, SWARM_IDLE,
};
use crate::world::{AddrKey, IfKind, MDNS_FIRST_PROBE, MDNS_QUERY_INTERVAL, MDNS_TTL, World};

/// Smart dial (libp2p-swarm 0.48 `dial_ranker.rs`, docs/PARAMETERS.md): 30 ms
/// between private addresses, 250 ms between public ones (see
/// [`smart_dial_delays`]). Smart dial is opt-in in rust-libp2p; the baseline
/// turns it on, as the project's real-network baseline does.
const PRIVATE_DELAY: Duration = Duration::from_millis(30);
/// See [`PRIVATE_DELAY`].
const PUBLIC_DELAY: Duration = Duration::from_millis(250);
/// Smart dial starts relayed addresses this long after the dial begins when
/// the peer has public direct addresses, at once when it has none
/// (libp2p-swarm 0.48 `dial_ranker.rs`, `RELAY_DELAY`, ported from
/// go-libp2p's ranker).
const RELAY_DELAY: Duration = Duration::from_millis(250);
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
/// The app waits this long before trying an unreachable peer again, and
/// looks a peer up at most this often. libp2p has no retry policy of its
/// own, so this is the app's: the same app as the `multidriver` policy's
/// (`RELOOKUP_GAP` in `engine.rs`), so that no policy wins by its app
/// retrying sooner.
const APP_RETRY: Duration = Duration::from_secs(5);
/// libp2p-ping 0.48 never reports a connection's first failed ping ("the
/// first failure is always free", `handler.rs`); the second attempt opens
/// a new stream after the interval, and on a dead connection that stream's
/// protocol negotiation times out after `SubstreamProtocol`'s default 10 s
/// (libp2p-swarm 0.48 `handler.rs`), which the handler reports. A dead
/// connection is therefore reported ping timeout + interval + 10 s after
/// the first ping that went unanswered.
pub(crate) const PING_NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(10);
/// `libp2p-tuned`: ping every 1 s with a 1 s timeout, the multidriver
/// engine's active heartbeat and its probe deadline's floor (RFC 6298's
/// minimum RTO; `Liveness::active_heartbeat` and `active_probe_timeout` in
/// `engine/src/core/config.rs`). The simulator's paths all have RTOs under
/// 1 s, so the engine's deadline is 1 s on every one of them.
pub(crate) const TUNED_PING: Duration = Duration::from_secs(1);
/// `libp2p-tuned`: QUIC `max_idle_timeout` 3 s with keep-alive packets
/// every 1 s, below it (libp2p-quic 0.14 `Config::max_idle_timeout` and
/// `keep_alive_interval`; three keep-alive intervals, so a lost keep-alive
/// or two do not close a live connection), as the real-socket harness's
/// tuned stack sets them (`tests/src/switch.rs`).
pub(crate) const TUNED_QUIC_IDLE: Duration = Duration::from_secs(3);
/// See [`TUNED_QUIC_IDLE`].
pub(crate) const TUNED_QUIC_KEEPALIVE: Duration = Duration::from_secs(1);

/// Which stack a [`ClassicAgent`] models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// rust-libp2p 0.57 left at its defaults; the app redials on loss and
    /// ignores interface events.
    Stock,
    /// rust-libp2p 0.57 tuned: fast ping and QUIC idle timeout, and an app
    /// that acts on interface events and host hints (closes and redials on
    /// a lost interface, dials the other interface before a losing one
    /// goes, and moves back when a LAN interface returns).
    Tuned,
    /// Berty's tinder on go-libp2p.
    Tinder,
}
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
    /// The interface the connection in use leaves through.
    conn_via: Option<IfKind>,
    dials: Vec<u64>,
    plan: VecDeque<(Timestamp, AddrKey)>,
    retry_at: Option<Timestamp>,
    /// Lookups of this peer in flight.
    lookups: u16,
    /// When the peer was last looked up.
    looked_up: Option<Timestamp>,
    /// A make-before-break move is under way (`libp2p-tuned`): dials run
    /// while the old connection still serves.
    moving: bool,
}

pub(crate) struct ClassicAgent {
    me: u32,
    flavor: Flavor,
    tinder: bool,
    peers: BTreeMap<u32, Peer>,
    /// Each connection or dial: the peer, the address, and the interface it
    /// leaves through (the app's choice, or the OS's route when dialed).
    conn_peer: BTreeMap<u64, (u32, AddrKey, Option<IfKind>)>,
    /// Each query's driver, and the peer it looks up.
    queries: BTreeMap<u64, (DriverRef, Option<u32>)>,
    /// Interfaces the host said are losing (`libp2p-tuned` dials around
    /// them).
    losing: Vec<IfKind>,
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
    pub(crate) fn new(me: u32, flavor: Flavor, world: &World) -> ClassicAgent {
        let node = &world.nodes[me as usize];
        let tinder = flavor == Flavor::Tinder;
        ClassicAgent {
            me,
            flavor,
            tinder,
            losing: Vec::new(),
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
        // Every policy is given the same rendezvous points. The stock client
        // takes one point per call (libp2p-rendezvous 0.18
        // `client::Behaviour::register` and `discover` name a
        // `rendezvous_node`), so a stock app registers with and asks each.
        0..self.servers
    }

    /// Registers with the rendezvous points, and publishes the DHT provider
    /// record when `dht`.
    fn advertise_all(&mut self, dht: bool) {
        if dht && self.dht {
            let q = self.id();
            self.queries.insert(q, (DriverRef::Dht, None));
            self.out.push_back(Output::Advertise {
                query: q,
                driver: DriverRef::Dht,
            });
        }
        for s in self.rendezvous_points() {
            let q = self.id();
            self.queries.insert(q, (DriverRef::Rendezvous(s), None));
            self.out.push_back(Output::Advertise {
                query: q,
                driver: DriverRef::Rendezvous(s),
            });
        }
    }

    fn discover(&mut self, peer: u32, driver: DriverRef) {
        let q = self.id();
        self.queries.insert(q, (driver, Some(peer)));
        if let Some(p) = self.peers.get_mut(&peer) {
            p.lookups = p.lookups.saturating_add(1);
        }
        // A BLE scan hears every advertiser; lookups name the peer.
        self.out.push_back(Output::Discover {
            query: q,
            driver,
            peer: (driver != DriverRef::Proximity).then_some(peer),
        });
    }

    /// Looks a peer up on the internet drivers (stock: Kademlia and the
    /// rendezvous points; tinder: BLE too), unless a lookup of it is in
    /// flight or one started less than [`APP_RETRY`] ago: an app that looked
    /// a peer up again on every failed dial would multiply its lookups with
    /// every answer.
    fn lookup(&mut self, peer: u32, now: Timestamp) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.lookups > 0 {
            return;
        }
        if let Some(t) = p.looked_up.filter(|t| now < *t + APP_RETRY) {
            // Too soon: try again when the pause is over, so a peer with
            // no address does not wait for the app's next message.
            if p.conn.is_none() && p.retry_at.is_none_or(|r| r > t + APP_RETRY) {
                p.retry_at = Some(t + APP_RETRY);
            }
            return;
        }
        p.looked_up = Some(now);
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
    fn dial(&mut self, peer: u32, now: Timestamp, world: &World) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.conn.is_some() || !p.dials.is_empty() || !p.plan.is_empty() {
            return;
        }
        self.plan_dials(peer, now, world, None);
    }

    /// Plans a dial of every known address of `peer`, skipping those that
    /// would leave through `skip_via` (a move away from that interface).
    fn plan_dials(&mut self, peer: u32, now: Timestamp, world: &World, skip_via: Option<IfKind>) {
        let losing = self.losing.clone();
        let me = self.me;
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.addrs.retain(|_, k| k.expires.is_none_or(|e| e > now));
        let mut plan: Vec<(Timestamp, AddrKey)> = Vec::new();
        let usable = |a: &AddrKey| {
            skip_via.is_none_or(|k| via_for(world, me, *a, &losing).is_some_and(|v| v != k))
        };
        // Relayed addresses (a private peer's reservation on a relay): after
        // the direct ones, as the ranker puts them.
        let public = p
            .addrs
            .keys()
            .any(|a| !a.lan && a.relay.is_none() && usable(a));
        let mut relayed: Vec<(&AddrKey, &Known)> = p
            .addrs
            .iter()
            .filter(|(a, _)| a.relay.is_some() && usable(a))
            .collect();
        relayed.sort_by_key(|(a, k)| (std::cmp::Reverse(k.learned), **a));
        let offset = if public { RELAY_DELAY } else { Duration::ZERO };
        for (at, a) in smart_dial_delays(relayed.iter().map(|(a, _)| **a), PUBLIC_DELAY) {
            plan.push((now + offset + at, a));
        }
        for lan in [true, false] {
            // Within a group: QUIC before TCP; the real ranker then prefers
            // IPv6 and lower ports, which mean nothing in the simulator's
            // encoding, so the most recently learned address goes first.
            let mut group: Vec<(&AddrKey, &Known)> = p
                .addrs
                .iter()
                .filter(|(a, _)| a.lan == lan && a.relay.is_none())
                .filter(|(a, _)| usable(a))
                .collect();
            group.sort_by_key(|(a, k)| (!a.quic, std::cmp::Reverse(k.learned), **a));
            let d = if lan { PRIVATE_DELAY } else { PUBLIC_DELAY };
            for (at, a) in smart_dial_delays(group.iter().map(|(a, _)| **a), d) {
                plan.push((now + at, a));
            }
        }
        plan.sort_by_key(|(t, a)| (*t, !a.lan));
        p.plan.extend(plan);
        if p.plan.is_empty() {
            p.moving = false;
            if skip_via.is_none() {
                self.lookup(peer, now);
            }
        }
        self.advance(peer, now, world);
    }

    /// Starts the attempts that are due. go-libp2p (tinder) fast-forwards to
    /// the next address when nothing is in flight; rust-libp2p does not.
    fn advance(&mut self, peer: u32, now: Timestamp, world: &World) {
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
            // The OS picks the interface (see `route_for`); the tuned app
            // steers around a losing interface.
            let via = if self.flavor == Flavor::Tuned {
                via_for(world, self.me, a, &self.losing)
            } else {
                None
            };
            let leaves = via.or_else(|| route_for(world, self.me, a));
            self.conn_peer.insert(conn, (peer, a, leaves));
            if let Some(p) = self.peers.get_mut(&peer) {
                p.dials.push(conn);
            }
            self.out.push_back(Output::Dial {
                conn,
                peer,
                addr: a,
                via,
            });
        }
    }

    fn after_failure(&mut self, peer: u32, now: Timestamp) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if p.dials.is_empty() && p.plan.is_empty() {
            // A move whose every dial failed keeps the old connection.
            p.moving = false;
        }
        if p.conn.is_none() && p.dials.is_empty() && p.plan.is_empty() {
            // Every address failed: look the peer up again, and try again
            // after a pause.
            p.retry_at = Some(now + APP_RETRY);
            self.lookup(peer, now);
        }
    }

    /// `libp2p-tuned`: moves every peer connected through `from` (or, with
    /// `None`, through cellular) to another interface, make-before-break:
    /// dials with `PeerCondition::Always` while the old connection serves.
    fn move_off(&mut self, from: Option<IfKind>, now: Timestamp, world: &World) {
        let peers: Vec<u32> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.conn.is_some()
                    && !p.moving
                    && p.dials.is_empty()
                    && p.plan.is_empty()
                    && p.conn_via == Some(from.unwrap_or(IfKind::Cellular))
            })
            .map(|(c, _)| *c)
            .collect();
        for c in peers {
            if let Some(p) = self.peers.get_mut(&c) {
                p.moving = true;
            }
            let skip = self.peers.get(&c).and_then(|p| p.conn_via);
            self.plan_dials(c, now, world, skip);
        }
    }

    /// Forgets a closed connection; the peer it served, if any.
    fn closed(&mut self, conn: u64) -> Option<u32> {
        let (peer, _, _) = self.conn_peer.remove(&conn)?;
        if let Some(p) = self.peers.get_mut(&peer)
            && p.conn == Some(conn)
        {
            p.conn = None;
            p.conn_via = None;
            // A move under way becomes a plain redial.
            p.moving = false;
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

/// The interface a dial of `addr` leaves through when the app avoids the
/// `losing` interfaces: the OS's route unless it is losing, then the next
/// usable one for that scope (Android's `bindProcessToNetwork` onto the
/// network the OS now prefers).
fn via_for(world: &World, node: u32, addr: AddrKey, losing: &[IfKind]) -> Option<IfKind> {
    let route = route_for(world, node, addr);
    if route.is_none_or(|k| !losing.contains(&k)) {
        return route;
    }
    let n = &world.nodes[node as usize];
    [IfKind::Ethernet, IfKind::Wifi, IfKind::Cellular]
        .into_iter()
        .filter(|k| !losing.contains(k) && n.online && n.ifaces[*k as usize].up)
        .find(|&k| {
            if addr.lan {
                n.ifaces[k as usize].lan.is_some()
            } else {
                n.has_internet(k, world)
            }
        })
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
                    self.dial(c, now, world);
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
                if self.flavor == Flavor::Tuned {
                    // if-watch reports the new address (Android: the
                    // network is available): the app dials peers it has
                    // lost at once, and moves peers off cellular onto a
                    // LAN interface, make-before-break.
                    self.losing.retain(|&k| k != kind);
                    let lost: Vec<u32> = self
                        .peers
                        .iter()
                        .filter(|(_, p)| p.conn.is_none())
                        .map(|(c, _)| *c)
                        .collect();
                    for c in lost {
                        // Dials still waiting for a dead path are left to
                        // time out; new ones start now.
                        if let Some(p) = self.peers.get_mut(&c) {
                            p.plan.clear();
                            p.retry_at = None;
                        }
                        self.plan_dials(c, now, world, None);
                    }
                    if kind != IfKind::Cellular {
                        self.move_off(None, now, world);
                    }
                }
            }
            Input::Down { kind } => {
                if self.tinder {
                    self.advertise_all(true);
                }
                if self.flavor == Flavor::Tuned {
                    // if-watch reports the address gone: the app closes the
                    // connections over it and dials again at once.
                    self.losing.retain(|&k| k != kind);
                    let gone: Vec<(u32, u64)> = self
                        .peers
                        .iter()
                        .filter(|(_, p)| p.conn_via == Some(kind))
                        .filter_map(|(c, p)| p.conn.map(|conn| (*c, conn)))
                        .collect();
                    for (peer, conn) in gone {
                        self.out.push_back(Output::Close { conn });
                        self.closed(conn);
                        self.dial(peer, now, world);
                    }
                }
            }
            Input::Losing { kind } => {
                if self.flavor == Flavor::Tuned && !self.losing.contains(&kind) {
                    // The host's `onLosing`: dial around the interface
                    // before it goes.
                    self.losing.push(kind);
                    self.move_off(Some(kind), now, world);
                }
            }
            Input::Power(_)
            | Input::Rtt { .. }
            | Input::PathsChanged { .. }
            | Input::AppTraffic { .. } => {}
            Input::Answer {
                query,
                driver,
                found,
                ..
            } => {
                let Some((_, looked_up)) = self.queries.remove(&query) else {
                    return;
                };
                if let Some(p) = looked_up.and_then(|l| self.peers.get_mut(&l)) {
                    p.lookups = p.lookups.saturating_sub(1);
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
                    self.dial(peer, now, world);
                }
            }
            Input::DialSucceeded { conn } => {
                let Some(&(peer, _, via)) = self.conn_peer.get(&conn) else {
                    return;
                };
                let mut cancel = Vec::new();
                let mut replaced = None;
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
                    if p.conn.is_none() || p.moving {
                        // A move: the new connection takes over, then the
                        // old one is closed.
                        replaced = p.conn.replace(conn);
                        p.conn_via = via;
                        p.moving = false;
                        self.out.push_back(Output::Primary {
                            peer,
                            conn: Some(conn),
                        });
                    } else {
                        cancel.push(conn);
                    }
                }
                if let Some(old) = replaced {
                    self.conn_peer.remove(&old);
                    self.out.push_back(Output::Close { conn: old });
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
                let Some((peer, addr, _)) = self.conn_peer.remove(&conn) else {
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
                self.advance(peer, now, world);
                self.after_failure(peer, now);
            }
            Input::ConnectionLost { conn } => {
                // The app redials on connection loss.
                if let Some(peer) = self.closed(conn) {
                    self.dial(peer, now, world);
                }
            }
            // An idle connection closed: the app dials again when it has
            // something to send.
            Input::IdleClosed { conn } => {
                self.closed(conn);
            }
            Input::NeedPeer { peer } => self.dial(peer, now, world),
            // DCUtR (libp2p-dcutr beside the relay client, as the rust-libp2p
            // hole-punching example wires it) opened a direct connection
            // from the relayed one: the app moves its traffic to it and
            // closes the circuit. A failed punch leaves the circuit as it is;
            // nothing remembers it, so the next relayed connection punches
            // again.
            Input::HolePunched {
                relayed,
                peer,
                addr,
                via,
            } => {
                let conn = self.id();
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                if p.conn != Some(relayed) {
                    return;
                }
                p.conn = Some(conn);
                p.conn_via = Some(via);
                self.conn_peer.insert(conn, (peer, addr, Some(via)));
                self.conn_peer.remove(&relayed);
                self.out.push_back(Output::Adopt {
                    conn,
                    peer,
                    addr,
                    via,
                });
                self.out.push_back(Output::Primary {
                    peer,
                    conn: Some(conn),
                });
                self.out.push_back(Output::Close { conn: relayed });
            }
            Input::HolePunchFailed { .. } => {}
        }
    }

    fn handle_timeout(&mut self, now: Timestamp, world: &World) {
        if self.mdns_next.is_some_and(|t| t <= now) {
            // libp2p-mdns: probes doubling from 500 ms to the 5 min interval.
            for kind in [IfKind::Wifi, IfKind::Ethernet] {
                if world.nodes[self.me as usize].usable(kind) {
                    // One multicast query; every contact on the LAN answers.
                    let q = self.id();
                    self.queries.insert(q, (DriverRef::Mdns, None));
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
            self.queries.insert(q, (DriverRef::Dht, None));
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
                self.queries.insert(q, (DriverRef::Dht, None));
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
                self.dial(c, now, world);
            }
            self.advance(c, now, world);
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
        // libp2p-ping reports a dead connection only at its second failure:
        // the first ping's timeout, the interval, then the second attempt's
        // stream negotiation, which times out after 10 s at the defaults
        // (see `PING_NEGOTIATION_TIMEOUT`). The tuned swarm negotiates
        // outbound streams lazily (`V1Lazy`, through
        // `Config::with_substream_upgrade_protocol_override`), so its second
        // ping goes out at once and fails at the ping timeout. go-libp2p's
        // (tinder's) keep-alives are modelled as rust-libp2p's.
        let (ping, detect, keepalive, idle) = match self.flavor {
            Flavor::Tuned => (
                TUNED_PING,
                TUNED_PING + TUNED_PING + TUNED_PING,
                TUNED_QUIC_KEEPALIVE,
                TUNED_QUIC_IDLE,
            ),
            Flavor::Stock | Flavor::Tinder => (
                PING_INTERVAL,
                PING_TIMEOUT + PING_INTERVAL + PING_NEGOTIATION_TIMEOUT,
                QUIC_KEEPALIVE,
                QUIC_IDLE,
            ),
        };
        Liveness {
            ping_every: Some(ping),
            ping_timeout: Some(detect),
            quic_keepalive: quic.then_some(keepalive),
            quic_idle: quic.then_some(idle),
            // go-libp2p (tinder) has no idle timeout; rust-libp2p closes a
            // connection without streams after 10 s, a relayed one only
            // once DCUtR's handler lets it go (`DcutrHold` in
            // `run/connections.rs`).
            idle_close: (!self.tinder).then_some(SWARM_IDLE),
        }
    }
}

#[cfg(test)]
mod tests;
