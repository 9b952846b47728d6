//! Addresses and signed peer records as the drivers hand them to the engine
//! (rendezvous registrations and mDNS/DHT answers carry multiaddrs, the
//! rendezvous driver signed records): bytes become multiaddrs (binary and
//! text forms) and signed envelopes, those become `Discovered` inputs, and
//! the engine turns them into routes within its bounds, dials them and
//! answers timeouts without a panic.
#![no_main]

use std::time::Duration;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use libp2p::core::{PeerRecord, SignedEnvelope};
use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use multidriver_core::{Config, Discovered, Engine, InterfaceId, NetworkChange};
use multidriver_scoring::{CellularGeneration, Medium, NetworkConditions, Source, Timestamp};

const SOURCES: [Source; 4] = [
    Source::Rendezvous,
    Source::Mdns,
    Source::Dht,
    Source::Proximity,
];
/// Most addresses one record may hand over here (a registration's record
/// is bounded by its byte size anyway).
const MAX_ADDRS: usize = 64;

/// The four peers' ids, made once (deriving a key is most of a report's
/// cost otherwise).
fn peers() -> &'static [PeerId; 4] {
    static PEERS: std::sync::OnceLock<[PeerId; 4]> = std::sync::OnceLock::new();
    PEERS.get_or_init(|| {
        [1u8, 2, 3, 4].map(|n| {
            Keypair::ed25519_from_bytes([n; 32])
                .expect("32 bytes make a key")
                .public()
                .to_peer_id()
        })
    })
}

/// One report: who, which addresses, signed or not.
fn report(u: &mut Unstructured<'_>) -> Result<Option<(PeerId, Vec<Multiaddr>, bool)>> {
    let peer_of = |n: u8| peers()[usize::from(n % 4)];
    Ok(match u.int_in_range(0u8..=3)? {
        // A multiaddr's binary form, as in a DHT answer or a record.
        0 => {
            let n = u.arbitrary::<u8>()?;
            let bytes: Vec<u8> = u.arbitrary()?;
            Multiaddr::try_from(bytes)
                .ok()
                .map(|a| (peer_of(n), vec![a], false))
        }
        // Its text form, as in an mDNS TXT record.
        1 => {
            let n = u.arbitrary::<u8>()?;
            let text: &str = u.arbitrary()?;
            text.parse::<Multiaddr>()
                .ok()
                .map(|a| (peer_of(n), vec![a], false))
        }
        // A signed envelope from the wire.
        2 => {
            let bytes: &[u8] = u.arbitrary()?;
            SignedEnvelope::from_protobuf_encoding(bytes)
                .ok()
                .and_then(|env| PeerRecord::from_signed_envelope(env).ok())
                .map(|r| (r.peer_id(), r.addresses().to_vec(), true))
        }
        // A validly signed record over arbitrary addresses. The engine sees
        // only the signer, the addresses and that the signature held (the
        // envelope's decoding is the case above), so the record is not
        // signed here: instrumented ed25519 took most of the target's time.
        _ => {
            let n = u.arbitrary::<u8>()?;
            let mut addrs = Vec::new();
            for _ in 0..u.int_in_range(0..=4)? {
                if let Ok(a) = Multiaddr::try_from(u.arbitrary::<Vec<u8>>()?) {
                    addrs.push(a);
                }
            }
            Some((peer_of(n), addrs, true))
        }
    })
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let config = Config::default();
    let mut engine = Engine::new(config.clone()).expect("the default config is valid");
    let mut now = Timestamp::from_millis(1_000);
    for (interface, medium) in [
        (InterfaceId(1), Medium::Wifi),
        (InterfaceId(2), Medium::Cellular(CellularGeneration::G5)),
    ] {
        engine
            .handle_network_change(
                NetworkChange::Up {
                    interface,
                    medium,
                    conditions: NetworkConditions::default(),
                    validated: true,
                },
                now,
            )
            .expect("two interfaces fit");
    }
    for _ in 0..32 {
        if u.is_empty() {
            break;
        }
        let Some((peer, addrs, signed)) = report(u)? else {
            continue;
        };
        let source = *u.choose(&SOURCES)?;
        let interface = InterfaceId(u.int_in_range(1..=2)?);
        let ttl = Duration::from_millis(u.int_in_range(0..=7_200_000)?);
        for addr in addrs.into_iter().take(MAX_ADDRS) {
            let _ = engine.handle_discovered(
                Discovered {
                    peer,
                    addr,
                    interface,
                    source,
                    signed,
                    ttl,
                },
                now,
            );
            assert!(engine.route_count(&peer) <= config.max_routes_per_peer());
            assert!(engine.peer_count() <= config.max_peers());
        }
        if u.arbitrary()? {
            let _ = engine.connect(peer, now);
        }
        now = now + Duration::from_millis(u.int_in_range(0..=5_000)?);
        engine.handle_timeout(now);
        while engine.poll_command().is_some() {}
        while engine.poll_event().is_some() {}
        assert!(engine.attempts_in_flight() <= config.max_attempts_total());
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
