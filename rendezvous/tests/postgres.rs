//! A fleet of rendezvous points on one real PostgreSQL server: stock
//! rust-libp2p clients against three point processes sharing a registry.
//!
//! The test starts its own PostgreSQL cluster in a temporary directory on
//! a free loopback port (the distribution's server binaries; `.ci/run`
//! installs them) and a fresh database per scenario. Points run as child
//! processes of this test binary (it re-executes itself with
//! `MD_PG_POINT_URL` set), so one can be killed with SIGKILL.
//!
//! Without PostgreSQL the test fails under `CI=true` and says it was not
//! run otherwise.
//!
//! `cargo test -p multidriver-rendezvous --test postgres`

#[path = "pg/cluster.rs"]
mod cluster;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use cluster::Cluster;
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::rendezvous::{self, Cookie, ErrorCode, Namespace};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, noise, tcp, yamux};
use multidriver_rendezvous::backend::{AnswerBudget, Backend, Done, Op, Page};
use multidriver_rendezvous::postgres::PgOptions;
use multidriver_rendezvous::protocol as wire;
use multidriver_rendezvous::store::Caps;
use multidriver_rendezvous::{Config, Limits, PgStore, Server, ServerEvent, Store};

/// Every single wait ends by then.
const DEADLINE: Duration = Duration::from_secs(30);
/// A load scenario ends by then.
const LOAD_DEADLINE: Duration = Duration::from_secs(120);
/// The variable that makes this binary a point.
const POINT_URL: &str = "MD_PG_POINT_URL";
/// `max_registrations,max_registrations_per_peer` of a point.
const POINT_LIMITS: &str = "MD_PG_POINT_LIMITS";
/// A key file for the point (a new key when unset).
const POINT_KEY: &str = "MD_PG_POINT_KEY";
/// The CA file the point checks the database's certificate against.
const POINT_CA: &str = "MD_PG_POINT_CA";

/// One scenario, on the shared cluster and runtime.
type Scenario = dyn Fn(&mut Cluster, &tokio::runtime::Runtime);

/// Lines of a point's output waiting to be read (it prints a handful).
const POINT_LINES: usize = 64;

fn main() {
    if let Ok(url) = std::env::var(POINT_URL) {
        run_point(&url);
        return;
    }
    let mut cluster = match Cluster::start() {
        Ok(c) => c,
        Err(e) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                eprintln!("postgres tests cannot run: {e}");
                std::process::exit(1);
            }
            eprintln!("postgres tests NOT RUN (they fail under CI=true): {e}");
            return;
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tests: [(&str, &Scenario); 10] = [
        ("the_registry_answers_as_sqlite_does_op_for_op", &|c, rt| {
            rt.block_on(the_registry_answers_as_sqlite_does_op_for_op(c));
        }),
        (
            "one_points_writes_land_in_the_order_they_were_made",
            &|c, rt| {
                rt.block_on(one_points_writes_land_in_the_order_they_were_made(c));
            },
        ),
        ("registrations_and_cookies_carry_across_points", &|c, rt| {
            rt.block_on(registrations_and_cookies_carry_across_points(c));
        }),
        (
            "limits_are_exact_with_registrations_spread_over_three_points",
            &|c, rt| {
                rt.block_on(limits_are_exact_with_registrations_spread_over_three_points(c));
            },
        ),
        ("points_sharing_one_key_answer_as_one_point", &|c, rt| {
            rt.block_on(points_sharing_one_key_answer_as_one_point(c));
        }),
        (
            "expired_registrations_are_swept_once_by_the_fleet",
            &|c, rt| {
                rt.block_on(expired_registrations_are_swept_once_by_the_fleet(c));
            },
        ),
        (
            "tls_to_the_registry_is_verified_against_the_ca",
            &|c, rt| {
                rt.block_on(tls_to_the_registry_is_verified_against_the_ca(c));
            },
        ),
        ("a_newer_schema_is_refused_at_start", &|c, rt| {
            rt.block_on(a_newer_schema_is_refused_at_start(c));
        }),
        (
            "a_point_killed_under_load_loses_nothing_confirmed",
            &|c, rt| {
                rt.block_on(a_point_killed_under_load_loses_nothing_confirmed(c));
            },
        ),
        (
            "a_database_restart_under_load_is_unavailable_then_resumes",
            &|c, rt| {
                rt.block_on(a_database_restart_under_load_is_unavailable_then_resumes(c));
            },
        ),
    ];
    let filter = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut ran = 0;
    for (name, test) in tests {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        println!("test {name} ...");
        let started = Instant::now();
        test(&mut cluster, &runtime);
        println!(
            "test {name} ... ok ({:.1} s)",
            started.elapsed().as_secs_f64()
        );
        ran += 1;
    }
    println!("postgres: {ran} tests passed");
}

