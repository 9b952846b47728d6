//! Route memory: exported from one engine, stored as bytes, imported into
//! the engine of the app's next process. The restarted engine dials the
//! remembered best route at once; expired routes stay out; the bounds drop
//! the oldest; every malformed input is refused with what is wrong.

use std::time::Duration;

use multidriver_core::{
    Command, Config, Discovered, Engine, Error, MEMORY_MAGIC, MEMORY_MAX_PEERS, MEMORY_VERSION,
    Reachability, RouteMemory,
};
use multidriver_scoring::{Medium, Source, Timestamp};

mod common;
use common::*;

/// A public route of the peer that fails (its host is gone); it sorts
/// before `PUBLIC_QUIC` when nothing tells them apart.
const DEAD: &str = "/ip4/198.51.100.9/udp/4001/quic-v1";
/// The same peer through a relay.
const RELAYED: &str = "/ip4/203.0.113.1/udp/4001/quic-v1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// An engine that learned a peer: a dead public route that failed,
/// a working public route measured at 30 ms, and a relayed route, all over
/// Wi-Fi; 4G up too; a relay known, the node private, a hole punch to
/// `peer(2)` failed. Returns the harness, at t = 100 s, and the peer.
fn experienced() -> (Harness, libp2p_identity::PeerId) {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    let p = peer(1);
    h.discover(p, DEAD, WIFI, Source::Dht);
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    h.discover(p, RELAYED, WIFI, Source::Rendezvous);
    h.engine
        .add_relay(peer(9), addr("/ip4/203.0.113.1/udp/4001/quic-v1"), h.now)
        .unwrap();
    h.engine.handle_reachability(Reachability::Private, h.now);
    h.drain();
    h.connect(p);
    // The dead route fails at once, the public one connects; probes
    // measure it.
    let dead = h.dial_to(DEAD);
    h.fail(dead);
    h.at(ms(200));
    let c = h.dial_to(PUBLIC_QUIC);
    h.succeed(c);
    assert_eq!(h.engine.primary(&p), Some(c));
    for i in 0..8 {
        h.at(ms(1_000 + 1_000 * i));
        h.engine.handle_rtt_sample(c, ms(30 + i % 3), h.now);
        h.drain();
    }
    // Another peer, behind a NAT a hole punch could not get through.
    h.at(secs(90));
    h.discover(
        peer(2),
        "/ip4/198.51.100.7/udp/4001/quic-v1",
        WIFI,
        Source::Rendezvous,
    );
    h.engine.handle_hole_punch_failed(peer(2), WIFI, h.now);
    h.at(secs(100));
    (h, p)
}

/// A fresh engine ("the next process") with Wi-Fi and 4G up.
fn restarted(config: Config) -> Harness {
    let mut h = Harness::new(config);
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    h
}

#[test]
fn bytes_round_trip() {
    let (h, p) = experienced();
    let memory = h
        .engine
        .export_memory(h.now)
        .with_saved_at_unix_ms(1_750_000_000_000);
    let bytes = memory.to_bytes();
    assert_eq!(&bytes[..4], &MEMORY_MAGIC);
    assert_eq!(bytes[4], MEMORY_VERSION);
    let back = RouteMemory::from_bytes(&bytes).unwrap();
    assert_eq!(back, memory);
    assert_eq!(back.to_bytes(), bytes);
    // What it holds.
    assert_eq!(back.reachability(), Reachability::Private);
    assert_eq!(back.relays().len(), 1);
    assert_eq!(back.saved_at_unix_ms(), Some(1_750_000_000_000));
    let rp = back.peer(&p).expect("the peer is remembered");
    assert_eq!(rp.routes().len(), 3);
    let public = rp
        .routes()
        .iter()
        .find(|r| r.addr().to_string() == PUBLIC_QUIC)
        .unwrap();
    assert!(public.connected_before());
    assert_eq!(public.interface_medium(), Some(Medium::Wifi));
    assert!(public.srtt().is_some_and(|s| s > ms(25) && s < ms(35)));
    assert_eq!(public.ttl(), secs(3600) - secs(100));
    let dead = rp
        .routes()
        .iter()
        .find(|r| r.addr().to_string() == DEAD)
        .unwrap();
    assert!(!dead.connected_before());
    assert!(dead.failures() >= 1, "{dead:?}");
    assert!(dead.failure_penalty() > Duration::ZERO);
    assert!(rp.punch_backoff().is_empty());
    let punched = back.peer(&peer(2)).unwrap().punch_backoff();
    assert_eq!(punched.len(), 1);
    assert_eq!(punched[0].interface_medium(), Medium::Wifi);
    assert_eq!(punched[0].failures(), 1);
    assert_eq!(punched[0].remaining(), secs(50));
    // The most recently confirmed route first: the connection's traffic.
    assert_eq!(rp.routes()[0].addr().to_string(), PUBLIC_QUIC);
    // An empty memory too.
    let empty = RouteMemory::default();
    assert_eq!(RouteMemory::from_bytes(&empty.to_bytes()).unwrap(), empty);
}

