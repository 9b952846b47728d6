//! The BLE-style transport: real libp2p swarms (Noise, yamux, ping) over
//! the in-process ether's data links, and the links' shaping.
//!
//! Timing assertions are lower bounds that follow from the configured
//! latency and rate (behaviour, not performance); every wait is bounded.

use std::time::{Duration, Instant};

use libp2p::core::transport::TransportError;
use libp2p::futures::StreamExt;
use libp2p::futures::io::{AsyncReadExt, AsyncWriteExt};
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, ping};
use multidriver_routing::ble::{self, BleTransport};
use multidriver_routing::proximity::{Ether, EtherConfig, InProcessRadio};
use tokio::time::timeout;

type Node = Swarm<ping::Behaviour>;

fn node(radio: &InProcessRadio) -> Node {
    let transport = BleTransport::new(radio);
    SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
        .with_tokio()
        .with_other_transport(|key| ble::upgraded(transport, key))
        .expect("transport")
        .with_behaviour(|_| {
            ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(Duration::from_millis(300))
                    .with_timeout(Duration::from_secs(10)),
            )
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Listens on `on` and returns the address the swarm reports.
async fn listen(node: &mut Node, on: Multiaddr) -> Multiaddr {
    node.listen_on(on).expect("listen");
    timeout(Duration::from_secs(5), async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = node.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .expect("listening within 5 s")
}

/// Runs both swarms until `pick` returns something for an event of the
/// first (`a`); `b` runs along. Panics after `bound`.
async fn until<T>(
    a: &mut Node,
    b: &mut Node,
    bound: Duration,
    mut pick: impl FnMut(SwarmEvent<ping::Event>) -> Option<T>,
) -> T {
    timeout(bound, async {
        loop {
            tokio::select! {
                event = a.select_next_some() => if let Some(t) = pick(event) {
                    return t;
                },
                _ = b.select_next_some() => {},
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not done within {bound:?}"))
}

/// Two swarms 5 m apart, `a` connected to `b`; returns `b`'s peer id.
async fn connected(ra: &InProcessRadio, rb: &InProcessRadio) -> (Node, Node, PeerId) {
    let (mut a, mut b) = (node(ra), node(rb));
    let addr = listen(&mut b, ble::address(rb.station())).await;
    let peer_b = *b.local_peer_id();
    a.dial(addr).expect("dial");
    until(&mut a, &mut b, Duration::from_secs(20), |e| match e {
        SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == peer_b => Some(()),
        SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial failed: {error}"),
        _ => None,
    })
    .await;
    (a, b, peer_b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_crosses_a_link_with_at_least_two_latencies_of_rtt() {
    let ether = Ether::new(EtherConfig::default());
    let ra = ether.radio([0.0, 0.0]).unwrap();
    let rb = ether.radio([5.0, 0.0]).unwrap();
    let (mut a, mut b) = (node(&ra), node(&rb));
    // `/memory/0` means "my station".
    let addr = listen(&mut b, "/memory/0".parse().unwrap()).await;
    assert_eq!(addr, ble::address(rb.station()));
    let peer_b = *b.local_peer_id();
    a.dial(addr).expect("dial");
    let rtt = until(&mut a, &mut b, Duration::from_secs(20), |e| match e {
        SwarmEvent::Behaviour(ping::Event {
            peer,
            result: Ok(rtt),
            ..
        }) if peer == peer_b => Some(rtt),
        SwarmEvent::Behaviour(ping::Event { result: Err(e), .. }) => panic!("ping failed: {e}"),
        SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial failed: {error}"),
        _ => None,
    })
    .await;
    let latency = EtherConfig::default().link_latency();
    assert!(rtt >= 2 * latency, "rtt {rtt:?} below 2 × {latency:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stations_out_of_range_or_not_listening_cannot_be_dialled() {
    let ether = Ether::new(EtherConfig::default());
    let ra = ether.radio([0.0, 0.0]).unwrap();
    let rb = ether.radio([5.0, 0.0]).unwrap();
    let rc = ether.radio([100.0, 0.0]).unwrap();
    let (mut a, mut b, mut c) = (node(&ra), node(&rb), node(&rc));
    let far = listen(&mut c, ble::address(rc.station())).await;

    for (addr, why) in [
        (far, "out of range"),
        (ble::address(rb.station()), "not listening"),
        (ble::address(99), "no station 99"),
    ] {
        a.dial(addr.clone()).expect("dial starts");
        let error = until(&mut a, &mut b, Duration::from_secs(5), |e| match e {
            SwarmEvent::OutgoingConnectionError { error, .. } => Some(error.to_string()),
            SwarmEvent::ConnectionEstablished { .. } => panic!("connected to {addr}"),
            _ => None,
        })
        .await;
        assert!(error.contains(why), "dialling {addr}: {error}");
    }
    assert_eq!(ether.links(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listening_on_another_station_is_refused() {
    let ether = Ether::new(EtherConfig::default());
    let ra = ether.radio([0.0, 0.0]).unwrap();
    let rb = ether.radio([5.0, 0.0]).unwrap();
    let mut a = node(&ra);
    let error = a
        .listen_on(ble::address(rb.station()))
        .expect_err("not a's station");
    let TransportError::Other(error) = error else {
        panic!("{error:?}");
    };
    assert!(
        error
            .to_string()
            .contains("cannot listen on station 2: this transport's station is 1"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_out_of_range_closes_the_connection() {
    let ether = Ether::new(EtherConfig::default());
    let mut ra = ether.radio([0.0, 0.0]).unwrap();
    let rb = ether.radio([5.0, 0.0]).unwrap();
    let (mut a, mut b, peer_b) = connected(&ra, &rb).await;
    ra.move_to([100.0, 0.0]);
    until(&mut a, &mut b, Duration::from_secs(5), |e| match e {
        SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == peer_b => Some(()),
        _ => None,
    })
    .await;
    assert!(!a.is_connected(&peer_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_the_radio_off_closes_the_connection() {
    let ether = Ether::new(EtherConfig::default());
    let ra = ether.radio([0.0, 0.0]).unwrap();
    let mut rb = ether.radio([5.0, 0.0]).unwrap();
    let (mut a, mut b, peer_b) = connected(&ra, &rb).await;
    rb.set_on(false);
    until(&mut a, &mut b, Duration::from_secs(5), |e| match e {
        SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == peer_b => Some(()),
        _ => None,
    })
    .await;
}

/// A raw link from `a` to `b`: (dialer's end, listener's end).
async fn link(
    a: &InProcessRadio,
    b: &InProcessRadio,
) -> (
    multidriver_routing::proximity::Link,
    multidriver_routing::proximity::Link,
    multidriver_routing::proximity::LinkListener,
) {
    let mut listener = b.listen().expect("listen");
    let dialer = a.connect(b.station()).expect("connect");
    let accepted = timeout(Duration::from_secs(1), listener.accept())
        .await
        .expect("accepted at once")
        .expect("accept");
    (dialer, accepted, listener)
}

#[tokio::test]
async fn bytes_arrive_in_order_and_intact_both_ways() {
    let ether = Ether::new(
        EtherConfig::default()
            .with_link_rate_bps(1_000_000)
            .with_link_buffer_bytes(1000),
    );
    let ra = ether.radio([0.0, 0.0]).unwrap();
    let rb = ether.radio([5.0, 0.0]).unwrap();
    let (x, y, _listener) = link(&ra, &rb).await;
    let ((mut x_in, mut x_out), (mut y_in, mut y_out)) = (x.split(), y.split());
    // More than the buffer holds, so writers wait for readers; each side
    // reads while it writes.
    let there: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let back: Vec<u8> = (0..15_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let (mut got_there, mut got_back) = (Vec::new(), Vec::new());
    let (sent_x, sent_y, read_x, read_y) = timeout(Duration::from_secs(10), async {
        tokio::join!(
            async {
                x_out.write_all(&there).await?;
                x_out.close().await
            },
            async {
                y_out.write_all(&back).await?;
                y_out.close().await
            },
            x_in.read_to_end(&mut got_back),
            y_in.read_to_end(&mut got_there),
        )
    })
    .await
    .expect("within 10 s");
    sent_x.expect("x writes");
    sent_y.expect("y writes");
    read_x.expect("x reads");
    read_y.expect("y reads");
    assert_eq!(got_there, there);
    assert_eq!(got_back, back);
}

#[tokio::test]
async fn ten_kilobytes_at_100_kbit_s_take_at_least_0_8_s() {
    let ether = Ether::new(EtherConfig::default());
    assert_eq!(EtherConfig::default().link_rate_bps(), 100_000);
    let ra = ether.radio([0.0, 0.0]).unwrap();
    let rb = ether.radio([5.0, 0.0]).unwrap();
    let (mut x, mut y, _listener) = link(&ra, &rb).await;
    let data = vec![0x5a; 10_000];
    let started = Instant::now();
    let got = timeout(Duration::from_secs(10), async {
        x.write_all(&data).await.expect("write");
        let mut got = vec![0; data.len()];
        y.read_exact(&mut got).await.expect("read");
        got
    })
    .await
    .expect("within 10 s");
    let took = started.elapsed();
    assert_eq!(got, data);
    assert!(took >= Duration::from_millis(800), "took {took:?}");
}

#[tokio::test]
async fn a_reader_waiting_on_a_link_sees_it_break() {
    let ether = Ether::new(EtherConfig::default());
    let ra = ether.radio([0.0, 0.0]).unwrap();
    let rb = ether.radio([5.0, 0.0]).unwrap();
    let (_x, mut y, _listener) = link(&ra, &rb).await;
    let reader = tokio::spawn(async move {
        let mut buf = [0; 16];
        y.read(&mut buf).await
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(ra);
    let result = timeout(Duration::from_secs(2), reader)
        .await
        .expect("woken within 2 s")
        .expect("task");
    let error = result.expect_err("broken");
    assert!(error.to_string().contains("left the ether"), "{error}");
}
