//! Relayed routes and hole punching in real swarms on loopback: B knows A
//! only through A's reservation on a stock circuit relay; the engine dials
//! the relayed route, and when libp2p's DCUtR (run beside the behaviour,
//! its events handed to `handle_dcutr_event`) opens a direct connection,
//! the engine moves B to it make-before-break and the circuit closes.
//!
//! Loopback has no NAT, so the punch always succeeds here; the NAT cases
//! (a punch that a NAT refuses) belong to the network-namespace tests.

#![cfg(feature = "relay")]

use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, Swarm, SwarmEvent};
use libp2p::{Multiaddr, PeerId, dcutr, identify, relay, rendezvous};
use multidriver::core::{Reachability, ReservationState};
use multidriver::transports::stack::Dns;
use multidriver::{
    Behaviour, Config, Discovery, DiscoveryConfig, Event, StackConfig, SwitchReason, build_swarm,
    build_swarm_with_relay,
};
use tokio::time::{Instant, timeout_at};

#[derive(NetworkBehaviour)]
struct App {
    multidriver: Behaviour<Discovery>,
    relay: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    identify: identify::Behaviour,
}

#[derive(NetworkBehaviour)]
struct Relay {
    relay: relay::Behaviour,
    identify: identify::Behaviour,
}

fn stack() -> StackConfig {
    StackConfig::default().with_dns(Dns::Disabled)
}

fn app() -> Swarm<App> {
    app_with(DiscoveryConfig::default())
}

fn app_with(discovery: DiscoveryConfig) -> Swarm<App> {
    build_swarm_with_relay(Keypair::generate_ed25519(), &stack(), |key, relay| {
        let local = key.public().to_peer_id();
        let drivers = Discovery::new(key, discovery).unwrap();
        App {
            multidriver: Behaviour::new(local, Config::default(), drivers).unwrap(),
            relay,
            dcutr: dcutr::Behaviour::new(local),
            identify: identify::Behaviour::new(identify::Config::new(
                "/app/1.0.0".into(),
                key.public(),
            )),
        }
    })
    .unwrap()
}

fn relay_server() -> Swarm<Relay> {
    build_swarm(Keypair::generate_ed25519(), &stack(), |key| Relay {
        relay: relay::Behaviour::new(key.public().to_peer_id(), relay::Config::default()),
        identify: identify::Behaviour::new(identify::Config::new(
            "/relay/1.0.0".into(),
            key.public(),
        )),
    })
    .unwrap()
}

#[derive(NetworkBehaviour)]
struct Point {
    rendezvous: rendezvous::server::Behaviour,
    relay: relay::Behaviour,
    identify: identify::Behaviour,
}

/// A stock rendezvous point that also relays (as Berty's RDVP did),
/// running in the background.
async fn relaying_point() -> (PeerId, Multiaddr) {
    let mut p = build_swarm(Keypair::generate_ed25519(), &stack(), |key| Point {
        rendezvous: rendezvous::server::Behaviour::new(rendezvous::server::Config::default()),
        relay: relay::Behaviour::new(key.public().to_peer_id(), relay::Config::default()),
        identify: identify::Behaviour::new(identify::Config::new(
            "/point/1.0.0".into(),
            key.public(),
        )),
    })
    .unwrap();
    let addr = listen(&mut p, "/ip4/127.0.0.1/tcp/0").await;
    p.add_external_address(addr.clone());
    let id = *p.local_peer_id();
    tokio::spawn(async move {
        loop {
            p.select_next_some().await;
        }
    });
    (id, addr)
}