/// A snapshot this release wrote, kept in the repository: what a phone
/// saved before an update must still import after it, byte for byte the
/// same export (a change of format must raise `MEMORY_VERSION`). The file
/// also seeds the `route_memory` fuzz target. `MULTIDRIVER_BLESS=1`
/// rewrites it after a deliberate change.
#[test]
fn a_kept_version_1_snapshot_still_decodes_to_the_same_export() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/memory-v1.mdrm");
    let bytes = valid_bytes();
    if std::env::var_os("MULTIDRIVER_BLESS").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let kept = std::fs::read(&path).unwrap();
    assert_eq!(kept[4], 1, "the kept file is version 1");
    let memory = RouteMemory::from_bytes(&kept).unwrap();
    assert_eq!(memory.to_bytes(), kept);
    assert_eq!(
        kept, bytes,
        "the export changed: raise MEMORY_VERSION, then bless"
    );
}

#[test]
fn a_restarted_engine_dials_the_remembered_best_route_first() {
    let (old, p) = experienced();
    let bytes = old.engine.export_memory(old.now).to_bytes();

    // Without memory, the two public routes tie and the dead one sorts
    // first; the relay starts beside it (nothing direct is proven).
    let mut cold = restarted(Config::default());
    cold.discover(p, DEAD, WIFI, Source::Dht);
    cold.discover(p, PUBLIC_QUIC, WIFI, Source::Rendezvous);
    cold.discover(p, RELAYED, WIFI, Source::Rendezvous);
    cold.connect(p);
    assert_eq!(cold.dials()[0].2, DEAD);

    // The next process imports what the old one learned.
    let mut h = restarted(Config::default());
    let memory = RouteMemory::from_bytes(&bytes).unwrap();
    let report = h.engine.import_memory(&memory, h.now).unwrap();
    h.drain();
    assert_eq!((report.peers, report.routes, report.waiting), (2, 4, 0));
    assert_eq!(report.relays, 1);
    assert_eq!(h.engine.route_count(&p), 3);
    let before = h.commands.len();
    h.connect(p);
    let first = &h.commands[before..];
    assert!(
        matches!(first.first(), Some((_, Command::Dial { addr, interface, .. }))
            if addr.to_string() == PUBLIC_QUIC && *interface == WIFI),
        "the first command is the remembered best route: {first:#?}"
    );
    assert!(
        !first
            .iter()
            .any(|(_, c)| matches!(c, Command::Discover { .. })),
        "no discovery query: {first:#?}"
    );
    // It connected before: no relay started beside it.
    assert_eq!(h.dials().len(), 1, "{:#?}", h.dials());
    assert_eq!(
        h.engine.ranked_routes(&p, h.now)[0].0.to_string(),
        PUBLIC_QUIC
    );
    // The estimate came along.
    let (srtt, samples) = h.engine.route_rtt(&p, &addr(PUBLIC_QUIC)).unwrap();
    let (old_srtt, _) = old.engine.route_rtt(&p, &addr(PUBLIC_QUIC)).unwrap();
    assert!(
        srtt.abs_diff(old_srtt) <= Duration::from_micros(1),
        "{srtt:?} vs {old_srtt:?}"
    );
    assert!(samples >= 1);
    // So did the relay, the reachability and the punch backoff.
    assert_eq!(h.engine.relays().count(), 1);
    assert_eq!(h.engine.reachability(), Reachability::Private);
    assert_eq!(
        h.engine.hole_punch_backoff(&peer(2), WIFI, h.now),
        Some(h.now + secs(50))
    );
}

