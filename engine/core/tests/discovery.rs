//! Discovery driver orchestration with a fake clock: fan-out, schedule,
//! re-advertising, health, backoff and failover.

use std::time::Duration;

use multidriver_core::{
    Command, Config, DriverCaps, DriverId, EnergyClass, Engine, Event, NetworkChange, QueryOutcome,
    Reach,
};
use multidriver_scoring::{
    CellularGeneration, Lifecycle, Medium, PowerState, Profile, Source, Timestamp,
};

use common::{CELL, WIFI};
const TTL: Duration = Duration::from_secs(7_200);

fn caps(kind: Source) -> DriverCaps {
    let (reach, energy, latency) = match kind {
        // IPFS DHT lookup p50 0.557 s (docs/PARAMETERS.md).
        Source::Dht => (
            Reach::Internet,
            EnergyClass::High,
            Duration::from_millis(557),
        ),
        Source::Rendezvous => (
            Reach::Internet,
            EnergyClass::Low,
            Duration::from_millis(100),
        ),
        _ => (Reach::Lan, EnergyClass::Medium, Duration::from_millis(500)),
    };
    DriverCaps {
        kind,
        reach,
        energy,
        typical_latency: latency,
        signed_records: kind == Source::Rendezvous,
    }
}

mod common;
use common::Harness;

const OK: QueryOutcome = QueryOutcome::Succeeded { found: 0 };

#[test]
fn rendezvous_a_fails_and_b_carries_on_until_a_is_back() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let a = h.register(caps(Source::Rendezvous));
    let b = h.register(caps(Source::Rendezvous));
    h.engine.advertise("chat", TTL, h.now).unwrap();
    h.drain();
    let first = h.adverts_since(0);
    assert_eq!(first.iter().map(|x| x.2).collect::<Vec<_>>(), vec![a, b]);
    h.outcome(first[0].1, QueryOutcome::Failed);
    h.outcome(first[1].1, OK);
    let Some((
        _,
        Event::DriverHealthChanged {
            driver,
            healthy: false,
            consecutive_failures: 1,
            retry_at: Some(retry),
        },
    )) = h.events.last().cloned()
    else {
        panic!("{:#?}", h.events)
    };
    assert_eq!(driver, a);
    // 1 s base backoff with ±20 % jitter.
    let delay = retry.saturating_duration_since(h.now);
    assert!(
        delay >= Duration::from_millis(800) && delay <= Duration::from_millis(1_200),
        "{delay:?}"
    );
    // While A backs off, discovery asks B only.
    let mark = h.commands.len();
    assert_eq!(h.engine.discover("chat", h.now).unwrap(), 1);
    h.drain();
    assert_eq!(
        h.discovers_since(mark)
            .iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        vec![b]
    );
    // When the backoff ends, A is asked to register again; it works now.
    let mark = h.commands.len();
    h.run_until(retry);
    let again = h.adverts_since(mark);
    assert_eq!(
        again.iter().map(|x| (x.0, x.2)).collect::<Vec<_>>(),
        vec![(retry, a)]
    );
    h.outcome(again[0].1, OK);
    assert!(matches!(
        h.events.last().unwrap().1,
        Event::DriverHealthChanged { healthy: true, .. }
    ));
    assert_eq!(h.engine.driver_healthy(a), Some(true));
}

#[test]
fn backoff_doubles_with_jitter_up_to_the_cap() {
    let config = Config::default();
    let (base, max) = (config.backoff_base(), config.backoff_max());
    let mut h = Harness::new(config);
    h.up(WIFI, Medium::Wifi);
    let a = h.register(caps(Source::Rendezvous));
    h.engine.advertise("chat", TTL, h.now).unwrap();
    h.drain();
    for n in 0..12u32 {
        let (_, query, driver) = *h.adverts_since(0).last().unwrap();
        assert_eq!(driver, a);
        h.outcome(query, QueryOutcome::Failed);
        let Some((
            _,
            Event::DriverHealthChanged {
                retry_at: Some(retry),
                consecutive_failures,
                ..
            },
        )) = h.events.last().cloned()
        else {
            panic!()
        };
        assert_eq!(consecutive_failures, n + 1);
        let nominal = base.saturating_mul(1 << n).min(max);
        let delay = retry.saturating_duration_since(h.now);
        assert!(
            delay >= nominal.mul_f64(0.8) && delay <= nominal.mul_f64(1.2),
            "failure {}: {delay:?} vs {nominal:?}",
            n + 1
        );
        h.run_until(retry);
    }
}

