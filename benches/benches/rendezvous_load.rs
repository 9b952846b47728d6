//! Load on a rendezvous point over loopback TCP: many stock rust-libp2p
//! rendezvous clients register in several namespaces, then discover. Prints
//! registrations per second, discovers per second and the point's peak
//! memory for our point (with each durability) and for the stock
//! rust-libp2p server (in memory), side by side in one run, with ratios:
//! medians of `--runs` runs (default 5) with their spread.
//!
//! ```text
//! cargo bench -p multidriver-benches --bench rendezvous_load
//! cargo bench -p multidriver-benches --bench rendezvous_load -- --clients 400 --namespaces 25 --discovers 10 --runs 5
//! cargo bench -p multidriver-benches --bench rendezvous_load -- --pin
//! ```
//!
//! Each point runs in its own process (this binary, re-run as a child), so
//! its peak resident memory (`VmHWM`) is its own. By default clients and
//! point share the machine's cores, so the figures are for comparison in
//! one run, not a capacity claim; with `--pin` (Linux, `taskset`) every
//! point runs on the first core and the clients on the others, so each
//! point gets the same one core and the clients cannot take it from it.

#![allow(missing_docs)]

#[path = "rendezvous/clients.rs"]
mod clients;
use clients::{ClientEvent, PHASE_DEADLINE, client_swarm, collect, point_id, tcp_swarm};

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use libp2p::Multiaddr;
use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::rendezvous::{self, Namespace};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::SwarmEvent;
use multidriver_rendezvous::protocol::{self as wire, MessageType};
use multidriver_rendezvous::{Config, Durability, Limits, Server, ServerEvent};
use tokio::signal::unix::SignalKind;
use tokio::sync::mpsc;

/// Set in a child process: which point to run.
const ROLE: &str = "MULTIDRIVER_RENDEZVOUS_BENCH_ROLE";
/// Set in a child process: the registrations to allow in all.
const TOTAL: &str = "MULTIDRIVER_RENDEZVOUS_BENCH_TOTAL";
/// Set in a child process: the registrations to allow per peer.
const PER_PEER: &str = "MULTIDRIVER_RENDEZVOUS_BENCH_PER_PEER";
/// Set in a child process: where our point keeps its database.
const DB: &str = "MULTIDRIVER_RENDEZVOUS_BENCH_DB";

#[derive(Debug, Clone, Copy)]
enum Role {
    Ours(Durability),
    Stock,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Ours(Durability::ProcessCrash) => "multidriver, process-crash durability",
            Role::Ours(Durability::PowerLoss) => "multidriver, power-loss durability",
            Role::Stock => "stock rust-libp2p server (in memory)",
        }
    }
    fn arg(self) -> &'static str {
        match self {
            Role::Ours(Durability::PowerLoss) => "ours-power-loss",
            Role::Ours(_) => "ours",
            Role::Stock => "stock",
        }
    }
}

struct Params {
    clients: usize,
    namespaces: usize,
    discovers: usize,
    runs: usize,
    /// Points on the first core, clients on the rest (`--pin`).
    pin: bool,
}