#[test]
fn estimates_penalties_and_history_survive_a_second_export() {
    let (old, p) = experienced();
    let first = old.engine.export_memory(old.now);
    let mut h = restarted(Config::default());
    h.engine.import_memory(&first, h.now).unwrap();
    h.at(secs(10));
    let second = h.engine.export_memory(h.now);
    let a = first.peer(&p).unwrap();
    let b = second.peer(&p).unwrap();
    for ra in a.routes() {
        let rb = b
            .routes()
            .iter()
            .find(|r| r.addr() == ra.addr())
            .unwrap_or_else(|| panic!("{} lost", ra.addr()));
        let us = Duration::from_micros(2);
        assert_eq!(ra.srtt().is_some(), rb.srtt().is_some());
        if let (Some(x), Some(y)) = (ra.srtt(), rb.srtt()) {
            assert!(x.abs_diff(y) <= us, "srtt {x:?} vs {y:?}");
            assert!(
                ra.rttvar().abs_diff(rb.rttvar()) <= us.max(ra.rttvar() / 500),
                "rttvar {:?} vs {:?}",
                ra.rttvar(),
                rb.rttvar()
            );
        }
        assert_eq!(
            (ra.successes(), ra.failures()),
            (rb.successes(), rb.failures())
        );
        // Ten seconds later: ages grew by them even though they lie before
        // the new clock's origin, lifetimes shrank by them, penalties
        // decayed (half-life 30 s) or, dated from the origin, are at most
        // twice what they were.
        assert_eq!(rb.age(), ra.age() + secs(10), "{}", ra.addr());
        assert_eq!(rb.ttl(), ra.ttl() - secs(10));
        assert!(rb.failure_penalty() <= ra.failure_penalty() * 2);
        assert_eq!(ra.sightings().len(), rb.sightings().len());
        for (x, y) in ra.sightings().iter().zip(rb.sightings()) {
            assert_eq!((x.source(), x.signed()), (y.source(), y.signed()));
            assert_eq!(y.age(), x.age() + secs(10));
        }
    }
}

#[test]
fn routes_wait_for_an_interface_of_their_medium() {
    let (old, p) = experienced();
    let memory = old.engine.export_memory(old.now);
    // Imported before the adapter reported any interface.
    let mut h = Harness::new(Config::default());
    let report = h.engine.import_memory(&memory, h.now).unwrap();
    assert_eq!((report.routes, report.waiting), (0, 4));
    h.connect(p);
    assert!(h.dials().is_empty());
    // 4G comes up first: nothing was remembered over it.
    h.at(secs(1));
    h.up(CELL, LTE);
    assert!(h.dials().is_empty());
    assert_eq!(h.engine.route_count(&p), 0);
    // Wi-Fi comes up: the remembered best route is dialled at once.
    h.at(secs(2));
    h.up(WIFI, Medium::Wifi);
    assert_eq!(h.engine.route_count(&p), 3);
    let dials = h.dials();
    assert_eq!(dials.len(), 1, "{dials:#?}");
    assert_eq!(
        (dials[0].0, dials[0].2.as_str(), dials[0].3),
        (h.now, PUBLIC_QUIC, WIFI)
    );
    assert_eq!(
        h.engine.hole_punch_backoff(&peer(2), WIFI, h.now),
        Some(h.now + secs(48))
    );
    // Exported again meanwhile, nothing is lost.
    assert_eq!(h.engine.export_memory(h.now).route_count(), 4);
}

#[test]
fn expired_routes_are_not_imported() {
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    let p = peer(1);
    for (a, ttl) in [(LAN, 60), (PUBLIC_QUIC, 3600)] {
        h.engine
            .handle_discovered(
                Discovered {
                    peer: p,
                    addr: addr(a),
                    interface: WIFI,
                    source: Source::Mdns,
                    signed: false,
                    ttl: secs(ttl),
                },
                h.now,
            )
            .unwrap();
    }
    h.drain();
    h.at(secs(30));
    let memory = h.engine.export_memory(h.now);
    assert_eq!(memory.route_count(), 2);
    // The app was down 40 s: the LAN route's 30 s left have passed.
    let later = memory.aged(secs(40));
    let mut next = restarted(Config::default());
    let report = next.engine.import_memory(&later, next.now).unwrap();
    assert_eq!((report.routes, report.expired), (1, 1));
    assert_eq!(next.engine.ranked_routes(&p, next.now).len(), 1);
    assert_eq!(
        next.engine.ranked_routes(&p, next.now)[0].0.to_string(),
        PUBLIC_QUIC
    );
    // A route that expired in the old engine is not exported at all.
    h.at(secs(61));
    let memory = h.engine.export_memory(h.now);
    assert_eq!(memory.route_count(), 1);
    // And one imported expires on the new clock like any other.
    next.at(secs(3600 - 30 - 40));
    next.engine.handle_timeout(next.now);
    assert_eq!(next.engine.ranked_routes(&p, next.now).len(), 0);
}

