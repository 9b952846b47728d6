//! Scripted scenarios for the engine core with a fake clock: what it dials,
//! when, and what it tells the app.

use std::time::Duration;

use multidriver_core::{
    CloseReason, Command, Config, Discovered, Engine, Event, InterfaceId, NetworkChange,
    SwitchReason,
};
use multidriver_scoring::{Medium, NetworkConditions, Profile, Source, Timestamp};

mod common;
use common::*;

#[test]
fn mdns_route_wins_and_the_rendezvous_route_is_never_dialled() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.connect(p);
    // The LAN route leads; the rendezvous route waits for the stagger.
    assert_eq!(h.dials().len(), 1);
    assert_eq!(h.dials()[0].2, LAN);
    // The LAN dial (5 ms RTT) completes in 10 ms, well before the stagger.
    h.at(ms(10));
    h.succeed(h.dial_to(LAN));
    h.at(ms(60_000));
    assert_eq!(
        h.dials().len(),
        1,
        "the slower route was dialled: {:#?}",
        h.dials()
    );
    assert_eq!(h.engine.primary(&p), Some(h.dial_to(LAN)));
    assert!(
        h.events.iter().any(
            |(_, e)| matches!(e, Event::RouteSelected { addr, .. } if addr.to_string() == LAN)
        )
    );
    assert!(matches!(
        h.events[0].1,
        Event::PeerDiscovered {
            source: Source::Rendezvous,
            ..
        }
    ));
}

#[test]
fn the_runner_up_starts_after_the_stagger_and_loses_to_the_leader() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    h.connect(p);
    // Nothing before the stagger (the LAN route's expected handshake,
    // clamped to Happy Eyeballs' 100 ms minimum).
    h.at(ms(99));
    assert_eq!(h.dials().len(), 1);
    h.at(ms(100));
    assert_eq!(h.dials().len(), 2);
    assert_eq!(
        h.dials()[1],
        (
            Timestamp::from_millis(100),
            h.dial_to(PUBLIC_QUIC),
            PUBLIC_QUIC.into(),
            WIFI
        )
    );
    // The leader wins after all; the runner-up is cancelled.
    h.at(ms(150));
    h.succeed(h.dial_to(LAN));
    assert_eq!(h.cancels(), vec![h.dial_to(PUBLIC_QUIC)]);
    assert_eq!(h.engine.attempts_in_flight(), 0);
}

#[test]
fn a_failure_fast_forwards_to_the_next_route() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    h.connect(p);
    h.at(ms(30));
    h.fail(h.dial_to(LAN));
    // Dialled at 30 ms, not at the 100 ms slot.
    assert_eq!(h.dials().last().unwrap().0, Timestamp::from_millis(30));
    assert_eq!(h.dials().last().unwrap().2, PUBLIC_QUIC);
}

#[test]
fn a_route_discovered_mid_race_is_sorted_into_the_plan() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    let p = peer(1);
    h.discover(p, PUBLIC_TCP, CELL, Source::Dht);
    h.discover(p, "/ip4/198.51.100.9/tcp/4001", CELL, Source::Dht);
    h.connect(p);
    assert_eq!(h.dials().len(), 1);
    // mDNS answers while the first cellular dial is in flight: the LAN route
    // goes next, ahead of the second cellular route.
    h.at(ms(20));
    h.discover(p, LAN, WIFI, Source::Mdns);
    let next = h.engine.poll_timeout().unwrap();
    h.run_until(next);
    assert_eq!(h.dials()[1].2, LAN);
}

#[test]
fn every_route_failing_makes_the_peer_unreachable() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    h.connect(p);
    h.fail(h.dial_to(LAN));
    h.fail(h.dial_to(PUBLIC_QUIC));
    assert!(
        matches!(
            h.events.last().unwrap().1,
            Event::PeerUnreachable { tried: 2, .. }
        ),
        "{:#?}",
        h.events
    );
    // A new route later starts a new race.
    h.discover(p, "/ip4/192.168.1.21/udp/4001/quic-v1", WIFI, Source::Mdns);
    assert_eq!(h.dials().len(), 3);
}

