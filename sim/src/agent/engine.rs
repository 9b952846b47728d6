//! The multidriver policy: the real engine core behind a thin adapter, the
//! same shape as the libp2p `Behaviour`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use libp2p_identity::PeerId;
use multidriver_core::{
    Command, Config, ConnectionHandle, Discovered, DriverCaps, DriverId, EnergyClass, Engine,
    Event, InterfaceId, NetworkChange, QueryId, QueryOutcome, Reach, RouteMemory,
};
use multidriver_scoring::{Medium, Profile, Source, Timestamp};

use super::{Agent, DriverRef, Found, Input, Liveness, Output};
use crate::world::{AddrKey, IfKind, World};

/// How long a registration lasts: libp2p-rendezvous' default TTL, 2 h
/// (libp2p-rendezvous `lib.rs`, docs/PARAMETERS.md).
pub(crate) const ADVERT_TTL: Duration = Duration::from_secs(7200);
/// The app's extra lookups of an unreachable peer are at least this far
/// apart (our choice: the dial timeout, so a lookup's answers get raced
/// before the next one).
const RELOOKUP_GAP: Duration = Duration::from_secs(5);
/// Addresses remembered per contact by the adapter.
const BOOK_LIMIT: usize = 16;

/// Which drivers an engine policy registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DriverSet {
    All,
    Only(Source),
}

/// Shared, read-only identity tables.
pub(crate) struct Identities {
    pub(crate) peers: Vec<PeerId>,
    pub(crate) index: std::collections::HashMap<PeerId, u32>,
    /// Each rendezvous point's id (its relay's, when it is one).
    pub(crate) relays: Vec<PeerId>,
}

pub(crate) struct EngineAgent {
    engine: Engine,
    me: u32,
    ids: Arc<Identities>,
    drivers: Vec<(DriverId, DriverRef)>,
    /// Sim query id → engine query id, and back.
    queries: BTreeMap<u64, QueryId>,
    next_query: u64,
    conns: BTreeMap<u64, ConnectionHandle>,
    primary: BTreeMap<u32, u64>,
    book: BTreeMap<u32, Vec<(AddrKey, Source, bool, Timestamp)>>,
    up: [bool; 4],
    validated: [bool; 4],
    out: VecDeque<Output>,
    last_now: Timestamp,
    /// Peers the app wants looked up again now.
    relookup: Vec<u32>,
    /// When the app last looked each peer up outside the subscription.
    looked_up: BTreeMap<u32, Timestamp>,
}

fn iface(kind: IfKind) -> InterfaceId {
    InterfaceId(kind as u32 + 1)
}

fn kind_of(id: InterfaceId) -> Option<IfKind> {
    id.0.checked_sub(1).and_then(IfKind::from_index)
}

fn namespace(peer: u32) -> String {
    format!("n{peer}")
}

impl EngineAgent {
    pub(crate) fn new(
        me: u32,
        profile: Option<Profile>,
        set: DriverSet,
        seed: u64,
        ids: Arc<Identities>,
        world: &World,
        now: Timestamp,
    ) -> Result<EngineAgent, multidriver_core::Error> {
        let mut config = Config::default().with_seed(seed);
        if let Some(p) = profile {
            config = config.with_profile(p).with_profile_map(None);
        }
        let mut engine = Engine::new(config)?;
        let mut drivers = Vec::new();
        let wanted = |s: Source| set == DriverSet::All || set == DriverSet::Only(s);
        if world.scenario.dht.is_some() && wanted(Source::Dht) {
            let caps = DriverCaps {
                kind: Source::Dht,
                reach: Reach::Internet,
                energy: EnergyClass::High,
                // The IPFS lookup median (probe-lab 2023, docs/PARAMETERS.md).
                typical_latency: Duration::from_millis(557),
                signed_records: false,
            };
            drivers.push((engine.register_driver(caps, now)?, DriverRef::Dht));
        }
        if wanted(Source::Rendezvous) {
            for i in 0..world.servers.len() {
                let caps = DriverCaps {
                    kind: Source::Rendezvous,
                    reach: Reach::Internet,
                    energy: EnergyClass::Low,
                    typical_latency: Duration::from_millis(200),
                    signed_records: true,
                };
                let s = u16::try_from(i).unwrap_or(u16::MAX);
                drivers.push((engine.register_driver(caps, now)?, DriverRef::Rendezvous(s)));
            }
        }
        if wanted(Source::Mdns) {
            let caps = DriverCaps {
                kind: Source::Mdns,
                reach: Reach::Lan,
                energy: EnergyClass::Medium,
                typical_latency: crate::world::MDNS_FIRST_PROBE,
                signed_records: false,
            };
            drivers.push((engine.register_driver(caps, now)?, DriverRef::Mdns));
        }
        let has_ble = world.nodes[me as usize].ifaces[IfKind::Ble as usize].up;
        if has_ble && wanted(Source::Proximity) {
            let caps = DriverCaps {
                kind: Source::Proximity,
                reach: Reach::Lan,
                energy: EnergyClass::Medium,
                typical_latency: crate::world::BLE_SCAN,
                signed_records: false,
            };
            drivers.push((engine.register_driver(caps, now)?, DriverRef::Proximity));
        }
        Ok(EngineAgent {
            engine,
            me,
            ids,
            drivers,
            queries: BTreeMap::new(),
            next_query: 0,
            conns: BTreeMap::new(),
            primary: BTreeMap::new(),
            book: BTreeMap::new(),
            up: [false; 4],
            validated: [false; 4],
            out: VecDeque::new(),
            last_now: now,
            relookup: Vec::new(),
            looked_up: BTreeMap::new(),
        })
    }

