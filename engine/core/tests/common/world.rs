//! The random-input harness of the engine core, shared by the proptest
//! (`engine/core/tests/properties.rs`) and by the libFuzzer target
//! `fuzz/fuzz_targets/core_sequence.rs`, so the two check the same
//! invariants over the same inputs: a random adapter answers (or ignores)
//! dials, interfaces come and go, drivers answer queries, time passes.
//!
//! It depends only on the engine's own crates (`multidriver-core`,
//! `multidriver-scoring`, `libp2p-identity`, `multiaddr`): each side decodes
//! [`Op`]s its own way (proptest strategies, `arbitrary` bytes) from the
//! ranges below, runs them with [`run`] and turns an `Err` into its own
//! failure.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Range, RangeInclusive};
use std::sync::OnceLock;
use std::time::Duration;

use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use multidriver_core::{
    Command, Config, ConnectionHandle, Discovered, DriverCaps, DriverId, EnergyClass, Engine,
    InterfaceId, NetworkChange, QueryId, QueryOutcome, Reach, Reachability,
};
use multidriver_scoring::{
    CellularGeneration, Lifecycle, Medium, NetworkConditions, PowerState, Profile, Source,
    Timestamp,
};

/// An invariant failure: the message, with where it was checked (as
/// `prop_assert!` words it).
macro_rules! fail {
    ($($fmt:tt)*) => {
        format!("{} at {}:{}", format!($($fmt)*), file!(), line!())
    };
}

/// `prop_assert!` without proptest: `Err(message)` when `cond` is false.
macro_rules! ensure {
    ($cond:expr $(,)?) => {
        ensure!($cond, concat!("assertion failed: ", stringify!($cond)))
    };
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(fail!($($fmt)*));
        }
    };
}

/// `prop_assert_eq!` without proptest.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {{
        let left = $left;
        let right = $right;
        ensure!(
            left == right,
            "assertion failed: `(left == right)` \
             \n  left: `{:?}`,\n right: `{:?}`",
            left,
            right
        );
    }};
}

/// Peers `0..PEERS` take part.
pub(crate) const PEERS: u8 = 3;
/// The routes each peer may be discovered at (`{p}` is the peer).
pub(crate) const ADDRS: [&str; 3] = [
    "/ip4/192.168.1.{p}/udp/4001/quic-v1",
    "/ip4/203.0.113.{p}/udp/4001/quic-v1",
    "/ip4/203.0.113.{p}/tcp/4001",
];
/// The interfaces that come and go: Wi-Fi (the LAN) and cellular.
pub(crate) const IFACES: [(InterfaceId, Medium); 2] = [
    (InterfaceId(1), Medium::Wifi),
    (InterfaceId(2), Medium::Cellular(CellularGeneration::G4)),
];
/// The kinds of discovery driver that may register.
pub(crate) const KINDS: [Source; 3] = [Source::Dht, Source::Rendezvous, Source::Mdns];
/// The namespaces subscribed to, advertised and looked up.
pub(crate) const NAMESPACES: [&str; 2] = ["chat", "files"];
/// The app lifecycles [`Op::Power`] picks from.
pub(crate) const LIFECYCLES: [Lifecycle; 3] = [
    Lifecycle::Foreground,
    Lifecycle::Background,
    Lifecycle::Suspended,
];

/// A discovered route's TTL, in milliseconds.
pub(crate) const TTL_MS: Range<u64> = 100..120_000;
/// One [`Op::Advance`] step, in milliseconds: small, so a run of ops stays
/// short and dials race each other.
pub(crate) const ADVANCE_MS: Range<u64> = 0..4_000;
/// An RTT sample, in milliseconds.
pub(crate) const RTT_MS: Range<u64> = 1..400;
/// How many peers a finished lookup reports.
pub(crate) const FOUND: Range<usize> = 0..3;
/// A battery level, in percent.
pub(crate) const BATTERY_PERCENT: RangeInclusive<u8> = 0..=100;

