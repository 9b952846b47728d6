//! `multidriver rendezvous` as a real process: restart after `kill -9`,
//! graceful shutdown, `/metrics`, configuration layering and operator
//! errors. Stock rust-libp2p rendezvous clients talk to it over loopback.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::rendezvous::{self, Namespace};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, noise, tcp, yamux};

const BIN: &str = env!("CARGO_BIN_EXE_multidriver");
/// Every wait ends by then.
const DEADLINE: Duration = Duration::from_secs(30);

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "md-cli-rv-{tag}-{}-{}",
            std::process::id(),
            PeerId::random().to_base58().get(40..).unwrap_or("x")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `multidriver rendezvous run`; killed on drop.
struct Point {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Point {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Point {
    fn start(dir: &TempDir, extra: &[&str]) -> Point {
        let mut child = Command::new(BIN)
            .args(["rendezvous", "run", "--key"])
            .arg(dir.path("key"))
            .arg("--db")
            .arg(dir.path("rv.db"))
            .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("multidriver runs");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::sync_channel(256);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Point {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`; returns the rest.
    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                }
                Err(_) => panic!("no `{prefix}` line; saw {:?}", self.seen),
            }
        }
    }

    fn addr(&mut self) -> Multiaddr {
        self.wait_for("listening on ").parse().unwrap()
    }
}

fn genkey(dir: &TempDir) -> PeerId {
    let out = Command::new(BIN)
        .args(["rendezvous", "genkey", "--out"])
        .arg(dir.path("key"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn point_id(addr: &Multiaddr) -> PeerId {
    match addr.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(id)) => id,
        _ => panic!("no /p2p in {addr}"),
    }
}

fn client() -> Swarm<rendezvous::client::Behaviour> {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| rendezvous::client::Behaviour::new(key.clone()))
        .unwrap()
        .build();
    swarm.add_external_address("/ip4/127.0.0.1/tcp/9".parse().unwrap());
    swarm
}

async fn next_event(swarm: &mut Swarm<rendezvous::client::Behaviour>) -> rendezvous::client::Event {
    tokio::time::timeout(DEADLINE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(e) => return e,
                SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial: {error}"),
                _ => {}
            }
        }
    })
    .await
    .expect("a rendezvous event in time")
}

/// Registers a fresh client in `ns` at `point`; returns its peer id.
async fn register(point: &Multiaddr, ns: &str) -> PeerId {
    let mut c = client();
    c.dial(point.clone()).unwrap();
    c.behaviour_mut()
        .register(Namespace::new(ns.into()).unwrap(), point_id(point), None)
        .unwrap();
    match next_event(&mut c).await {
        rendezvous::client::Event::Registered { .. } => *c.local_peer_id(),
        other => panic!("expected Registered, got {other:?}"),
    }
}

/// Discovers `ns` at `point` with a fresh client; the peers found.
async fn discover(point: &Multiaddr, ns: &str) -> Vec<PeerId> {
    let mut c = client();
    c.dial(point.clone()).unwrap();
    c.behaviour_mut().discover(
        Some(Namespace::new(ns.into()).unwrap()),
        None,
        None,
        point_id(point),
    );
    match next_event(&mut c).await {
        rendezvous::client::Event::Discovered { registrations, .. } => {
            registrations.iter().map(|r| r.record.peer_id()).collect()
        }
        other => panic!("expected Discovered, got {other:?}"),
    }
}

#[tokio::test]
async fn a_registration_survives_kill_dash_nine() {
    let dir = TempDir::new("kill9");
    let id = genkey(&dir);
    let mut first = Point::start(&dir, &[]);
    assert_eq!(first.wait_for("peer id: "), id.to_string());
    let addr = first.addr();
    let registered = register(&addr, "survivors").await;

    // SIGKILL: no shutdown path runs.
    first.child.kill().unwrap();
    let status = first.child.wait().unwrap();
    assert!(!status.success(), "killed, not exited: {status:?}");
    drop(first);

    let mut second = Point::start(&dir, &[]);
    assert_eq!(
        second.wait_for("peer id: "),
        id.to_string(),
        "same key, same id"
    );
    second.wait_for("1 registrations in sqlite ");
    let addr = second.addr();
    assert_eq!(discover(&addr, "survivors").await, [registered]);
}

#[test]
fn sigterm_stops_it_cleanly() {
    let dir = TempDir::new("term");
    genkey(&dir);
    let mut point = Point::start(&dir, &[]);
    point.addr();
    let killed = Command::new("kill")
        .args(["-TERM", &point.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    point.wait_for("stopping");
    let status = wait_timeout(&mut point.child);
    assert!(status.success(), "{status:?}");
}

fn wait_timeout(child: &mut Child) -> std::process::ExitStatus {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < deadline, "did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test]
async fn metrics_show_ours_and_libp2ps() {
    let dir = TempDir::new("metrics");
    genkey(&dir);
    let mut point = Point::start(&dir, &["--metrics", "127.0.0.1:0"]);
    let url = point.wait_for("metrics on http://");
    let host = url.trim_end_matches("/metrics").to_owned();
    let addr = point.addr();
    register(&addr, "metered").await;
    let page = http_get(&host, "/metrics");
    assert!(page.starts_with("HTTP/1.1 200 OK"), "{page}");
    assert!(
        page.contains(r#"multidriver_rendezvous_requests_total{kind="register",status="ok"} 1"#),
        "{page}"
    );
    assert!(
        page.contains("multidriver_rendezvous_registrations 1"),
        "{page}"
    );
    assert!(
        page.contains("libp2p_swarm_connections_incoming_total"),
        "{page}"
    );
    assert!(
        !page.contains("# EOF"),
        "text format, no OpenMetrics terminator"
    );
    assert_prometheus_text(page.split_once("\r\n\r\n").unwrap().1);
    assert!(http_get(&host, "/health").contains("\r\n\r\nok\nstore: sqlite "));
    assert!(http_get(&host, "/nope").starts_with("HTTP/1.1 404"));

    // Clients that connect and never send a request cannot keep a health
    // check out: more of them than the endpoint serves at once.
    let idle: Vec<std::net::TcpStream> = (0..40)
        .map(|_| std::net::TcpStream::connect(&host).unwrap())
        .collect();
    let asked = std::time::Instant::now();
    assert!(http_get(&host, "/health").contains("\r\n\r\nok\nstore: sqlite "));
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "the health answer waited {:?} behind idle connections",
        asked.elapsed()
    );
    drop(idle);
}

/// One valid Prometheus text exposition (format 0.0.4): every sample
/// belongs to the family of the `# TYPE` line before it (a counter's
/// samples carry its name exactly; histograms and summaries add
/// `_bucket`, `_sum`, `_count`), each family is typed once, and no
/// OpenMetrics-only line appears.
fn assert_prometheus_text(body: &str) {
    let mut typed: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut current: Option<(String, String)> = None;
    for line in body.lines().filter(|l| !l.is_empty()) {
        assert!(
            !line.starts_with("# UNIT") && line != "# EOF",
            "OpenMetrics line: {line}"
        );
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("a TYPE line names a type");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                typed.insert(name.to_owned(), kind.to_owned()).is_none(),
                "typed twice: {line}"
            );
            current = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap();
        let (family, kind) = current
            .as_ref()
            .unwrap_or_else(|| panic!("a sample before any TYPE: {line}"));
        let ok = match kind.as_str() {
            "histogram" | "summary" => [
                family.clone(),
                format!("{family}_bucket"),
                format!("{family}_sum"),
                format!("{family}_count"),
            ]
            .contains(&name.to_owned()),
            _ => name == family,
        };
        assert!(ok, "sample {name} under `# TYPE {family} {kind}`");
    }
    assert!(!typed.is_empty());
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

#[test]
fn config_file_then_environment_then_flags() {
    let dir = TempDir::new("config");
    let file = dir.path("rv.toml");
    std::fs::write(
        &file,
        "db = \"from-file.db\"\nlisten = [\"/ip4/127.0.0.1/tcp/4100\"]\n\
         [limits]\nmax_registrations = 11\nmax_registrations_per_peer = 3\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let out = run(
        &[
            "rendezvous",
            "run",
            "--config",
            file,
            "--max-registrations",
            "13",
            "--print-config",
        ],
        &[
            ("MULTIDRIVER_RENDEZVOUS_MAX_REGISTRATIONS", "12"),
            ("MULTIDRIVER_RENDEZVOUS_DB", "from-env.db"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8(out.stdout).unwrap();
    let config: toml::Table = printed.parse().unwrap();
    assert_eq!(config["db"].as_str(), Some("from-env.db"));
    assert_eq!(
        config["listen"][0].as_str(),
        Some("/ip4/127.0.0.1/tcp/4100")
    );
    assert_eq!(config["limits"]["max_registrations"].as_integer(), Some(13));
    assert_eq!(
        config["limits"]["max_registrations_per_peer"].as_integer(),
        Some(3)
    );
    // What it printed reads back as a config file.
    let again = dir.path("again.toml");
    std::fs::write(&again, &printed).unwrap();
    let out = run(
        &[
            "rendezvous",
            "run",
            "--config",
            again.to_str().unwrap(),
            "--print-config",
        ],
        &[],
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), printed);
}

/// A second point on a port the first holds must refuse to start (libp2p-tcp's
/// SO_REUSEPORT would let both listen, and clients would be split between
/// them), and must not have created its database.
#[test]
fn a_taken_port_is_refused_before_the_database_is_created() {
    let first_dir = TempDir::new("taken-a");
    genkey(&first_dir);
    let mut first = Point::start(&first_dir, &[]);
    let mut addr = first.addr();
    if matches!(
        addr.iter().last(),
        Some(libp2p::multiaddr::Protocol::P2p(_))
    ) {
        addr.pop();
    }
    let port = addr
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
            _ => None,
        })
        .unwrap();

    let dir = TempDir::new("taken-b");
    genkey(&dir);
    let second = |extra: &[&str]| {
        let key = dir.path("key").display().to_string();
        let db = dir.path("rv.db").display().to_string();
        let mut args = vec!["rendezvous", "run", "--key", &key, "--db", &db];
        args.extend_from_slice(extra);
        run(&args, &[])
    };
    let addr = addr.to_string();
    let out = second(&["--listen", &addr]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("TCP port {port}")) && err.contains("already in use"),
        "{err}"
    );
    assert!(!dir.path("rv.db").exists(), "the database was created");

    let metrics = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = metrics.local_addr().unwrap().to_string();
    let out = second(&["--listen", "/ip4/127.0.0.1/tcp/0", "--metrics", &taken]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("metrics on {taken}")), "{err}");
    assert!(!dir.path("rv.db").exists(), "the database was created");
    // The first point still answers alone.
    assert!(first.child.try_wait().unwrap().is_none());
}

#[test]
fn a_shared_registry_comes_from_the_variable_and_a_bad_url_is_named() {
    let url = "postgres://rendezvous@db.internal:5432/rendezvous?sslmode=require";
    let out = run(
        &["rendezvous", "run", "--print-config"],
        &[("MULTIDRIVER_RENDEZVOUS_STORE", url)],
    );
    assert!(out.status.success(), "{out:?}");
    let config: toml::Table = String::from_utf8(out.stdout).unwrap().parse().unwrap();
    assert_eq!(config["store"].as_str(), Some(url));
    assert_eq!(config["store_pool_size"].as_integer(), Some(8));

    let out = run(
        &["rendezvous", "run", "--print-config"],
        &[(
            "MULTIDRIVER_RENDEZVOUS_STORE",
            "mysql://db.internal/rendezvous",
        )],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("is not a postgres:// URL")
            && err.contains("the environment variable MULTIDRIVER_RENDEZVOUS_STORE"),
        "{err}"
    );
    // In the file, the error names the field.
    let dir = TempDir::new("bad-store");
    let file = dir.path("rv.toml");
    std::fs::write(
        &file,
        "store = \"postgres://db.internal/rv?sslmode=verify-full\"\n",
    )
    .unwrap();
    let out = run(
        &[
            "rendezvous",
            "run",
            "--config",
            file.to_str().unwrap(),
            "--print-config",
        ],
        &[],
    );
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("config store: "), "{err}");
}

#[test]
fn a_bad_environment_value_names_the_variable() {
    let out = run(
        &["rendezvous", "run", "--print-config"],
        &[("MULTIDRIVER_RENDEZVOUS_MAX_TTL", "a week")],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("'a week'")
            && err.contains("the environment variable MULTIDRIVER_RENDEZVOUS_MAX_TTL"),
        "{err}"
    );
    // The same value given as the flag names the flag.
    let out = run(
        &["rendezvous", "run", "--print-config", "--max-ttl", "a week"],
        &[],
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("--max-ttl") && !err.contains("MULTIDRIVER_RENDEZVOUS_MAX_TTL"),
        "{err}"
    );
}

#[test]
fn operator_mistakes_are_named() {
    let dir = TempDir::new("mistakes");
    let bad = dir.path("bad.toml");
    std::fs::write(&bad, "[limits]\nmax_ttl = \"long\"\n").unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--config".into(), bad.display().to_string()],
            "max_ttl",
        ),
        (
            vec!["--key".into(), dir.path("missing").display().to_string()],
            "genkey",
        ),
        (
            vec![
                "--min-ttl".into(),
                "10".into(),
                "--max-ttl".into(),
                "5".into(),
            ],
            "limits.min_ttl",
        ),
        (
            vec!["--default-ttl".into(), "5".into()],
            "limits.default_ttl",
        ),
        (vec!["--min-ttl".into(), "0".into()], "at least 1 s"),
        (
            vec!["--listen".into(), "not-an-address".into()],
            "not-an-address",
        ),
        (
            vec!["--durability".into(), "sometimes".into()],
            "process-crash or power-loss",
        ),
    ];
    for (args, expected) in cases {
        let mut all = vec!["rendezvous".to_owned(), "run".to_owned()];
        all.extend(args);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let out = run(&refs, &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{all:?} should fail");
        assert!(err.contains(expected), "{all:?}: `{expected}` not in {err}");
    }
    // genkey never overwrites.
    genkey(&dir);
    let out = run(
        &[
            "rendezvous",
            "genkey",
            "--out",
            dir.path("key").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
}

#[test]
fn a_second_point_on_the_same_database_is_refused() {
    let dir = TempDir::new("lock");
    genkey(&dir);
    let mut first = Point::start(&dir, &[]);
    first.addr();
    let out = Command::new(BIN)
        .args(["rendezvous", "run", "--key"])
        .arg(dir.path("key"))
        .arg("--db")
        .arg(dir.path("rv.db"))
        .args(["--listen", "/ip4/127.0.0.1/tcp/0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked by another process"), "{err}");
    assert!(err.contains(&*dir.path("rv.db").to_string_lossy()), "{err}");
}

#[derive(libp2p::swarm::NetworkBehaviour)]
struct RelayClient {
    relay: libp2p::relay::client::Behaviour,
    ping: libp2p::ping::Behaviour,
}

fn relay_client() -> Swarm<RelayClient> {
    SwarmBuilder::with_existing_identity(libp2p::identity::Keypair::generate_ed25519())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_, relay| RelayClient {
            relay,
            ping: libp2p::ping::Behaviour::default(),
        })
        .unwrap()
        .build()
}

#[tokio::test]
async fn with_relay_a_peer_behind_the_point_is_reached_through_it() {
    use libp2p::multiaddr::Protocol;
    let dir = TempDir::new("relay");
    genkey(&dir);
    let mut point = Point::start(&dir, &["--relay", "--metrics", "127.0.0.1:0"]);
    let url = point.wait_for("metrics on http://");
    let host = url.trim_end_matches("/metrics").to_owned();
    let addr = point.addr();
    let circuit = addr.clone().with(Protocol::P2pCircuit);
    // A reserves a slot on the point (a stock relay client)…
    let mut a = relay_client();
    let a_id = *a.local_peer_id();
    a.listen_on(circuit.clone()).unwrap();
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let SwarmEvent::Behaviour(RelayClientEvent::Relay(
                libp2p::relay::client::Event::ReservationReqAccepted { .. },
            )) = a.select_next_some().await
            {
                return;
            }
        }
    })
    .await
    .expect("a reservation");
    // …and B, which knows only the point, reaches A through it.
    let mut b = relay_client();
    b.dial(circuit.with(Protocol::P2p(a_id))).unwrap();
    tokio::time::timeout(DEADLINE, async {
        loop {
            tokio::select! {
                _ = a.select_next_some() => {}
                e = b.select_next_some() => match e {
                    SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } if peer_id == a_id => {
                        assert!(endpoint.get_remote_address().iter().any(|p| p == Protocol::P2pCircuit));
                        return;
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => panic!("through the relay: {error}"),
                    _ => {}
                },
            }
        }
    })
    .await
    .expect("a relayed connection");
    let page = http_get(&host, "/metrics");
    assert!(
        page.contains(
            r#"multidriver_rendezvous_relay_reservation_requests_total{status="accepted"} 1"#
        ),
        "{page}"
    );
    assert!(
        page.contains(
            r#"multidriver_rendezvous_relay_circuit_requests_total{status="accepted"} 1"#
        ),
        "{page}"
    );
}

