//! Every policy finishes every plausible scenario within the event bound
//! and keeps the simulator's invariants: random small worlds with random,
//! overlapping event sequences of every action.

use multidriver_sim::scenario::ALL_POLICIES;
use multidriver_sim::{Error, RunOptions, Scenario, run};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// The event bound the generated worlds run under: far above what seven
/// nodes need (a few hundred events in their busiest second), far below the
/// default, so a policy that multiplies its work slowly is caught too.
const EVENT_BOUND: u32 = 2_000;

/// The actions a generated event may take, with what each needs.
const ACTIONS: &[&str] = &[
    "wifi-up",
    "wifi-down",
    "wifi-losing",
    "wifi-stall",
    "ethernet-up",
    "ethernet-down",
    "cellular-up",
    "cellular-down",
    "lifecycle",
    "battery",
    "move",
    "rendezvous-down",
    "rendezvous-up",
    "restart",
];

#[derive(Debug, Clone)]
struct Event {
    at_s: u32,
    spread_s: u32,
    group: usize,
    action: usize,
    pick: u8,
}

fn event() -> impl Strategy<Value = Event> {
    (
        0u32..240,
        0u32..20,
        0usize..3,
        0..ACTIONS.len(),
        any::<u8>(),
    )
        .prop_map(|(at_s, spread_s, group, action, pick)| Event {
            at_s,
            spread_s,
            group,
            action,
            pick,
        })
}

const GROUPS: [&str; 3] = ["phones", "desktops", "walkers"];

/// A small world: phones on Wi-Fi and 4G, desktops on Ethernet, walkers on
/// 4G with BLE, two LANs of each kind (behind a cone, an address-dependent
/// or no NAT; cellular behind carrier-grade NAT), a DHT and two rendezvous
/// points, one a relay, and the events given.
fn scenario(seed: u64, interval_s: f64, events: &[Event]) -> String {
    let mut s = format!(
        r#"
name = "random"
duration_s = 300
seed = {seed}

[traffic]
message_interval_s = {interval_s}
queue_limit = 8

[limits]
max_events_per_node_second = {EVENT_BOUND}

[[lans]]
name = "home"
rtt_ms = 4
nat = "cone"
[[lans]]
name = "cafe"
rtt_ms = 9
internet = false
[[lans]]
name = "office"
medium = "ethernet"
rtt_ms = 1
nat = "address-dependent"
[[lans]]
name = "lab"
medium = "ethernet"
rtt_ms = 2

[dht]
[[rendezvous]]
name = "a"
relay = true
[[rendezvous]]
name = "b"

[[groups]]
name = "phones"
count = 3
wifi = "home"
cellular = "4g"
ble = true
battery = 0.5
start_spread_s = 30
contacts = [{{ group = "desktops", count = 1 }}, {{ group = "walkers", count = 1 }}, {{ group = "phones", count = 1 }}]

[[groups]]
name = "desktops"
count = 2
ethernet = "office"
contacts = [{{ group = "phones", count = 1 }}]

[[groups]]
name = "walkers"
count = 2
cellular = "5g"
ble = true
battery = 0.3
churn = {{ online_s = 120, offline_s = 30 }}
contacts = [{{ group = "phones", count = 2 }}]
"#
    );
    for e in events {
        let action = ACTIONS[e.action];
        s.push_str(&format!(
            "\n[[events]]\nat_s = {}\nspread_s = {}\naction = \"{action}\"\n",
            e.at_s, e.spread_s
        ));
        match action {
            "rendezvous-down" | "rendezvous-up" => {
                let server = if e.pick % 2 == 0 { "a" } else { "b" };
                s.push_str(&format!("server = \"{server}\"\n"));
                continue;
            }
            "wifi-up" => {
                let lan = if e.pick % 2 == 0 { "home" } else { "cafe" };
                s.push_str(&format!("lan = \"{lan}\"\n"));
            }
            "ethernet-up" => {
                let lan = if e.pick % 2 == 0 { "office" } else { "lab" };
                s.push_str(&format!("lan = \"{lan}\"\n"));
            }
            "lifecycle" => {
                let state = ["foreground", "background", "suspended"][usize::from(e.pick % 3)];
                s.push_str(&format!("state = \"{state}\"\n"));
            }
            "battery" => {
                s.push_str(&format!("level = {}\n", f64::from(e.pick) / 255.0));
            }
            "move" => {
                s.push_str(&format!("to = [{}.0, 0.0]\n", u32::from(e.pick) / 4));
            }
            _ => {}
        }
        s.push_str(&format!("group = \"{}\"\n", GROUPS[e.group]));
    }
    s
}

/// Runs every policy over `text`, checking invariants as it goes.
fn run_every_policy(text: &str) -> Result<multidriver_sim::Report, Error> {
    let s = Scenario::from_toml_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let options = RunOptions {
        policies: Some(ALL_POLICIES.iter().map(|p| (*p).to_owned()).collect()),
        check_invariants: true,
        ..RunOptions::default()
    };
    run(&s, &options, &|_| {})
}

