//! Invariants of the engine core over random input sequences: a random
//! adapter answers (or ignores) dials, interfaces come and go, time passes.
//!
//! The harness (the adapter model and the invariants) is in
//! `common/world.rs`, shared with the fuzz target
//! `fuzz/fuzz_targets/core_sequence.rs`; this file only draws the inputs.

#[path = "common/world.rs"]
mod world;

use multidriver_core::Config;
use proptest::prelude::*;

use world::{
    ADDRS, ADVANCE_MS, BATTERY_PERCENT, FOUND, IFACES, KINDS, LIFECYCLES, Limits, NAMESPACES, Op,
    PEERS, REACHABILITIES, RELAYS, RTT_MS, TTL_MS, check, run,
};

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..PEERS, 0..ADDRS.len(), 0..IFACES.len(), TTL_MS)
            .prop_map(|(peer, addr, iface, ttl_ms)| Op::Discover { peer, addr, iface, ttl_ms }),
        2 => (0..PEERS).prop_map(|peer| Op::Connect { peer }),
        1 => (0..PEERS).prop_map(|peer| Op::Disconnect { peer }),
        2 => (0..IFACES.len(), any::<bool>()).prop_map(|(iface, validated)| Op::Up { iface, validated }),
        1 => (0..IFACES.len()).prop_map(|iface| Op::Down { iface }),
        1 => (0..IFACES.len()).prop_map(|iface| Op::Losing { iface }),
        1 => (0..IFACES.len(), any::<bool>()).prop_map(|(iface, metered)| Op::Metered { iface, metered }),
        4 => ADVANCE_MS.prop_map(|ms| Op::Advance { ms }),
        5 => (any::<usize>(), any::<bool>()).prop_map(|(pick, success)| Op::Resolve { pick, success }),
        1 => any::<usize>().prop_map(|pick| Op::Close { pick }),
        2 => (any::<usize>(), RTT_MS).prop_map(|(pick, ms)| Op::Rtt { pick, ms }),
        1 => (0..KINDS.len()).prop_map(|kind| Op::Register { kind }),
        1 => (0..PEERS, 0..IFACES.len()).prop_map(|(peer, iface)| Op::Inbound { peer, iface }),
        1 => (0..PEERS, any::<bool>(), any::<bool>()).prop_map(|(peer, protect, used)| Op::Hold { peer, protect, used }),
        1 => any::<bool>().prop_map(|performance| Op::SetProfile { performance }),
        1 => (0..NAMESPACES.len(), any::<bool>()).prop_map(|(ns, on)| Op::Subscribe { ns, on }),
        1 => (0..NAMESPACES.len()).prop_map(|ns| Op::Advertise { ns }),
        1 => (0..NAMESPACES.len()).prop_map(|ns| Op::StopAdvertising { ns }),
        1 => (0..NAMESPACES.len()).prop_map(|ns| Op::Lookup { ns }),
        3 => (any::<usize>(), any::<bool>(), FOUND).prop_map(|(pick, success, found)| Op::QueryDone { pick, success, found }),
        1 => (0..LIFECYCLES.len(), prop::option::of(BATTERY_PERCENT), any::<bool>())
            .prop_map(|(lifecycle, battery, charging)| Op::Power { lifecycle, battery, charging }),
        1 => (0..REACHABILITIES.len()).prop_map(|which| Op::Reachability { which }),
        1 => (0..RELAYS).prop_map(|relay| Op::AddRelay { relay }),
        1 => (0..RELAYS).prop_map(|relay| Op::RemoveRelay { relay }),
        2 => (0..RELAYS, prop::option::of(0..IFACES.len()), any::<bool>())
            .prop_map(|(relay, iface, accepted)| Op::Reserved { relay, iface, accepted }),
        1 => (0..PEERS, 0..IFACES.len(), any::<bool>())
            .prop_map(|(peer, iface, success)| Op::Punch { peer, iface, success }),
    ]
}

fn config() -> impl Strategy<Value = Config> {
    (
        Limits::PEERS,
        Limits::ROUTES,
        Limits::ATTEMPTS_PER_PEER,
        Limits::ATTEMPTS_TOTAL,
        Limits::CONNECTIONS,
        Limits::LOW_WATERMARK,
        Limits::HIGH_ABOVE_LOW,
        Limits::GRACE_S,
    )
        .prop_map(
            |(peers, routes, per_peer, total, conns, low, extra, grace_s)| {
                Limits {
                    peers,
                    routes,
                    attempts_per_peer: per_peer,
                    attempts_total: total,
                    connections: conns,
                    low_watermark: low,
                    high_above_low: extra,
                    grace_s,
                }
                .config()
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
        let first = run(&ops, &config).map_err(TestCaseError::fail)?;
        let second = run(&ops, &config).map_err(TestCaseError::fail)?;
        prop_assert_eq!(first, second);
    }
}

/// Found by the `core_sequence` fuzz target: a subscription, half a minute,
/// then a profile change left a timer in the past.
#[test]
fn a_profile_change_after_a_subscription_schedules_no_timer_in_the_past() {
    let mut ops = vec![
        Op::Up {
            iface: 1,
            validated: true,
        },
        Op::Discover {
            peer: 0,
            addr: 0,
            iface: 1,
            ttl_ms: 103_143,
        },
        Op::Connect { peer: 0 },
        Op::Subscribe { ns: 0, on: true },
    ];
    for ms in [3980, 3980, 3980, 3980, 3429, 3980, 3980, 3420] {
        ops.push(Op::Advance { ms });
    }
    ops.push(Op::SetProfile { performance: false });
    check(&ops, &Config::default()).unwrap();
}
