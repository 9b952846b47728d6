//! Scripted NAT scenarios with a fake clock: a relayed route raced beside
//! the direct ones when the peer's reachability is unproven, the move to a
//! hole-punched direct connection, the backoff after a failed punch, and a
//! network change while relayed.

use multidriver_core::{
    CloseReason, Config, Event, NetworkChange, PUNCH_BACKOFF_BASE, PUNCH_BACKOFF_MAX, SwitchReason,
};
use multidriver_scoring::{Medium, Source, Timestamp};

mod common;
use common::*;

/// The peer's address behind its NAT, as it advertised it.
const DIRECT: &str = "/ip4/198.51.100.7/udp/4001/quic-v1";
/// The same peer through its reservation on a relay.
const RELAYED: &str = "/ip4/203.0.113.1/udp/4001/quic-v1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit";

/// Wi-Fi and 4G up; the peer known by its direct and relayed routes over
/// both.
fn nated_peer(h: &mut Harness) -> libp2p_identity::PeerId {
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    let p = peer(1);
    for interface in [WIFI, CELL] {
        h.discover(p, DIRECT, interface, Source::Rendezvous);
        h.discover(p, RELAYED, interface, Source::Rendezvous);
    }
    p
}

/// The peer reached through the relay over Wi-Fi; returns that connection.
fn relayed_over_wifi(
    h: &mut Harness,
    p: libp2p_identity::PeerId,
) -> multidriver_core::ConnectionHandle {
    h.connect(p);
    let relayed = h
        .dials()
        .into_iter()
        .find(|(_, _, a, i)| a == RELAYED && *i == WIFI)
        .expect("the relayed route is dialled")
        .1;
    h.at(ms(300));
    h.succeed(relayed);
    assert_eq!(h.engine.primary(&p), Some(relayed));
    relayed
}

/// Runs the clock to `until` in one-second steps, the relayed connection
/// answering a probe each second in 300 ms (what the adapter's probes
/// report): every sample lets the engine weigh an upgrade.
fn carry_on(
    h: &mut Harness,
    relayed: multidriver_core::ConnectionHandle,
    until: std::time::Duration,
) {
    let mut t = h.now.saturating_duration_since(Timestamp::ZERO);
    while t < until {
        t = (t + ms(1_000)).min(until);
        h.at(t);
        h.engine.handle_rtt_sample(relayed, ms(300), h.now);
        h.drain();
    }
}

/// The dials started at the harness's current time, after the first
/// `before`: (address, interface number).
fn dialled_now(h: &Harness, before: usize) -> Vec<(String, u32)> {
    h.dials()[before..]
        .iter()
        .filter(|(t, ..)| *t == h.now)
        .map(|(_, _, a, i)| (a.clone(), i.0))
        .collect()
}

#[test]
fn an_unproven_peer_is_dialled_direct_and_relayed_at_once() {
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    h.connect(p);
    let at_start: Vec<(String, InterfaceIdDebug)> = h
        .dials()
        .into_iter()
        .filter(|(t, ..)| *t == Timestamp::ZERO)
        .map(|(_, _, a, i)| (a, InterfaceIdDebug(i.0)))
        .collect();
    // The best route (direct, over Wi-Fi) and the best relayed route start
    // together: no stagger in front of the relay.
    assert_eq!(at_start.len(), 2, "{at_start:?}");
    assert_eq!(at_start[0].0, DIRECT);
    assert_eq!(at_start[1].0, RELAYED);
    // The direct dial goes nowhere (the peer's NAT drops it); the relay
    // answers, and the peer is connected through it.
    let relayed = h.dial_to(RELAYED);
    h.at(ms(300));
    h.succeed(relayed);
    assert_eq!(h.engine.primary(&p), Some(relayed));
    assert!(h.events.iter().any(
        |(_, e)| matches!(e, Event::RouteSelected { connection, .. } if *connection == relayed)
    ));
}

#[test]
fn a_lan_route_that_worked_proves_nothing_once_wifi_is_gone() {
    // The peer was reached on the home LAN over Wi-Fi. Wi-Fi goes: over
    // 4G its LAN route cannot be dialled, and its public address may sit
    // behind its NAT, so the relay starts beside the direct attempt at once
    // instead of waiting behind it (or, with every attempt slot taken, for
    // a dial timeout).
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    let p = peer(1);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, DIRECT, CELL, Source::Rendezvous);
    h.discover(p, RELAYED, CELL, Source::Rendezvous);
    h.connect(p);
    let lan = h.dial_to(LAN);
    h.succeed(lan);
    assert_eq!(h.engine.primary(&p), Some(lan));
    let before = h.dials().len();
    h.change(NetworkChange::Down { interface: WIFI });
    let mut now: Vec<String> = dialled_now(&h, before)
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    now.sort();
    let mut want = vec![DIRECT.to_owned(), RELAYED.to_owned()];
    want.sort();
    assert_eq!(now, want, "direct and relayed over 4G at once");
}