/// Small limits for a config, so that every bound of the engine is hit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) peers: usize,
    pub(crate) routes: usize,
    pub(crate) attempts_per_peer: usize,
    pub(crate) attempts_total: usize,
    pub(crate) connections: usize,
    pub(crate) low_watermark: usize,
    /// How far the high watermark is above the low one.
    pub(crate) high_above_low: usize,
    pub(crate) grace_s: u64,
}

impl Limits {
    pub(crate) const PEERS: Range<usize> = 1..4;
    pub(crate) const ROUTES: Range<usize> = 1..4;
    pub(crate) const ATTEMPTS_PER_PEER: Range<usize> = 1..6;
    pub(crate) const ATTEMPTS_TOTAL: Range<usize> = 1..4;
    pub(crate) const CONNECTIONS: Range<usize> = 1..6;
    pub(crate) const LOW_WATERMARK: Range<usize> = 0..3;
    pub(crate) const HIGH_ABOVE_LOW: Range<usize> = 0..3;
    pub(crate) const GRACE_S: Range<u64> = 0..30;

    /// The default config with these limits.
    pub(crate) fn config(self) -> Config {
        Config::default()
            .with_max_peers(self.peers)
            .with_max_routes_per_peer(self.routes)
            .with_max_attempts(self.attempts_per_peer, self.attempts_total)
            .with_max_connections(self.connections)
            .with_max_pending_events(8)
            .with_watermarks(
                self.low_watermark,
                self.low_watermark + self.high_above_low,
                Duration::from_secs(self.grace_s),
            )
    }
}

/// One input to the engine, or the adapter's answer to one of its commands
/// (`pick` chooses among the open dials, connections or queries).
#[derive(Debug, Clone)]
pub(crate) enum Op {
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
    /// What AutoNAT says of this node ([`REACHABILITIES`]).
    Reachability {
        which: usize,
    },
    /// A relay the node may reserve on (of [`RELAYS`]).
    AddRelay {
        relay: usize,
    },
    RemoveRelay {
        relay: usize,
    },
    /// The relay client's answer to a reservation, asked for or not.
    Reserved {
        relay: usize,
        iface: Option<usize>,
        accepted: bool,
    },
    /// A DCUtR hole punch with the peer over the interface: it opened a
    /// direct connection, or failed.
    Punch {
        peer: u8,
        iface: usize,
        success: bool,
    },
}

/// How many relays [`Op::AddRelay`] picks from.
pub(crate) const RELAYS: usize = 2;
/// What [`Op::Reachability`] reports.
pub(crate) const REACHABILITIES: [Reachability; 3] = [
    Reachability::Unknown,
    Reachability::Public,
    Reachability::Private,
];

/// Relay `n`'s id and address.
fn relay(n: usize) -> (PeerId, Multiaddr) {
    static RELAY_IDS: OnceLock<Vec<PeerId>> = OnceLock::new();
    let id = RELAY_IDS.get_or_init(|| {
        (0..RELAYS as u8)
            .map(|n| {
                PeerId::from_public_key(
                    &Keypair::ed25519_from_bytes([n + 100; 32]).unwrap().public(),
                )
            })
            .collect()
    })[n];
    (
        id,
        format!("/ip4/198.51.100.{}/tcp/4001", n + 1)
            .parse()
            .unwrap(),
    )
}

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

/// Peer `n`'s id. Deriving a key is slow and the invariants ask for every
/// peer after every step, so the ids are made once.
fn peer(n: u8) -> PeerId {
    static IDS: OnceLock<Vec<PeerId>> = OnceLock::new();
    IDS.get_or_init(|| {
        (0..PEERS)
            .map(|n| {
                PeerId::from_public_key(&Keypair::ed25519_from_bytes([n + 1; 32]).unwrap().public())
            })
            .collect()
    })[usize::from(n)]
}

fn addr(i: usize, p: u8) -> Multiaddr {
    ADDRS[i]
        .replace("{p}", &(u32::from(p) + 10).to_string())
        .parse()
        .unwrap()
}