fn parse_args() -> Params {
    let mut p = Params {
        clients: 200,
        namespaces: 25,
        discovers: 10,
        runs: 5,
        pin: false,
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
            "--pin" => {
                p.pin = true;
                i += 1;
                continue;
            }
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
    if let Ok(role) = std::env::var(ROLE) {
        serve(&role);
        return;
    }
    let p = parse_args();
    if p.pin {
        pin_clients();
    }
    let total = p.clients * p.namespaces;
    println!(
        "rendezvous load over loopback TCP: {} clients × {} namespaces = {total} registrations, \
         then {} × {} discovers of a {}-peer namespace",
        p.clients, p.namespaces, p.clients, p.discovers, p.clients
    );
    let roles = [
        Role::Ours(Durability::ProcessCrash),
        Role::Ours(Durability::PowerLoss),
        Role::Stock,
    ];
    // Runs interleave the points, each run starting with the next one, so
    // a slow spell of the machine, or going first, falls on all three alike.
    let mut results: Vec<Vec<Figures>> = roles.iter().map(|_| Vec::new()).collect();
    for run in 1..=p.runs {
        for k in 0..roles.len() {
            let i = (run - 1 + k) % roles.len();
            eprintln!("== run {run}/{}: {}", p.runs, roles[i].name());
            results[i].push(load(roles[i], &p));
        }
    }
    let stat = |figures: &[Figures], f: &dyn Fn(&Figures) -> f64| -> (f64, f64, f64) {
        let mut v: Vec<f64> = figures.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let columns: [(&str, &Column); 6] = [
        ("regs/s", &|r| r.register.per_second),
        ("CPU µs/reg", &|r| r.register.cpu_us),
        ("discovers/s", &|r| r.discover.per_second),
        ("CPU µs/disc", &|r| r.discover.cpu_us),
        ("peak MiB", &|r| r.peak_kib as f64 / 1024.0),
        ("idle MiB", &|r| r.idle_kib as f64 / 1024.0),
    ];
    println!();
    println!(
        "medians of {} runs [min–max]; {}",
        p.runs,
        if p.pin {
            "each point on the first core, the clients on the others"
        } else {
            "the point and the clients share the machine's cores"
        }
    );
    print!("{:<40}", "point");
    for (name, _) in &columns {
        print!(" {name:>20}");
    }
    println!();
    for (role, figures) in roles.iter().zip(&results) {
        print!("{:<40}", role.name());
        for (_, f) in &columns {
            let (median, min, max) = stat(figures, *f);
            let cell = if median >= 100.0 {
                format!("{median:.0} [{min:.0}–{max:.0}]")
            } else {
                format!("{median:.1} [{min:.1}–{max:.1}]")
            };
            print!(" {cell:>20}");
        }
        println!();
    }
    let median = |i: usize, c: usize| stat(&results[i], columns[c].1).0;
    for (i, role) in roles.iter().enumerate().take(2) {
        println!(
            "{} vs stock: registrations/s ×{:.2} (CPU per registration ×{:.2}), \
             discovers/s ×{:.2} (CPU per discover ×{:.2}), peak memory ×{:.2}",
            role.name(),
            median(i, 0) / median(2, 0),
            median(i, 1) / median(2, 1),
            median(i, 2) / median(2, 2),
            median(i, 3) / median(2, 3),
            median(i, 4) / median(2, 4),
        );
    }
    // Ratios within each run (the points of one run met the same machine).
    let per_run: Vec<f64> = (0..p.runs)
        .map(|r| results[0][r].register.per_second / results[2][r].register.per_second)
        .collect();
    let (m, lo, hi) = {
        let mut v = per_run.clone();
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    println!(
        "registrations/s, multidriver (process-crash) over stock within each run: \
         median ×{m:.2} [×{lo:.2}–×{hi:.2}]"
    );
    stalled_readers(&p);
}

/// Peers registered in the stall namespace, with records of about 5 KiB
/// (under the default 8 KiB limit): a discover of it is a page of about
/// 0.7 MB.
const STALL_PEERS: usize = 140;
/// Clients that ask for that page and never read it: about 90 MB of
/// answers, more than the default 64 MiB limit admits.
const STALLERS: usize = 128;

/// Our point under clients that ask for full pages and never read them:
/// how far its resident memory rises over the in-flight limit, what it
/// keeps once they leave, and how long it takes to stop while they hold
/// their answers (`SIGTERM`, handled as `multidriver rendezvous run`
/// handles it).
fn stalled_readers(p: &Params) {
    let limit = Config::default().max_answer_bytes_in_flight as f64 / 1024.0;
    println!();
    println!(
        "multidriver point, {STALLERS} clients asking for 0.7 MB pages and never reading them \
         (in-flight limit {:.0} MiB), {} runs:",
        limit / 1024.0,
        p.runs
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rise = Vec::new();
    let mut kept = Vec::new();
    let mut stop = Vec::new();
    for run in 1..=p.runs {
        eprintln!("== stalled readers, run {run}/{}", p.runs);
        let mut point = spawn(Role::Ours(Durability::ProcessCrash), p);
        let pid = point.child.id();
        let addr = point.addr.clone();
        let (rise_kib, kept_kib) = runtime.block_on(async {
            register_big(&addr).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (before, _) = memory(pid);
            reset_peak(pid);
            let stallers = stall(&addr, STALLERS).await;
            let peak = settle_peak(pid).await;
            drop(stallers);
            // Connections close, answers are released.
            tokio::time::sleep(Duration::from_secs(3)).await;
            let (after, _) = memory(pid);
            (peak.saturating_sub(before), after.saturating_sub(before))
        });
        // Hold answers again, then stop the point and time its exit.
        let (secs, _stallers) = runtime.block_on(async {
            let stallers = stall(&addr, STALLERS).await;
            settle_peak(pid).await;
            let t = Instant::now();
            let sent = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .expect("kill runs");
            assert!(sent.success(), "SIGTERM was sent");
            let exited = tokio::task::spawn_blocking(move || {
                let _ = point.child.wait();
                point
            })
            .await
            .expect("waited");
            let secs = t.elapsed().as_secs_f64();
            drop(exited);
            (secs, stallers)
        });
        eprintln!(
            "   rise {:.1} MiB, kept {:.1} MiB, stopped in {secs:.2} s",
            rise_kib as f64 / 1024.0,
            kept_kib as f64 / 1024.0
        );
        rise.push(rise_kib as f64 / 1024.0);
        kept.push(kept_kib as f64 / 1024.0);
        stop.push(secs);
    }
    let spread = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 2], v[0], v[v.len() - 1])
    };
    let (r, r0, r1) = spread(&mut rise);
    let (k, k0, k1) = spread(&mut kept);
    let (t, t0, t1) = spread(&mut stop);
    println!(
        "  resident memory rise while they wait: {r:.1} MiB [{r0:.1}–{r1:.1}] = ×{:.2} the limit",
        r * 1024.0 / limit
    );
    println!("  kept after they leave (3 s later):   {k:.1} MiB [{k0:.1}–{k1:.1}]");
    println!(
        "  SIGTERM to exit while they wait:     {t:.2} s [{t0:.2}–{t1:.2}] \
         (answers get up to 1 s to reach their clients)"
    );
}

/// Registers `STALL_PEERS` peers with large records in `stall`.
async fn register_big(addr: &Multiaddr) {
    let point = point_id(addr);
    let mut tasks = Vec::new();
    for _ in 0..STALL_PEERS {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut swarm = client_swarm();
            for i in 0..28 {
                let long = format!("/dns4/{i}.{}.example/tcp/4001", "x".repeat(220));
                swarm.add_external_address(long.parse().expect("valid"));
            }
            swarm.dial(addr).expect("dial");
            let ns = Namespace::new("stall".into()).expect("valid");
            let mut asked = false;
            tokio::time::timeout(PHASE_DEADLINE, async {
                loop {
                    match swarm.select_next_some().await {
                        SwarmEvent::ConnectionEstablished { .. } if !asked => {
                            asked = true;
                            swarm
                                .behaviour_mut()
                                .stock
                                .register(ns.clone(), point, None)
                                .expect("external addresses");
                        }
                        SwarmEvent::Behaviour(ClientEvent::Stock(
                            rendezvous::client::Event::Registered { .. },
                        )) => return,
                        SwarmEvent::Behaviour(ClientEvent::Stock(
                            rendezvous::client::Event::RegisterFailed { error, .. },
                        )) => panic!("a large record was refused: {error:?}"),
                        _ => {}
                    }
                }
            })
            .await
            .expect("registered in time");
        }));
    }
    for t in tasks {
        t.await.expect("a registering client");
    }
}

