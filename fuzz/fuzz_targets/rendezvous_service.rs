//! The rendezvous point's request handling against a real (in-memory
//! SQLite) store: a sequence of registrations, discovers with cookies,
//! unregistrations, raw messages from the wire and time passing (with
//! expiry sweeps), inside and outside group-commit batches, under small
//! limits. After every step a model of what
//! was confirmed is checked against the point:
//! - the per-peer and total caps hold, and a refusal for a cap comes only
//!   when the cap is exactly reached;
//! - discover pages stay within the page limit and the 1 MiB message
//!   limit, and paging with cookies from the start returns every live
//!   confirmed registration of the namespace exactly once, expired ones
//!   never.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use libp2p::core::PeerRecord;
use libp2p_identity::{Keypair, PeerId};
use multidriver_rendezvous::protocol::{
    Discover, Inbound, MAX_MESSAGE_BYTES, Message, MessageType, RecordCheck, Register,
    ResponseStatus, Unregister, check_record,
};
use multidriver_rendezvous::{Limits, Outcome, Service, Store};
use prost::Message as _;

const PEERS: usize = 4;
const NAMESPACES: [&str; 3] = ["chat", "files", "x"];

/// The peers' ids and signed records, made once (signing is slow).
fn peers() -> &'static [(PeerId, Vec<u8>)] {
    static PEERS_AND_RECORDS: OnceLock<Vec<(PeerId, Vec<u8>)>> = OnceLock::new();
    PEERS_AND_RECORDS.get_or_init(|| {
        (0..PEERS as u8)
            .map(|n| {
                let key = Keypair::ed25519_from_bytes([n + 1; 32]).expect("32 bytes");
                let addr = format!("/ip4/10.0.0.{}/tcp/4001", n + 1)
                    .parse()
                    .expect("addr");
                let record = PeerRecord::new(&key, vec![addr]).expect("ed25519 signs");
                (
                    key.public().to_peer_id(),
                    record.into_signed_envelope().into_protobuf_encoding(),
                )
            })
            .collect()
    })
}

/// The peers' records as the server's codec checks them, made once per
/// `accept_spec_records` (verifying a signature is most of a registration's
/// cost, and the codec, not the service, does it in the point). Raw wire
/// messages still have theirs checked by the service.
fn checked(p: usize, accept_spec_records: bool) -> RecordCheck {
    static CHECKS: OnceLock<Vec<[RecordCheck; 2]>> = OnceLock::new();
    CHECKS.get_or_init(|| {
        peers()
            .iter()
            .map(|(_, record)| {
                [false, true].map(|spec| check_record(record, MAX_RECORD_BYTES, spec))
            })
            .collect()
    })[p][usize::from(accept_spec_records)]
        .clone()
}

const MAX_RECORD_BYTES: usize = 8 * 1024;

/// What the point confirmed: (peer index, namespace) → expiry (seconds).
type Model = BTreeMap<(usize, String), u64>;

fn live(model: &Model, now: u64) -> impl Iterator<Item = (&(usize, String), &u64)> {
    model.iter().filter(move |(_, e)| **e > now)
}

