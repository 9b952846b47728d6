//! Every limit at its bound and one past it, and malformed requests, through
//! the service with real signed peer records.

use libp2p::core::PeerRecord;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId};
use multidriver_rendezvous::protocol::{
    Cookie, Discover, Message, MessageType, Register, ResponseStatus, Unregister,
};
use multidriver_rendezvous::{Limits, Outcome, Service, Store};

const NOW: u64 = 1_800_000_000;

struct Peer {
    key: Keypair,
    id: PeerId,
}

fn peer() -> Peer {
    let key = Keypair::generate_ed25519();
    let id = key.public().to_peer_id();
    Peer { key, id }
}

fn addr() -> Multiaddr {
    "/ip4/192.0.2.1/tcp/4001".parse().unwrap()
}

fn record(key: &Keypair) -> Vec<u8> {
    PeerRecord::new(key, vec![addr()])
        .unwrap()
        .into_signed_envelope()
        .into_protobuf_encoding()
}

fn service(limits: Limits) -> Service {
    Service::new(limits, Store::in_memory().unwrap()).unwrap()
}

fn register_msg(ns: &[u8], record: Vec<u8>, ttl: Option<u64>) -> Message {
    Message {
        r#type: Some(MessageType::Register as i32),
        register: Some(Register {
            ns: Some(ns.to_vec()),
            signed_peer_record: Some(record),
            ttl,
        }),
        ..Message::default()
    }
}

/// Registers and returns the status and granted TTL.
fn register(
    s: &mut Service,
    p: &Peer,
    ns: &str,
    ttl: Option<u64>,
) -> (ResponseStatus, Option<u64>) {
    let msg = register_msg(ns.as_bytes(), record(&p.key), ttl);
    answer_register(s, &p.id, msg)
}

fn answer_register(s: &mut Service, from: &PeerId, msg: Message) -> (ResponseStatus, Option<u64>) {
    let (answer, outcome) = s.handle(from, msg, NOW);
    let r = answer.unwrap().register_response.unwrap();
    let status = ResponseStatus::try_from(r.status.unwrap()).unwrap();
    assert_eq!(outcome, Outcome::Register(status));
    (status, r.ttl)
}

fn discover_msg(ns: Option<&str>, limit: Option<u64>, cookie: Option<Vec<u8>>) -> Message {
    Message {
        r#type: Some(MessageType::Discover as i32),
        discover: Some(Discover {
            ns: ns.map(|n| n.as_bytes().to_vec()),
            limit,
            cookie,
        }),
        ..Message::default()
    }
}

/// Discovers; the status, the registrations' peers and the cookie.
fn discover(
    s: &mut Service,
    ns: Option<&str>,
    limit: Option<u64>,
    cookie: Option<Vec<u8>>,
    now: u64,
) -> (ResponseStatus, Vec<PeerId>, Option<Vec<u8>>) {
    let (answer, _) = s.handle(&PeerId::random(), discover_msg(ns, limit, cookie), now);
    let r = answer.unwrap().discover_response.unwrap();
    let peers = r
        .registrations
        .iter()
        .map(|reg| {
            let env = libp2p::core::SignedEnvelope::from_protobuf_encoding(
                reg.signed_peer_record.as_ref().unwrap(),
            )
            .unwrap();
            PeerRecord::from_signed_envelope(env).unwrap().peer_id()
        })
        .collect();
    (
        ResponseStatus::try_from(r.status.unwrap()).unwrap(),
        peers,
        r.cookie,
    )
}