#[test]
fn what_exceeds_the_bounds_is_dropped_oldest_first() {
    // Three peers learned 10 s apart, three routes each 1 s apart, and two
    // relays.
    let mut h = Harness::new(Config::default());
    h.up(WIFI, Medium::Wifi);
    for n in 1..=3u8 {
        for k in 0..3u8 {
            h.discover(
                peer(n),
                &format!("/ip4/192.168.1.{}/udp/4001/quic-v1", 10 * n + k),
                WIFI,
                Source::Mdns,
            );
            h.at(h.now.since_origin() + secs(1));
        }
        h.at(h.now.since_origin() + secs(10));
    }
    for r in [8u8, 9] {
        h.engine
            .add_relay(peer(r), addr("/ip4/203.0.113.1/tcp/4001"), h.now)
            .unwrap();
    }
    let memory = h.engine.export_memory(h.now);
    assert_eq!(memory.peers()[0].peer(), peer(3), "newest first");

    let config = Config::default()
        .with_max_peers(2)
        .with_max_routes_per_peer(2)
        .with_relays(1, 1);
    let mut next = restarted(config);
    let report = next.engine.import_memory(&memory, next.now).unwrap();
    assert_eq!(report.dropped_peers, 1);
    assert_eq!(report.dropped_routes, 3 + 2);
    assert_eq!((report.peers, report.routes), (2, 4));
    assert_eq!((report.relays, report.dropped_relays), (1, 1));
    // The oldest peer is the one left out.
    assert_eq!(next.engine.peer_count(), 2);
    assert_eq!(next.engine.route_count(&peer(1)), 0);
    // Each kept peer keeps its two newest routes.
    for n in [2u8, 3] {
        let mut kept: Vec<String> = next
            .engine
            .ranked_routes(&peer(n), next.now)
            .into_iter()
            .map(|(a, _, _)| a.to_string())
            .collect();
        kept.sort();
        assert_eq!(
            kept,
            vec![
                format!("/ip4/192.168.1.{}/udp/4001/quic-v1", 10 * n + 1),
                format!("/ip4/192.168.1.{}/udp/4001/quic-v1", 10 * n + 2),
            ]
        );
    }
    // The first relay added is the one kept.
    assert_eq!(next.engine.relays().next().unwrap().0, peer(8));

    // Peers the engine already tracks count and are never evicted.
    let mut busy = restarted(Config::default().with_max_peers(2));
    busy.discover(peer(7), PUBLIC_QUIC, WIFI, Source::Dht);
    let report = busy.engine.import_memory(&memory, busy.now).unwrap();
    assert_eq!((report.peers, report.dropped_peers), (1, 2));
    assert_eq!(busy.engine.route_count(&peer(7)), 1);
    assert_eq!(busy.engine.route_count(&peer(3)), 3);
}

#[test]
fn a_known_route_keeps_its_live_measurements() {
    let (old, p) = experienced();
    let memory = old.engine.export_memory(old.now);
    let mut h = restarted(Config::default());
    h.discover(p, PUBLIC_QUIC, WIFI, Source::Manual);
    h.connect(p);
    let c = h.dial_to(PUBLIC_QUIC);
    h.at(ms(100));
    h.succeed(c);
    h.engine.handle_rtt_sample(c, ms(80), h.now);
    h.drain();
    let report = h.engine.import_memory(&memory, h.now).unwrap();
    assert_eq!(report.routes, 4);
    let (srtt, _) = h.engine.route_rtt(&p, &addr(PUBLIC_QUIC)).unwrap();
    assert_eq!(srtt, ms(80), "the live sample stays");
    assert_eq!(h.engine.route_count(&p), 3);
    assert_eq!(h.engine.primary(&p), Some(c));
}

// ---------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------

fn valid_bytes() -> Vec<u8> {
    let (h, _) = experienced();
    h.engine
        .export_memory(h.now)
        .with_saved_at_unix_ms(7)
        .to_bytes()
}

