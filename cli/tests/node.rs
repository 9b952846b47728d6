//! `multidriver node` end to end: real processes on loopback that find each
//! other through a rendezvous point, and how the command fails.
//!
//! Every process a test starts is killed and reaped when its guard drops,
//! on every path including a failed assertion; every wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a test waits for one event: above the engine's periodic
/// look-up of a subscribed namespace (30 s in the foreground), so a
/// registration that lands just after the other node's first look-up is
/// still found.
const WAIT: Duration = Duration::from_secs(45);

/// How long a process that should stop by itself may take.
const EXIT_WAIT: Duration = Duration::from_secs(30);

/// Lines of a child's stdout buffered before its reader blocks (and with
/// it, the child's writes).
const LINE_BUFFER: usize = 1024;

/// The most stderr kept per child, for failure messages.
const STDERR_KEEP: usize = 64 * 1024;

/// A `multidriver rendezvous run` process for the nodes under test, killed
/// (and its key and database removed) when dropped.
struct RendezvousPoint {
    /// Its address, ending in `/p2p/<peer id>`.
    addr: String,
    _proc: Proc,
    dir: std::path::PathBuf,
}

impl Drop for RendezvousPoint {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `multidriver rendezvous run` on loopback TCP, with a key from
/// `multidriver rendezvous genkey`, and takes its address from its first
/// `listening on <addr>` line.
fn rendezvous_point() -> RendezvousPoint {
    rendezvous_point_with(&[])
}

/// The same with more flags for `rendezvous run`.
fn rendezvous_point_with(extra: &[&str]) -> RendezvousPoint {
    let dir = std::env::temp_dir().join(format!(
        "md-node-rv-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temp dir");
    let key = dir.join("key");
    let db = dir.join("rv.db");
    let (key, db) = (key.to_str().expect("utf-8"), db.to_str().expect("utf-8"));
    let genkey = Command::new(env!("CARGO_BIN_EXE_multidriver"))
        .args(["rendezvous", "genkey", "--out", key])
        .output()
        .expect("genkey runs");
    assert!(genkey.status.success(), "genkey: {genkey:?}");
    let mut args = vec![
        "rendezvous",
        "run",
        "--key",
        key,
        "--db",
        db,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ];
    args.extend_from_slice(extra);
    let proc = spawn(&args);
    let deadline = Instant::now() + WAIT;
    let addr = loop {
        match proc
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(line) => {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    break addr.to_owned();
                }
            }
            Err(e) => panic!(
                "the rendezvous point did not start ({e}): {}",
                proc.stderr()
            ),
        }
    };
    RendezvousPoint {
        addr,
        _proc: proc,
        dir,
    }
}

/// A running `multidriver` process, killed and reaped when dropped.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    /// Every stdout line read so far.
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
    /// The thread reading stderr; joined once the process exited, so that
    /// all of stderr is in.
    stderr_reader: Option<JoinHandle<()>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(out: impl Read, tx: &SyncSender<String>) {
    for line in BufReader::new(out).lines() {
        let Ok(line) = line else { return };
        if tx.send(line).is_err() {
            return;
        }
    }
}

fn keep_stderr(err: impl Read, keep: &Mutex<String>) {
    for line in BufReader::new(err).lines() {
        let Ok(line) = line else { return };
        let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
        if k.len() + line.len() < STDERR_KEEP {
            k.push_str(&line);
            k.push('\n');
        }
    }
}