#[test]
fn after_a_lost_connection_the_relay_starts_at_once_even_beside_a_proven_route() {
    // The direct route worked, then its connection died (the peer may have
    // moved behind another NAT): the re-race starts the relay beside the
    // proven direct route, not after a dial timeout's worth of stagger.
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    h.connect(p);
    let direct = h.dial_to(DIRECT);
    h.succeed(direct);
    assert_eq!(h.engine.primary(&p), Some(direct));
    let before = h.dials().len();
    h.engine.handle_connection_lost(direct, h.now);
    h.drain();
    let now: Vec<String> = dialled_now(&h, before)
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert!(now.contains(&RELAYED.to_owned()), "{now:?}");
    assert!(now.contains(&DIRECT.to_owned()), "{now:?}");
}

#[test]
fn relays_ahead_go_through_different_relays() {
    // Two relayed routes through one relay and one through another: the
    // race starts one through each relay at once, never both through the
    // same one (a relay that is down would take both).
    const RELAYED_B: &str = "/ip4/203.0.113.2/udp/4001/quic-v1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SB/p2p-circuit";
    const RELAYED_A_TCP: &str = "/ip4/203.0.113.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit";
    let mut h = Harness::new(Config::default());
    h.up(CELL, LTE);
    let p = peer(1);
    for a in [DIRECT, RELAYED, RELAYED_A_TCP, RELAYED_B] {
        h.discover(p, a, CELL, Source::Rendezvous);
    }
    h.connect(p);
    let now: Vec<String> = dialled_now(&h, 0).into_iter().map(|(a, _)| a).collect();
    let relays: Vec<&String> = now.iter().filter(|a| a.contains("p2p-circuit")).collect();
    assert_eq!(relays.len(), multidriver_core::RELAYS_AHEAD, "{now:?}");
    assert!(now.contains(&RELAYED_B.to_owned()), "{now:?}");
    assert!(
        !(now.contains(&RELAYED.to_owned()) && now.contains(&RELAYED_A_TCP.to_owned())),
        "both through relay A: {now:?}"
    );

    // Relay A's QUIC and TCP addresses are one relay: with no other relay,
    // one of them goes ahead, not both.
    let mut h = Harness::new(Config::default());
    h.up(CELL, LTE);
    let p = peer(2);
    for a in [DIRECT, RELAYED, RELAYED_A_TCP] {
        h.discover(p, a, CELL, Source::Rendezvous);
    }
    h.connect(p);
    let now: Vec<String> = dialled_now(&h, 0).into_iter().map(|(a, _)| a).collect();
    let relays = now.iter().filter(|a| a.contains("p2p-circuit")).count();
    assert_eq!(relays, 1, "one relay, one attempt ahead: {now:?}");
}

#[test]
fn a_peer_whose_direct_route_worked_before_is_raced_in_rank_order() {
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    h.connect(p);
    let direct = h.dial_to(DIRECT);
    h.succeed(direct);
    h.disconnect_all(p);
    let before = h.dials().len();
    h.connect(p);
    let now: Vec<String> = dialled_now(&h, before)
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(now, [DIRECT], "the relay waits behind the stagger");
}

#[test]
fn a_hole_punched_connection_replaces_the_circuit_make_before_break() {
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    let relayed = relayed_over_wifi(&mut h, p);
    h.at(ms(2_000));
    let punched = h
        .engine
        .handle_hole_punched(p, addr(DIRECT), WIFI, h.now)
        .unwrap();
    h.drain();
    assert_eq!(h.engine.primary(&p), Some(punched));
    let switches = h.switches();
    let (_, from, to, reason) = switches.last().expect("a switch");
    assert_eq!(
        (from.as_str(), to.as_str(), *reason),
        (RELAYED, DIRECT, SwitchReason::HolePunched)
    );
    // The circuit stays open for the grace period, then closes.
    assert!(h.closes().iter().all(|(_, c, _)| *c != relayed));
    let grace = Config::default().close_grace();
    h.at(ms(2_000) + grace);
    assert!(
        h.closes()
            .iter()
            .any(|(_, c, r)| *c == relayed && *r == CloseReason::Replaced),
        "{:?}",
        h.closes()
    );
}

