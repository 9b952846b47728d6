//! Properties of ranking, race plans and hysteresis that must hold for every
//! input, checked with proptest.

use std::time::Duration;

use libp2p_identity::PeerId;
use multidriver_scoring::profile::{
    BatteryPolicy, LinkPolicy, Quiet, Racing, Switching, Usage, Weights,
};
use multidriver_scoring::race::{expected_handshake, stagger};
use multidriver_scoring::{
    CellularGeneration, Context, CostlyLinks, Lifecycle, LinkConditions, Medium, NetworkConditions,
    PowerState, Profile, RacePlan, Route, RouteId, Source, SwitchDecision, SwitchGuard, Timestamp,
    TransportKind, rank, rank::breakdown,
};
use proptest::prelude::*;

const MEDIA: [Medium; 10] = [
    Medium::Wifi,
    Medium::Ethernet,
    Medium::Cellular(CellularGeneration::G2),
    Medium::Cellular(CellularGeneration::G3),
    Medium::Cellular(CellularGeneration::G4),
    Medium::Cellular(CellularGeneration::G5),
    Medium::Bluetooth,
    Medium::Loopback,
    Medium::Relay,
    Medium::Unknown,
];
const TRANSPORTS: [TransportKind; 4] = [
    TransportKind::Quic,
    TransportKind::Tcp,
    TransportKind::WebRtc,
    TransportKind::Ble,
];
const SOURCES: [Source; 6] = [
    Source::Dht,
    Source::Rendezvous,
    Source::Mdns,
    Source::Proximity,
    Source::Manual,
    Source::Inbound,
];

const NOW: Timestamp = Timestamp::from_millis(600_000);

/// A route's description, turned into a [`Route`] by [`build`].
#[derive(Debug, Clone)]
struct Spec {
    medium: Medium,
    transport: TransportKind,
    rtt_samples_ms: Vec<u32>,
    failures_ago_ms: Vec<u32>,
    successes: u32,
    source: Source,
    signed: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..MEDIA.len(),
        0..TRANSPORTS.len(),
        prop::collection::vec(1u32..2_000, 0..6),
        prop::collection::vec(0u32..300_000, 0..3),
        0u32..10,
        0..SOURCES.len(),
        any::<bool>(),
    )
        .prop_map(
            |(m, t, rtt_samples_ms, failures_ago_ms, successes, s, signed)| Spec {
                medium: MEDIA[m],
                transport: TRANSPORTS[t],
                rtt_samples_ms,
                failures_ago_ms,
                successes,
                source: SOURCES[s],
                signed,
            },
        )
}

fn build(peer: PeerId, i: usize, spec: &Spec) -> Route {
    let addr = format!("/ip4/10.1.{}.{}/tcp/{}", i / 200, i % 200 + 1, 1000 + i)
        .parse()
        .expect("valid multiaddr");
    let mut r = Route::new(RouteId { peer, addr }, spec.medium, spec.transport);
    for ms in &spec.rtt_samples_ms {
        r.rtt.on_sample(Duration::from_millis(u64::from(*ms)));
    }
    let mut failures = spec.failures_ago_ms.clone();
    failures.sort_unstable_by(|a, b| b.cmp(a));
    for ago in failures {
        let at =
            Timestamp::from_duration(NOW.since_origin() - Duration::from_millis(u64::from(ago)));
        r.rtt.on_failure(at);
        r.dials.record_failure();
    }
    for _ in 0..spec.successes {
        r.dials.record_success();
    }
    r.record_sighting(spec.source, spec.signed, NOW);
    r
}

fn peer() -> PeerId {
    // A fixed peer keeps failures reproducible from the printed seed.
    PeerId::from_public_key(
        &libp2p_identity::Keypair::ed25519_from_bytes([7; 32])
            .unwrap()
            .public(),
    )
}

