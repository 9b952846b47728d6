//! Wi-Fi → 4G failover on real sockets, multidriver beside stock
//! rust-libp2p 0.57, in one run: a phone in a network namespace with
//! `wlan0` and `wwan0` (the cellular path 25 ms each way slower) loses
//! Wi-Fi while its app sends a numbered message every 50 ms and the peer
//! acknowledges each; then Wi-Fi returns. See `multidriver_tests::switch`.
//!
//! ```text
//! cargo bench -p multidriver-benches --bench network_switch
//! cargo bench -p multidriver-benches --bench network_switch -- --transport tcp --fault down
//! ```
//!
//! Prints, per transport and fault, each stack's recovery time (fault →
//! first acknowledgement over cellular), lost messages, whether and when
//! it moved back to Wi-Fi, and the ratio of recovery times. Needs root
//! (network namespaces); elsewhere it says why and exits.

#![allow(missing_docs)]

use std::time::Duration;

use multidriver_tests::switch::{self, Case, Fault, Outcome, Stack, SwitchError, Transport};

fn parse_args() -> (Vec<Transport>, Vec<Fault>) {
    let mut transports = vec![Transport::Tcp, Transport::Quic];
    let mut faults = vec![Fault::InterfaceDown, Fault::Silent, Fault::LosingHint];
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).map(String::as_str);
        match (args[i].as_str(), value) {
            ("--transport", Some("tcp")) => transports = vec![Transport::Tcp],
            ("--transport", Some("quic")) => transports = vec![Transport::Quic],
            ("--fault", Some("down")) => faults = vec![Fault::InterfaceDown],
            ("--fault", Some("silent")) => faults = vec![Fault::Silent],
            ("--fault", Some("hint")) => faults = vec![Fault::LosingHint],
            ("--transport" | "--fault", v) => {
                eprintln!(
                    "{} {}: expected --transport tcp|quic or --fault down|silent|hint",
                    args[i],
                    v.unwrap_or("(nothing)")
                );
                std::process::exit(2);
            }
            // cargo bench passes --bench; nothing else is ours.
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    (transports, faults)
}

fn fault_name(f: Fault) -> &'static str {
    match f {
        Fault::InterfaceDown => "Wi-Fi interface down",
        Fault::Silent => "Wi-Fi silently drops everything",
        Fault::LosingHint => "host hint 'Wi-Fi losing', then down",
    }
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || "never".to_owned(),
        |d| format!("{:.3} s", d.as_secs_f64()),
    )
}

fn main() {
    let (transports, faults) = parse_args();
    let mut rows: Vec<(Case, Outcome)> = Vec::new();
    for &transport in &transports {
        for &fault in &faults {
            for stack in [Stack::Multidriver, Stack::Stock] {
                let case = Case {
                    transport,
                    fault,
                    stack,
                };
                eprintln!("== {transport:?}, {}, {stack:?}", fault_name(fault));
                match switch::run(case, &mut |line| eprintln!("   {line}")) {
                    Ok(outcome) => {
                        for line in &outcome.story {
                            eprintln!("     {line}");
                        }
                        rows.push((case, outcome));
                    }
                    Err(SwitchError::Unavailable(reason)) => {
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
    }
    println!();
    println!(
        "{:<5} {:<38} {:<12} {:>11} {:>6} {:>6} {:>8} {:>14} {:>11}",
        "",
        "fault",
        "stack",
        "recovery",
        "sent",
        "unacked",
        "resent",
        "back on Wi-Fi",
        "return gap"
    );
    for (case, o) in &rows {
        println!(
            "{:<5} {:<38} {:<12} {:>11} {:>6} {:>6} {:>8} {:>14} {:>9.0} ms",
            format!("{:?}", case.transport),
            fault_name(case.fault),
            format!("{:?}", case.stack),
            secs(o.recovery),
            o.sent,
            o.lost,
            o.resent,
            secs(o.back_on_wifi),
            o.return_gap.as_secs_f64() * 1e3
        );
    }
    println!();
    for pair in rows.chunks(2) {
        let [(case, md), (_, stock)] = pair else {
            continue;
        };
        // On the hint, multidriver leaves before the fault: its "recovery"
        // is only the wait for the next message, and no ratio means much.
        let left_early = md.switches.first().filter(|(at, _)| *at < 0.0);
        let ratio = match (md.recovery, stock.recovery) {
            _ if left_early.is_some() => format!(
                "no ratio (multidriver moved {:.2} s before the fault)",
                -left_early.map_or(0.0, |(at, _)| *at)
            ),
            (Some(m), Some(s)) => format!("×{:.1} faster", s.as_secs_f64() / m.as_secs_f64()),
            (Some(_), None) => format!("> ×{:.1} faster (stock never recovered)", {
                let m = md.recovery.unwrap_or_default().as_secs_f64().max(1e-3);
                switch::RECOVERY_LIMIT.as_secs_f64() / m
            }),
            _ => "n/a (multidriver did not recover)".to_owned(),
        };
        println!(
            "{:?}, {}: multidriver {} vs stock {}: {}; unacknowledged {} s after sending stopped: {} vs {}",
            case.transport,
            fault_name(case.fault),
            secs(md.recovery),
            secs(stock.recovery),
            ratio,
            switch::DRAIN_LIMIT.as_secs(),
            md.lost,
            stock.lost
        );
    }
}