/// The engine plus a model of the adapter around it: what it was told and
/// what it still owes an answer.
pub(crate) struct World {
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
    /// Relays added and not removed.
    relays: BTreeSet<PeerId>,
    /// Relays asked to hold a reservation and not released since.
    reserving: BTreeSet<PeerId>,
    /// Every input and everything the engine said, with when.
    log: Vec<String>,
    /// Whether to keep `log`: formatting peer ids and addresses was about a
    /// sixth of the fuzz target's time, and it only compares runs.
    record: bool,
}

impl World {
    pub(crate) fn new(config: Config, record: bool) -> Self {
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
            relays: BTreeSet::new(),
            reserving: BTreeSet::new(),
            log: Vec::new(),
            record,
        }
    }

    /// Drains outputs and checks the invariants that hold after any input.
    pub(crate) fn settle(&mut self) -> Result<(), String> {
        while let Some(c) = self.engine.poll_command() {
            if self.record {
                self.log.push(format!("{} {c:?}", self.now));
            }
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
                    ensure!(
                        up && !losing,
                        "dial over a down or losing interface: {interface}"
                    );
                    let expiry = self.expiry.get(&(peer, addr.clone(), interface)).copied();
                    ensure!(
                        expiry.is_some_and(|e| self.now < e),
                        "dial of {addr} past its TTL ({expiry:?} at {})",
                        self.now
                    );
                    ensure!(
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
                        ensure!(
                            self.ifaces.get(&IFACES[0].0).is_some_and(|s| s.0),
                            "mDNS without a LAN"
                        );
                    }
                    ensure!(
                        self.open_queries.insert(query, self.now).is_none(),
                        "query id reused"
                    );
                }
                Command::CancelQuery { query } => {
                    self.open_queries.remove(&query);
                }
                Command::StopAdvertising { .. } => {}
                Command::KeepAlive { connections } => {
                    ensure!(!connections.is_empty());
                    for c in &connections {
                        ensure!(self.open_conns.contains_key(c), "keep-alive on closed {c}");
                    }
                }
                Command::Reserve { relay, .. } => {
                    ensure!(
                        self.relays.contains(&relay),
                        "reservation on unknown relay {relay}"
                    );
                    self.reserving.insert(relay);
                }
                Command::Unreserve { relay } => {
                    self.reserving.remove(&relay);
                }
                Command::KeepReservations { relays } => {
                    ensure!(!relays.is_empty());
                    for r in &relays {
                        ensure!(self.relays.contains(r), "keep-alive to unknown relay {r}");
                    }
                }
                other => return Err(fail!("unexpected command {other:?}")),
            }
        }
        while let Some(e) = self.engine.poll_event() {
            if self.record {
                self.log.push(format!("{} {e:?}", self.now));
            }
        }
        // Every dial the engine still waits for is one we know of.
        ensure_eq!(self.engine.attempts_in_flight(), self.open_dials.len());
        ensure!(self.engine.attempts_in_flight() <= self.config.max_attempts_total());
        for p in 0..PEERS {
            let p = peer(p);
            ensure!(self.engine.attempts_in_flight_for(&p) <= self.config.max_attempts_per_peer());
            ensure!(self.engine.route_count(&p) <= self.config.max_routes_per_peer());
        }
        ensure!(self.engine.peer_count() <= self.config.max_peers());
        ensure!(self.engine.connection_count() <= self.config.max_connections());
        ensure!(self.engine.pending_events() <= self.config.max_pending_events());
        ensure_eq!(self.engine.queries_in_flight(), self.open_queries.len());
        // The engine tracks only connections that are open on the adapter's
        // side, and every primary is one of them.
        let tracked: Vec<ConnectionHandle> = self.engine.connections().collect();
        for c in &tracked {
            ensure!(self.open_conns.contains_key(c), "{c} tracked but closed");
        }
        for p in 0..PEERS {
            if let Some(primary) = self.engine.primary(&peer(p)) {
                ensure!(tracked.contains(&primary), "primary {primary} is not open");
            }
        }
        ensure!(self.engine.queries_in_flight() <= self.config.max_queries());
        ensure!(
            self.reserving.len() <= self.config.reservations(),
            "{} reservations asked for, {} allowed",
            self.reserving.len(),
            self.config.reservations()
        );
        Ok(())
    }

    /// Runs every timer up to `until`, checking that none is left behind.
    pub(crate) fn run_until(&mut self, until: Timestamp) -> Result<(), String> {
        let mut steps = 0;
        while let Some(due) = self.engine.poll_timeout() {
            if due > until {
                break;
            }
            ensure!(due >= self.now, "timer in the past");
            self.now = due;
            self.engine.handle_timeout(due);
            self.settle()?;
            // Nothing may be due again at the same instant: no busy loop.
            ensure!(
                self.engine.poll_timeout().is_none_or(|t| t > self.now),
                "busy loop at {}",
                self.now
            );
            steps += 1;
            ensure!(steps < 100_000);
        }
        self.now = until;
        Ok(())
    }

    pub(crate) fn apply(&mut self, op: &Op) -> Result<(), String> {
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
            Op::Reachability { which } => {
                self.engine.handle_reachability(REACHABILITIES[which], now);
            }
            Op::AddRelay { relay: r } => {
                let (id, addr) = relay(r);
                if self.engine.add_relay(id, addr, now).is_ok() {
                    self.relays.insert(id);
                }
            }
            Op::RemoveRelay { relay: r } => {
                let (id, _) = relay(r);
                self.engine.remove_relay(&id, now);
                self.relays.remove(&id);
            }
            Op::Reserved {
                relay: r,
                iface,
                accepted,
            } => {
                let (id, _) = relay(r);
                if accepted {
                    self.engine
                        .handle_reservation_accepted(&id, iface.map(|i| IFACES[i].0), now);
                } else {
                    // A failed or ended reservation is no longer held.
                    self.engine.handle_reservation_failed(&id, now);
                    self.reserving.remove(&id);
                }
            }
            Op::Punch {
                peer: p,
                iface,
                success,
            } => {
                let (interface, _) = IFACES[iface];
                let up = self.ifaces.get(&interface).is_some_and(|s| s.0);
                if !success {
                    self.engine
                        .handle_hole_punch_failed(peer(p), interface, now);
                } else if up {
                    let a = addr(1, p);
                    if let Ok(id) = self.engine.handle_hole_punched(peer(p), a, interface, now) {
                        self.open_conns.insert(id, peer(p));
                    }
                }
            }
            Op::Power {
                lifecycle,
                battery,
                charging,
            } => {
                let lifecycle = LIFECYCLES[lifecycle];
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

/// Runs `ops` on a fresh engine with `config`, checking the invariants after
/// every input and every timer, then lets every timer run out and checks
/// that nothing is left dangling. Returns everything the engine said, in
/// order, to compare runs.
#[allow(dead_code)] // the fuzz target only checks
pub(crate) fn run(ops: &[Op], config: &Config) -> Result<Vec<String>, String> {
    run_with(ops, config, true)
}

/// As [`run`], without keeping what the engine said.
pub(crate) fn check(ops: &[Op], config: &Config) -> Result<(), String> {
    run_with(ops, config, false).map(drop)
}

fn run_with(ops: &[Op], config: &Config, record: bool) -> Result<Vec<String>, String> {
    let mut w = World::new(config.clone(), record);
    for op in ops {
        if record {
            w.log.push(format!("{} > {op:?}", w.now));
        }
        w.apply(op)?;
    }
    // Let every timer run out: every dial nobody answered is cancelled.
    let end = w.now + Duration::from_secs(3_600);
    w.run_until(end)?;
    ensure!(
        w.open_dials.is_empty(),
        "dials never resolved nor cancelled: {:?}",
        w.open_dials
    );
    ensure_eq!(w.engine.attempts_in_flight(), 0);
    // Registrations are renewed forever, but no operation outlives its
    // timeout unanswered.
    for (q, asked) in &w.open_queries {
        ensure!(
            w.now.saturating_duration_since(*asked) < config.query_timeout(),
            "{q} open since {asked}"
        );
    }
    Ok(w.log)
}