/// A fresh database for one scenario; its URL.
fn database(cluster: &Cluster, name: &str) -> String {
    cluster
        .psql(&format!("CREATE DATABASE {name} OWNER multidriver"))
        .unwrap();
    let url = cluster.url();
    let base = url.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

/// Runs one statement on the database at `url`; its first row.
async fn sql(url: &str, statement: &str) -> tokio_postgres::Row {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let task = tokio::spawn(connection);
    let row = client.query_one(statement, &[]).await.unwrap();
    drop(client);
    let _ = task.await;
    row
}

// ---------------------------------------------------------------- points

/// Child mode: one point on the registry at `url` until stdin closes.
fn run_point(url: &str) {
    let (max, per_peer) = std::env::var(POINT_LIMITS)
        .ok()
        .and_then(|v| {
            let (a, b) = v.split_once(',')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((10_000, 32));
    let config = Config {
        store: Some(url.to_owned()),
        store_timeout_secs: 2,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        metrics: Some("127.0.0.1:0".parse().unwrap()),
        store_ca: std::env::var(POINT_CA).ok().map(Into::into),
        sweep_interval_secs: 1,
        limits: Limits {
            max_registrations: max,
            max_registrations_per_peer: per_peer,
            // Short registrations, to see them expire.
            min_ttl: 1,
            ..Limits::default()
        },
        ..Config::default()
    };
    let key = match std::env::var(POINT_KEY) {
        Ok(path) => multidriver_rendezvous::keys::read(std::path::Path::new(&path)).unwrap(),
        Err(_) => Keypair::generate_ed25519(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async move {
        let prometheus = multidriver_rendezvous::install_recorder()?;
        let server = Server::new(config, key, Some(prometheus))?;
        println!("peer {}", server.peer_id());
        let (closed_tx, closed) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = closed_tx.send(());
        });
        server
            .run(
                async move {
                    let _ = closed.await;
                },
                |event| match event {
                    ServerEvent::Listening(a) => println!("listening {a}"),
                    ServerEvent::Metrics(a) => println!("metrics {a}"),
                    ServerEvent::Store { store, .. } => println!("store {store}"),
                    ServerEvent::Swept { expired, .. } => println!("swept {expired}"),
                    _ => {}
                },
            )
            .await
    });
    if let Err(e) = result {
        println!("error {e}");
        std::process::exit(1);
    }
}

/// A point process.
struct Point {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    id: PeerId,
    addr: Multiaddr,
    metrics: SocketAddr,
}

impl Point {
    fn start(url: &str, limits: (u64, u64)) -> Point {
        Point::start_with(url, limits, None)
    }

    fn start_with(url: &str, limits: (u64, u64), key: Option<&std::path::Path>) -> Point {
        Point::start_env(url, limits, key, None)
    }

    fn start_env(
        url: &str,
        limits: (u64, u64),
        key: Option<&std::path::Path>,
        ca: Option<&std::path::Path>,
    ) -> Point {
        let (child, stdin, lines) = spawn(url, limits, key, ca);
        let mut point = Point {
            child,
            stdin: Some(stdin),
            lines,
            id: PeerId::random(),
            addr: Multiaddr::empty(),
            metrics: "127.0.0.1:1".parse().unwrap(),
        };
        point.id = point.wait_for("peer ").parse().unwrap();
        point.wait_for("store postgres ");
        point.metrics = point.wait_for("metrics ").parse().unwrap();
        point.addr = point.wait_for("listening ").parse().unwrap();
        point
    }

    fn wait_for(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_owned();
                    }
                    assert!(!line.starts_with("error "), "the point failed: {line}");
                }
                Err(_) => panic!("the point printed no `{prefix}` line"),
            }
        }
    }

    /// SIGKILL: no shutdown path runs.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "killed, not exited: {status:?}");
    }

    /// `/health`'s status code and body.
    fn health(&self) -> (u16, String) {
        Point::health_at(self.metrics)
    }

    fn health_at(metrics: SocketAddr) -> (u16, String) {
        http_get(metrics, "/health")
    }

    /// A counter's value on `/metrics` (0 when it is not there yet).
    fn counter(&self, series: &str) -> u64 {
        let (code, page) = http_get(self.metrics, "/metrics");
        assert_eq!(code, 200);
        page.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }
}

/// One GET: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_owned();
    (code, body)
}