#[test]
fn re_advertises_at_four_fifths_of_the_ttl_and_when_addresses_change() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    h.register(caps(Source::Rendezvous));
    h.engine.advertise("chat", TTL, h.now).unwrap();
    h.drain();
    let (_, q, _) = h.adverts_since(0)[0];
    h.outcome(q, OK);
    let mark = h.commands.len();
    let refresh = h.now + TTL.mul_f64(0.8);
    h.run_until(refresh + Duration::from_millis(1));
    let renewals = h.adverts_since(mark);
    assert_eq!(renewals.len(), 1);
    assert_eq!(renewals[0].0, refresh);
    h.outcome(renewals[0].1, OK);
    // A new interface means new local addresses: renew at once.
    let mark = h.commands.len();
    h.up(CELL, Medium::Cellular(CellularGeneration::G4));
    assert_eq!(h.adverts_since(mark).len(), 1);
}

/// An input that moves the clock past a re-advertisement before the
/// timeout for it ran (a host that delivers events before timers) leaves
/// it due, not forgotten until something else happens.
#[test]
fn a_re_advertisement_passed_by_an_input_is_still_due() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    h.register(caps(Source::Rendezvous));
    h.engine.advertise("chat", TTL, h.now).unwrap();
    h.drain();
    let (_, q, _) = h.adverts_since(0)[0];
    h.outcome(q, OK);
    let refresh = h.now + TTL.mul_f64(0.8);
    h.run_until(h.now + (TTL.mul_f64(0.8) - Duration::from_secs(1)));
    let late = refresh + Duration::from_secs(5);
    h.engine
        .set_profile(Profile::battery_saver(), late)
        .unwrap();
    h.drain();
    let due = h.engine.poll_timeout();
    assert!(
        due.is_some_and(|t| t <= late),
        "the passed re-advertisement is due: {due:?}"
    );
    let mark = h.commands.len();
    h.engine.handle_timeout(late);
    h.drain();
    assert_eq!(h.adverts_since(mark).len(), 1);
    assert!(h.engine.poll_timeout().is_none_or(|t| t > late));
}

#[test]
fn lan_drivers_run_only_where_a_lan_exists() {
    let mut h = Harness::new(Config::default());
    h.up(CELL, Medium::Cellular(CellularGeneration::G4));
    let mdns = h.register(caps(Source::Mdns));
    let rdv = h.register(caps(Source::Rendezvous));
    h.engine.advertise("chat", TTL, h.now).unwrap();
    h.drain();
    assert_eq!(
        h.adverts_since(0).iter().map(|x| x.2).collect::<Vec<_>>(),
        vec![rdv]
    );
    let mark = h.commands.len();
    h.up(WIFI, Medium::Wifi);
    assert!(h.adverts_since(mark).iter().any(|x| x.2 == mdns));
    // Wi-Fi gone again: mDNS is withdrawn once its registration is known.
    let q = h
        .adverts_since(mark)
        .iter()
        .find(|x| x.2 == mdns)
        .unwrap()
        .1;
    h.outcome(q, OK);
    h.engine
        .handle_network_change(NetworkChange::Down { interface: WIFI }, h.now)
        .unwrap();
    h.drain();
    assert_eq!(h.stops(), vec![mdns]);
}

#[test]
fn dht_less_operation_is_a_normal_configuration() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let rdv = h.register(caps(Source::Rendezvous));
    let mdns = h.register(caps(Source::Mdns));
    h.engine.advertise("chat", TTL, h.now).unwrap();
    assert_eq!(h.engine.discover("chat", h.now).unwrap(), 2);
    h.drain();
    let asked: Vec<DriverId> = h.discovers_since(0).iter().map(|x| x.1).collect();
    assert_eq!(asked, vec![rdv, mdns]);
    // With no driver able to run, discovery asks nobody, without an error.
    let mut lonely = Harness::new(Config::default());
    assert_eq!(lonely.engine.discover("chat", lonely.now).unwrap(), 0);
    lonely.drain();
    assert!(lonely.commands.is_empty());
}

