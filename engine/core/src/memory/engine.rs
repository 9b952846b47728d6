//! Export and import: the engine's routes, estimates, penalties and
//! backoffs as a [`RouteMemory`], and back (see [`RouteMemory`]).

use std::collections::BTreeMap;
use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::rtt::{FAILURE_PENALTY_HALF_LIFE, MAX_FAILURE_PENALTY};
use multidriver_scoring::{
    DialHistory, Medium, Route, RouteId, RttEstimator, Source, Timestamp, TransportKind,
};

use super::{
    ImportReport, MEMORY_MAX_PEERS, MEMORY_MAX_RELAYS, MEMORY_MAX_ROUTES, RememberedPeer,
    RememberedPunch, RememberedRelay, RememberedRoute, RememberedSighting, RouteMemory,
};
use crate::peers::route_medium;
use crate::reach::Reachability;
use crate::{Engine, Error, InterfaceId, Peer, RouteMeta, RouteNo};

/// How many samples an RTT estimate is rebuilt from at most. Ours: 1 + 16
/// pairs bring RTTVAR from SRTT/2 down to 10⁻⁴ of SRTT (each pair can
/// shrink it to 9/16), and the count only informs explanations.
const MAX_REPLAYED_SAMPLES: u32 = 33;

/// The engine's side of route memory: imported routes waiting for an
/// interface of their medium, and when imported routes were confirmed
/// before this clock's origin.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryState {
    /// By peer: when they were imported, and what.
    waiting: BTreeMap<PeerId, Waiting>,
    /// Imported routes in the table, by (peer, address, interface): when
    /// they were imported and what the memory said of their confirmation,
    /// so that a later export tells their true age even when it lies
    /// before this clock's origin. Each import first drops the records of
    /// routes no longer in the table, so it holds at most the routes of
    /// the imports since (one, for an app that imports at start).
    confirmed: BTreeMap<(PeerId, Multiaddr, InterfaceId), Confirmed>,
}

#[derive(Debug, Clone)]
struct Waiting {
    imported: Timestamp,
    routes: Vec<RememberedRoute>,
    punches: Vec<RememberedPunch>,
}

#[derive(Debug, Clone)]
struct Confirmed {
    imported: Timestamp,
    /// The route's age at the import.
    age: Duration,
    /// Each restored sighting: the time it was set to, and its age then.
    sightings: Vec<(Source, Timestamp, Duration)>,
}

/// `now - age` on this clock, at its origin if earlier.
fn before(now: Timestamp, age: Duration) -> Timestamp {
    Timestamp::from_duration(now.since_origin().saturating_sub(age))
}

impl Engine {
    /// What the engine learned, to import into the engine of the app's next
    /// process (see [`RouteMemory`]): every peer's routes
    /// that have not expired, with their RTT estimates, penalties, dial
    /// history, sources, age and remaining lifetime (imported routes still
    /// waiting for an interface included), its hole-punch backoffs, the
    /// node's reachability and relays. Peers come most recently confirmed
    /// first, each with its routes in that order; at most
    /// [`Config::max_peers`](crate::Config::max_peers) (and
    /// [`MEMORY_MAX_PEERS`]) peers, each with at most
    /// [`Config::max_routes_per_peer`](crate::Config::max_routes_per_peer)
    /// (and [`MEMORY_MAX_ROUTES`]) routes, the oldest left out.
    pub fn export_memory(&self, now: Timestamp) -> RouteMemory {
        let max_routes = self.config.max_routes_per_peer.min(MEMORY_MAX_ROUTES);
        let mut peers: Vec<RememberedPeer> = Vec::new();
        let mut ids: Vec<&PeerId> = self.peers.keys().collect();
        for id in self.memory.waiting.keys() {
            if !self.peers.contains_key(id) {
                ids.push(id);
            }
        }
        for id in ids {
            let mut routes: Vec<RememberedRoute> = Vec::new();
            let mut punch_backoff = Vec::new();
            if let Some(p) = self.peers.get(id) {
                for (r, m) in p.routes.iter().zip(&p.meta) {
                    if let Some(route) = self.remember_route(*id, r, m, now) {
                        routes.push(route);
                    }
                }
                for (interface, (failures, until)) in &p.punch_backoff {
                    let Some(i) = self.interfaces.get(interface) else {
                        continue;
                    };
                    if *until > now {
                        punch_backoff.push(RememberedPunch {
                            interface: i.medium,
                            failures: *failures,
                            remaining: until.saturating_duration_since(now),
                        });
                    }
                }
            }
            if let Some(w) = self.memory.waiting.get(id) {
                let by = now.saturating_duration_since(w.imported);
                for r in &w.routes {
                    let r = r.aged(by);
                    let known = routes
                        .iter()
                        .any(|k| k.addr == r.addr && k.interface == r.interface);
                    if !r.ttl.is_zero() && !known {
                        routes.push(r);
                    }
                }
                for b in &w.punches {
                    let remaining = b.remaining.saturating_sub(by);
                    let known = punch_backoff.iter().any(|k| k.interface == b.interface);
                    if !remaining.is_zero() && !known {
                        punch_backoff.push(RememberedPunch { remaining, ..*b });
                    }
                }
            }
            if routes.is_empty() {
                continue;
            }
            routes.sort_by(|a, b| a.age.cmp(&b.age).then_with(|| a.addr.cmp(&b.addr)));
            routes.truncate(max_routes);
            punch_backoff.sort_by_key(|b| b.interface);
            peers.push(RememberedPeer {
                peer: *id,
                routes,
                punch_backoff,
            });
        }
        peers.sort_by(|a, b| a.age().cmp(&b.age()).then_with(|| a.peer.cmp(&b.peer)));
        peers.truncate(self.config.max_peers.min(MEMORY_MAX_PEERS));
        let relays = self
            .relays
            .list
            .iter()
            .take(self.config.max_relays.min(MEMORY_MAX_RELAYS))
            .map(|r| RememberedRelay {
                peer: r.peer,
                addr: r.addr.clone(),
            })
            .collect();
        RouteMemory {
            saved_at_unix_ms: None,
            reachability: self.relays.reachability,
            relays,
            peers,
        }
    }