async fn listen<B: NetworkBehaviour>(s: &mut Swarm<B>, on: &str) -> Multiaddr {
    s.listen_on(on.parse().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match timeout_at(deadline, s.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => return address,
            Ok(_) => {}
            Err(_) => panic!("no listen address on {on}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_peer_moves_to_the_hole_punched_connection() {
    // The relay serves once it has an external address.
    let mut r = relay_server();
    let r_addr = listen(&mut r, "/ip4/127.0.0.1/tcp/0").await;
    r.add_external_address(r_addr.clone());
    let r_id = *r.local_peer_id();
    let circuit = r_addr.with(Protocol::P2p(r_id)).with(Protocol::P2pCircuit);
    tokio::spawn(async move {
        loop {
            r.select_next_some().await;
        }
    });

    // A listens on TCP (the port a punch reuses) and on its relay.
    let mut a = app();
    let a_id = *a.local_peer_id();
    listen(&mut a, "/ip4/127.0.0.1/tcp/0").await;
    a.listen_on(circuit.clone()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let Ok(e) = timeout_at(deadline, a.select_next_some()).await else {
            panic!("A's reservation: not within 10 s");
        };
        if let SwarmEvent::Behaviour(AppEvent::Relay(
            relay::client::Event::ReservationReqAccepted { .. },
        )) = e
        {
            break;
        }
    }

    // B knows A only by its relayed address, and wants it.
    let mut b = app();
    listen(&mut b, "/ip4/127.0.0.1/tcp/0").await;
    let relayed: Multiaddr = circuit.with(Protocol::P2p(a_id));
    let md = &mut b.behaviour_mut().multidriver;
    md.add_route(a_id, relayed.clone(), Duration::from_secs(600))
        .unwrap();
    md.connect(a_id).unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut selected: Option<Multiaddr> = None;
    let mut punched = None;
    let mut closed_relayed = false;
    let mut relayed_conn = None;
    while punched.is_none() || !closed_relayed {
        let ev = tokio::select! {
            e = a.select_next_some() => {
                if let SwarmEvent::Behaviour(AppEvent::Dcutr(e)) = &e {
                    a.behaviour_mut().multidriver.handle_dcutr_event(e);
                }
                continue;
            }
            e = b.select_next_some() => e,
            () = tokio::time::sleep_until(deadline) => panic!(
                "not within 20 s: selected {selected:?}, punched {punched:?}, circuit closed {closed_relayed}"
            ),
        };
        match ev {
            SwarmEvent::Behaviour(AppEvent::Dcutr(e)) => {
                b.behaviour_mut().multidriver.handle_dcutr_event(&e);
            }
            SwarmEvent::Behaviour(AppEvent::Multidriver(Event::RouteSelected {
                peer,
                addr,
                connection,
                ..
            })) if peer == a_id => {
                selected = Some(addr);
                relayed_conn = Some(connection);
            }
            SwarmEvent::Behaviour(AppEvent::Multidriver(Event::RouteSwitched {
                peer,
                from,
                to,
                reason,
                connection,
                ..
            })) if peer == a_id => {
                assert_eq!(reason, SwitchReason::HolePunched);
                assert_eq!(from, relayed);
                assert!(!to.iter().any(|p| p == Protocol::P2pCircuit), "{to}");
                punched = Some(connection);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } if peer_id == a_id && Some(connection_id) == relayed_conn => {
                closed_relayed = true;
            }
            _ => {}
        }
    }
    // The relayed route came first (it was the only one), the punched
    // connection took over, and the circuit was closed after the grace.
    assert_eq!(selected, Some(relayed));
    assert_eq!(
        b.behaviour().multidriver.primary(&a_id).map(|(c, _)| c),
        punched
    );
}

/// Whether `addr` goes through a relay.
fn relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_not_known_public_reserves_on_its_relaying_point_and_is_reached_through_it() {
    const NS: &str = "reservation-test";
    let (point, point_addr) = relaying_point().await;
    let drivers = || DiscoveryConfig::default().with_rendezvous(point, point_addr.clone());

    // A has no external address: its reachability is unknown, so once it
    // meets the point (which relays) it reserves there, and registers the
    // relayed address.
    let mut a = app_with(drivers());
    let a_id = *a.local_peer_id();
    listen(&mut a, "/ip4/127.0.0.1/tcp/0").await;
    a.behaviour_mut().multidriver.advertise(NS).unwrap();
    let mut b = app_with(drivers());
    listen(&mut b, "/ip4/127.0.0.1/tcp/0").await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut discovered = false;
    let mut selected: Option<Multiaddr> = None;
    let mut punched = false;
    // B looks A up every 200 ms once A holds its reservation, until found
    // (A's registration with the relayed address may land a little later).
    let mut lookups = tokio::time::interval(Duration::from_millis(200));
    while selected.is_none() || !punched {
        let reserved = a.external_addresses().any(relayed);
        let ev = tokio::select! {
            _ = lookups.tick(), if reserved && !discovered => {
                b.behaviour_mut().multidriver.discover(NS).unwrap();
                continue;
            }
            e = a.select_next_some() => {
                if let SwarmEvent::Behaviour(AppEvent::Dcutr(e)) = &e {
                    a.behaviour_mut().multidriver.handle_dcutr_event(e);
                }
                continue;
            }
            e = b.select_next_some() => e,
            () = tokio::time::sleep_until(deadline) => panic!(
                "not within 20 s: A reserved {reserved}, relays {:?}, B selected {selected:?}, punched {punched}",
                a.behaviour().multidriver.engine().relays().map(|(p, _, s)| (p, s)).collect::<Vec<_>>()
            ),
        };
        match ev {
            SwarmEvent::Behaviour(AppEvent::Dcutr(e)) => {
                b.behaviour_mut().multidriver.handle_dcutr_event(&e);
            }
            SwarmEvent::Behaviour(AppEvent::Multidriver(Event::PeerDiscovered {
                peer, ..
            })) if peer == a_id => {
                discovered = true;
                b.behaviour_mut().multidriver.connect(a_id).unwrap();
            }
            SwarmEvent::Behaviour(AppEvent::Multidriver(Event::RouteSelected {
                peer,
                addr,
                ..
            })) if peer == a_id => selected = Some(addr),
            SwarmEvent::Behaviour(AppEvent::Multidriver(Event::RouteSwitched {
                peer,
                reason: SwitchReason::HolePunched,
                ..
            })) if peer == a_id => punched = true,
            _ => {}
        }
    }
    // B found A only by the relayed address it registered, reached it
    // through the point, and moved to the punched connection.
    let selected = selected.unwrap();
    assert!(relayed(&selected), "{selected}");
    let md = &a.behaviour().multidriver;
    assert!(matches!(
        md.engine().relays().collect::<Vec<_>>()[..],
        [(p, _, ReservationState::Reserved(_))] if p == point
    ));

    // A is known to be public (as AutoNAT would find, or the app says):
    // it releases the reservation and stops advertising the relayed
    // address.
    a.behaviour_mut()
        .multidriver
        .set_reachability(Reachability::Public);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut changed = false;
    while !changed || a.external_addresses().any(relayed) {
        let ev = tokio::select! {
            e = a.select_next_some() => e,
            _ = b.select_next_some() => continue,
            () = tokio::time::sleep_until(deadline) => panic!(
                "not within 10 s: reachability event {changed}, external {:?}",
                a.external_addresses().collect::<Vec<_>>()
            ),
        };
        if let SwarmEvent::Behaviour(AppEvent::Multidriver(Event::ReachabilityChanged {
            reachability,
        })) = ev
        {
            assert_eq!(reachability, Reachability::Public);
            changed = true;
        }
    }
    let md = &a.behaviour().multidriver;
    assert_eq!(md.reachability(), Reachability::Public);
    assert!(
        md.engine()
            .relays()
            .all(|(_, _, s)| s == ReservationState::None)
    );
}

#[derive(NetworkBehaviour)]
struct Plain {
    multidriver: Behaviour<Discovery>,
    identify: identify::Behaviour,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_relay_transport_the_point_is_not_kept_as_a_relay() {
    // A swarm built without the relay client cannot listen through a
    // relay: the first refused listener takes the point off the engine's
    // relays for good, instead of a reservation retried forever.
    let (point, point_addr) = relaying_point().await;
    let mut a = build_swarm(Keypair::generate_ed25519(), &stack(), |key| {
        let local = key.public().to_peer_id();
        Plain {
            multidriver: Behaviour::new(
                local,
                Config::default(),
                Discovery::new(
                    key,
                    DiscoveryConfig::default().with_rendezvous(point, point_addr.clone()),
                )
                .unwrap(),
            )
            .unwrap(),
            identify: identify::Behaviour::new(identify::Config::new(
                "/app/1.0.0".into(),
                key.public(),
            )),
        }
    })
    .unwrap();
    listen(&mut a, "/ip4/127.0.0.1/tcp/0").await;
    a.behaviour_mut().multidriver.advertise("no-relay").unwrap();
    // Identify with the point, then a few seconds more.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut identified = None;
    loop {
        let Ok(e) = timeout_at(deadline, a.select_next_some()).await else {
            break;
        };
        if let SwarmEvent::Behaviour(PlainEvent::Identify(identify::Event::Received {
            peer_id,
            ..
        })) = e
            && peer_id == point
        {
            identified.get_or_insert(Instant::now());
        }
        if identified.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            break;
        }
    }
    assert!(identified.is_some(), "A never identified the point");
    assert_eq!(
        a.behaviour().multidriver.engine().relays().count(),
        0,
        "the point stays a relay the swarm cannot use"
    );
    assert!(!a.listeners().any(relayed));
}
