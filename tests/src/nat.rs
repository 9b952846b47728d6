//! The NAT harness: two phones behind separate real NATs (nftables
//! masquerade in network namespaces) find each other at a rendezvous point
//! that also relays, connect through the relay, and hole-punch to a direct
//! connection where the NATs allow it, while phone A's app sends numbered
//! messages to phone B; with multidriver or with a stock rust-libp2p app
//! using relay + DCUtR as the rust-libp2p docs do ([`Stack`]).
//!
//! ```text
//!                          internet namespace
//!               ┌───────────────────────────────────────┐
//!               │ rendezvous point + relay  192.0.2.1   │
//!               │  ia0 203.0.113.1      ib0 198.51.100.1│
//!               └────┬──────────────────────────┬───────┘
//!        gateway A   │ wan0 203.0.113.2         │ wan0 198.51.100.2   gateway B
//!      (home router) │ lan0 192.168.1.1         │ lan0 100.64.0.1   (carrier NAT)
//!                    │                          │
//!         phone A    │ wlan0 192.168.1.2        │ wwan0 100.64.0.2    phone B
//! ```
//!
//! Each gateway masquerades its private subnet out of `wan0` and drops
//! what arrives there unsolicited
//! ([`make_nat_gateway`](crate::netns::make_nat_gateway)); the
//! [`NatKind`] of each is the case's. Addresses are the documentation
//! ranges (RFC 5737) on the internet side, a home network's 192.168.0.0/16
//! behind A and the carrier-grade NAT range 100.64.0.0/10 (RFC 6598)
//! behind B.
//!
//! What Linux NAT does here (observed on this harness with UDP probes):
//! plain `masquerade` kept the inside port towards two destinations
//! (endpoint-independent mapping), `masquerade random` and
//! `masquerade fully-random` gave each destination another random port
//! (symmetric); conntrack let in only answers from the exact remote
//! address and port the inside had sent to. Through cone gateways both
//! QUIC and TCP hole-punch (TCP's simultaneous open works because the
//! gateway drops the first, unsolicited SYN silently instead of answering
//! with a reset); through a symmetric gateway neither does: libp2p-dcutr
//! gives up after its 3 attempts, each a QUIC handshake timing out after
//! 5 s (libp2p-quic 0.14's default) or a TCP upgrade after 10 s (measured:
//! "Timeout has been reached"), and the conversation stays relayed.
//!
//! No latency is added: the kernel here has no `netem`, and a user-space
//! delay would have to sit on the gateways' forwarding path (the relays of
//! [`delay_proxy`](crate::delay_proxy) terminate connections, which a NAT
//! must not). Times are those of the stacks and the protocols' round
//! trips on veth, not of real radio links.
//!
//! A run:
//!
//! 1. builds the namespaces and NATs, starts the point with `--relay`'s
//!    relay in the internet namespace;
//! 2. starts phone B, which reserves a slot on the point's relay and
//!    registers its relayed address at the point; waits until a discover
//!    at the point returns it;
//! 3. starts phone A, which discovers B at the point and connects (through
//!    the relay: B's only registered address) and sends a message every
//!    50 ms from the first connection on, for [`WINDOW`] (or the window
//!    given to [`run_for`]);
//! 4. stops sending and waits for every message to be acknowledged.
//!
//! Every wait is bounded, and the namespaces are deleted when the run ends,
//! panics included.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

use crate::netns::{self, NatKind, Netns, NetnsError, VethPair};

mod app;
mod direct;
mod multidriver;
mod point;
mod stock;

pub use direct::{DIRECT_DIAL_WAIT, DirectDial, direct_dial};

/// How often phone A's app sends a message (as the network-switch
/// harness's app).
pub const MESSAGE_INTERVAL: Duration = Duration::from_millis(50);
/// How long phone A sends, from its first connection to B. Our own
/// choice: a successful punch takes well under a second on veth (measured
/// 0.1–1.2 s), so most of the window shows the path after it.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Setup steps (the point listening, B's reservation and registration)
/// must finish within this.
pub const SETUP_LIMIT: Duration = Duration::from_secs(30);
/// Phone A must connect to B within this after it starts.
pub const CONNECT_LIMIT: Duration = Duration::from_secs(30);
/// How long after the last message every message must be acknowledged
/// (above request-response's 10 s request timeout, so a message stuck on a
/// dead connection is failed and resent in time).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(25);
/// The rendezvous namespace phone B registers under.
pub const NAMESPACE: &str = "multidriver-nat";