    fn driver_ref(&self, id: DriverId) -> Option<DriverRef> {
        self.drivers.iter().find(|(d, _)| *d == id).map(|(_, r)| *r)
    }

    /// Reports an address to the engine over every local interface that can
    /// reach it.
    fn feed(
        &mut self,
        peer: u32,
        addr: AddrKey,
        source: Source,
        signed: bool,
        ttl: Duration,
        now: Timestamp,
    ) {
        let Some(&pid) = self.ids.peers.get(peer as usize) else {
            return;
        };
        // A relayed address goes through the relay's address to the peer:
        // `<relay>/p2p/<relay id>/p2p-circuit/p2p/<peer id>`.
        let Some(multiaddr) = addr.to_multiaddr_with(&self.ids.relays, &self.ids.peers) else {
            return;
        };
        for kind in IfKind::IP {
            let reachable = self.up[kind as usize]
                && if addr.lan {
                    kind != IfKind::Cellular
                } else {
                    self.validated[kind as usize]
                };
            if !reachable {
                continue;
            }
            // A full table drops the route; the engine says so and we carry on
            // as the libp2p adapter does.
            let _ = self.engine.handle_discovered(
                Discovered {
                    peer: pid,
                    addr: multiaddr.clone(),
                    interface: iface(kind),
                    source,
                    signed,
                    ttl,
                },
                now,
            );
        }
    }

    fn remember(&mut self, peer: u32, f: &Found, source: Source, now: Timestamp) {
        let book = self.book.entry(peer).or_default();
        let expires = now + f.ttl;
        book.retain(|e| e.3 > now);
        for &a in &f.addrs {
            if let Some(e) = book.iter_mut().find(|e| e.0 == a) {
                e.3 = e.3.max(expires);
            } else {
                if book.len() >= BOOK_LIMIT {
                    // Forget the entry that expires first.
                    if let Some(i) = (0..book.len()).min_by_key(|&i| book[i].3) {
                        book.remove(i);
                    }
                }
                book.push((a, source, f.signed, expires));
            }
        }
    }

    fn drain(&mut self) {
        self.drain_once();
        while let Some(p) = self.relookup.pop() {
            let now = self.last_now;
            let due = self
                .looked_up
                .get(&p)
                .is_none_or(|t| now.saturating_duration_since(*t) >= RELOOKUP_GAP);
            if due {
                self.looked_up.insert(p, now);
                // An unknown or invalid namespace is impossible here; a full
                // query table just skips the lookup.
                let _ = self.engine.discover(&namespace(p), now);
                self.drain_once();
            }
        }
    }

