//! Reachability and relay reservations with a fake clock: a node not known
//! to be public holds a reservation on one of its relays, a failed one backs
//! off and the next relay is tried, a public node releases it, and a
//! network change makes reachability unknown and renews a reservation held
//! over the interface that went away.

use multidriver_core::{
    Command, Config, Engine, Error, Event, NetworkChange, Reachability, ReservationState,
};
use multidriver_scoring::Medium;

mod common;
use common::*;

const RELAY_A: &str = "/ip4/203.0.113.1/udp/4001/quic-v1";
const RELAY_B: &str = "/ip4/203.0.113.2/udp/4001/quic-v1";

/// Reserve and Unreserve commands since `from`, as (relay, reserve?).
fn reservation_commands(h: &Harness, from: usize) -> Vec<(libp2p_identity::PeerId, bool)> {
    h.commands[from..]
        .iter()
        .filter_map(|(_, c)| match c {
            Command::Reserve { relay, .. } => Some((*relay, true)),
            Command::Unreserve { relay } => Some((*relay, false)),
            _ => None,
        })
        .collect()
}

fn with_relays() -> (Harness, libp2p_identity::PeerId, libp2p_identity::PeerId) {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let (a, b) = (peer(101), peer(102));
    h.engine.add_relay(a, addr(RELAY_A), h.now).unwrap();
    h.engine.add_relay(b, addr(RELAY_B), h.now).unwrap();
    h.drain();
    (h, a, b)
}

#[test]
fn an_unknown_node_reserves_on_its_first_relay_only() {
    let (h, a, b) = with_relays();
    assert_eq!(h.engine.reachability(), Reachability::Unknown);
    assert_eq!(reservation_commands(&h, 0), vec![(a, true)]);
    let Command::Reserve { addr: at, .. } = &h
        .commands
        .iter()
        .find(|(_, c)| matches!(c, Command::Reserve { .. }))
        .unwrap()
        .1
    else {
        unreachable!()
    };
    assert_eq!(*at, addr(RELAY_A));
    let states: Vec<_> = h.engine.relays().map(|(p, _, s)| (p, s)).collect();
    assert_eq!(
        states,
        vec![
            (a, ReservationState::Requested),
            (b, ReservationState::None)
        ]
    );
}

#[test]
fn no_reservation_without_an_interface_or_when_configured_off() {
    let mut h = Harness::new(Config::default());
    h.engine.add_relay(peer(101), addr(RELAY_A), h.now).unwrap();
    h.drain();
    assert!(reservation_commands(&h, 0).is_empty(), "no interface is up");
    h.up(WIFI, Medium::Wifi);
    assert_eq!(reservation_commands(&h, 0), vec![(peer(101), true)]);

    let mut off = Harness::new(Config::default().with_relays(8, 0));
    off.up(WIFI, Medium::Wifi);
    off.engine
        .add_relay(peer(101), addr(RELAY_A), off.now)
        .unwrap();
    off.drain();
    assert!(reservation_commands(&off, 0).is_empty());
}

#[test]
fn a_failed_reservation_backs_off_and_the_next_relay_is_tried() {
    let (mut h, a, b) = with_relays();
    let mark = h.commands.len();
    h.engine.handle_reservation_failed(&a, h.now);
    h.drain();
    assert_eq!(reservation_commands(&h, mark), vec![(b, true)]);
    // B fails too: both back off; A is asked again when its backoff (the
    // config's base, 1 s) ends, B after it.
    let mark = h.commands.len();
    h.engine.handle_reservation_failed(&b, h.now);
    h.drain();
    assert!(reservation_commands(&h, mark).is_empty());
    h.at(ms(999));
    assert!(
        reservation_commands(&h, mark).is_empty(),
        "still backing off"
    );
    h.at(ms(1_000));
    assert_eq!(reservation_commands(&h, mark), vec![(a, true)]);
    // A fails again: 2 s this time; B's backoff ended meanwhile, so B goes.
    let mark = h.commands.len();
    h.engine.handle_reservation_failed(&a, h.now);
    h.drain();
    assert_eq!(reservation_commands(&h, mark), vec![(b, true)]);
    // Accepted: held, and nothing more is asked for.
    let mark = h.commands.len();
    h.engine.handle_reservation_accepted(&b, Some(WIFI), h.now);
    h.at(ms(60_000));
    assert!(reservation_commands(&h, mark).is_empty());
    let states: Vec<_> = h.engine.relays().map(|(_, _, s)| s).collect();
    assert_eq!(
        states,
        vec![
            ReservationState::None,
            ReservationState::Reserved(Some(WIFI))
        ]
    );
}

