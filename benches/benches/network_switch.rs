//! Wi-Fi → 4G failover on real sockets: multidriver beside stock
//! rust-libp2p 0.57 tuned as a careful mobile app would tune it ("tuned":
//! ping every 1 s with a 1 s timeout, 3 s QUIC idle timeout, interface
//! events and host hints acted on) and at its defaults ("defaults"). A
//! phone in a network namespace with `wlan0` and `wwan0` (the cellular path
//! 25 ms each way slower) loses Wi-Fi while its app sends a numbered
//! message every 50 ms and the peer acknowledges each; then Wi-Fi returns.
//! See `multidriver_tests::switch` (the stacks: `Stack`).
//!
//! ```text
//! cargo bench -p multidriver-benches --bench network_switch
//! cargo bench -p multidriver-benches --bench network_switch -- --transport tcp --fault down --stack tuned --runs 3
//! ```
//!
//! Flags: `--transport tcp|quic`, `--fault down|silent|hint`,
//! `--stack md|tuned|defaults` (each once; all when absent), `--runs N`
//! (default 5). Every case runs N times, stacks interleaved.
//!
//! Prints, per transport and fault, each stack's recovery time (fault →
//! first acknowledgement over cellular) as median and min–max over the
//! runs; the longest gap between acknowledgements around the fault;
//! unacknowledged messages; moving back to Wi-Fi; the cellular radio's
//! wake-ups and modelled energy (LTE profile, from the first fault action
//! until the app stops sending, the last packet's tail counted whole;
//! medians); then the ratios of median recovery times against multidriver.
//! Progress goes to stderr. Needs root (network namespaces); elsewhere it
//! says why and exits (and fails under CI, `CI=true`).

#![allow(missing_docs)]

use std::time::Duration;

use multidriver_tests::switch::{self, Case, Fault, Outcome, Stack, SwitchError, Transport};

/// One transport and fault: each stack's outcomes, one per run.
type CaseResults = (Transport, Fault, Vec<(Stack, Vec<Outcome>)>);

struct Args {
    transports: Vec<Transport>,
    faults: Vec<Fault>,
    stacks: Vec<Stack>,
    runs: usize,
}

fn usage(flag: &str, value: Option<&str>) -> ! {
    eprintln!(
        "{flag} {}: expected --transport tcp|quic, --fault down|silent|hint, \
         --stack md|tuned|defaults or --runs N (N ≥ 1)",
        value.unwrap_or("(nothing)")
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        transports: vec![Transport::Tcp, Transport::Quic],
        faults: vec![Fault::InterfaceDown, Fault::Silent, Fault::LosingHint],
        stacks: vec![Stack::Multidriver, Stack::Tuned, Stack::Stock],
        runs: 5,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).map(String::as_str);
        match (argv[i].as_str(), value) {
            ("--transport", Some("tcp")) => args.transports = vec![Transport::Tcp],
            ("--transport", Some("quic")) => args.transports = vec![Transport::Quic],
            ("--fault", Some("down")) => args.faults = vec![Fault::InterfaceDown],
            ("--fault", Some("silent")) => args.faults = vec![Fault::Silent],
            ("--fault", Some("hint")) => args.faults = vec![Fault::LosingHint],
            ("--stack", Some("md" | "multidriver")) => args.stacks = vec![Stack::Multidriver],
            ("--stack", Some("tuned")) => args.stacks = vec![Stack::Tuned],
            ("--stack", Some("defaults" | "stock")) => args.stacks = vec![Stack::Stock],
            ("--runs", Some(n)) => match n.parse::<usize>() {
                Ok(n) if n >= 1 => args.runs = n,
                _ => usage(&argv[i], value),
            },
            ("--transport" | "--fault" | "--stack" | "--runs", v) => usage(&argv[i], v),
            // cargo bench passes --bench; nothing else is ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

fn fault_name(f: Fault) -> &'static str {
    match f {
        Fault::InterfaceDown => "Wi-Fi interface down",
        Fault::Silent => "Wi-Fi silently drops everything",
        Fault::LosingHint => "host hint 'Wi-Fi losing', then down",
    }
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        f64::midpoint(xs[n / 2 - 1], xs[n / 2])
    })
}

/// Median and min–max of seconds, with how many runs had none.
fn spread(xs: &[Option<Duration>]) -> String {
    let got: Vec<f64> = xs.iter().flatten().map(Duration::as_secs_f64).collect();
    let missing = xs.len() - got.len();
    let Some(m) = median(got.clone()) else {
        return "never".to_owned();
    };
    let lo = got.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = got.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let never = if missing > 0 {
        format!(" +{missing} never")
    } else {
        String::new()
    };
    format!("{m:.3} [{lo:.3}–{hi:.3}]{never}")
}

fn median_recovery(outcomes: &[Outcome]) -> Option<f64> {
    median(
        outcomes
            .iter()
            .filter_map(|o| o.recovery.map(|d| d.as_secs_f64()))
            .collect(),
    )
}