fn status(message: &Option<Message>) -> Option<ResponseStatus> {
    let m = message.as_ref()?;
    let raw = m
        .register_response
        .as_ref()
        .and_then(|r| r.status)
        .or_else(|| m.discover_response.as_ref().and_then(|d| d.status))?;
    ResponseStatus::try_from(raw).ok()
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

/// Pages through `ns` from the start; every live confirmed registration
/// exactly once, and nothing else.
fn check_full_discover(service: &mut Service, model: &Model, ns: Option<&str>, now: u64) {
    let asker = peers()[0].0;
    let mut seen = BTreeSet::new();
    let mut cookie = None;
    let limits = service.limits().clone();
    for _ in 0..=limits.max_registrations + 1 {
        let (answer, outcome) = service.handle(&asker, discover_msg(ns, None, cookie.take()), now);
        assert!(
            matches!(outcome, Outcome::Discover(ResponseStatus::Ok, _)),
            "{outcome:?}"
        );
        let answer = answer.expect("a discover is answered");
        assert!(answer.encoded_len() <= MAX_MESSAGE_BYTES);
        let page = answer.discover_response.expect("a discover response");
        assert!(page.registrations.len() as u64 <= limits.max_discover_limit);
        for r in &page.registrations {
            let record = r.signed_peer_record.as_deref().expect("a record");
            let who = peers()
                .iter()
                .position(|(_, rec)| rec.as_slice() == record)
                .expect("a record some peer registered");
            let namespace = String::from_utf8(r.ns.clone().expect("a namespace")).expect("UTF-8");
            assert!(
                seen.insert((who, namespace.clone())),
                "({who}, {namespace}) served twice"
            );
        }
        cookie = page.cookie;
        if page.registrations.is_empty() {
            break;
        }
    }
    let expected: BTreeSet<(usize, String)> = live(model, now)
        .filter(|((_, n), _)| ns.is_none_or(|ns| ns == n))
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(seen, expected, "discover of {ns:?} at {now}");
}

/// The service's SQLite store, to open and commit batches by hand.
fn sqlite(service: &mut Service) -> &mut Store {
    service
        .store_mut()
        .as_sqlite_mut()
        .expect("the service runs on SQLite")
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let limits = Limits {
        min_ttl: 10,
        max_ttl: 1_000,
        default_ttl: 100,
        max_registrations_per_peer: u.int_in_range(1..=3)?,
        max_registrations: u.int_in_range(1..=6)?,
        max_namespace_len: 16,
        max_discover_limit: u.int_in_range(1..=4)?,
        max_record_bytes: MAX_RECORD_BYTES,
        accept_spec_records: u.arbitrary()?,
    };
    let store = Store::in_memory().expect("an in-memory store opens");
    let mut service = Service::new(limits.clone(), store).expect("valid limits");
    let mut model = Model::new();
    let mut now: u64 = 1_000;
    let mut cookies: Vec<Vec<u8>> = Vec::new();
    for _ in 0..64 {
        if u.is_empty() {
            break;
        }
        match u.int_in_range(0u8..=7)? {
            0 | 1 => {
                let p = u.int_in_range(0..=PEERS - 1)?;
                let ns = *u.choose(&NAMESPACES)?;
                let ttl: Option<u64> = if u.arbitrary()? {
                    Some(u.int_in_range(0..=1_200)?)
                } else {
                    None
                };
                let (id, record) = &peers()[p];
                let request = Message {
                    r#type: Some(MessageType::Register as i32),
                    register: Some(Register {
                        ns: Some(ns.as_bytes().to_vec()),
                        signed_peer_record: Some(record.clone()),
                        ttl,
                    }),
                    ..Message::default()
                };
                let peer_live = live(&model, now).filter(|((q, _), _)| *q == p).count() as u64;
                let total_live = live(&model, now).count() as u64;
                let refresh = model.get(&(p, ns.to_owned())).is_some_and(|e| *e > now);
                let inbound = Inbound {
                    message: request,
                    record: Some(checked(p, limits.accept_spec_records)),
                };
                let (answer, _) = service.handle(id, inbound, now);
                match status(&answer) {
                    Some(ResponseStatus::Ok) => {
                        let granted = answer
                            .and_then(|a| a.register_response)
                            .and_then(|r| r.ttl)
                            .expect("an accepted registration names its TTL");
                        model.insert((p, ns.to_owned()), now + granted);
                    }
                    Some(ResponseStatus::Unavailable) => {
                        assert!(!refresh, "a refresh refused by a count limit");
                        assert!(
                            peer_live == limits.max_registrations_per_peer
                                || total_live == limits.max_registrations,
                            "refused below the caps: {peer_live} of the peer's, {total_live} in all"
                        );
                    }
                    Some(ResponseStatus::InvalidTtl) => {
                        let t = ttl.unwrap_or(limits.default_ttl);
                        assert!(!(limits.min_ttl..=limits.max_ttl).contains(&t));
                    }
                    other => panic!("a valid registration answered {other:?}"),
                }
            }
            2 => {
                let p = u.int_in_range(0..=PEERS - 1)?;
                let ns = *u.choose(&NAMESPACES)?;
                let request = Message {
                    r#type: Some(MessageType::Unregister as i32),
                    unregister: Some(Unregister {
                        ns: Some(ns.as_bytes().to_vec()),
                        id: None,
                    }),
                    ..Message::default()
                };
                let (answer, _) = service.handle(&peers()[p].0, request, now);
                assert!(answer.is_none());
                model.remove(&(p, ns.to_owned()));
            }
            3 => {
                // One page, with a cookie from an earlier page or made up.
                let ns = if u.arbitrary()? {
                    Some(*u.choose(&NAMESPACES)?)
                } else {
                    None
                };
                let cookie = match u.int_in_range(0u8..=2)? {
                    0 => None,
                    1 if !cookies.is_empty() => Some(u.choose(&cookies)?.clone()),
                    _ => Some(u.arbitrary::<Vec<u8>>()?),
                };
                let limit = u.arbitrary::<Option<u64>>()?;
                let (answer, outcome) =
                    service.handle(&peers()[0].0, discover_msg(ns, limit, cookie), now);
                let answer = answer.expect("a discover is answered");
                assert!(answer.encoded_len() <= MAX_MESSAGE_BYTES);
                if let Some(page) = answer.discover_response {
                    assert!(page.registrations.len() as u64 <= limits.max_discover_limit);
                    if let (Outcome::Discover(ResponseStatus::Ok, _), Some(c)) =
                        (outcome, page.cookie)
                        && cookies.len() < 16
                    {
                        cookies.push(c);
                    }
                }
            }
            4 => check_full_discover(&mut service, &model, None, now),
            // Group commit: requests inside a batch see each other's
            // writes, and the same checks hold before and after its commit.
            7 => {
                let store = sqlite(&mut service);
                if store.in_batch() {
                    store.commit().expect("a batch commits");
                } else {
                    store.begin().expect("a batch begins");
                }
            }
            5 => {
                now += u.int_in_range(0..=600)?;
                if u.arbitrary()? {
                    sqlite(&mut service).sweep(now).expect("the sweep runs");
                    model.retain(|_, e| *e > now);
                }
                let ns = *u.choose(&NAMESPACES)?;
                check_full_discover(&mut service, &model, Some(ns), now);
            }
            _ => {
                // Whatever arrives on the wire, from any peer.
                let p = u.int_in_range(0..=PEERS - 1)?;
                let bytes: &[u8] = u.arbitrary()?;
                if let Ok(request) = Message::decode(bytes) {
                    let before = service.store().counts().rows;
                    let (answer, outcome) = service.handle(&peers()[p].0, request, now);
                    if let Some(a) = &answer {
                        assert!(a.encoded_len() <= MAX_MESSAGE_BYTES);
                    }
                    // A raw message may register or unregister for real:
                    // re-read the model from the point's answers.
                    if service.store().counts().rows != before
                        || matches!(
                            outcome,
                            Outcome::Register(ResponseStatus::Ok) | Outcome::Unregister(true)
                        )
                    {
                        return Ok(());
                    }
                }
            }
        }
        assert!(service.store().counts().rows <= limits.max_registrations);
        let total_live = live(&model, now).count() as u64;
        assert!(total_live <= limits.max_registrations);
        for p in 0..PEERS {
            let n = live(&model, now).filter(|((q, _), _)| *q == p).count() as u64;
            assert!(n <= limits.max_registrations_per_peer);
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
