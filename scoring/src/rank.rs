//! Ranking a peer's routes under a profile, with the reasons.

use std::cmp::Ordering;
use std::fmt;

use crate::energy::{self, EnergyEstimate};
use crate::profile::{CostlyLinks, Profile};
use crate::route::{LinkConditions, PowerState, Route};
use crate::time::Timestamp;

/// What ranking depends on besides the routes themselves.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The active profile.
    pub profile: &'a Profile,
    /// Conditions of each link (metered, expensive, constrained).
    pub links: &'a LinkConditions,
    /// The device's power state.
    pub power: PowerState,
    /// The current time on the caller's clock.
    pub now: Timestamp,
}

/// Why a route may not be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exclusion {
    /// The route uses a metered, expensive or constrained link and the profile
    /// forbids such links.
    CostlyLinkForbidden,
}

impl fmt::Display for Exclusion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exclusion::CostlyLinkForbidden => {
                f.write_str("excluded: the profile forbids metered, expensive or constrained links")
            }
        }
    }
}

/// The cost components of one route, in ms-equivalents.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Components {
    /// Weighted expected time to a first answer.
    pub latency_ms: f64,
    /// Weighted modelled battery energy.
    pub energy_ms: f64,
    /// Weighted estimated failure probability.
    pub reliability_ms: f64,
    /// Cost of a route nobody vouches for.
    pub provenance_ms: f64,
    /// Penalty of a costly link under [`CostlyLinks::Avoid`].
    pub costly_link_ms: f64,
    /// A relayed route's circuit limits: the relay cuts a circuit after
    /// its duration or byte limit ([`crate::route::RELAY_CIRCUIT_DURATION`],
    /// [`crate::route::RELAY_CIRCUIT_BYTES`]), and each cut over the
    /// profile's horizon costs the conversation one more expected handshake
    /// (weighted like latency). Zero for a direct route.
    pub relay_ms: f64,
}

impl Components {
    /// The route's total cost: the sum of the components.
    pub fn total_ms(&self) -> f64 {
        self.latency_ms
            + self.energy_ms
            + self.reliability_ms
            + self.provenance_ms
            + self.costly_link_ms
            + self.relay_ms
    }

    fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("latency", self.latency_ms),
            ("energy", self.energy_ms),
            ("reliability", self.reliability_ms),
            ("provenance", self.provenance_ms),
            ("costly link", self.costly_link_ms),
            ("relay limits", self.relay_ms),
        ]
    }
}

/// A route's cost components with the inputs that produced them, as
/// [`breakdown`] computes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Breakdown {
    /// The cost components.
    pub components: Components,
    /// Smoothed RTT in milliseconds (the medium's prior before any sample).
    pub srtt_ms: f64,
    /// RTT variation in milliseconds.
    pub rttvar_ms: f64,
    /// Whether the RTT is still the medium's prior.
    pub rtt_is_prior: bool,
    /// RTT samples behind the estimate.
    pub rtt_samples: u32,
    /// Decaying penalty of recent failures, in milliseconds.
    pub failure_penalty_ms: f64,
    /// Handshake round trips of the route's transport.
    pub handshake_round_trips: u32,
    /// Unweighted expected time to a first answer, in milliseconds:
    /// SRTT × (handshake round trips + 1) + RTTVAR + failure penalty.
    pub expected_ms: f64,
    /// Modelled energy over the profile's horizon.
    pub energy: EnergyEstimate,
    /// Multiplier the power state applied to the energy cost.
    pub energy_factor: f64,
    /// Estimated probability that a dial succeeds.
    pub success_probability: f64,
    /// Whether a signed record or first-hand source vouches for the route.
    pub vouched: bool,
    /// Whether the route's link is metered, expensive or constrained.
    pub costly: bool,
    /// How often a relayed route's circuit is cut over the profile's
    /// horizon (0 for a direct route).
    pub circuit_cuts: f64,
}

/// One route's place in a [`Ranking`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankedRoute {
    /// Index of the route in the slice given to [`rank`].
    pub index: usize,
    /// Total cost in ms-equivalents (lower is better).
    pub cost_ms: f64,
    /// The components of the cost; [`breakdown`] gives the inputs behind
    /// them, [`Ranking::explain`] puts them in words.
    pub components: Components,
    /// Why the route may not be dialled, if it may not.
    pub excluded: Option<Exclusion>,
}

/// A peer's routes, best first.
///
/// Order: routes that may be dialled before excluded ones, then by cost, then
/// by route identity (peer, then address bytes), and last by position in the
/// input (only routes with the same identity get that far). The same set of
/// distinct routes therefore gives the same order whatever the input order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ranking {
    entries: Vec<RankedRoute>,
}

impl Ranking {
    /// Every route, best first.
    pub fn entries(&self) -> &[RankedRoute] {
        &self.entries
    }

    /// The best route that may be dialled.
    pub fn best(&self) -> Option<&RankedRoute> {
        self.entries.first().filter(|e| e.excluded.is_none())
    }

