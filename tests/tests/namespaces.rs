//! multidriver across real network namespaces joined by veth pairs: mDNS
//! discovery between two namespaces, and a network change (an interface
//! losing its address) that moves a connected peer to the other interface.
//!
//! Each node runs on a thread inside its namespace, so its sockets, its
//! `if-watch` and its multicast stay there; nothing touches the machine's
//! own interfaces. Skipped, with the reason printed, where namespaces
//! cannot be made, and failing there under CI (`CI=true`).
#![cfg(target_os = "linux")]

mod common;

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use common::{listen, node_with};
use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId};
use multidriver::Event;
use multidriver::behaviour::Config;
use multidriver::core::SwitchReason;
use multidriver::scoring::Source;
use multidriver_routing::DiscoveryConfig;
use multidriver_tests::netns::{self, Netns, VethPair};

/// Bound on anything that should happen; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(30);
const NS: &str = "multidriver-netns-test";

/// Skipped where namespaces cannot be made; fails there under CI.
fn skipped() -> bool {
    multidriver_tests::skipped(netns::available())
}

/// Runs a multidriver node inside `ns` until `stop` fires or `PATIENCE`
/// runs out; `setup` runs once it listens, `on_event` on each of its
/// events.
fn run_node<S, E>(
    ns: &Netns,
    key: Keypair,
    drivers: DiscoveryConfig,
    listen_on: &'static str,
    setup: S,
    mut on_event: E,
) -> SyncSender<()>
where
    S: FnOnce(&mut common::Node, Multiaddr) + Send + 'static,
    E: FnMut(&mut common::Node, &Event) + Send + 'static,
{
    let (stop_tx, stop_rx) = sync_channel::<()>(1);
    ns.run_async(move || async move {
        let mut node = node_with(key, drivers, Config::default());
        let addr = listen(&mut node, listen_on).await;
        setup(&mut node, addr);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        std::thread::spawn(move || {
            let _ = stop_rx.recv_timeout(PATIENCE);
            let _ = tx.blocking_send(());
        });
        loop {
            tokio::select! {
                _ = rx.recv() => return,
                event = node.select_next_some() => {
                    if let SwarmEvent::Behaviour(e) = event {
                        on_event(&mut node, &e);
                    }
                }
            }
        }
    })
    .expect("a thread inside the namespace");
    stop_tx
}

fn expect<T>(rx: &Receiver<T>, what: &str) -> T {
    rx.recv_timeout(PATIENCE)
        .unwrap_or_else(|_| panic!("{what} within {PATIENCE:?}"))
}

#[test]
fn mdns_finds_a_peer_in_another_namespace_and_the_engine_connects() {
    if skipped() {
        return;
    }
    let a = Netns::create("mdnsa").unwrap();
    let b = Netns::create("mdnsb").unwrap();
    let _veth = VethPair::connect(&a, "ve0", "10.77.2.1/24", &b, "ve1", "10.77.2.2/24").unwrap();
    // mDNS multicast leaves through the veth.
    netns::add_route(&a, "224.0.0.0/4", "ve0").unwrap();
    netns::add_route(&b, "224.0.0.0/4", "ve1").unwrap();

    let b_key = Keypair::generate_ed25519();
    let b_peer = b_key.public().to_peer_id();
    let mdns = || DiscoveryConfig::default().with_mdns();
    let stop_b = run_node(
        &b,
        b_key,
        mdns(),
        "/ip4/0.0.0.0/tcp/0",
        |n, _| n.behaviour_mut().advertise(NS).unwrap(),
        |_, _| {},
    );
    let (found_tx, found_rx) = sync_channel::<(PeerId, Source)>(8);
    let (route_tx, route_rx) = sync_channel::<(PeerId, Multiaddr)>(8);
    let stop_a = run_node(
        &a,
        Keypair::generate_ed25519(),
        mdns(),
        "/ip4/0.0.0.0/tcp/0",
        |n, _| n.behaviour_mut().subscribe(NS).unwrap(),
        move |n, e| match e {
            Event::PeerDiscovered { peer, source } => {
                let _ = found_tx.try_send((*peer, *source));
                n.behaviour_mut().connect(*peer).unwrap();
            }
            Event::RouteSelected { peer, addr, .. } => {
                let _ = route_tx.try_send((*peer, addr.clone()));
            }
            _ => {}
        },
    );
    let found = expect(&found_rx, "B discovered");
    assert_eq!(found, (b_peer, Source::Mdns));
    let (peer, addr) = expect(&route_rx, "a route to B selected");
    assert_eq!(peer, b_peer);
    assert!(
        addr.to_string().starts_with("/ip4/10.77.2.2/tcp/"),
        "connected across the veth, not over loopback: {addr}"
    );
    let _ = stop_a.send(());
    let _ = stop_b.send(());
}

