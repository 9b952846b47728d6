//! The discrete-event loop: one world per policy, the same seed and the same
//! timeline for every policy.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;

use multidriver_scoring::Timestamp;

use crate::Error;
use crate::agent::Agent;
use crate::metrics::{Metrics, PolicyResult};
use crate::rng::Rng;
use crate::world::{IfKind, Server, World};

mod actions;
mod agents;
mod budget;
mod checks;
mod connections;
mod discovery;
mod events;
mod pairs;
mod parallel;
mod plan;
mod restart;
mod traffic;

pub(crate) use pairs::Cause;
pub use parallel::Progress;
pub(crate) use parallel::run_policies;
pub(crate) use plan::Plan;

use budget::{Budget, Kind};
use connections::Conn;
use events::{Ev, Queued};
use pairs::Pair;
use plan::at;

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
            seed: plan.seed,
            nodes,
            lans: s.lans.clone(),
            servers: s
                .rendezvous
                .iter()
                .map(|r| Server {
                    region: r.region as u16,
                    up: true,
                    registrations: vec![None; n],
                    relay: r.relay,
                    epoch: 0,
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
                            after_restart: false,
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
                Ev::Punch { key, ok } => self.punch_done(key, ok),
                Ev::CircuitEnd { key } => self.circuit_end(key),
                Ev::Sample => {
                    self.sample();
                    if self.check {
                        self.check_messages();
                        self.check_primaries();
                        self.check_nat();
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
                        let secs = end.saturating_duration_since(w).as_secs_f64();
                        self.metrics.ttfc(p.after_restart, secs, true);
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
                for (c, j) in r.joules_by_cause.iter().enumerate() {
                    self.metrics.joules_by_cause[c] += j;
                }
            }
            let cell = &node.radios[IfKind::Cellular as usize];
            promotions += cell.promotions;
            for (c, n) in cell.promotions_by_cause.iter().enumerate() {
                self.metrics.lte_promotions_by_cause[c] += n;
            }
        }
        self.metrics.joules = joules;
        self.metrics.lte_promotions = promotions;
        self.metrics.node_hours = self.node_seconds / 3600.0;
        let hash = self.hash;
        self.metrics.into_result(self.policy, hash)
    }
}