    /// The routes that may be dialled, best first.
    pub fn eligible(&self) -> impl Iterator<Item = &RankedRoute> {
        self.entries.iter().take_while(|e| e.excluded.is_none())
    }

    /// The entry of the route at `index` in the ranked slice.
    pub fn entry_for(&self, index: usize) -> Option<&RankedRoute> {
        self.entries.iter().find(|e| e.index == index)
    }

    /// A human-readable explanation of why each route stands where it does;
    /// `routes` and `ctx` must be those that were ranked.
    pub fn explain<'a>(&'a self, routes: &'a [Route], ctx: &'a Context<'a>) -> Explanation<'a> {
        Explanation {
            ranking: self,
            routes,
            ctx,
        }
    }
}

/// Computes one route's cost components.
pub fn breakdown(route: &Route, ctx: &Context<'_>) -> (Breakdown, Option<Exclusion>) {
    let profile = ctx.profile;
    let srtt_ms = route.rtt.srtt_secs() * 1e3;
    let rttvar_ms = route.rtt.rttvar_secs() * 1e3;
    let failure_penalty_ms = route.rtt.penalty_secs(ctx.now) * 1e3;
    let handshake_round_trips = route.transport.handshake_round_trips();
    let expected_ms =
        srtt_ms * f64::from(handshake_round_trips + 1) + rttvar_ms + failure_penalty_ms;

    let energy = energy::estimate(
        route.medium,
        route.transport,
        profile.usage.horizon(),
        profile.usage.keepalive_interval(),
        profile.usage.bytes_per_hour,
    );
    let energy_factor = energy_factor(profile, ctx.power);

    let success_probability = route.dials.success_probability();
    let vouched = route.is_vouched();
    let costly = ctx.links.get(route.medium).is_costly();
    let (costly_link_ms, excluded) = match (costly, profile.links.costly) {
        (false, _) | (true, CostlyLinks::Allow) => (0.0, None),
        (true, CostlyLinks::Avoid) => (profile.links.costly_penalty_ms, None),
        (true, CostlyLinks::Forbid) => (0.0, Some(Exclusion::CostlyLinkForbidden)),
    };

    let circuit_cuts = if route.medium == crate::Medium::Relay {
        crate::route::circuit_cuts(profile.usage.horizon(), profile.usage.bytes_per_hour)
    } else {
        0.0
    };

    let b = Breakdown {
        components: Components {
            latency_ms: profile.weights.latency * expected_ms,
            energy_ms: profile.weights.energy_ms_per_joule * energy.total_j() * energy_factor,
            reliability_ms: profile.weights.reliability_ms * (1.0 - success_probability),
            provenance_ms: if vouched {
                0.0
            } else {
                profile.weights.unvouched_ms
            },
            costly_link_ms,
            relay_ms: profile.weights.latency * expected_ms * circuit_cuts,
        },
        srtt_ms,
        rttvar_ms,
        rtt_is_prior: route.rtt.is_prior(),
        rtt_samples: route.rtt.samples(),
        failure_penalty_ms,
        handshake_round_trips,
        expected_ms,
        energy,
        energy_factor,
        success_probability,
        vouched,
        costly,
        circuit_cuts,
    };
    (b, excluded)
}

/// How the power state scales energy: the profile's mains factor while
/// charging or without a battery, its low-battery factor under the threshold,
/// 1 otherwise.
pub fn energy_factor(profile: &Profile, power: PowerState) -> f64 {
    match power.battery {
        _ if power.on_mains() => profile.battery.mains_factor,
        Some(level) if level < profile.battery.low_threshold => profile.battery.low_factor,
        _ => 1.0,
    }
}

/// Ranks a peer's routes under `ctx`, best first.
pub fn rank(routes: &[Route], ctx: &Context<'_>) -> Ranking {
    let mut entries: Vec<RankedRoute> = routes
        .iter()
        .enumerate()
        .map(|(index, route)| {
            let (breakdown, excluded) = breakdown(route, ctx);
            RankedRoute {
                index,
                cost_ms: breakdown.components.total_ms(),
                components: breakdown.components,
                excluded,
            }
        })
        .collect();
    // The comparator is a total order (the index breaks the last tie), so
    // an unstable sort gives the same result as a stable one.
    entries.sort_unstable_by(|a, b| compare(a, b, routes));
    Ranking { entries }
}

fn compare(a: &RankedRoute, b: &RankedRoute, routes: &[Route]) -> Ordering {
    a.excluded
        .is_some()
        .cmp(&b.excluded.is_some())
        .then_with(|| a.cost_ms.total_cmp(&b.cost_ms))
        .then_with(|| routes[a.index].id.cmp(&routes[b.index].id))
        .then_with(|| a.index.cmp(&b.index))
}

