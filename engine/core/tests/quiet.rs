//! Quiet liveness with a fake clock: no probes once the app is quiet, a
//! probe on the first message after the quiet, dormant peers dialled again
//! on use, idle cellular connections closed on a wake-up, work deferred to
//! the radio's wake-ups, and keep-alives for the reservations' NAT bindings.

use std::time::Duration;

use libp2p_identity::PeerId;
use multidriver_core::{
    CloseReason, Command, Config, ConnectionHandle, DriverCaps, EnergyClass, Event, QueryOutcome,
    RIDE_WINDOW, Reach, Reachability, UDP_BINDING_KEEPALIVE,
};
use multidriver_scoring::{Lifecycle, Medium, PowerState, Profile, Source, Timestamp};

mod common;
use common::*;

fn keep_alives(h: &Harness) -> Vec<(Timestamp, Vec<ConnectionHandle>)> {
    h.commands
        .iter()
        .filter_map(|(t, c)| match c {
            Command::KeepAlive { connections } => Some((*t, connections.clone())),
            _ => None,
        })
        .collect()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn t(d: Duration) -> Timestamp {
    Timestamp::from_duration(d)
}

/// A live engine whose peer 1 is connected over Wi-Fi at 0.1 s, with a
/// cellular route in reserve.
fn connected_with_reserve(profile: Profile) -> (Harness, PeerId, ConnectionHandle) {
    let mut h = Harness::live(Config::default().with_profile(profile));
    let p = peer(1);
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, PUBLIC_QUIC, CELL, Source::Rendezvous);
    h.connect(p);
    h.at(ms(100));
    let wifi = h.dial_to(LAN);
    h.succeed(wifi);
    (h, p, wifi)
}

/// Answers every probe asked at the current instant.
fn answer(h: &mut Harness) {
    let now = h.now;
    let asked: Vec<ConnectionHandle> = keep_alives(h)
        .into_iter()
        .filter(|(at, _)| *at == now)
        .flat_map(|(_, c)| c)
        .collect();
    for c in asked {
        h.engine.handle_rtt_sample(c, ms(5), now);
    }
    h.drain();
}

/// Runs the clock to `until`, answering each probe as it is asked.
fn run_answering(h: &mut Harness, until: Duration) {
    let end = t(until);
    while let Some(due) = h.engine.poll_timeout().filter(|d| *d <= end) {
        h.run_until(due);
        answer(h);
    }
    h.run_until(end);
}

#[test]
fn a_quiet_peer_gets_no_probes() {
    let (mut h, p, wifi) = connected_with_reserve(Profile::balanced());
    let quiet = Profile::balanced().quiet.after();
    h.engine.mark_used(p, h.now);
    h.drain();
    run_answering(&mut h, secs(600));
    let times: Vec<Timestamp> = keep_alives(&h).iter().map(|(at, _)| *at).collect();
    // The heartbeat probes the connection while the app uses the peer...
    assert!(times.len() >= 5, "{times:?}");
    // ...and never once the app has been quiet for the profile's period.
    let last = *times.last().unwrap();
    assert!(last < t(ms(100) + quiet), "{times:?}");
    assert_eq!(h.engine.primary(&p), Some(wifi));
}

#[test]
fn the_first_message_after_a_quiet_period_carries_a_probe_and_a_dead_path_is_raced_around_at_once()
{
    let (mut h, p, wifi) = connected_with_reserve(Profile::balanced());
    run_answering(&mut h, secs(300));
    let before = keep_alives(&h).len();
    // The app sends after five minutes of quiet: a probe rides on it.
    h.engine.mark_used(p, h.now);
    h.drain();
    let probes = keep_alives(&h);
    assert_eq!(probes.len(), before + 1);
    assert_eq!(probes.last().unwrap(), &(t(secs(300)), vec![wifi]));
    // The Wi-Fi path died silently meanwhile: no answer. At the route's
    // RTO (RFC 6298's 1 s floor here) the connection is closed and the
    // cellular route dialled at once, with no lookup first.
    let lookups = h.discovers_since(0).len();
    h.at(secs(300) + ms(999));
    assert_eq!(h.engine.primary(&p), Some(wifi));
    h.at(secs(301));
    assert!(
        h.closes()
            .iter()
            .any(|c| c.1 == wifi && c.2 == CloseReason::Unresponsive)
    );
    let dial = h.dial_to(PUBLIC_QUIC);
    assert!(h.dials().iter().any(|d| d.1 == dial && d.0 == t(secs(301))));
    assert_eq!(h.discovers_since(0).len(), lookups);
}

