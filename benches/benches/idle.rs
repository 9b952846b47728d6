//! Cellular radio wake-ups in an idle-ish run on real sockets: multidriver
//! beside stock rust-libp2p 0.57 tuned as a careful mobile app would tune
//! it ("tuned") and at its defaults ("defaults"). A phone in a network
//! namespace with cellular only (`wwan0`, 25 ms each way through a relay
//! that meters the radio; Wi-Fi off) runs an app that sends a numbered
//! message rarely (one a minute by default) to a peer that acknowledges
//! each, for a long run (ten minutes by default); the meter counts the
//! radio's wake-ups and models its energy (LTE) over the whole run. See
//! `multidriver_tests::idle` (the stacks: `multidriver_tests::switch::Stack`).
//!
//! The full measurement (issue 16; 10 min × 3 stacks × 5 runs, about
//! 2.5 h):
//!
//! ```text
//! cargo bench -p multidriver-benches --bench idle
//! ```
//!
//! Shorter, and one stack at a time:
//!
//! ```text
//! IDLE_SECS=180 IDLE_RUNS=3 IDLE_STACKS=md,tuned cargo bench -p multidriver-benches --bench idle
//! IDLE_SECS=180 IDLE_RUNS=1 IDLE_STACKS=defaults cargo bench -p multidriver-benches --bench idle
//! cargo bench -p multidriver-benches --bench idle -- --secs 180 --runs 3 --stack md,tuned
//! ```
//!
//! Settings, from the environment or (winning over it) flags:
//!
//! | variable | flag | default | |
//! |---|---|---|---|
//! | `IDLE_SECS` | `--secs N` | 600 | each run's duration, seconds |
//! | `IDLE_MESSAGE_SECS` | `--message-secs N` | 60 | seconds between the app's messages |
//! | `IDLE_RUNS` | `--runs N` | 5 | runs per stack |
//! | `IDLE_STACKS` | `--stack LIST` | `md,tuned,defaults` | stacks, comma-separated (`md`/`multidriver`, `tuned`, `defaults`/`stock`) |
//! | `IDLE_TRANSPORT` | `--transport T` | `tcp` | `tcp` or `quic` |
//! | `IDLE_PEER_PINGS` | `--peer-pings on\|off` | `on` | whether the peer pings on its own every 15 s (libp2p-ping's default) or only answers |
//!
//! Every run is N times per stack, stacks one after another within each
//! round (so a slow phase of the machine touches all of them), one progress
//! line per run and per minute on stderr. Prints each stack's cellular
//! wake-ups and modelled joules over the run: median and min–max over the
//! runs, per hour, messages delivered; then the ratios of the medians,
//! multidriver over tuned and over defaults. Needs root (network
//! namespaces); elsewhere it says why and exits (and fails under CI,
//! `CI=true`).

#![allow(missing_docs)]

use std::time::Duration;

use multidriver_tests::idle::{self, IdleCase, IdleOutcome, Stack, SwitchError, Transport};

struct Args {
    duration: Duration,
    message_interval: Duration,
    runs: usize,
    stacks: Vec<Stack>,
    transport: Transport,
    peer_pings: bool,
}

fn usage(what: &str, value: &str) -> ! {
    eprintln!(
        "{what} {value:?}: expected --secs N / IDLE_SECS (N ≥ 1), --message-secs N / \
         IDLE_MESSAGE_SECS (N ≥ 1), --runs N / IDLE_RUNS (N ≥ 1), --stack md,tuned,defaults / \
         IDLE_STACKS, --transport tcp|quic / IDLE_TRANSPORT, --peer-pings on|off / \
         IDLE_PEER_PINGS"
    );
    std::process::exit(2);
}

fn positive(what: &str, value: &str) -> u64 {
    match value.parse::<u64>() {
        Ok(n) if n >= 1 => n,
        _ => usage(what, value),
    }
}