/// A codec that sends a request and never reads its answer.
#[derive(Clone, Default)]
struct Stall;

impl request_response::Codec for Stall {
    type Protocol = libp2p::StreamProtocol;
    type Request = Vec<u8>;
    type Response = ();

    async fn read_request<T>(&mut self, _: &Self::Protocol, _: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: libp2p::futures::AsyncRead + Unpin + Send,
    {
        Err(std::io::Error::other("outbound only"))
    }

    async fn read_response<T>(&mut self, _: &Self::Protocol, _: &mut T) -> std::io::Result<()>
    where
        T: libp2p::futures::AsyncRead + Unpin + Send,
    {
        std::future::pending().await
    }

    async fn write_request<T>(
        &mut self,
        _: &Self::Protocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: libp2p::futures::AsyncWrite + Unpin + Send,
    {
        libp2p::futures::AsyncWriteExt::write_all(io, &request).await?;
        libp2p::futures::AsyncWriteExt::close(io).await
    }

    async fn write_response<T>(
        &mut self,
        _: &Self::Protocol,
        _: &mut T,
        _: (),
    ) -> std::io::Result<()>
    where
        T: libp2p::futures::AsyncWrite + Unpin + Send,
    {
        Err(std::io::Error::other("outbound only"))
    }
}

/// `n` clients, each asking for the `stall` page once and never reading
/// it; they stay connected until the handles are dropped.
async fn stall(addr: &Multiaddr, n: usize) -> Stallers {
    let point = point_id(addr);
    let request = prost::Message::encode_length_delimited_to_vec(&wire::Message {
        r#type: Some(MessageType::Discover as i32),
        discover: Some(wire::Discover {
            ns: Some(b"stall".to_vec()),
            limit: None,
            cookie: None,
        }),
        ..wire::Message::default()
    });
    let (asked_tx, mut asked) = mpsc::channel::<()>(n);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (addr, request, asked_tx) = (addr.clone(), request.clone(), asked_tx.clone());
            tokio::spawn(async move {
                let mut swarm = tcp_swarm(Duration::from_secs(600), |_| {
                    request_response::Behaviour::with_codec(
                        Stall,
                        [(wire::PROTOCOL, ProtocolSupport::Outbound)],
                        request_response::Config::default()
                            .with_request_timeout(Duration::from_secs(600)),
                    )
                });
                swarm.dial(addr).expect("dial");
                loop {
                    if let SwarmEvent::ConnectionEstablished { .. } = swarm.select_next_some().await
                    {
                        swarm.behaviour_mut().send_request(&point, request.clone());
                        let _ = asked_tx.send(()).await;
                        break;
                    }
                }
                loop {
                    swarm.select_next_some().await;
                }
            })
        })
        .collect();
    let stallers = Stallers(handles);
    for _ in 0..n {
        let _ = tokio::time::timeout(PHASE_DEADLINE, asked.recv()).await;
    }
    stallers
}