#[test]
fn an_unanswered_dial_times_out_and_the_race_goes_on() {
    let mut h = Harness::new(Config::default().with_dial_timeout(Duration::from_secs(5)));
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.connect(p);
    h.at(ms(4_999));
    assert!(h.cancels().is_empty());
    h.at(ms(5_000));
    assert_eq!(h.cancels(), vec![h.dial_to(LAN)]);
    assert!(matches!(
        h.events.last().unwrap().1,
        Event::PeerUnreachable { .. }
    ));
    // The late success of the cancelled dial closes the stray connection.
    h.succeed(h.dial_to(LAN));
    assert!(matches!(
        h.commands.last().unwrap().1,
        Command::CloseConnection { .. }
    ));
    assert_eq!(h.engine.primary(&p), None);
}

#[test]
fn wifi_lost_fails_over_to_4g_at_once_then_returns_without_a_gap() {
    let mut h = Harness::new(Config::default());
    let p = peer(1);
    let wifi = connected_over_wifi(&mut h, p);

    // t = 10 s: Wi-Fi goes down.
    h.at(ms(10_000));
    h.change(NetworkChange::Down { interface: WIFI });
    assert!(h.closes().contains(&(
        Timestamp::from_millis(10_000),
        wifi,
        CloseReason::InterfaceDown
    )));
    let (t, cell, to, interface) = h.dials().last().unwrap().clone();
    assert_eq!(
        (t, to.as_str(), interface),
        (Timestamp::from_millis(10_000), PUBLIC_QUIC, CELL)
    );
    h.at(ms(10_150));
    h.succeed(cell);
    assert_eq!(h.engine.primary(&p), Some(cell));
    assert_eq!(
        h.switches(),
        vec![(
            Timestamp::from_millis(10_150),
            LAN.into(),
            PUBLIC_QUIC.into(),
            SwitchReason::InterfaceLost
        )]
    );
    h.engine.handle_rtt_sample(cell, ms(120), h.now);
    h.drain();

    // t = 30 s: Wi-Fi is back. The LAN route beats 4G by far, but only
    // after the dwell time does the engine dial it; 4G carries on meanwhile.
    h.at(ms(30_000));
    h.up(WIFI, Medium::Wifi);
    let dials_before = h.dials().len();
    let dwell = Profile::balanced().switching.dwell();
    h.at(Duration::from_millis(30_000) + dwell - ms(1));
    assert_eq!(
        h.dials().len(),
        dials_before,
        "switched before the dwell time"
    );
    assert_eq!(h.engine.primary(&p), Some(cell));
    h.at(Duration::from_millis(30_000) + dwell);
    let back = h.dial_to(LAN);
    assert!(back != wifi);
    assert_eq!(
        h.engine.primary(&p),
        Some(cell),
        "make before break: 4G stays until Wi-Fi is up"
    );
    h.at(Duration::from_millis(30_000) + dwell + ms(10));
    h.succeed(back);
    assert_eq!(h.engine.primary(&p), Some(back));
    let (_, from, to, reason) = h.switches().last().unwrap().clone();
    assert_eq!((from.as_str(), to.as_str()), (PUBLIC_QUIC, LAN));
    assert!(matches!(reason, SwitchReason::Better { .. }));
    // The 4G connection closes after the grace period, not before.
    let switched = h.now;
    let grace = Config::default().close_grace();
    h.run_until(switched + (grace - ms(1)));
    assert!(!h.closes().iter().any(|(_, c, _)| *c == cell));
    h.run_until(switched + grace);
    assert!(
        h.closes()
            .contains(&(switched + grace, cell, CloseReason::Replaced))
    );
}

#[test]
fn a_losing_hint_moves_the_peer_before_the_interface_dies() {
    let mut h = Harness::new(Config::default());
    let p = peer(1);
    let wifi = connected_over_wifi(&mut h, p);
    h.at(ms(5_000));
    h.change(NetworkChange::Losing { interface: WIFI });
    let cell = h.dial_to(PUBLIC_QUIC);
    assert_eq!(
        h.engine.primary(&p),
        Some(wifi),
        "Wi-Fi carries on while 4G connects"
    );
    assert!(h.closes().is_empty());
    h.at(ms(5_120));
    h.succeed(cell);
    assert_eq!(h.engine.primary(&p), Some(cell));
    assert_eq!(
        h.switches().last().unwrap().3,
        SwitchReason::InterfaceLosing
    );
    h.at(ms(5_120) + Config::default().close_grace());
    assert!(h.closes().contains(&(h.now, wifi, CloseReason::Replaced)));
}