#[test]
fn background_on_low_battery_stops_the_dht_and_stretches_keep_alives() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let dht = h.register(caps(Source::Dht));
    let rdv = h.register(caps(Source::Rendezvous));
    h.engine.advertise("chat", TTL, h.now).unwrap();
    h.drain();
    for (_, q, _) in h.adverts_since(0) {
        h.outcome(q, OK);
    }
    let foreground_keepalive = h.engine.profile().usage.keepalive_interval();
    h.engine.handle_power(
        PowerState {
            battery: Some(0.15),
            charging: false,
            lifecycle: Lifecycle::Background,
            power_save: false,
        },
        h.now,
    );
    h.drain();
    assert_eq!(h.stops(), vec![dht], "the DHT stops, rendezvous stays");
    assert!(!h.stops().contains(&rdv));
    assert_eq!(h.engine.profile().name, "battery-saver");
    assert!(h.engine.profile().usage.keepalive_interval() > foreground_keepalive);
    let mark = h.commands.len();
    h.engine.discover("chat", h.now).unwrap();
    h.drain();
    assert_eq!(
        h.discovers_since(mark)
            .iter()
            .map(|x| x.1)
            .collect::<Vec<_>>(),
        vec![rdv]
    );
    // Back to the foreground on a charger: the DHT runs again.
    let mark = h.commands.len();
    h.engine.handle_power(
        PowerState {
            battery: Some(0.15),
            charging: true,
            lifecycle: Lifecycle::Foreground,
            power_save: false,
        },
        h.now,
    );
    h.drain();
    assert_eq!(h.engine.profile(), &Profile::balanced());
    assert!(h.adverts_since(mark).iter().any(|x| x.2 == dht));
}

#[test]
fn power_saving_mode_counts_as_a_low_battery_at_any_level() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let dht = h.register(caps(Source::Dht));
    h.engine.advertise("chat", TTL, h.now).unwrap();
    h.drain();
    for (_, q, _) in h.adverts_since(0) {
        h.outcome(q, OK);
    }
    let saving = |power_save| PowerState {
        battery: Some(0.9),
        charging: false,
        lifecycle: Lifecycle::Foreground,
        power_save,
    };
    h.engine.handle_power(saving(true), h.now);
    h.drain();
    assert_eq!(h.engine.profile().name, "battery-saver");
    assert_eq!(h.stops(), vec![dht], "the high-energy DHT stops");
    h.engine.handle_power(saving(false), h.now);
    h.drain();
    assert_eq!(h.engine.profile(), &Profile::balanced());
}

#[test]
fn unanswered_queries_time_out_as_failures() {
    let config = Config::default();
    let timeout = config.query_timeout();
    let mut h = Harness::new(config);
    h.up(WIFI, Medium::Wifi);
    let a = h.register(caps(Source::Rendezvous));
    h.engine.discover("chat", h.now).unwrap();
    h.drain();
    let (q, _) = h.discovers_since(0)[0];
    h.run_until(Timestamp::ZERO + timeout);
    assert!(
        h.commands
            .iter()
            .any(|(_, c)| *c == Command::CancelQuery { query: q })
    );
    assert_eq!(h.engine.driver_healthy(a), Some(false));
    assert_eq!(h.engine.queries_in_flight(), 0);
}

#[test]
fn the_first_useful_answer_cancels_slower_lookups_when_the_profile_says() {
    // battery-saver cancels slower lookups; balanced lets them run.
    assert!(Profile::battery_saver().racing.cancel_slower_discovery);
    assert!(!Profile::balanced().racing.cancel_slower_discovery);
    let mut h = Harness::new(Config::default().with_profile(Profile::battery_saver()));
    h.up(WIFI, Medium::Wifi);
    let mdns = h.register(caps(Source::Mdns));
    h.register(caps(Source::Dht));
    h.engine.discover("chat", h.now).unwrap();
    h.drain();
    let queries = h.discovers_since(0);
    let fast = queries.iter().find(|x| x.1 == mdns).unwrap().0;
    let slow = queries.iter().find(|x| x.1 != mdns).unwrap().0;
    h.now = h.now + Duration::from_millis(40);
    h.outcome(fast, QueryOutcome::Succeeded { found: 2 });
    assert!(
        h.commands
            .iter()
            .any(|(_, c)| *c == Command::CancelQuery { query: slow })
    );
    assert_eq!(
        h.engine.driver_latency(mdns),
        Some(Duration::from_millis(40))
    );
    // Under balanced, every driver keeps answering.
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    h.register(caps(Source::Mdns));
    h.register(caps(Source::Dht));
    h.engine.discover("chat", h.now).unwrap();
    h.drain();
    let fast = h.discovers_since(0)[0].0;
    h.outcome(fast, QueryOutcome::Succeeded { found: 2 });
    assert_eq!(h.engine.queries_in_flight(), 1);
}