    fn drain_once(&mut self) {
        while let Some(e) = self.engine.poll_event() {
            match e {
                Event::RouteSelected {
                    peer, connection, ..
                }
                | Event::RouteSwitched {
                    peer, connection, ..
                } => {
                    if let Some(&p) = self.ids.index.get(&peer) {
                        self.primary.insert(p, connection.get());
                        self.out.push_back(Output::Primary {
                            peer: p,
                            conn: Some(connection.get()),
                        });
                    }
                }
                Event::PeerUnreachable { peer, .. } => {
                    // The app looks the peer up again at once instead of
                    // waiting for the subscription's next round, at most once
                    // per `RELOOKUP_GAP`.
                    if let Some(&p) = self.ids.index.get(&peer) {
                        self.relookup.push(p);
                    }
                }
                Event::PeerDisconnected { peer } => {
                    if let Some(&p) = self.ids.index.get(&peer)
                        && self.primary.remove(&p).is_some()
                    {
                        self.out.push_back(Output::Primary {
                            peer: p,
                            conn: None,
                        });
                    }
                }
                _ => {}
            }
        }
        while let Some(c) = self.engine.poll_command() {
            match c {
                Command::Dial {
                    connection,
                    addr,
                    interface,
                    ..
                } => {
                    let (Some(key), Some(via)) = (
                        AddrKey::from_multiaddr_with(&addr, &self.ids.index),
                        kind_of(interface),
                    ) else {
                        // Not an address the simulator made: fail it at once.
                        self.engine
                            .handle_dial_failed(connection, self.engine_now());
                        continue;
                    };
                    self.conns.insert(connection.get(), connection);
                    self.out.push_back(Output::Dial {
                        conn: connection.get(),
                        peer: key.node,
                        addr: key,
                        via: Some(via),
                    });
                }
                Command::CancelDial { connection } => {
                    self.conns.remove(&connection.get());
                    self.out.push_back(Output::CancelDial {
                        conn: connection.get(),
                    });
                }
                Command::CloseConnection { connection, .. } => {
                    let c = connection.get();
                    self.conns.remove(&c);
                    self.clear_primary(c);
                    self.out.push_back(Output::Close { conn: c });
                }
                Command::Advertise { query, driver, .. } => {
                    if let Some(d) = self.driver_ref(driver) {
                        let q = self.new_query(query);
                        self.out.push_back(Output::Advertise {
                            query: q,
                            driver: d,
                        });
                    }
                }
                Command::StopAdvertising { driver, .. } => {
                    if let Some(d) = self.driver_ref(driver) {
                        self.out.push_back(Output::StopAdvertising { driver: d });
                    }
                }
                Command::Discover {
                    query,
                    driver,
                    namespace,
                } => {
                    let peer = namespace
                        .strip_prefix('n')
                        .and_then(|n| n.parse::<u32>().ok());
                    if let (Some(d), Some(peer)) = (self.driver_ref(driver), peer) {
                        let q = self.new_query(query);
                        // The engine's drivers are scoped by namespace (the
                        // libp2p drivers put it in the mDNS service name and
                        // the BLE token), so a lookup finds that peer only.
                        self.out.push_back(Output::Discover {
                            query: q,
                            driver: d,
                            peer: Some(peer),
                        });
                    }
                }
                Command::CancelQuery { query } => {
                    self.queries.retain(|_, q| *q != query);
                }
                Command::KeepAlive { connections } => {
                    self.out.push_back(Output::KeepAlive {
                        conns: connections.iter().map(|c| c.get()).collect(),
                    });
                }
                _ => {}
            }
        }
    }

    fn engine_now(&self) -> Timestamp {
        // Only used for an immediate failure inside `drain`, which runs right
        // after an input at the current time.
        self.last_now
    }

    fn new_query(&mut self, q: QueryId) -> u64 {
        self.next_query += 1;
        self.queries.insert(self.next_query, q);
        self.next_query
    }

    fn clear_primary(&mut self, conn: u64) {
        if let Some((&p, _)) = self.primary.iter().find(|(_, c)| **c == conn) {
            self.primary.remove(&p);
            self.out.push_back(Output::Primary {
                peer: p,
                conn: None,
            });
        }
    }
}

