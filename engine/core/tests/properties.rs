//! Invariants of the engine core over random input sequences: a random
//! adapter answers (or ignores) dials, interfaces come and go, time passes.

use std::collections::BTreeMap;
use std::time::Duration;

use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use multidriver_core::{
    Command, Config, ConnectionHandle, Discovered, DriverCaps, DriverId, EnergyClass, Engine,
    InterfaceId, NetworkChange, QueryId, QueryOutcome, Reach,
};
use multidriver_scoring::{
    CellularGeneration, Lifecycle, Medium, NetworkConditions, PowerState, Profile, Source,
    Timestamp,
};
use proptest::prelude::*;

const PEERS: u8 = 3;
const ADDRS: [&str; 3] = [
    "/ip4/192.168.1.{p}/udp/4001/quic-v1",
    "/ip4/203.0.113.{p}/udp/4001/quic-v1",
    "/ip4/203.0.113.{p}/tcp/4001",
];
const IFACES: [(InterfaceId, Medium); 2] = [
    (InterfaceId(1), Medium::Wifi),
    (InterfaceId(2), Medium::Cellular(CellularGeneration::G4)),
];

#[derive(Debug, Clone)]
enum Op {
    Discover {
        peer: u8,
        addr: usize,
        iface: usize,
        ttl_ms: u64,
    },
    Connect {
        peer: u8,
    },
    Disconnect {
        peer: u8,
    },
    Up {
        iface: usize,
        validated: bool,
    },
    Down {
        iface: usize,
    },
    Losing {
        iface: usize,
    },
    Metered {
        iface: usize,
        metered: bool,
    },
    Advance {
        ms: u64,
    },
    Resolve {
        pick: usize,
        success: bool,
    },
    Close {
        pick: usize,
    },
    Rtt {
        pick: usize,
        ms: u64,
    },
    Register {
        kind: usize,
    },
    Inbound {
        peer: u8,
        iface: usize,
    },
    Hold {
        peer: u8,
        protect: bool,
        used: bool,
    },
    SetProfile {
        performance: bool,
    },
    Subscribe {
        ns: usize,
        on: bool,
    },
    Advertise {
        ns: usize,
    },
    StopAdvertising {
        ns: usize,
    },
    Lookup {
        ns: usize,
    },
    QueryDone {
        pick: usize,
        success: bool,
        found: usize,
    },
    Power {
        lifecycle: usize,
        battery: Option<u8>,
        charging: bool,
    },
}

const KINDS: [Source; 3] = [Source::Dht, Source::Rendezvous, Source::Mdns];
const NAMESPACES: [&str; 2] = ["chat", "files"];

