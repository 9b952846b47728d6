//! App restarts (the `restart` action): every policy's agent is rebuilt,
//! the `multidriver` policies carry their route memory over, and the time
//! back to contacts reached before is measured apart.

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
fn after_a_restart_multidriver_is_back_as_soon_as_the_oracle_and_before_stock() {
    let r = run_with(
        &scenario("restart"),
        &["multidriver", "libp2p-stock", "libp2p-tuned", "oracle"],
        2,
    );
    println!("{}", r.table());
    // 20 phones, 3 restarts each, 3 contacts reached before each restart.
    for p in &r.policies {
        let a = &p.time_to_first_connection_after_restart;
        assert_eq!(a.count + a.unfinished, 180, "{}: {a:?}", p.policy);
        assert_eq!(a.unfinished, 0, "{}: {a:?}", p.policy);
    }
    let after = |p: &str| {
        get(&r, p)
            .time_to_first_connection_after_restart
            .p50
            .unwrap()
    };
    let (md, oracle, stock, tuned) = (
        after("multidriver"),
        after("oracle"),
        after("libp2p-stock"),
        after("libp2p-tuned"),
    );
    // The remembered best route is dialled at once: what the oracle takes,
    // give or take a relay ranked on a handshake-timed estimate.
    assert!(md <= oracle * 1.25, "multidriver {md} vs oracle {oracle}");
    // The stock stacks look their contacts up again first.
    assert!(
        md < stock && md < tuned,
        "multidriver {md}, stock {stock}, tuned {tuned}"
    );
    // The table shows it.
    let table = r.table();
    assert!(table.contains("ttfc after an app restart"));
    // Its legend explains every column of every section.
    let (body, legend) = table.split_once("\nlegend (").expect("a legend");
    for header in body.lines().filter(|l| l.starts_with("policy ")) {
        for word in header.split_whitespace().skip(1) {
            assert!(
                legend.contains(word),
                "`{word}` of `{header}` is not in the legend"
            );
        }
    }
}

#[test]
fn restarts_stay_deterministic() {
    let mut s = scenario("restart");
    s.duration_s = 1800.0;
    let policies = ["multidriver", "libp2p-tuned", "oracle"];
    let a = run_with(&s, &policies, 1).to_json();
    let b = run_with(&s, &policies, 2).to_json();
    assert_eq!(a, b);
    assert!(a.contains("time_to_first_connection_after_restart"));
}

#[test]
fn without_restarts_nothing_is_measured_after_one() {
    let r = run_with(&scenario("no-dht"), &["multidriver", "oracle"], 2);
    for p in &r.policies {
        let a = &p.time_to_first_connection_after_restart;
        assert_eq!((a.count, a.unfinished, a.p50), (0, 0, None));
    }
    assert!(!r.table().contains("ttfc after an app restart"));
}

#[test]
fn a_restart_needs_a_group_and_is_named_among_the_actions() {
    let base = "name = \"x\"\nduration_s = 60\n[[groups]]\nname = \"g\"\ncount = 1\ncellular = \"4g\"\nnat = \"cgnat\"\n";
    let ok = format!("{base}[[events]]\nat_s = 10\ngroup = \"g\"\naction = \"restart\"\n");
    let s = Scenario::from_toml_str(&ok).unwrap();
    assert_eq!(
        s.events[0].action,
        multidriver_sim::scenario::Action::Restart
    );
    let e = Scenario::from_toml_str(&format!(
        "{base}[[events]]\nat_s = 10\naction = \"restart\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("needs `group`"), "{e}");
    let e = Scenario::from_toml_str(&format!(
        "{base}[[events]]\nat_s = 10\ngroup = \"g\"\naction = \"reboot\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("restart"), "{e}");
}
