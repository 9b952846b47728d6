//! The engine core over arbitrary input sequences: the bytes pick a config
//! and up to `MAX_OPS` inputs (discoveries, interfaces up and down, dial
//! and query answers, time passing...), which run through the harness the
//! proptest `engine/core/tests/properties.rs` uses
//! (`engine/core/tests/common/world.rs`); an invariant that breaks after
//! any step is a crash, with the harness's message.
#![no_main]

use std::ops::Range;

use arbitrary::unstructured::Int;
use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use multidriver_core::Config;

#[path = "../../engine/core/tests/common/world.rs"]
mod world;

use world::{
    ADDRS, ADVANCE_MS, BATTERY_PERCENT, FOUND, IFACES, KINDS, LIFECYCLES, Limits, NAMESPACES, Op,
    PEERS, REACHABILITIES, RELAYS, RTT_MS, TTL_MS,
};

/// Most inputs one execution runs; time advances at most
/// `ADVANCE_MS.end` per input, so a run spans at most about 17 minutes of
/// engine time, plus the hour the harness lets every timer run out.
const MAX_OPS: usize = 256;

/// A value in the half-open range `r`, as the proptest's `r` strategy.
fn within<T: Int + From<u8>>(u: &mut Unstructured<'_>, r: Range<T>) -> Result<T> {
    u.int_in_range(r.start..=r.end - T::from(1))
}

/// An index below `len`.
fn index(u: &mut Unstructured<'_>, len: usize) -> Result<usize> {
    u.choose_index(len)
}

/// The default config half the time, as the proptest's
/// `prop_oneof![Just(Config::default()), config()]`, else small limits.
fn config(u: &mut Unstructured<'_>) -> Result<Config> {
    if u.arbitrary()? {
        return Ok(Config::default());
    }
    Ok(Limits {
        peers: within(u, Limits::PEERS)?,
        routes: within(u, Limits::ROUTES)?,
        attempts_per_peer: within(u, Limits::ATTEMPTS_PER_PEER)?,
        attempts_total: within(u, Limits::ATTEMPTS_TOTAL)?,
        connections: within(u, Limits::CONNECTIONS)?,
        low_watermark: within(u, Limits::LOW_WATERMARK)?,
        high_above_low: within(u, Limits::HIGH_ABOVE_LOW)?,
        grace_s: within(u, Limits::GRACE_S)?,
    }
    .config())
}

/// One input, with the proptest's `op()` weights (out of 42).
fn op(u: &mut Unstructured<'_>) -> Result<Op> {
    let peer = |u: &mut Unstructured<'_>| within(u, 0..PEERS);
    let iface = |u: &mut Unstructured<'_>| index(u, IFACES.len());
    let ns = |u: &mut Unstructured<'_>| index(u, NAMESPACES.len());
    // `pick` only chooses among a handful of open dials, connections or
    // queries (modulo their number): one byte is plenty.
    let pick = |u: &mut Unstructured<'_>| u.arbitrary::<u8>().map(usize::from);
    Ok(match u.int_in_range(0u8..=41)? {
        0..=3 => Op::Discover {
            peer: peer(u)?,
            addr: index(u, ADDRS.len())?,
            iface: iface(u)?,
            ttl_ms: within(u, TTL_MS)?,
        },
        4..=5 => Op::Connect { peer: peer(u)? },
        6 => Op::Disconnect { peer: peer(u)? },
        7..=8 => Op::Up {
            iface: iface(u)?,
            validated: u.arbitrary()?,
        },
        9 => Op::Down { iface: iface(u)? },
        10 => Op::Losing { iface: iface(u)? },
        11 => Op::Metered {
            iface: iface(u)?,
            metered: u.arbitrary()?,
        },
        12..=15 => Op::Advance {
            ms: within(u, ADVANCE_MS)?,
        },
        16..=20 => Op::Resolve {
            pick: pick(u)?,
            success: u.arbitrary()?,
        },
        21 => Op::Close { pick: pick(u)? },
        22..=23 => Op::Rtt {
            pick: pick(u)?,
            ms: within(u, RTT_MS)?,
        },
        24 => Op::Register {
            kind: index(u, KINDS.len())?,
        },
        25 => Op::Inbound {
            peer: peer(u)?,
            iface: iface(u)?,
        },
        26 => Op::Hold {
            peer: peer(u)?,
            protect: u.arbitrary()?,
            used: u.arbitrary()?,
        },
        27 => Op::SetProfile {
            performance: u.arbitrary()?,
        },
        28 => Op::Subscribe {
            ns: ns(u)?,
            on: u.arbitrary()?,
        },
        29 => Op::Advertise { ns: ns(u)? },
        30 => Op::StopAdvertising { ns: ns(u)? },
        31 => Op::Lookup { ns: ns(u)? },
        32..=34 => Op::QueryDone {
            pick: pick(u)?,
            success: u.arbitrary()?,
            found: within(u, FOUND)?,
        },
        36 => Op::Reachability {
            which: index(u, REACHABILITIES.len())?,
        },
        37 => Op::AddRelay {
            relay: index(u, RELAYS)?,
        },
        38 => Op::RemoveRelay {
            relay: index(u, RELAYS)?,
        },
        39..=40 => Op::Reserved {
            relay: index(u, RELAYS)?,
            iface: if u.arbitrary()? {
                Some(index(u, IFACES.len())?)
            } else {
                None
            },
            accepted: u.arbitrary()?,
        },
        41 => Op::Punch {
            peer: peer(u)?,
            iface: index(u, IFACES.len())?,
            success: u.arbitrary()?,
        },
        _ => Op::Power {
            lifecycle: index(u, LIFECYCLES.len())?,
            battery: if u.arbitrary()? {
                Some(u.int_in_range(BATTERY_PERCENT)?)
            } else {
                None
            },
            charging: u.arbitrary()?,
        },
    })
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(config) = config(&mut u) else {
        return;
    };
    let mut ops = Vec::new();
    while ops.len() < MAX_OPS && !u.is_empty() {
        match op(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    if let Err(message) = world::check(&ops, &config) {
        panic!("{message}\nops: {ops:?}");
    }
});
