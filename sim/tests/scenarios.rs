//! The shipped scenarios: determinism, and the behaviour the project claims.

use std::path::PathBuf;

use multidriver_sim::{PolicyResult, Report, RunOptions, Scenario, run};

fn scenario(name: &str) -> Scenario {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.toml"));
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn run_with(s: &Scenario, policies: &[&str], threads: usize) -> Report {
    let options = RunOptions {
        seed: None,
        policies: Some(policies.iter().map(|p| (*p).to_owned()).collect()),
        threads,
        check_invariants: true,
    };
    run(s, &options, &|_| {}).unwrap()
}

fn get<'a>(r: &'a Report, policy: &str) -> &'a PolicyResult {
    r.policies.iter().find(|p| p.policy == policy).unwrap()
}

#[test]
fn the_same_scenario_and_seed_give_byte_identical_json() {
    let mut s = scenario("no-dht");
    // With churn too: restarted apps, stale connections to them.
    s.groups[1].churn = Some((300.0, 60.0));
    let policies = ["multidriver", "libp2p-stock", "tinder", "oracle"];
    // Different thread counts must not change anything either.
    let a = run_with(&s, &policies, 1).to_json();
    let b = run_with(&s, &policies, 2).to_json();
    assert_eq!(a, b);
    let mut other = s.clone();
    other.seed += 1;
    let c = run_with(&other, &policies, 2).to_json();
    assert_ne!(a, c, "another seed must give another run");
}

#[test]
fn commute_multidriver_fails_over_faster_than_stock_and_stays_on_the_best_route() {
    let r = run_with(
        &scenario("commute"),
        &["multidriver", "libp2p-stock", "oracle"],
        2,
    );
    let md = get(&r, "multidriver");
    let stock = get(&r, "libp2p-stock");
    let oracle = get(&r, "oracle");
    println!("{}", r.table());
    assert!(md.failover.count > 0 && stock.failover.count > 0);
    assert!(
        md.failover.p50 < stock.failover.p50,
        "failover p50: multidriver {:?} vs stock {:?}",
        md.failover.p50,
        stock.failover.p50
    );
    // When the OS reports the phone's own Wi-Fi gone, multidriver moves in
    // well under a second; stock waits for its keep-alive timeouts.
    let own = |p: &PolicyResult| p.failover_by_cause.interface_lost.p50.unwrap();
    assert!(own(md) < 1.0, "{:?}", md.failover_by_cause);
    assert!(own(stock) > 10.0 * own(md), "{} vs {}", own(stock), own(md));
    // Stock never upgrades from 4G to the office Wi-Fi; multidriver does.
    assert!(md.best_route_share > stock.best_route_share);
    // The oracle is the lower bound.
    assert!(oracle.failover.p50 <= md.failover.p50);
    assert_eq!(oracle.messages_lost, 0);
    // Every message is accounted for.
    for p in &r.policies {
        assert!(
            p.messages_delivered + p.messages_lost <= p.messages_sent,
            "{}",
            p.policy
        );
    }
}

#[test]
fn without_a_dht_multidriver_still_connects_every_contact() {
    let r = run_with(&scenario("no-dht"), &["multidriver", "single-mdns"], 2);
    let md = get(&r, "multidriver");
    assert_eq!(md.time_to_first_connection.unfinished, 0, "{md:?}");
    assert!(md.usable_share.unwrap() > 0.95, "{md:?}");
    // mDNS alone cannot reach the contacts on the other LAN.
    let mdns = get(&r, "single-mdns");
    assert!(mdns.time_to_first_connection.unfinished > 0, "{mdns:?}");
}

#[test]
fn every_shipped_scenario_parses() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(n >= 6);
}

#[test]
fn a_malformed_scenario_names_the_file_line_and_field() {
    let dir = std::env::temp_dir().join(format!("md-sim-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        "name = \"x\"\nduration_s = 60\n[[groups]]\nname = \"a\"\ncount = 1\nwifi = \"nowhere\"\n",
    )
    .unwrap();
    let e = Scenario::load(&path).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(e.contains("bad.toml"), "{e}");
    assert!(e.contains("line 6"), "{e}");
    assert!(e.contains("groups.wifi"), "{e}");
    assert!(e.contains("nowhere"), "{e}");

    let e = Scenario::from_toml_str("name = \"x\"\nduration_s = -5\ngroups = []\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("duration_s"), "{e}");
    let e = Scenario::from_toml_str("name = \"x\"\nduration_s = 5\nbogus = 1\ngroups = []\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3") && e.contains("bogus"), "{e}");
}