    /// One route of the table as the memory holds it; `None` once expired
    /// or when its interface is unknown.
    fn remember_route(
        &self,
        peer: PeerId,
        r: &Route,
        m: &RouteMeta,
        now: Timestamp,
    ) -> Option<RememberedRoute> {
        if m.expires <= now {
            return None;
        }
        let interface = self.interfaces.get(&m.interface).map(|i| i.medium);
        let imported = self
            .memory
            .confirmed
            .get(&(peer, r.id.addr.clone(), m.interface));
        let since_import = |c: &Confirmed| now.saturating_duration_since(c.imported);
        let mut sightings = Vec::new();
        let mut age: Option<Duration> = None;
        for s in r.sightings() {
            let restored = imported.and_then(|c| {
                c.sightings
                    .iter()
                    .find(|(src, at, _)| *src == s.source && *at == s.last_seen)
                    .map(|(_, _, a)| a.saturating_add(since_import(c)))
            });
            // A sighting still as the import set it is as old as the
            // memory said, even before this clock's origin.
            let s_age = restored.unwrap_or_else(|| now.saturating_duration_since(s.last_seen));
            sightings.push(RememberedSighting {
                source: s.source,
                signed: s.signed,
                age: s_age,
            });
            if restored.is_none() {
                age = Some(age.map_or(s_age, |a| a.min(s_age)));
            }
        }
        let no = m.no;
        for c in self.connections.values() {
            if c.peer == peer && c.route == Some(no) {
                let a = now.saturating_duration_since(c.last_traffic);
                age = Some(age.map_or(a, |x| x.min(a)));
            }
        }
        if let Some(c) = imported {
            let a = c.age.saturating_add(since_import(c));
            age = Some(age.map_or(a, |x| x.min(a)));
        }
        let age = age.unwrap_or_else(|| {
            // Never reported by a source nor imported: a route the engine
            // learned another way counts from the clock's origin.
            now.since_origin()
        });
        Some(RememberedRoute {
            addr: r.id.addr.clone(),
            interface,
            sightings,
            age,
            ttl: m.expires.saturating_duration_since(now),
            srtt: (!r.rtt.is_prior()).then(|| r.rtt.srtt()),
            rttvar: r.rtt.rttvar(),
            samples: r.rtt.samples(),
            penalty: r.rtt.failure_penalty(now),
            successes: r.dials.successes(),
            failures: r.dials.failures(),
        })
    }