#[test]
fn ttl_bounds_are_inclusive_and_one_past_is_refused() {
    let limits = Limits {
        min_ttl: 100,
        max_ttl: 1000,
        default_ttl: 500,
        ..Limits::default()
    };
    let mut s = service(limits);
    let p = peer();
    assert_eq!(
        register(&mut s, &p, "a", Some(100)),
        (ResponseStatus::Ok, Some(100))
    );
    assert_eq!(
        register(&mut s, &p, "b", Some(1000)),
        (ResponseStatus::Ok, Some(1000))
    );
    assert_eq!(
        register(&mut s, &p, "c", None),
        (ResponseStatus::Ok, Some(500))
    );
    assert_eq!(
        register(&mut s, &p, "d", Some(99)).0,
        ResponseStatus::InvalidTtl
    );
    assert_eq!(
        register(&mut s, &p, "d", Some(1001)).0,
        ResponseStatus::InvalidTtl
    );
    assert_eq!(
        register(&mut s, &p, "d", Some(u64::MAX)).0,
        ResponseStatus::InvalidTtl
    );
    assert_eq!(s.store().counts().rows, 3);
}

#[test]
fn per_peer_cap_admits_exactly_the_cap_and_refreshes_at_the_cap() {
    let mut s = service(Limits {
        max_registrations_per_peer: 3,
        ..Limits::default()
    });
    let p = peer();
    for ns in ["a", "b", "c"] {
        assert_eq!(register(&mut s, &p, ns, None).0, ResponseStatus::Ok);
    }
    // A fourth namespace is refused…
    assert_eq!(
        register(&mut s, &p, "d", None).0,
        ResponseStatus::Unavailable
    );
    // …but refreshing one it holds is not (the stock server refuses this).
    assert_eq!(
        register(&mut s, &p, "b", Some(9000)),
        (ResponseStatus::Ok, Some(9000))
    );
    // Another peer is unaffected.
    assert_eq!(register(&mut s, &peer(), "d", None).0, ResponseStatus::Ok);
    // Unregistering frees a slot.
    let (answer, outcome) = s.handle(
        &p.id,
        Message {
            r#type: Some(MessageType::Unregister as i32),
            unregister: Some(Unregister {
                ns: Some(b"a".to_vec()),
                id: None,
            }),
            ..Message::default()
        },
        NOW,
    );
    assert!(answer.is_none());
    assert_eq!(outcome, Outcome::Unregister(true));
    assert_eq!(register(&mut s, &p, "d", None).0, ResponseStatus::Ok);
    assert_eq!(s.store().counts().rows, 4);
}

#[test]
fn total_cap_admits_exactly_the_cap() {
    let mut s = service(Limits {
        max_registrations: 5,
        ..Limits::default()
    });
    let peers: Vec<_> = (0..6).map(|_| peer()).collect();
    for p in &peers[..5] {
        assert_eq!(register(&mut s, p, "ns", None).0, ResponseStatus::Ok);
    }
    // The sixth is refused (the stock server admits it: `len() > max`).
    assert_eq!(
        register(&mut s, &peers[5], "ns", None).0,
        ResponseStatus::Unavailable
    );
    // A refresh at the total cap is accepted.
    assert_eq!(
        register(&mut s, &peers[0], "ns", None).0,
        ResponseStatus::Ok
    );
    assert_eq!(s.store().counts().rows, 5);
}

#[test]
fn one_peer_cannot_fill_the_point_with_namespaces() {
    let mut s = service(Limits::default());
    let p = peer();
    let mut accepted = 0;
    for i in 0..100 {
        if register(&mut s, &p, &format!("ns-{i}"), None).0 == ResponseStatus::Ok {
            accepted += 1;
        }
    }
    assert_eq!(accepted, Limits::default().max_registrations_per_peer);
    assert_eq!(s.store().counts().rows, accepted);
}

#[test]
fn namespace_length_bound_is_exact_and_bad_namespaces_are_named() {
    let mut s = service(Limits {
        max_namespace_len: 10,
        ..Limits::default()
    });
    let p = peer();
    assert_eq!(
        register(&mut s, &p, &"x".repeat(10), None).0,
        ResponseStatus::Ok
    );
    assert_eq!(
        register(&mut s, &p, &"x".repeat(11), None).0,
        ResponseStatus::InvalidNamespace
    );
    assert_eq!(
        register(&mut s, &p, "", None).0,
        ResponseStatus::InvalidNamespace
    );
    let not_utf8 = register_msg(&[0xff, 0xfe], record(&p.key), None);
    assert_eq!(
        answer_register(&mut s, &p.id, not_utf8).0,
        ResponseStatus::InvalidNamespace
    );
    let (status, _, _) = discover(&mut s, Some(&"x".repeat(11)), None, None, NOW);
    assert_eq!(status, ResponseStatus::InvalidNamespace);
}

