//! Scripted liveness scenarios with a fake clock: keep-alives, probes,
//! heartbeats, and what an unanswered probe does.

use std::time::Duration;

use libp2p_identity::PeerId;
use multidriver_core::{CloseReason, Command, Config, ConnectionHandle};
use multidriver_scoring::{Medium, Profile, Source, Timestamp};

mod common;
use common::*;

#[test]
fn recent_traffic_spares_a_cellular_connection_its_keep_alive() {
    let mut h = Harness::new(Config::default());
    h.up(CELL, LTE);
    let (p1, p2) = (peer(1), peer(2));
    h.discover(p1, "/ip4/198.51.100.1/udp/4001/quic-v1", CELL, Source::Dht);
    h.discover(p2, "/ip4/198.51.100.2/udp/4001/quic-v1", CELL, Source::Dht);
    h.connect(p1);
    h.connect(p2);
    let dials = h.dials();
    h.at(ms(100));
    for d in &dials {
        h.succeed(d.1);
    }
    let (c1, c2) = (dials[0].1, dials[1].1);
    let interval = Profile::balanced().usage.keepalive_interval();
    // Answers on both just before the first batch: both are spared once;
    // the batch after that has both.
    h.at(ms(100) + interval - ms(1_000));
    h.engine.handle_rtt_sample(c1, ms(80), h.now);
    h.engine.handle_rtt_sample(c2, ms(80), h.now);
    h.drain();
    h.at(ms(100) + interval * 2);
    let batches: Vec<Vec<ConnectionHandle>> = h
        .commands
        .iter()
        .filter_map(|(_, c)| match c {
            Command::KeepAlive { connections } => Some(connections.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(batches, vec![vec![c1, c2]], "{:#?}", h.commands);
    // Without traffic for half an interval, both are asked again.
    h.at(ms(100) + interval * 3);
    let n = h
        .commands
        .iter()
        .filter(|(_, c)| matches!(c, Command::KeepAlive { .. }))
        .count();
    assert_eq!(n, 2);
}

fn keep_alives(h: &Harness) -> Vec<(Timestamp, Vec<ConnectionHandle>)> {
    h.commands
        .iter()
        .filter_map(|(t, c)| match c {
            Command::KeepAlive { connections } => Some((*t, connections.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn an_unanswered_probe_closes_the_connection_and_re_races_at_once() {
    let liveness = multidriver_core::Liveness::default();
    let mut h = Harness::live(Config::default());
    let p = peer(1);
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, PUBLIC_QUIC, CELL, Source::Rendezvous);
    h.connect(p);
    h.at(ms(10));
    let wifi = h.dial_to(LAN);
    h.succeed(wifi);
    // The first heartbeat probes the Wi-Fi connection; an answer keeps it.
    let first = Timestamp::from_duration(ms(10) + liveness.heartbeat());
    h.run_until(first);
    assert_eq!(keep_alives(&h), vec![(first, vec![wifi])]);
    h.engine.handle_rtt_sample(wifi, ms(6), h.now);
    h.drain();
    h.at(ms(10) + liveness.heartbeat() + liveness.probe_timeout() + ms(1));
    assert_eq!(h.engine.primary(&p), Some(wifi));
    // The second goes unanswered: closed after the probe timeout, and the
    // 4G route is dialled at that instant (the dead host is penalised).
    let second = first + liveness.heartbeat();
    let dead = second + liveness.probe_timeout();
    h.run_until(dead);
    assert_eq!(keep_alives(&h).last(), Some(&(second, vec![wifi])));
    assert!(
        h.closes()
            .contains(&(dead, wifi, CloseReason::Unresponsive)),
        "{:#?}",
        h.closes()
    );
    let (at, _, addr, interface) = h.dials().last().cloned().unwrap();
    assert_eq!((at, addr.as_str(), interface), (dead, PUBLIC_QUIC, CELL));
    h.disconnect_all(p);
}

#[test]
fn a_peer_without_ping_is_never_probed_again_nor_closed_for_it() {
    let liveness = multidriver_core::Liveness::default();
    let mut h = Harness::live(Config::default());
    let p = peer(1);
    h.up(WIFI, Medium::Wifi);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.connect(p);
    h.at(ms(10));
    let wifi = h.dial_to(LAN);
    h.succeed(wifi);
    let first = Timestamp::from_duration(ms(10) + liveness.heartbeat());
    h.run_until(first);
    assert_eq!(keep_alives(&h), vec![(first, vec![wifi])]);
    // The remote refuses the ping protocol: the pending probe is forgiven.
    h.engine.handle_probe_unsupported(wifi, h.now);
    h.drain();
    h.at(ms(10) + liveness.heartbeat() * 5);
    assert_eq!(keep_alives(&h).len(), 1, "no probe after the refusal");
    assert!(
        !h.closes().iter().any(|c| c.1 == wifi),
        "the connection stays: {:#?}",
        h.closes()
    );
    assert_eq!(h.engine.primary(&p), Some(wifi));
    h.disconnect_all(p);
}

#[test]
fn a_backup_that_died_with_its_primary_is_never_promoted() {
    let liveness = multidriver_core::Liveness::default();
    let mut h = Harness::live(Config::default().with_profile(Profile::performance()));
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    h.connect(p);
    h.at(ms(100));
    let primary = h.dial_to(LAN);
    h.succeed(primary);
    h.at(ms(180));
    let backup = h.dial_to(PUBLIC_QUIC);
    h.succeed(backup);
    // The Wi-Fi goes silent: neither probe is answered. Both close at the
    // same deadline; the dead backup is never announced as the new route.
    let switches = h.switches().len();
    h.at(ms(180) + liveness.heartbeat() * 2);
    let unresponsive: Vec<ConnectionHandle> = h
        .closes()
        .iter()
        .filter(|c| c.2 == CloseReason::Unresponsive)
        .map(|c| c.1)
        .collect();
    assert!(
        unresponsive.contains(&primary) && unresponsive.contains(&backup),
        "{:#?}",
        h.closes()
    );
    assert_eq!(h.switches().len(), switches, "{:#?}", h.switches());
    assert_eq!(h.engine.primary(&p), None);
}

#[test]
fn no_heartbeat_while_suspended() {
    let mut h = Harness::live(Config::default());
    let p = peer(1);
    h.up(WIFI, Medium::Wifi);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.connect(p);
    h.at(ms(10));
    let wifi = h.dial_to(LAN);
    h.succeed(wifi);
    let mut power = multidriver_scoring::PowerState::MAINS;
    power.lifecycle = multidriver_scoring::Lifecycle::Suspended;
    h.engine.handle_power(power, h.now);
    h.drain();
    h.at(Duration::from_secs(120));
    assert!(keep_alives(&h).is_empty(), "{:#?}", keep_alives(&h));
    assert_eq!(h.engine.primary(&p), Some(wifi));
    // Back in the foreground with the app using the peer, the heartbeat
    // resumes.
    h.engine
        .handle_power(multidriver_scoring::PowerState::MAINS, h.now);
    h.engine.mark_used(p, h.now);
    h.drain();
    h.at(Duration::from_secs(130));
    assert!(!keep_alives(&h).is_empty());
}

/// A live engine with one peer connected over 4G at 0.1 s.
fn live_over_cellular() -> (Harness, PeerId, ConnectionHandle) {
    let mut h = Harness::live(Config::default());
    let p = peer(1);
    h.up(CELL, LTE);
    h.discover(p, PUBLIC_QUIC, CELL, Source::Rendezvous);
    h.connect(p);
    h.at(ms(100));
    let cell = h.dial_to(PUBLIC_QUIC);
    h.succeed(cell);
    (h, p, cell)
}

#[test]
fn app_traffic_carries_a_probe_at_most_once_per_active_heartbeat() {
    let liveness = multidriver_core::Liveness::default();
    let (mut h, p, cell) = live_over_cellular();
    // Messages every 250 ms. The handshake proved the path at 0.1 s; a probe
    // rides on the first message an active heartbeat later, none on the
    // messages after its answer until another active heartbeat has passed.
    let step = ms(250);
    for k in 1..=12u32 {
        h.at(ms(100) + step * k);
        h.engine.mark_used(p, h.now);
        h.drain();
        if let Some((_, c)) = keep_alives(&h).last() {
            assert_eq!(c, &vec![cell]);
        }
        // Each probe is answered at once.
        if keep_alives(&h).last().is_some_and(|(t, _)| *t == h.now) {
            h.engine.handle_rtt_sample(cell, ms(90), h.now);
            h.drain();
        }
    }
    let times: Vec<Timestamp> = keep_alives(&h).iter().map(|(t, _)| *t).collect();
    let at = |d: Duration| Timestamp::from_duration(ms(100) + d);
    let beat = liveness.active_heartbeat();
    assert_eq!(times, vec![at(beat), at(2 * beat), at(3 * beat)]);
    assert_eq!(h.engine.primary(&p), Some(cell));
    h.disconnect_all(p);
}

#[test]
fn an_unanswered_probe_on_app_traffic_closes_the_path_after_its_rto() {
    let liveness = multidriver_core::Liveness::default();
    let (mut h, p, cell) = live_over_cellular();
    h.engine.handle_rtt_sample(cell, ms(90), h.now);
    // The app sends; the path has silently died, so the probe riding on its
    // traffic is never answered.
    let probed = ms(100) + liveness.active_heartbeat();
    h.at(probed);
    h.engine.mark_used(p, h.now);
    h.drain();
    assert_eq!(
        keep_alives(&h).last().map(|(t, _)| *t),
        Some(Timestamp::from_duration(probed))
    );
    // SRTT + 4 × RTTVAR of a 90 ms path is under RFC 6298's 1 s floor: the
    // connection is declared dead at the floor, not at the idle probes' 2 s.
    h.at(probed + liveness.active_probe_timeout() - ms(1));
    h.drain();
    assert_eq!(h.engine.primary(&p), Some(cell));
    h.at(probed + liveness.active_probe_timeout());
    h.drain();
    assert_ne!(h.engine.primary(&p), Some(cell), "the dead path is dropped");
}

#[test]
fn cellular_keep_alives_share_one_radio_wake_up() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    let (p1, p2, p3) = (peer(1), peer(2), peer(3));
    h.discover(p1, "/ip4/198.51.100.1/udp/4001/quic-v1", CELL, Source::Dht);
    h.discover(p2, "/ip4/198.51.100.2/udp/4001/quic-v1", CELL, Source::Dht);
    h.discover(p3, LAN, WIFI, Source::Mdns);
    for p in [p1, p2, p3] {
        h.connect(p);
    }
    let dials = h.dials();
    h.at(ms(100));
    h.succeed(dials[0].1);
    h.at(ms(700));
    for d in &dials[1..] {
        h.succeed(d.1);
    }
    let cellular: Vec<ConnectionHandle> =
        dials.iter().filter(|d| d.3 == CELL).map(|d| d.1).collect();
    assert_eq!(cellular.len(), 2);
    // One batch per keep-alive interval, with both cellular connections and
    // not the Wi-Fi one, counted from the first cellular connection.
    let interval = Profile::balanced().usage.keepalive_interval();
    h.at(ms(100) + interval * 3);
    let batches: Vec<(Timestamp, Vec<ConnectionHandle>)> = h
        .commands
        .iter()
        .filter_map(|(t, c)| match c {
            Command::KeepAlive { connections } => Some((*t, connections.clone())),
            _ => None,
        })
        .collect();
    let at = |k: u32| Timestamp::from_duration(ms(100) + interval * k);
    assert_eq!(
        batches,
        vec![
            (at(1), cellular.clone()),
            (at(2), cellular.clone()),
            (at(3), cellular)
        ]
    );
}