    /// Takes a memory from [`Engine::export_memory`] (of this or an earlier
    /// process; see [`RouteMemory`]). Routes join the
    /// table over an interface of their remembered medium (or wait for one
    /// to come up), carrying their RTT estimate, penalty, dial history and
    /// remaining lifetime; relays are added and the reachability taken.
    /// Peers the app wants race their imported routes at once.
    ///
    /// What does not fit the bounds is dropped, oldest first, and counted
    /// in the [`ImportReport`]; expired routes are skipped.
    ///
    /// # Errors
    /// None today: every fact that cannot be taken is dropped and counted.
    /// The `Result` leaves room for a memory that cannot be imported at
    /// all.
    pub fn import_memory(
        &mut self,
        memory: &RouteMemory,
        now: Timestamp,
    ) -> Result<ImportReport, Error> {
        self.last_now = self.last_now.max(now);
        let mut report = ImportReport::default();
        self.prune_memory(now);
        if memory.reachability != Reachability::Unknown {
            self.set_reachability(memory.reachability, now);
        }
        for r in &memory.relays {
            let known = self.relays.list.iter().any(|k| k.peer == r.peer);
            if !known && self.relays.list.len() >= self.config.max_relays {
                report.dropped_relays += 1;
            } else if self.add_relay(r.peer, r.addr.clone(), now).is_ok() {
                report.relays += 1;
            } else {
                report.dropped_relays += 1;
            }
        }
        // The most recently confirmed peers first: the oldest are the ones
        // left out.
        let mut order: Vec<&RememberedPeer> = memory.peers.iter().collect();
        order.sort_by(|a, b| a.age().cmp(&b.age()).then_with(|| a.peer.cmp(&b.peer)));
        let mut imported: Vec<PeerId> = Vec::new();
        for rp in order {
            let mut routes: Vec<&RememberedRoute> = Vec::new();
            for r in &rp.routes {
                if r.ttl.is_zero() {
                    report.expired += 1;
                } else if TransportKind::from_multiaddr(&r.addr).is_none() {
                    report.unusable += 1;
                } else {
                    routes.push(r);
                }
            }
            if routes.is_empty() {
                continue;
            }
            routes.sort_by(|a, b| a.age.cmp(&b.age).then_with(|| a.addr.cmp(&b.addr)));
            let known = self.peers.contains_key(&rp.peer);
            let tracked = self.peers.len()
                + self
                    .memory
                    .waiting
                    .keys()
                    .filter(|id| !self.peers.contains_key(id))
                    .count();
            if !known
                && !self.memory.waiting.contains_key(&rp.peer)
                && tracked >= self.config.max_peers
            {
                report.dropped_peers += 1;
                report.dropped_routes += routes.len();
                continue;
            }
            let taken_before = report.routes + report.waiting;
            for r in routes {
                match self.take_route(rp.peer, r, now) {
                    Taken::InTable => report.routes += 1,
                    Taken::Waiting => report.waiting += 1,
                    Taken::Full => report.dropped_routes += 1,
                }
            }
            for b in &rp.punch_backoff {
                self.take_punch(rp.peer, b, now);
            }
            if report.routes + report.waiting > taken_before {
                report.peers += 1;
                imported.push(rp.peer);
            }
        }
        // The most recently confirmed peer is touched last, so the peer
        // table evicts the oldest first.
        for peer in imported.into_iter().rev() {
            if self.peers.contains_key(&peer) {
                self.touch_peer(peer);
                self.progress(peer, now);
            }
        }
        self.release_capacity(now);
        Ok(report)
    }

    /// Puts one remembered route into the table, or among the waiting.
    fn take_route(&mut self, peer: PeerId, r: &RememberedRoute, now: Timestamp) -> Taken {
        let max_routes = self.config.max_routes_per_peer;
        let Some(interface) = self.interface_for_medium(r.interface) else {
            let in_table = self.peers.get(&peer).map_or(0, |p| p.routes.len());
            let w = self.memory.waiting.entry(peer).or_insert_with(|| Waiting {
                imported: now,
                routes: Vec::new(),
                punches: Vec::new(),
            });
            // Routes imported earlier are carried to this import's time.
            let by = now.saturating_duration_since(w.imported);
            if !by.is_zero() {
                w.routes = w.routes.iter().map(|x| x.aged(by)).collect();
                w.routes.retain(|x| !x.ttl.is_zero());
                for b in &mut w.punches {
                    b.remaining = b.remaining.saturating_sub(by);
                }
                w.imported = now;
            }
            if let Some(x) = w
                .routes
                .iter_mut()
                .find(|x| x.addr == r.addr && x.interface == r.interface)
            {
                if r.age < x.age {
                    *x = r.clone();
                }
                return Taken::Waiting;
            }
            if in_table + w.routes.len() >= max_routes {
                if w.routes.is_empty() {
                    self.memory.waiting.remove(&peer);
                }
                return Taken::Full;
            }
            w.routes.push(r.clone());
            return Taken::Waiting;
        };
        self.insert_remembered(peer, interface, r, now)
    }

