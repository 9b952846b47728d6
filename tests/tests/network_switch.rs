//! The phone loses Wi-Fi on real sockets (network namespaces, veth pairs,
//! a delaying relay on the cellular path) while its app sends a message
//! every 50 ms: multidriver must move the conversation to cellular, lose
//! no message, and be back on Wi-Fi once it returns.
//!
//! The figures (recovery times side by side with stock rust-libp2p) come
//! from `cargo bench -p multidriver-benches --bench network_switch`; these
//! tests assert behaviour only. Skipped, with the reason printed, where
//! namespaces cannot be made.
#![cfg(target_os = "linux")]

use multidriver_tests::switch::{
    self, Case, Fault, Outcome, Path, RECOVERY_LIMIT, Stack, SwitchError, Transport,
};

fn run(transport: Transport, fault: Fault) -> Option<Outcome> {
    let case = Case {
        transport,
        fault,
        stack: Stack::Multidriver,
    };
    let mut lines = Vec::new();
    match switch::run(case, &mut |l| lines.push(l.to_owned())) {
        Ok(outcome) => {
            eprintln!(
                "{case:?}: recovery {:?}, lost {}, back on Wi-Fi {:?}\n  {}\n  {}",
                outcome.recovery,
                outcome.lost,
                outcome.back_on_wifi,
                lines.join("\n  "),
                outcome.story.join("\n  ")
            );
            Some(outcome)
        }
        Err(SwitchError::Unavailable(reason)) => {
            eprintln!("skipped: {reason}");
            None
        }
        Err(e) => panic!("{case:?}: {e}\n  {}", lines.join("\n  ")),
    }
}

/// What every case must show.
fn check(transport: Transport, fault: Fault) {
    let Some(o) = run(transport, fault) else {
        return;
    };
    // The first switch: why, and on which side of the fault.
    let (at, reason) = o.switches.first().cloned().expect("a switch");
    match fault {
        // An interface event, not a probe timing out.
        Fault::InterfaceDown => assert!(at >= 0.0 && reason == "InterfaceLost", "{o:?}"),
        // The liveness probe finds the dead path.
        Fault::Silent => assert!(at >= 0.0 && reason == "ConnectionClosed", "{o:?}"),
        // Left before it went (make-before-break on the host's word).
        Fault::LosingHint => assert!(at < 0.0 && reason == "InterfaceLosing", "{o:?}"),
    }
    // Back on Wi-Fi because it is better.
    assert_eq!(
        o.switches.last().map(|(_, r)| r.as_str()),
        Some("Better"),
        "{o:?}"
    );
    let recovery = o.recovery.expect("messages flow over cellular again");
    assert!(recovery < RECOVERY_LIMIT);
    assert_eq!(o.lost, 0, "no message lost: {o:?}");
    assert!(o.sent > 100, "the app kept sending: {o:?}");
    assert!(o.back_on_wifi.is_some(), "moved back to Wi-Fi: {o:?}");
    assert_eq!(o.final_path, Some(Path::Wifi), "ends on Wi-Fi: {o:?}");
}

#[test]
fn tcp_interface_down() {
    check(Transport::Tcp, Fault::InterfaceDown);
}

#[test]
fn quic_interface_down() {
    check(Transport::Quic, Fault::InterfaceDown);
}

#[test]
fn tcp_silent_loss() {
    check(Transport::Tcp, Fault::Silent);
}

#[test]
fn quic_silent_loss() {
    check(Transport::Quic, Fault::Silent);
}

#[test]
fn tcp_losing_hint() {
    check(Transport::Tcp, Fault::LosingHint);
}

#[test]
fn quic_losing_hint() {
    check(Transport::Quic, Fault::LosingHint);
}