/// The stalling clients; dropping them closes their connections.
struct Stallers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Stallers {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Waits until the point's resident memory stops rising (no new high for
/// 1 s, 20 s at most); the highest value seen since `reset_peak`, KiB.
async fn settle_peak(pid: u32) -> u64 {
    let started = Instant::now();
    let mut high = 0;
    let mut since = Instant::now();
    while started.elapsed() < Duration::from_secs(20) && since.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (_, peak) = memory(pid);
        if peak > high {
            high = peak;
            since = Instant::now();
        }
    }
    high
}

/// Resets the kernel's peak resident memory (`VmHWM`) of `pid` to its
/// current value (`clear_refs`, mode 5, Linux 4.0+).
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// One figure of a run, for the table.
type Column = dyn Fn(&Figures) -> f64;

struct Figures {
    register: Phase,
    discover: Phase,
    peak_kib: u64,
    idle_kib: u64,
}

/// A point process; killed on drop.
struct Point {
    child: Child,
    addr: Multiaddr,
    dir: std::path::PathBuf,
}

impl Drop for Point {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(role: Role, p: &Params) -> Point {
    let dir =
        std::env::temp_dir().join(format!("md-rv-bench-{}-{}", std::process::id(), role.arg()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let exe = std::env::current_exe().expect("own path");
    let mut command = if p.pin {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    let (child, addr) = clients::spawn_point(
        command
            .env(ROLE, role.arg())
            .env(TOTAL, (p.clients * p.namespaces).to_string())
            .env(PER_PEER, p.namespaces.to_string())
            .env(DB, dir.join("rv.db")),
    );
    Point { child, addr, dir }
}

/// `--pin`: moves this process off the first core, which is left to the
/// point. Done on the main thread before any runtime starts, so every
/// client thread inherits it. Assumes the cores are numbered from 0.
fn pin_clients() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(
        cores >= 2,
        "--pin needs at least 2 cores (one for the point, the rest for the clients); \
         this machine offers {cores}"
    );
    let others = format!("1-{}", cores - 1);
    match Command::new("taskset")
        .args(["-p", "-c", &others, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("--pin: `taskset -p -c {others}` failed ({s})"),
        Err(e) => panic!("--pin needs taskset (util-linux): {e}"),
    }
}

/// Resident memory of `pid`: (current, peak), KiB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn load(role: Role, p: &Params) -> Figures {
    let point = spawn(role, p);
    // Let it settle before reading its idle memory.
    std::thread::sleep(Duration::from_millis(200));
    let (idle_kib, _) = memory(point.child.id());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (register, discover) = runtime.block_on(drive(point.addr.clone(), p, point.child.id()));
    let (_, peak_kib) = memory(point.child.id());
    drop(point);
    Figures {
        register,
        discover,
        peak_kib,
        idle_kib,
    }
}

/// CPU time `pid` has used so far (user + system), seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which ends with the last ')'):
    // utime and stime are the 12th and 13th, in clock ticks.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // USER_HZ is 100 on Linux (sysconf(_SC_CLK_TCK)).
    (ticks(11) + ticks(12)) / 100.0
}

/// What one phase measured.
struct Phase {
    per_second: f64,
    /// The point's CPU time per request, microseconds.
    cpu_us: f64,
}

/// Runs both phases against the point at `addr` (process `pid`).
async fn drive(addr: Multiaddr, p: &Params, pid: u32) -> (Phase, Phase) {
    let mut phases = clients::spawn_clients(
        &[addr],
        &clients::Load {
            clients: p.clients,
            namespaces: p.namespaces,
            discovers: p.discovers,
            prefix: "bench",
        },
    );
    eprintln!("   connecting {} clients", p.clients);
    phases.start.wait().await;
    let t0 = Instant::now();
    let cpu0 = cpu_seconds(pid);
    let (ok, failed) = collect(&mut phases.done, p.clients).await;
    let register_secs = t0.elapsed().as_secs_f64();
    let register_cpu = cpu_seconds(pid) - cpu0;
    eprintln!("   {ok} registrations accepted, {failed} refused, in {register_secs:.2} s");
    assert_eq!(failed, 0, "the point refused registrations");
    phases.middle.wait().await;
    let t1 = Instant::now();
    let cpu1 = cpu_seconds(pid);
    let (found, failed) = collect(&mut phases.done, p.clients).await;
    let discover_secs = t1.elapsed().as_secs_f64();
    let discover_cpu = cpu_seconds(pid) - cpu1;
    eprintln!("   {found} discovers answered, {failed} failed, in {discover_secs:.2} s");
    assert_eq!(failed, 0, "discovers failed");
    (
        Phase {
            per_second: ok as f64 / register_secs,
            cpu_us: register_cpu * 1e6 / ok as f64,
        },
        Phase {
            per_second: found as f64 / discover_secs,
            cpu_us: discover_cpu * 1e6 / found as f64,
        },
    )
}

/// The child: runs one point until its stdin closes.
fn serve(role: &str) {
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set"));
    let total: u64 = env(TOTAL).parse().expect("a number");
    let per_peer: u64 = env(PER_PEER).parse().expect("a number");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The parent closes our stdin (or dies) when it is done.
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
        let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("valid");
        match role {
            "stock" => {
                let config = rendezvous::server::Config::default()
                    .with_max_registration_per_peer(usize::try_from(per_peer).expect("fits"))
                    .with_max_registration_total(usize::try_from(total).expect("fits"));
                let mut swarm = tcp_swarm(Duration::from_secs(60), |_| {
                    rendezvous::server::Behaviour::new(config)
                });
                swarm.listen_on(listen).expect("listen");
                let id = *swarm.local_peer_id();
                let mut stop = std::pin::pin!(stop);
                loop {
                    tokio::select! {
                        _ = &mut stop => return,
                        e = swarm.select_next_some() => {
                            if let SwarmEvent::NewListenAddr { address, .. } = e {
                                println!("listening on {}", address.with(Protocol::P2p(id)));
                            }
                        }
                    }
                }
            }
            _ => {
                let durability = if role == "ours-power-loss" {
                    Durability::PowerLoss
                } else {
                    Durability::ProcessCrash
                };
                let config = Config {
                    db: env(DB).into(),
                    listen: vec![listen],
                    limits: Limits {
                        max_registrations: total,
                        max_registrations_per_peer: per_peer,
                        ..Limits::default()
                    },
                    durability,
                    ..Config::default()
                };
                let server =
                    Server::new(config, Keypair::generate_ed25519(), None).expect("the point");
                // Stopped as the command stops it: on SIGTERM (or when the
                // parent is done).
                let mut term = tokio::signal::unix::signal(SignalKind::terminate())
                    .expect("a SIGTERM handler");
                server
                    .run(
                        async move {
                            tokio::select! {
                                _ = stop => {}
                                _ = term.recv() => {}
                            }
                        },
                        |e| {
                            if let ServerEvent::Listening(a) = e {
                                println!("listening on {a}");
                            }
                        },
                    )
                    .await
                    .expect("the point runs");
            }
        }
    });
}
