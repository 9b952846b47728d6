//! Relay first, then hole punching, through real NATs: multidriver beside a
//! stock rust-libp2p 0.57 app using relay + DCUtR as the rust-libp2p
//! `dcutr` example and rendezvous docs do. Two phones behind separate
//! NATs (nftables masquerade in network namespaces: a home router in front
//! of phone A, a carrier NAT in front of phone B, cone or symmetric) find
//! each other at our rendezvous point, which also relays
//! (`multidriver rendezvous run --relay`, in-process); phone A's app sends
//! a numbered message every 50 ms to phone B, which acknowledges each. See
//! `multidriver_tests::nat`.
//!
//! ```text
//! cargo bench -p multidriver-benches --bench nat
//! cargo bench -p multidriver-benches --bench nat -- --transport tcp --nat cone --stack stock --runs 3
//! ```
//!
//! Flags: `--transport quic|tcp` (default quic), `--nat cone|symmetric`
//! (B's NAT; both when absent, A's is always cone), `--stack md|stock`
//! (both when absent), `--runs N` (default 5). Every case runs N times,
//! stacks interleaved.
//!
//! Prints, per NAT case, each stack's time to the first connection
//! (relayed; from phone A's start, discovery at the point included), time
//! to the first acknowledgement over a direct (hole-punched) connection,
//! the share of the sending window on a direct path (median and min–max
//! over the runs), unacknowledged messages (summed), and in how many runs
//! the circuit was closed after the upgrade. No latency is added (no
//! `netem`): times are the stacks' and protocols' own on veth. Progress
//! goes to stderr. Needs root and `nft` (network namespaces, NAT); elsewhere
//! it says why and exits (and fails under CI, `CI=true`).

#![allow(missing_docs)]

use std::time::Duration;

use multidriver_tests::nat::{self, Case, NatError, Outcome, Stack, Transport};
use multidriver_tests::netns::NatKind;

/// One NAT case (B's NAT): each stack's outcomes, one per run.
type CaseResults = (NatKind, Vec<(Stack, Vec<Outcome>)>);

struct Args {
    transport: Transport,
    nats: Vec<NatKind>,
    stacks: Vec<Stack>,
    runs: usize,
}

fn usage(flag: &str, value: Option<&str>) -> ! {
    eprintln!(
        "{flag} {}: expected --transport quic|tcp, --nat cone|symmetric, --stack md|stock \
         or --runs N (N ≥ 1)",
        value.unwrap_or("(nothing)")
    );
    std::process::exit(2);
}

fn parse_args() -> Args {
    let mut args = Args {
        transport: Transport::Quic,
        nats: vec![NatKind::Cone, NatKind::Symmetric],
        stacks: vec![Stack::Multidriver, Stack::Stock],
        runs: 5,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).map(String::as_str);
        match (argv[i].as_str(), value) {
            ("--transport", Some("quic")) => args.transport = Transport::Quic,
            ("--transport", Some("tcp")) => args.transport = Transport::Tcp,
            ("--nat", Some("cone")) => args.nats = vec![NatKind::Cone],
            ("--nat", Some("symmetric")) => args.nats = vec![NatKind::Symmetric],
            ("--stack", Some("md" | "multidriver")) => args.stacks = vec![Stack::Multidriver],
            ("--stack", Some("stock")) => args.stacks = vec![Stack::Stock],
            ("--runs", Some(n)) => match n.parse::<usize>() {
                Ok(n) if n >= 1 => args.runs = n,
                _ => usage(&argv[i], value),
            },
            ("--transport" | "--nat" | "--stack" | "--runs", v) => usage(&argv[i], v),
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

/// Median and min–max of `xs` (`digits` decimals), with how many runs had
/// none.
fn spread(xs: &[Option<f64>], digits: usize) -> String {
    let got: Vec<f64> = xs.iter().flatten().copied().collect();
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
    format!("{m:.digits$} [{lo:.digits$}–{hi:.digits$}]{never}")
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

fn main() {
    let args = parse_args();
    let mut results: Vec<CaseResults> = Vec::new();
    let total = args.nats.len() * args.stacks.len() * args.runs;
    let mut done = 0;
    for &nat_b in &args.nats {
        let mut per_stack: Vec<(Stack, Vec<Outcome>)> =
            args.stacks.iter().map(|s| (*s, Vec::new())).collect();
        for run in 1..=args.runs {
            for (stack, outcomes) in &mut per_stack {
                done += 1;
                let case = Case {
                    transport: args.transport,
                    stack: *stack,
                    nat_a: NatKind::Cone,
                    nat_b,
                };
                eprintln!(
                    "== [{done}/{total}] {}, B behind a {} NAT, {}, run {run}/{}",
                    args.transport.name(),
                    nat_b.name(),
                    stack.name(),
                    args.runs
                );
                match nat::run(case, &mut |line| eprintln!("   {line}")) {
                    Ok(outcome) => {
                        for line in &outcome.story {
                            eprintln!("     {line}");
                        }
                        eprintln!(
                            "   first connection {:?}, direct {:?}, direct share {:.2}, unacked {}",
                            outcome.first_connection,
                            outcome.direct,
                            outcome.direct_share,
                            outcome.lost
                        );
                        outcomes.push(outcome);
                    }
                    Err(NatError::Unavailable(reason)) => {
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
        results.push((nat_b, per_stack));
    }
    print_table(&results, args.transport, args.runs);
}

fn print_table(results: &[CaseResults], transport: Transport, runs: usize) {
    println!();
    println!(
        "{runs} run(s) per case over {}; A behind a cone NAT; times in seconds from phone A's start, \
         median [min–max];",
        transport.name()
    );
    println!(
        "direct share: of the {} s sending window from the first connection, the time on a direct path.",
        nat::WINDOW.as_secs()
    );
    println!();
    println!(
        "{:<14} {:<12} {:>24} {:>24} {:>22} {:>8} {:>15}",
        "B's NAT",
        "stack",
        "first connection s",
        "direct s",
        "direct share",
        "unacked",
        "circuit closed"
    );
    for (nat_b, per_stack) in results {
        for (stack, outcomes) in per_stack {
            let first: Vec<Option<f64>> =
                outcomes.iter().map(|o| secs(o.first_connection)).collect();
            let direct: Vec<Option<f64>> = outcomes.iter().map(|o| secs(o.direct)).collect();
            let share: Vec<Option<f64>> = outcomes.iter().map(|o| Some(o.direct_share)).collect();
            let unacked: u64 = outcomes.iter().map(|o| o.lost).sum();
            let closed = outcomes.iter().filter(|o| o.circuit_closed).count();
            println!(
                "{:<14} {:<12} {:>24} {:>24} {:>22} {:>8} {:>15}",
                nat_b.name(),
                stack.name(),
                spread(&first, 3),
                spread(&direct, 3),
                spread(&share, 2),
                unacked,
                format!("{closed}/{}", outcomes.len())
            );
        }
    }
    println!();
    println!(
        "unacked: summed over the runs, {} s after sending stopped.",
        nat::DRAIN_LIMIT.as_secs()
    );
}