#[test]
fn bad_namespaces_and_full_tables_are_errors() {
    let mut engine = Engine::new(Config::default()).unwrap();
    let err = engine.advertise("", TTL, Timestamp::ZERO).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let long = "x".repeat(256);
    let err = engine.discover(&long, Timestamp::ZERO).unwrap_err();
    assert!(err.to_string().contains("255"), "{err}");
    let config = Config::default().with_max_drivers(1);
    let mut engine = Engine::new(config).unwrap();
    engine
        .register_driver(caps(Source::Mdns), Timestamp::ZERO)
        .unwrap();
    let err = engine
        .register_driver(caps(Source::Dht), Timestamp::ZERO)
        .unwrap_err();
    assert!(err.to_string().contains("drivers"), "{err}");
}

#[test]
fn the_dht_does_not_run_over_metered_links_only() {
    let mut h = Harness::new(Config::default());
    // Only 4G, metered: the DHT stays off, rendezvous runs.
    h.up(CELL, Medium::Cellular(CellularGeneration::G4));
    let dht = h.register(caps(Source::Dht));
    let rdv = h.register(caps(Source::Rendezvous));
    h.engine.advertise("chat", TTL, h.now).unwrap();
    h.drain();
    assert_eq!(
        h.adverts_since(0).iter().map(|x| x.2).collect::<Vec<_>>(),
        vec![rdv]
    );
    // Free Wi-Fi arrives: the DHT joins.
    let mark = h.commands.len();
    h.up(WIFI, Medium::Wifi);
    assert!(h.adverts_since(mark).iter().any(|x| x.2 == dht));
}

#[test]
fn subscriptions_are_looked_up_again_at_the_lifecycle_interval() {
    let config = Config::default();
    let (fg, bg) = (
        config.schedule().foreground_interval(),
        config.schedule().background_interval(),
    );
    let mut h = Harness::new(config);
    h.up(WIFI, Medium::Wifi);
    h.register(caps(Source::Rendezvous));
    h.engine.subscribe("chat", h.now).unwrap();
    h.drain();
    let lookups = |h: &Harness| -> Vec<Timestamp> {
        h.commands
            .iter()
            .filter(|(_, c)| matches!(c, Command::Discover { .. }))
            .map(|(t, _)| *t)
            .collect()
    };
    // Runs the clock to `t`, answering every lookup as soon as it is asked
    // so that none times out and the driver stays healthy.
    let step_to = |h: &mut Harness, t: Timestamp| {
        while let Some(due) = h.engine.poll_timeout().filter(|d| *d <= t) {
            h.run_until(due);
            let open: Vec<multidriver_core::QueryId> =
                h.discovers_since(0).into_iter().map(|x| x.0).collect();
            for q in open {
                h.engine.handle_query_outcome(q, OK, h.now);
            }
            h.drain();
        }
        h.run_until(t);
    };
    let t0 = Timestamp::ZERO;
    step_to(&mut h, t0 + fg * 2);
    assert_eq!(lookups(&h), vec![t0, t0 + fg, t0 + fg * 2]);
    // In the background the next lookup keeps its time, then they space out.
    h.engine.handle_power(
        PowerState {
            battery: Some(0.8),
            charging: false,
            lifecycle: Lifecycle::Background,
            power_save: false,
        },
        h.now,
    );
    h.drain();
    step_to(&mut h, t0 + fg * 3 + bg);
    assert_eq!(lookups(&h)[3..], [t0 + fg * 3, t0 + fg * 3 + bg]);
    // Suspended: none. Back in the foreground: one at once.
    h.engine.handle_power(
        PowerState {
            battery: Some(0.8),
            charging: false,
            lifecycle: Lifecycle::Suspended,
            power_save: false,
        },
        h.now,
    );
    h.drain();
    let before = lookups(&h).len();
    let later = h.now + bg * 4;
    step_to(&mut h, later);
    assert_eq!(lookups(&h).len(), before);
    let woke = h.now;
    h.engine.handle_power(
        PowerState {
            battery: Some(0.8),
            charging: false,
            lifecycle: Lifecycle::Foreground,
            power_save: false,
        },
        woke,
    );
    h.drain();
    assert_eq!(*lookups(&h).last().unwrap(), woke);
    h.engine.unsubscribe("chat");
    let before = lookups(&h).len();
    h.run_until(woke + fg * 5);
    assert_eq!(lookups(&h).len(), before);
}
