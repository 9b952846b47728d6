//! The `Behaviour` fed only by host hints (as on Android and iOS): routes
//! leave through the hinted networks, follow their address to another
//! network when one goes, and LAN addresses use an unvalidated Wi-Fi.

use std::time::Duration;

use libp2p::PeerId;
use libp2p::identity::Keypair;
use multidriver::behaviour::{Behaviour, Config};
use multidriver::scoring::{CellularGeneration, Medium};
use multidriver::transports::connectivity::{
    ConnectivityHint, HostTransport, NetworkId, NetworkState,
};
use multidriver_routing::{Discovery, DiscoveryConfig};

const WIFI: NetworkId = NetworkId(100);
const LTE: NetworkId = NetworkId(200);
const TTL: Duration = Duration::from_secs(600);

fn behaviour() -> Behaviour<Discovery> {
    let key = Keypair::generate_ed25519();
    let discovery = Discovery::new(&key, DiscoveryConfig::default()).unwrap();
    Behaviour::new(
        key.public().to_peer_id(),
        Config::default().with_interface_watching(false),
        discovery,
    )
    .unwrap()
}

fn available(
    b: &mut Behaviour<Discovery>,
    network: NetworkId,
    transport: HostTransport,
    validated: bool,
) {
    b.handle_hint(ConnectivityHint::Available {
        network,
        state: NetworkState {
            transport,
            validated,
            ..NetworkState::default()
        },
    })
    .unwrap();
}

/// A behaviour with Wi-Fi (validated or not) and validated 4G up.
fn wifi_and_lte(wifi_validated: bool) -> Behaviour<Discovery> {
    let mut b = behaviour();
    available(&mut b, WIFI, HostTransport::Wifi, wifi_validated);
    available(
        &mut b,
        LTE,
        HostTransport::Cellular(CellularGeneration::G4),
        true,
    );
    b
}

/// The media of the peer's dialable routes, best first.
fn media(b: &Behaviour<Discovery>, peer: &PeerId) -> Vec<(String, Medium)> {
    b.engine()
        .ranked_routes(peer, multidriver::scoring::Timestamp::ZERO)
        .into_iter()
        .map(|(addr, interface, _)| (addr.to_string(), b.interface_medium(interface)))
        .collect()
}

#[test]
fn a_public_route_follows_its_address_from_wifi_to_cellular() {
    let mut b = wifi_and_lte(true);
    let peer = PeerId::random();
    b.add_route(
        peer,
        "/ip4/203.0.113.9/udp/4001/quic-v1".parse().unwrap(),
        TTL,
    )
    .unwrap();
    b.connect(peer).unwrap();
    assert_eq!(
        media(&b, &peer),
        vec![("/ip4/203.0.113.9/udp/4001/quic-v1".to_owned(), Medium::Wifi)],
        "the default network carries it"
    );
    b.handle_hint(ConnectivityHint::Lost { network: WIFI })
        .unwrap();
    assert_eq!(
        media(&b, &peer),
        vec![(
            "/ip4/203.0.113.9/udp/4001/quic-v1".to_owned(),
            Medium::Cellular(CellularGeneration::G4)
        )],
        "the same address, now over cellular"
    );
    // The engine re-raced over cellular rather than giving up.
    assert_eq!(b.engine().attempts_in_flight_for(&peer), 1);
}

#[test]
fn a_going_network_is_left_before_it_goes() {
    let mut b = wifi_and_lte(true);
    let peer = PeerId::random();
    b.add_route(peer, "/ip4/203.0.113.9/tcp/4001".parse().unwrap(), TTL)
        .unwrap();
    b.handle_hint(ConnectivityHint::Losing { network: WIFI })
        .unwrap();
    assert_eq!(
        media(&b, &peer),
        vec![(
            "/ip4/203.0.113.9/tcp/4001".to_owned(),
            Medium::Cellular(CellularGeneration::G4)
        )],
        "a route over cellular exists before Wi-Fi goes"
    );
}

#[test]
fn lan_addresses_use_an_unvalidated_wifi() {
    // A LAN without uplink (a captive portal, a hotspot without internet).
    let mut b = wifi_and_lte(false);
    let peer = PeerId::random();
    b.add_route(peer, "/ip4/192.168.1.20/tcp/4001".parse().unwrap(), TTL)
        .unwrap();
    b.add_route(peer, "/ip4/203.0.113.9/tcp/4001".parse().unwrap(), TTL)
        .unwrap();
    let routes = media(&b, &peer);
    assert!(
        routes.contains(&("/ip4/192.168.1.20/tcp/4001".to_owned(), Medium::Wifi)),
        "{routes:?}"
    );
    assert!(
        routes.contains(&(
            "/ip4/203.0.113.9/tcp/4001".to_owned(),
            Medium::Cellular(CellularGeneration::G4)
        )),
        "internet routes take the validated network: {routes:?}"
    );
}

#[test]
fn a_lan_route_stays_on_a_going_wifi_while_internet_routes_leave() {
    let mut b = wifi_and_lte(true);
    let peer = PeerId::random();
    b.add_route(peer, "/ip4/192.168.1.20/tcp/4001".parse().unwrap(), TTL)
        .unwrap();
    b.add_route(peer, "/ip4/203.0.113.9/tcp/4001".parse().unwrap(), TTL)
        .unwrap();
    b.handle_hint(ConnectivityHint::Losing { network: WIFI })
        .unwrap();
    // A LAN address is not reached over cellular while the LAN is there:
    // moving it would make the engine "leave" Wi-Fi over Wi-Fi. It stays on
    // the going Wi-Fi (so it is not dialled now)…
    let lan = b
        .interface_for(&"/ip4/192.168.1.20/tcp/4001".parse().unwrap())
        .unwrap();
    assert_eq!(b.interface_medium(lan), Medium::Wifi);
    // …and the internet route is what the engine moves to.
    assert_eq!(
        media(&b, &peer),
        vec![(
            "/ip4/203.0.113.9/tcp/4001".to_owned(),
            Medium::Cellular(CellularGeneration::G4)
        )]
    );
}