/// How the phone loses Wi-Fi.
#[derive(Debug, Clone, Copy)]
enum Loss {
    /// Its address is removed (what `if-watch` reports).
    Address,
    /// The link goes down; the address stays, the route through it goes.
    LinkDown,
}

/// A phone namespace with `wlan0` and `wwan0` to a peer namespace; the phone
/// connects over Wi-Fi, loses it as `loss` says, and must move to cellular.
fn phone_loses_wifi(loss: Loss) {
    if skipped() {
        return;
    }
    let phone = Netns::create("phone").unwrap();
    let peer_ns = Netns::create("peer").unwrap();
    // Interface names tell the medium: `wlan*` is Wi-Fi, `wwan*` cellular.
    let wifi = VethPair::connect(
        &phone,
        "wlan0",
        "10.77.3.1/24",
        &peer_ns,
        "pw0",
        "10.77.3.2/24",
    )
    .unwrap();
    let _cell = VethPair::connect(
        &phone,
        "wwan0",
        "10.77.4.1/24",
        &peer_ns,
        "pc0",
        "10.77.4.2/24",
    )
    .unwrap();

    let q_key = Keypair::generate_ed25519();
    let q = q_key.public().to_peer_id();
    let (port_tx, port_rx) = sync_channel::<u16>(1);
    let stop_q = run_node(
        &peer_ns,
        q_key,
        DiscoveryConfig::default(),
        "/ip4/0.0.0.0/tcp/0",
        move |_, addr| {
            let port = addr
                .iter()
                .find_map(|p| match p {
                    libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
                    _ => None,
                })
                .expect("a TCP port");
            port_tx.send(port).unwrap();
        },
        |_, _| {},
    );
    let port = expect(&port_rx, "the peer listening");
    let (events_tx, events_rx) = sync_channel::<Event>(64);
    let stop_phone = run_node(
        &phone,
        Keypair::generate_ed25519(),
        DiscoveryConfig::default(),
        "/ip4/0.0.0.0/tcp/0",
        move |n, _| {
            let ttl = Duration::from_secs(600);
            for ip in ["10.77.3.2", "10.77.4.2"] {
                let addr: Multiaddr = format!("/ip4/{ip}/tcp/{port}").parse().unwrap();
                n.behaviour_mut().add_route(q, addr, ttl).unwrap();
            }
            n.behaviour_mut().connect(q).unwrap();
        },
        move |_, e| {
            if matches!(e, Event::RouteSelected { .. } | Event::RouteSwitched { .. }) {
                let _ = events_tx.try_send(e.clone());
            }
        },
    );
    let first = expect(&events_rx, "a first route");
    let Event::RouteSelected { peer, addr, .. } = first else {
        panic!("expected the first route, got {first:?}");
    };
    assert_eq!(peer, q);
    assert!(
        addr.to_string().starts_with("/ip4/10.77.3.2/"),
        "Wi-Fi is cheaper than cellular: {addr}"
    );

    match loss {
        // if-watch reports the address gone: the engine takes the
        // interface down and re-races the peer over cellular.
        Loss::Address => netns::del_addr(&phone, "wlan0", "10.77.3.1/24").unwrap(),
        // The address stays (no if-watch event); the link state says the
        // interface is gone.
        Loss::LinkDown => wifi.set_up(false).unwrap(),
    }
    let next = expect(&events_rx, "a switch after Wi-Fi went");
    let Event::RouteSwitched {
        peer, to, reason, ..
    } = next
    else {
        panic!("expected a switch to cellular, got {next:?}");
    };
    assert_eq!(peer, q);
    assert!(to.to_string().starts_with("/ip4/10.77.4.2/"), "{to}");
    // Both are interface events: an address removed (if-watch), a link
    // taken down (netlink link state), not a probe timing out.
    assert_eq!(reason, SwitchReason::InterfaceLost, "{loss:?}");
    let _ = stop_phone.send(());
    let _ = stop_q.send(());
}

#[test]
fn losing_the_wifi_address_moves_the_peer_to_cellular() {
    phone_loses_wifi(Loss::Address);
}

#[test]
fn wifi_link_down_moves_the_peer_to_cellular() {
    phone_loses_wifi(Loss::LinkDown);
}
