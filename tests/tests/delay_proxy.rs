//! The delay proxies: what goes through arrives intact, in order and no
//! sooner than the delay allows; blackhole and refuse cut the path.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use multidriver_tests::delay_proxy::{DelayProxy, ProxyMode, UdpDelayProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::{Instant, timeout};

const DELAY: Duration = Duration::from_millis(150);
/// Generous bound on anything that should happen; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(10);

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A TCP echo server on loopback; returns its address and a count of the
/// connections it accepted.
async fn tcp_echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind(any_port()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (mut r, mut w) = stream.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, accepted)
}

/// A UDP echo server on loopback.
async fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind(any_port()).await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    addr
}

async fn round_trip(stream: &mut TcpStream, message: &[u8]) -> Vec<u8> {
    stream.write_all(message).await.unwrap();
    let mut reply = vec![0u8; message.len()];
    timeout(PATIENCE, stream.read_exact(&mut reply))
        .await
        .expect("reply in time")
        .unwrap();
    reply
}

#[tokio::test]
async fn tcp_round_trip_takes_twice_the_delay_and_keeps_bytes_in_order() {
    let (echo, _) = tcp_echo().await;
    let proxy = DelayProxy::start(any_port(), echo, DELAY).await.unwrap();
    assert_eq!(proxy.delay(), DELAY);
    assert_eq!(proxy.mode(), ProxyMode::Forward);

    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    let started = Instant::now();
    assert_eq!(round_trip(&mut stream, b"ping").await, b"ping");
    let elapsed = started.elapsed();
    assert!(elapsed >= 2 * DELAY, "round trip took {elapsed:?}");
    assert_eq!(proxy.accepted(), 1);

    // Many small writes, read back concurrently: every byte, in order.
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (mut r, mut w) = stream.into_split();
    let to_send = payload.clone();
    let writer = tokio::spawn(async move {
        for piece in to_send.chunks(1_000) {
            w.write_all(piece).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut echoed = Vec::new();
    timeout(PATIENCE, r.read_to_end(&mut echoed))
        .await
        .expect("echo in time")
        .unwrap();
    writer.await.unwrap();
    assert_eq!(echoed.len(), payload.len());
    assert!(echoed == payload, "bytes changed or reordered");
}

#[tokio::test]
async fn tcp_delay_can_change_while_running() {
    let (echo, _) = tcp_echo().await;
    let proxy = DelayProxy::start(any_port(), echo, Duration::ZERO)
        .await
        .unwrap();
    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"fast").await, b"fast");

    proxy.set_delay(DELAY);
    let started = Instant::now();
    assert_eq!(round_trip(&mut stream, b"slow").await, b"slow");
    assert!(started.elapsed() >= 2 * DELAY);
}

#[tokio::test]
async fn tcp_blackhole_accepts_but_never_answers() {
    let (echo, echo_accepted) = tcp_echo().await;
    let proxy = DelayProxy::start(any_port(), echo, DELAY).await.unwrap();
    proxy.set_mode(ProxyMode::Blackhole);

    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    stream.write_all(b"anyone there?").await.unwrap();
    let mut buf = [0u8; 16];
    let read = timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
    assert!(read.is_err(), "blackhole answered: {read:?}");
    assert_eq!(proxy.accepted(), 1);
    assert_eq!(echo_accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn tcp_blackhole_cuts_a_running_connection_silently() {
    let (echo, _) = tcp_echo().await;
    let proxy = DelayProxy::start(any_port(), echo, Duration::from_millis(20))
        .await
        .unwrap();
    let mut stream = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(round_trip(&mut stream, b"before").await, b"before");

    proxy.set_mode(ProxyMode::Blackhole);
    stream.write_all(b"during").await.unwrap();
    let mut buf = [0u8; 16];
    let read = timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
    assert!(read.is_err(), "blackhole answered: {read:?}");
}

/// Connects until the proxy has acted on a mode change; bounded.
async fn connect_until(addr: SocketAddr, refused: bool) -> io::Result<TcpStream> {
    let mut last = None;
    for _ in 0..100 {
        match TcpStream::connect(addr).await {
            Err(e) if refused && e.kind() == io::ErrorKind::ConnectionRefused => return Err(e),
            Ok(s) if !refused => return Ok(s),
            other => last = Some(other),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("mode change not seen; last attempt: {last:?}");
}

#[tokio::test]
async fn tcp_refuse_rejects_dials_and_forward_restores_them() {
    let (echo, _) = tcp_echo().await;
    let proxy = DelayProxy::start(any_port(), echo, Duration::from_millis(10))
        .await
        .unwrap();
    let mut open = TcpStream::connect(proxy.local_addr()).await.unwrap();
    assert_eq!(round_trip(&mut open, b"open").await, b"open");

    proxy.set_mode(ProxyMode::Refuse);
    let refused = connect_until(proxy.local_addr(), true).await;
    assert_eq!(
        refused.unwrap_err().kind(),
        io::ErrorKind::ConnectionRefused
    );
    // The relayed connection was closed: end of stream or a reset.
    let mut buf = [0u8; 4];
    let read = timeout(PATIENCE, open.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "still open: {read:?}");

    proxy.set_mode(ProxyMode::Forward);
    let mut again = connect_until(proxy.local_addr(), false).await.unwrap();
    assert_eq!(round_trip(&mut again, b"back").await, b"back");
}

#[tokio::test]
async fn tcp_proxy_stops_when_dropped() {
    let (echo, _) = tcp_echo().await;
    let proxy = DelayProxy::start(any_port(), echo, Duration::from_millis(10))
        .await
        .unwrap();
    let addr = proxy.local_addr();
    let mut open = TcpStream::connect(addr).await.unwrap();
    assert_eq!(round_trip(&mut open, b"open").await, b"open");
    drop(proxy);

    let mut buf = [0u8; 4];
    let read = timeout(PATIENCE, open.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "still open: {read:?}");
    connect_until(addr, true).await.unwrap_err();
}

#[tokio::test]
async fn udp_datagrams_arrive_delayed_intact_and_in_order() {
    let echo = udp_echo().await;
    let proxy = UdpDelayProxy::start(any_port(), echo, DELAY).await.unwrap();
    let client = UdpSocket::bind(any_port()).await.unwrap();
    client.connect(proxy.local_addr()).await.unwrap();

    let started = Instant::now();
    for i in 0..20u32 {
        let mut datagram = i.to_be_bytes().to_vec();
        datagram.resize(1_200, i as u8);
        client.send(&datagram).await.unwrap();
    }
    let mut buf = vec![0u8; 2_048];
    for i in 0..20u32 {
        let n = timeout(PATIENCE, client.recv(&mut buf))
            .await
            .expect("echo in time")
            .unwrap();
        if i == 0 {
            let elapsed = started.elapsed();
            assert!(elapsed >= 2 * DELAY, "round trip took {elapsed:?}");
        }
        assert_eq!(n, 1_200);
        assert_eq!(buf[..4], i.to_be_bytes(), "datagram {i} out of order");
        assert!(
            buf[4..n].iter().all(|&b| b == i as u8),
            "datagram {i} changed"
        );
    }
    assert_eq!(proxy.sessions(), 1);
}

#[tokio::test]
async fn udp_sessions_are_kept_apart_per_client() {
    let echo = udp_echo().await;
    let proxy = UdpDelayProxy::start(any_port(), echo, Duration::from_millis(20))
        .await
        .unwrap();
    let one = UdpSocket::bind(any_port()).await.unwrap();
    let two = UdpSocket::bind(any_port()).await.unwrap();
    one.send_to(b"one", proxy.local_addr()).await.unwrap();
    two.send_to(b"two", proxy.local_addr()).await.unwrap();
    let mut buf = [0u8; 8];
    for (socket, expected) in [(&one, b"one"), (&two, b"two")] {
        let (n, from) = timeout(PATIENCE, socket.recv_from(&mut buf))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(&buf[..n], expected);
        assert_eq!(from, proxy.local_addr());
    }
    assert_eq!(proxy.sessions(), 2);
}

#[tokio::test]
async fn udp_blackhole_drops_everything() {
    let echo = udp_echo().await;
    let proxy = UdpDelayProxy::start(any_port(), echo, Duration::from_millis(20))
        .await
        .unwrap();
    let client = UdpSocket::bind(any_port()).await.unwrap();
    client.connect(proxy.local_addr()).await.unwrap();
    client.send(b"hello").await.unwrap();
    let mut buf = [0u8; 8];
    timeout(PATIENCE, client.recv(&mut buf))
        .await
        .expect("echo")
        .unwrap();

    proxy.set_blackhole(true);
    assert!(proxy.blackhole());
    client.send(b"lost").await.unwrap();
    let read = timeout(Duration::from_millis(500), client.recv(&mut buf)).await;
    assert!(read.is_err(), "blackhole answered: {read:?}");

    proxy.set_blackhole(false);
    client.send(b"again").await.unwrap();
    let n = timeout(PATIENCE, client.recv(&mut buf))
        .await
        .expect("echo")
        .unwrap();
    assert_eq!(&buf[..n], b"again");
}