#[test]
fn jittering_rtt_below_the_margins_never_switches() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    let a = "/ip4/192.168.1.20/udp/4001/quic-v1";
    let b = "/ip4/192.168.1.21/udp/4001/quic-v1";
    h.discover(p, a, WIFI, Source::Mdns);
    h.discover(p, b, WIFI, Source::Mdns);
    h.connect(p);
    let c = h.dial_to(a);
    h.succeed(c);
    // The connected route's RTT wobbles around the other route's prior.
    for i in 0..600u64 {
        h.at(ms(10 + i * 500));
        let rtt = if i % 2 == 0 { 19 } else { 23 };
        h.engine.handle_rtt_sample(c, ms(rtt), h.now);
        h.drain();
    }
    assert_eq!(h.dials().len(), 1, "{:#?}", h.dials());
    assert!(h.switches().is_empty());
}

#[test]
fn a_metered_change_re_ranks() {
    // Battery-saver: free Wi-Fi beats costly 4G by far.
    let mut h = Harness::new(Config::default().with_profile(Profile::battery_saver()));
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    let p = peer(1);
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    h.discover(
        p,
        "/ip4/198.51.100.9/udp/4001/quic-v1",
        CELL,
        Source::Rendezvous,
    );
    h.connect(p);
    assert_eq!(h.dials().len(), 1);
    let wifi = h.dial_to(PUBLIC_QUIC);
    h.at(ms(50));
    h.succeed(wifi);
    h.at(ms(60_000));
    assert_eq!(h.dials().len(), 1);
    // The Wi-Fi turns out to be a metered hotspot and the cellular plan is
    // unmetered: the ranking flips, and after the dwell time the peer moves.
    h.change(NetworkChange::Changed {
        interface: WIFI,
        conditions: NetworkConditions {
            metered: true,
            expensive: true,
            constrained: false,
        },
        validated: true,
    });
    h.change(NetworkChange::Changed {
        interface: CELL,
        conditions: NetworkConditions::default(),
        validated: true,
    });
    assert_eq!(h.dials().len(), 1, "hysteresis first");
    h.at(ms(60_000) + Profile::battery_saver().switching.dwell());
    assert_eq!(h.dials().last().unwrap().3, CELL);
}

#[test]
fn an_unvalidated_interface_dials_only_lan_routes() {
    let mut h = Harness::new(Config::default());
    h.engine
        .handle_network_change(
            NetworkChange::Up {
                interface: WIFI,
                medium: Medium::Wifi,
                conditions: NetworkConditions::default(),
                validated: false,
            },
            h.now,
        )
        .unwrap();
    let p = peer(1);
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    h.connect(p);
    assert!(h.dials().is_empty());
    h.discover(p, LAN, WIFI, Source::Mdns);
    assert_eq!(h.dials().len(), 1);
    assert_eq!(h.dials()[0].2, LAN);
}

#[test]
fn warm_backup_takes_over_without_a_dial() {
    let mut h = Harness::new(Config::default().with_profile(Profile::performance()));
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    h.connect(p);
    h.at(ms(100));
    assert_eq!(h.dials().len(), 2);
    h.succeed(h.dial_to(LAN));
    assert!(
        h.cancels().is_empty(),
        "performance keeps the runner-up dialling"
    );
    h.at(ms(180));
    let backup = h.dial_to(PUBLIC_QUIC);
    h.succeed(backup);
    // The primary dies: the backup is promoted at once, no new dial.
    let dials = h.dials().len();
    h.engine.handle_connection_closed(h.dial_to(LAN), h.now);
    h.drain();
    assert_eq!(h.engine.primary(&p), Some(backup));
    assert_eq!(h.dials().len(), dials);
    assert_eq!(
        h.switches().last().unwrap().3,
        SwitchReason::ConnectionClosed
    );
}

#[test]
fn connection_closed_by_the_remote_re_races_a_wanted_peer() {
    let mut h = Harness::new(Config::default());
    let p = peer(1);
    let wifi = connected_over_wifi(&mut h, p);
    h.at(ms(1_000));
    h.engine.handle_connection_closed(wifi, h.now);
    h.drain();
    assert_eq!(
        h.dials().last().unwrap().2,
        LAN,
        "the best route is redialled first"
    );
    h.disconnect_all(p);
}