/// Where the first peer's first route's address length sits in
/// `valid_bytes()` (one relay, a wall-clock time).
fn first_route_addr_at(bytes: &[u8]) -> usize {
    let mut at = 4 + 1 + 1 + 1 + 8;
    at += 2; // relay count
    at += 1 + bytes[at] as usize; // relay peer id
    at += 2 + u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize; // relay address
    at += 4; // peer count
    at += 1 + bytes[at] as usize; // peer id
    at + 2 // route count
}

/// Found by the `route_memory` fuzz target: durations at the format's
/// largest value (`u64::MAX` ns) decode and encode to the same bytes; only
/// the srtt field reserves that value (for "no sample").
#[test]
fn the_largest_durations_survive_a_round_trip() {
    let mut bytes = valid_bytes();
    let addr_at = first_route_addr_at(&bytes);
    let len = u16::from_be_bytes([bytes[addr_at], bytes[addr_at + 1]]) as usize;
    let age_at = addr_at + 2 + len + 1;
    // age, ttl, srtt, rttvar, then samples (u32), then the failure penalty.
    for at in [age_at, age_at + 8, age_at + 24, age_at + 36] {
        bytes[at..at + 8].copy_from_slice(&u64::MAX.to_be_bytes());
    }
    bytes[age_at + 16..age_at + 24].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
    let memory = RouteMemory::from_bytes(&bytes).unwrap();
    let route = &memory.peers()[0].routes()[0];
    assert_eq!(route.rttvar(), Duration::from_nanos(u64::MAX));
    assert_eq!(route.srtt(), Some(Duration::from_nanos(u64::MAX - 1)));
    assert_eq!(memory.to_bytes(), bytes);
    assert_eq!(RouteMemory::from_bytes(&memory.to_bytes()).unwrap(), memory);
}

#[test]
fn bad_magic_is_refused() {
    for input in [&b""[..], b"MDR", b"JSON{}", b"mdrm\x01"] {
        let e = RouteMemory::from_bytes(input).unwrap_err();
        assert_eq!(e, Error::MemoryMagic);
        assert!(e.to_string().contains("not a route memory"), "{e}");
    }
}

#[test]
fn old_and_unknown_versions_are_refused_with_their_number() {
    let mut bytes = valid_bytes();
    for v in [0u8, 2, 255] {
        bytes[4] = v;
        let e = RouteMemory::from_bytes(&bytes).unwrap_err();
        assert_eq!(
            e,
            Error::MemoryVersion {
                version: v,
                supported: MEMORY_VERSION
            }
        );
        assert!(e.to_string().contains(&format!("version {v} ")), "{e}");
    }
}

#[test]
fn every_truncation_is_refused_naming_the_byte() {
    let bytes = valid_bytes();
    for len in 5..bytes.len() {
        match RouteMemory::from_bytes(&bytes[..len]) {
            Err(Error::MemoryTruncated { at, field }) => {
                assert!(at <= len, "cut at {len}, reported at {at}");
                assert!(!field.is_empty());
            }
            other => panic!("cut at {len}: {other:?}"),
        }
    }
    let e = RouteMemory::from_bytes(&bytes[..5]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "route memory truncated at byte 5: flags is missing"
    );
}

#[test]
fn an_invalid_multiaddr_names_the_peer_and_route() {
    let (h, _) = experienced();
    let memory = h.engine.export_memory(h.now).with_saved_at_unix_ms(7);
    let p = memory.peers()[0].peer();
    let mut bytes = memory.to_bytes();
    let at = first_route_addr_at(&bytes);
    // The address's first protocol code becomes one no multiaddr knows.
    bytes[at + 2] = 0x7f;
    bytes[at + 3] = 0x7f;
    let e = RouteMemory::from_bytes(&bytes).unwrap_err();
    let Error::MemoryInvalid { at: where_, reason } = &e else {
        panic!("{e:?}");
    };
    assert_eq!(*where_, at);
    assert!(reason.contains(&format!("peer {p}'s route 0")), "{reason}");
    assert!(e.to_string().contains("invalid multiaddr"), "{e}");
}