impl Drop for Point {
    fn drop(&mut self) {
        // Closing stdin stops the point; a point that does not stop in
        // time is killed.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_point(url: &str, limits: (u64, u64)) -> (Child, ChildStdin, mpsc::Receiver<String>) {
    spawn(url, limits, None, None)
}

fn spawn(
    url: &str,
    limits: (u64, u64),
    key: Option<&std::path::Path>,
    ca: Option<&std::path::Path>,
) -> (Child, ChildStdin, mpsc::Receiver<String>) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    if let Some(key) = key {
        command.env(POINT_KEY, key);
    }
    if let Some(ca) = ca {
        command.env(POINT_CA, ca);
    }
    let mut child = command
        .env(POINT_URL, url)
        .env(POINT_LIMITS, format!("{},{}", limits.0, limits.1))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::sync_channel(POINT_LINES);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, stdin, rx)
}

fn three(url: &str, limits: (u64, u64)) -> Vec<Point> {
    (0..3).map(|_| Point::start(url, limits)).collect()
}

// --------------------------------------------------------------- clients

type Client = Swarm<rendezvous::client::Behaviour>;

/// A stock rust-libp2p rendezvous client.
fn client() -> Client {
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
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    // The record needs an address; any will do for the point.
    swarm.add_external_address("/ip4/127.0.0.1/tcp/9".parse().unwrap());
    swarm
}

/// Dials `addr`; whether the connection came up.
async fn connect<B: libp2p::swarm::NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    addr: &Multiaddr,
) -> bool {
    if swarm.dial(addr.clone()).is_err() {
        return false;
    }
    tokio::time::timeout(DEADLINE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => return true,
                SwarmEvent::OutgoingConnectionError { .. } => return false,
                _ => {}
            }
        }
    })
    .await
    .unwrap_or(false)
}

async fn next(swarm: &mut Client) -> rendezvous::client::Event {
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let SwarmEvent::Behaviour(e) = swarm.select_next_some().await {
                return e;
            }
        }
    })
    .await
    .expect("a rendezvous event in time")
}

fn ns(s: &str) -> Namespace {
    Namespace::new(s.to_owned()).unwrap()
}

/// Registers and waits for the outcome: `Ok(())` or the error code.
async fn register(c: &mut Client, point: PeerId, namespace: &str) -> Result<(), ErrorCode> {
    c.behaviour_mut()
        .register(ns(namespace), point, None)
        .unwrap();
    loop {
        match next(c).await {
            rendezvous::client::Event::Registered { namespace: n, .. } if n == ns(namespace) => {
                return Ok(());
            }
            rendezvous::client::Event::RegisterFailed {
                namespace: n,
                error,
                ..
            } if n == ns(namespace) => return Err(error),
            _ => {}
        }
    }
}

/// One discover: the peers and namespaces on the page, and its cookie.
async fn discover(
    c: &mut Client,
    point: PeerId,
    namespace: Option<&str>,
    cookie: Option<Cookie>,
) -> (Vec<(PeerId, String)>, Cookie) {
    c.behaviour_mut()
        .discover(namespace.map(ns), cookie, None, point);
    loop {
        match next(c).await {
            rendezvous::client::Event::Discovered {
                registrations,
                cookie,
                ..
            } => {
                let found = registrations
                    .iter()
                    .map(|r| (r.record.peer_id(), r.namespace.to_string()))
                    .collect();
                return (found, cookie);
            }
            rendezvous::client::Event::DiscoverFailed { error, .. } => {
                panic!("discover failed: {error:?}")
            }
            _ => {}
        }
    }
}

/// Every registration the registry serves, through `point`, page by page.
async fn discover_everything(point: &Point) -> HashSet<(PeerId, String)> {
    let mut c = client();
    assert!(connect(&mut c, &point.addr).await);
    let mut all = HashSet::new();
    let mut cookie = None;
    loop {
        let (page, next_cookie) = discover(&mut c, point.id, None, cookie).await;
        if page.is_empty() {
            return all;
        }
        all.extend(page);
        cookie = Some(next_cookie);
    }
}

// ------------------------------------------------------------- scenarios

/// A store on the registry at `url`, its schema made.
async fn pg_store(url: &str, pool_size: usize) -> PgStore {
    let store = PgStore::new(&PgOptions {
        url: url.to_owned(),
        pool_size,
        timeout: Duration::from_secs(5),
        ca: None,
    })
    .unwrap();
    store.migrate().await.unwrap();
    store
}

/// A small deterministic generator (xorshift64*), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// A page as both stores must give it (what it was charged aside).
fn page_of(done: &Done) -> Page {
    match done {
        Done::Discover(page) => Page {
            charged: 0,
            ..page.clone()
        },
        other => panic!("a page, not {other:?}"),
    }
}

