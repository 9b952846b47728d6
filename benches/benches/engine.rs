//! Input throughput of the engine core with 1,000 connected peers.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use libp2p_identity::{Keypair, PeerId};
use multidriver::core::{
    Command, Config, ConnectionHandle, Discovered, Engine, InterfaceId, NetworkChange,
};
use multidriver_scoring::{CellularGeneration, Medium, NetworkConditions, Source, Timestamp};

const PEERS: usize = 1_000;
const WIFI: InterfaceId = InterfaceId(1);
const CELL: InterfaceId = InterfaceId(2);

fn drain(engine: &mut Engine) -> Vec<ConnectionHandle> {
    let mut dials = Vec::new();
    while let Some(c) = engine.poll_command() {
        if let Command::Dial { connection, .. } = c {
            dials.push(connection);
        }
    }
    while engine.poll_event().is_some() {}
    dials
}

fn up(engine: &mut Engine, interface: InterfaceId, medium: Medium, now: Timestamp) {
    let metered = medium.is_cellular();
    let conditions = NetworkConditions {
        metered,
        expensive: metered,
        constrained: false,
    };
    engine
        .handle_network_change(
            NetworkChange::Up {
                interface,
                medium,
                conditions,
                validated: true,
            },
            now,
        )
        .unwrap();
}

/// 1,000 peers, each with a LAN route over Wi-Fi and two public routes over
/// 4G, all connected over Wi-Fi.
fn connected_engine() -> (Engine, Vec<(PeerId, ConnectionHandle)>, Timestamp) {
    let config = Config::default()
        .with_max_peers(PEERS)
        .with_max_connections(4 * PEERS)
        .with_max_attempts(4, 4 * PEERS)
        .with_watermarks(2 * PEERS, 4 * PEERS, Duration::from_secs(20));
    let mut engine = Engine::new(config).unwrap();
    let mut now = Timestamp::ZERO;
    up(&mut engine, WIFI, Medium::Wifi, now);
    up(
        &mut engine,
        CELL,
        Medium::Cellular(CellularGeneration::G4),
        now,
    );
    let mut peers = Vec::with_capacity(PEERS);
    for i in 0..PEERS {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(i as u64 + 1).to_le_bytes());
        let peer = PeerId::from_public_key(&Keypair::ed25519_from_bytes(seed).unwrap().public());
        let (a, b) = (i / 250, i % 250 + 1);
        for (addr, interface, source) in [
            (
                format!("/ip4/10.1.{a}.{b}/udp/4001/quic-v1"),
                WIFI,
                Source::Mdns,
            ),
            (
                format!("/ip4/198.51.{a}.{b}/udp/4001/quic-v1"),
                CELL,
                Source::Rendezvous,
            ),
            (format!("/ip4/198.51.{a}.{b}/tcp/4001"), CELL, Source::Dht),
        ] {
            let d = Discovered {
                peer,
                addr: addr.parse().unwrap(),
                interface,
                source,
                signed: false,
                ttl: Duration::from_secs(86_400),
            };
            engine.handle_discovered(d, now).unwrap();
        }
        engine.connect(peer, now).unwrap();
        let dials = drain(&mut engine);
        now = now + Duration::from_micros(10);
        engine.handle_dial_succeeded(dials[0], now);
        drain(&mut engine);
        peers.push((peer, dials[0]));
    }
    (engine, peers, now)
}

fn bench_engine(c: &mut Criterion) {
    let (engine, peers, start) = connected_engine();
    let mut group = c.benchmark_group("engine_1000_peers");

    // The most frequent input: an RTT sample on a connection.
    let mut e = engine.clone();
    let mut now = start;
    let mut k = 0usize;
    group.bench_function("rtt_sample", |b| {
        b.iter(|| {
            k = (k + 1) % peers.len();
            now = now + Duration::from_micros(1);
            e.handle_rtt_sample(peers[k].1, Duration::from_millis(8 + (k % 5) as u64), now);
            black_box(drain(&mut e));
        });
    });

    // A driver re-announcing a known route.
    let mut e = engine.clone();
    let mut now = start;
    group.bench_function("rediscovered_route", |b| {
        b.iter(|| {
            k = (k + 1) % peers.len();
            now = now + Duration::from_micros(1);
            let (a, b2) = (k / 250, k % 250 + 1);
            let d = Discovered {
                peer: peers[k].0,
                addr: format!("/ip4/10.1.{a}.{b2}/udp/4001/quic-v1")
                    .parse()
                    .unwrap(),
                interface: WIFI,
                source: Source::Mdns,
                signed: false,
                ttl: Duration::from_secs(86_400),
            };
            e.handle_discovered(d, now).unwrap();
            black_box(drain(&mut e));
        });
    });

    // Wi-Fi lost: 1,000 connections closed and 1,000 peers re-raced over 4G,
    // every new dial answered.
    group.sample_size(10);
    group.bench_function("wifi_down_failover_all", |b| {
        b.iter_batched(
            || engine.clone(),
            |mut e| {
                let now = start + Duration::from_secs(1);
                e.handle_network_change(NetworkChange::Down { interface: WIFI }, now)
                    .unwrap();
                let dials = drain(&mut e);
                assert_eq!(dials.len(), PEERS);
                for d in dials {
                    e.handle_dial_succeeded(d, now + Duration::from_millis(100));
                }
                black_box(drain(&mut e));
                e
            },
            BatchSize::LargeInput,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