fn caps(kind: Source) -> DriverCaps {
    let (reach, energy) = match kind {
        Source::Dht => (Reach::Internet, EnergyClass::High),
        Source::Rendezvous => (Reach::Internet, EnergyClass::Low),
        _ => (Reach::Lan, EnergyClass::Medium),
    };
    DriverCaps {
        kind,
        reach,
        energy,
        typical_latency: Duration::from_millis(300),
        signed_records: false,
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..PEERS, 0..ADDRS.len(), 0..IFACES.len(), 100u64..120_000)
            .prop_map(|(peer, addr, iface, ttl_ms)| Op::Discover { peer, addr, iface, ttl_ms }),
        2 => (0..PEERS).prop_map(|peer| Op::Connect { peer }),
        1 => (0..PEERS).prop_map(|peer| Op::Disconnect { peer }),
        2 => (0..IFACES.len(), any::<bool>()).prop_map(|(iface, validated)| Op::Up { iface, validated }),
        1 => (0..IFACES.len()).prop_map(|iface| Op::Down { iface }),
        1 => (0..IFACES.len()).prop_map(|iface| Op::Losing { iface }),
        1 => (0..IFACES.len(), any::<bool>()).prop_map(|(iface, metered)| Op::Metered { iface, metered }),
        4 => (0u64..4_000).prop_map(|ms| Op::Advance { ms }),
        5 => (any::<usize>(), any::<bool>()).prop_map(|(pick, success)| Op::Resolve { pick, success }),
        1 => any::<usize>().prop_map(|pick| Op::Close { pick }),
        2 => (any::<usize>(), 1u64..400).prop_map(|(pick, ms)| Op::Rtt { pick, ms }),
        1 => (0..KINDS.len()).prop_map(|kind| Op::Register { kind }),
        1 => (0..PEERS, 0..IFACES.len()).prop_map(|(peer, iface)| Op::Inbound { peer, iface }),
        1 => (0..PEERS, any::<bool>(), any::<bool>()).prop_map(|(peer, protect, used)| Op::Hold { peer, protect, used }),
        1 => any::<bool>().prop_map(|performance| Op::SetProfile { performance }),
        1 => (0..NAMESPACES.len(), any::<bool>()).prop_map(|(ns, on)| Op::Subscribe { ns, on }),
        1 => (0..NAMESPACES.len()).prop_map(|ns| Op::Advertise { ns }),
        1 => (0..NAMESPACES.len()).prop_map(|ns| Op::StopAdvertising { ns }),
        1 => (0..NAMESPACES.len()).prop_map(|ns| Op::Lookup { ns }),
        3 => (any::<usize>(), any::<bool>(), 0usize..3).prop_map(|(pick, success, found)| Op::QueryDone { pick, success, found }),
        1 => (0usize..3, prop::option::of(0u8..=100), any::<bool>())
            .prop_map(|(lifecycle, battery, charging)| Op::Power { lifecycle, battery, charging }),
    ]
}

fn peer(n: u8) -> PeerId {
    PeerId::from_public_key(&Keypair::ed25519_from_bytes([n + 1; 32]).unwrap().public())
}

fn addr(i: usize, p: u8) -> Multiaddr {
    ADDRS[i]
        .replace("{p}", &(u32::from(p) + 10).to_string())
        .parse()
        .unwrap()
}

struct World {
    engine: Engine,
    config: Config,
    now: Timestamp,
    /// Interfaces as the engine was told: (up, losing).
    ifaces: BTreeMap<InterfaceId, (bool, bool)>,
    /// Latest expiry of each route as reported.
    expiry: BTreeMap<(PeerId, Multiaddr, InterfaceId), Timestamp>,
    /// Dials the engine asked for and nobody resolved or cancelled yet.
    open_dials: BTreeMap<ConnectionHandle, PeerId>,
    /// Connections open on the adapter's side.
    open_conns: BTreeMap<ConnectionHandle, PeerId>,
    /// Driver operations asked for and not yet answered or cancelled, with
    /// when they were asked.
    open_queries: BTreeMap<QueryId, Timestamp>,
    /// Kinds of the registered drivers.
    drivers: BTreeMap<DriverId, Source>,
    log: Vec<String>,
}

