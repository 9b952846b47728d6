//! The rendezvous point as a circuit relay v2, against stock rust-libp2p
//! relay clients on loopback: reservations and circuits up to each limit
//! and the one past it denied, a circuit closed at its byte limit, and the
//! metrics that count them.

use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, noise, ping, relay, tcp, yamux};
use multidriver_rendezvous::{Config, RelayLimits, Server, ServerEvent, install_recorder};
use tokio::time::{Instant, timeout_at};

#[derive(NetworkBehaviour)]
struct Client {
    relay: relay::client::Behaviour,
    ping: ping::Behaviour,
}

/// A stock relay client that pings every `ping` (the circuit's traffic).
fn client(ping_every: Duration) -> Swarm<Client> {
    client_with(Keypair::generate_ed25519(), ping_every)
}

/// The same with a given identity: two swarms with one key are one peer
/// over two connections.
fn client_with(key: Keypair, ping_every: Duration) -> Swarm<Client> {
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_, relay| Client {
            relay,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(ping_every)),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Starts the point with `relay` limits; its TCP address with `/p2p/<id>`.
async fn point(relay: RelayLimits) -> (Multiaddr, PeerId, tokio::task::JoinHandle<()>) {
    let dir = std::env::temp_dir().join(format!("md-relay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join(format!("{}.db", rand_suffix()));
    let config = Config {
        db,
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        relay,
        ..Config::default()
    };
    let server = Server::new(config, Keypair::generate_ed25519(), install_recorder().ok()).unwrap();
    let id = server.peer_id();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    let task = tokio::spawn(async move {
        server
            .run(std::future::pending(), move |e| {
                if let ServerEvent::Listening(a) = e
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(a);
                }
            })
            .await
            .unwrap();
    });
    let addr = tokio::time::timeout(Duration::from_secs(5), rx)
        .await
        .unwrap()
        .unwrap();
    (addr, id, task)
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// The relayed listen address of a client on the point.
fn circuit(point: &Multiaddr) -> Multiaddr {
    point.clone().with(Protocol::P2pCircuit)
}

/// Drives `s` until `f` says what happened, for at most 10 s.
async fn until<T>(
    s: &mut Swarm<Client>,
    what: &str,
    mut f: impl FnMut(SwarmEvent<ClientEvent>) -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let Ok(e) = timeout_at(deadline, s.select_next_some()).await else {
            panic!("{what}: not within 10 s");
        };
        if let Some(t) = f(e) {
            return t;
        }
    }
}

/// Whether a client's reservation was accepted (`true`) or its relayed
/// listener refused (`false`).
async fn reserve(s: &mut Swarm<Client>, point: &Multiaddr) -> bool {
    s.listen_on(circuit(point)).unwrap();
    until(s, "a reservation answer", |e| match e {
        SwarmEvent::Behaviour(ClientEvent::Relay(
            relay::client::Event::ReservationReqAccepted { .. },
        )) => Some(true),
        SwarmEvent::ListenerClosed { reason: Err(_), .. } | SwarmEvent::ListenerError { .. } => {
            Some(false)
        }
        _ => None,
    })
    .await
}

/// Dials `target` through the point's relay; whether the circuit opened
/// (`true`) or was refused (`false`).
async fn open_circuit(s: &mut Swarm<Client>, point: &Multiaddr, target: PeerId) -> bool {
    s.dial(circuit(point).with(Protocol::P2p(target))).unwrap();
    until(s, "a circuit's answer", |e| match e {
        SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target => Some(true),
        SwarmEvent::OutgoingConnectionError {
            peer_id: Some(p), ..
        } if p == target => Some(false),
        _ => None,
    })
    .await
}

/// Keeps `others` going in the background so that their circuits answer.
fn keep_running(mut s: Swarm<Client>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            s.select_next_some().await;
        }
    })
}

