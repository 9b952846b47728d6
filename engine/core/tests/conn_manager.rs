//! The connection manager: watermarks, grace period, protected and recently
//! used peers, lowest value first.

use std::time::Duration;

use multidriver_core::{CloseReason, Command, Config, ConnectionHandle, Engine};
use multidriver_scoring::{Medium, Timestamp};

mod common;
use common::{Harness, WIFI, peer};

fn harness(low: usize, high: usize) -> Harness {
    let mut h = Harness::new(Config::default().with_watermarks(low, high, Duration::from_secs(20)));
    h.up(WIFI, Medium::Wifi);
    h
}

fn inbound(h: &mut Harness, n: u8, at: Timestamp) -> ConnectionHandle {
    h.run_until(at);
    let addr = format!("/ip4/192.168.1.{n}/tcp/4001").parse().unwrap();
    let c = h.engine.handle_inbound(peer(n), addr, WIFI, at).unwrap();
    h.drain();
    c
}

/// Connections trimmed so far, in order.
fn trimmed(h: &Harness) -> Vec<ConnectionHandle> {
    h.commands
        .iter()
        .filter_map(|(_, c)| match c {
            Command::CloseConnection {
                connection,
                reason: CloseReason::Trimmed,
            } => Some(*connection),
            _ => None,
        })
        .collect()
}

#[test]
fn trims_to_the_low_watermark_after_the_grace_period_least_recently_used_first() {
    let mut h = harness(1, 2);
    let t = Timestamp::from_millis;
    let c1 = inbound(&mut h, 1, t(0));
    let c2 = inbound(&mut h, 2, t(1_000));
    let c3 = inbound(&mut h, 3, t(2_000));
    // Above the high watermark, but every connection is in its grace period.
    assert!(trimmed(&h).is_empty());
    assert_eq!(h.engine.connection_count(), 3);
    // Peer 1 is in use. When peer 2 leaves its grace period it is the only
    // connection that may go: trimming stops there, with peer 3 still in
    // its grace period, and does not start again until above the high
    // watermark once more.
    h.run_until(t(15_000));
    h.engine.mark_used(peer(1), h.now);
    h.run_until(t(25_000));
    assert_eq!(trimmed(&h), vec![c2]);
    assert_eq!(h.engine.connection_count(), 2);
    let c4 = inbound(&mut h, 4, t(30_000));
    // Peer 4 is new (grace) and peer 1 recently used: peer 3 goes.
    assert_eq!(trimmed(&h), vec![c2, c3]);
    assert_eq!(h.engine.primary(&peer(1)), Some(c1));
    assert_eq!(h.engine.primary(&peer(4)), Some(c4));
}

#[test]
fn wanted_and_protected_peers_are_never_trimmed() {
    let mut h = harness(0, 1);
    let t = Timestamp::from_millis;
    let c1 = inbound(&mut h, 1, t(0));
    let c2 = inbound(&mut h, 2, t(0));
    let c3 = inbound(&mut h, 3, t(0));
    h.engine.connect(peer(1), t(0)).unwrap();
    h.engine.protect(peer(2)).unwrap();
    h.run_until(t(60_000));
    assert_eq!(trimmed(&h), vec![c3]);
    assert_eq!(
        h.engine.primary(&peer(1)),
        Some(c1),
        "the wanted peer keeps its connection"
    );
    assert_eq!(
        h.engine.primary(&peer(2)),
        Some(c2),
        "the protected peer keeps its connection"
    );
    // Once unprotected, peer 2 goes at the next trim; the wanted peer stays.
    h.engine.unprotect(peer(2));
    let c4 = inbound(&mut h, 4, t(60_000));
    h.run_until(t(90_000));
    assert_eq!(trimmed(&h), vec![c3, c2, c4]);
    assert_eq!(h.engine.primary(&peer(1)), Some(c1));
    assert_eq!(h.engine.connection_count(), 1);
}

#[test]
fn watermarks_are_validated() {
    let err = Engine::new(Config::default().with_watermarks(10, 5, Duration::ZERO)).unwrap_err();
    assert!(err.to_string().contains("conn_low_watermark"), "{err}");
}

