//! The chat runs as the README says: a rendezvous point, then two chat
//! processes that find each other through it and exchange a line each.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_multidriver-chat");

/// A chat process whose stdout lines arrive on a channel; killed on drop.
struct Proc {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn start(args: &[&str]) -> Proc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the chat binary starts");
        let out = child.stdout.take().unwrap();
        // Bounded: the reader waits while the test is behind.
        let (tx, lines) = sync_channel(1024);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 20 s) for a line containing `needle`.
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
        panic!("no line with {needle:?} within 20 s; saw {:#?}", self.seen);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_chats_meet_at_a_rendezvous_point_and_talk() {
    let mut point = Proc::start(&[
        "--serve-rendezvous",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--exit-after",
        "60",
    ]);
    let line = point.expect("rendezvous point: ");
    let addr = line.trim_start_matches("rendezvous point: ").to_owned();
    let mut a = Proc::start(&[
        "--rendezvous",
        &addr,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--send",
        "hello from A",
        "--exit-after",
        "60",
    ]);
    a.expect("listening on");
    // As a person would: B starts a moment after A registered.
    std::thread::sleep(Duration::from_millis(500));
    let mut b = Proc::start(&[
        "--rendezvous",
        &addr,
        "--listen",
        "/ip4/127.0.0.1/udp/0/quic-v1",
        "--send",
        "hello from B",
        "--exit-after",
        "60",
    ]);
    // B finds A, which registered first, and connects along A's route.
    let found = b.expect("through rendezvous");
    assert!(found.starts_with("found …"), "{found}");
    let route = b.expect("route to …");
    assert!(
        route.contains("/ip4/127.0.0.1/tcp/"),
        "A's address: {route}"
    );
    assert!(route.contains("cost "), "with its reason: {route}");
    b.expect(": hello from A");
    a.expect(": hello from B");
}

/// A rendezvous point, chat A, and half a second later chat B, which sends
/// "hello from B"; with B's short id as the chats print it.
fn point_then_a_then_b() -> (Proc, Proc, Proc, String) {
    let mut point = Proc::start(&[
        "--serve-rendezvous",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--exit-after",
        "60",
    ]);
    let line = point.expect("rendezvous point: ");
    let addr = line.trim_start_matches("rendezvous point: ").to_owned();
    let mut a = Proc::start(&[
        "--rendezvous",
        &addr,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--exit-after",
        "60",
    ]);
    a.expect("listening on");
    std::thread::sleep(Duration::from_millis(500));
    let mut b = Proc::start(&[
        "--rendezvous",
        &addr,
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
        "--send",
        "hello from B",
        "--exit-after",
        "60",
    ]);
    let me = b.expect("I am ");
    let short: String = me
        .split('(')
        .nth(1)
        .unwrap()
        .trim_end_matches(')')
        .to_owned();
    (point, a, b, short)
}

/// The first chat finds a later one as soon as that one connects (not at
/// its own next lookup, 30 s later), and never calls a connected peer
/// unreachable.
#[test]
fn the_first_chat_finds_a_later_one_within_seconds() {
    let (_point, mut a, _b, short) = point_then_a_then_b();
    let started = Instant::now();
    let found = a.expect(&format!("found {short} (it connected to us)"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "A found B after {:?}: {found}",
        started.elapsed()
    );
    a.expect(&format!("route to {short}"));
    a.expect(": hello from B");
    let seen = a.seen.clone();
    assert!(
        !seen.iter().any(|l| l.contains("unreachable")),
        "A called B unreachable: {seen:?}"
    );
}

/// A chat that leaves is reported as gone in the order a person reads it:
/// "disconnected" first, and only then "unreachable" once the redial to
/// its old address fails (before the fix, the engine said "unreachable"
/// alone and the chat kept the peer in its list).
#[test]
fn a_chat_that_leaves_is_disconnected_before_unreachable() {
    let (_point, mut a, b, short) = point_then_a_then_b();
    a.expect(": hello from B");
    // B goes away for good; its port closes with it.
    drop(b);
    a.expect(&format!("{short} disconnected"));
    a.expect(&format!("{short} unreachable"));
    let position = |needle: &str| {
        a.seen
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {:#?}", a.seen))
    };
    assert!(
        position(&format!("{short} disconnected")) < position(&format!("{short} unreachable")),
        "unreachable before disconnected: {:#?}",
        a.seen
    );
}