#[test]
fn records_are_checked_for_size_signature_and_owner() {
    let mut s = service(Limits {
        max_record_bytes: 200,
        ..Limits::default()
    });
    let p = peer();
    // Garbage, a record of someone else, and an oversized record.
    let garbage = register_msg(b"ns", vec![1, 2, 3], None);
    assert_eq!(
        answer_register(&mut s, &p.id, garbage).0,
        ResponseStatus::InvalidSignedPeerRecord
    );
    let other = peer();
    let stolen = register_msg(b"ns", record(&other.key), None);
    assert_eq!(
        answer_register(&mut s, &p.id, stolen).0,
        ResponseStatus::NotAuthorized
    );
    let many: Vec<Multiaddr> = (0..20)
        .map(|i| format!("/ip4/192.0.2.{i}/tcp/4001").parse().unwrap())
        .collect();
    let big = PeerRecord::new(&p.key, many)
        .unwrap()
        .into_signed_envelope()
        .into_protobuf_encoding();
    assert!(big.len() > 200);
    assert_eq!(
        answer_register(&mut s, &p.id, register_msg(b"ns", big, None)).0,
        ResponseStatus::InvalidSignedPeerRecord
    );
    // A record in the spec's (Go/JS) format is refused by default: stock
    // Rust clients could not read a discover answer holding it.
    let interop = PeerRecord::new_interop(&p.key, vec![addr()])
        .unwrap()
        .into_signed_envelope()
        .into_protobuf_encoding();
    assert_eq!(
        answer_register(&mut s, &p.id, register_msg(b"ns", interop.clone(), None)).0,
        ResponseStatus::InvalidSignedPeerRecord
    );
    assert_eq!(s.store().counts().rows, 0);
    let mut go_only = service(Limits {
        accept_spec_records: true,
        ..Limits::default()
    });
    assert_eq!(
        answer_register(&mut go_only, &p.id, register_msg(b"ns", interop, None)).0,
        ResponseStatus::Ok
    );
    assert_eq!(go_only.store().counts().rows, 1);
}

#[test]
fn requests_without_bodies_get_the_protocol_error_and_responses_get_nothing() {
    let mut s = service(Limits::default());
    let from = PeerId::random();
    let bare = |t: MessageType| Message {
        r#type: Some(t as i32),
        ..Message::default()
    };
    let (a, _) = s.handle(&from, bare(MessageType::Register), NOW);
    assert_eq!(
        a.unwrap().register_response.unwrap().status,
        Some(ResponseStatus::InvalidNamespace as i32)
    );
    let (a, _) = s.handle(&from, bare(MessageType::Discover), NOW);
    assert!(a.unwrap().discover_response.unwrap().status != Some(0));
    for t in [MessageType::RegisterResponse, MessageType::DiscoverResponse] {
        assert_eq!(s.handle(&from, bare(t), NOW), (None, Outcome::NotARequest));
    }
    let untyped = Message::default();
    assert_eq!(s.handle(&from, untyped, NOW), (None, Outcome::NotARequest));
    let unknown = Message {
        r#type: Some(99),
        ..Message::default()
    };
    assert_eq!(s.handle(&from, unknown, NOW), (None, Outcome::NotARequest));
    // A registration with no record.
    let mut m = register_msg(b"ns", Vec::new(), None);
    m.register.as_mut().unwrap().signed_peer_record = None;
    assert_eq!(
        answer_register(&mut s, &from, m).0,
        ResponseStatus::InvalidSignedPeerRecord
    );
}