    /// Inserts a remembered route over `interface` (a live route of the
    /// same address and interface keeps its own measurements).
    fn insert_remembered(
        &mut self,
        peer: PeerId,
        interface: InterfaceId,
        r: &RememberedRoute,
        now: Timestamp,
    ) -> Taken {
        let Some(medium) = self.interfaces.get(&interface).map(|i| i.medium) else {
            return Taken::Full;
        };
        let Some(transport) = TransportKind::from_multiaddr(&r.addr) else {
            return Taken::Full;
        };
        let max_routes = self.config.max_routes_per_peer;
        let waiting = self.memory.waiting.get(&peer).map_or(0, |w| {
            w.routes
                .iter()
                .filter(|x| !(x.addr == r.addr && x.interface == r.interface))
                .count()
        });
        let created = !self.peers.contains_key(&peer);
        if created {
            if self.peers.len() >= self.config.max_peers {
                // Only when a waiting route joins: the table filled meanwhile.
                return Taken::Full;
            }
            self.touch += 1;
            self.peers.insert(peer, Peer::new(self.touch));
        }
        let expires = now + r.ttl;
        let p = self.peers.get_mut(&peer).expect("inserted above");
        let sightings: Vec<(Source, Timestamp, Duration)> = r
            .sightings
            .iter()
            .map(|s| (s.source, before(now, s.age), s.age))
            .collect();
        match p
            .routes
            .iter()
            .zip(&p.meta)
            .position(|(x, m)| x.id.addr == r.addr && m.interface == interface)
        {
            Some(i) => {
                let live = &mut p.routes[i];
                for s in &r.sightings {
                    live.record_sighting(s.source, s.signed, before(now, s.age));
                }
                if live.rtt.is_prior() && live.dials == DialHistory::default() {
                    restore(live, r, now);
                }
                p.meta[i].expires = p.meta[i].expires.max(expires);
            }
            None => {
                if p.routes.len() + waiting >= max_routes {
                    if created {
                        self.peers.remove(&peer);
                    }
                    return Taken::Full;
                }
                let id = RouteId {
                    peer,
                    addr: r.addr.clone(),
                };
                let mut route = Route::new(id, route_medium(&r.addr, medium), transport);
                for s in &r.sightings {
                    route.record_sighting(s.source, s.signed, before(now, s.age));
                }
                restore(&mut route, r, now);
                let no: RouteNo = p.next_route_no;
                p.next_route_no = p.next_route_no.wrapping_add(1);
                p.routes.push(route);
                p.meta.push(RouteMeta {
                    no,
                    interface,
                    expires,
                });
            }
        }
        self.memory.confirmed.insert(
            (peer, r.addr.clone(), interface),
            Confirmed {
                imported: now,
                age: r.age,
                sightings,
            },
        );
        Taken::InTable
    }

    /// Restores a hole-punch backoff over an interface of its medium, or
    /// keeps it until one comes up.
    fn take_punch(&mut self, peer: PeerId, b: &RememberedPunch, now: Timestamp) {
        if b.remaining.is_zero() || b.failures == 0 {
            return;
        }
        let interface = self.interface_for_medium(Some(b.interface));
        match (interface, self.peers.get_mut(&peer)) {
            (Some(i), Some(p)) => {
                let until = now + b.remaining;
                let e = p.punch_backoff.entry(i).or_insert((0, until));
                *e = (e.0.max(b.failures), e.1.max(until));
            }
            _ => {
                let Some(w) = self.memory.waiting.get_mut(&peer) else {
                    // No route of the peer waits: nothing to hold back.
                    return;
                };
                if !w.punches.iter().any(|x| x.interface == b.interface) {
                    let by = now.saturating_duration_since(w.imported);
                    w.punches.push(RememberedPunch {
                        remaining: b.remaining.saturating_add(by),
                        ..*b
                    });
                }
            }
        }
    }