fn costly_links() -> impl Strategy<Value = CostlyLinks> {
    prop_oneof![
        Just(CostlyLinks::Allow),
        Just(CostlyLinks::Avoid),
        Just(CostlyLinks::Forbid)
    ]
}

/// Any valid profile with a positive latency weight.
fn profile() -> impl Strategy<Value = Profile> {
    (
        (
            0.01f64..10.0,
            0.0f64..1000.0,
            0.0f64..60_000.0,
            0.0f64..60_000.0,
        ),
        (costly_links(), 0.0f64..600_000.0),
        (0.0f64..=1.0, 1.0f64..100.0, 0.0f64..=1.0),
        (1u64..86_400, 1u64..3_600, 0u64..1_000_000_000),
        (0.0f64..0.9, 0.0f64..10_000.0, 0u64..600_000),
        (10u64..2_000, 0u64..8_000, 1u32..=16, any::<bool>()),
    )
        .prop_map(|(w, l, b, u, s, r)| {
            let p = Profile {
                name: "generated".to_owned(),
                weights: Weights {
                    latency: w.0,
                    energy_ms_per_joule: w.1,
                    reliability_ms: w.2,
                    unvouched_ms: w.3,
                },
                links: LinkPolicy {
                    costly: l.0,
                    costly_penalty_ms: l.1,
                },
                battery: BatteryPolicy {
                    low_threshold: b.0,
                    low_factor: b.1,
                    mains_factor: b.2,
                },
                usage: Usage {
                    horizon_s: u.0,
                    keepalive_interval_s: u.1,
                    bytes_per_hour: u.2,
                },
                switching: Switching {
                    relative_margin: s.0,
                    absolute_margin_ms: s.1,
                    dwell_ms: s.2,
                },
                racing: Racing {
                    min_stagger_ms: r.0,
                    max_stagger_ms: (r.0 + r.1).min(10_000),
                    max_attempts: r.2,
                    keep_warm_backup: r.3,
                    cancel_slower_discovery: r.3,
                },
                quiet: Quiet::balanced(),
            };
            p.validate().expect("generated profiles are valid");
            p
        })
}

fn power() -> impl Strategy<Value = PowerState> {
    (
        prop::option::of(0.0f64..=1.0),
        any::<bool>(),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(battery, charging, l, power_save)| PowerState {
            battery,
            charging,
            lifecycle: [
                Lifecycle::Foreground,
                Lifecycle::Background,
                Lifecycle::Suspended,
            ][l],
            power_save,
        })
}

fn links() -> impl Strategy<Value = LinkConditions> {
    prop::collection::vec((any::<bool>(), any::<bool>(), any::<bool>()), 7).prop_map(|flags| {
        let mut links = LinkConditions::all_free();
        let media = [
            Medium::Wifi,
            Medium::Ethernet,
            Medium::Cellular(CellularGeneration::Unknown),
            Medium::Bluetooth,
            Medium::Loopback,
            Medium::Relay,
            Medium::Unknown,
        ];
        for (m, (metered, expensive, constrained)) in media.into_iter().zip(flags) {
            links.set(
                m,
                NetworkConditions {
                    metered,
                    expensive,
                    constrained,
                },
            );
        }
        links
    })
}