/// The chat's case: the remote went away, so its connection closed and the
/// redial of each route fails. The app hears that the peer is disconnected,
/// then that it is unreachable; never "unreachable" alone for a peer it was
/// told is connected.
#[test]
fn a_lost_peer_whose_redial_fails_is_disconnected_then_unreachable() {
    let mut h = Harness::new(Config::default());
    let p = peer(1);
    let wifi = connected_over_wifi(&mut h, p);
    h.at(ms(1_000));
    let before = h.events.len();
    let mut next = h.dials().len();
    h.engine.handle_connection_closed(wifi, h.now);
    h.drain();
    // Fail each redial as it starts, letting the race's timers run between.
    for _ in 0..32 {
        let unreachable = h.events[before..]
            .iter()
            .any(|(_, e)| matches!(e, Event::PeerUnreachable { .. }));
        if unreachable {
            break;
        }
        if next < h.dials().len() {
            let c = h.dials()[next].1;
            next += 1;
            h.fail(c);
        } else if let Some(t) = h.engine.poll_timeout() {
            h.run_until(t);
        } else {
            break;
        }
    }
    assert!(next > 1, "the lost peer was redialled");
    let tail: Vec<&Event> = h.events[before..]
        .iter()
        .map(|(_, e)| e)
        .filter(|e| {
            matches!(
                e,
                Event::PeerDisconnected { .. } | Event::PeerUnreachable { .. }
            )
        })
        .collect();
    assert!(
        matches!(
            tail.as_slice(),
            [Event::PeerDisconnected { peer: a }, Event::PeerUnreachable { peer: b, tried }]
                if *a == p && *b == p && *tried >= 1
        ),
        "{tail:#?}"
    );
    assert_eq!(h.engine.primary(&p), None);
}

#[test]
fn every_route_failing_of_a_peer_never_connected_is_unreachable_only() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.connect(p);
    h.fail(h.dial_to(LAN));
    assert!(
        !h.events
            .iter()
            .any(|(_, e)| matches!(e, Event::PeerDisconnected { .. })),
        "{:#?}",
        h.events
    );
    assert!(matches!(
        h.events.last().unwrap().1,
        Event::PeerUnreachable { tried: 1, .. }
    ));
}

#[test]
fn a_connection_that_went_dark_re_races_other_hosts_first() {
    let mut h = Harness::new(Config::default());
    let p = peer(1);
    let wifi = connected_over_wifi(&mut h, p);
    // Another transport to the same host: it went dark too.
    h.discover(p, "/ip4/192.168.1.20/tcp/4001", WIFI, Source::Mdns);
    h.at(ms(1_000));
    let before = h.dials().len();
    h.engine.handle_connection_lost(wifi, h.now);
    h.drain();
    let first = &h.dials()[before];
    assert_eq!(first.2, PUBLIC_QUIC, "{:#?}", h.dials());
    assert_eq!(first.0, h.now, "at once");
    // A close by the peer (not a timeout) keeps trusting the route: see
    // `connection_closed_by_the_remote_re_races_a_wanted_peer`.
    h.disconnect_all(p);
}

#[test]
fn tables_stay_within_their_bounds() {
    let config = Config::default()
        .with_max_peers(2)
        .with_max_routes_per_peer(2)
        .with_max_pending_events(1);
    let mut h = Harness::new(config);
    h.up(WIFI, Medium::Wifi);
    // Routes per peer: the third route evicts the one expiring soonest.
    let p = peer(1);
    for i in 0..3u64 {
        h.engine
            .handle_discovered(
                Discovered {
                    peer: p,
                    addr: addr(&format!("/ip4/192.168.1.{}/tcp/1", 10 + i)),
                    interface: WIFI,
                    source: Source::Mdns,
                    signed: false,
                    ttl: Duration::from_secs(100 + i),
                },
                h.now,
            )
            .unwrap();
    }
    assert_eq!(h.engine.route_count(&p), 2);
    // Peers: a third idle peer evicts the oldest idle one; wanted peers stay.
    h.engine.connect(peer(2), h.now).unwrap();
    h.engine
        .handle_discovered(
            Discovered {
                peer: peer(3),
                addr: addr(LAN),
                interface: WIFI,
                source: Source::Mdns,
                signed: false,
                ttl: ms(1000),
            },
            h.now,
        )
        .unwrap();
    assert_eq!(h.engine.peer_count(), 2);
    assert_eq!(h.engine.route_count(&p), 0, "the idle peer was evicted");
    h.engine.connect(peer(3), h.now).unwrap();
    let err = h.engine.connect(peer(4), h.now);
    assert!(err.is_err(), "both peers are in use now");
    // Events: the oldest are dropped and counted.
    let first = h.engine.poll_event().unwrap();
    assert!(
        matches!(first, Event::EventsDropped { count } if count > 0),
        "{first:?}"
    );
    assert!(h.engine.pending_events() <= 1);
}

