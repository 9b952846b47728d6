//! The `multidriver` binary end to end: what it prints, and how it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_multidriver"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A failure: exit status 1, no panic, and an error line on stderr.
fn failure(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(o.stdout.is_empty());
    err
}

/// A file in the temporary directory, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn to_str(&self) -> &str {
        self.0.to_str().unwrap()
    }

    fn display(&self) -> std::path::Display<'_> {
        self.0.display()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn temp_file(name: &str, content: &str) -> TempFile {
    let path = std::env::temp_dir().join(format!("multidriver-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    TempFile(path)
}

#[test]
fn rank_prints_the_order_the_breakdown_and_the_race_plan() {
    let o = run(&[
        "rank",
        "examples/routes/commute.toml",
        "--profile",
        "balanced",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let first = out
        .lines()
        .find(|l| l.starts_with("#1 "))
        .expect("a #1 row");
    assert!(
        first.ends_with("/ip4/192.168.1.20/udp/4001/quic-v1"),
        "{first}"
    );
    for part in [
        "latency",
        "energy",
        "reliability",
        "provenance",
        "costly link",
        "behind #1 by",
        "race plan",
        "at      0 ms",
    ] {
        assert!(out.contains(part), "missing `{part}` in:\n{out}");
    }
    // The 4G route's energy explains its place under battery-saver.
    let saver = stdout(&run(&[
        "rank",
        "examples/routes/commute.toml",
        "--profile",
        "battery-saver",
    ]));
    let last_row = saver
        .lines()
        .filter(|l| l.starts_with('#') && l.contains("  "))
        .nth(4)
        .unwrap();
    assert!(last_row.contains("cellular-4g"), "{saver}");
}

#[test]
fn profiles_list_and_show_round_trip() {
    let list = stdout(&run(&["profiles", "list"]));
    for name in ["performance", "balanced", "battery-saver", "background"] {
        assert!(list.lines().any(|l| l.starts_with(name)), "{list}");
    }
    let shown = run(&["profiles", "show", "battery-saver"]);
    assert!(shown.status.success());
    let path = temp_file("saver.toml", &stdout(&shown));
    let again = run(&["profiles", "show", path.to_str()]);
    assert_eq!(stdout(&again), stdout(&shown));
    let ranked = run(&[
        "rank",
        "examples/routes/commute.toml",
        "--profile",
        path.to_str(),
    ]);
    assert!(stdout(&ranked).contains("under profile `battery-saver`"));
}

#[test]
fn unknown_profile_lists_the_presets() {
    let err = failure(&run(&[
        "rank",
        "examples/routes/commute.toml",
        "--profile",
        "turbo",
    ]));
    assert!(
        err.contains("turbo") && err.contains("battery-saver"),
        "{err}"
    );
    let err = failure(&run(&["profiles", "show", "turbo"]));
    assert!(err.contains("turbo"), "{err}");
}

#[test]
fn a_missing_profile_file_is_named_as_a_missing_file() {
    for given in ["no/such/profile.toml", "mine.toml", "profiles/nope"] {
        let err = failure(&run(&[
            "rank",
            "examples/routes/commute.toml",
            "--profile",
            given,
        ]));
        assert!(
            err.contains(&format!("profile file {given} does not exist")),
            "{err}"
        );
        assert!(!err.contains("unknown profile"), "{err}");
    }
}

#[test]
fn profiles_show_writes_the_shipped_commented_file() {
    for name in ["performance", "balanced", "battery-saver", "background"] {
        let shown = stdout(&run(&["profiles", "show", name]));
        let shipped =
            std::fs::read_to_string(repo().join(format!("profiles/{name}.toml"))).unwrap();
        assert_eq!(shown, shipped, "{name}");
    }
}

#[test]
fn missing_file_is_named() {
    let err = failure(&run(&["rank", "no/such/routes.toml"]));
    assert!(
        err.contains("no/such/routes.toml") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn malformed_route_set_names_file_line_and_field() {
    let text = std::fs::read_to_string(repo().join("examples/routes/commute.toml"))
        .unwrap()
        .replace("medium = \"cellular-4g\"", "medium = \"fibre\"");
    let line = text.lines().position(|l| l.contains("\"fibre\"")).unwrap() + 1;
    let path = temp_file("bad-routes.toml", &text);
    let err = failure(&run(&["rank", path.to_str()]));
    assert!(
        err.contains(&format!("{}: line {line},", path.display())),
        "{err}"
    );
    assert!(
        err.contains("medium = \"fibre\"") && err.contains("unknown medium"),
        "{err}"
    );
}

#[test]
fn invalid_profile_file_names_file_line_field_and_range() {
    let text = std::fs::read_to_string(repo().join("profiles/balanced.toml"))
        .unwrap()
        .replace("max_attempts = 3", "max_attempts = 40");
    let line = text
        .lines()
        .position(|l| l.starts_with("max_attempts"))
        .unwrap()
        + 1;
    let path = temp_file("bad-profile.toml", &text);
    let err = failure(&run(&[
        "rank",
        "examples/routes/commute.toml",
        "--profile",
        path.to_str(),
    ]));
    assert!(err.contains(&format!("line {line},")), "{err}");
    assert!(
        err.contains("racing.max_attempts = 40") && err.contains("1..=16"),
        "{err}"
    );
}

fn temp_bytes(name: &str, content: &[u8]) -> TempFile {
    let path = std::env::temp_dir().join(format!("multidriver-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, content).unwrap();
    TempFile(path)
}

#[test]
fn binary_input_is_an_error_not_a_panic() {
    let path = temp_file("binary.toml", "\u{0}\u{1}\u{2}garbage = = =");
    failure(&run(&["rank", path.to_str()]));
    let invalid_utf8 = temp_bytes("latin1.toml", b"now_ms = 1\npeer = \"\xff\xfe\"\n");
    let err = failure(&run(&["rank", invalid_utf8.to_str()]));
    assert!(
        err.contains("cannot read") && err.contains("UTF-8"),
        "{err}"
    );
    let dir = repo().join("examples");
    let err = failure(&run(&["rank", dir.to_str().unwrap()]));
    assert!(err.contains("cannot read"), "{err}");
}

#[test]
fn oversized_input_is_refused() {
    let big = temp_bytes("big.toml", &vec![b'#'; 2 << 20]);
    let err = failure(&run(&["rank", big.to_str()]));
    assert!(err.contains("larger than 1048576 bytes"), "{err}");
}

#[test]
fn a_closed_output_pipe_is_not_a_panic() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_multidriver"))
        .args(["rank", "examples/routes/commute.toml"])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the command writes.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