/// Random batches of registrations, refreshes and unregistrations at the
/// limits, time passing and sweeps, run on PostgreSQL and on SQLite: the
/// same outcomes, positions and pages.
async fn the_registry_answers_as_sqlite_does_op_for_op(cluster: &mut Cluster) {
    let url = database(cluster, "md_twin");
    let mut pg = pg_store(&url, 2).await;
    let mut lite = Store::in_memory().unwrap();
    let answers = AnswerBudget::unlimited();
    let peers: Vec<PeerId> = (0..6).map(|_| PeerId::random()).collect();
    let namespaces = ["a", "b", "c", "d\0nul"];
    let caps = Caps {
        per_peer: 2,
        total: 8,
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut now = 1_000_000;
    for round in 0..300u64 {
        let ops: Vec<Op> = (0..1 + rng.below(6))
            .map(|_| {
                let peer = peers[rng.below(peers.len() as u64) as usize];
                let namespace = namespaces[rng.below(4) as usize].to_owned();
                if rng.below(4) == 0 {
                    Op::Unregister { peer, namespace }
                } else {
                    Op::Register {
                        peer,
                        namespace,
                        record: vec![round as u8; 1 + rng.below(20) as usize],
                        expires: now + 1 + rng.below(30),
                        caps,
                    }
                }
            })
            .collect();
        let theirs = lite.run_now(ops.clone(), now, &answers).unwrap();
        let ours = pg.run(ops.clone(), now, &answers).await.unwrap();
        for ((op, a), b) in ops.iter().zip(&ours).zip(&theirs) {
            // An unregistration's outcome is not answered (and SQLite may
            // count an expired row it drops).
            if matches!(op, Op::Register { .. }) {
                assert_eq!(a, b, "round {round}: {op:?}");
            }
        }
        let last = lite.last_position();
        let discovers = vec![
            Op::Discover {
                namespace: None,
                after: 0,
                limit: 100,
                budget: 1 << 20,
            },
            Op::Discover {
                namespace: Some(namespaces[rng.below(4) as usize].to_owned()),
                after: rng.below(last + 2),
                limit: 1 + rng.below(4),
                budget: if rng.below(3) == 0 { 150 } else { 1 << 20 },
            },
        ];
        let theirs = lite.run_now(discovers.clone(), now, &answers).unwrap();
        let ours = pg.run(discovers, now, &answers).await.unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert_eq!(page_of(a), page_of(b), "round {round}");
        }
        now += rng.below(8);
        if rng.below(10) == 0 {
            // How many each deletes may differ (a write may have deleted
            // expired rows first); what is left may not.
            pg.sweep(now, 0).await.unwrap();
            Backend::sweep(&mut lite, now, 0).await.unwrap();
            assert_eq!(pg.counts().rows, lite.len(), "round {round}: after a sweep");
        }
    }
}

/// Batches of one point, made one after another and run at once on a cold
/// pool of 8 connections (each batch opens its own, and they come up in
/// any order): their writes land in the order they were made. Repeated on
/// fresh pools, as a race shows only some of the time.
async fn one_points_writes_land_in_the_order_they_were_made(cluster: &mut Cluster) {
    const BATCHES: u8 = 9;
    const ATTEMPTS: usize = 20;
    let url = database(cluster, "md_order");
    let answers = AnswerBudget::unlimited();
    let now = 1_000_000;
    for attempt in 0..ATTEMPTS {
        let mut pg = pg_store(&url, 8).await;
        let peer = PeerId::random();
        let namespace = format!("order-{attempt}");
        let mut jobs = Vec::new();
        for k in 0..BATCHES {
            let op = if k % 2 == 0 {
                Op::Register {
                    peer,
                    namespace: namespace.clone(),
                    record: vec![k],
                    expires: now + 100,
                    caps: Caps {
                        per_peer: 1,
                        total: 1000,
                    },
                }
            } else {
                Op::Unregister {
                    peer,
                    namespace: namespace.clone(),
                }
            };
            let mut job = pg.run(vec![op], now, &answers);
            // As the point does: polled once as it is made.
            let _ = futures::FutureExt::now_or_never(&mut job);
            jobs.push(job);
        }
        for done in futures::future::join_all(jobs).await {
            done.unwrap();
        }
        let page = pg
            .run(
                vec![Op::Discover {
                    namespace: Some(namespace),
                    after: 0,
                    limit: 10,
                    budget: 1 << 20,
                }],
                now,
                &answers,
            )
            .await
            .unwrap();
        let page = page_of(&page[0]);
        let records: Vec<&Vec<u8>> = page.rows.iter().map(|r| &r.record).collect();
        assert_eq!(
            records,
            [&vec![BATCHES - 1]],
            "attempt {attempt}: the last write stands"
        );
    }
}

