//! multidriver in real libp2p swarms on loopback: discovery through a real
//! in-process rendezvous server and through a small real Kademlia DHT, over
//! TCP and over QUIC, and the route the engine then connects through.

use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, rendezvous};
use multidriver::Event;
use multidriver::behaviour::{Behaviour, Config};
use multidriver::scoring::Source;
use multidriver_routing::{Discovery, DiscoveryConfig};
use multidriver_transports::stack::{Dns, StackConfig, build_swarm};
use tokio::time::timeout;

type Node = Swarm<Behaviour<Discovery>>;

const NS: &str = "multidriver-test";

fn stack() -> StackConfig {
    StackConfig::default().with_dns(Dns::Disabled)
}

fn node(drivers: DiscoveryConfig) -> Node {
    let key = Keypair::generate_ed25519();
    let discovery = Discovery::new(&key, drivers).expect("drivers start");
    let behaviour =
        Behaviour::new(key.public().to_peer_id(), Config::default(), discovery).expect("engine");
    build_swarm(key, &stack(), |_| behaviour).expect("stack")
}

/// Listens on `on` and declares the address external (rendezvous records
/// and provider records carry external addresses).
async fn listen<B: libp2p::swarm::NetworkBehaviour>(s: &mut Swarm<B>, on: &str) -> Multiaddr {
    s.listen_on(on.parse().unwrap()).unwrap();
    let addr = timeout(Duration::from_secs(5), async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = s.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .expect("listening within 5 s");
    s.add_external_address(addr.clone());
    addr
}

/// A stock libp2p rendezvous server, run in the background.
async fn rendezvous_server(on: &str) -> (PeerId, Multiaddr, tokio::task::JoinHandle<()>) {
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    let mut server = build_swarm(key, &stack(), |_| {
        rendezvous::server::Behaviour::new(rendezvous::server::Config::default())
    })
    .expect("server stack");
    let addr = listen(&mut server, on).await;
    let task = tokio::spawn(async move {
        loop {
            server.select_next_some().await;
        }
    });
    (peer, addr, task)
}

/// What one node saw while the others ran.
#[derive(Debug, Default)]
struct Seen {
    discovered: Vec<(PeerId, Source)>,
    selected: Vec<(PeerId, Multiaddr)>,
}

/// Runs every node until `done` holds for the first node's events or the
/// bound runs out.
async fn run_until(
    nodes: &mut [Node],
    bound: Duration,
    mut on_event: impl FnMut(usize, &Event, &mut [Node]),
    done: impl Fn(&[Seen]) -> bool,
) -> Vec<Seen> {
    let mut seen: Vec<Seen> = nodes.iter().map(|_| Seen::default()).collect();
    let result = timeout(bound, async {
        loop {
            let (i, event) = {
                let futs = nodes
                    .iter_mut()
                    .enumerate()
                    .map(|(i, n)| Box::pin(async move { (i, n.select_next_some().await) }));
                futures::future::select_all(futs).await.0
            };
            if let SwarmEvent::Behaviour(e) = event {
                match &e {
                    Event::PeerDiscovered { peer, source } => {
                        seen[i].discovered.push((*peer, *source))
                    }
                    Event::RouteSelected { peer, addr, .. } => {
                        seen[i].selected.push((*peer, addr.clone()))
                    }
                    _ => {}
                }
                on_event(i, &e, nodes);
            }
            if done(&seen) {
                return;
            }
        }
    })
    .await;
    if result.is_err() {
        panic!("not done within {bound:?}; saw {seen:#?}");
    }
    seen
}

/// Runs every node for `period`, ignoring what happens.
async fn run_for(nodes: &mut [Node], period: Duration) {
    let _ = timeout(period, async {
        loop {
            let futs = nodes
                .iter_mut()
                .map(|n| Box::pin(async move { n.select_next_some().await }));
            futures::future::select_all(futs).await;
        }
    })
    .await;
}

async fn rendezvous_discovery(listen_on: &str) {
    let (point, point_addr, server) = rendezvous_server(listen_on).await;
    let drivers = || DiscoveryConfig::default().with_rendezvous(point, point_addr.clone());
    let mut nodes = vec![node(drivers()), node(drivers())];
    for n in &mut nodes {
        listen(n, listen_on).await;
    }
    let b = *nodes[1].local_peer_id();
    let b_addrs: Vec<Multiaddr> = nodes[1].external_addresses().cloned().collect();
    // B registers first; A looks up after.
    nodes[1].behaviour_mut().advertise(NS).unwrap();
    // Let B's registration land before A's lookup.
    run_for(&mut nodes, Duration::from_millis(500)).await;
    nodes[0].behaviour_mut().subscribe(NS).unwrap();
    let seen = run_until(
        &mut nodes,
        Duration::from_secs(20),
        |i, e, nodes| {
            if let (0, Event::PeerDiscovered { peer, .. }) = (i, e) {
                nodes[0].behaviour_mut().connect(*peer).unwrap();
            }
        },
        |seen| seen[0].selected.iter().any(|(p, _)| *p == b),
    )
    .await;
    assert!(
        seen[0].discovered.contains(&(b, Source::Rendezvous)),
        "B was found through the rendezvous point: {seen:?}"
    );
    let (_, addr) = seen[0].selected.iter().find(|(p, _)| *p == b).unwrap();
    assert!(
        b_addrs.contains(addr),
        "A connected over B's registered address {addr}, one of {b_addrs:?}"
    );
    let (connection, primary) = nodes[0].behaviour().primary(&b).expect("B is A's peer");
    assert_eq!(&primary, addr);
    assert!(nodes[0].is_connected(&b));
    assert!(
        nodes[0].behaviour().engine_connection(connection).is_some(),
        "the swarm's connection is the engine's"
    );
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendezvous_over_tcp() {
    rendezvous_discovery("/ip4/127.0.0.1/tcp/0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendezvous_over_quic() {
    rendezvous_discovery("/ip4/127.0.0.1/udp/0/quic-v1").await;
}

/// Five nodes form a Kademlia DHT bootstrapped from the first; the last
/// finds the second through a provider record and connects to it.
async fn dht_discovery(listen_on: &str) {
    let mut nodes = vec![node(DiscoveryConfig::default().with_dht(Vec::new()))];
    let boot_addr = listen(&mut nodes[0], listen_on).await;
    let boot = *nodes[0].local_peer_id();
    for _ in 1..5 {
        let mut n = node(DiscoveryConfig::default().with_dht(vec![(boot, boot_addr.clone())]));
        listen(&mut n, listen_on).await;
        nodes.push(n);
    }
    // Each node joins the DHT through the bootstrap node.
    for n in nodes.iter_mut().skip(1) {
        n.behaviour_mut()
            .drivers_mut()
            .kad_mut()
            .expect("DHT on")
            .bootstrap()
            .expect("a bootstrap peer is known");
    }
    let provider = *nodes[1].local_peer_id();
    // Let the routing tables fill, then publish, then look up.
    run_for(&mut nodes, Duration::from_secs(1)).await;
    nodes[1].behaviour_mut().advertise(NS).unwrap();
    run_for(&mut nodes, Duration::from_secs(2)).await;
    nodes[4].behaviour_mut().subscribe(NS).unwrap();
    let seen = run_until(
        &mut nodes,
        Duration::from_secs(30),
        |i, e, nodes| {
            if let (4, Event::PeerDiscovered { peer, .. }) = (i, e)
                && *peer == provider
            {
                nodes[4].behaviour_mut().connect(*peer).unwrap();
            }
        },
        |seen| seen[4].selected.iter().any(|(p, _)| *p == provider),
    )
    .await;
    assert!(
        seen[4].discovered.contains(&(provider, Source::Dht)),
        "the provider was found in the DHT: {:?}",
        seen[4]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kademlia_over_tcp() {
    dht_discovery("/ip4/127.0.0.1/tcp/0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kademlia_over_quic() {
    dht_discovery("/ip4/127.0.0.1/udp/0/quic-v1").await;
}

/// A peer that dialled us before the app wanted it (the chat answering a
/// first message): asking for it holds the open connection as its route,
/// and the app never hears "unreachable" for a connected peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wanting_a_peer_that_dialled_us_uses_its_connection_and_never_reports_it_unreachable() {
    let mut a = node(DiscoveryConfig::default());
    let mut b = node(DiscoveryConfig::default());
    let a_addr = listen(&mut a, "/ip4/127.0.0.1/tcp/0").await;
    let (a_id, b_id) = (*a.local_peer_id(), *b.local_peer_id());
    b.behaviour_mut()
        .add_route(a_id, a_addr, Duration::from_secs(600))
        .unwrap();
    b.behaviour_mut().connect(a_id).unwrap();
    // Until A's swarm has B's connection (A's app knows nothing of B yet).
    timeout(Duration::from_secs(20), async {
        loop {
            tokio::select! {
                e = a.select_next_some() => {
                    if let SwarmEvent::ConnectionEstablished { peer_id, .. } = e
                        && peer_id == b_id
                    {
                        return;
                    }
                }
                _ = b.select_next_some() => {}
            }
        }
    })
    .await
    .expect("B connects to A");
    // B's first message arrives: A's app now wants B.
    a.behaviour_mut().connect(b_id).unwrap();
    let mut nodes = [a, b];
    let unreachable = std::cell::Cell::new(0);
    let seen = run_until(
        &mut nodes,
        Duration::from_secs(20),
        |i, e, _| {
            if let Event::PeerUnreachable { peer, .. } = e
                && i == 0
                && *peer == b_id
            {
                unreachable.set(unreachable.get() + 1);
            }
        },
        |seen| seen[0].selected.iter().any(|(p, _)| *p == b_id),
    )
    .await;
    assert_eq!(unreachable.get(), 0, "A reported B unreachable: {seen:?}");
}
