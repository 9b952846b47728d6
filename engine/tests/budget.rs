//! The connection manager: watermarks, grace period, protected and recently
//! used peers, lowest value first.

use std::time::Duration;

use libp2p_identity::{Keypair, PeerId};
use multidriver::core::{
    CloseReason, Command, Config, ConnectionId, Engine, InterfaceId, NetworkChange,
};
use multidriver::scoring::{Medium, NetworkConditions, Timestamp};

const WIFI: InterfaceId = InterfaceId(1);

fn peer(n: u8) -> PeerId {
    PeerId::from_public_key(&Keypair::ed25519_from_bytes([n; 32]).unwrap().public())
}

fn engine(low: usize, high: usize) -> Engine {
    let config = Config::default().with_watermarks(low, high, Duration::from_secs(20));
    let mut e = Engine::new(config).unwrap();
    e.handle_network_change(
        NetworkChange::Up {
            interface: WIFI,
            medium: Medium::Wifi,
            conditions: NetworkConditions::default(),
            validated: true,
        },
        Timestamp::ZERO,
    )
    .unwrap();
    e
}

fn inbound(e: &mut Engine, n: u8, at: Timestamp) -> ConnectionId {
    let addr = format!("/ip4/192.168.1.{n}/tcp/4001").parse().unwrap();
    e.handle_inbound(peer(n), addr, WIFI, at).unwrap()
}

fn trimmed(e: &mut Engine) -> Vec<ConnectionId> {
    let mut out = Vec::new();
    while let Some(c) = e.poll_command() {
        if let Command::CloseConnection {
            connection,
            reason: CloseReason::Trimmed,
        } = c
        {
            out.push(connection);
        }
    }
    out
}

fn run_until(e: &mut Engine, t: Timestamp) {
    while let Some(due) = e.poll_timeout() {
        if due > t {
            break;
        }
        e.handle_timeout(due);
    }
}

#[test]
fn trims_to_the_low_watermark_after_the_grace_period_least_recently_used_first() {
    let mut e = engine(1, 2);
    let t = Timestamp::from_millis;
    let c1 = inbound(&mut e, 1, t(0));
    let c2 = inbound(&mut e, 2, t(1_000));
    let c3 = inbound(&mut e, 3, t(2_000));
    // Above the high watermark, but every connection is in its grace period.
    assert!(trimmed(&mut e).is_empty());
    assert_eq!(e.connection_count(), 3);
    // Peer 1 is in use. When peer 2 leaves its grace period it is the only
    // connection that may go: trimming stops there, with peer 3 still in
    // its grace period, and does not start again until above the high
    // watermark once more.
    e.mark_used(peer(1), t(15_000));
    run_until(&mut e, t(25_000));
    assert_eq!(trimmed(&mut e), vec![c2]);
    assert_eq!(e.connection_count(), 2);
    let c4 = inbound(&mut e, 4, t(30_000));
    // Peer 4 is new (grace) and peer 1 recently used: peer 3 goes.
    assert_eq!(trimmed(&mut e), vec![c3]);
    assert_eq!(e.primary(&peer(1)), Some(c1));
    assert_eq!(e.primary(&peer(4)), Some(c4));
}

#[test]
fn wanted_and_protected_peers_are_never_trimmed() {
    let mut e = engine(0, 1);
    let t = Timestamp::from_millis;
    inbound(&mut e, 1, t(0));
    inbound(&mut e, 2, t(0));
    let c3 = inbound(&mut e, 3, t(0));
    e.connect(peer(1), t(0)).unwrap();
    e.protect(peer(2)).unwrap();
    run_until(&mut e, t(60_000));
    assert_eq!(trimmed(&mut e), vec![c3]);
    assert_eq!(
        e.connection_count(),
        2,
        "both held peers keep their connections"
    );
    // Once unprotected, peer 2 goes at the next trim.
    e.unprotect(peer(2));
    inbound(&mut e, 4, t(60_000));
    run_until(&mut e, t(90_000));
    assert_eq!(e.connection_count(), 1);
}

#[test]
fn watermarks_are_validated() {
    let err = Engine::new(Config::default().with_watermarks(10, 5, Duration::ZERO)).unwrap_err();
    assert!(err.to_string().contains("conn_low_watermark"), "{err}");
}
