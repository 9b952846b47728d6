//! Ranking a peer's routes: 4, 16 and 64 routes under `balanced`.

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use libp2p_identity::PeerId;
use multidriver_scoring::{
    CellularGeneration, Context, LinkConditions, Medium, PowerState, Profile, RacePlan, Route,
    Source, Timestamp, rank,
};

/// `n` routes over a realistic mix of media and transports, each with a few
/// RTT samples, some failures and a source.
fn routes(n: usize) -> Vec<Route> {
    let peer = PeerId::random();
    let media = [
        Medium::Wifi,
        Medium::Cellular(CellularGeneration::G4),
        Medium::Ethernet,
        Medium::Cellular(CellularGeneration::G5),
        Medium::Bluetooth,
        Medium::Relay,
    ];
    (0..n)
        .map(|i| {
            let proto = if i % 2 == 0 { "udp" } else { "tcp" };
            let suffix = if i % 2 == 0 { "/quic-v1" } else { "" };
            let addr = format!(
                "/ip4/10.0.{}.{}/{proto}/{}{suffix}",
                i / 250,
                i % 250 + 1,
                4000 + i
            )
            .parse()
            .expect("valid multiaddr");
            let mut r = Route::from_addr(peer, addr, media[i % media.len()]).expect("transport");
            for k in 0..(i % 5) {
                r.rtt
                    .on_sample(Duration::from_millis(10 + (i * 7 + k * 3) as u64 % 90));
            }
            if i % 3 == 0 {
                r.rtt.on_failure(Timestamp::from_millis(50_000));
                r.dials.record_failure();
            }
            r.dials.record_success();
            r.record_sighting(
                Source::Rendezvous,
                i % 4 == 0,
                Timestamp::from_millis(55_000),
            );
            r
        })
        .collect()
}

fn bench_ranking(c: &mut Criterion) {
    let profile = Profile::balanced();
    let links = LinkConditions::default();
    let ctx = Context {
        profile: &profile,
        links: &links,
        power: PowerState::on_battery(0.6),
        now: Timestamp::from_millis(60_000),
    };
    let mut group = c.benchmark_group("rank");
    for n in [4usize, 16, 64] {
        let set = routes(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter(|| rank(black_box(set), black_box(&ctx)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("rank_and_plan");
    for n in [4usize, 16, 64] {
        let set = routes(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &set, |b, set| {
            b.iter(|| {
                let ranking = rank(black_box(set), black_box(&ctx));
                RacePlan::new(&ranking, set, &profile.racing)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_ranking);
criterion_main!(benches);