/// A host that stops polling finds at most `max_pending_commands` waiting:
/// the oldest are dropped and counted, and the dials they stood for end
/// through the dial timeout instead of staying in flight.
#[test]
fn an_unpolled_command_queue_stays_bounded_and_dropped_dials_time_out() {
    use multidriver_core::{Discovered, Event, NetworkChange};
    use multidriver_scoring::{NetworkConditions, Source};

    let config = Config::default()
        .with_liveness(None)
        .with_max_pending_commands(8);
    assert_eq!(config.max_pending_commands(), 8);
    let mut engine = Engine::new(config).unwrap();
    let mut now = Timestamp::ZERO;
    engine
        .handle_network_change(
            NetworkChange::Up {
                interface: WIFI,
                medium: Medium::Wifi,
                conditions: NetworkConditions::default(),
                validated: true,
            },
            now,
        )
        .unwrap();
    for n in 1..=30u8 {
        let p = peer(n);
        engine
            .handle_discovered(
                Discovered {
                    peer: p,
                    addr: format!("/ip4/192.168.1.{n}/udp/4001/quic-v1")
                        .parse()
                        .unwrap(),
                    interface: WIFI,
                    source: Source::Mdns,
                    signed: false,
                    ttl: Duration::from_secs(600),
                },
                now,
            )
            .unwrap();
        engine.connect(p, now).unwrap();
    }
    assert!(
        engine.dropped_commands() >= 22,
        "{}",
        engine.dropped_commands()
    );
    let mut waiting = 0;
    while engine.poll_command().is_some() {
        waiting += 1;
    }
    assert_eq!(waiting, 8);
    // Nobody answers any dial: every attempt, dropped or not, times out.
    let mut unreachable = std::collections::BTreeSet::new();
    for _ in 0..20 {
        now = now + Duration::from_secs(6);
        engine.handle_timeout(now);
        while engine.poll_command().is_some() {}
        while let Some(e) = engine.poll_event() {
            if let Event::PeerUnreachable { peer, .. } = e {
                unreachable.insert(peer);
            }
        }
    }
    assert_eq!(engine.attempts_in_flight(), 0);
    // Every peer was reported unreachable: none is stuck behind a dial
    // that was dropped.
    assert_eq!(unreachable.len(), 30);
}

#[test]
fn a_command_bound_of_zero_is_refused_by_name() {
    let err = Engine::new(Config::default().with_max_pending_commands(0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_pending_commands"), "{err}");
}

/// At the command bound dials go first: a reservation (which has no
/// deadline of its own) stays queued while any dial can be dropped instead.
#[test]
fn at_the_command_bound_a_reservation_outlives_the_dials() {
    use multidriver_core::{Command, Discovered, NetworkChange};
    use multidriver_scoring::{NetworkConditions, Source};

    let mut engine = Engine::new(
        Config::default()
            .with_liveness(None)
            .with_max_pending_commands(3),
    )
    .unwrap();
    let now = Timestamp::ZERO;
    engine
        .handle_network_change(
            NetworkChange::Up {
                interface: WIFI,
                medium: Medium::Wifi,
                conditions: NetworkConditions::default(),
                validated: true,
            },
            now,
        )
        .unwrap();
    let relay = peer(200);
    engine
        .add_relay(relay, "/ip4/198.51.100.1/tcp/4001".parse().unwrap(), now)
        .unwrap();
    for n in 1..=10u8 {
        let p = peer(n);
        engine
            .handle_discovered(
                Discovered {
                    peer: p,
                    addr: format!("/ip4/192.168.1.{n}/tcp/4001").parse().unwrap(),
                    interface: WIFI,
                    source: Source::Mdns,
                    signed: false,
                    ttl: Duration::from_secs(600),
                },
                now,
            )
            .unwrap();
        engine.connect(p, now).unwrap();
    }
    let mut waiting = Vec::new();
    while let Some(c) = engine.poll_command() {
        waiting.push(c);
    }
    assert_eq!(waiting.len(), 3, "{waiting:?}");
    assert!(
        waiting
            .iter()
            .any(|c| matches!(c, Command::Reserve { relay: r, .. } if *r == relay)),
        "{waiting:?}"
    );
    assert!(engine.dropped_commands() >= 8);
}

/// An input that moves the clock past the end of a grace period before the
/// timeout for it ran leaves the trim due, not forgotten.
#[test]
fn a_grace_period_passed_by_an_input_still_ends_in_a_trim() {
    let mut h = harness(0, 1);
    let t = Timestamp::from_millis;
    inbound(&mut h, 1, t(0));
    inbound(&mut h, 2, t(0));
    h.run_until(t(19_000));
    assert!(trimmed(&h).is_empty());
    let late = t(25_000);
    h.engine
        .set_profile(multidriver_scoring::Profile::battery_saver(), late)
        .unwrap();
    h.drain();
    let due = h.engine.poll_timeout();
    assert!(due.is_some_and(|d| d <= late), "the trim is due: {due:?}");
    h.engine.handle_timeout(late);
    h.drain();
    assert_eq!(trimmed(&h).len(), 2);
}