/// The point's address, on `lo` of the internet namespace (RFC 5737's
/// TEST-NET-1).
const POINT_IP: &str = "192.0.2.1";
/// The point's TCP and UDP port (the namespace is the test's own).
const POINT_PORT: u16 = 4001;
/// The port both phones listen on (TCP or UDP).
const PHONE_PORT: u16 = 4100;

const INET_A: &str = "203.0.113.1/24";
const GW_A_WAN: &str = "203.0.113.2/24";
const GW_A_LAN: &str = "192.168.1.1/24";
const PHONE_A: &str = "192.168.1.2/24";
const LAN_A: &str = "192.168.1.0/24";
const INET_B: &str = "198.51.100.1/24";
const GW_B_WAN: &str = "198.51.100.2/24";
const GW_B_LAN: &str = "100.64.0.1/24";
const PHONE_B: &str = "100.64.0.2/24";
const LAN_B: &str = "100.64.0.0/24";

/// The prefixes of the namespaces a run makes (for the cleanup check).
pub const PREFIXES: [&str; 5] = ["natinet", "natgwa", "natgwb", "natpha", "natphb"];

/// Which transport the phones use (the point serves both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP + Noise + yamux.
    Tcp,
    /// QUIC v1.
    Quic,
}

impl Transport {
    /// The name printed for the transport.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Quic => "quic",
        }
    }

    /// The phones' listen address on `ip` at [`PHONE_PORT`].
    fn listen(self, ip: &str) -> Multiaddr {
        match self {
            Transport::Tcp => format!("/ip4/{ip}/tcp/{PHONE_PORT}"),
            Transport::Quic => format!("/ip4/{ip}/udp/{PHONE_PORT}/quic-v1"),
        }
        .parse()
        .expect("a valid multiaddr")
    }
}

/// Which stack both phones run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// multidriver's `Behaviour<Discovery>` with the point as its
    /// rendezvous point, beside libp2p's relay client, DCUtR and identify
    /// (`multidriver::build_swarm_with_relay`), DCUtR events handed to
    /// `handle_dcutr_event`. Phone A asks the engine to discover the
    /// namespace and to connect to B once found.
    Multidriver,
    /// A stock rust-libp2p 0.57 app as the `dcutr` example and the
    /// rendezvous docs build it: relay client, `dcutr::Behaviour`,
    /// identify, ping and the libp2p-rendezvous 0.18 client. Phone B dials
    /// the point, listens on `<point>/p2p-circuit` and registers once the
    /// reservation confirms its relayed address; phone A discovers B at the
    /// point and dials the registered addresses; DCUtR upgrades on its own.
    Stock,
}

impl Stack {
    /// The name printed for the stack.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Multidriver => "multidriver",
            Stack::Stock => "stock",
        }
    }
}

/// One run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The phones' transport.
    pub transport: Transport,
    /// Both phones' stack.
    pub stack: Stack,
    /// Gateway A's NAT (phone A, the sender, on a home network).
    pub nat_a: NatKind,
    /// Gateway B's NAT (phone B, the receiver, behind a carrier).
    pub nat_b: NatKind,
}

/// DCUtR's reports on one phone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Punches {
    /// Hole punches reported as succeeded.
    pub succeeded: u32,
    /// Hole punches reported as failed (each after up to 3 attempts).
    pub failed: u32,
}

