//! A rendezvous fleet under load: registrations per second and discovers
//! per second for one point on SQLite, one point on PostgreSQL, and three
//! points sharing one PostgreSQL registry, side by side in one run, with
//! ratios to the SQLite point: medians of `--runs` runs (default 5) with
//! their spread.
//!
//! ```text
//! cargo bench -p multidriver-benches --bench rendezvous_fleet
//! cargo bench -p multidriver-benches --bench rendezvous_fleet -- --clients 300 --namespaces 20 --discovers 10 --runs 5
//! ```
//!
//! Stock rust-libp2p clients register in every namespace at once, each
//! through one point (client `i` through point `i mod n`); then each asks
//! its point for one namespace's page, one request after another. The
//! bench starts its own PostgreSQL cluster in a temporary directory (the
//! distribution's server binaries, as `rendezvous/tests/postgres.rs`
//! does), with `fsync` and `synchronous_commit` on, so a confirmed
//! registration is on disk in every configuration. Points, database and
//! clients share this machine's cores: the figures compare the
//! configurations in one run on one machine; they are not a capacity
//! claim for a fleet on separate machines (where the points' CPU adds up
//! and the database's is what is shared).

#![allow(missing_docs)]

#[path = "rendezvous/clients.rs"]
mod clients;
#[path = "../../rendezvous/tests/pg/cluster.rs"]
mod cluster;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use libp2p::Multiaddr;
use libp2p::identity::Keypair;
use multidriver_rendezvous::{Config, Limits, Server, ServerEvent};

/// Set in a child process: the store (a `postgres://` URL or a file).
const STORE: &str = "MULTIDRIVER_FLEET_BENCH_STORE";
/// Set in a child process: `max_registrations,max_registrations_per_peer`.
const LIMITS: &str = "MULTIDRIVER_FLEET_BENCH_LIMITS";

/// The configurations measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fleet {
    OneSqlite,
    OnePostgres,
    ThreePostgres,
}

impl Fleet {
    const ALL: [Fleet; 3] = [Fleet::OneSqlite, Fleet::OnePostgres, Fleet::ThreePostgres];

    fn name(self) -> &'static str {
        match self {
            Fleet::OneSqlite => "1 point, SQLite (process-crash)",
            Fleet::OnePostgres => "1 point, PostgreSQL",
            Fleet::ThreePostgres => "3 points, one PostgreSQL",
        }
    }

    fn points(self) -> usize {
        match self {
            Fleet::ThreePostgres => 3,
            _ => 1,
        }
    }
}

struct Params {
    clients: usize,
    namespaces: usize,
    discovers: usize,
    runs: usize,
}