/// The metrics are process-wide: the tests take turns.
static METRICS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn metric(name_and_labels: &str) -> f64 {
    let text = install_recorder().unwrap().render();
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservations_and_circuits_stop_exactly_at_their_limits() {
    let _turn = METRICS.lock().await;
    let limits = RelayLimits {
        enabled: true,
        max_reservations: 2,
        max_reservations_per_peer: 1,
        max_circuits: 1,
        max_circuits_per_peer: 1,
        ..RelayLimits::default()
    };
    let (point, _, server) = point(limits).await;
    let accepted_before =
        metric("multidriver_rendezvous_relay_reservation_requests_total{status=\"accepted\"}");
    let denied_before = metric(
        "multidriver_rendezvous_relay_reservation_requests_total{status=\"resource_limit_exceeded\"}",
    );
    let circuits_denied_before = metric(
        "multidriver_rendezvous_relay_circuit_requests_total{status=\"resource_limit_exceeded\"}",
    );

    // Two reservations fit, the third is refused.
    let (mut a, mut b, mut c) = (
        client(Duration::from_secs(5)),
        client(Duration::from_secs(5)),
        client(Duration::from_secs(5)),
    );
    assert!(reserve(&mut a, &point).await, "the first reservation");
    assert!(reserve(&mut b, &point).await, "the second reservation");
    assert!(
        !reserve(&mut c, &point).await,
        "the third is past max_reservations"
    );
    let (a_id, b_id) = (*a.local_peer_id(), *b.local_peer_id());
    let (_a, _b) = (keep_running(a), keep_running(b));

    // One circuit fits; a second one (to B) is past max_circuits.
    let mut d = client(Duration::from_secs(5));
    assert!(
        open_circuit(&mut d, &point, a_id).await,
        "the first circuit"
    );
    // The second circuit comes from another source, E, which has none: only
    // the total bound can refuse it.
    let _d = keep_running(d);
    let mut e = client(Duration::from_secs(5));
    assert!(
        !open_circuit(&mut e, &point, b_id).await,
        "a second circuit is past max_circuits"
    );

    // The point counted what it did.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric("multidriver_rendezvous_relay_circuits ") < 1.0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric("multidriver_rendezvous_relay_reservation_requests_total{status=\"accepted\"}")
            - accepted_before,
        2.0
    );
    assert_eq!(
        metric(
            "multidriver_rendezvous_relay_reservation_requests_total{status=\"resource_limit_exceeded\"}"
        ) - denied_before,
        1.0
    );
    assert_eq!(
        metric(
            "multidriver_rendezvous_relay_circuit_requests_total{status=\"resource_limit_exceeded\"}"
        ) - circuits_denied_before,
        1.0
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_closes_at_its_byte_limit() {
    let _turn = METRICS.lock().await;
    let limits = RelayLimits {
        enabled: true,
        max_circuit_bytes: 4096,
        ..RelayLimits::default()
    };
    let (point, _, server) = point(limits).await;
    // A answers pings; D pings every 10 ms over the circuit: 32 bytes out
    // and 32 back each (the limit counts both ways), plus framing, past
    // 4 KiB within a second or two.
    let mut a = client(Duration::from_secs(60));
    assert!(reserve(&mut a, &point).await);
    let a_id = *a.local_peer_id();
    let _a = keep_running(a);
    let mut d = client(Duration::from_millis(10));
    d.dial(circuit(&point).with(Protocol::P2p(a_id))).unwrap();
    let mut pings = 0;
    let closed = until(&mut d, "the circuit closes", |e| match e {
        SwarmEvent::Behaviour(ClientEvent::Ping(ping::Event { result: Ok(_), .. })) => {
            pings += 1;
            None
        }
        SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == a_id => Some(()),
        _ => None,
    })
    .await;
    let () = closed;
    // It carried traffic before the limit, and no more than the limit
    // allows: 4096 bytes both ways hold at most 64 round trips of 32 bytes.
    assert!(pings > 0, "pings went through before the limit");
    assert!(pings <= 64, "{pings} pings through a 4 KiB circuit");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_gets_no_more_circuits_than_its_share() {
    let _turn = METRICS.lock().await;
    let limits = RelayLimits {
        enabled: true,
        max_circuits: 2,
        max_circuits_per_peer: 1,
        ..RelayLimits::default()
    };
    let (point, _, server) = point(limits).await;
    let (mut a, mut b) = (
        client(Duration::from_secs(5)),
        client(Duration::from_secs(5)),
    );
    assert!(reserve(&mut a, &point).await);
    assert!(reserve(&mut b, &point).await);
    let (a_id, b_id) = (*a.local_peer_id(), *b.local_peer_id());
    let (_a, _b) = (keep_running(a), keep_running(b));
    let mut d = client(Duration::from_secs(5));
    let mut e = client(Duration::from_secs(5));
    // D's first circuit fits; its second is past its share, though the
    // point has room for one more circuit in all, which E then takes.
    assert!(
        open_circuit(&mut d, &point, a_id).await,
        "D's first circuit"
    );
    assert!(
        !open_circuit(&mut d, &point, b_id).await,
        "a second circuit from one source is past max_circuits_per_peer"
    );
    let _d = keep_running(d);
    assert!(open_circuit(&mut e, &point, b_id).await, "E's circuit");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_gets_exactly_its_reservations_per_peer() {
    let _turn = METRICS.lock().await;
    let limits = RelayLimits {
        enabled: true,
        max_reservations: 8,
        max_reservations_per_peer: 2,
        ..RelayLimits::default()
    };
    let (point, _, server) = point(limits).await;
    let denied_before = metric(
        "multidriver_rendezvous_relay_reservation_requests_total{status=\"resource_limit_exceeded\"}",
    );
    // One peer (one key) over three connections: two reservations fit, the
    // third is past max_reservations_per_peer; another peer still gets one.
    let key = Keypair::generate_ed25519();
    let mut first = client_with(key.clone(), Duration::from_secs(5));
    let mut second = client_with(key.clone(), Duration::from_secs(5));
    let mut third = client_with(key, Duration::from_secs(5));
    assert!(reserve(&mut first, &point).await, "the peer's first");
    let _first = keep_running(first);
    assert!(reserve(&mut second, &point).await, "the peer's second");
    let _second = keep_running(second);
    assert!(
        !reserve(&mut third, &point).await,
        "the peer's third is past max_reservations_per_peer"
    );
    let mut other = client(Duration::from_secs(5));
    assert!(reserve(&mut other, &point).await, "another peer's");
    assert_eq!(
        metric(
            "multidriver_rendezvous_relay_reservation_requests_total{status=\"resource_limit_exceeded\"}"
        ) - denied_before,
        1.0
    );
    server.abort();
}

#[derive(NetworkBehaviour)]
struct Prober {
    autonat: libp2p::autonat::v2::client::Behaviour,
    identify: libp2p::identify::Behaviour,
}

/// A stock AutoNAT v2 client; listening on loopback when `listen`.
async fn prober(listen: bool) -> Swarm<Prober> {
    let mut s = SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| Prober {
            // Probes every 5 s (the client's default).
            autonat: libp2p::autonat::v2::client::Behaviour::default(),
            identify: libp2p::identify::Behaviour::new(libp2p::identify::Config::new(
                "/prober/1.0.0".into(),
                key.public(),
            )),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    if listen {
        s.listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
    }
    s
}

/// The first AutoNAT verdict `s` gets from the point: dialled back or not.
async fn verdict(s: &mut Swarm<Prober>, point: &Multiaddr) -> bool {
    s.dial(point.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let Ok(e) = timeout_at(deadline, s.select_next_some()).await else {
            panic!("no AutoNAT verdict within 20 s");
        };
        if let SwarmEvent::Behaviour(ProberEvent::Autonat(e)) = e {
            return e.result.is_ok();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_relay_the_point_tells_peers_whether_they_are_reachable() {
    let _turn = METRICS.lock().await;
    let (point, _, server) = point(RelayLimits {
        enabled: true,
        ..RelayLimits::default()
    })
    .await;
    let reachable_before =
        metric("multidriver_rendezvous_autonat_tests_total{result=\"reachable\"}");
    // Listening on loopback (and dialling from that port): the point dials
    // it back.
    let mut listening = prober(true).await;
    assert!(
        verdict(&mut listening, &point).await,
        "a listening peer is reachable"
    );
    assert!(
        metric("multidriver_rendezvous_autonat_tests_total{result=\"reachable\"}")
            - reachable_before
            >= 1.0
    );
    // Not listening: its observed address is a port nothing listens on.
    let mut closed = prober(false).await;
    assert!(
        !verdict(&mut closed, &point).await,
        "a peer that does not listen is not"
    );
    server.abort();
}
