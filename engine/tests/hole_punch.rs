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
use libp2p::{Multiaddr, dcutr, identify, relay};
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
    build_swarm_with_relay(Keypair::generate_ed25519(), &stack(), |key, relay| {
        let local = key.public().to_peer_id();
        let drivers = Discovery::new(key, DiscoveryConfig::default()).unwrap();
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