/// At the common soft limit of 1024 open files the default 10 000
/// connections are out of reach: the point raises its soft limit toward
/// the hard one and says how many connections it can hold, with a warning
/// when that is under `max_connections`.
#[cfg(unix)]
#[test]
fn the_point_raises_its_open_file_limit_and_reports_its_connection_capacity() {
    let dir = TempDir::new("nofile");
    genkey(&dir);
    let start = |ulimits: &str| {
        let script = format!(
            "ulimit {ulimits} && exec \"$0\" rendezvous run --key \"$1\" --db \"$2\" --listen /ip4/127.0.0.1/tcp/0"
        );
        let mut child = Command::new("sh")
            .args(["-c", &script, BIN])
            .arg(dir.path("key"))
            .arg(dir.path("rv.db"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.starts_with("connections: "))
            .expect("a connections line");
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        (line, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // Room to raise: 256 soft, 4096 hard.
    let (line, err) = start("-Sn 256 && ulimit -Hn 4096");
    assert!(
        line.contains("at most 4032 at once") && line.contains("raised from 256"),
        "{line}"
    );
    assert!(err.contains("holds the point to 4032 connections"), "{err}");
    // Hard limit high enough: the configured limit.
    let (line, err) = start("-Sn 1024 && ulimit -Hn 20000");
    assert!(
        line.contains("at most 10000 at once") && line.contains("raised from 1024"),
        "{line}"
    );
    assert!(!err.contains("warning"), "{err}");
}