fn stacks(what: &str, value: &str) -> Vec<Stack> {
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let stack = match name {
            "md" | "multidriver" => Stack::Multidriver,
            "tuned" => Stack::Tuned,
            "defaults" | "stock" => Stack::Stock,
            _ => usage(what, value),
        };
        if !out.contains(&stack) {
            out.push(stack);
        }
    }
    if out.is_empty() {
        usage(what, value);
    }
    out
}

fn transport(what: &str, value: &str) -> Transport {
    match value {
        "tcp" => Transport::Tcp,
        "quic" => Transport::Quic,
        _ => usage(what, value),
    }
}

/// One setting: `name=value` from the environment or `flag value` from
/// the command line.
fn set(args: &mut Args, what: &str, key: &str, value: &str) {
    match key {
        "secs" => args.duration = Duration::from_secs(positive(what, value)),
        "message-secs" => args.message_interval = Duration::from_secs(positive(what, value)),
        "runs" => {
            args.runs =
                usize::try_from(positive(what, value)).unwrap_or_else(|_| usage(what, value))
        }
        "stack" => args.stacks = stacks(what, value),
        "transport" => args.transport = transport(what, value),
        "peer-pings" => {
            args.peer_pings = match value {
                "on" | "1" | "true" => true,
                "off" | "0" | "false" => false,
                _ => usage(what, value),
            }
        }
        _ => unreachable!("only known keys"),
    }
}

fn parse_args() -> Args {
    let mut args = Args {
        duration: idle::DEFAULT_DURATION,
        message_interval: idle::DEFAULT_MESSAGE_INTERVAL,
        runs: 5,
        stacks: vec![Stack::Multidriver, Stack::Tuned, Stack::Stock],
        transport: Transport::Tcp,
        peer_pings: true,
    };
    const KEYS: [(&str, &str); 6] = [
        ("IDLE_SECS", "secs"),
        ("IDLE_MESSAGE_SECS", "message-secs"),
        ("IDLE_RUNS", "runs"),
        ("IDLE_STACKS", "stack"),
        ("IDLE_TRANSPORT", "transport"),
        ("IDLE_PEER_PINGS", "peer-pings"),
    ];
    for (var, key) in KEYS {
        if let Ok(value) = std::env::var(var) {
            set(&mut args, var, key, &value);
        }
    }
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let flag = argv[i].as_str();
        let Some(key) = flag
            .strip_prefix("--")
            .filter(|k| KEYS.iter().any(|(_, key)| key == k))
        else {
            // cargo bench passes --bench; nothing else is ours.
            i += 1;
            continue;
        };
        let Some(value) = argv.get(i + 1) else {
            usage(flag, "(nothing)");
        };
        set(&mut args, flag, key, value);
        i += 2;
    }
    args
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        f64::midpoint(xs[n / 2 - 1], xs[n / 2])
    }
}

/// Median and min–max.
fn spread(xs: &[f64], decimals: usize) -> String {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!(
        "{:.d$} [{lo:.d$}–{hi:.d$}]",
        median(xs.to_vec()),
        d = decimals
    )
}

