//! The discrete-event loop: one world per policy, the same seed and the same
//! timeline for every policy.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use libp2p_identity::{Keypair, PeerId};
use multidriver_scoring::{Lifecycle, Timestamp, TransportKind};

use crate::Error;

mod budget;
mod checks;

use crate::agent::classic::{ClassicAgent, Flavor, route_for};
use crate::agent::engine::{ADVERT_TTL, DriverSet, EngineAgent, Identities};
use crate::agent::oracle::OracleAgent;
use crate::agent::{Agent, DriverRef, Found, Input, Liveness, Output, up_input};
use crate::metrics::{Metrics, PolicyResult};
use crate::rng::Rng;
use crate::scenario::{Action, Scenario, policy_profile};
use crate::world::{
    AddrKey, BLE_SCAN, DHT_LOOKUP, DHT_OP_BYTES, DHT_PUBLISH, IfKind, Iface, MDNS_OP_BYTES,
    MDNS_TTL, Node, PathClass, RENDEZVOUS_OP_BYTES, Server, UNREACHABLE_TIMEOUT, World, power_of,
    radios,
};
use budget::{Budget, Kind};

/// A TCP dial to an address that never answers fails after 10 s. Our
/// assumption: libp2p sets no TCP connect timeout of its own, Linux gives up
/// after ~127 s of SYN retries, and apps commonly wrap dials in 10 s.
const TCP_BLACKHOLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a proximity sighting stays valid: our assumption (a BLE
/// advertiser out of range for a minute is gone).
const PROXIMITY_TTL: Duration = Duration::from_secs(60);
/// mDNS responders wait 20–120 ms before answering (RFC 6762 §6); the
/// simulator takes the upper end.
const MDNS_RESPONSE_DELAY: Duration = Duration::from_millis(120);

/// What happens to the world, from the scenario, the same for every policy.
#[derive(Debug, Clone)]
enum WorldAction {
    Online,
    Offline,
    Scenario(Action),
}

/// Everything derived from the scenario and the seed that all policies share.
pub(crate) struct Plan {
    scenario: Arc<Scenario>,
    seed: u64,
    nodes: Vec<Node>,
    timeline: Vec<(Timestamp, u32, WorldAction)>,
    ids: Arc<Identities>,
}

fn at(s: f64) -> Timestamp {
    Timestamp::from_duration(Duration::from_secs_f64(s.max(0.0)))
}

impl Plan {
    /// The name of the group node `node` belongs to.
    pub(crate) fn group_of(&self, node: u32) -> &str {
        let mut first = 0;
        for g in &self.scenario.groups {
            if node < first + g.count {
                return &g.name;
            }
            first += g.count;
        }
        "?"
    }

    pub(crate) fn new(scenario: Arc<Scenario>, seed: u64) -> Plan {
        let end = scenario.duration_s;
        let mut nodes = Vec::new();
        let mut first_of_group = Vec::new();
        let mut timeline = Vec::new();
        for g in &scenario.groups {
            first_of_group.push(nodes.len() as u32);
            for _ in 0..g.count {
                let id = nodes.len() as u32;
                let mut r = Rng::stream(seed, 1, u64::from(id));
                let angle = r.f64() * std::f64::consts::TAU;
                let dist = g.spread_m * r.f64().sqrt();
                let mut ifaces = [Iface::default(); 4];
                if let Some(l) = g.wifi {
                    ifaces[IfKind::Wifi as usize] = Iface::attached(Some(l as u16), l as u16, 0);
                }
                if let Some(l) = g.ethernet {
                    ifaces[IfKind::Ethernet as usize] =
                        Iface::attached(Some(l as u16), l as u16, 0);
                }
                if g.cellular.is_some() {
                    ifaces[IfKind::Cellular as usize] = Iface::attached(None, 0, 0);
                }
                ifaces[IfKind::Ble as usize].up = g.ble;
                nodes.push(Node {
                    region: g.region as u16,
                    online: false,
                    ifaces,
                    cellular: g.cellular,
                    position: [
                        g.position[0] + dist * angle.cos(),
                        g.position[1] + dist * angle.sin(),
                    ],
                    power: power_of(g),
                    contacts: Vec::new(),
                    radios: radios(g.cellular),
                    mdns_visible: false,
                    ble_visible: false,
                    next_cell_epoch: 1,
                });
                let start = r.f64() * g.start_spread_s;
                timeline.push((at(start), id, WorldAction::Online));
                if let Some((on, off)) = g.churn {
                    let mut t = start + r.exp(on);
                    while t < end {
                        timeline.push((at(t), id, WorldAction::Offline));
                        t += r.exp(off);
                        if t >= end {
                            break;
                        }
                        timeline.push((at(t), id, WorldAction::Online));
                        t += r.exp(on);
                    }
                }
                if g.drain_per_hour > 0.0
                    && let Some(level) = g.battery
                {
                    // Battery readings every 5 min, as Android's battery
                    // broadcast roughly arrives (our assumption).
                    let mut t = 300.0;
                    while t < end {
                        let l = (level - g.drain_per_hour * t / 3600.0).max(0.0);
                        timeline.push((
                            at(t),
                            id,
                            WorldAction::Scenario(Action::Battery {
                                level: l,
                                charging: g.charging,
                            }),
                        ));
                        t += 300.0;
                    }
                }
            }
        }
        // Contacts: distinct nodes of the named groups, never oneself.
        for (gi, g) in scenario.groups.iter().enumerate() {
            for k in 0..g.count {
                let id = first_of_group[gi] + k;
                let mut r = Rng::stream(seed, 2, u64::from(id));
                let mut contacts = Vec::new();
                for &(cg, n) in &g.contacts {
                    let base = first_of_group[cg];
                    let size = scenario.groups[cg].count;
                    let mut picked = 0;
                    let mut guard = 0;
                    while picked < n && guard < 64 * (n + 1) {
                        guard += 1;
                        let c = base + r.below(u64::from(size)) as u32;
                        if c != id && !contacts.contains(&c) {
                            contacts.push(c);
                            picked += 1;
                        }
                    }
                    // Small groups: fill deterministically.
                    let mut c = base;
                    while picked < n && c < base + size {
                        if c != id && !contacts.contains(&c) {
                            contacts.push(c);
                            picked += 1;
                        }
                        c += 1;
                    }
                }
                nodes[id as usize].contacts = contacts;
            }
        }
        for e in &scenario.events {
            match e.group {
                Some(g) => {
                    for k in 0..scenario.groups[g].count {
                        let id = first_of_group[g] + k;
                        let mut r =
                            Rng::stream(seed, 3, (u64::from(id) << 20) ^ timeline.len() as u64);
                        let t = e.at_s + r.f64() * e.spread_s;
                        if t <= end {
                            timeline.push((at(t), id, WorldAction::Scenario(e.action.clone())));
                        }
                    }
                }
                None => timeline.push((
                    at(e.at_s),
                    u32::MAX,
                    WorldAction::Scenario(e.action.clone()),
                )),
            }
        }
        for (i, s) in scenario.rendezvous.iter().enumerate() {
            for o in &s.outages {
                timeline.push((
                    at(o[0]),
                    u32::MAX,
                    WorldAction::Scenario(Action::RendezvousDown(i)),
                ));
                timeline.push((
                    at(o[1]),
                    u32::MAX,
                    WorldAction::Scenario(Action::RendezvousUp(i)),
                ));
            }
        }
        // Stable: events at the same instant keep file order.
        timeline.sort_by_key(|e| e.0);
        let peers: Vec<PeerId> = (0..nodes.len() as u32)
            .map(|i| {
                let mut bytes = [0u8; 32];
                bytes[..4].copy_from_slice(&i.to_be_bytes());
                bytes[4..12].copy_from_slice(&seed.to_be_bytes());
                bytes[12] = 0x5a;
                // Any 32 bytes are a valid ed25519 secret key.
                Keypair::ed25519_from_bytes(bytes)
                    .expect("32 bytes are always an ed25519 secret key")
                    .public()
                    .to_peer_id()
            })
            .collect();
        let index = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i as u32))
            .collect();
        Plan {
            scenario,
            seed,
            nodes,
            timeline,
            ids: Arc::new(Identities { peers, index }),
        }
    }
}

