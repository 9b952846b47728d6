//! The layering the compiler enforces, checked where a change would break
//! it: the sans-IO core depends on nothing of ours but scoring, and neither
//! the core nor the simulator pulls in a swarm, an async runtime, netlink,
//! a DNS resolver or WebRTC. Read from the manifests and `Cargo.lock` (the
//! resolved graph), so the check needs no network and no cargo call.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_toml(path: &str) -> toml::Table {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.parse().unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Crates that mean I/O or a runtime: none may be reachable from the core
/// or the simulator.
const FORBIDDEN: [&str; 9] = [
    "libp2p-swarm",
    "libp2p-tcp",
    "libp2p-quic",
    "libp2p-webrtc",
    "tokio",
    "rtnetlink",
    "netlink-sys",
    "hickory-resolver",
    "if-watch",
];

/// Every package reachable from `root` in `Cargo.lock`. The lock file is
/// feature-agnostic (it holds what any feature of any workspace member
/// needs, and a workspace member's dev-dependencies), so this is a superset
/// of what `root` really builds: if a forbidden crate is absent here, it is
/// absent from the build.
fn reachable(root: &str) -> BTreeSet<String> {
    let lock = read_toml("Cargo.lock");
    let packages = lock["package"].as_array().expect("[[package]] entries");
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in packages {
        let name = p["name"].as_str().unwrap().to_owned();
        let list = p
            .get("dependencies")
            .and_then(|d| d.as_array())
            .map(|d| {
                d.iter()
                    // "name version" when several versions are locked.
                    .map(|v| v.as_str().unwrap().split(' ').next().unwrap().to_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        deps.entry(name).or_default().extend(list);
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![root.to_owned()];
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone()) {
            todo.extend(deps.get(&n).into_iter().flatten().cloned());
        }
    }
    seen
}

#[test]
fn the_core_depends_only_on_scoring_libp2p_identity_and_multiaddr() {
    let manifest = read_toml("engine/core/Cargo.toml");
    let deps: BTreeSet<&str> = manifest["dependencies"]
        .as_table()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        deps,
        BTreeSet::from([
            "libp2p-identity",
            "multiaddr",
            "multidriver-scoring",
            "thiserror"
        ]),
        "engine/core/Cargo.toml [dependencies]"
    );
    assert!(
        manifest.get("target").is_none(),
        "no platform-specific dependencies in the core"
    );
}

#[test]
fn neither_the_core_nor_the_simulator_reaches_io_crates() {
    for root in ["multidriver-core", "multidriver-sim"] {
        let all = reachable(root);
        assert!(
            all.contains("multidriver-scoring"),
            "{root} reaches scoring: {all:?}"
        );
        for f in FORBIDDEN {
            assert!(!all.contains(f), "{root} reaches {f}");
        }
        let ours: BTreeSet<&String> = all
            .iter()
            .filter(|n| n.starts_with("multidriver"))
            .collect();
        let allowed: BTreeSet<String> = [root, "multidriver-core", "multidriver-scoring"]
            .map(String::from)
            .into();
        assert!(
            ours.iter().all(|n| allowed.contains(*n)),
            "{root} reaches project crates beyond the core and scoring: {ours:?}"
        );
    }
}

#[test]
fn the_routing_crate_does_not_depend_on_the_adapter() {
    assert!(!reachable("multidriver-routing").contains("multidriver"));
}
