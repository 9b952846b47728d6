//! The racing dialer over real swarms on loopback: two routes to one peer,
//! one slowed by a user-space delay proxy, and a route that is refused.
//!
//! Ties in the ranking are broken by address, so the route through
//! 127.0.0.1 is dialled before the one through 127.0.0.2 when both cost the
//! same: the slow or failing route is put on 127.0.0.1 so that the race,
//! not the ranking, has to find the good one.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{listen, node, node_with, spawn};
use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use multidriver::Event;
use multidriver::behaviour::Config;
use multidriver::scoring::Profile;
use multidriver_routing::DiscoveryConfig;
use multidriver_tests::delay_proxy::DelayProxy;
use tokio::time::timeout;

const TTL: Duration = Duration::from_secs(600);

fn socket(addr: &Multiaddr) -> SocketAddr {
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(a.into()),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    SocketAddr::new(ip.expect("an IPv4 address"), port.expect("a TCP port"))
}

fn tcp(addr: SocketAddr) -> Multiaddr {
    format!("/ip4/{}/tcp/{}", addr.ip(), addr.port())
        .parse()
        .unwrap()
}

/// The peer: listens on 127.0.0.2 and runs in the background.
async fn peer() -> (PeerId, SocketAddr, tokio::task::JoinHandle<()>) {
    let mut b = node(DiscoveryConfig::default());
    let addr = listen(&mut b, "/ip4/127.0.0.2/tcp/0").await;
    let id = *b.local_peer_id();
    (id, socket(&addr), spawn(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_faster_of_two_routes_wins_and_the_slower_is_closed() {
    let (b, direct, task) = peer().await;
    // 300 ms each way: a TCP + Noise + yamux handshake through it takes
    // well over a second.
    let proxy = DelayProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        direct,
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let slow = tcp(proxy.local_addr());
    let fast = tcp(direct);
    let mut a = node(DiscoveryConfig::default());
    a.behaviour_mut().add_route(b, slow.clone(), TTL).unwrap();
    a.behaviour_mut().add_route(b, fast.clone(), TTL).unwrap();
    a.behaviour_mut().connect(b).unwrap();

    let mut dialled = Vec::new();
    let selected = timeout(Duration::from_secs(10), async {
        loop {
            match a.select_next_some().await {
                SwarmEvent::Dialing { .. } => dialled.push(()),
                SwarmEvent::Behaviour(Event::RouteSelected { peer, addr, .. }) if peer == b => {
                    return addr;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("connected within 10 s");
    assert_eq!(selected, fast, "the direct route won the race");
    assert_eq!(dialled.len(), 2, "both routes were raced");
    assert!(
        proxy.accepted() >= 1,
        "the slow route was dialled first (ties go to 127.0.0.1)"
    );
    // The slow dial finishes later and is closed as a duplicate: one
    // connection remains, over the fast route.
    timeout(Duration::from_secs(15), async {
        loop {
            if let SwarmEvent::ConnectionClosed { endpoint, .. } = a.select_next_some().await {
                if endpoint
                    .get_remote_address()
                    .to_string()
                    .starts_with(&slow.to_string())
                {
                    return;
                }
                panic!("closed a connection over {endpoint:?}, not the slow one");
            }
        }
    })
    .await
    .expect("the slow connection was closed within 15 s");
    assert_eq!(a.network_info().connection_counters().num_established(), 1);
    assert_eq!(a.behaviour().engine().connection_count(), 1);
    assert_eq!(a.behaviour().primary(&b).map(|(_, addr)| addr), Some(fast));
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_route_is_skipped_at_once_not_after_the_stagger() {
    let (b, direct, task) = peer().await;
    // A port nobody listens on: the dial is refused at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = tcp(closed.local_addr().unwrap());
    drop(closed);
    // A 2 s stagger (the most a profile allows): without fast-forward the
    // second route would wait 2 s.
    let mut profile = Profile::balanced();
    profile.racing.min_stagger_ms = 2_000;
    profile.racing.max_stagger_ms = 2_000;
    let engine = multidriver::core::Config::default()
        .with_profile_map(None)
        .with_profile(profile);
    let mut a = node_with(
        Keypair::generate_ed25519(),
        DiscoveryConfig::default(),
        Config::default().with_engine(engine),
    );
    a.behaviour_mut()
        .add_route(b, refused.clone(), TTL)
        .unwrap();
    a.behaviour_mut().add_route(b, tcp(direct), TTL).unwrap();
    a.behaviour_mut().connect(b).unwrap();

    let failed = timeout(Duration::from_secs(10), async {
        let mut failed = 0;
        loop {
            match a.select_next_some().await {
                SwarmEvent::OutgoingConnectionError { .. } => {
                    failed += 1;
                    // The behaviour saw the failure before the swarm
                    // reported it: the next route is already being dialled
                    // (or already connected), long before the 2 s stagger.
                    let engine = a.behaviour().engine();
                    assert!(
                        engine.attempts_in_flight_for(&b) == 1 || engine.primary(&b).is_some(),
                        "the next route was dialled as soon as the first failed"
                    );
                }
                SwarmEvent::Behaviour(Event::RouteSelected { peer, addr, .. }) if peer == b => {
                    assert_eq!(addr, tcp(direct));
                    return failed;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("connected well within the bound");
    assert_eq!(
        failed, 1,
        "the refused route was tried first (ties go to 127.0.0.1) and failed"
    );
    task.abort();
}