#[test]
fn discover_pages_with_cookies_up_to_the_page_limit() {
    let mut s = service(Limits {
        max_discover_limit: 4,
        ..Limits::default()
    });
    let peers: Vec<_> = (0..10).map(|_| peer()).collect();
    for p in &peers {
        register(&mut s, p, "ns", None);
    }
    register(&mut s, &peer(), "other", None);
    let ids: Vec<PeerId> = peers.iter().map(|p| p.id).collect();

    // No limit asked: the page limit applies.
    let (st, page1, cookie) = discover(&mut s, Some("ns"), None, None, NOW);
    assert_eq!(st, ResponseStatus::Ok);
    assert_eq!(page1, ids[..4]);
    // A smaller limit is honoured, and the cookie carries on.
    let (_, page2, cookie) = discover(&mut s, Some("ns"), Some(3), cookie, NOW);
    assert_eq!(page2, ids[4..7]);
    // More than the page limit is cut to it.
    let (_, page3, cookie) = discover(&mut s, Some("ns"), Some(100), cookie, NOW);
    assert_eq!(page3, ids[7..10]);
    // Nothing new: an empty page, and the cookie still works.
    let (st, page4, cookie) = discover(&mut s, Some("ns"), None, cookie, NOW);
    assert_eq!((st, page4.len()), (ResponseStatus::Ok, 0));
    let late = peer();
    register(&mut s, &late, "ns", None);
    let (_, page5, _) = discover(&mut s, Some("ns"), None, cookie, NOW);
    assert_eq!(page5, [late.id]);
    // A limit of zero returns nothing.
    let (_, none, _) = discover(&mut s, Some("ns"), Some(0), None, NOW);
    assert!(none.is_empty());
    // Every namespace.
    let (_, all, _) = discover(&mut s, None, Some(100), None, NOW);
    assert_eq!(all.len(), 4);
}

#[test]
fn bad_cookies_are_refused_with_invalid_cookie() {
    let mut s = service(Limits::default());
    let p = peer();
    register(&mut s, &p, "ns", None);
    let (_, _, cookie) = discover(&mut s, Some("ns"), None, None, NOW);
    let cookie = cookie.unwrap();
    let cases: Vec<(Option<&str>, Vec<u8>)> = vec![
        // Malformed.
        (Some("ns"), vec![1, 2, 3]),
        // Another namespace's.
        (Some("other"), cookie.clone()),
        // A namespace's cookie in a discover of all.
        (None, cookie.clone()),
        // Never issued: beyond the last position.
        (
            Some("ns"),
            Cookie {
                position: 1_000,
                namespace: Some("ns".into()),
            }
            .to_bytes(),
        ),
    ];
    for (ns, c) in cases {
        let (st, _, _) = discover(&mut s, ns, None, Some(c.clone()), NOW);
        assert_eq!(st, ResponseStatus::InvalidCookie, "{ns:?} {c:?}");
    }
    // A cookie for all namespaces may continue one namespace.
    let all = Cookie {
        position: 0,
        namespace: None,
    };
    let (st, peers, _) = discover(&mut s, Some("ns"), None, Some(all.to_bytes()), NOW);
    assert_eq!((st, peers), (ResponseStatus::Ok, vec![p.id]));
}

#[test]
fn expired_registrations_are_not_served_and_discovered_ttls_count_down() {
    let mut s = service(Limits::default());
    let p = peer();
    register(&mut s, &p, "ns", Some(7200));
    let (answer, _) = s.handle(
        &PeerId::random(),
        discover_msg(Some("ns"), None, None),
        NOW + 200,
    );
    let regs = answer.unwrap().discover_response.unwrap().registrations;
    assert_eq!(regs[0].ttl, Some(7000));
    let (_, gone, _) = discover(&mut s, Some("ns"), None, None, NOW + 7200);
    assert!(gone.is_empty());
    assert_eq!(
        futures::executor::block_on(s.store_mut().sweep(NOW + 7200, 60))
            .unwrap()
            .unwrap(),
        1
    );
    assert_eq!(s.store().counts().rows, 0);
}