#[test]
fn without_probe_on_resume_the_first_message_after_quiet_carries_no_probe() {
    let mut profile = Profile::balanced();
    profile.quiet.probe_on_resume = false;
    let (mut h, p, _) = connected_with_reserve(profile);
    run_answering(&mut h, secs(300));
    let before = keep_alives(&h).len();
    h.engine.mark_used(p, h.now);
    h.drain();
    assert_eq!(keep_alives(&h).len(), before);
    // Once the app is using the peer again, the heartbeat resumes.
    run_answering(&mut h, secs(310));
    assert!(keep_alives(&h).len() > before);
}

#[test]
fn a_quiet_peer_whose_connection_closes_is_dialled_again_on_next_use_through_its_known_route() {
    let (mut h, p, wifi) = connected_with_reserve(Profile::balanced());
    run_answering(&mut h, secs(120));
    // The remote closes the connection while the app is quiet: nothing is
    // dialled, and the app hears the peer is disconnected.
    let dials = h.dials().len();
    h.engine.handle_connection_closed(wifi, h.now);
    h.drain();
    h.at(secs(200));
    assert_eq!(h.dials().len(), dials, "{:#?}", h.dials());
    assert!(
        h.events
            .iter()
            .any(|(_, e)| matches!(e, Event::PeerDisconnected { peer } if *peer == p))
    );
    // The app uses the peer again: its best known route is dialled at once,
    // without a lookup.
    let lookups = h.discovers_since(0).len();
    h.engine.mark_used(p, h.now);
    h.drain();
    let again = h.dials();
    assert!(again.len() > dials);
    assert_eq!(again[dials].0, t(secs(200)));
    assert_eq!(again[dials].2, LAN);
    assert_eq!(h.discovers_since(0).len(), lookups);
}

#[test]
fn a_peer_in_use_whose_connection_closes_is_raced_again_at_once() {
    let (mut h, p, wifi) = connected_with_reserve(Profile::balanced());
    run_answering(&mut h, secs(10));
    h.engine.mark_used(p, h.now);
    h.drain();
    answer(&mut h);
    let dials = h.dials().len();
    h.engine.handle_connection_closed(wifi, h.now);
    h.drain();
    assert!(h.dials().len() > dials);
    assert_eq!(h.dials()[dials].0, t(secs(10)));
}

/// A live engine under `profile` with peers 1 and 2 connected over 4G.
fn two_over_cellular(profile: Profile) -> (Harness, [PeerId; 2], [ConnectionHandle; 2]) {
    let mut h = Harness::live(Config::default().with_profile(profile));
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
    (h, [p1, p2], [dials[0].1, dials[1].1])
}

#[test]
fn cellular_probes_of_quiet_peers_stop_and_ride_one_wake_up_together() {
    let profile = Profile::balanced();
    let (interval, quiet) = (profile.usage.keepalive_interval(), profile.quiet.after());
    let (mut h, [p1, p2], [c1, c2]) = two_over_cellular(profile);
    h.engine.mark_used(p1, h.now);
    h.engine.mark_used(p2, h.now);
    h.drain();
    // While the peers are in use, one batch per keep-alive interval wakes
    // the radio once for both.
    run_answering(&mut h, ms(100) + interval + ms(1));
    let first: Vec<(Timestamp, Vec<ConnectionHandle>)> = keep_alives(&h);
    assert_eq!(first, vec![(t(ms(100) + interval), vec![c1, c2])]);
    // Once both are quiet, no batch at all, however long.
    run_answering(&mut h, quiet * 10);
    let late = keep_alives(&h)
        .iter()
        .filter(|(at, _)| *at > t(ms(100) + quiet + interval))
        .count();
    assert_eq!(late, 0, "{:#?}", keep_alives(&h));
    // The app sends to peer 1: its probe and peer 2's ride on that wake-up.
    let now = h.now;
    h.engine.mark_used(p1, now);
    h.drain();
    let mut probed: Vec<ConnectionHandle> = keep_alives(&h)
        .into_iter()
        .filter(|(at, _)| *at == now)
        .flat_map(|(_, c)| c)
        .collect();
    probed.sort();
    assert_eq!(probed, vec![c1, c2]);
}