#[test]
fn backoff_doubles_up_to_the_configured_maximum() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let a = peer(101);
    h.engine.add_relay(a, addr(RELAY_A), h.now).unwrap();
    h.drain();
    let mut waits = Vec::new();
    for _ in 0..12 {
        let failed_at = h.now;
        h.engine.handle_reservation_failed(&a, h.now);
        h.drain();
        let mark = h.commands.len();
        // Runs the timers until the relay is asked again (bounded).
        let mut t = h.now;
        while reservation_commands(&h, mark).is_empty() {
            t = h.engine.poll_timeout().expect("a retry is scheduled");
            h.run_until(t);
        }
        waits.push(t.saturating_duration_since(failed_at).as_secs());
    }
    // backoff_base 1 s doubling, capped at backoff_max 300 s.
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
}

#[test]
fn a_public_node_releases_its_reservation_and_a_private_one_takes_it_up() {
    let (mut h, a, _) = with_relays();
    h.engine.handle_reservation_accepted(&a, Some(WIFI), h.now);
    let mark = h.commands.len();
    h.engine.handle_reachability(Reachability::Public, h.now);
    h.drain();
    assert_eq!(reservation_commands(&h, mark), vec![(a, false)]);
    assert!(h.events.iter().any(|(_, e)| *e
        == Event::ReachabilityChanged {
            reachability: Reachability::Public
        }));
    // Reported again: nothing new.
    let (marks, marke) = (h.commands.len(), h.events.len());
    h.engine.handle_reachability(Reachability::Public, h.now);
    h.drain();
    assert_eq!(h.commands.len(), marks);
    assert_eq!(h.events.len(), marke);

    let mark = h.commands.len();
    h.engine.handle_reachability(Reachability::Private, h.now);
    h.drain();
    assert_eq!(reservation_commands(&h, mark), vec![(a, true)]);
    assert_eq!(h.engine.reachability(), Reachability::Private);
}

#[test]
fn an_answer_after_becoming_public_releases_at_once() {
    let (mut h, a, _) = with_relays();
    h.engine.handle_reachability(Reachability::Public, h.now);
    h.drain();
    let mark = h.commands.len();
    h.engine.handle_reservation_accepted(&a, Some(WIFI), h.now);
    h.drain();
    assert_eq!(reservation_commands(&h, mark), vec![(a, false)]);
    assert_eq!(h.engine.relays().next().unwrap().2, ReservationState::None);
}

#[test]
fn a_network_change_makes_reachability_unknown_and_renews_over_the_new_interface() {
    let (mut h, a, _) = with_relays();
    h.up(CELL, LTE);
    h.engine.handle_reservation_accepted(&a, Some(WIFI), h.now);
    h.engine.handle_reachability(Reachability::Private, h.now);
    h.drain();
    // Wi-Fi goes: the reservation held over it is asked for again (over 4G
    // now), and reachability is unknown until re-checked.
    let (mark, marke) = (h.commands.len(), h.events.len());
    h.change(NetworkChange::Down { interface: WIFI });
    assert_eq!(reservation_commands(&h, mark), vec![(a, true)]);
    assert_eq!(h.engine.reachability(), Reachability::Unknown);
    assert!(h.events[marke..].iter().any(|(_, e)| *e
        == Event::ReachabilityChanged {
            reachability: Reachability::Unknown
        }));
    h.engine.handle_reservation_accepted(&a, Some(CELL), h.now);
    // Wi-Fi comes back: unknown already, the 4G reservation holds.
    let mark = h.commands.len();
    h.up(WIFI, Medium::Wifi);
    assert!(reservation_commands(&h, mark).is_empty());
    // A public node that moves is unknown again, and reserves.
    h.engine.handle_reachability(Reachability::Public, h.now);
    h.drain();
    let mark = h.commands.len();
    h.change(NetworkChange::Down { interface: WIFI });
    assert_eq!(reservation_commands(&h, mark), vec![(a, true)]);
}