    /// The interface a route remembered over `medium` goes over now: an up,
    /// not losing interface of that medium, the lowest id first (any such
    /// interface for a route whose medium was not known).
    fn interface_for_medium(&self, medium: Option<Medium>) -> Option<InterfaceId> {
        self.interfaces
            .iter()
            .find(|(_, i)| i.up && !i.losing && medium.is_none_or(|m| m == i.medium))
            .map(|(id, _)| *id)
    }

    /// An interface came up: the imported routes waiting for its medium
    /// join the table (those still alive), with their hole-punch backoffs.
    /// The caller re-evaluates the peers.
    pub(crate) fn memory_interface_up(&mut self, interface: InterfaceId, now: Timestamp) {
        if self.memory.waiting.is_empty() {
            return;
        }
        let Some(medium) = self.interfaces.get(&interface).map(|i| i.medium) else {
            return;
        };
        let peers: Vec<PeerId> = self.memory.waiting.keys().copied().collect();
        for peer in peers {
            let Some(w) = self.memory.waiting.remove(&peer) else {
                continue;
            };
            let by = now.saturating_duration_since(w.imported);
            let (fits, rest): (Vec<RememberedRoute>, Vec<RememberedRoute>) = w
                .routes
                .iter()
                .map(|r| r.aged(by))
                .filter(|r| !r.ttl.is_zero())
                .partition(|r| r.interface.is_none_or(|m| m == medium));
            let punches: Vec<RememberedPunch> = w
                .punches
                .iter()
                .map(|b| RememberedPunch {
                    remaining: b.remaining.saturating_sub(by),
                    ..*b
                })
                .filter(|b| !b.remaining.is_zero())
                .collect();
            if !rest.is_empty() {
                self.memory.waiting.insert(
                    peer,
                    Waiting {
                        imported: now,
                        routes: rest,
                        punches: punches.clone(),
                    },
                );
            }
            let mut joined = false;
            for r in &fits {
                joined |= self.insert_remembered(peer, interface, r, now) == Taken::InTable;
            }
            if joined {
                for b in punches.iter().filter(|b| b.interface == medium) {
                    self.take_punch(peer, b, now);
                }
                self.touch_peer(peer);
            }
        }
    }