/// Starts `multidriver ARGS`.
fn spawn(args: &[&str]) -> Proc {
    let mut child = Command::new(env!("CARGO_BIN_EXE_multidriver"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let (tx, lines) = sync_channel(LINE_BUFFER);
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || forward_lines(out, &tx));
    let stderr = Arc::new(Mutex::new(String::new()));
    let err = child.stderr.take().expect("piped stderr");
    let keep = Arc::clone(&stderr);
    let stderr_reader = Some(std::thread::spawn(move || keep_stderr(err, &keep)));
    Proc {
        child,
        lines,
        seen: Vec::new(),
        stderr,
        stderr_reader,
    }
}

impl Proc {
    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every JSON event read so far; a line that is not one JSON object
    /// with `event` and `elapsed_ms` fails the test.
    fn events(&self) -> Vec<Value> {
        self.seen.iter().map(|l| event(l)).collect()
    }

    /// The first event (already read or still to come) that `want` accepts.
    fn wait_for(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        if let Some(e) = self.events().into_iter().find(|e| want(e)) {
            return e;
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let e = event(&line);
                    self.seen.push(line);
                    if want(&e) {
                        return e;
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => panic!(
                    "no {what} within {WAIT:?}\nstdout:\n{}\nstderr:\n{}",
                    self.seen.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    /// Waits for the process to exit by itself, reading all of its stdout.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_WAIT;
        loop {
            while let Ok(line) = self.lines.try_recv() {
                self.seen.push(line);
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // The rest of stdout, until the reader sees its end.
                while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
                    self.seen.push(line);
                }
                if let Some(reader) = self.stderr_reader.take() {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {EXIT_WAIT:?}\nstdout:\n{}\nstderr:\n{}",
                self.seen.join("\n"),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One JSON line: an object with `event` and `elapsed_ms`.
fn event(line: &str) -> Value {
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
    assert!(v["event"].is_string(), "no event: {line}");
    assert!(v["elapsed_ms"].is_u64(), "no elapsed_ms: {line}");
    v
}

fn is(e: &Value, kind: &str) -> bool {
    e["event"] == kind
}

/// A loopback TCP address where nothing listens, as a rendezvous point
/// with a made-up peer id.
fn nobody() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let id = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    format!("/ip4/127.0.0.1/tcp/{port}/p2p/{id}")
}

#[test]
fn two_nodes_find_each_other_through_a_rendezvous_point_and_connect_over_loopback() {
    let point = rendezvous_point();
    let args = [
        "node",
        "--namespace",
        "node-test",
        "--rendezvous",
        &point.addr,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--json",
        "--exit-after",
        "300",
    ];
    let mut a = spawn(&args);
    let a_id = a.wait_for("a started", |e| is(e, "started"))["peer"]
        .as_str()
        .expect("a peer id")
        .to_owned();
    let listening = a.wait_for("a listening", |e| is(e, "listening"));
    assert!(
        listening["addr"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/p2p/{a_id}")),
        "{listening}"
    );
    let mut b = spawn(&args);
    let b_id = b.wait_for("b started", |e| is(e, "started"))["peer"]
        .as_str()
        .expect("a peer id")
        .to_owned();

    for (node, other) in [(&mut a, &b_id), (&mut b, &a_id)] {
        let found = node.wait_for(&format!("discovered {other}"), |e| {
            is(e, "discovered") && e["peer"] == other.as_str()
        });
        assert_eq!(found["source"], "rendezvous", "{found}");
        let addrs = found["addrs"].as_array().expect("addrs");
        assert!(
            addrs
                .iter()
                .any(|a| a.as_str().unwrap().starts_with("/ip4/127.0.0.1/tcp/")),
            "{found}"
        );
        let route = node.wait_for(&format!("connected to {other}"), |e| {
            is(e, "connected") && e["peer"] == other.as_str()
        });
        assert!(
            route["addr"]
                .as_str()
                .unwrap()
                .starts_with("/ip4/127.0.0.1/"),
            "{route}"
        );
        assert_eq!(route["medium"], "loopback", "{route}");
        assert!(route["interface"].as_str().unwrap().starts_with("if"));
        assert!(route["why"].as_str().is_some_and(|w| !w.is_empty()));
        // We dialled (a cost, why) or they did (no cost of ours).
        assert_eq!(route["inbound"] == true, route["cost"].is_null(), "{route}");
    }
    for node in [&a, &b] {
        assert!(
            node.events().iter().all(|e| !is(e, "warning")),
            "{:?}",
            node.seen
        );
    }
}

#[test]
fn a_node_not_known_public_reserves_on_a_relaying_point() {
    // The point relays. The node listens on loopback only, which it
    // announces but which is no public address: its reachability is
    // unknown, so it reserves on the point at once and its relayed address
    // becomes a listening address. (AutoNAT gives no verdict here: identify
    // offers no candidate that is already an external address.)
    let point = rendezvous_point_with(&["--relay"]);
    let mut a = spawn(&[
        "node",
        "--namespace",
        "relay-test",
        "--rendezvous",
        &point.addr,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--json",
        "--exit-after",
        "300",
    ]);
    let a_id = a.wait_for("started", |e| is(e, "started"))["peer"]
        .as_str()
        .expect("a peer id")
        .to_owned();
    let circuit = format!("{}/p2p-circuit/p2p/{a_id}", point.addr);
    a.wait_for("a relayed listening address", |e| {
        is(e, "listening") && e["addr"] == circuit.as_str()
    });
    assert!(a.events().iter().all(|e| !is(e, "warning")), "{:?}", a.seen);
}

#[test]
fn an_unreachable_rendezvous_point_is_a_warning_and_exit_after_stops_cleanly() {
    let point = nobody();
    let mut n = spawn(&[
        "node",
        "--namespace",
        "node-test",
        "--rendezvous",
        &point,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--json",
        "--exit-after",
        "3",
    ]);
    let status = n.wait_exit();
    assert!(status.success(), "{status}\nstderr:\n{}", n.stderr());
    let events = n.events();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(events[0]["drivers"][0], format!("rendezvous {point}"));
    assert_eq!(events[0]["profile"], "balanced");
    assert!(kinds.contains(&"listening"), "{kinds:?}");
    let warning = events
        .iter()
        .find(|e| is(e, "warning") && e["kind"] == "rendezvous_unreachable")
        .unwrap_or_else(|| panic!("a warning about the point: {:?}", n.seen));
    assert_eq!(warning["driver"], format!("rendezvous {point}"));
    assert!(
        warning["message"].as_str().unwrap().contains(&point),
        "{warning}"
    );
    let last = events.last().unwrap();
    assert!(is(last, "stopped"), "{last}");
    assert_eq!(last["reason"], "exit_after");
}

#[test]
fn human_output_goes_to_stdout_and_warnings_to_stderr() {
    let point = nobody();
    let mut n = spawn(&[
        "node",
        "--namespace",
        "node-test",
        "--rendezvous",
        &point,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--profile",
        "battery-saver",
        "--exit-after",
        "3",
    ]);
    let status = n.wait_exit();
    let (out, err) = (n.seen.clone(), n.stderr());
    assert!(status.success(), "{status}: {err}");
    assert!(
        out[0].starts_with("I am 12D3Koo") && out[0].contains("profile `battery-saver`"),
        "{out:?}"
    );
    assert!(
        out.iter()
            .any(|l| l.starts_with("listening on /ip4/127.0.0.1/tcp/") && l.contains("/p2p/")),
        "{out:?}"
    );
    assert_eq!(out.last().map(String::as_str), Some("stopped (exit_after)"));
    assert!(out.iter().all(|l| !l.starts_with("warning:")), "{out:?}");
    assert!(
        err.contains(&format!("warning: rendezvous point {point} unreachable")),
        "{err}"
    );
}

#[test]
fn sigterm_stops_the_node_with_status_0() {
    let mut n = spawn(&[
        "node",
        "--namespace",
        "node-test",
        "--rendezvous",
        &nobody(),
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--json",
    ]);
    n.wait_for("listening", |e| is(e, "listening"));
    let sent = Command::new("kill")
        .args(["-TERM", &n.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let status = n.wait_exit();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", n.stderr());
    let events = n.events();
    let last = events.last().unwrap();
    assert!(is(last, "stopped"), "{last}");
    assert_eq!(last["reason"], "terminate");
}

/// Runs the binary to its end, which must come at once.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let mut p = spawn(args);
    let status = p.wait_exit();
    let err = p.stderr();
    assert!(p.seen.is_empty(), "nothing on stdout: {:?}", p.seen);
    assert!(!err.contains("panicked"), "{err}");
    (status.code(), err)
}

#[test]
fn a_rendezvous_address_without_a_peer_id_is_refused_naming_it() {
    for bad in ["/ip4/127.0.0.1/tcp/4001", "rdv.example.com:4001"] {
        let (code, err) = refused(&["node", "--namespace", "x", "--rendezvous", bad]);
        assert!(matches!(code, Some(1 | 2)), "{code:?}: {err}");
        assert!(err.contains(bad), "{err}");
        assert!(err.contains("--rendezvous"), "{err}");
    }
    let (_, err) = refused(&[
        "node",
        "--namespace",
        "x",
        "--rendezvous",
        "/ip4/127.0.0.1/tcp/4001",
    ]);
    assert!(err.contains("must end with /p2p/<peer id>"), "{err}");
}

#[test]
fn without_a_discovery_driver_the_node_says_which_flags_to_give() {
    let (code, err) = refused(&["node", "--namespace", "x", "--json"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        err.trim_end(),
        "error: nothing to find peers with: give --rendezvous ADDR (repeatable) or --mdns"
    );
}

#[test]
fn an_unknown_profile_is_refused_before_the_node_starts() {
    let (code, err) = refused(&[
        "node",
        "--namespace",
        "x",
        "--rendezvous",
        &nobody(),
        "--profile",
        "no-such-profile",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unknown profile `no-such-profile`"), "{err}");
}

/// A node asked to listen on a port another process holds exits non-zero
/// naming the port, instead of sharing it through libp2p-tcp's
/// SO_REUSEPORT (which would split the peers who dial it between the two).
#[test]
fn a_taken_listen_port_is_refused_by_name() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let point = nobody();
    let mut n = spawn(&[
        "node",
        "--namespace",
        "node-test",
        "--rendezvous",
        &point,
        "--listen",
        &listen,
        "--exit-after",
        "10",
    ]);
    let status = n.wait_exit();
    assert!(!status.success(), "{status}");
    let err = n.stderr();
    assert!(
        err.contains(&format!("TCP port {port}")) && err.contains("already in use"),
        "{err}"
    );
}
