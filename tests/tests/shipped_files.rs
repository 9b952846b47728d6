//! The files the repository ships beside the code: profile presets under
//! `profiles/` and example route sets under `examples/routes/`.

use std::path::{Path, PathBuf};

use multidriver::scoring::{PRESET_NAMES, Profile, RacePlan, RouteSet};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn toml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn profile_files_are_exactly_the_presets() {
    let files = toml_files("profiles");
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut expected: Vec<String> = PRESET_NAMES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected, "one file per preset, nothing else");
    for (file, name) in files.iter().zip(&names) {
        let text = std::fs::read_to_string(file).unwrap();
        let loaded =
            Profile::from_toml_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(
            loaded,
            Profile::preset(name).unwrap(),
            "{} differs from the built-in preset",
            file.display()
        );
    }
}

#[test]
fn example_route_sets_rank_under_every_preset() {
    let files = toml_files("examples/routes");
    assert!(!files.is_empty());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let set =
            RouteSet::from_toml_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for profile in Profile::presets() {
            let ranking = set.rank(&profile);
            assert_eq!(ranking.entries().len(), set.routes.len());
            let plan = RacePlan::new(&ranking, &set.routes, &profile.racing);
            assert!(
                !plan.is_empty(),
                "{} under {}: nothing to dial",
                file.display(),
                profile.name
            );
            assert!(plan.attempts().len() <= profile.racing.max_attempts as usize);
        }
    }
}

/// The commute example is the README's main command; its story must hold:
/// the measured LAN QUIC route wins everywhere, and 4G is last under the
/// battery-minded profiles.
#[test]
fn commute_example_tells_its_story() {
    let text = std::fs::read_to_string(repo().join("examples/routes/commute.toml")).unwrap();
    let set = RouteSet::from_toml_str(&text).unwrap();
    let addr = |profile: &Profile, i: usize| {
        let ranking = set.rank(profile);
        set.routes[ranking.entries()[i].index].id.addr.to_string()
    };
    for profile in Profile::presets() {
        assert_eq!(
            addr(&profile, 0),
            "/ip4/192.168.1.20/udp/4001/quic-v1",
            "{}",
            profile.name
        );
    }
    for profile in [Profile::battery_saver(), Profile::background()] {
        let last = set.routes.len() - 1;
        assert_eq!(
            addr(&profile, last),
            "/ip4/203.0.113.45/tcp/4001",
            "{}",
            profile.name
        );
    }
}