    /// Forgets waiting routes whose lifetime passed and confirmation
    /// records of routes no longer in the table.
    fn prune_memory(&mut self, now: Timestamp) {
        self.memory.waiting.retain(|_, w| {
            let by = now.saturating_duration_since(w.imported);
            w.routes.retain(|r| r.ttl > by);
            !w.routes.is_empty()
        });
        let peers = &self.peers;
        self.memory.confirmed.retain(|(peer, addr, interface), _| {
            peers.get(peer).is_some_and(|p| {
                p.routes
                    .iter()
                    .zip(&p.meta)
                    .any(|(r, m)| r.id.addr == *addr && m.interface == *interface)
            })
        });
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    InTable,
    Waiting,
    Full,
}

/// Rebuilds a route's RTT estimate, penalty and dial history from memory.
fn restore(route: &mut Route, r: &RememberedRoute, now: Timestamp) {
    route.dials = DialHistory::new(r.successes, r.failures);
    route.rtt.reset();
    if let Some(srtt) = r.srtt {
        replay_rtt(&mut route.rtt, srtt, r.rttvar, r.samples);
    }
    restore_penalty(&mut route.rtt, r.penalty, now);
}

/// Feeds `rtt` handshake-timed samples that leave it at `srtt` and (as
/// close as [`MAX_REPLAYED_SAMPLES`] allow) `rttvar`, about `samples` of
/// them. The estimate stays provisional: the first probe of this process
/// replaces it (see `multidriver_scoring::RttEstimator`).
///
/// RFC 6298's smoothing from (S, v) with the pair of samples S + d and
/// S − 7d/8 returns SRTT to S and leaves RTTVAR at 9v/16 + 7d/16, for any
/// 0 ≤ d ≤ 8S/7: each pair moves RTTVAR toward the target, and with d = v
/// keeps it where it is.
fn replay_rtt(rtt: &mut RttEstimator, srtt: Duration, rttvar: Duration, samples: u32) {
    let s = srtt.as_secs_f64();
    let target = rttvar.as_secs_f64();
    let wanted = samples.clamp(1, MAX_REPLAYED_SAMPLES);
    let secs = |x: f64| Duration::try_from_secs_f64(x.max(0.0)).unwrap_or(Duration::ZERO);
    rtt.on_handshake_sample(srtt);
    let mut v = s / 2.0;
    let mut n = 1;
    if wanted.is_multiple_of(2) {
        // An even count: one more sample of S (RTTVAR × 3/4), then pairs.
        rtt.on_handshake_sample(srtt);
        v *= 0.75;
        n += 1;
    }
    // Within a microsecond (or 0.1 %) is restored.
    let close = |v: f64| (v - target).abs() <= 1e-6_f64.max(target * 1e-3);
    while n + 2 <= MAX_REPLAYED_SAMPLES && (n < wanted || !close(v)) {
        let d = ((16.0 * target - 9.0 * v) / 7.0).clamp(0.0, 8.0 * s / 7.0);
        rtt.on_handshake_sample(secs(s + d));
        rtt.on_handshake_sample(secs(s - 7.0 * d / 8.0));
        v = 9.0 * v / 16.0 + 7.0 * d / 16.0;
        n += 2;
    }
}

/// Gives `rtt` a failure penalty of `penalty` at `now`: ⌈penalty⌉ failures
/// (one second each, see `multidriver_scoring::rtt`) dated back so that
/// their decay leaves `penalty`. When that lies before this clock's origin
/// they date from the origin if the penalty then stays within twice the
/// remembered one (from half a failure's worth up); a smaller one is not
/// restored.
fn restore_penalty(rtt: &mut RttEstimator, penalty: Duration, now: Timestamp) {
    let p = penalty.min(MAX_FAILURE_PENALTY).as_secs_f64();
    if p <= 0.0 {
        return;
    }
    let half_life = FAILURE_PENALTY_HALF_LIFE.as_secs_f64();
    let failures = p.ceil().max(1.0);
    let back = half_life * (failures / p).log2();
    let elapsed = now.since_origin().as_secs_f64();
    if back > elapsed && failures * 0.5f64.powf(elapsed / half_life) > 2.0 * p {
        return;
    }
    let back = Duration::try_from_secs_f64(back).unwrap_or(Duration::ZERO);
    let at = before(now, back);
    for _ in 0..failures as u32 {
        rtt.on_failure(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayed_estimates_land_on_the_remembered_one() {
        for s_ms in [1u64, 30, 500] {
            let s = Duration::from_millis(s_ms);
            for v in [s / 100, s / 4, s / 2, s, s * 8 / 7] {
                for samples in [1u32, 2, 5, 40] {
                    let mut rtt = RttEstimator::with_prior(Duration::from_millis(100));
                    replay_rtt(&mut rtt, s, v, samples);
                    assert!(rtt.srtt().abs_diff(s) <= Duration::from_micros(1));
                    let tolerance = Duration::from_micros(1).max(v / 1000);
                    assert!(
                        rtt.rttvar().abs_diff(v) <= tolerance,
                        "S {s:?} V {v:?} n {samples}: {:?}",
                        rtt.rttvar()
                    );
                    assert!(rtt.samples() >= samples.min(MAX_REPLAYED_SAMPLES));
                    assert!(rtt.samples() <= MAX_REPLAYED_SAMPLES);
                }
            }
            // No variation at all cannot be reached: it ends tiny.
            let mut rtt = RttEstimator::with_prior(Duration::from_millis(100));
            replay_rtt(&mut rtt, s, Duration::ZERO, 1);
            assert!(rtt.rttvar() <= s / 1000);
        }
    }

    #[test]
    fn restored_penalties_decay_from_where_they_were() {
        let now = Timestamp::from_duration(Duration::from_secs(600));
        for p in [0.1, 0.5, 1.0, 2.5, 9.9] {
            let mut rtt = RttEstimator::with_prior(Duration::from_millis(100));
            restore_penalty(&mut rtt, Duration::from_secs_f64(p), now);
            let got = rtt.failure_penalty(now).as_secs_f64();
            assert!((got - p).abs() < 1e-6, "{p}: {got}");
        }
        // At the clock's origin: a whole failure at most twice the
        // remembered penalty, or none.
        let mut rtt = RttEstimator::with_prior(Duration::from_millis(100));
        restore_penalty(&mut rtt, Duration::from_millis(600), Timestamp::ZERO);
        assert_eq!(rtt.failure_penalty(Timestamp::ZERO), Duration::from_secs(1));
        let mut rtt = RttEstimator::with_prior(Duration::from_millis(100));
        restore_penalty(&mut rtt, Duration::from_millis(300), Timestamp::ZERO);
        assert_eq!(rtt.failure_penalty(Timestamp::ZERO), Duration::ZERO);
    }
}