#[derive(Debug)]
enum Ev {
    Timeline,
    Timer { node: u32, generation: u32 },
    DialDone { key: u64, ok: bool },
    Answer(Box<AnswerEv>),
    Ping { key: u64 },
    QuicKeepalive { key: u64 },
    Detect { key: u64 },
    IdleCheck { key: u64 },
    Message { node: u32, slot: u16 },
    Sample,
    Progress,
}

impl Ev {
    /// The node an event belongs to, and its kind, for the runaway bound;
    /// `None` for the world's own events (the timeline, samples, progress),
    /// which the scenario bounds.
    fn charged_to(&self) -> Option<(u32, Kind)> {
        let owner = |key: u64| (key >> 40) as u32;
        Some(match self {
            Ev::Timeline | Ev::Sample | Ev::Progress => return None,
            Ev::Timer { node, .. } => (*node, Kind::Timer),
            Ev::DialDone { key, .. } => (owner(*key), Kind::DialDone),
            Ev::Answer(a) => (a.node, Kind::Answer),
            Ev::Ping { key } => (owner(*key), Kind::Ping),
            Ev::QuicKeepalive { key } => (owner(*key), Kind::QuicKeepalive),
            Ev::Detect { key } => (owner(*key), Kind::Detect),
            Ev::IdleCheck { key } => (owner(*key), Kind::IdleCheck),
            Ev::Message { node, .. } => (*node, Kind::Message),
        })
    }
}

#[derive(Debug)]
struct AnswerEv {
    node: u32,
    generation: u32,
    query: u64,
    driver: DriverRef,
    ok: bool,
    discover: bool,
    found: Vec<Found>,
    /// What is looked up, answered from the world as it stands when the
    /// answer arrives.
    lookup: Option<Lookup>,
    /// A DHT record or rendezvous registration that takes effect now.
    store: Option<(DriverRef, Vec<AddrKey>, Timestamp)>,
}

impl AnswerEv {
    /// A failed answer with nothing found, to fill in.
    fn new(node: u32, generation: u32, query: u64, driver: DriverRef, discover: bool) -> Self {
        AnswerEv {
            node,
            generation,
            query,
            driver,
            ok: false,
            discover,
            found: Vec::new(),
            lookup: None,
            store: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Lookup {
    /// A DHT record or rendezvous registration of this peer.
    Record(u32),
    /// mDNS neighbours on the LAN of this interface.
    Mdns(IfKind, u16, Option<u32>),
    /// BLE advertisers in range.
    Ble(Option<u32>),
}

struct Queued {
    key: (Timestamp, u64),
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.key.cmp(&o.key)
    }
}

struct Conn {
    node: u32,
    peer: u32,
    addr: AddrKey,
    via: IfKind,
    open: bool,
    liveness: Liveness,
    last_rx: Timestamp,
    last_app: Timestamp,
    detect_at: Option<Timestamp>,
    /// The peer's app generation and both interfaces' attachments when the
    /// connection opened: a restart or re-attachment on either side kills it.
    peer_generation: u32,
    local_attach: u32,
    remote_attach: u32,
}

/// Why the route in use died, for failover by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The node's own interface went down or changed network; the OS says so.
    InterfaceLost = 0,
    /// The node's own Wi-Fi silently stopped passing packets.
    SilentStall = 1,
    /// The peer's side changed (it moved, lost an interface, or left).
    PeerMoved = 2,
    /// The node's own interface went down after the host warned of it.
    WarnedLoss = 3,
}

struct Pair {
    peer: u32,
    primary: Option<u64>,
    /// Since when the app wants the contact and a path to it exists: the
    /// start of time to first connection (waiting for a contact that is not
    /// online yet is nobody's fault). `None` until both hold.
    want_since: Option<Timestamp>,
    connected_once: bool,
    last_class: Option<PathClass>,
    outage: Option<(Timestamp, Cause)>,
    /// When each waiting message was sent (bounded by the queue limit).
    queue: std::collections::VecDeque<Timestamp>,
}

/// One policy's run.
struct Sim<'p> {
    plan: &'p Plan,
    policy: String,
    world: World,
    agents: Vec<Option<Box<dyn Agent>>>,
    gens: Vec<u32>,
    timer_at: Vec<Option<Timestamp>>,
    fired_at: Vec<Option<Timestamp>>,
    queue: BinaryHeap<Reverse<Queued>>,
    seq: u64,
    now: Timestamp,
    end: Timestamp,
    next_timeline: usize,
    conns: BTreeMap<u64, Conn>,
    pairs: Vec<Vec<Pair>>,
    pairs_to: Vec<Vec<(u32, u16)>>,
    online_since: Vec<Option<Timestamp>>,
    node_seconds: f64,
    metrics: Metrics,
    hash: u64,
    rng: Rng,
    budget: Budget,
    /// Set when a node went over its event budget, or broke an invariant;
    /// the run stops with it.
    runaway: Option<Error>,
    /// Check invariants as the run goes (see `checks.rs`).
    check: bool,
}

/// A connection's key: the node, the agent's generation (a restarted app
/// numbers its connections from 1 again) and the agent's own id.
fn conn_key(node: u32, generation: u32, conn: u64) -> u64 {
    (u64::from(node) << 40) | (u64::from(generation & 0xffff) << 24) | (conn & 0xff_ffff)
}