#[test]
fn a_punch_beside_a_direct_primary_is_a_duplicate() {
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    h.connect(p);
    let direct = h.dial_to(DIRECT);
    h.succeed(direct);
    let punched = h
        .engine
        .handle_hole_punched(p, addr(DIRECT), CELL, h.now)
        .unwrap();
    h.drain();
    assert_eq!(h.engine.primary(&p), Some(direct));
    assert!(
        h.closes()
            .iter()
            .any(|(_, c, r)| *c == punched && *r == CloseReason::Duplicate)
    );
}

#[test]
fn a_failed_punch_holds_direct_routes_back_with_a_doubling_wait() {
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    let relayed = relayed_over_wifi(&mut h, p);
    let direct_dials = |h: &Harness| {
        h.dials()
            .iter()
            .filter(|(_, _, a, i)| a == DIRECT && *i == WIFI)
            .count()
    };
    // Both punches over Wi-Fi fail; meanwhile the engine may have raced the
    // direct route over Wi-Fi once (its first dial, or an upgrade).
    h.engine.handle_hole_punch_failed(p, WIFI, h.now);
    let first_until = h
        .engine
        .hole_punch_backoff(&p, WIFI, h.now)
        .expect("backing off");
    assert_eq!(first_until, h.now + PUNCH_BACKOFF_BASE);
    let dialled = direct_dials(&h);
    // Nothing dials into the NAT that refused while the wait lasts, however
    // long the engine runs its rechecks and upgrades.
    let t = h.now.saturating_duration_since(Timestamp::ZERO);
    carry_on(&mut h, relayed, t + PUNCH_BACKOFF_BASE - ms(1));
    assert_eq!(direct_dials(&h), dialled, "{:#?}", h.dials());
    // A second failure in a row doubles the wait.
    h.engine.handle_hole_punch_failed(p, WIFI, h.now);
    let second_until = h.engine.hole_punch_backoff(&p, WIFI, h.now).unwrap();
    assert_eq!(second_until, h.now + PUNCH_BACKOFF_BASE * 2);
    // The wait never grows past its cap.
    for _ in 0..20 {
        h.engine.handle_hole_punch_failed(p, WIFI, h.now);
    }
    assert_eq!(
        h.engine.hole_punch_backoff(&p, WIFI, h.now),
        Some(h.now + PUNCH_BACKOFF_MAX)
    );
    // Another network on the same interface: another NAT, forgotten.
    h.up(WIFI, Medium::Wifi);
    assert_eq!(h.engine.hole_punch_backoff(&p, WIFI, h.now), None);
}

#[test]
fn held_back_routes_are_tried_again_when_the_wait_ends() {
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    let relayed = relayed_over_wifi(&mut h, p);
    h.engine.handle_hole_punch_failed(p, WIFI, h.now);
    h.engine.handle_hole_punch_failed(p, CELL, h.now);
    let start = h.now.saturating_duration_since(Timestamp::ZERO);
    let before = h.dials().len();
    carry_on(&mut h, relayed, start + PUNCH_BACKOFF_BASE - ms(1));
    assert!(
        h.dials()[before..].iter().all(|(_, _, a, _)| a != DIRECT),
        "held back: {:#?}",
        &h.dials()[before..]
    );
    // When the wait is over, the unproven direct route is still no upgrade
    // target while the peer is relayed (a punch on the relayed connection
    // is the way through its NAT)...
    carry_on(&mut h, relayed, start + PUNCH_BACKOFF_BASE + ms(10_000));
    assert!(
        h.dials()[before..].iter().all(|(_, _, a, _)| a != DIRECT),
        "no upgrade dial into the NAT: {:#?}",
        &h.dials()[before..]
    );
    // ...but the next race (of a peer the app is using) dials it again.
    let before = h.dials().len();
    h.engine.mark_used(p, h.now);
    h.engine.handle_connection_lost(relayed, h.now);
    h.drain();
    assert!(
        h.dials()[before..].iter().any(|(_, _, a, _)| a == DIRECT),
        "tried again: {:#?}",
        &h.dials()[before..]
    );
}

#[test]
fn a_relayed_peer_is_not_upgraded_to_a_direct_route_that_never_worked() {
    // The relayed connection carries on, its RTT samples make the direct
    // route look better and better, but that route never connected: it is
    // most likely behind the peer's NAT, so no upgrade dial goes there
    // (DCUtR's punch on the relayed connection is the way). A direct route
    // that worked before is upgraded to as usual.
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    let relayed = relayed_over_wifi(&mut h, p);
    let before = h.dials().len();
    carry_on(&mut h, relayed, ms(120_000));
    assert!(
        h.dials()[before..].iter().all(|(_, _, a, _)| a != DIRECT),
        "{:#?}",
        &h.dials()[before..]
    );
}