#[test]
fn relays_are_bounded_and_removal_moves_the_reservation() {
    let mut h = Harness::new(Config::default().with_relays(2, 1));
    h.up(WIFI, Medium::Wifi);
    let (a, b) = (peer(101), peer(102));
    h.engine.add_relay(a, addr(RELAY_A), h.now).unwrap();
    h.engine.add_relay(b, addr(RELAY_B), h.now).unwrap();
    // Known again: its address is updated, no new entry.
    h.engine.add_relay(a, addr(RELAY_B), h.now).unwrap();
    assert!(matches!(
        h.engine.add_relay(peer(103), addr(RELAY_A), h.now),
        Err(Error::TableFull {
            table: "relays",
            limit: 2
        })
    ));
    h.engine.handle_reservation_accepted(&a, None, h.now);
    h.drain();
    let mark = h.commands.len();
    h.engine.remove_relay(&a, h.now);
    h.drain();
    assert_eq!(reservation_commands(&h, mark), vec![(a, false), (b, true)]);
    // Unknown relays' answers are ignored.
    h.engine.handle_reservation_failed(&peer(103), h.now);
    h.engine
        .handle_reservation_accepted(&peer(103), None, h.now);
    assert_eq!(h.engine.relays().count(), 1);
}

#[test]
fn max_relays_zero_is_refused() {
    let e = Engine::new(Config::default().with_relays(0, 0)).unwrap_err();
    assert!(e.to_string().contains("max_relays"), "{e}");
}

#[test]
fn a_network_change_forgets_every_relay_backoff_and_renews_nothing_without_an_interface() {
    let (mut h, a, b) = with_relays();
    // Both relays failed a few times: long waits.
    for _ in 0..6 {
        h.engine.handle_reservation_failed(&a, h.now);
        h.engine.handle_reservation_failed(&b, h.now);
    }
    h.drain();
    let mark = h.commands.len();
    // Another network: asked again at once.
    h.up(CELL, LTE);
    assert_eq!(reservation_commands(&h, mark), vec![(a, true)]);
    h.engine.handle_reservation_accepted(&a, Some(CELL), h.now);
    // Every interface goes: the reservation over 4G is not asked for over
    // nothing; it is when an interface is back.
    h.change(NetworkChange::Down { interface: WIFI });
    let mark = h.commands.len();
    h.change(NetworkChange::Down { interface: CELL });
    assert_eq!(reservation_commands(&h, mark), vec![(a, false)]);
    let mark = h.commands.len();
    h.up(WIFI, Medium::Wifi);
    assert_eq!(reservation_commands(&h, mark), vec![(a, true)]);
}

/// Found by the property test's relay inputs: an acceptance nobody asked
/// for (one that arrives after the relay was released) made the engine
/// hold it, and after a network change it renewed two reservations where
/// one is wanted. It is released again instead.
#[test]
fn an_acceptance_nobody_asked_for_is_released_not_held() {
    let (mut h, a, b) = with_relays();
    let from = h.commands.len();
    h.engine.handle_reservation_accepted(&b, None, h.now);
    h.drain();
    assert_eq!(reservation_commands(&h, from), vec![(b, false)]);
    let states: Vec<_> = h.engine.relays().map(|(p, _, s)| (p, s)).collect();
    assert_eq!(
        states,
        vec![
            (a, ReservationState::Requested),
            (b, ReservationState::None)
        ]
    );
    // A network change renews only the one wanted.
    let from = h.commands.len();
    h.up(CELL, LTE);
    h.change(NetworkChange::Down { interface: WIFI });
    let reserves: Vec<_> = reservation_commands(&h, from)
        .into_iter()
        .filter(|(_, reserve)| *reserve)
        .collect();
    assert!(reserves.iter().all(|(r, _)| *r == a), "{reserves:?}");
}