async fn registrations_and_cookies_carry_across_points(cluster: &mut Cluster) {
    let url = database(cluster, "md_across");
    let points = three(&url, (10_000, 32));
    let (a, b, c) = (&points[0], &points[1], &points[2]);

    let mut first = client();
    assert!(connect(&mut first, &a.addr).await);
    register(&mut first, a.id, "fleet").await.unwrap();

    // Registered at A, discovered at B.
    let mut seeker = client();
    assert!(connect(&mut seeker, &b.addr).await);
    let (page, cookie) = discover(&mut seeker, b.id, Some("fleet"), None).await;
    assert_eq!(page, [(*first.local_peer_id(), "fleet".to_owned())]);

    // A second peer registers at C; B's cookie, shown to C, brings exactly
    // what is new since.
    let mut second = client();
    assert!(connect(&mut second, &c.addr).await);
    register(&mut second, c.id, "fleet").await.unwrap();
    assert!(connect(&mut seeker, &c.addr).await);
    let (page, cookie) = discover(&mut seeker, c.id, Some("fleet"), Some(cookie)).await;
    assert_eq!(page, [(*second.local_peer_id(), "fleet".to_owned())]);

    // C's cookie at A: nothing new.
    assert!(connect(&mut seeker, &a.addr).await);
    let (page, cookie) = discover(&mut seeker, a.id, Some("fleet"), Some(cookie)).await;
    assert!(page.is_empty(), "{page:?}");

    // A refresh (through A) moves the first peer past the cookie, as B
    // sees it.
    register(&mut first, a.id, "fleet").await.unwrap();
    let (page, _) = discover(&mut seeker, b.id, Some("fleet"), Some(cookie)).await;
    assert_eq!(page, [(*first.local_peer_id(), "fleet".to_owned())]);

    // Unregistered through B (the stock client expects no answer): gone
    // at C.
    assert!(connect(&mut first, &b.addr).await);
    first.behaviour_mut().unregister(ns("fleet"), b.id);
    let gone = tokio::time::timeout(DEADLINE, async {
        loop {
            tokio::select! {
                (page, _) = discover(&mut seeker, c.id, Some("fleet"), None) => {
                    if page == [(*second.local_peer_id(), "fleet".to_owned())] {
                        return;
                    }
                }
                _ = first.select_next_some() => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "the unregistration at B reached C");

    // Every point reports the registry healthy.
    for p in &points {
        let (code, body) = p.health();
        assert_eq!(code, 200, "{body}");
        assert!(body.starts_with("ok\nstore: postgres "), "{body}");
    }
}

async fn limits_are_exact_with_registrations_spread_over_three_points(cluster: &mut Cluster) {
    const TOTAL: u64 = 10;
    const PER_PEER: u64 = 3;
    let url = database(cluster, "md_limits");
    let points = three(&url, (TOTAL, PER_PEER));
    let addrs: Arc<Vec<(PeerId, Multiaddr)>> =
        Arc::new(points.iter().map(|p| (p.id, p.addr.clone())).collect());

    // One peer, six namespaces through A, B, C, A, B, C: three accepted.
    let mut one = client();
    for p in points.iter() {
        assert!(connect(&mut one, &p.addr).await);
    }
    let mut results = Vec::new();
    for k in 0..6 {
        let p = &points[k % 3];
        results.push(register(&mut one, p.id, &format!("ns-{k}")).await);
    }
    assert_eq!(
        results,
        [
            Ok(()),
            Ok(()),
            Ok(()),
            Err(ErrorCode::Unavailable),
            Err(ErrorCode::Unavailable),
            Err(ErrorCode::Unavailable)
        ]
    );
    // A refresh at the per-peer bound is accepted, through a third point.
    assert_eq!(register(&mut one, points[2].id, "ns-0").await, Ok(()));

    // Twelve new peers at once, four per point: seven fit under the total.
    let accepted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..12 {
        let addrs = Arc::clone(&addrs);
        let accepted = Arc::clone(&accepted);
        tasks.push(tokio::spawn(async move {
            let (id, addr) = &addrs[i % 3];
            let mut c = client();
            assert!(connect(&mut c, addr).await);
            match register(&mut c, *id, "crowd").await {
                Ok(()) => {
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => assert_eq!(e, ErrorCode::Unavailable),
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 7);
    let rows: i64 = sql(
        &url,
        "SELECT count(*) FROM multidriver_rendezvous_registrations",
    )
    .await
    .get(0);
    assert_eq!(rows, TOTAL as i64);
    assert_eq!(discover_everything(&points[1]).await.len(), TOTAL as usize);
}

async fn points_sharing_one_key_answer_as_one_point(cluster: &mut Cluster) {
    let url = database(cluster, "md_one_key");
    let dir = std::env::temp_dir().join(format!("md-pg-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_file = dir.join("point.key");
    let _ = std::fs::remove_file(&key_file);
    let key = multidriver_rendezvous::keys::generate(&key_file).unwrap();
    let points: Vec<Point> = (0..3)
        .map(|_| Point::start_with(&url, (10_000, 32), Some(&key_file)))
        .collect();
    std::fs::remove_dir_all(&dir).unwrap();
    let id = key.public().to_peer_id();
    assert!(
        points.iter().all(|p| p.id == id),
        "one peer id for the fleet"
    );

    // Whichever address a client reaches, it speaks to "the" point.
    let mut a = client();
    assert!(connect(&mut a, &points[0].addr).await);
    register(&mut a, id, "one-name").await.unwrap();
    let mut b = client();
    assert!(connect(&mut b, &points[2].addr).await);
    register(&mut b, id, "one-name").await.unwrap();
    let mut seeker = client();
    assert!(connect(&mut seeker, &points[1].addr).await);
    let (page, _) = discover(&mut seeker, id, Some("one-name"), None).await;
    let peers: HashSet<PeerId> = page.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        peers,
        HashSet::from([*a.local_peer_id(), *b.local_peer_id()])
    );
}

async fn expired_registrations_are_swept_once_by_the_fleet(cluster: &mut Cluster) {
    const PEERS: usize = 9;
    let url = database(cluster, "md_expiry");
    let points = three(&url, (10_000, 32));
    for i in 0..PEERS {
        let p = &points[i % 3];
        let mut c = client();
        assert!(connect(&mut c, &p.addr).await);
        c.behaviour_mut()
            .register(ns("short-lived"), p.id, Some(1))
            .unwrap();
        match next(&mut c).await {
            rendezvous::client::Event::Registered { ttl, .. } => assert_eq!(ttl, 1),
            other => panic!("expected Registered, got {other:?}"),
        }
    }
    // Past their TTL they are not served, swept or not.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(discover_everything(&points[0]).await.is_empty());
    // Each point sweeps every second (and a write deletes what expired
    // before it); between them each registration is deleted once, by the
    // point that counts it.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let rows: i64 = sql(
            &url,
            "SELECT count(*) FROM multidriver_rendezvous_registrations",
        )
        .await
        .get(0);
        if rows == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{rows} expired registrations left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The counters catch up with the sweep that emptied the table.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expired: u64 = points
        .iter()
        .map(|p| p.counter("multidriver_rendezvous_expired_total"))
        .sum();
    assert_eq!(
        expired, PEERS as u64,
        "each expired registration counted once"
    );
    // Every point's timer fires each second, and in each second one of
    // them sweeps: the others leave it to that one.
    let by = |who: &str| -> u64 {
        points
            .iter()
            .map(|p| {
                p.counter(&format!(
                    "multidriver_rendezvous_sweeps_total{{by=\"{who}\"}}"
                ))
            })
            .sum()
    };
    let (ran, left) = (by("this_point"), by("another_point"));
    assert!(
        ran >= 1 && left >= ran,
        "{ran} sweeps ran, {left} left to another point"
    );
    println!("  {ran} sweeps ran, {left} ticks left the sweep to the point that had just run one");
}

/// A CA, and a certificate for 127.0.0.1 it signed: (CA PEM, chain PEM,
/// key PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

async fn tls_to_the_registry_is_verified_against_the_ca(cluster: &mut Cluster) {
    let (ca, chain, key) = certificates();
    cluster.enable_tls(&chain, &key).unwrap();
    let url = format!("{}?sslmode=require", database(cluster, "md_tls"));
    let dir = std::env::temp_dir().join(format!("md-pg-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let other_ca = dir.join("other-ca.pem");
    std::fs::write(&other_ca, certificates().0).unwrap();

    // Against the CA that signed the server's certificate: it serves, over
    // TLS.
    let point = Point::start_env(&url, (10_000, 32), None, Some(&ca_file));
    let mut c = client();
    assert!(connect(&mut c, &point.addr).await);
    register(&mut c, point.id, "sealed").await.unwrap();
    let tls: i64 = sql(
        &url.replace("?sslmode=require", ""),
        "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid)
         WHERE ssl AND application_name = 'multidriver-rendezvous'",
    )
    .await
    .get(0);
    assert!(tls >= 1, "the point's connections use TLS");

    // Against another CA: the point refuses the database and says why.
    let (mut child, _stdin, lines) = spawn(&url, (10_000, 32), None, Some(&other_ca));
    let status = wait_exit(&mut child);
    assert!(!status.success());
    let out: Vec<String> = lines.try_iter().collect();
    assert!(
        out.iter()
            .any(|l| l.starts_with("error ") && l.contains("certificate")),
        "{out:?}"
    );
    drop(point);
    std::fs::remove_dir_all(&dir).unwrap();
}

async fn a_newer_schema_is_refused_at_start(cluster: &mut Cluster) {
    let url = database(cluster, "md_newer");
    drop(Point::start(&url, (10_000, 32)));
    sql(
        &url,
        "UPDATE multidriver_rendezvous_schema SET version = 99 RETURNING version",
    )
    .await;
    let (mut child, _stdin, lines) = spawn_point(&url, (10_000, 32));
    let status = wait_exit(&mut child);
    assert!(!status.success());
    let out: Vec<String> = lines.try_iter().collect();
    assert!(
        out.iter().any(|l| l.starts_with("error ")
            && l.contains("schema version 99 is newer than this build's 1")),
        "{out:?}"
    );
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the point did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What a load of registrations came to.
#[derive(Default)]
struct Load {
    /// (peer, namespace) of every confirmed registration.
    confirmed: Mutex<Vec<(PeerId, String)>>,
    /// Registrations answered with a failure (retried).
    failed: AtomicUsize,
    /// Clients that moved to another point.
    failovers: AtomicUsize,
}

impl Load {
    fn confirmed(&self) -> usize {
        self.confirmed.lock().unwrap().len()
    }
}

/// A client registering `count` namespaces, starting at point `start`;
/// when its point is gone it moves to the next one, and a failed
/// registration is retried. `pause` between registrations spreads the
/// load over time.
async fn load_client(
    points: Arc<Vec<(PeerId, Multiaddr)>>,
    start: usize,
    tag: usize,
    count: usize,
    pause: Duration,
    load: Arc<Load>,
) {
    let mut c = client();
    let mut at = start;
    while !connect(&mut c, &points[at].1).await {
        at = (at + 1) % points.len();
    }
    let deadline = Instant::now() + LOAD_DEADLINE;
    for j in 0..count {
        let namespace = format!("load-{tag}-{j}");
        loop {
            assert!(Instant::now() < deadline, "client {tag} did not finish");
            match register(&mut c, points[at].0, &namespace).await {
                Ok(()) => {
                    load.confirmed
                        .lock()
                        .unwrap()
                        .push((*c.local_peer_id(), namespace.clone()));
                    break;
                }
                Err(_) => {
                    load.failed.fetch_add(1, Ordering::SeqCst);
                    if !c.is_connected(&points[at].0) {
                        // Failover: the next point that takes a connection.
                        loop {
                            at = (at + 1) % points.len();
                            if connect(&mut c, &points[at].1).await {
                                break;
                            }
                        }
                        load.failovers.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        tokio::time::sleep(pause).await;
    }
}

async fn a_point_killed_under_load_loses_nothing_confirmed(cluster: &mut Cluster) {
    const CLIENTS: usize = 24;
    const EACH: usize = 25;
    let url = database(cluster, "md_kill");
    let mut points = three(&url, (100_000, 100));
    let addrs: Arc<Vec<(PeerId, Multiaddr)>> =
        Arc::new(points.iter().map(|p| (p.id, p.addr.clone())).collect());
    let load = Arc::new(Load::default());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(load_client(
                Arc::clone(&addrs),
                i % 3,
                i,
                EACH,
                Duration::from_millis(10),
                Arc::clone(&load),
            ))
        })
        .collect();
    // A third of the way in, point A dies without a word.
    let deadline = Instant::now() + LOAD_DEADLINE;
    while load.confirmed() < CLIENTS * EACH / 3 {
        assert!(Instant::now() < deadline, "the load did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    points[0].kill9();
    let at_kill = load.confirmed();
    for t in tasks {
        t.await.unwrap();
    }
    let confirmed: Vec<(PeerId, String)> = load.confirmed.lock().unwrap().clone();
    assert_eq!(confirmed.len(), CLIENTS * EACH);
    assert!(at_kill < confirmed.len(), "the kill came before the end");
    assert!(
        load.failovers.load(Ordering::SeqCst) >= CLIENTS / 3,
        "every client of the killed point moved"
    );
    let served = discover_everything(&points[2]).await;
    let missing: Vec<_> = confirmed.iter().filter(|r| !served.contains(*r)).collect();
    assert!(missing.is_empty(), "confirmed and lost: {missing:?}");
    println!(
        "  {} registrations confirmed ({} before the kill), {} failed attempts retried, {} failovers; all {} served through C",
        confirmed.len(),
        at_kill,
        load.failed.load(Ordering::SeqCst),
        load.failovers.load(Ordering::SeqCst),
        served.len()
    );
}

/// A client speaking the point's own codec, to read each answer's status.
fn wire_client(key: &Keypair) -> Swarm<request_response::Behaviour<wire::Codec>> {
    SwarmBuilder::with_existing_identity(key.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                wire::Codec::default(),
                [(wire::PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(DEADLINE),
            )
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// A register through the wire client: the answer's status and text.
async fn wire_register(
    swarm: &mut Swarm<request_response::Behaviour<wire::Codec>>,
    key: &Keypair,
    point: PeerId,
    namespace: &str,
) -> (i32, String) {
    // The record must be the sender's own.
    let record = libp2p::core::PeerRecord::new(key, vec!["/ip4/127.0.0.1/tcp/9".parse().unwrap()])
        .unwrap()
        .into_signed_envelope()
        .into_protobuf_encoding();
    let msg = wire::Message {
        r#type: Some(wire::MessageType::Register as i32),
        register: Some(wire::Register {
            ns: Some(namespace.as_bytes().to_vec()),
            signed_peer_record: Some(record),
            ttl: None,
        }),
        ..wire::Message::default()
    };
    swarm.behaviour_mut().send_request(&point, msg);
    tokio::time::timeout(DEADLINE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => {
                    let r = response.register_response.unwrap_or_default();
                    return (r.status.unwrap_or(-1), r.status_text.unwrap_or_default());
                }
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => panic!("request failed: {error}"),
                _ => {}
            }
        }
    })
    .await
    .expect("an answer in time")
}

async fn a_database_restart_under_load_is_unavailable_then_resumes(cluster: &mut Cluster) {
    const CLIENTS: usize = 12;
    const EACH: usize = 40;
    let url = database(cluster, "md_restart");
    let points = three(&url, (100_000, 100));
    let addrs: Arc<Vec<(PeerId, Multiaddr)>> =
        Arc::new(points.iter().map(|p| (p.id, p.addr.clone())).collect());
    let load = Arc::new(Load::default());
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            tokio::spawn(load_client(
                Arc::clone(&addrs),
                i % 3,
                i,
                EACH,
                Duration::from_millis(30),
                Arc::clone(&load),
            ))
        })
        .collect();
    let deadline = Instant::now() + LOAD_DEADLINE;
    while load.confirmed() < CLIENTS * EACH / 4 {
        assert!(Instant::now() < deadline, "the load did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let key = Keypair::generate_ed25519();
    let mut prober = wire_client(&key);
    assert!(connect(&mut prober, &points[1].addr).await);

    cluster.stop().unwrap();
    // While the database is down: the point answers, and the answer is
    // E_UNAVAILABLE, never a confirmation.
    let (status, text) = wire_register(&mut prober, &key, points[1].id, "probe").await;
    assert_eq!(status, wire::ResponseStatus::Unavailable as i32, "{text}");
    assert!(text.contains("registry is unavailable"), "{text}");
    // An answer to a commit made just before the stop may still be on
    // its way: counted from a moment later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let confirmed_down = load.confirmed();
    let down_for = Instant::now();
    let health = tokio::task::spawn_blocking({
        let metrics = points[1].metrics;
        move || {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let (code, body) = Point::health_at(metrics);
                if code == 503 {
                    return body;
                }
                assert!(Instant::now() < deadline, "/health still says {body}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    })
    .await
    .unwrap();
    assert!(
        health.starts_with("unavailable\nstore: postgres "),
        "{health}"
    );
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(down_for.elapsed())).await;
    assert_eq!(
        load.confirmed(),
        confirmed_down,
        "nothing is confirmed while the database is down"
    );
    let failed_down = load.failed.load(Ordering::SeqCst);
    assert!(failed_down > 0);

    cluster.restart().unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let (status, text) = wire_register(&mut prober, &key, points[1].id, "probe").await;
    assert_eq!(status, wire::ResponseStatus::Ok as i32, "{text}");
    let confirmed: Vec<(PeerId, String)> = load.confirmed.lock().unwrap().clone();
    assert_eq!(confirmed.len(), CLIENTS * EACH);
    let served = discover_everything(&points[0]).await;
    let missing: Vec<_> = confirmed.iter().filter(|r| !served.contains(*r)).collect();
    assert!(missing.is_empty(), "confirmed and lost: {missing:?}");
    let (code, body) = points[2].health();
    assert_eq!(code, 200, "{body}");
    println!(
        "  {} registrations confirmed ({} before the database stopped), {} attempts refused or failed and retried",
        confirmed.len(),
        confirmed_down,
        load.failed.load(Ordering::SeqCst)
    );
}