impl Punches {
    /// Reports of either kind.
    pub fn total(self) -> u32 {
        self.succeeded + self.failed
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// From phone A's start to its first connection to B (through the
    /// relay); `None` if none came within [`CONNECT_LIMIT`].
    pub first_connection: Option<Duration>,
    /// From phone A's start to the first acknowledgement over a direct
    /// (hole-punched) connection; `None` if none came.
    pub direct: Option<Duration>,
    /// The share of the window from the first connection until A stopped
    /// sending that the conversation was on a direct path: at each moment,
    /// the path of the latest acknowledgement (relayed before the first).
    pub direct_share: f64,
    /// Messages A sent (each number once).
    pub sent: u64,
    /// Messages still unacknowledged [`DRAIN_LIMIT`] after A stopped
    /// sending.
    pub lost: u64,
    /// Requests sent again (failures, new connections).
    pub resent: u64,
    /// Whether A's relayed connection to B closed while a direct one was
    /// open (the circuit given up after the upgrade).
    pub circuit_closed: bool,
    /// Whether the last acknowledgement came over a direct connection.
    pub final_direct: bool,
    /// DCUtR's reports on phone A.
    pub punches_a: Punches,
    /// DCUtR's reports on phone B.
    pub punches_b: Punches,
    /// What the phones reported, with times from A's start.
    pub story: Vec<String>,
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatError {
    /// Namespaces or nftables cannot be used here (not root, no `nft`).
    #[error("NAT namespaces unavailable: {0}")]
    Unavailable(String),
    /// A namespace operation failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Setting up the point or a phone failed or timed out.
    #[error("setup: {0}")]
    Setup(String),
}

/// What the phones saw, with times.
#[derive(Debug, Default)]
struct Log {
    started: Option<Instant>,
    first_connection: Option<Instant>,
    first_direct_connection: Option<Instant>,
    /// Acknowledgements: when, and whether over a direct connection.
    acks: Vec<(Instant, bool)>,
    /// Messages sent: number → acknowledged.
    messages: BTreeMap<u64, bool>,
    resent: u64,
    circuit_closed_after_direct: bool,
    /// DCUtR on phone A (0) and B (1).
    punches: [Punches; 2],
    notes: Vec<(Instant, String)>,
}

type Shared = Arc<Mutex<Log>>;

fn lock(log: &Shared) -> std::sync::MutexGuard<'_, Log> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Which phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// Records one DCUtR report of phone `side`.
fn note_punch(log: &Shared, side: Side, event: &libp2p::dcutr::Event) {
    let mut log = lock(log);
    let i = match side {
        Side::A => 0,
        Side::B => 1,
    };
    let note = match &event.result {
        Ok(_) => {
            log.punches[i].succeeded += 1;
            format!("{side:?}: hole punch succeeded")
        }
        Err(e) => {
            log.punches[i].failed += 1;
            format!("{side:?}: hole punch failed: {e}")
        }
    };
    log.notes.push((Instant::now(), note));
}

/// The five namespaces and their links; deleted when dropped.
#[derive(Debug)]
pub struct Topology {
    /// The internet: the rendezvous point and relay.
    pub inet: Netns,
    /// Phone A's gateway (home router).
    pub gw_a: Netns,
    /// Phone B's gateway (carrier NAT).
    pub gw_b: Netns,
    /// Phone A, behind gateway A.
    pub phone_a: Netns,
    /// Phone B, behind gateway B.
    pub phone_b: Netns,
}

/// An address without its prefix length.
fn ip_of(cidr: &str) -> &str {
    cidr.split('/').next().unwrap_or(cidr)
}

impl Topology {
    /// Builds the namespaces, links, routes and NATs of the module docs.
    pub fn build(nat_a: NatKind, nat_b: NatKind) -> Result<Topology, NatError> {
        netns::nat_available().map_err(NatError::Unavailable)?;
        let t = Topology {
            inet: Netns::create(PREFIXES[0])?,
            gw_a: Netns::create(PREFIXES[1])?,
            gw_b: Netns::create(PREFIXES[2])?,
            phone_a: Netns::create(PREFIXES[3])?,
            phone_b: Netns::create(PREFIXES[4])?,
        };
        netns::add_addr(&t.inet, "lo", &format!("{POINT_IP}/32"))?;
        VethPair::connect(&t.inet, "ia0", INET_A, &t.gw_a, "wan0", GW_A_WAN)?;
        VethPair::connect(&t.inet, "ib0", INET_B, &t.gw_b, "wan0", GW_B_WAN)?;
        VethPair::connect(&t.gw_a, "lan0", GW_A_LAN, &t.phone_a, "wlan0", PHONE_A)?;
        VethPair::connect(&t.gw_b, "lan0", GW_B_LAN, &t.phone_b, "wwan0", PHONE_B)?;
        // The internet routes between the gateways' public networks.
        netns::set_forwarding(&t.inet, true)?;
        netns::add_route_via(&t.gw_a, "default", ip_of(INET_A))?;
        netns::add_route_via(&t.gw_b, "default", ip_of(INET_B))?;
        netns::add_route_via(&t.phone_a, "default", ip_of(GW_A_LAN))?;
        netns::add_route_via(&t.phone_b, "default", ip_of(GW_B_LAN))?;
        netns::make_nat_gateway(&t.gw_a, "wan0", LAN_A, nat_a)?;
        netns::make_nat_gateway(&t.gw_b, "wan0", LAN_B, nat_b)?;
        Ok(t)
    }

    /// Gateway B's public address (what B's NAT maps to).
    pub fn b_public_ip(&self) -> &'static str {
        ip_of(GW_B_WAN)
    }

    /// Phone B's private address.
    pub fn b_private_ip(&self) -> &'static str {
        ip_of(PHONE_B)
    }
}