fn main() {
    let args = parse_args();
    let mut results: Vec<(Stack, Vec<IdleOutcome>)> =
        args.stacks.iter().map(|s| (*s, Vec::new())).collect();
    let total = args.stacks.len() * args.runs;
    let mut done = 0;
    for run in 1..=args.runs {
        for (stack, outcomes) in &mut results {
            done += 1;
            let case = IdleCase {
                stack: *stack,
                transport: args.transport,
                duration: args.duration,
                message_interval: args.message_interval,
                peer_pings: args.peer_pings,
            };
            eprintln!(
                "== [{done}/{total}] {:?}, {}, run {run}/{}: {} s, a message every {} s",
                args.transport,
                stack.name(),
                args.runs,
                args.duration.as_secs(),
                args.message_interval.as_secs()
            );
            match idle::run(case, &mut |line| eprintln!("   {line}")) {
                Ok(outcome) => {
                    for line in &outcome.story {
                        eprintln!("     {line}");
                    }
                    let at: Vec<String> = outcome
                        .wakeups_at
                        .iter()
                        .map(|t| format!("{:.1}", t.as_secs_f64()))
                        .collect();
                    eprintln!("   wake-ups at (s): {}", at.join(" "));
                    eprintln!(
                        "   cellular wake-ups {}, {:.1} J; sent {}, delivered {}, resent {}",
                        outcome.radio.wakeups,
                        outcome.radio.joules,
                        outcome.sent,
                        outcome.delivered,
                        outcome.resent
                    );
                    outcomes.push(outcome);
                }
                Err(SwitchError::Unavailable(reason)) => {
                    multidriver_tests::require_or_skip(&reason);
                    println!("skipped: {reason}");
                    return;
                }
                Err(e) => {
                    eprintln!("   failed: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
    print_table(&args, &results);
}

fn print_table(args: &Args, results: &[(Stack, Vec<IdleOutcome>)]) {
    println!();
    println!(
        "{:?}, cellular only, a message every {} s for {} s, the peer {}; {} run(s) per stack;",
        args.transport,
        args.message_interval.as_secs(),
        args.duration.as_secs(),
        if args.peer_pings {
            "pinging every 15 s"
        } else {
            "only answering pings"
        },
        args.runs
    );
    println!(
        "cellular radio (LTE model) over the whole run, last tail whole: median [min–max]; \
         per hour: medians."
    );
    println!();
    println!(
        "{:<11} {:>22} {:>28} {:>10} {:>10} {:>17} {:>5}",
        "stack", "wake-ups", "LTE J", "wake-ups/h", "J/h", "delivered/sent", "lost"
    );
    for (stack, outcomes) in results {
        let wakeups: Vec<f64> = outcomes.iter().map(|o| o.radio.wakeups as f64).collect();
        let joules: Vec<f64> = outcomes.iter().map(|o| o.radio.joules).collect();
        let per_hour = median(outcomes.iter().map(IdleOutcome::wakeups_per_hour).collect());
        let j_per_hour = median(outcomes.iter().map(IdleOutcome::joules_per_hour).collect());
        let sent: u64 = outcomes.iter().map(|o| o.sent).sum();
        let delivered: u64 = outcomes.iter().map(|o| o.delivered).sum();
        let lost: u64 = outcomes.iter().map(|o| o.lost).sum();
        println!(
            "{:<11} {:>22} {:>28} {:>10.1} {:>10.0} {:>17} {:>5}",
            stack.name(),
            spread(&wakeups, 0),
            spread(&joules, 1),
            per_hour,
            j_per_hour,
            format!("{delivered}/{sent}"),
            lost
        );
    }
    let of = |s: Stack| {
        results
            .iter()
            .find(|(stack, _)| *stack == s)
            .map(|(_, o)| o.as_slice())
    };
    let Some(md) = of(Stack::Multidriver) else {
        return;
    };
    let md_wakeups = median(md.iter().map(|o| o.radio.wakeups as f64).collect());
    let md_joules = median(md.iter().map(|o| o.radio.joules).collect());
    println!();
    for other in [Stack::Tuned, Stack::Stock] {
        let Some(o) = of(other) else { continue };
        let wakeups = median(o.iter().map(|o| o.radio.wakeups as f64).collect());
        let joules = median(o.iter().map(|o| o.radio.joules).collect());
        println!(
            "multidriver/{}: wake-ups ×{:.2}, joules ×{:.2} (medians; below 1: multidriver uses less)",
            other.name(),
            md_wakeups / wakeups,
            md_joules / joules
        );
    }
    println!();
    println!(
        "lost: summed over the runs, unacknowledged {} s after sending stopped.",
        idle::DRAIN_LIMIT.as_secs()
    );
}