impl Agent for EngineAgent {
    fn handle(&mut self, input: Input, now: Timestamp, world: &World) {
        self.last_now = now;
        match input {
            Input::Start => {
                let node = &world.nodes[self.me as usize];
                for kind in IfKind::ALL {
                    if node.ifaces[kind as usize].up {
                        let up = super::up_input(node, kind, world);
                        self.handle(up, now, world);
                    }
                }
                self.engine.handle_power(node.power, now);
                // The namespace is valid and the table empty: this cannot fail.
                let _ = self.engine.advertise(&namespace(self.me), ADVERT_TTL, now);
                for &c in &node.contacts {
                    let _ = self.engine.subscribe(&namespace(c), now);
                    if let Some(&pid) = self.ids.peers.get(c as usize) {
                        let _ = self.engine.connect(pid, now);
                    }
                }
            }
            Input::Up {
                kind,
                medium,
                conditions,
                validated,
            } => {
                self.up[kind as usize] = true;
                self.validated[kind as usize] = validated;
                let _ = self.engine.handle_network_change(
                    NetworkChange::Up {
                        interface: iface(kind),
                        medium,
                        conditions,
                        validated,
                    },
                    now,
                );
                // Known addresses become routes over the new interface too.
                let known: Vec<(u32, AddrKey, Source, bool, Timestamp)> = self
                    .book
                    .iter()
                    .flat_map(|(p, v)| v.iter().map(|e| (*p, e.0, e.1, e.2, e.3)))
                    .filter(|e| e.4 > now)
                    .collect();
                for (p, a, s, signed, exp) in known {
                    self.feed(p, a, s, signed, exp.saturating_duration_since(now), now);
                }
            }
            Input::Down { kind } => {
                self.up[kind as usize] = false;
                self.validated[kind as usize] = false;
                let _ = self.engine.handle_network_change(
                    NetworkChange::Down {
                        interface: iface(kind),
                    },
                    now,
                );
            }
            Input::Losing { kind } => {
                let _ = self.engine.handle_network_change(
                    NetworkChange::Losing {
                        interface: iface(kind),
                    },
                    now,
                );
            }
            Input::Power(p) => self.engine.handle_power(p, now),
            Input::Answer {
                query,
                driver,
                ok,
                found,
            } => {
                let Some(q) = self.queries.remove(&query) else {
                    return;
                };
                let mut routes = 0;
                for f in &found {
                    self.remember(f.peer, f, driver.source(), now);
                    for &a in &f.addrs {
                        self.feed(f.peer, a, driver.source(), f.signed, f.ttl, now);
                        routes += 1;
                    }
                }
                let outcome = if ok {
                    QueryOutcome::Succeeded { found: routes }
                } else {
                    QueryOutcome::Failed
                };
                self.engine.handle_query_outcome(q, outcome, now);
            }
            Input::DialSucceeded { conn } => {
                if let Some(&c) = self.conns.get(&conn) {
                    self.engine.handle_dial_succeeded(c, now);
                }
            }
            Input::DialFailed { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    self.engine.handle_dial_failed(c, now);
                }
            }
            Input::ConnectionLost { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    self.clear_primary(conn);
                    self.engine.handle_connection_lost(c, now);
                }
            }
            Input::Rtt { conn, rtt } => {
                if let Some(&c) = self.conns.get(&conn) {
                    self.engine.handle_rtt_sample(c, rtt, now);
                }
            }
            Input::IdleClosed { conn } => {
                if let Some(c) = self.conns.remove(&conn) {
                    self.clear_primary(conn);
                    self.engine.handle_connection_closed(c, now);
                }
            }
            // The app has a message for a peer it cannot reach: it looks the
            // peer up now (as the stock app model does), at most every
            // `RELOOKUP_GAP`.
            // A peer left dormant while the app was quiet is dialled through
            // its best known route first (`Engine::mark_used`); a lookup
            // only if that started nothing.
            Input::NeedPeer { peer } => {
                if !self.primary.contains_key(&peer) {
                    let dialling = self.ids.peers.get(peer as usize).is_some_and(|&pid| {
                        self.engine.mark_used(pid, now);
                        self.engine.attempts_in_flight_for(&pid) > 0
                    });
                    if !dialling {
                        self.relookup.push(peer);
                    }
                }
            }
            Input::AppTraffic { peer } => {
                if let Some(&pid) = self.ids.peers.get(peer as usize) {
                    self.engine.mark_used(pid, now);
                }
            }
            Input::PathsChanged { .. } => {}
            // DCUtR opened a direct connection from a relayed one: the
            // engine takes it (and moves off the circuit make-before-break),
            // as the libp2p adapter does with DCUtR's event.
            Input::HolePunched {
                peer, addr, via, ..
            } => {
                if let Some(&pid) = self.ids.peers.get(peer as usize)
                    && let Ok(c) =
                        self.engine
                            .handle_hole_punched(pid, addr.to_multiaddr(), iface(via), now)
                {
                    self.conns.insert(c.get(), c);
                    self.out.push_back(Output::Adopt {
                        conn: c.get(),
                        peer,
                        addr,
                        via,
                    });
                }
            }
            Input::HolePunchFailed { peer, via, .. } => {
                if let Some(&pid) = self.ids.peers.get(peer as usize) {
                    self.engine.handle_hole_punch_failed(pid, iface(via), now);
                }
            }
        }
        self.drain();
    }

    fn handle_timeout(&mut self, now: Timestamp, _world: &World) {
        self.last_now = now;
        self.engine.handle_timeout(now);
        self.drain();
    }

    fn poll_timeout(&self) -> Option<Timestamp> {
        self.engine.poll_timeout()
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn export_memory(&self, now: Timestamp) -> Option<Vec<u8>> {
        Some(self.engine.export_memory(now).to_bytes())
    }

    fn import_memory(&mut self, stored: &[u8], now: Timestamp) {
        self.last_now = now;
        // What this policy stored itself decodes; a full table drops what
        // does not fit (counted in the report, which the app ignores).
        if let Ok(memory) = RouteMemory::from_bytes(stored) {
            let _ = self.engine.import_memory(&memory, now);
        }
        self.drain();
    }

    fn liveness(&self, _quic: bool, _medium: Medium) -> Liveness {
        // The engine probes connections itself (`Config::liveness`: batched
        // keep-alives on cellular, a heartbeat elsewhere, a probe riding on
        // app traffic) and closes those whose probe goes unanswered. The
        // adapter only pings when asked, and raises QUIC's idle timeout
        // above the engine's intervals, so QUIC neither sends keep-alives of
        // its own nor idles out.
        Liveness {
            ping_every: None,
            ping_timeout: None,
            quic_keepalive: None,
            quic_idle: None,
            idle_close: None,
        }
    }
}