fn main() {
    let args = parse_args();
    let mut results: Vec<CaseResults> = Vec::new();
    let total = args.transports.len() * args.faults.len() * args.stacks.len() * args.runs;
    let mut done = 0;
    for &transport in &args.transports {
        for &fault in &args.faults {
            let mut per_stack: Vec<(Stack, Vec<Outcome>)> =
                args.stacks.iter().map(|s| (*s, Vec::new())).collect();
            for run in 1..=args.runs {
                for (stack, outcomes) in &mut per_stack {
                    done += 1;
                    let case = Case {
                        transport,
                        fault,
                        stack: *stack,
                    };
                    eprintln!(
                        "== [{done}/{total}] {transport:?}, {}, {}, run {run}/{}",
                        fault_name(fault),
                        stack.name(),
                        args.runs
                    );
                    match switch::run(case, &mut |line| eprintln!("   {line}")) {
                        Ok(outcome) => {
                            for line in &outcome.story {
                                eprintln!("     {line}");
                            }
                            eprintln!(
                                "   recovery {:?}, fault gap {:.0} ms, unacked {}, cellular wake-ups {}, {:.1} J",
                                outcome.recovery,
                                outcome.fault_gap.as_secs_f64() * 1e3,
                                outcome.lost,
                                outcome.radio.wakeups,
                                outcome.radio.joules
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
            results.push((transport, fault, per_stack));
        }
    }
    print_tables(&results, args.runs);
}

fn print_tables(results: &[CaseResults], runs: usize) {
    println!();
    println!(
        "{runs} run(s) per case; times in seconds, median [min–max]; gap, wake-ups and joules are medians;"
    );
    println!(
        "cellular radio (LTE model) from the first fault action until the app stops sending, last tail whole."
    );
    println!();
    println!(
        "{:<5} {:<36} {:<11} {:>28} {:>8} {:>7} {:>26} {:>8} {:>8}",
        "",
        "fault",
        "stack",
        "recovery s",
        "gap ms",
        "unacked",
        "back on Wi-Fi s",
        "wake-ups",
        "LTE J"
    );
    for (transport, fault, per_stack) in results {
        for (stack, outcomes) in per_stack {
            let recovery: Vec<Option<Duration>> = outcomes.iter().map(|o| o.recovery).collect();
            let back: Vec<Option<Duration>> = outcomes.iter().map(|o| o.back_on_wifi).collect();
            let gap = median(
                outcomes
                    .iter()
                    .map(|o| o.fault_gap.as_secs_f64() * 1e3)
                    .collect(),
            )
            .unwrap_or(f64::NAN);
            let unacked: u64 = outcomes.iter().map(|o| o.lost).sum();
            let wakeups = median(outcomes.iter().map(|o| o.radio.wakeups as f64).collect())
                .unwrap_or(f64::NAN);
            let joules =
                median(outcomes.iter().map(|o| o.radio.joules).collect()).unwrap_or(f64::NAN);
            println!(
                "{:<5} {:<36} {:<11} {:>28} {:>8.0} {:>7} {:>26} {:>8.1} {:>8.1}",
                format!("{transport:?}"),
                fault_name(*fault),
                stack.name(),
                spread(&recovery),
                gap,
                unacked,
                spread(&back),
                wakeups,
                joules
            );
        }
    }
    println!();
    println!("ratios of median recovery (how many times longer than multidriver):");
    for (transport, fault, per_stack) in results {
        let of = |s: Stack| {
            per_stack
                .iter()
                .find(|(stack, _)| *stack == s)
                .map(|(_, o)| o.as_slice())
        };
        let Some(md) = of(Stack::Multidriver) else {
            continue;
        };
        let md_median = median_recovery(md);
        let mut line = format!("{transport:?}, {}:", fault_name(*fault));
        for other in [Stack::Stock, Stack::Tuned] {
            let Some(o) = of(other) else { continue };
            let ratio = match (median_recovery(o), md_median) {
                (Some(o), Some(m)) if m > 0.0 => format!("×{:.1}", o / m),
                (None, _) => "never recovered".to_owned(),
                _ => "n/a (multidriver did not recover)".to_owned(),
            };
            line.push_str(&format!(" {}/multidriver {ratio};", other.name()));
        }
        // On the hint, a stack that left before the fault "recovers" in the
        // wait for the next message; the gap column says more.
        let early: Vec<f64> = md
            .iter()
            .filter_map(|o| o.switches.first().map(|(at, _)| *at))
            .filter(|at| *at < 0.0)
            .collect();
        if let Some(at) = median(early) {
            line.push_str(&format!(
                " (multidriver moved {:.2} s before the fault: recovery is the wait for the next message)",
                -at
            ));
        }
        println!("{line}");
    }
    println!();
    println!(
        "unacked: summed over the runs, {} s after sending stopped.",
        switch::DRAIN_LIMIT.as_secs()
    );
}