proptest! {
    // A fixed seed: the same cases on every run, so CI is deterministic;
    // change the seed to explore other worlds.
    #![proptest_config(ProptestConfig {
        cases: 16,
        rng_seed: RngSeed::Fixed(0x6d75_6c74_6964_7276),
        ..ProptestConfig::default()
    })]

    /// Every policy finishes, under the default event bound, with its
    /// message accounting balanced and no connection in use over an
    /// interface the OS reported down.
    #[test]
    fn every_policy_finishes_and_keeps_its_invariants(
        seed in any::<u64>(),
        interval in prop::sample::select(vec![0.5, 2.0, 30.0]),
        events in prop::collection::vec(event(), 0..24),
    ) {
        let text = scenario(seed, interval, &events);
        match run_every_policy(&text) {
            Ok(report) => prop_assert_eq!(report.policies.len(), ALL_POLICIES.len()),
            Err(e) => prop_assert!(false, "{}\n{}", e, text),
        }
    }
}

/// A tuned app whose Wi-Fi is losing redials a contact on its LAN after its
/// connection idled out: the LAN address, which only the losing Wi-Fi
/// reaches, answers first. When the Wi-Fi then goes, the app must know that
/// connection leaves through Wi-Fi, close it and not keep using it.
#[test]
fn a_redial_over_a_losing_wifi_is_closed_when_it_goes() {
    let text = format!(
        r#"
name = "losing, then a redial, then down"
duration_s = 160
seed = 7
policies = ["libp2p-tuned"]
[traffic]
message_interval_s = 12   # the 10 s idle timeout closes, the next message redials
[limits]
max_events_per_node_second = {EVENT_BOUND}
[[lans]]
name = "home"
rtt_ms = 4
[[rendezvous]]
name = "a"
[[groups]]
name = "phones"
count = 8
wifi = "home"
cellular = "4g"
contacts = [{{ group = "desktops", count = 2 }}]
[[groups]]
name = "desktops"
count = 2
wifi = "home"
[[events]]
at_s = 20
group = "phones"
action = "wifi-losing"
[[events]]
at_s = 100
spread_s = 30
group = "phones"
action = "wifi-down"
"#
    );
    let s = Scenario::from_toml_str(&text).unwrap();
    let options = RunOptions {
        check_invariants: true,
        ..RunOptions::default()
    };
    let report = run(&s, &options, &|_| {}).unwrap_or_else(|e| panic!("{e}"));
    let tuned = &report.policies[0];
    // The phones did lose Wi-Fi while using it, after the warning.
    assert!(
        tuned.failover_by_cause.interface_lost_after_warning.count > 0,
        "{tuned:?}"
    );
}

/// The stall loop that used to make `tinder` grow without end: Wi-Fi
/// silently stalls and re-associates to the same LAN every three minutes.
#[test]
fn a_wifi_that_stalls_and_returns_all_hour_finishes_for_every_policy() {
    let mut text = String::from(
        r#"
name = "stall-loop"
duration_s = 3600
seed = 3
[[lans]]
name = "home"
rtt_ms = 4
[dht]
[[rendezvous]]
name = "a"
[[rendezvous]]
name = "b"
[[groups]]
name = "phones"
count = 6
wifi = "home"
cellular = "4g"
contacts = [{ group = "phones", count = 3 }]
"#,
    );
    let mut t = 60;
    while t < 3500 {
        text.push_str(&format!(
            "[[events]]\nat_s = {t}\ngroup = \"phones\"\naction = \"wifi-stall\"\n\
             [[events]]\nat_s = {}\ngroup = \"phones\"\naction = \"wifi-up\"\nlan = \"home\"\n",
            t + 30
        ));
        t += 180;
    }
    let report = run_every_policy(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.policies.len(), ALL_POLICIES.len());
}

/// A policy that goes over the bound stops the run with an error naming
/// the policy, the node and the event kind.
#[test]
fn a_run_over_the_event_bound_names_policy_node_and_kind() {
    let text = r#"
name = "busy"
duration_s = 60
[traffic]
message_interval_s = 0.05
[limits]
max_events_per_node_second = 10
[[lans]]
name = "home"
rtt_ms = 4
[[rendezvous]]
name = "a"
[[groups]]
name = "phones"
count = 2
wifi = "home"
contacts = [{ group = "phones", count = 1 }]
"#;
    let s = Scenario::from_toml_str(text).unwrap();
    let options = RunOptions {
        policies: Some(vec!["libp2p-tuned".to_owned()]),
        ..RunOptions::default()
    };
    let err = run(&s, &options, &|_| {}).unwrap_err();
    let Error::Runaway {
        policy,
        group,
        kind,
        count,
        limit,
        ..
    } = &err
    else {
        panic!("expected a runaway, got {err}");
    };
    assert_eq!(policy, "libp2p-tuned");
    assert_eq!(group, "phones");
    assert_eq!(*kind, "app message");
    assert!(*count > 0 && *limit == 10, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("libp2p-tuned") && text.contains("phones") && text.contains("app message"),
        "{text}"
    );
}