fn position(ranking: &multidriver_scoring::Ranking, index: usize) -> usize {
    ranking
        .entries()
        .iter()
        .position(|e| e.index == index)
        .expect("every route is ranked")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Lowering one route's RTT, all else equal, never moves it down.
    #[test]
    fn lower_rtt_never_ranks_lower(
        specs in prop::collection::vec(spec(), 1..12),
        pick in any::<prop::sample::Index>(),
        faster_by in 1u32..1_000,
        profile in profile(),
        power in power(),
        links in links(),
    ) {
        let peer = peer();
        let k = pick.index(specs.len());
        let slow: Vec<Route> = specs.iter().enumerate().map(|(i, s)| build(peer, i, s)).collect();
        let mut fast_spec = specs[k].clone();
        // At least one sample; the faster route's samples are all lower by the
        // same amount (a uniform shift keeps the variation's inputs equal).
        let base: Vec<u32> = if fast_spec.rtt_samples_ms.is_empty() {
            vec![1_500]
        } else {
            fast_spec.rtt_samples_ms.clone()
        };
        let shift = faster_by % base.iter().min().copied().unwrap_or(1);
        prop_assume!(shift > 0);
        let mut slow = slow;
        slow[k] = build(peer, k, &Spec { rtt_samples_ms: base.clone(), ..fast_spec.clone() });
        fast_spec.rtt_samples_ms = base.iter().map(|ms| ms - shift).collect();
        let mut fast = slow.clone();
        fast[k] = build(peer, k, &fast_spec);

        let ctx = Context { profile: &profile, links: &links, power, now: NOW };
        let before = rank(&slow, &ctx);
        let after = rank(&fast, &ctx);
        prop_assert!(after.entries()[position(&after, k)].cost_ms < before.entries()[position(&before, k)].cost_ms);
        prop_assert!(position(&after, k) <= position(&before, k));
    }

    /// With energy weight 0 (and everything else equal between routes), the
    /// order is the order of expected latency, a relayed route's counted once
    /// more for each cut of its circuit over the horizon.
    #[test]
    fn energy_weight_zero_orders_by_latency(
        specs in prop::collection::vec(spec(), 1..12),
        mut profile in profile(),
        power in power(),
        links in links(),
    ) {
        profile.weights.energy_ms_per_joule = 0.0;
        profile.links.costly = CostlyLinks::Allow;
        let peer = peer();
        // Same dial history and provenance everywhere: only media, transports
        // and RTTs differ.
        let routes: Vec<Route> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| build(peer, i, &Spec {
                failures_ago_ms: vec![],
                successes: 3,
                source: Source::Mdns,
                signed: false,
                ..s.clone()
            }))
            .collect();
        let ctx = Context { profile: &profile, links: &links, power, now: NOW };
        let ranking = rank(&routes, &ctx);
        for pair in ranking.entries().windows(2) {
            let expected = |e: &multidriver_scoring::RankedRoute| {
                let b = breakdown(&routes[e.index], &ctx).0;
                b.expected_ms * (1.0 + b.circuit_cuts)
            };
            prop_assert!(expected(&pair[0]) <= expected(&pair[1]), "{:?} before {:?}", pair[0], pair[1]);
        }
    }

    /// A profile that forbids costly links never picks, nor plans to dial,
    /// one while a free route exists.
    #[test]
    fn forbidden_costly_links_are_never_picked(
        specs in prop::collection::vec(spec(), 1..12),
        mut profile in profile(),
        power in power(),
        links in links(),
    ) {
        profile.links.costly = CostlyLinks::Forbid;
        let peer = peer();
        let routes: Vec<Route> = specs.iter().enumerate().map(|(i, s)| build(peer, i, s)).collect();
        let ranking = rank(&routes, &Context { profile: &profile, links: &links, power, now: NOW });
        let is_costly = |i: usize| links.get(routes[i].medium).is_costly();
        let any_free = (0..routes.len()).any(|i| !is_costly(i));
        match ranking.best() {
            Some(best) => prop_assert!(!is_costly(best.index)),
            None => prop_assert!(!any_free),
        }
        let plan = RacePlan::new(&ranking, &routes, &profile.racing);
        for a in plan.attempts() {
            prop_assert!(!is_costly(a.index));
        }
    }

    /// Costs that jitter by less than the hysteresis margin never switch.
    #[test]
    fn jitter_below_the_margin_never_switches(
        base in 1.0f64..10_000.0,
        switching in (0.0f64..0.9, 0.0f64..10_000.0, 0u64..600_000),
        jitter in prop::collection::vec((-1.0f64..=1.0, -1.0f64..=1.0, 1u64..120_000), 1..200),
        eps_share in 0.0f64..0.499,
    ) {
        let switching = Switching { relative_margin: switching.0, absolute_margin_ms: switching.1, dwell_ms: switching.2 };
        // Largest jitter ε with 2ε below the margin at the lowest current cost.
        // 2ε < max(abs, rel·(base − ε)) holds for ε = share·max(abs, rel·base)/(1 + rel).
        // Also below base/2, so costs stay positive.
        let eps = (eps_share * switching.absolute_margin_ms.max(switching.relative_margin * base)
            / (1.0 + switching.relative_margin))
            .min(eps_share * base);
        let mut guard = SwitchGuard::new();
        let mut now = Timestamp::ZERO;
        for (j_cur, j_cand, step_ms) in jitter {
            now = now + Duration::from_millis(step_ms);
            let decision = guard.evaluate(base + eps * j_cur, Some((1u8, base + eps * j_cand)), &switching, now);
            prop_assert_ne!(decision, SwitchDecision::Switch);
        }
    }

    /// A candidate that keeps beating the current route by more than both
    /// margins switches exactly when the dwell time has passed.
    #[test]
    fn sustained_improvement_switches_after_the_dwell(
        current in 1.0f64..100_000.0,
        switching in (0.0f64..0.9, 0.0f64..10_000.0, 1u64..600_000),
        extra in 0.001f64..0.5,
        steps in prop::collection::vec(1u64..60_000, 1..50),
    ) {
        let switching = Switching { relative_margin: switching.0, absolute_margin_ms: switching.1, dwell_ms: switching.2 };
        // Just past both margins.
        let saving = switching.absolute_margin_ms.max(switching.relative_margin * current) * (1.0 + extra)
            + f64::EPSILON * current;
        let candidate = current - saving;
        prop_assume!(candidate > 0.0 && multidriver_scoring::switch::beats(candidate, current, &switching));
        let mut guard = SwitchGuard::new();
        let start = Timestamp::from_millis(1_000);
        prop_assert_eq!(guard.evaluate(current, Some(("b", candidate)), &switching, start),
            SwitchDecision::Wait { until: start + switching.dwell() });
        let mut now = start;
        for step in steps {
            now = now + Duration::from_millis(step);
            let decision = guard.evaluate(current, Some(("b", candidate)), &switching, now);
            if now.saturating_duration_since(start) >= switching.dwell() {
                prop_assert_eq!(decision, SwitchDecision::Switch);
                break;
            }
            prop_assert_eq!(decision, SwitchDecision::Wait { until: start + switching.dwell() });
        }
    }

    /// The order does not depend on the input order, and equal costs break
    /// by route identity.
    #[test]
    fn ties_break_deterministically(
        specs in prop::collection::vec(spec(), 1..12),
        duplicates in 0usize..4,
        profile in profile(),
        power in power(),
        links in links(),
        seed in any::<u64>(),
    ) {
        let peer = peer();
        let mut routes: Vec<Route> = specs.iter().enumerate().map(|(i, s)| build(peer, i, s)).collect();
        // Identical routes at other addresses: equal costs.
        for d in 0..duplicates {
            routes.push(build(peer, 100 + d, &specs[0]));
        }
        let ctx = Context { profile: &profile, links: &links, power, now: NOW };
        let ids = |rs: &[Route]| -> Vec<RouteId> {
            rank(rs, &ctx).entries().iter().map(|e| rs[e.index].id.clone()).collect()
        };
        let expected = ids(&routes);
        let mut shuffled = routes.clone();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        prop_assert_eq!(&ids(&shuffled), &expected);

        let ranking = rank(&routes, &ctx);
        for pair in ranking.entries().windows(2) {
            if pair[0].cost_ms == pair[1].cost_ms && pair[0].excluded == pair[1].excluded {
                prop_assert!(routes[pair[0].index].id < routes[pair[1].index].id);
            }
        }
    }

    /// Race plans: eligible routes only, in rank order, the first at once,
    /// then gaps within the profile's stagger bounds, at most max_attempts.
    #[test]
    fn race_plans_respect_order_and_bounds(
        specs in prop::collection::vec(spec(), 0..20),
        profile in profile(),
        power in power(),
        links in links(),
    ) {
        let peer = peer();
        let routes: Vec<Route> = specs.iter().enumerate().map(|(i, s)| build(peer, i, s)).collect();
        let ranking = rank(&routes, &Context { profile: &profile, links: &links, power, now: NOW });
        let plan = RacePlan::new(&ranking, &routes, &profile.racing);
        let eligible: Vec<usize> = ranking.eligible().map(|e| e.index).collect();
        let planned: Vec<usize> = plan.attempts().iter().map(|a| a.index).collect();
        let expected_len = eligible.len().min(profile.racing.max_attempts as usize);
        prop_assert_eq!(&planned[..], &eligible[..expected_len]);
        if let Some(first) = plan.attempts().first() {
            prop_assert_eq!(first.start_after, Duration::ZERO);
        }
        for pair in plan.attempts().windows(2) {
            let gap = pair[1].start_after - pair[0].start_after;
            // The gap is the earlier route's own expected handshake, clamped.
            prop_assert_eq!(gap, stagger(&routes[pair[0].index], &profile.racing));
            prop_assert_eq!(pair[0].expected_handshake, expected_handshake(&routes[pair[0].index]));
            prop_assert!(gap >= profile.racing.min_stagger() && gap <= profile.racing.max_stagger());
        }
    }
}