impl World {
    fn new(config: Config) -> Self {
        World {
            engine: Engine::new(config.clone()).unwrap(),
            config,
            now: Timestamp::ZERO,
            ifaces: BTreeMap::new(),
            expiry: BTreeMap::new(),
            open_dials: BTreeMap::new(),
            open_conns: BTreeMap::new(),
            open_queries: BTreeMap::new(),
            drivers: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    /// Drains outputs and checks the invariants that hold after any input.
    fn settle(&mut self) -> Result<(), TestCaseError> {
        while let Some(c) = self.engine.poll_command() {
            self.log.push(format!("{} {c:?}", self.now));
            match c {
                Command::Dial {
                    connection,
                    peer,
                    addr,
                    interface,
                } => {
                    let (up, losing) = self
                        .ifaces
                        .get(&interface)
                        .copied()
                        .unwrap_or((false, false));
                    prop_assert!(
                        up && !losing,
                        "dial over a down or losing interface: {interface}"
                    );
                    let expiry = self.expiry.get(&(peer, addr.clone(), interface)).copied();
                    prop_assert!(
                        expiry.is_some_and(|e| self.now < e),
                        "dial of {addr} past its TTL ({expiry:?} at {})",
                        self.now
                    );
                    prop_assert!(
                        self.open_dials.insert(connection, peer).is_none(),
                        "id reused: {connection}"
                    );
                }
                Command::CancelDial { connection } => {
                    self.open_dials.remove(&connection);
                }
                Command::CloseConnection { connection, .. } => {
                    self.open_conns.remove(&connection);
                }
                Command::Advertise { query, driver, .. }
                | Command::Discover { query, driver, .. } => {
                    // LAN drivers run only while a LAN interface is up.
                    if self.drivers.get(&driver) == Some(&Source::Mdns) {
                        prop_assert!(
                            self.ifaces.get(&IFACES[0].0).is_some_and(|s| s.0),
                            "mDNS without a LAN"
                        );
                    }
                    prop_assert!(
                        self.open_queries.insert(query, self.now).is_none(),
                        "query id reused"
                    );
                }
                Command::CancelQuery { query } => {
                    self.open_queries.remove(&query);
                }
                Command::StopAdvertising { .. } => {}
                Command::KeepAlive { connections } => {
                    prop_assert!(!connections.is_empty());
                    for c in &connections {
                        prop_assert!(self.open_conns.contains_key(c), "keep-alive on closed {c}");
                    }
                }
                other => prop_assert!(false, "unexpected command {other:?}"),
            }
        }
        while let Some(e) = self.engine.poll_event() {
            self.log.push(format!("{} {e:?}", self.now));
        }
        // Every dial the engine still waits for is one we know of.
        prop_assert_eq!(self.engine.attempts_in_flight(), self.open_dials.len());
        prop_assert!(self.engine.attempts_in_flight() <= self.config.max_attempts_total());
        for p in 0..PEERS {
            let p = peer(p);
            prop_assert!(
                self.engine.attempts_in_flight_for(&p) <= self.config.max_attempts_per_peer()
            );
            prop_assert!(self.engine.route_count(&p) <= self.config.max_routes_per_peer());
        }
        prop_assert!(self.engine.peer_count() <= self.config.max_peers());
        prop_assert!(self.engine.connection_count() <= self.config.max_connections());
        prop_assert!(self.engine.pending_events() <= self.config.max_pending_events());
        prop_assert_eq!(self.engine.queries_in_flight(), self.open_queries.len());
        // The engine tracks only connections that are open on the adapter's
        // side, and every primary is one of them.
        let tracked: Vec<ConnectionHandle> = self.engine.connections().collect();
        for c in &tracked {
            prop_assert!(self.open_conns.contains_key(c), "{c} tracked but closed");
        }
        for p in 0..PEERS {
            if let Some(primary) = self.engine.primary(&peer(p)) {
                prop_assert!(tracked.contains(&primary), "primary {primary} is not open");
            }
        }
        prop_assert!(self.engine.queries_in_flight() <= self.config.max_queries());
        Ok(())
    }

    /// Runs every timer up to `until`, checking that none is left behind.
    fn run_until(&mut self, until: Timestamp) -> Result<(), TestCaseError> {
        let mut steps = 0;
        while let Some(due) = self.engine.poll_timeout() {
            if due > until {
                break;
            }
            prop_assert!(due >= self.now, "timer in the past");
            self.now = due;
            self.engine.handle_timeout(due);
            self.settle()?;
            // Nothing may be due again at the same instant: no busy loop.
            prop_assert!(
                self.engine.poll_timeout().is_none_or(|t| t > self.now),
                "busy loop at {}",
                self.now
            );
            steps += 1;
            prop_assert!(steps < 100_000);
        }
        self.now = until;
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now;
        match *op {
            Op::Discover {
                peer: p,
                addr: a,
                iface,
                ttl_ms,
            } => {
                let (interface, _) = IFACES[iface];
                let d = Discovered {
                    peer: peer(p),
                    addr: addr(a, p),
                    interface,
                    source: if a == 0 {
                        Source::Mdns
                    } else {
                        Source::Rendezvous
                    },
                    signed: a == 1,
                    ttl: Duration::from_millis(ttl_ms),
                };
                let key = (d.peer, d.addr.clone(), interface);
                if self.engine.handle_discovered(d, now).is_ok() {
                    let e = self.expiry.entry(key).or_insert(now);
                    *e = (*e).max(now + Duration::from_millis(ttl_ms));
                }
            }
            Op::Connect { peer: p } => {
                let _ = self.engine.connect(peer(p), now);
            }
            Op::Disconnect { peer: p } => self.engine.disconnect(peer(p), now),
            Op::Up { iface, validated } => {
                let (interface, medium) = IFACES[iface];
                let conditions = NetworkConditions {
                    metered: medium.is_cellular(),
                    expensive: medium.is_cellular(),
                    constrained: false,
                };
                self.engine
                    .handle_network_change(
                        NetworkChange::Up {
                            interface,
                            medium,
                            conditions,
                            validated,
                        },
                        now,
                    )
                    .unwrap();
                self.ifaces.insert(interface, (true, false));
            }
            Op::Down { iface } => {
                let (interface, _) = IFACES[iface];
                if self
                    .engine
                    .handle_network_change(NetworkChange::Down { interface }, now)
                    .is_ok()
                {
                    self.ifaces.insert(interface, (false, false));
                    // The engine closed its connections over it; the adapter's
                    // view follows from the CloseConnection commands.
                }
            }
            Op::Losing { iface } => {
                let (interface, _) = IFACES[iface];
                if self
                    .engine
                    .handle_network_change(NetworkChange::Losing { interface }, now)
                    .is_ok()
                {
                    self.ifaces.entry(interface).and_modify(|s| s.1 = true);
                }
            }
            Op::Metered { iface, metered } => {
                let (interface, _) = IFACES[iface];
                let conditions = NetworkConditions {
                    metered,
                    expensive: metered,
                    constrained: false,
                };
                let _ = self.engine.handle_network_change(
                    NetworkChange::Changed {
                        interface,
                        conditions,
                        validated: true,
                    },
                    now,
                );
            }
            Op::Advance { ms } => {
                self.run_until(now + Duration::from_millis(ms))?;
            }
            Op::Resolve { pick, success } => {
                if !self.open_dials.is_empty() {
                    let (&id, &p) = self
                        .open_dials
                        .iter()
                        .nth(pick % self.open_dials.len())
                        .unwrap();
                    self.open_dials.remove(&id);
                    if success {
                        self.open_conns.insert(id, p);
                        self.engine.handle_dial_succeeded(id, now);
                    } else {
                        self.engine.handle_dial_failed(id, now);
                    }
                }
            }
            Op::Close { pick } => {
                if !self.open_conns.is_empty() {
                    let (&id, _) = self
                        .open_conns
                        .iter()
                        .nth(pick % self.open_conns.len())
                        .unwrap();
                    self.open_conns.remove(&id);
                    self.engine.handle_connection_closed(id, now);
                }
            }
            Op::Inbound { peer: p, iface } => {
                let (interface, _) = IFACES[iface];
                let up = self.ifaces.get(&interface).is_some_and(|s| s.0);
                if up {
                    let a: Multiaddr = format!("/ip4/192.168.1.{}/tcp/5000", u32::from(p) + 10)
                        .parse()
                        .unwrap();
                    if let Ok(id) = self.engine.handle_inbound(peer(p), a, interface, now) {
                        self.open_conns.insert(id, peer(p));
                    }
                }
            }
            Op::Hold {
                peer: p,
                protect,
                used,
            } => {
                if protect {
                    let _ = self.engine.protect(peer(p));
                } else {
                    self.engine.unprotect(peer(p));
                }
                if used {
                    self.engine.mark_used(peer(p), now);
                }
            }
            Op::Subscribe { ns, on } => {
                if on {
                    self.engine.subscribe(NAMESPACES[ns], now).unwrap();
                } else {
                    self.engine.unsubscribe(NAMESPACES[ns]);
                }
            }
            Op::SetProfile { performance } => {
                let profile = if performance {
                    Profile::performance()
                } else {
                    Profile::balanced()
                };
                self.engine.set_profile(profile, now).unwrap();
            }
            Op::Register { kind } => {
                if let Ok(d) = self.engine.register_driver(caps(KINDS[kind]), now) {
                    self.drivers.insert(d, KINDS[kind]);
                }
            }
            Op::Advertise { ns } => {
                self.engine
                    .advertise(NAMESPACES[ns], Duration::from_secs(7_200), now)
                    .unwrap();
            }
            Op::StopAdvertising { ns } => self.engine.stop_advertising(NAMESPACES[ns], now),
            Op::Lookup { ns } => {
                self.engine.discover(NAMESPACES[ns], now).unwrap();
            }
            Op::QueryDone {
                pick,
                success,
                found,
            } => {
                if !self.open_queries.is_empty() {
                    let (&q, _) = self
                        .open_queries
                        .iter()
                        .nth(pick % self.open_queries.len())
                        .unwrap();
                    self.open_queries.remove(&q);
                    let outcome = if success {
                        QueryOutcome::Succeeded { found }
                    } else {
                        QueryOutcome::Failed
                    };
                    self.engine.handle_query_outcome(q, outcome, now);
                }
            }
            Op::Power {
                lifecycle,
                battery,
                charging,
            } => {
                let lifecycle = [
                    Lifecycle::Foreground,
                    Lifecycle::Background,
                    Lifecycle::Suspended,
                ][lifecycle];
                let power = PowerState {
                    battery: battery.map(|b| f64::from(b) / 100.0),
                    charging,
                    lifecycle,
                    power_save: false,
                };
                self.engine.handle_power(power, now);
            }
            Op::Rtt { pick, ms } => {
                if !self.open_conns.is_empty() {
                    let (&id, _) = self
                        .open_conns
                        .iter()
                        .nth(pick % self.open_conns.len())
                        .unwrap();
                    self.engine
                        .handle_rtt_sample(id, Duration::from_millis(ms), now);
                }
            }
        }
        self.settle()
    }
}

fn run(ops: &[Op], config: &Config) -> Result<Vec<String>, TestCaseError> {
    let mut w = World::new(config.clone());
    for op in ops {
        w.log.push(format!("{} > {op:?}", w.now));
        w.apply(op)?;
    }
    // Let every timer run out: every dial nobody answered is cancelled.
    let end = w.now + Duration::from_secs(3_600);
    w.run_until(end)?;
    prop_assert!(
        w.open_dials.is_empty(),
        "dials never resolved nor cancelled: {:?}",
        w.open_dials
    );
    prop_assert_eq!(w.engine.attempts_in_flight(), 0);
    // Registrations are renewed forever, but no operation outlives its
    // timeout unanswered.
    for (q, asked) in &w.open_queries {
        prop_assert!(
            w.now.saturating_duration_since(*asked) < config.query_timeout(),
            "{q} open since {asked}"
        );
    }
    Ok(w.log)
}

fn config() -> impl Strategy<Value = Config> {
    (
        1usize..4,
        1usize..4,
        1usize..6,
        1usize..4,
        1usize..6,
        0usize..3,
        0usize..3,
        0u64..30,
    )
        .prop_map(
            |(peers, routes, per_peer, total, conns, low, extra, grace_s)| {
                Config::default()
                    .with_max_peers(peers)
                    .with_max_routes_per_peer(routes)
                    .with_max_attempts(per_peer, total)
                    .with_max_connections(conns)
                    .with_max_pending_events(8)
                    .with_watermarks(low, low + extra, Duration::from_secs(grace_s))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Never a dial over a down interface or past a route's TTL; attempts
    /// and tables within bounds; every dial resolved or cancelled; no busy
    /// loop; and the same inputs give the same outputs.
    #[test]
    fn invariants_hold_and_runs_are_deterministic(
        ops in prop::collection::vec(op(), 1..120),
        config in prop_oneof![Just(Config::default()), config()],
    ) {
        let first = run(&ops, &config)?;
        let second = run(&ops, &config)?;
        prop_assert_eq!(first, second);
    }
}