/// The point as the phones know it.
#[derive(Debug, Clone)]
struct Point {
    id: PeerId,
    /// Its address for the case's transport, with `/p2p/<id>`.
    addr: Multiaddr,
}

impl Point {
    /// `<point>/p2p-circuit`: where a phone reserves.
    fn circuit(&self) -> Multiaddr {
        self.addr.clone().with(Protocol::P2pCircuit)
    }

    /// The address without `/p2p/<id>` (for the engine's rendezvous
    /// configuration, which takes the id apart).
    fn bare(&self) -> Multiaddr {
        self.addr
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect()
    }
}

/// Runs one case with A sending for [`WINDOW`]; `progress` hears what
/// happens as it happens.
pub fn run(case: Case, progress: &mut dyn FnMut(&str)) -> Result<Outcome, NatError> {
    run_for(case, WINDOW, progress)
}

/// [`run`] with A sending for `window` from its first connection (a punch
/// that fails takes libp2p-dcutr up to 3 attempts, each waiting out a QUIC
/// handshake or TCP dial, before DCUtR reports it: longer than [`WINDOW`]).
pub fn run_for(
    case: Case,
    window: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<Outcome, NatError> {
    let topology = Topology::build(case.nat_a, case.nat_b)?;
    let stop = Arc::new(AtomicBool::new(false));
    // Stops every thread however this function ends.
    let _stop_on_exit = StopOnDrop(Arc::clone(&stop));
    let (point_id, point_tcp, point_quic, point_task) = point::start_point(&topology.inet, &stop)?;
    let point = Point {
        id: point_id,
        addr: match case.transport {
            Transport::Tcp => point_tcp.clone(),
            Transport::Quic => point_quic,
        },
    };
    progress(&format!("{case:?}: point {} at {}", point.id, point.addr));

    let log: Shared = Arc::default();
    // 2. Phone B reserves and registers.
    let (b_tx, b_rx) = std::sync::mpsc::sync_channel(1);
    let b_task = {
        let (log, stop, point) = (Arc::clone(&log), Arc::clone(&stop), point.clone());
        let transport = case.transport;
        match case.stack {
            Stack::Stock => topology
                .phone_b
                .run_async(move || stock::phone_b(transport, point, b_tx, log, stop))?,
            Stack::Multidriver => topology
                .phone_b
                .run_async(move || multidriver::phone_b(transport, point, b_tx, log, stop))?,
        }
    };
    let b_id = match b_rx.recv_timeout(SETUP_LIMIT) {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => return Err(NatError::Setup(format!("phone B: {e}"))),
        Err(_) => return Err(NatError::Setup("phone B did not start".into())),
    };
    point::await_registration(&topology.inet, point.id, point_tcp, b_id)?;
    progress(&format!("phone B {b_id} is registered at the point"));

    // 3. Phone A discovers B, connects and sends.
    let sending = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    lock(&log).started = Some(started);
    let a_task = {
        let (log, stop, sending, point) = (
            Arc::clone(&log),
            Arc::clone(&stop),
            Arc::clone(&sending),
            point.clone(),
        );
        let transport = case.transport;
        match case.stack {
            Stack::Stock => topology
                .phone_a
                .run_async(move || stock::phone_a(transport, point, b_id, log, sending, stop))?,
            Stack::Multidriver => topology.phone_a.run_async(move || {
                multidriver::phone_a(transport, point, b_id, log, sending, stop)
            })?,
        }
    };
    let connected = wait_until(CONNECT_LIMIT, || lock(&log).first_connection.is_some());
    match connected {
        Some(at) => progress(&format!("A connected to B after {:.2?}", at - started)),
        None => progress(&format!("A did not connect to B within {CONNECT_LIMIT:?}")),
    }
    let window_start = lock(&log).first_connection.unwrap_or_else(Instant::now);
    std::thread::sleep(window.saturating_sub(Instant::now() - window_start));

    // 4. Stop sending; every message must be acknowledged.
    sending.store(false, Ordering::SeqCst);
    let stopped_at = Instant::now();
    wait_until(DRAIN_LIMIT, || lock(&log).messages.values().all(|a| *a));
    stop.store(true, Ordering::SeqCst);
    let _ = a_task.join();
    let _ = b_task.join();
    drop(point_task);

    let log = lock(&log);
    let since = |t: Instant| t.saturating_duration_since(started);
    let direct = log.acks.iter().find(|(_, d)| *d).map(|(t, _)| since(*t));
    let direct_share = direct_share(&log.acks, window_start, stopped_at);
    let story = log
        .notes
        .iter()
        .map(|(t, note)| {
            let s = if *t >= started {
                (*t - started).as_secs_f64()
            } else {
                -(started - *t).as_secs_f64()
            };
            format!("{s:+.3} s {note}")
        })
        .collect();
    let outcome = Outcome {
        first_connection: log.first_connection.map(since),
        direct,
        direct_share,
        sent: log.messages.len() as u64,
        lost: log.messages.values().filter(|a| !**a).count() as u64,
        resent: log.resent,
        circuit_closed: log.circuit_closed_after_direct,
        final_direct: log.acks.last().is_some_and(|(_, d)| *d),
        punches_a: log.punches[0],
        punches_b: log.punches[1],
        story,
    };
    drop(log);
    drop(topology);
    Ok(outcome)
}

/// The share of `[from, to]` during which the latest acknowledgement came
/// over a direct connection.
fn direct_share(acks: &[(Instant, bool)], from: Instant, to: Instant) -> f64 {
    let total = to.saturating_duration_since(from);
    if total.is_zero() {
        return 0.0;
    }
    let mut on_direct = Duration::ZERO;
    let mut current: Option<(Instant, bool)> = None;
    for &(t, d) in acks.iter().filter(|(t, _)| *t <= to) {
        let t = t.max(from);
        if let Some((since, true)) = current {
            on_direct += t.saturating_duration_since(since);
        }
        current = Some((t, d));
    }
    if let Some((since, true)) = current {
        on_direct += to.saturating_duration_since(since);
    }
    on_direct.as_secs_f64() / total.as_secs_f64()
}

/// The names of namespaces this harness makes that still exist (for the
/// cleanup check).
pub fn namespaces_left() -> Result<Vec<String>, NetnsError> {
    let pid = format!("-{}-", std::process::id());
    Ok(netns::list()?
        .into_iter()
        .filter(|n| PREFIXES.iter().any(|p| n.starts_with(&format!("{p}{pid}"))))
        .collect())
}

/// Sets the flag when dropped, so a panicking harness stops its threads.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls `done` every 5 ms for at most `limit`; when it turned true.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Polls `stop` in a phone's event loop. Our own choice, as the
/// network-switch harness's phones do with their tick.
const STOP_POLL: Duration = Duration::from_millis(50);