fn local_id(key: u64) -> u64 {
    key & 0xff_ffff
}

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl<'p> Sim<'p> {
    fn new(plan: &'p Plan, policy: &str) -> Sim<'p> {
        let s = &plan.scenario;
        let n = plan.nodes.len();
        let mut nodes = plan.nodes.clone();
        let (mdns, ble) = match policy {
            "libp2p-stock" | "libp2p-tuned" => (true, false),
            "tinder" => (true, true),
            _ => (false, false),
        };
        for node in &mut nodes {
            node.mdns_visible = mdns;
            node.ble_visible = ble;
        }
        let world = World {
            scenario: plan.scenario.clone(),
            nodes,
            lans: s.lans.clone(),
            servers: s
                .rendezvous
                .iter()
                .map(|r| Server {
                    region: r.region as u16,
                    up: true,
                    registrations: vec![None; n],
                })
                .collect(),
            dht: vec![None; n],
            link_rng: (0..n as u64)
                .map(|i| Rng::stream(plan.seed, 4, i))
                .collect(),
        };
        let mut pairs_to = vec![Vec::new(); n];
        let pairs: Vec<Vec<Pair>> = plan
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                node.contacts
                    .iter()
                    .enumerate()
                    .map(|(slot, &c)| {
                        pairs_to[c as usize].push((i as u32, slot as u16));
                        Pair {
                            peer: c,
                            primary: None,
                            want_since: None,
                            connected_once: false,
                            last_class: None,
                            outage: None,
                            queue: std::collections::VecDeque::new(),
                        }
                    })
                    .collect()
            })
            .collect();
        let mut sim = Sim {
            plan,
            policy: policy.to_owned(),
            world,
            agents: (0..n).map(|_| None).collect(),
            gens: vec![0; n],
            timer_at: vec![None; n],
            fired_at: vec![None; n],
            queue: BinaryHeap::new(),
            seq: 0,
            now: Timestamp::ZERO,
            end: at(s.duration_s),
            next_timeline: 0,
            conns: BTreeMap::new(),
            pairs,
            pairs_to,
            online_since: vec![None; n],
            node_seconds: 0.0,
            metrics: Metrics::default(),
            hash: 0xcbf2_9ce4_8422_2325,
            rng: Rng::stream(plan.seed, 5, 0),
            budget: Budget::new(n, s.limits.max_events_per_node_second),
            runaway: None,
            check: false,
        };
        if let Some(&(t, _, _)) = plan.timeline.first() {
            sim.push(t, Ev::Timeline);
        }
        let interval = Duration::from_secs_f64(s.traffic.message_interval_s);
        for node in 0..n as u32 {
            for slot in 0..sim.pairs[node as usize].len() as u16 {
                let phase = interval.mul_f64(sim.rng.f64());
                sim.push(Timestamp::ZERO + phase, Ev::Message { node, slot });
            }
        }
        sim.push(
            Timestamp::ZERO + Duration::from_secs_f64(s.sample_interval_s),
            Ev::Sample,
        );
        sim
    }

    fn push(&mut self, t: Timestamp, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            key: (t.max(self.now), self.seq),
            ev,
        }));
    }

    /// Counts an event or output of `node` against its budget; records the
    /// runaway (once) and returns `false` when the node is over it.
    fn charge(&mut self, node: u32, kind: Kind) -> bool {
        let Some((top, count)) = self.budget.charge(node, kind, self.now) else {
            return true;
        };
        if self.runaway.is_none() {
            self.runaway = Some(Error::Runaway {
                policy: self.policy.clone(),
                node,
                group: self.plan.group_of(node).to_owned(),
                second: self.now.since_origin().as_secs(),
                kind: top.name(),
                count,
                limit: self.budget.limit,
            });
        }
        false
    }

    fn mix(&mut self, x: u64) {
        for b in x.to_le_bytes() {
            self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }

    fn run(mut self, progress: &dyn Fn(f64)) -> Result<PolicyResult, Error> {
        let step = self.end.since_origin() / 100;
        if !step.is_zero() {
            self.push(Timestamp::ZERO + step, Ev::Progress);
        }
        while let Some(Reverse(q)) = self.queue.pop() {
            if self.runaway.is_some() {
                break;
            }
            let (t, _) = q.key;
            if t > self.end {
                break;
            }
            self.now = t;
            self.mix(t.since_origin().as_micros() as u64);
            if let Some((node, kind)) = q.ev.charged_to()
                && !self.charge(node, kind)
            {
                break;
            }
            match q.ev {
                Ev::Timeline => self.timeline()?,
                Ev::Timer { node, generation } => {
                    if generation == self.gens[node as usize]
                        && self.timer_at[node as usize] == Some(t)
                    {
                        self.timer_at[node as usize] = None;
                        self.fired_at[node as usize] = Some(t);
                        self.mix(u64::from(node));
                        if let Some(mut a) = self.agents[node as usize].take() {
                            a.handle_timeout(t, &self.world);
                            self.agents[node as usize] = Some(a);
                            self.after_agent(node);
                        }
                    }
                }
                Ev::DialDone { key, ok } => self.dial_done(key, ok),
                Ev::Answer(a) => self.answer(*a),
                Ev::Ping { key } => self.ping(key, true),
                Ev::QuicKeepalive { key } => self.quic_keepalive(key),
                Ev::Detect { key } => self.detect(key),
                Ev::IdleCheck { key } => self.idle_check(key),
                Ev::Message { node, slot } => self.message(node, slot),
                Ev::Sample => {
                    self.sample();
                    if self.check {
                        self.check_messages();
                        self.check_primaries();
                    }
                }
                Ev::Progress => {
                    progress(
                        t.since_origin().as_secs_f64() / self.end.since_origin().as_secs_f64(),
                    );
                    self.push(t + step, Ev::Progress);
                }
            }
        }
        if self.check {
            self.check_messages();
        }
        if let Some(e) = self.runaway.take() {
            return Err(e);
        }
        progress(1.0);
        Ok(self.finish())
    }

    fn input(&mut self, node: u32, input: Input) {
        let Some(mut a) = self.agents[node as usize].take() else {
            return;
        };
        a.handle(input, self.now, &self.world);
        self.agents[node as usize] = Some(a);
        self.after_agent(node);
    }

    fn after_agent(&mut self, node: u32) {
        loop {
            let out = match self.agents[node as usize].as_mut() {
                Some(a) => a.poll_output(),
                None => None,
            };
            let Some(out) = out else { break };
            if !self.charge(node, Kind::of_output(&out)) {
                // Over budget: the run stops after this event.
                break;
            }
            self.apply(node, out);
        }
        let due = self.agents[node as usize]
            .as_ref()
            .and_then(|a| a.poll_timeout());
        if let Some(t) = due {
            // A timer in the past runs now; the engine never asks for one.
            // One asked again for the instant it just fired at runs 1 ms
            // later, so a policy's mistake cannot stall simulated time.
            let mut t = t.max(self.now);
            if self.fired_at[node as usize] == Some(t) {
                t = t + Duration::from_millis(1);
            }
            if self.timer_at[node as usize] != Some(t) {
                self.timer_at[node as usize] = Some(t);
                let generation = self.gens[node as usize];
                self.push(t, Ev::Timer { node, generation });
            }
        } else {
            self.timer_at[node as usize] = None;
        }
    }

    fn make_agent(&self, node: u32) -> Result<Box<dyn Agent>, Error> {
        let seed = self.plan.seed ^ (u64::from(node) << 32) ^ u64::from(self.gens[node as usize]);
        let engine = |profile, set| -> Result<Box<dyn Agent>, Error> {
            Ok(Box::new(EngineAgent::new(
                node,
                profile,
                set,
                seed,
                self.plan.ids.clone(),
                &self.world,
                self.now,
            )?))
        };
        use multidriver_scoring::Source;
        match self.policy.as_str() {
            "libp2p-stock" => Ok(Box::new(ClassicAgent::new(
                node,
                Flavor::Stock,
                &self.world,
            ))),
            "libp2p-tuned" => Ok(Box::new(ClassicAgent::new(
                node,
                Flavor::Tuned,
                &self.world,
            ))),
            "tinder" => Ok(Box::new(ClassicAgent::new(
                node,
                Flavor::Tinder,
                &self.world,
            ))),
            "oracle" => Ok(Box::new(OracleAgent::new(node, &self.world))),
            "single-dht" => engine(None, DriverSet::Only(Source::Dht)),
            "single-rendezvous" => engine(None, DriverSet::Only(Source::Rendezvous)),
            "single-mdns" => engine(None, DriverSet::Only(Source::Mdns)),
            other => engine(policy_profile(other), DriverSet::All),
        }
    }

    fn timeline(&mut self) -> Result<(), Error> {
        let plan = self.plan;
        while let Some((t, node, action)) = plan.timeline.get(self.next_timeline) {
            if *t > self.now {
                self.push(*t, Ev::Timeline);
                break;
            }
            self.next_timeline += 1;
            self.mix(u64::from(*node));
            self.world_action(*node, action)?;
        }
        Ok(())
    }

    fn world_action(&mut self, node: u32, action: &WorldAction) -> Result<(), Error> {
        let n = node as usize;
        match action {
            WorldAction::Online => {
                if self.world.nodes[n].online {
                    return Ok(());
                }
                self.world.nodes[n].online = true;
                // A warning the previous app heard is not this one's.
                for i in &mut self.world.nodes[n].ifaces {
                    i.losing = false;
                }
                self.online_since[n] = Some(self.now);
                self.gens[n] += 1;
                let agent = self.make_agent(node)?;
                self.agents[n] = Some(agent);
                for p in &mut self.pairs[n] {
                    p.want_since = None;
                    p.connected_once = false;
                    p.primary = None;
                    p.outage = None;
                    p.queue.clear();
                }
                self.input(node, Input::Start);
                self.paths_changed(node);
            }
            WorldAction::Offline => {
                if !self.world.nodes[n].online {
                    return Ok(());
                }
                self.world.nodes[n].online = false;
                if let Some(s) = self.online_since[n].take() {
                    self.node_seconds += self.now.saturating_duration_since(s).as_secs_f64();
                }
                // The app is gone: its connections and attempts with it.
                let from = u64::from(node) << 40;
                let keys: Vec<u64> = self
                    .conns
                    .range(from..from + (1 << 40))
                    .map(|(k, _)| *k)
                    .collect();
                for k in keys {
                    self.remove_conn(k);
                }
                self.agents[n] = None;
                self.timer_at[n] = None;
                self.gens[n] += 1;
                let now = self.now;
                for p in &mut self.pairs[n] {
                    if !p.connected_once
                        && let Some(w) = p.want_since
                    {
                        // Never connected while it was up: a censored sample.
                        self.metrics
                            .ttfc_censored
                            .push(now.saturating_duration_since(w).as_secs_f64());
                    }
                    if let Some((s, cause)) = p.outage.take() {
                        // Left before recovering: unfinished.
                        let secs = now.saturating_duration_since(s).as_secs_f64();
                        self.metrics.failover(cause, secs, true);
                    }
                    // Messages still queued die with the app.
                    self.metrics.lost += p.queue.len() as u64;
                    p.queue.clear();
                    p.primary = None;
                    p.connected_once = true;
                }
                self.paths_changed(node);
            }
            WorldAction::Scenario(a) => self.scenario_action(node, a),
        }
        Ok(())
    }

    fn scenario_action(&mut self, node: u32, a: &Action) {
        let n = node as usize;
        let online = node != u32::MAX && self.world.nodes[n].online;
        match a {
            Action::RendezvousDown(i) => self.world.servers[*i].up = false,
            Action::RendezvousUp(i) => self.world.servers[*i].up = true,
            Action::WifiUp(lan) | Action::EthernetUp(lan) => {
                let kind = if matches!(a, Action::WifiUp(_)) {
                    IfKind::Wifi
                } else {
                    IfKind::Ethernet
                };
                let i = &mut self.world.nodes[n].ifaces[kind as usize];
                *i = Iface::attached(Some(*lan as u16), *lan as u16, i.attach.wrapping_add(1));
                if online {
                    let up = up_input(&self.world.nodes[n], kind, &self.world);
                    self.input(node, up);
                }
                self.paths_changed(node);
            }
            Action::WifiDown | Action::EthernetDown | Action::CellularDown => {
                let kind = match a {
                    Action::WifiDown => IfKind::Wifi,
                    Action::EthernetDown => IfKind::Ethernet,
                    _ => IfKind::Cellular,
                };
                let i = &mut self.world.nodes[n].ifaces[kind as usize];
                let was_up = i.up;
                let cause = if i.losing {
                    Cause::WarnedLoss
                } else {
                    Cause::InterfaceLost
                };
                *i = Iface {
                    epoch: i.epoch,
                    attach: i.attach,
                    ..Iface::default()
                };
                // Connections over it die with it (the socket is gone).
                self.paths_changed_by(node, cause);
                if online && was_up {
                    self.input(node, Input::Down { kind });
                    if self.check {
                        self.check_after_down(node, kind);
                    }
                }
            }
            Action::WifiLosing => {
                let i = &mut self.world.nodes[n].ifaces[IfKind::Wifi as usize];
                i.losing = i.up;
                if online {
                    self.input(node, Input::Losing { kind: IfKind::Wifi });
                }
            }
            Action::WifiStall => {
                self.world.nodes[n].ifaces[IfKind::Wifi as usize].stalled = true;
                self.paths_changed_by(node, Cause::SilentStall);
            }
            Action::CellularUp => {
                let nd = &mut self.world.nodes[n];
                if nd.cellular.is_none() {
                    nd.cellular = Some(crate::scenario::CellularKind::G4);
                }
                let epoch = nd.next_cell_epoch;
                nd.next_cell_epoch = nd.next_cell_epoch.wrapping_add(1);
                let attach = nd.ifaces[IfKind::Cellular as usize].attach.wrapping_add(1);
                nd.ifaces[IfKind::Cellular as usize] = Iface::attached(None, epoch, attach);
                if online {
                    let up = up_input(&self.world.nodes[n], IfKind::Cellular, &self.world);
                    self.input(node, up);
                }
                self.paths_changed(node);
            }
            Action::Lifecycle(l) => {
                self.world.nodes[n].power.lifecycle = *l;
                if online {
                    let p = self.world.nodes[n].power;
                    self.input(node, Input::Power(p));
                }
            }
            Action::Battery { level, charging } => {
                let p = &mut self.world.nodes[n].power;
                p.battery = Some(*level);
                p.charging = *charging;
                if online {
                    let p = self.world.nodes[n].power;
                    self.input(node, Input::Power(p));
                }
            }
            Action::Move(to) => self.world.nodes[n].position = *to,
        }
    }

    /// After the world changed around `node`: outages start or end for the
    /// pairs it is part of, and the oracle is told.
    fn paths_changed(&mut self, node: u32) {
        self.paths_changed_by(node, Cause::InterfaceLost);
    }

    /// [`Self::paths_changed`] with the cause charged to `node`'s own pairs
    /// (its contacts' pairs towards it are charged to the peer moving).
    fn paths_changed_by(&mut self, node: u32, cause: Cause) {
        let mut pairs: Vec<(u32, u16)> = (0..self.pairs[node as usize].len() as u16)
            .map(|s| (node, s))
            .collect();
        pairs.extend(self.pairs_to[node as usize].iter().copied());
        for (a, slot) in pairs {
            let (primary, outage, peer) = {
                let p = &self.pairs[a as usize][slot as usize];
                (p.primary, p.outage, p.peer)
            };
            if !self.world.nodes[a as usize].online {
                continue;
            }
            let pair = &self.pairs[a as usize][slot as usize];
            if !pair.connected_once
                && pair.want_since.is_none()
                && self.world.best_path(a, peer).is_some()
            {
                self.pairs[a as usize][slot as usize].want_since = Some(self.now);
            }
            let alive = primary.is_some_and(|k| self.conn_alive(k));
            if alive && let Some((s, cause)) = outage {
                // The route in use came back before anything replaced it.
                let secs = self.now.saturating_duration_since(s).as_secs_f64();
                self.metrics.failover(cause, secs, false);
                self.pairs[a as usize][slot as usize].outage = None;
            }
            if primary.is_some()
                && !alive
                && outage.is_none()
                && self.world.best_path(a, peer).is_some()
            {
                // The route in use died while another exists: failover starts.
                let cause = if a == node { cause } else { Cause::PeerMoved };
                self.pairs[a as usize][slot as usize].outage = Some((self.now, cause));
            }
            if self.agents[a as usize]
                .as_ref()
                .is_some_and(|ag| ag.wants_path_changes())
            {
                self.input(a, Input::PathsChanged { peer });
            }
        }
    }

    fn conn_alive(&self, key: u64) -> bool {
        self.conns
            .get(&key)
            .is_some_and(|c| c.open && self.conn_path(c).is_some())
    }

    /// The RTT of a connection's path if it still carries packets: the path
    /// works and neither end restarted or re-attached since it opened.
    fn conn_path(&self, c: &Conn) -> Option<Duration> {
        let local = &self.world.nodes[c.node as usize];
        let remote = &self.world.nodes[c.addr.node as usize];
        let same = self.gens[c.peer as usize] == c.peer_generation
            && local.ifaces[c.via as usize].attach == c.local_attach
            && remote.ifaces[c.addr.kind as usize].attach == c.remote_attach;
        same.then(|| self.world.usable_path(c.node, c.via, c.addr))
            .flatten()
    }

    fn class_of(&self, key: u64) -> Option<PathClass> {
        self.conns.get(&key).map(|c| PathClass {
            from: c.via,
            to: c.addr.kind,
            lan: c.addr.lan,
        })
    }

    fn slot_of(&self, node: u32, peer: u32) -> Option<usize> {
        self.pairs[node as usize]
            .iter()
            .position(|p| p.peer == peer)
    }

    fn apply(&mut self, node: u32, out: Output) {
        let n = node as usize;
        match out {
            Output::Dial {
                conn,
                peer,
                addr,
                via,
            } => {
                let key = conn_key(node, self.gens[node as usize], conn);
                self.metrics.dials += 1;
                let via = via.or_else(|| route_for(&self.world, node, addr));
                let liveness = self.agents[n].as_ref().map(|a| {
                    a.liveness(
                        addr.quic,
                        self.world.nodes[n].medium(via.unwrap_or(IfKind::Wifi)),
                    )
                });
                let (Some(via), Some(liveness)) = (via, liveness) else {
                    self.push(self.now, Ev::DialDone { key, ok: false });
                    self.conns.insert(
                        key,
                        self.conn(node, peer, addr, IfKind::Wifi, Liveness::none()),
                    );
                    return;
                };
                self.conns
                    .insert(key, self.conn(node, peer, addr, via, liveness));
                // A dial over an interface that is down fails at once; over
                // one that silently stalled it black-holes below (the OS
                // cannot tell).
                let iface = &self.world.nodes[n].ifaces[via as usize];
                if !self.world.nodes[n].online
                    || !iface.up
                    || peer as usize >= self.world.nodes.len()
                {
                    self.push(self.now, Ev::DialDone { key, ok: false });
                    return;
                }
                let transport = if addr.quic {
                    TransportKind::Quic
                } else {
                    TransportKind::Tcp
                };
                let (up, down) = transport.handshake_bytes();
                match self.world.usable_path(node, via, addr) {
                    Some(base) => {
                        let hs = self.world.handshake_time(
                            node,
                            via,
                            base,
                            transport.handshake_round_trips(),
                            self.now,
                        );
                        self.world.nodes[n].radios[via as usize].busy(
                            self.now,
                            self.now + hs,
                            up,
                            down,
                        );
                        let target = &mut self.world.nodes[addr.node as usize];
                        target.radios[addr.kind as usize].activity(self.now + hs / 2, down, up);
                        self.push(self.now + hs, Ev::DialDone { key, ok: true });
                    }
                    None => {
                        self.world.nodes[n].radios[via as usize].activity(self.now, up, 0);
                        let timeout = if addr.quic {
                            UNREACHABLE_TIMEOUT
                        } else {
                            TCP_BLACKHOLE_TIMEOUT
                        };
                        self.push(self.now + timeout, Ev::DialDone { key, ok: false });
                    }
                }
            }
            Output::CancelDial { conn } => {
                let key = conn_key(node, self.gens[node as usize], conn);
                if self.conns.get(&key).is_some_and(|c| !c.open) {
                    self.conns.remove(&key);
                }
            }
            Output::Close { conn } => {
                self.remove_conn(conn_key(node, self.gens[node as usize], conn))
            }
            Output::KeepAlive { conns } => {
                for c in conns {
                    self.ping(conn_key(node, self.gens[node as usize], c), false);
                }
            }
            Output::Primary { peer, conn } => {
                if let Some(slot) = self.slot_of(node, peer) {
                    self.set_primary(
                        node,
                        slot,
                        conn.map(|c| conn_key(node, self.gens[node as usize], c)),
                    );
                }
            }
            Output::Advertise { query, driver } => self.advertise(node, query, driver),
            Output::StopAdvertising { driver } => match driver {
                DriverRef::Mdns => self.world.nodes[n].mdns_visible = false,
                DriverRef::Proximity => self.world.nodes[n].ble_visible = false,
                DriverRef::Rendezvous(s) => {
                    if let Some(srv) = self.world.servers.get_mut(s as usize) {
                        srv.registrations[n] = None;
                    }
                }
                DriverRef::Dht => {}
            },
            Output::Discover {
                query,
                driver,
                peer,
            } => self.discover(node, query, driver, peer),
        }
    }

    fn conn(&self, node: u32, peer: u32, addr: AddrKey, via: IfKind, liveness: Liveness) -> Conn {
        Conn {
            node,
            peer,
            addr,
            via,
            open: false,
            liveness,
            last_rx: self.now,
            last_app: self.now,
            detect_at: None,
            peer_generation: self.gens.get(peer as usize).copied().unwrap_or(0),
            local_attach: self.world.nodes[node as usize].ifaces[via as usize].attach,
            remote_attach: self
                .world
                .nodes
                .get(addr.node as usize)
                .map_or(0, |n| n.ifaces[addr.kind as usize].attach),
        }
    }

    fn remove_conn(&mut self, key: u64) {
        self.conns.remove(&key);
    }

    fn dial_done(&mut self, key: u64, ok: bool) {
        let node = (key >> 40) as u32;
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if c.open {
            return;
        }
        let alive = ok && self.conn_path(c).is_some();
        if alive {
            let now = self.now;
            let lv = {
                let c = self.conns.get_mut(&key).expect("checked above");
                c.open = true;
                c.last_rx = now;
                c.last_app = now;
                c.liveness
            };
            if let Some(p) = lv.ping_every {
                self.push(now + p, Ev::Ping { key });
            }
            if let Some(k) = lv.quic_keepalive {
                self.push(now + k, Ev::QuicKeepalive { key });
            }
            if let Some(i) = lv.idle_close {
                self.push(now + i, Ev::IdleCheck { key });
            }
            self.input(
                node,
                Input::DialSucceeded {
                    conn: local_id(key),
                },
            );
        } else {
            self.conns.remove(&key);
            self.metrics.dial_failures += 1;
            self.input(
                node,
                Input::DialFailed {
                    conn: local_id(key),
                },
            );
        }
    }

    /// One keep-alive exchange on a connection; `repeat` for libp2p-ping's
    /// own timer.
    fn ping(&mut self, key: u64, repeat: bool) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if !c.open {
            return;
        }
        let (node, via, addr, lv) = (c.node, c.via, c.addr, c.liveness);
        let path = self.conn_path(c);
        let bytes = multidriver_scoring::energy::KEEPALIVE_BYTES;
        if self.world.nodes[node as usize].usable(via) {
            self.world.nodes[node as usize].radios[via as usize].activity(self.now, bytes, bytes);
        }
        if repeat && let Some(p) = lv.ping_every {
            self.push(self.now + p, Ev::Ping { key });
        }
        match path {
            Some(base) => {
                self.world.nodes[addr.node as usize].radios[addr.kind as usize]
                    .activity(self.now, bytes, bytes);
                let rtt = self.world.sample_rtt(node, base);
                if let Some(c) = self.conns.get_mut(&key) {
                    c.last_rx = self.now;
                    c.detect_at = None;
                }
                self.input(
                    node,
                    Input::Rtt {
                        conn: local_id(key),
                        rtt,
                    },
                );
            }
            None => {
                if let Some(t) = lv.ping_timeout {
                    self.schedule_detect(key, self.now + t);
                }
            }
        }
    }

    fn schedule_detect(&mut self, key: u64, t: Timestamp) {
        let t = t.max(self.now);
        if let Some(c) = self.conns.get_mut(&key)
            && c.detect_at.is_none_or(|d| d > t)
        {
            c.detect_at = Some(t);
            self.push(t, Ev::Detect { key });
        }
    }

    fn quic_keepalive(&mut self, key: u64) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if !c.open {
            return;
        }
        let (node, via, addr, lv, last_rx) = (c.node, c.via, c.addr, c.liveness, c.last_rx);
        let alive = self.conn_path(c).is_some();
        if self.world.nodes[node as usize].usable(via) {
            self.world.nodes[node as usize].radios[via as usize].activity(self.now, 60, 60);
        }
        if let Some(k) = lv.quic_keepalive {
            self.push(self.now + k, Ev::QuicKeepalive { key });
        }
        if alive {
            self.world.nodes[addr.node as usize].radios[addr.kind as usize]
                .activity(self.now, 60, 60);
            if let Some(c) = self.conns.get_mut(&key) {
                c.last_rx = self.now;
            }
        } else if let Some(idle) = lv.quic_idle {
            self.schedule_detect(key, last_rx + idle);
        }
    }

    fn detect(&mut self, key: u64) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if !c.open || c.detect_at != Some(self.now) {
            return;
        }
        if self.conn_path(c).is_some() {
            if let Some(c) = self.conns.get_mut(&key) {
                c.detect_at = None;
            }
            return;
        }
        self.close_under(key, |conn| Input::ConnectionLost { conn });
    }

    /// The policy's own stack closed a connection: forget it and tell the
    /// policy with `input`.
    fn close_under(&mut self, key: u64, input: impl FnOnce(u64) -> Input) {
        let Some(node) = self.conns.get(&key).map(|c| c.node) else {
            return;
        };
        self.remove_conn(key);
        self.input(node, input(local_id(key)));
    }

    fn idle_check(&mut self, key: u64) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        let Some(idle) = c.liveness.idle_close else {
            return;
        };
        if !c.open {
            return;
        }
        let due = c.last_app + idle;
        if due > self.now {
            self.push(due, Ev::IdleCheck { key });
            return;
        }
        self.close_under(key, |conn| Input::IdleClosed { conn });
    }

    fn set_primary(&mut self, node: u32, slot: usize, key: Option<u64>) {
        let now = self.now;
        let class = key.and_then(|k| self.class_of(k));
        let alive = key.is_some_and(|k| self.conn_alive(k));
        let bytes = u64::from(self.plan.scenario.traffic.message_bytes);
        let p = &mut self.pairs[node as usize][slot];
        p.primary = key.filter(|_| class.is_some());
        let Some(class) = class else {
            return;
        };
        if !p.connected_once {
            p.connected_once = true;
            self.metrics.ttfc.push(
                now.saturating_duration_since(p.want_since.unwrap_or(now))
                    .as_secs_f64(),
            );
        }
        if p.last_class.is_some_and(|c| c != class) {
            self.metrics.switches += 1;
        }
        p.last_class = Some(class);
        if alive {
            if let Some((s, cause)) = p.outage.take() {
                self.metrics
                    .failover(cause, now.saturating_duration_since(s).as_secs_f64(), false);
            }
            let queued = std::mem::take(&mut p.queue);
            if !queued.is_empty() {
                let k = key.expect("class implies a key");
                let one_way = self.one_way(k);
                for sent in &queued {
                    let delay = now.saturating_duration_since(*sent) + one_way;
                    self.metrics.delivered += 1;
                    self.metrics.delays.push(delay.as_secs_f32());
                }
                self.message_energy(k, bytes * queued.len() as u64);
            }
        }
    }

    /// Half the round trip of a connection's path (zero if it is dead).
    fn one_way(&self, key: u64) -> Duration {
        self.conns
            .get(&key)
            .and_then(|c| self.conn_path(c))
            .unwrap_or_default()
            / 2
    }

    fn message_energy(&mut self, key: u64, bytes: u64) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.last_app = self.now;
        c.last_rx = self.now;
        let (node, via, addr) = (c.node, c.via, c.addr);
        self.world.nodes[node as usize].radios[via as usize].activity(self.now, bytes, 0);
        self.world.nodes[addr.node as usize].radios[addr.kind as usize]
            .activity(self.now, 0, bytes);
    }

    fn message(&mut self, node: u32, slot: u16) {
        let s = &self.plan.scenario;
        let interval = Duration::from_secs_f64(s.traffic.message_interval_s);
        let bytes = u64::from(s.traffic.message_bytes);
        let limit = s.traffic.queue_limit;
        self.push(self.now + interval, Ev::Message { node, slot });
        let nd = &self.world.nodes[node as usize];
        if !nd.online || nd.power.lifecycle == Lifecycle::Suspended {
            return;
        }
        self.metrics.sent += 1;
        let (peer, primary) = {
            let p = &self.pairs[node as usize][slot as usize];
            (p.peer, p.primary)
        };
        if primary.is_some() {
            // The app tells its stack it uses the peer (`Engine::mark_used`).
            self.input(node, Input::AppTraffic { peer });
        }
        match self.pairs[node as usize][slot as usize].primary {
            Some(k) if self.conn_alive(k) => {
                self.metrics.delivered += 1;
                let one_way = self.one_way(k);
                self.metrics.delays.push(one_way.as_secs_f32());
                self.message_energy(k, bytes);
            }
            Some(k) => {
                // Sent into a connection whose path is dead: lost.
                self.metrics.lost += 1;
                if let Some(c) = self.conns.get(&k)
                    && self.world.nodes[node as usize].usable(c.via)
                {
                    let via = c.via;
                    self.world.nodes[node as usize].radios[via as usize]
                        .activity(self.now, bytes, 0);
                }
            }
            None => {
                let now = self.now;
                let p = &mut self.pairs[node as usize][slot as usize];
                if p.queue.len() < limit as usize {
                    p.queue.push_back(now);
                } else {
                    self.metrics.lost += 1;
                }
                self.input(node, Input::NeedPeer { peer });
            }
        }
    }

    fn sample(&mut self) {
        let s = &self.plan.scenario;
        self.push(
            self.now + Duration::from_secs_f64(s.sample_interval_s),
            Ev::Sample,
        );
        for node in 0..self.pairs.len() {
            if !self.world.nodes[node].online {
                continue;
            }
            for slot in 0..self.pairs[node].len() {
                let (primary, peer) = {
                    let p = &self.pairs[node][slot];
                    (p.primary, p.peer)
                };
                let best = self.world.best_path(node as u32, peer);
                if best.is_none() {
                    continue;
                }
                self.metrics.samples_reachable += 1;
                let Some(k) = primary else { continue };
                self.metrics.samples_connected += 1;
                if !self.conn_alive(k) {
                    continue;
                }
                self.metrics.samples_usable += 1;
                let Some((best_rtt, _, _)) = best else {
                    continue;
                };
                let rtt = self.conn_path(&self.conns[&k]);
                // Best: within 1 ms of the lowest-RTT path that works now.
                if rtt.is_some_and(|r| r <= best_rtt + Duration::from_millis(1)) {
                    self.metrics.samples_best += 1;
                }
            }
        }
    }

    fn default_via(&self, node: u32) -> Option<IfKind> {
        self.world.nodes[node as usize].default_route(&self.world)
    }

    fn answer_at(&mut self, t: Timestamp, a: AnswerEv) {
        self.push(t, Ev::Answer(Box::new(a)));
    }

    fn discover(&mut self, node: u32, query: u64, driver: DriverRef, peer: Option<u32>) {
        // A lookup of a peer, or a scan that hears everyone, counts as a
        // discovery; a DHT walk without a target (a bootstrap) does not.
        let counted = peer.is_some() || matches!(driver, DriverRef::Mdns | DriverRef::Proximity);
        if counted {
            self.metrics.discoveries += 1;
        }
        let generation = self.gens[node as usize];
        let mut a = AnswerEv::new(node, generation, query, driver, counted);
        let n = node as usize;
        match driver {
            DriverRef::Dht => {
                let Some(lat) = self.dht_exchange(node, &DHT_LOOKUP) else {
                    return self.answer_at(self.now, a);
                };
                let success = self.plan.scenario.dht.map_or(0.0, |d| d.lookup_success);
                a.ok = self.world.link_rng[n].chance(success);
                a.lookup = peer.filter(|_| a.ok).map(Lookup::Record);
                self.answer_at(self.now + lat, a);
            }
            DriverRef::Rendezvous(s) => {
                let Some(lat) =
                    self.rendezvous_exchange(node, s as usize, 300, RENDEZVOUS_OP_BYTES)
                else {
                    return self.answer_at(self.now, a);
                };
                let Ok(lat) = lat else {
                    return self.answer_at(self.now + UNREACHABLE_TIMEOUT, a);
                };
                a.ok = true;
                a.lookup = peer.map(Lookup::Record);
                self.answer_at(self.now + lat, a);
            }
            DriverRef::Mdns => {
                let nd = &self.world.nodes[n];
                let Some(via) = [IfKind::Wifi, IfKind::Ethernet]
                    .into_iter()
                    .find(|&k| nd.usable(k) && nd.ifaces[k as usize].lan.is_some())
                else {
                    return self.answer_at(self.now, a);
                };
                let lan = nd.ifaces[via as usize].lan.unwrap_or(0);
                let rtt = Duration::from_secs_f64(self.world.lans[lan as usize].rtt_ms / 1000.0);
                self.world.nodes[n].radios[via as usize].activity(
                    self.now,
                    MDNS_OP_BYTES,
                    MDNS_OP_BYTES,
                );
                a.ok = true;
                a.lookup = Some(Lookup::Mdns(via, lan, peer));
                self.answer_at(self.now + rtt + MDNS_RESPONSE_DELAY, a);
            }
            DriverRef::Proximity => {
                if !self.world.nodes[n].usable(IfKind::Ble) {
                    return self.answer_at(self.now, a);
                }
                self.world.nodes[n].radios[IfKind::Ble as usize].busy(
                    self.now,
                    self.now + BLE_SCAN,
                    0,
                    64,
                );
                a.ok = true;
                a.lookup = Some(Lookup::Ble(peer));
                self.answer_at(self.now + BLE_SCAN, a);
            }
        }
    }

    /// One DHT walk over the node's default route, its latency drawn from
    /// `quantiles`; `None` without a route. Keeps the radio busy meanwhile.
    fn dht_exchange(&mut self, node: u32, quantiles: &[(f64, f64)]) -> Option<Duration> {
        let via = self.default_via(node)?;
        let n = node as usize;
        let lat = Duration::from_secs_f64(self.world.link_rng[n].quantiles(quantiles));
        let half = DHT_OP_BYTES / 2;
        let now = self.now;
        self.world.nodes[n].radios[via as usize].busy(now, now + lat, half, half);
        Some(lat)
    }

    /// One request to rendezvous point `s` over the node's default route:
    /// `None` without a route, `Err` if the server is down (the request
    /// times out), else the time until the answer. Charges the radio.
    fn rendezvous_exchange(
        &mut self,
        node: u32,
        s: usize,
        up: u64,
        down: u64,
    ) -> Option<Result<Duration, ()>> {
        let via = self.default_via(node)?;
        let (n, v) = (node as usize, via as usize);
        if !self.world.servers[s].up {
            self.world.nodes[n].radios[v].activity(self.now, 200, 0);
            return Some(Err(()));
        }
        let rtt = self.world.server_rtt(node, via, s);
        let rounds = TransportKind::Tcp.handshake_round_trips() + 1;
        let lat = self.world.handshake_time(node, via, rtt, rounds, self.now);
        let now = self.now;
        self.world.nodes[n].radios[v].busy(now, now + lat, up, down);
        Some(Ok(lat))
    }

    fn advertise(&mut self, node: u32, query: u64, driver: DriverRef) {
        let n = node as usize;
        let generation = self.gens[n];
        let mut a = AnswerEv::new(node, generation, query, driver, false);
        let addrs = self.world.nodes[n].addresses(node, &self.world, false, true);
        match driver {
            DriverRef::Mdns => {
                self.world.nodes[n].mdns_visible = true;
                a.ok = true;
                self.answer_at(self.now, a);
            }
            DriverRef::Proximity => {
                self.world.nodes[n].ble_visible = true;
                a.ok = true;
                self.answer_at(self.now, a);
            }
            DriverRef::Dht => {
                let Some(lat) = self.dht_exchange(node, &DHT_PUBLISH) else {
                    return self.answer_at(self.now, a);
                };
                a.ok = true;
                // Kademlia provider records live 48 h (libp2p-kad
                // `PROVIDER_RECORD_TTL`); the simulated hours never reach it.
                a.store = Some((
                    driver,
                    addrs,
                    self.now + lat + Duration::from_secs(48 * 3600),
                ));
                self.answer_at(self.now + lat, a);
            }
            DriverRef::Rendezvous(s) => {
                let Some(lat) =
                    self.rendezvous_exchange(node, s as usize, RENDEZVOUS_OP_BYTES, 300)
                else {
                    return self.answer_at(self.now, a);
                };
                let Ok(lat) = lat else {
                    return self.answer_at(self.now + UNREACHABLE_TIMEOUT, a);
                };
                a.ok = true;
                a.store = Some((driver, addrs, self.now + lat + ADVERT_TTL));
                self.answer_at(self.now + lat, a);
            }
        }
    }

    fn answer(&mut self, mut a: AnswerEv) {
        match a.lookup {
            Some(Lookup::Mdns(via, lan, only)) => {
                let heard = self.world.mdns_neighbours(a.node, via);
                for c in heard.into_iter().filter(|c| only.is_none_or(|o| o == *c)) {
                    let addrs = self.world.lan_addresses(c, lan);
                    a.found.push(Found {
                        peer: c,
                        addrs,
                        ttl: MDNS_TTL,
                        signed: false,
                    });
                }
            }
            Some(Lookup::Ble(only)) => {
                let heard = self.world.ble_neighbours(a.node);
                for c in heard.into_iter().filter(|c| only.is_none_or(|o| o == *c)) {
                    let addrs = self.world.nodes[c as usize].addresses(c, &self.world, true, true);
                    a.found.push(Found {
                        peer: c,
                        addrs,
                        ttl: PROXIMITY_TTL,
                        signed: false,
                    });
                }
            }
            Some(Lookup::Record(peer)) => self.record_lookup(&mut a, peer),
            None => {}
        }
        self.deliver(a);
    }

    fn record_lookup(&mut self, a: &mut AnswerEv, peer: u32) {
        {
            let record = match a.driver {
                DriverRef::Dht => self
                    .world
                    .dht
                    .get(peer as usize)
                    .cloned()
                    .flatten()
                    .filter(|r| r.1 <= self.now)
                    .map(|(addrs, _, expires)| (addrs, expires, false)),
                DriverRef::Rendezvous(s) if self.world.servers[s as usize].up => self.world.servers
                    [s as usize]
                    .registrations
                    .get(peer as usize)
                    .cloned()
                    .flatten()
                    .map(|(addrs, expires)| (addrs, expires, true)),
                _ => None,
            };
            if let Some((addrs, expires, signed)) = record.filter(|r| r.1 > self.now) {
                a.found.push(Found {
                    peer,
                    addrs,
                    ttl: expires.saturating_duration_since(self.now),
                    signed,
                });
            }
        }
    }

    fn deliver(&mut self, a: AnswerEv) {
        let n = a.node as usize;
        if let Some((driver, addrs, expires)) = a.store {
            match driver {
                DriverRef::Dht => self.world.dht[n] = Some((addrs, self.now, expires)),
                // A server that went down meanwhile loses the request.
                DriverRef::Rendezvous(s) if self.world.servers[s as usize].up => {
                    self.world.servers[s as usize].registrations[n] = Some((addrs, expires));
                }
                _ => {}
            }
        }
        if a.generation != self.gens[n] || !self.world.nodes[n].online {
            return;
        }
        if a.discover {
            self.metrics.answered += 1;
            if a.found.iter().any(|f| !f.addrs.is_empty()) {
                self.metrics.answered_with_routes += 1;
            }
        }
        self.mix(a.query);
        self.input(
            a.node,
            Input::Answer {
                query: a.query,
                driver: a.driver,
                ok: a.ok,
                found: a.found,
            },
        );
    }

    fn finish(mut self) -> PolicyResult {
        let end = self.end;
        for (i, since) in self.online_since.iter().enumerate() {
            if let Some(s) = since {
                self.node_seconds += end.saturating_duration_since(*s).as_secs_f64();
            }
            for p in &self.pairs[i] {
                // Messages still waiting for a connection never arrived.
                self.metrics.lost += p.queue.len() as u64;
                if self.world.nodes[i].online {
                    if !p.connected_once
                        && let Some(w) = p.want_since
                    {
                        self.metrics
                            .ttfc_censored
                            .push(end.saturating_duration_since(w).as_secs_f64());
                    }
                    if let Some((s, cause)) = p.outage {
                        self.metrics.failover(
                            cause,
                            end.saturating_duration_since(s).as_secs_f64(),
                            true,
                        );
                    }
                }
            }
        }
        let mut joules = 0.0;
        let mut promotions = 0;
        for node in &mut self.world.nodes {
            for (i, r) in node.radios.iter_mut().enumerate() {
                r.finish(end);
                joules += r.joules;
                self.metrics.joules_by_radio[i] += r.joules;
            }
            promotions += node.radios[IfKind::Cellular as usize].promotions;
        }
        self.metrics.joules = joules;
        self.metrics.lte_promotions = promotions;
        self.metrics.node_hours = self.node_seconds / 3600.0;
        let hash = self.hash;
        self.metrics.into_result(self.policy, hash)
    }
}

