//! Proximity discovery end to end: two phones 5 m apart on the in-process
//! radio, each a real libp2p swarm whose only transport is the BLE-style
//! link. One advertises a namespace, the other scans, learns the peer id
//! over a short link, and the engine connects over Bluetooth.

use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Swarm, SwarmBuilder};
use multidriver::Event;
use multidriver::behaviour::{Behaviour, Config};
use multidriver::scoring::{Medium, Source, Timestamp};
use multidriver_routing::proximity::{Ether, EtherConfig, InProcessRadio};
use multidriver_routing::{Discovery, DiscoveryConfig, ProximityConfig, ble};
use tokio::time::timeout;

const NS: &str = "multidriver-proximity-test";

fn phone(radio: InProcessRadio) -> Swarm<Behaviour<Discovery>> {
    phone_with(radio, Config::default(), Duration::from_secs(60))
}

fn phone_with(
    radio: InProcessRadio,
    config: Config,
    idle: Duration,
) -> Swarm<Behaviour<Discovery>> {
    let key = Keypair::generate_ed25519();
    let transport = ble::BleTransport::new(&radio);
    let drivers = DiscoveryConfig::default().with_proximity(ProximityConfig::in_process(radio));
    let discovery = Discovery::new(&key, drivers).expect("drivers start");
    // No IP interfaces matter here: only the radio's link.
    let config = config.with_interface_watching(false);
    let behaviour = Behaviour::new(key.public().to_peer_id(), config, discovery).expect("engine");
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|k| ble::upgraded(transport, k))
        .expect("BLE transport")
        .with_behaviour(|_| behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build()
}

/// Ticks the ether every 50 ms: it delivers advertisements on its ticks.
fn ticking(ether: &Ether) -> tokio::task::JoinHandle<()> {
    let ether = ether.clone();
    let start = Instant::now();
    tokio::spawn(async move {
        loop {
            ether.tick(Timestamp::from_duration(start.elapsed()));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_in_range_is_found_by_its_advertisement_and_reached_over_bluetooth() {
    let ether = Ether::new(EtherConfig::default());
    let a_radio = ether.radio([0.0, 0.0]).unwrap();
    let b_radio = ether.radio([5.0, 0.0]).unwrap();
    let b_station = b_radio.station();
    let ticker = ticking(&ether);
    let mut a = phone(a_radio);
    let mut b = phone(b_radio);
    b.listen_on(ble::address(0)).unwrap();
    a.listen_on(ble::address(0)).unwrap();
    let b_peer = *b.local_peer_id();
    b.behaviour_mut().advertise(NS).unwrap();
    a.behaviour_mut().subscribe(NS).unwrap();

    let (found, route, interface) = timeout(Duration::from_secs(20), async {
        let mut found = None;
        loop {
            tokio::select! {
                _ = b.select_next_some() => {}
                e = a.select_next_some() => match e {
                    SwarmEvent::Behaviour(Event::PeerDiscovered { peer, source }) => {
                        found = Some((peer, source));
                        a.behaviour_mut().connect(peer).unwrap();
                    }
                    SwarmEvent::Behaviour(Event::RouteSelected { peer, addr, interface, .. })
                        if peer == b_peer =>
                    {
                        return (found, addr, interface);
                    }
                    _ => {}
                },
            }
        }
    })
    .await
    .expect("found and connected within 20 s");
    assert_eq!(found, Some((b_peer, Source::Proximity)));
    assert_eq!(route, ble::address(b_station));
    assert_eq!(a.behaviour().interface_medium(interface), Medium::Bluetooth);
    assert!(a.is_connected(&b_peer));
    ticker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_out_of_range_is_not_found() {
    let ether = Ether::new(EtherConfig::default());
    let a_radio = ether.radio([0.0, 0.0]).unwrap();
    let b_radio = ether.radio([100.0, 0.0]).unwrap();
    let ticker = ticking(&ether);
    let mut a = phone(a_radio);
    let mut b = phone(b_radio);
    b.listen_on(ble::address(0)).unwrap();
    b.behaviour_mut().advertise(NS).unwrap();
    a.behaviour_mut().subscribe(NS).unwrap();
    // Two scan windows pass without a discovery.
    let seen = timeout(Duration::from_secs(2), async {
        loop {
            tokio::select! {
                _ = b.select_next_some() => {}
                e = a.select_next_some() => {
                    if let SwarmEvent::Behaviour(Event::PeerDiscovered { .. }) = e {
                        return true;
                    }
                }
            }
        }
    })
    .await;
    assert!(seen.is_err(), "nothing in range to discover");
    ticker.abort();
}

/// Only A wants B. B's side of A's connection is not B's engine's, yet B
/// must not close it on its idle timeout while A's engine holds (and
/// probes) it: the connection A chose stays up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_side_that_did_not_ask_keeps_the_connection_the_other_holds() {
    let ether = Ether::new(EtherConfig::default());
    let a_radio = ether.radio([0.0, 0.0]).unwrap();
    let b_radio = ether.radio([5.0, 0.0]).unwrap();
    let ticker = ticking(&ether);
    // A probes every second; both close idle connections after 3 s.
    let liveness = multidriver::core::Liveness::default()
        .with_heartbeat(Duration::from_secs(1))
        .with_probe_timeout(Duration::from_secs(2));
    let engine = multidriver::core::Config::default().with_liveness(Some(liveness));
    let idle = Duration::from_secs(3);
    let mut a = phone_with(a_radio, Config::default().with_engine(engine), idle);
    let mut b = phone_with(b_radio, Config::default(), idle);
    b.listen_on(ble::address(0)).unwrap();
    let b_peer = *b.local_peer_id();
    b.behaviour_mut().advertise(NS).unwrap();
    a.behaviour_mut().subscribe(NS).unwrap();
    let mut selected = 0;
    let mut lost = 0;
    // Discovery and the first route, then three idle timeouts' worth.
    let _ = timeout(Duration::from_secs(12), async {
        loop {
            tokio::select! {
                _ = b.select_next_some() => {}
                e = a.select_next_some() => match e {
                    SwarmEvent::Behaviour(Event::PeerDiscovered { peer, .. }) => {
                        a.behaviour_mut().connect(peer).unwrap();
                    }
                    SwarmEvent::Behaviour(Event::RouteSelected { peer, .. }) if peer == b_peer => {
                        selected += 1;
                    }
                    SwarmEvent::Behaviour(
                        Event::RouteSwitched { .. } | Event::PeerDisconnected { .. },
                    ) => lost += 1,
                    _ => {}
                },
            }
        }
    })
    .await;
    assert_eq!(selected, 1, "one route selected");
    assert_eq!(lost, 0, "and never lost to an idle timeout");
    assert!(a.is_connected(&b_peer));
    ticker.abort();
}