#[test]
fn a_page_is_cut_to_fit_the_message_limit_and_the_cookie_carries_on() {
    let mut s = service(Limits {
        max_record_bytes: 512 * 1024,
        ..Limits::default()
    });
    // Three records of about 400 KiB: two fit under 1 MiB, not three.
    let peers: Vec<_> = (0..3).map(|_| peer()).collect();
    for p in &peers {
        let addrs: Vec<Multiaddr> = (0..1600)
            .map(|i| {
                format!("/dns4/{i}.{}.example/tcp/4001", "x".repeat(240))
                    .parse()
                    .unwrap()
            })
            .collect();
        let big = PeerRecord::new(&p.key, addrs)
            .unwrap()
            .into_signed_envelope()
            .into_protobuf_encoding();
        assert!(big.len() > 400 * 1024, "{}", big.len());
        assert_eq!(
            answer_register(&mut s, &p.id, register_msg(b"ns", big, None)).0,
            ResponseStatus::Ok
        );
    }
    let (answer, _) = s.handle(&PeerId::random(), discover_msg(Some("ns"), None, None), NOW);
    let answer = answer.unwrap();
    assert!(
        prost::Message::encoded_len(&answer) <= multidriver_rendezvous::protocol::MAX_MESSAGE_BYTES
    );
    let (_, first, cookie) = discover(&mut s, Some("ns"), None, None, NOW);
    assert_eq!(first, [peers[0].id, peers[1].id]);
    let (_, rest, _) = discover(&mut s, Some("ns"), None, cookie, NOW);
    assert_eq!(rest, [peers[2].id]);
}

/// The point's codec checks a registration's record as it reads the stream
/// (on the connection's task); the answer must be the one the service
/// gives when it checks the record itself, for every kind of record.
#[test]
fn records_checked_by_the_codec_get_the_answers_the_service_gives() {
    use libp2p::request_response::Codec as _;
    use multidriver_rendezvous::protocol::{PROTOCOL, ServerCodec};
    use prost::Message as _;

    let limits = Limits {
        max_record_bytes: 200,
        ..Limits::default()
    };
    let p = peer();
    let many: Vec<Multiaddr> = (0..20)
        .map(|i| format!("/ip4/192.0.2.{i}/tcp/4001").parse().unwrap())
        .collect();
    let big = PeerRecord::new(&p.key, many)
        .unwrap()
        .into_signed_envelope()
        .into_protobuf_encoding();
    let interop = PeerRecord::new_interop(&p.key, vec![addr()])
        .unwrap()
        .into_signed_envelope()
        .into_protobuf_encoding();
    let mut tampered = record(&p.key);
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let cases = [
        ("own", record(&p.key), ResponseStatus::Ok),
        (
            "garbage",
            vec![1, 2, 3],
            ResponseStatus::InvalidSignedPeerRecord,
        ),
        (
            "another peer's",
            record(&peer().key),
            ResponseStatus::NotAuthorized,
        ),
        ("oversized", big, ResponseStatus::InvalidSignedPeerRecord),
        (
            "spec format",
            interop,
            ResponseStatus::InvalidSignedPeerRecord,
        ),
        (
            "bad signature",
            tampered,
            ResponseStatus::InvalidSignedPeerRecord,
        ),
    ];
    for (what, record, expected) in cases {
        let msg = register_msg(b"ns", record, None);
        let bytes = msg.encode_length_delimited_to_vec();
        let mut codec = ServerCodec::new(64 * 1024, limits.max_record_bytes, false);
        let inbound =
            futures::executor::block_on(codec.read_request(&PROTOCOL, &mut bytes.as_slice()))
                .unwrap();
        assert!(inbound.record.is_some(), "{what}: the codec checked it");
        let (by_codec, _) = service(limits.clone()).handle(&p.id, inbound, NOW);
        let (by_service, _) = service(limits.clone()).handle(&p.id, msg, NOW);
        assert_eq!(by_codec, by_service, "{what}");
        let status = by_codec.unwrap().register_response.unwrap().status.unwrap();
        assert_eq!(
            ResponseStatus::try_from(status).unwrap(),
            expected,
            "{what}"
        );
    }
}