#[test]
fn idle_cellular_connections_close_on_a_wake_up_and_reopen_on_use() {
    let profile = Profile::background();
    let idle = profile.quiet.cellular_idle_close().unwrap();
    let (mut h, [p1, p2], [c1, c2]) = two_over_cellular(profile);
    h.engine.mark_used(p1, h.now);
    h.engine.mark_used(p2, h.now);
    h.drain();
    // Long past the idle limit, nothing is closed while the radio sleeps
    // (a close is a packet: it would wake it).
    run_answering(&mut h, idle * 6);
    assert!(h.closes().is_empty(), "{:#?}", h.closes());
    // The app sends to peer 2: on that wake-up, peer 1's idle connection
    // closes; peer 2's, just used, stays.
    h.engine.mark_used(p2, h.now);
    h.drain();
    answer(&mut h);
    let closed: Vec<_> = h.closes().iter().map(|c| (c.1, c.2)).collect();
    assert_eq!(closed, vec![(c1, CloseReason::Idle)]);
    assert_eq!(h.engine.primary(&p2), Some(c2));
    assert_eq!(h.engine.primary(&p1), None);
    // Peer 1 is not redialled until the app uses it; then at once.
    let dials = h.dials().len();
    run_answering(&mut h, idle * 12);
    assert_eq!(h.dials().len(), dials);
    h.engine.mark_used(p1, h.now);
    h.drain();
    assert_eq!(h.dials().len(), dials + 1);
    assert_eq!(h.dials()[dials].0, h.now);
}

#[test]
fn balanced_keeps_idle_cellular_connections_open() {
    let (mut h, [p1, p2], _) = two_over_cellular(Profile::balanced());
    h.engine.mark_used(p1, h.now);
    h.drain();
    run_answering(&mut h, secs(3600));
    h.engine.mark_used(p2, h.now);
    h.drain();
    assert!(h.closes().is_empty(), "{:#?}", h.closes());
}

fn lookup_caps() -> DriverCaps {
    DriverCaps {
        kind: Source::Rendezvous,
        reach: Reach::Internet,
        energy: EnergyClass::Low,
        typical_latency: ms(100),
        signed_records: false,
    }
}

/// The times of the lookups asked so far, each answered at once.
fn lookups_answered(h: &mut Harness) -> Vec<Timestamp> {
    let open: Vec<multidriver_core::QueryId> =
        h.discovers_since(0).into_iter().map(|x| x.0).collect();
    for q in open {
        h.engine
            .handle_query_outcome(q, QueryOutcome::Succeeded { found: 0 }, h.now);
    }
    h.drain();
    h.commands
        .iter()
        .filter(|(_, c)| matches!(c, Command::Discover { .. }))
        .map(|(at, _)| *at)
        .collect()
}

#[test]
fn lookups_over_cellular_wait_for_a_wake_up_or_half_their_interval() {
    let config = Config::default();
    let every = config.schedule().foreground_interval();
    let (mut h, [p1, _], _) = two_over_cellular(Profile::balanced());
    // Both peers quiet: no keep-alive batch wakes the radio.
    run_answering(&mut h, Profile::balanced().quiet.after() * 2);
    h.register(lookup_caps());
    h.engine.subscribe("chat", h.now).unwrap();
    h.drain();
    let start = h.now;
    assert_eq!(lookups_answered(&mut h), vec![start]);
    // Nothing wakes the radio: the lookup due at `every` waits half an
    // interval for a wake-up, then runs anyway (probes riding on its
    // wake-up are answered).
    let mut at = Vec::new();
    while let Some(due) = h.engine.poll_timeout().filter(|d| *d <= start + every * 2) {
        h.run_until(due);
        answer(&mut h);
        at = lookups_answered(&mut h);
    }
    assert_eq!(at, vec![start, start + every + every / 2]);
    // The next one is due an interval later; the app's traffic wakes the
    // radio before it, within half an interval: it runs then.
    let due = start + every + every / 2 + every;
    let wake = due.saturating_duration_since(Timestamp::ZERO) - every / 3;
    assert!(h.now < t(wake));
    run_answering(&mut h, wake);
    h.engine.mark_used(p1, h.now);
    h.drain();
    assert_eq!(lookups_answered(&mut h).last(), Some(&t(wake)));
}

#[test]
fn lookups_over_wifi_run_when_due() {
    let config = Config::default();
    let every = config.schedule().foreground_interval();
    let mut h = Harness::live(config);
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    h.register(lookup_caps());
    h.engine.subscribe("chat", h.now).unwrap();
    h.drain();
    let mut at = lookups_answered(&mut h);
    while let Some(due) = h.engine.poll_timeout().filter(|d| *d <= t(every * 2)) {
        h.run_until(due);
        at = lookups_answered(&mut h);
    }
    assert_eq!(at, vec![t(Duration::ZERO), t(every), t(every * 2)]);
}