#[test]
fn a_lost_relayed_connection_penalises_no_route() {
    // Relays cut circuits at their limits by design: the relayed route's
    // cost is the same after its connection ended as before, while a lost
    // direct connection's route takes a failure penalty.
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    let relayed = relayed_over_wifi(&mut h, p);
    let cost = |h: &Harness, addr: &str| {
        h.engine
            .ranked_routes(&p, h.now)
            .into_iter()
            .find(|(a, i, _)| a.to_string() == addr && *i == WIFI)
            .map(|(_, _, c)| c)
            .unwrap()
    };
    let before = cost(&h, RELAYED);
    h.engine.handle_connection_lost(relayed, h.now);
    h.drain();
    assert_eq!(cost(&h, RELAYED), before);
}

#[test]
fn losing_the_relayed_path_re_races_over_the_other_interface() {
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    let relayed = relayed_over_wifi(&mut h, p);
    h.at(ms(5_000));
    let before = h.dials().len();
    h.change(NetworkChange::Down { interface: WIFI });
    // The circuit over Wi-Fi is gone; the peer is raced at once over 4G,
    // relay beside direct (the direct route never connected).
    let now = dialled_now(&h, before);
    assert!(now.contains(&(RELAYED.to_owned(), CELL.0)), "{now:?}");
    assert!(now.contains(&(DIRECT.to_owned(), CELL.0)), "{now:?}");
    let over_cell = h.dials()[before..]
        .iter()
        .find(|(_, _, a, i)| a == RELAYED && *i == CELL)
        .unwrap()
        .1;
    h.at(ms(5_400));
    h.succeed(over_cell);
    assert_ne!(h.engine.primary(&p), Some(relayed));
    assert_eq!(h.engine.primary(&p), Some(over_cell));
    assert!(
        h.switches()
            .iter()
            .any(|(_, _, to, r)| to == RELAYED && *r == SwitchReason::InterfaceLost),
        "{:?}",
        h.switches()
    );
}

/// An interface number that prints in assertion messages.
#[derive(Debug, PartialEq)]
struct InterfaceIdDebug(u32);

#[test]
fn a_punch_that_came_in_through_the_listener_is_promoted_too() {
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    let relayed = relayed_over_wifi(&mut h, p);
    // The punched connection reached us as an inbound one first.
    let inbound = h
        .engine
        .handle_inbound(p, addr(DIRECT), WIFI, h.now)
        .unwrap();
    h.drain();
    assert_eq!(
        h.engine.primary(&p),
        Some(relayed),
        "an inbound connection alone moves nothing"
    );
    h.engine.handle_hole_punched_inbound(inbound, h.now);
    h.drain();
    assert_eq!(h.engine.primary(&p), Some(inbound));
    assert_eq!(
        h.switches().last().map(|s| s.3),
        Some(SwitchReason::HolePunched)
    );
}

#[test]
fn a_relay_started_early_leaves_the_direct_schedule_as_it_was() {
    // The same direct routes, with and without relayed ones beside them:
    // the second direct attempt starts at the same time.
    let second_direct = |with_relay: bool| {
        let mut h = Harness::new(Config::default());
        h.up(WIFI, Medium::Wifi);
        h.up(CELL, LTE);
        let p = peer(1);
        for interface in [WIFI, CELL] {
            h.discover(p, DIRECT, interface, Source::Rendezvous);
            if with_relay {
                h.discover(p, RELAYED, interface, Source::Rendezvous);
            }
        }
        h.connect(p);
        h.at(ms(5_000));
        h.dials()
            .into_iter()
            .filter(|(_, _, a, _)| a == DIRECT)
            .nth(1)
            .map(|(t, ..)| t)
            .expect("a second direct attempt")
    };
    assert_eq!(second_direct(true), second_direct(false));
}

#[test]
fn a_punched_route_is_not_a_plain_dial_that_worked() {
    let mut h = Harness::new(Config::default());
    let p = nated_peer(&mut h);
    let _relayed = relayed_over_wifi(&mut h, p);
    h.engine
        .handle_hole_punched(p, addr(DIRECT), WIFI, h.now)
        .unwrap();
    h.drain();
    h.disconnect_all(p);
    // Reconnecting later, the relay still starts beside the direct dial:
    // only a punch ever reached the direct address.
    let before = h.dials().len();
    h.connect(p);
    let now: Vec<String> = dialled_now(&h, before)
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert!(now.contains(&RELAYED.to_owned()), "{now:?}");
}