#[test]
fn routes_expire_and_are_never_dialled_after() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    h.engine
        .handle_discovered(
            Discovered {
                peer: p,
                addr: addr(LAN),
                interface: WIFI,
                source: Source::Mdns,
                signed: false,
                ttl: ms(1_000),
            },
            h.now,
        )
        .unwrap();
    h.at(ms(1_000));
    assert_eq!(h.engine.route_count(&p), 0);
    h.connect(p);
    assert!(h.dials().is_empty());
}

#[test]
fn bad_inputs_are_errors_that_name_what_was_wrong() {
    let mut engine = Engine::new(Config::default()).unwrap();
    let err = engine
        .handle_discovered(
            Discovered {
                peer: peer(1),
                addr: addr(LAN),
                interface: InterfaceId(9),
                source: Source::Mdns,
                signed: false,
                ttl: ms(1),
            },
            Timestamp::ZERO,
        )
        .unwrap_err();
    assert!(err.to_string().contains("if9"), "{err}");
    engine
        .handle_network_change(
            NetworkChange::Up {
                interface: WIFI,
                medium: Medium::Wifi,
                conditions: NetworkConditions::default(),
                validated: true,
            },
            Timestamp::ZERO,
        )
        .unwrap();
    let err = engine
        .handle_discovered(
            Discovered {
                peer: peer(1),
                addr: addr("/ip4/1.2.3.4/udp/1"),
                interface: WIFI,
                source: Source::Mdns,
                signed: false,
                ttl: ms(1),
            },
            Timestamp::ZERO,
        )
        .unwrap_err();
    assert!(err.to_string().contains("/ip4/1.2.3.4/udp/1"), "{err}");
    let err = Engine::new(Config::default().with_max_peers(0)).unwrap_err();
    assert!(err.to_string().contains("max_peers"), "{err}");
}

#[test]
fn losing_an_interface_never_promotes_a_backup_on_the_same_interface() {
    let mut h = Harness::new(Config::default().with_profile(Profile::performance()));
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    h.connect(p);
    h.at(ms(100));
    h.succeed(h.dial_to(LAN));
    h.at(ms(180));
    h.succeed(h.dial_to(PUBLIC_QUIC));
    let events_before = h.events.len();
    h.change(NetworkChange::Down { interface: WIFI });
    assert_eq!(h.engine.primary(&p), None);
    assert_eq!(h.engine.connection_count(), 0);
    assert!(
        !h.events[events_before..]
            .iter()
            .any(|(_, e)| matches!(e, Event::RouteSwitched { .. })),
        "switched to a connection that died with the interface: {:#?}",
        &h.events[events_before..]
    );
    assert!(matches!(
        h.events.last().unwrap().1,
        Event::PeerUnreachable { .. }
    ));
}

#[test]
fn a_race_waiting_for_capacity_goes_on_when_capacity_frees() {
    let mut h = Harness::new(Config::default().with_max_attempts(4, 1));
    h.up(WIFI, Medium::Wifi);
    let (p1, p2) = (peer(1), peer(2));
    h.discover(p1, LAN, WIFI, Source::Mdns);
    h.discover(p2, "/ip4/192.168.1.30/udp/4001/quic-v1", WIFI, Source::Mdns);
    h.connect(p1);
    h.connect(p2);
    assert_eq!(h.dials().len(), 1, "one attempt in flight at most");
    // The app gives up on the first peer: the second is dialled at once.
    h.engine.disconnect(p1, h.now);
    h.drain();
    assert_eq!(h.dials().len(), 2);
    assert_eq!(h.dials()[1].2, "/ip4/192.168.1.30/udp/4001/quic-v1");
}