#[test]
fn a_reservation_over_udp_gets_a_keep_alive_every_binding_interval() {
    let mut h = Harness::live(Config::default());
    h.up(CELL, LTE);
    let relay = peer(101);
    h.engine
        .add_relay(relay, addr("/ip4/203.0.113.1/udp/4001/quic-v1"), h.now)
        .unwrap();
    h.drain();
    h.engine
        .handle_reservation_accepted(&relay, Some(CELL), h.now);
    h.drain();
    h.at(UDP_BINDING_KEEPALIVE * 4 + ms(1));
    let kept: Vec<Timestamp> = h
        .commands
        .iter()
        .filter(
            |(_, c)| matches!(c, Command::KeepReservations { relays } if relays == &vec![relay]),
        )
        .map(|(at, _)| *at)
        .collect();
    let k = |n: u32| t(UDP_BINDING_KEEPALIVE * n);
    assert_eq!(kept, vec![k(1), k(2), k(3), k(4)]);
    // Public: the reservation is released and the keep-alives stop.
    h.engine.handle_reachability(Reachability::Public, h.now);
    h.drain();
    h.at(UDP_BINDING_KEEPALIVE * 10);
    let after = h
        .commands
        .iter()
        .filter(|(at, c)| *at > k(4) && matches!(c, Command::KeepReservations { .. }))
        .count();
    assert_eq!(after, 0);
}

#[test]
fn a_reservation_over_tcp_gets_a_keep_alive_every_profile_interval() {
    let mut h = Harness::live(Config::default());
    h.up(WIFI, Medium::Wifi);
    let relay = peer(101);
    h.engine
        .add_relay(relay, addr("/ip4/203.0.113.1/tcp/4001"), h.now)
        .unwrap();
    h.drain();
    h.engine
        .handle_reservation_accepted(&relay, Some(WIFI), h.now);
    h.drain();
    let every = Profile::balanced().usage.keepalive_interval();
    h.at(every * 2 + ms(1));
    let kept: Vec<Timestamp> = h
        .commands
        .iter()
        .filter(|(_, c)| matches!(c, Command::KeepReservations { .. }))
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(kept, vec![t(every), t(every * 2)]);
}

#[test]
fn work_rides_only_on_a_fresh_wake_up() {
    // A probe or lookup started more than `RIDE_WINDOW` after the last
    // packet would stretch the radio's tail: it does not ride.
    let (mut h, [p1, p2], [_, c2]) = two_over_cellular(Profile::balanced());
    h.engine.mark_used(p1, h.now);
    h.engine.mark_used(p2, h.now);
    h.drain();
    // Both quiet by then: no batch of their own.
    run_answering(&mut h, secs(300));
    h.engine.mark_used(p1, h.now);
    h.drain();
    let rode = h.now;
    assert!(
        keep_alives(&h)
            .iter()
            .any(|(at, c)| *at == rode && c.contains(&c2))
    );
    answer(&mut h);
    // Just after the window, a timer finds nothing to ride on: no probe of
    // its own for the quiet peers.
    let n = keep_alives(&h).len();
    h.at(secs(300) + RIDE_WINDOW + ms(1));
    h.engine.handle_timeout(h.now);
    h.drain();
    assert_eq!(
        keep_alives(&h).len(),
        n,
        "nothing on a timer after the window"
    );
    // Peer 2 is used then: only its own probe goes out with its message
    // (peer 1's connection, proven alive a moment ago, is not asked).
    h.engine.mark_used(p2, h.now);
    h.drain();
    let now = h.now;
    let asked: Vec<ConnectionHandle> = keep_alives(&h)
        .into_iter()
        .filter(|(at, _)| *at == now)
        .flat_map(|(_, c)| c)
        .collect();
    assert_eq!(asked, vec![c2]);
}

#[test]
fn suspended_lifecycle_keeps_quiet_rules() {
    // Sanity: a suspended app's peers are quiet too; nothing is probed.
    let (mut h, p, _) = connected_with_reserve(Profile::balanced());
    let mut power = PowerState::MAINS;
    power.lifecycle = Lifecycle::Suspended;
    h.engine.handle_power(power, h.now);
    h.drain();
    let n = keep_alives(&h).len();
    h.at(secs(600));
    assert_eq!(keep_alives(&h).len(), n);
    assert!(h.engine.primary(&p).is_some());
}