#[test]
fn stagger_follows_the_leaders_learned_rtt_not_a_fixed_delay() {
    let peer = peer();
    let profile = Profile::balanced();
    let links = LinkConditions::all_free();
    let ctx = Context {
        profile: &profile,
        links: &links,
        power: PowerState::MAINS,
        now: NOW,
    };
    let plan_with_leader_rtt = |ms: u64| {
        let mut leader = build(
            peer,
            0,
            &Spec {
                medium: Medium::Wifi,
                transport: TransportKind::Tcp,
                rtt_samples_ms: vec![],
                failures_ago_ms: vec![],
                successes: 0,
                source: Source::Manual,
                signed: false,
            },
        );
        for _ in 0..50 {
            leader.rtt.on_sample(Duration::from_millis(ms));
        }
        let mut other = build(
            peer,
            1,
            &Spec {
                medium: Medium::Cellular(CellularGeneration::G4),
                transport: TransportKind::Quic,
                rtt_samples_ms: vec![10_000],
                failures_ago_ms: vec![],
                successes: 0,
                source: Source::Manual,
                signed: false,
            },
        );
        other.dials.record_failure();
        let routes = [leader, other];
        let ranking = rank(&routes, &ctx);
        assert_eq!(ranking.entries()[0].index, 0, "the leader must lead");
        RacePlan::new(&ranking, &routes, &profile.racing).attempts()[1].start_after
    };
    // TCP: 4 round trips. 10 ms → 40 ms, clamped up to 100 ms; 60 ms → ≈ 240 ms;
    // 200 ms → ≈ 800 ms; 900 ms → 3.6 s, clamped down to 2 s.
    assert_eq!(plan_with_leader_rtt(10), Duration::from_millis(100));
    let at_60 = plan_with_leader_rtt(60);
    assert!(
        at_60 >= Duration::from_millis(240) && at_60 < Duration::from_millis(260),
        "{at_60:?}"
    );
    let at_200 = plan_with_leader_rtt(200);
    assert!(
        at_200 >= Duration::from_millis(800) && at_200 < Duration::from_millis(850),
        "{at_200:?}"
    );
    assert_eq!(plan_with_leader_rtt(900), Duration::from_millis(2_000));
}