fn parse_args() -> Params {
    let mut p = Params {
        clients: 200,
        namespaces: 25,
        discovers: 10,
        runs: 5,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = || {
            args.get(i + 1)
                .and_then(|v| v.parse::<usize>().ok())
                .filter(|v| *v > 0)
                .unwrap_or_else(|| panic!("{} needs a positive number", args[i]))
        };
        match args[i].as_str() {
            "--clients" => p.clients = value(),
            "--namespaces" => p.namespaces = value(),
            "--discovers" => p.discovers = value(),
            "--runs" => p.runs = value(),
            // cargo bench passes --bench; nothing else is ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    p
}

fn main() {
    if let Ok(store) = std::env::var(STORE) {
        serve(&store);
        return;
    }
    let p = parse_args();
    let cluster = cluster::Cluster::start().unwrap_or_else(|e| panic!("PostgreSQL: {e}"));
    let setting = |name: &str| {
        cluster
            .psql(&format!("SHOW {name}"))
            .unwrap_or_else(|e| panic!("SHOW {name}: {e}"))
    };
    // A confirmed registration is on disk in every configuration.
    assert_eq!(setting("fsync"), "on");
    assert_eq!(setting("synchronous_commit"), "on");
    println!(
        "rendezvous fleet over loopback TCP: {} clients × {} namespaces = {} registrations, \
         then {} × {} discovers of a {}-peer namespace; PostgreSQL {} (fsync, synchronous_commit on)",
        p.clients,
        p.namespaces,
        p.clients * p.namespaces,
        p.clients,
        p.discovers,
        p.clients,
        setting("server_version")
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Runs interleave the configurations, each run starting with the next
    // one, so a slow spell of the machine falls on all alike.
    let mut results: Vec<Vec<(f64, f64)>> = Fleet::ALL.iter().map(|_| Vec::new()).collect();
    for run in 1..=p.runs {
        for k in 0..Fleet::ALL.len() {
            let i = (run - 1 + k) % Fleet::ALL.len();
            let fleet = Fleet::ALL[i];
            eprintln!("== run {run}/{}: {}", p.runs, fleet.name());
            let store = match fleet {
                Fleet::OneSqlite => None,
                _ => {
                    let db = format!("fleet_{run}_{i}");
                    cluster
                        .psql(&format!("CREATE DATABASE {db} OWNER multidriver"))
                        .expect("a database");
                    let url = cluster.url();
                    Some(format!("{}/{db}", url.rsplit_once('/').expect("a path").0))
                }
            };
            let points = start_points(fleet, store.as_deref(), &p);
            let addrs: Vec<Multiaddr> = points.iter().map(|pt| pt.addr.clone()).collect();
            results[i].push(runtime.block_on(drive(&addrs, &p)));
            drop(points);
        }
    }
    let stat = |v: &mut Vec<f64>| -> (f64, f64, f64) {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    println!();
    println!(
        "medians of {} runs [min–max]; points, PostgreSQL and clients share this machine's cores",
        p.runs
    );
    println!(
        "{:<34} {:>24} {:>24} {:>18} {:>18}",
        "fleet", "regs/s", "discovers/s", "regs/s vs SQLite", "disc/s vs SQLite"
    );
    for (i, fleet) in Fleet::ALL.iter().enumerate() {
        let mut regs: Vec<f64> = results[i].iter().map(|r| r.0).collect();
        let mut discs: Vec<f64> = results[i].iter().map(|r| r.1).collect();
        // Ratios within each run: the configurations of one run met the
        // same machine.
        let mut reg_ratio: Vec<f64> = (0..p.runs)
            .map(|r| results[i][r].0 / results[0][r].0)
            .collect();
        let mut disc_ratio: Vec<f64> = (0..p.runs)
            .map(|r| results[i][r].1 / results[0][r].1)
            .collect();
        let (rm, rlo, rhi) = stat(&mut regs);
        let (dm, dlo, dhi) = stat(&mut discs);
        let (qm, qlo, qhi) = stat(&mut reg_ratio);
        let (em, elo, ehi) = stat(&mut disc_ratio);
        println!(
            "{:<34} {:>24} {:>24} {:>18} {:>18}",
            fleet.name(),
            format!("{rm:.0} [{rlo:.0}–{rhi:.0}]"),
            format!("{dm:.0} [{dlo:.0}–{dhi:.0}]"),
            format!("×{qm:.2} [{qlo:.2}–{qhi:.2}]"),
            format!("×{em:.2} [{elo:.2}–{ehi:.2}]"),
        );
    }
}

/// Point processes; each is stopped (stdin closed, then killed) on drop.
struct Point {
    child: Child,
    addr: Multiaddr,
    dir: Option<std::path::PathBuf>,
}

impl Drop for Point {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn start_points(fleet: Fleet, url: Option<&str>, p: &Params) -> Vec<Point> {
    (0..fleet.points())
        .map(|k| {
            let (store, dir) = match url {
                Some(url) => (url.to_owned(), None),
                None => {
                    let dir = std::env::temp_dir()
                        .join(format!("md-rv-fleet-{}-{k}", std::process::id()));
                    let _ = std::fs::remove_dir_all(&dir);
                    std::fs::create_dir_all(&dir).expect("temp dir");
                    (dir.join("rv.db").display().to_string(), Some(dir))
                }
            };
            let (child, addr) = clients::spawn_point(
                Command::new(std::env::current_exe().expect("own path"))
                    .env(STORE, store)
                    .env(
                        LIMITS,
                        format!("{},{}", p.clients * p.namespaces, p.namespaces),
                    ),
            );
            Point { child, addr, dir }
        })
        .collect()
}

/// The child: one point until its stdin closes.
fn serve(store: &str) {
    let (total, per_peer) = std::env::var(LIMITS)
        .ok()
        .and_then(|v| {
            let (a, b) = v.split_once(',')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .expect("limits are set");
    let mut config = Config {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().expect("valid")],
        limits: Limits {
            max_registrations: total,
            max_registrations_per_peer: per_peer,
            ..Limits::default()
        },
        ..Config::default()
    };
    if store.starts_with("postgres://") {
        config.store = Some(store.to_owned());
    } else {
        config.db = store.into();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (stop_tx, stop) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin()
            .read_line(&mut sink)
            .map(|n| n > 0)
            .unwrap_or(false)
        {}
        let _ = stop_tx.send(());
    });
    runtime.block_on(async move {
        let server = Server::new(config, Keypair::generate_ed25519(), None).expect("the point");
        server
            .run(
                async move {
                    let _ = stop.await;
                },
                |e| {
                    if let ServerEvent::Listening(a) = e {
                        println!("listening on {a}");
                    }
                },
            )
            .await
            .expect("the point runs");
    });
}

/// Both phases over the fleet at `addrs`: (registrations/s, discovers/s).
async fn drive(addrs: &[Multiaddr], p: &Params) -> (f64, f64) {
    let mut phases = clients::spawn_clients(
        addrs,
        &clients::Load {
            clients: p.clients,
            namespaces: p.namespaces,
            discovers: p.discovers,
            prefix: "fleet",
        },
    );
    eprintln!(
        "   connecting {} clients to {} point(s)",
        p.clients,
        addrs.len()
    );
    phases.start.wait().await;
    let t0 = Instant::now();
    let (ok, failed) = clients::collect(&mut phases.done, p.clients).await;
    let register_secs = t0.elapsed().as_secs_f64();
    eprintln!("   {ok} registrations accepted, {failed} refused, in {register_secs:.2} s");
    assert_eq!(failed, 0, "the fleet refused registrations");
    phases.middle.wait().await;
    let t1 = Instant::now();
    let (found, failed) = clients::collect(&mut phases.done, p.clients).await;
    let discover_secs = t1.elapsed().as_secs_f64();
    eprintln!("   {found} discovers answered, {failed} failed, in {discover_secs:.2} s");
    assert_eq!(failed, 0, "discovers failed");
    (ok as f64 / register_secs, found as f64 / discover_secs)
}