impl Liveness {
    fn none() -> Liveness {
        Liveness {
            ping_every: None,
            ping_timeout: None,
            quic_keepalive: None,
            quic_idle: None,
            idle_close: None,
        }
    }
}

/// Progress of a run: which policy, how far in simulated time (0..=1).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Index of the policy in the run's list.
    pub policy: usize,
    /// Fraction of simulated time done.
    pub fraction: f64,
}

/// Runs every policy of `policies` over the plan, on up to `threads` threads;
/// results come back in the order of `policies` whatever the threads did.
pub(crate) fn run_policies(
    plan: &Plan,
    policies: &[String],
    threads: usize,
    check: bool,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<(PolicyResult, Duration)>, Error> {
    let next = AtomicUsize::new(0);
    type Slot = Option<Result<(PolicyResult, Duration), Error>>;
    let results: std::sync::Mutex<Vec<Slot>> =
        std::sync::Mutex::new((0..policies.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, policies.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(policy) = policies.get(i) else { break };
                    // Wall time of one policy, reported beside (never inside)
                    // the results.
                    let started = std::time::Instant::now();
                    let mut sim = Sim::new(plan, policy);
                    sim.check = check;
                    let r = sim
                        .run(&|f| {
                            progress(Progress {
                                policy: i,
                                fraction: f,
                            })
                        })
                        .map(|r| (r, started.elapsed()));
                    if let Ok(mut g) = results.lock() {
                        g[i] = Some(r);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Error::Io {
                    path: String::new(),
                    message: "a policy thread panicked".to_owned(),
                })
            })
        })
        .collect()
}