#[test]
fn other_invalid_fields_are_named() {
    let bytes = valid_bytes();
    // Unknown flags.
    let mut b = bytes.clone();
    b[5] |= 0x80;
    assert!(matches!(
        RouteMemory::from_bytes(&b),
        Err(Error::MemoryInvalid { at: 5, ref reason }) if reason.contains("flags")
    ));
    // Unknown reachability.
    let mut b = bytes.clone();
    b[6] = 9;
    assert!(matches!(
        RouteMemory::from_bytes(&b),
        Err(Error::MemoryInvalid { at: 6, ref reason }) if reason.contains("reachability")
    ));
    // An unknown medium code for the first route.
    let at = first_route_addr_at(&bytes);
    let len = u16::from_be_bytes([bytes[at], bytes[at + 1]]) as usize;
    let medium_at = at + 2 + len;
    let mut b = bytes.clone();
    b[medium_at] = 77;
    let e = RouteMemory::from_bytes(&b).unwrap_err();
    assert_eq!(
        e,
        Error::MemoryInvalid {
            at: medium_at,
            reason: "unknown medium code 77".into()
        }
    );
    // A bad peer id.
    let mut b = bytes.clone();
    let relay_id_at = 4 + 3 + 8 + 2;
    b[relay_id_at + 1] = 0xff;
    let e = RouteMemory::from_bytes(&b).unwrap_err();
    assert!(
        matches!(&e, Error::MemoryInvalid { at, reason } if *at == relay_id_at && reason.contains("invalid peer id of relay 0")),
        "{e:?}"
    );
    // Bytes after the end.
    let mut b = bytes.clone();
    b.push(0);
    assert_eq!(
        RouteMemory::from_bytes(&b).unwrap_err(),
        Error::MemoryInvalid {
            at: bytes.len(),
            reason: "1 bytes after the end".into()
        }
    );
}

#[test]
fn counts_beyond_the_format_bounds_are_refused_without_allocating() {
    // A header, no relays, then a peer count one past the bound.
    let mut b = MEMORY_MAGIC.to_vec();
    b.extend_from_slice(&[MEMORY_VERSION, 0, 0, 0, 0]);
    let count_at = b.len();
    b.extend_from_slice(&(MEMORY_MAX_PEERS as u32 + 1).to_be_bytes());
    let e = RouteMemory::from_bytes(&b).unwrap_err();
    assert_eq!(
        e,
        Error::MemoryTooMany {
            what: "peers",
            count: MEMORY_MAX_PEERS + 1,
            limit: MEMORY_MAX_PEERS,
            at: count_at
        }
    );
    assert!(e.to_string().contains("too many peers"), "{e}");
    // At the bound with nothing behind it: truncated, and nothing of the
    // claimed size is allocated (the count is capped by the input left).
    let mut b = b[..count_at].to_vec();
    b.extend_from_slice(&(MEMORY_MAX_PEERS as u32).to_be_bytes());
    assert!(matches!(
        RouteMemory::from_bytes(&b),
        Err(Error::MemoryTruncated { at, .. }) if at == count_at + 4
    ));
    // A relay count past its bound.
    let mut b = MEMORY_MAGIC.to_vec();
    b.extend_from_slice(&[MEMORY_VERSION, 0, 0, 0xff, 0xff]);
    assert!(matches!(
        RouteMemory::from_bytes(&b),
        Err(Error::MemoryTooMany {
            what: "relays",
            count: 65_535,
            ..
        })
    ));
}

#[test]
fn an_engine_imports_what_another_one_exported_at_once() {
    // The doc example of the module, in short: export, store, load,
    // import, connect.
    let (old, p) = experienced();
    let stored: Vec<u8> = old.engine.export_memory(old.now).to_bytes();
    let mut engine = Engine::new(Config::default()).unwrap();
    let t0 = Timestamp::ZERO;
    let memory = RouteMemory::from_bytes(&stored).unwrap();
    engine.import_memory(&memory, t0).unwrap();
    engine
        .handle_network_change(
            multidriver_core::NetworkChange::Up {
                interface: WIFI,
                medium: Medium::Wifi,
                conditions: Default::default(),
                validated: true,
            },
            t0,
        )
        .unwrap();
    engine.connect(p, t0).unwrap();
    let dial = std::iter::from_fn(|| engine.poll_command())
        .find(|c| matches!(c, Command::Dial { .. }))
        .unwrap();
    assert!(matches!(dial, Command::Dial { addr, .. } if addr.to_string() == PUBLIC_QUIC));
}
