//! Real libp2p swarms built by `build_swarm`, over TCP and QUIC on loopback.

use std::time::Duration;

use libp2p::core::ConnectedPoint;
use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm, ping};
use multidriver_transports::stack::{Dns, StackConfig, build_swarm};

fn swarm(dns: Dns) -> Swarm<ping::Behaviour> {
    // With WebRTC in the build the app installs rustls's provider
    // (build_swarm installs none).
    #[cfg(feature = "webrtc")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = StackConfig::default().with_dns(dns);
    build_swarm(Keypair::generate_ed25519(), &config, |_| {
        ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_millis(200)))
    })
    .expect("the stack builds")
}

async fn listen(s: &mut Swarm<ping::Behaviour>, on: &str) -> Multiaddr {
    s.listen_on(on.parse().unwrap()).unwrap();
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = s.select_next_some().await {
            return address;
        }
    }
}

/// Dials `listener` from `dialer` and returns the address the dialer
/// connected to and the first ping RTT.
async fn connect_and_ping(
    dialer: &mut Swarm<ping::Behaviour>,
    listener: &mut Swarm<ping::Behaviour>,
    addr: Multiaddr,
) -> (Multiaddr, Duration) {
    dialer.dial(addr).unwrap();
    let mut remote = None;
    // Bounded: the whole exchange must finish within 10 s.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            tokio::select! {
                _ = listener.select_next_some() => {}
                ev = dialer.select_next_some() => match ev {
                    SwarmEvent::ConnectionEstablished { endpoint: ConnectedPoint::Dialer { address, .. }, .. } => {
                        remote = Some(address);
                    }
                    SwarmEvent::Behaviour(ping::Event { result: Ok(rtt), .. }) => {
                        return (remote.clone().expect("connected before ping"), rtt);
                    }
                    SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial failed: {error}"),
                    _ => {}
                },
            }
        }
    })
    .await
    .expect("connected and pinged within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_quic_swarms_connect_on_loopback() {
    for (listen_on, transport) in [
        ("/ip4/127.0.0.1/tcp/0", "tcp"),
        ("/ip4/127.0.0.1/udp/0/quic-v1", "quic-v1"),
    ] {
        let mut a = swarm(Dns::Disabled);
        let mut b = swarm(Dns::Disabled);
        let addr = listen(&mut a, listen_on).await;
        let (connected, rtt) = connect_and_ping(&mut b, &mut a, addr.clone()).await;
        assert_eq!(connected, addr);
        assert!(connected.to_string().contains(transport), "{connected}");
        assert!(rtt < Duration::from_secs(1), "{rtt:?} on loopback");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dns_choice_builds_without_reading_the_system_configuration() {
    // Building must not need /etc/resolv.conf (absent on Android and iOS).
    for dns in [Dns::Cloudflare, Dns::Google, Dns::Quad9, Dns::Disabled] {
        let mut a = swarm(dns.clone());
        let mut b = swarm(dns);
        let addr = listen(&mut a, "/ip4/127.0.0.1/tcp/0").await;
        connect_and_ping(&mut b, &mut a, addr).await;
    }
}

#[cfg(feature = "webrtc")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_direct_swarms_connect_on_loopback() {
    let mut a = swarm(Dns::Disabled);
    let mut b = swarm(Dns::Disabled);
    let addr = listen(&mut a, "/ip4/127.0.0.1/udp/0/webrtc-direct").await;
    // The listen address carries the certificate hash the dialer checks.
    assert!(addr.to_string().contains("/certhash/"), "{addr}");
    // libp2p-webrtc dials through a listener's UDP socket: the dialer
    // listens too.
    listen(&mut b, "/ip4/127.0.0.1/udp/0/webrtc-direct").await;
    let (connected, rtt) = connect_and_ping(&mut b, &mut a, addr.clone()).await;
    assert_eq!(connected, addr);
    assert!(rtt < Duration::from_secs(1), "{rtt:?} on loopback");
}
