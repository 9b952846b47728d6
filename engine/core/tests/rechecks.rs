//! Scripted recheck scenarios with a fake clock: a better route that
//! failed is tried again, ever less often while it keeps failing.

use std::time::Duration;

use libp2p_identity::PeerId;
use multidriver_core::{Config, ConnectionHandle, SwitchReason};
use multidriver_scoring::Timestamp;

mod common;
use common::*;

/// Answers every dial made since `seen`: the LAN route as `lan_works` says,
/// any other route with success; returns the LAN connections made.
fn answer_dials(h: &mut Harness, seen: &mut usize, lan_works: bool) -> Vec<ConnectionHandle> {
    let mut made = Vec::new();
    loop {
        let dials = h.dials();
        if *seen >= dials.len() {
            return made;
        }
        let (_, c, a, _) = dials[*seen].clone();
        *seen += 1;
        match (a == LAN, lan_works) {
            (true, true) => {
                h.succeed(c);
                made.push(c);
            }
            (true, false) => h.fail(c),
            (false, _) => h.succeed(c),
        }
    }
}

/// Connected over Wi-Fi with a 4G route known; at 1 s the Wi-Fi connection
/// is lost. Returns the harness, the peer and the number of dials so far.
fn wifi_lost_at_one_second() -> (Harness, PeerId, usize) {
    let mut h = Harness::new(Config::default());
    let p = peer(1);
    let wifi = connected_over_wifi(&mut h, p);
    let seen = h.dials().len();
    h.at(ms(1000));
    h.engine.handle_connection_lost(wifi, h.now);
    h.drain();
    (h, p, seen)
}

#[test]
fn a_better_route_that_failed_is_tried_again_and_won_back() {
    // Wi-Fi stalls: the connection is lost and the LAN no longer answers.
    let (mut h, p, mut seen) = wifi_lost_at_one_second();
    for k in 11..=30 {
        h.at(ms(100 * k));
        answer_dials(&mut h, &mut seen, false);
    }
    let on_4g = h.engine.primary(&p).expect("connected");
    assert_eq!(
        h.dials().iter().find(|d| d.1 == on_4g).unwrap().2,
        PUBLIC_QUIC
    );
    let failed_at = Timestamp::from_duration(ms(1000));
    // The Wi-Fi recovers, with no event to say so: the engine tries the LAN
    // route again, one wait after it failed, and moves back.
    let mut back = Vec::new();
    for k in 31..=200 {
        h.at(ms(100 * k));
        back.extend(answer_dials(&mut h, &mut seen, true));
    }
    assert_eq!(back.len(), 1, "one try was enough");
    let tried_at = h.dials().iter().find(|d| d.1 == back[0]).unwrap().0;
    let wait = tried_at.saturating_duration_since(failed_at);
    let first = Config::default().recheck().unwrap();
    assert!(wait >= first && wait < first + ms(1000), "{wait:?}");
    assert_eq!(h.engine.primary(&p), Some(back[0]));
    let (_, _, to, reason) = h.switches().last().cloned().unwrap();
    assert_eq!(to, LAN);
    let SwitchReason::Better { from, to } = reason else {
        panic!("{reason:?}");
    };
    assert!(to.total_ms() < from.total_ms(), "better means cheaper");
}

#[test]
fn a_route_that_keeps_failing_soon_after_a_try_is_tried_ever_less_often() {
    let (mut h, p, mut seen) = wifi_lost_at_one_second();
    // Every LAN connection dies 1 s after it is made. The app keeps using
    // the peer (a quiet one would be left dormant: see `quiet.rs`).
    let mut alive: Vec<(Timestamp, ConnectionHandle)> = Vec::new();
    for k in 11..=3000 {
        h.at(ms(100 * k));
        let now = h.now;
        if k % 100 == 0 {
            h.engine.mark_used(p, now);
            h.drain();
        }
        for c in answer_dials(&mut h, &mut seen, true) {
            alive.push((now, c));
        }
        let (dead, live): (Vec<_>, Vec<_>) = alive
            .into_iter()
            .partition(|(t, _)| now.saturating_duration_since(*t) >= ms(1000));
        alive = live;
        for (_, c) in dead {
            h.engine.handle_connection_lost(c, now);
            h.drain();
        }
    }
    let tries: Vec<Timestamp> = h
        .dials()
        .iter()
        .filter(|d| d.2 == LAN)
        .map(|d| d.0)
        .collect();
    let gaps: Vec<Duration> = tries
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]))
        .collect();
    // 5 s, 10 s, 20 s, 40 s, then every 60 s: not every 6 s.
    assert!(
        tries.len() <= 10,
        "{} tries in 300 s: {gaps:?}",
        tries.len()
    );
    let max = Config::default().max_recheck();
    assert!(gaps.last().is_some_and(|g| *g >= max), "{gaps:?}");
}