/// Display form of a ranking: a table, then each route's components and how
/// it compares with the route above it. See [`Ranking::explain`].
#[derive(Debug, Clone, Copy)]
pub struct Explanation<'a> {
    ranking: &'a Ranking,
    routes: &'a [Route],
    ctx: &'a Context<'a>,
}

impl fmt::Display for Explanation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<4} {:>9}  {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}  {:<12} {:<7} route",
            "rank",
            "cost",
            "latency",
            "energy",
            "reliab.",
            "proven.",
            "costly",
            "relay",
            "medium",
            "transp."
        )?;
        for (i, e) in self.ranking.entries.iter().enumerate() {
            let r = &self.routes[e.index];
            let c = &e.components;
            writeln!(
                f,
                "#{:<3} {:>9.1}  {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}  {:<12} {:<7} {}{}",
                i + 1,
                e.cost_ms,
                c.latency_ms,
                c.energy_ms,
                c.reliability_ms,
                c.provenance_ms,
                c.costly_link_ms,
                c.relay_ms,
                r.medium.to_string(),
                r.transport.to_string(),
                r.id.addr,
                if e.excluded.is_some() {
                    "  (excluded)"
                } else {
                    ""
                },
            )?;
        }
        writeln!(f, "(costs in ms-equivalents; lower is better)")?;
        for (i, e) in self.ranking.entries.iter().enumerate() {
            let r = &self.routes[e.index];
            let (b, _) = breakdown(r, self.ctx);
            let c = &b.components;
            writeln!(f)?;
            write!(
                f,
                "#{} {} via {} over {}: ",
                i + 1,
                r.id.addr,
                r.transport,
                r.medium
            )?;
            match (e.excluded, i) {
                (Some(x), _) => writeln!(f, "{x}")?,
                (None, 0) => writeln!(f, "best, lowest total cost {:.1}", e.cost_ms)?,
                (None, _) => {
                    let above = &self.ranking.entries[i - 1];
                    let (name, diff) = largest_gap(&above.components, &e.components);
                    writeln!(
                        f,
                        "behind #{} by {:.1}, mostly {name} ({:+.1})",
                        i,
                        e.cost_ms - above.cost_ms,
                        diff
                    )?;
                }
            }
            let rtt_origin = match (b.rtt_is_prior, b.rtt_samples) {
                (true, _) => format!("prior for {}", r.medium),
                (false, 1) => "1 sample".to_owned(),
                (false, n) => format!("{n} samples"),
            };
            let profile = self.ctx.profile;
            let weights = &profile.weights;
            writeln!(
                f,
                "    latency     {:>8.1}  (srtt {:.1} ms ±{:.1} [{rtt_origin}] × ({} handshake RTT + 1) + rttvar + failure penalty {:.0} ms = {:.1} ms) × weight {}",
                c.latency_ms,
                b.srtt_ms,
                b.rttvar_ms,
                b.handshake_round_trips,
                b.failure_penalty_ms,
                b.expected_ms,
                weights.latency
            )?;
            writeln!(
                f,
                "    energy      {:>8.1}  {:.2} J over {} s (setup {:.3} J, keep-alives {:.2} J, traffic {:.3} J) × {} ms/J × {:.2} for the power state",
                c.energy_ms,
                b.energy.total_j(),
                profile.usage.horizon_s,
                b.energy.setup_j,
                b.energy.keepalive_j,
                b.energy.traffic_j,
                weights.energy_ms_per_joule,
                b.energy_factor
            )?;
            writeln!(
                f,
                "    reliability {:>8.1}  {} of {} dials succeeded (p = {:.2})",
                c.reliability_ms,
                r.dials.successes(),
                r.dials.successes() + r.dials.failures(),
                b.success_probability
            )?;
            let sources: Vec<String> = r
                .sightings()
                .map(|s| format!("{}{}", s.source, if s.signed { " (signed)" } else { "" }))
                .collect();
            writeln!(
                f,
                "    provenance  {:>8.1}  {} [{}]",
                c.provenance_ms,
                if b.vouched {
                    "vouched for"
                } else {
                    "nobody vouches for it"
                },
                sources.join(", ")
            )?;
            writeln!(
                f,
                "    costly link {:>8.1}  {}",
                c.costly_link_ms,
                if b.costly {
                    "metered, expensive or constrained"
                } else {
                    "free link"
                }
            )?;
            if b.circuit_cuts > 0.0 {
                writeln!(
                    f,
                    "    relay       {:>8.1}  the circuit is cut {:.1} times over the horizon, one expected handshake each",
                    c.relay_ms, b.circuit_cuts
                )?;
            }
        }
        Ok(())
    }
}

/// The component in which `better` beats `worse` by the most.
fn largest_gap(better: &Components, worse: &Components) -> (&'static str, f64) {
    better
        .named()
        .iter()
        .zip(worse.named())
        .map(|((name, a), (_, b))| (*name, b - a))
        .max_by(|x, y| x.1.total_cmp(&y.1))
        .unwrap_or(("nothing", 0.0))
}
