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

#[test]
fn a_mistyped_value_names_the_field_and_what_it_expects() {
    let e = Scenario::from_toml_str("name = \"x\"\nduration_s = \"one hour\"\ngroups = []\n")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(r#"duration_s: expected a number of seconds, got the string "one hour""#)
            && e.contains("line 2"),
        "{e}"
    );
    let e = Scenario::from_toml_str(
        "name = \"x\"\nduration_s = 60\n[[groups]]\nname = \"a\"\ncount = 1\n[[groups]]\nname = \"b\"\ncount = \"ten\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(r#"groups[1].count: expected a whole number, got the string "ten""#)
            && e.contains("line 8"),
        "{e}"
    );
}

/// Regression: a group of no nodes listing contacts in itself wrapped its
/// "other nodes" count (a panic in debug builds, 2^32 nodes in release).
#[test]
fn an_empty_group_with_contacts_in_itself_is_refused_by_name() {
    let e = Scenario::from_toml_str(
        "name = \"x\"\nduration_s = 5\n[[groups]]\nname = \"g\"\ncount = 0\nwifi = \"home\"\n\
         contacts = [{ group = \"g\", count = 1 }]\n[[lans]]\nname = \"home\"\nrtt_ms = 1\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("groups.contacts.count = 1") && e.contains("has only 0 other node(s)"),
        "{e}"
    );
}

#[test]
fn cgnat_runs_and_both_stacks_connect_relayed_first() {
    let s = scenario("cgnat");
    let policies = ["multidriver", "libp2p-stock", "oracle"];
    let r = run_with(&s, &policies, 2);
    println!("{}", r.table());
    for name in policies {
        let p = get(&r, name);
        // Every contact connects, through the relay first.
        assert_eq!(p.time_to_first_connection.unfinished, 0, "{name}: {p:?}");
        assert!(p.nat.relayed_connections > 0, "{name}: {:?}", p.nat);
        assert!(p.usable_share.unwrap() > 0.95, "{name}: {p:?}");
        // Phone ↔ phone and most phone → desktop pairs stay relayed; the
        // desktops across the two routers punch.
        let direct = p.direct_share.unwrap();
        assert!(0.05 < direct && direct < 0.9, "{name}: direct {direct}");
        assert!(p.nat.hole_punches_ok > 0, "{name}: {:?}", p.nat);
        assert!(
            p.nat.hole_punches_ok < p.nat.hole_punches,
            "{name}: {:?}",
            p.nat
        );
        // Phone ↔ phone circuits hit the relay's 2 min limit.
        assert!(p.nat.circuits_cut > 0, "{name}: {:?}", p.nat);
    }
    // The engine starts the relay beside the first direct attempt; stock
    // smart dial starts it 250 ms after its direct addresses.
    let md = get(&r, "multidriver").time_to_first_connection.p50.unwrap();
    let stock = get(&r, "libp2p-stock")
        .time_to_first_connection
        .p50
        .unwrap();
    assert!(md < stock, "ttfc p50: multidriver {md} vs stock {stock}");
    // The same scenario and seed give the same run.
    assert_eq!(r.to_json(), run_with(&s, &policies, 1).to_json());
}

/// Phones on 4G only, each talking to another, behind `nat`, with one relay.
fn phones_behind(nat: &str, message_bytes: u32, message_interval_s: f64) -> Scenario {
    Scenario::from_toml_str(&format!(
        r#"
name = "phones behind {nat}"
duration_s = 610
seed = 5
[traffic]
message_interval_s = {message_interval_s}
message_bytes = {message_bytes}
[[rendezvous]]
name = "relay"
relay = true
[[groups]]
name = "phones"
count = 6
cellular = "4g"
nat = "{nat}"
contacts = [{{ group = "phones", count = 1 }}]
"#
    ))
    .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn two_cgnat_phones_never_connect_directly_but_cone_ones_punch() {
    let all = [
        "multidriver",
        "libp2p-stock",
        "libp2p-tuned",
        "tinder",
        "oracle",
    ];
    let r = run_with(&phones_behind("cgnat", 200, 5.0), &all, 2);
    for name in all {
        let p = get(&r, name);
        // Invariants are checked as the run goes: no direct connection got
        // past a NAT without a punch.
        assert_eq!(p.direct_share, Some(0.0), "{name}: {p:?}");
        assert_eq!(p.nat.hole_punches_ok, 0, "{name}: {:?}", p.nat);
        assert!(p.nat.hole_punches > 0, "{name}: {:?}", p.nat);
        assert!(p.usable_share.unwrap() > 0.9, "{name}: {p:?}");
    }
    // Behind cone NATs the same phones punch (95 % of pairs) and stay direct.
    let r = run_with(&phones_behind("cone", 200, 5.0), &all, 2);
    for name in all {
        let p = get(&r, name);
        assert!(p.direct_share.unwrap() > 0.5, "{name}: {p:?}");
        assert!(p.nat.hole_punches_ok > 0, "{name}: {:?}", p.nat);
    }
}

#[test]
fn a_relayed_connection_is_cut_at_the_circuit_limits() {
    let policies = ["multidriver", "libp2p-stock", "oracle"];
    // By duration: 600 s of relayed connections for 6 phones, each cut at
    // 2 min: at least 4 cuts per phone, and no more than one per 2 min.
    let r = run_with(&phones_behind("cgnat", 200, 5.0), &policies, 2);
    for name in policies {
        let cut = get(&r, name).nat.circuits_cut;
        assert!((6 * 4..=6 * 5).contains(&cut), "{name}: {cut} cuts");
    }
    // By bytes: 16 KiB a second fills 128 KiB within 8 s, so circuits are
    // cut far more often than every 2 min.
    let r = run_with(&phones_behind("cgnat", 16 * 1024, 1.0), &policies, 2);
    for name in policies {
        let cut = get(&r, name).nat.circuits_cut;
        assert!(cut > 6 * 20, "{name}: {cut} cuts");
    }
}

#[test]
fn an_unknown_nat_names_the_field_and_the_allowed_values() {
    let e = Scenario::from_toml_str(
        "name = \"x\"\nduration_s = 5\ngroups = []\n[[lans]]\nname = \"l\"\nrtt_ms = 1\nnat = \"full\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("lans.nat") && e.contains("full"), "{e}");
    assert!(
        e.contains("address-dependent") && e.contains("cgnat"),
        "{e}"
    );
    let e = Scenario::from_toml_str(
        "name = \"x\"\nduration_s = 5\n[[groups]]\nname = \"g\"\ncount = 1\ncellular = \"4g\"\nnat = \"open\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("groups.nat") && e.contains("line 7"), "{e}");
}

#[test]
fn every_shipped_scenario_states_its_nats() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# NATs:"),
            "{} says nothing of its NATs",
            path.display()
        );
        let s = Scenario::load(&path).unwrap();
        // Every LAN with an uplink and every group with cellular says which
        // NAT it means: as many `nat =` lines as those.
        let expected = s.lans.iter().filter(|l| l.internet).count()
            + s.groups.iter().filter(|g| g.cellular.is_some()).count();
        let stated = text
            .lines()
            .filter(|l| l.trim_start().starts_with("nat ="))
            .count();
        assert!(
            stated >= expected,
            "{}: {stated} `nat =` for {expected}",
            path.display()
        );
    }
}
