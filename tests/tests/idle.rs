//! A phone on cellular only whose app sends a message rarely, on real
//! sockets (network namespaces, a delaying relay that meters the cellular
//! radio): with every stack, every message must be delivered, and the
//! meter must have seen the traffic and at least one radio wake-up.
//!
//! The run is short (40 s, a message every 15 s) and the assertions are
//! about behaviour, not timing. The figures (wake-ups and joules side by
//! side over ten minutes, a message a minute) come from `cargo bench -p
//! multidriver-benches --bench idle`. Skipped, with the reason printed,
//! where namespaces cannot be made; failing there under CI (`CI=true`).
#![cfg(target_os = "linux")]

use std::sync::Mutex;
use std::time::Duration;

use multidriver_tests::idle::{self, IdleCase, IdleOutcome, Stack, SwitchError, Transport};

/// The run: long enough for a few messages and for connections to go idle
/// and close (libp2p-swarm's 10 s idle timeout) between them. Ours.
const DURATION: Duration = Duration::from_secs(40);
/// A message every 15 s: longer than LTE's 10.1 s radio tail
/// (`multidriver_scoring::energy::LTE`), as in the full run's minute. Ours.
const MESSAGE_INTERVAL: Duration = Duration::from_secs(15);

/// One run at a time: the runs share the machine's two cores, and the
/// namespace tests must not overlap.
static SERIAL: Mutex<()> = Mutex::new(());

fn run(stack: Stack) -> Option<IdleOutcome> {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let case = IdleCase {
        stack,
        transport: Transport::Tcp,
        duration: DURATION,
        message_interval: MESSAGE_INTERVAL,
        peer_pings: true,
    };
    let mut lines = Vec::new();
    match idle::run(case, &mut |l| lines.push(l.to_owned())) {
        Ok(outcome) => {
            eprintln!(
                "{case:?}: {:?}, sent {}, delivered {}, resent {}\n  {}\n  {}",
                outcome.radio,
                outcome.sent,
                outcome.delivered,
                outcome.resent,
                lines.join("\n  "),
                outcome.story.join("\n  ")
            );
            Some(outcome)
        }
        Err(SwitchError::Unavailable(reason)) => {
            multidriver_tests::require_or_skip(&reason);
            None
        }
        Err(e) => panic!("{case:?}: {e}\n  {}", lines.join("\n  ")),
    }
}

fn check(stack: Stack) {
    let Some(o) = run(stack) else {
        return;
    };
    // One message in the middle half of each 15 s interval: in 3.75–11.25
    // and 18.75–26.25 s, and in 33.75–41.25 s if before the end.
    assert!(o.sent >= 2, "the app kept sending: {o:?}");
    assert_eq!(o.lost, 0, "no message lost: {o:?}");
    assert_eq!(o.delivered, o.sent, "every message delivered: {o:?}");
    assert!(
        o.radio.up_bytes > 0 && o.radio.down_bytes > 0,
        "the meter saw traffic both ways: {o:?}"
    );
    assert!(o.radio.wakeups >= 1, "the radio woke up: {o:?}");
    assert!(o.radio.joules > 0.0, "and spent energy: {o:?}");
    assert!(o.window >= DURATION, "metered the whole run: {o:?}");
}

#[test]
fn multidriver_delivers_every_message() {
    check(Stack::Multidriver);
}

#[test]
fn tuned_stock_delivers_every_message() {
    check(Stack::Tuned);
}

#[test]
fn stock_defaults_deliver_every_message() {
    check(Stack::Stock);
}
