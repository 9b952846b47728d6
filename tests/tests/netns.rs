//! Network namespaces: two namespaces joined by a veth pair carry TCP and
//! multicast between threads that entered them, link changes and packet
//! drops cut the path, and every namespace is gone after its handle drops,
//! also after a panic. Each test is skipped, with the reason printed, where
//! namespaces cannot be made, and fails there under CI (`CI=true`).
#![cfg(target_os = "linux")]

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::mpsc::sync_channel;
use std::time::Duration;

use multidriver_tests::netns::{self, Netns, VethPair};
use multidriver_tests::skipped;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::time::timeout;

/// Generous bound on anything that should happen; only reached on failure.
const PATIENCE: Duration = Duration::from_secs(10);
const A_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);

/// Two namespaces named `prefix-…` joined by `ve0` (10.77.1.1 in `a`) and
/// `ve1` (10.77.1.2 in `b`).
fn pair(prefix: &str) -> (Netns, Netns, VethPair) {
    let a = Netns::create(prefix).unwrap();
    let b = Netns::create(prefix).unwrap();
    let veth = VethPair::connect(&a, "ve0", "10.77.1.1/24", &b, "ve1", "10.77.1.2/24").unwrap();
    (a, b, veth)
}

/// Starts a TCP echo server on `addr` inside `ns` that serves connections
/// until `stop` fires; returns once it listens.
fn echo_server(ns: &Netns, addr: SocketAddr) -> std::sync::mpsc::SyncSender<()> {
    let (ready_tx, ready_rx) = sync_channel(1);
    let (stop_tx, stop_rx) = sync_channel::<()>(1);
    ns.run_async(move || async move {
        let listener = TcpListener::bind(addr).await.unwrap();
        ready_tx.send(()).unwrap();
        let serve = async {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.into_split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                    let _ = w.shutdown().await;
                });
            }
        };
        let stop = tokio::task::spawn_blocking(move || stop_rx.recv_timeout(PATIENCE * 6));
        tokio::select! {
            () = serve => {}
            _ = stop => {}
        }
    })
    .unwrap();
    ready_rx
        .recv_timeout(PATIENCE)
        .expect("echo server listening");
    stop_tx
}

/// From inside `ns`, connects to `addr` within `limit`, sends a message and
/// returns the echo and the local address used.
fn echo_from(
    ns: &Netns,
    addr: SocketAddr,
    limit: Duration,
) -> Result<(Vec<u8>, SocketAddr), String> {
    ns.run_async(move || async move {
        let mut stream = match timeout(limit, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("connect: {e}")),
            Err(_) => return Err("connect timed out".to_owned()),
        };
        let local = stream.local_addr().unwrap();
        stream.write_all(b"hello across namespaces").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut echoed = Vec::new();
        timeout(PATIENCE, stream.read_to_end(&mut echoed))
            .await
            .map_err(|_| "echo timed out".to_owned())?
            .map_err(|e| format!("read: {e}"))?;
        Ok((echoed, local))
    })
    .unwrap()
    .join()
    .unwrap()
}

#[test]
fn tcp_echo_crosses_the_veth_and_namespaces_vanish_on_drop() {
    if skipped(netns::available()) {
        return;
    }
    let (a, b, veth) = pair("mdtecho");
    let names = [a.name().to_owned(), b.name().to_owned()];
    assert_ne!(names[0], names[1]);
    let listed = netns::list().unwrap();
    assert!(names.iter().all(|n| listed.contains(n)), "{listed:?}");
    assert_eq!((veth.a_if(), veth.b_if()), ("ve0", "ve1"));

    let server = SocketAddr::V4(SocketAddrV4::new(A_IP, 7000));
    let _stop = echo_server(&a, server);
    let (echoed, local) = echo_from(&b, server, PATIENCE).unwrap();
    assert_eq!(echoed, b"hello across namespaces");
    assert_eq!(local.ip(), B_IP);

    // The addresses exist only inside the namespaces.
    assert!(std::net::TcpListener::bind((A_IP, 0)).is_err());

    drop(a);
    drop(b);
    let listed = netns::list().unwrap();
    assert!(names.iter().all(|n| !listed.contains(n)), "{listed:?}");
}

#[test]
fn namespaces_are_deleted_when_a_test_panics() {
    if skipped(netns::available()) {
        return;
    }
    let (name_tx, name_rx) = sync_channel(1);
    let outcome = std::panic::catch_unwind(move || {
        let ns = Netns::create("mdtpanic").unwrap();
        name_tx.send(ns.name().to_owned()).unwrap();
        // Unwinds like a failed assertion, without printing a panic message.
        std::panic::resume_unwind(Box::new(format!("a test fails while {ns} exists")));
    });
    assert!(outcome.is_err());
    let name = name_rx.recv().unwrap();
    assert!(!netns::list().unwrap().contains(&name));
}

#[test]
fn threads_run_inside_the_namespace() {
    if skipped(netns::available()) {
        return;
    }
    let ns = Netns::create("mdtrun").unwrap();
    // A fresh namespace has only the loopback interface.
    let links = ns.ip(&["-o", "link", "show"]).unwrap();
    assert_eq!(links.lines().count(), 1, "{links}");
    std::thread::scope(|scope| {
        let names = ns
            .run_scoped(scope, || {
                std::fs::read_to_string("/proc/thread-self/net/dev")
                    .unwrap()
                    .lines()
                    .skip(2)
                    .filter_map(|line| line.split(':').next().map(|n| n.trim().to_owned()))
                    .collect::<Vec<_>>()
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(names, ["lo"]);
    });
    assert!(Netns::create("").is_err());
    assert!(Netns::create("has space").is_err());
}

#[test]
fn link_down_and_address_changes_cut_and_restore_the_path() {
    if skipped(netns::available()) {
        return;
    }
    let (a, b, veth) = pair("mdtlink");
    let server = SocketAddr::V4(SocketAddrV4::new(A_IP, 7001));
    let _stop = echo_server(&a, server);
    let limit = Duration::from_millis(500);
    echo_from(&b, server, PATIENCE).unwrap();

    netns::set_link(&b, "ve1", false).unwrap();
    assert!(echo_from(&b, server, limit).is_err());
    netns::set_link(&b, "ve1", true).unwrap();
    echo_from(&b, server, PATIENCE).unwrap();

    veth.set_up(false).unwrap();
    assert!(echo_from(&b, server, limit).is_err());
    veth.set_up(true).unwrap();
    echo_from(&b, server, PATIENCE).unwrap();

    // Move `b` to another address on the same subnet: the new one is used.
    netns::del_addr(&b, "ve1", "10.77.1.2/24").unwrap();
    assert!(echo_from(&b, server, limit).is_err());
    netns::add_addr(&b, "ve1", "10.77.1.3/24").unwrap();
    let (_, local) = echo_from(&b, server, PATIENCE).unwrap();
    assert_eq!(local.ip(), Ipv4Addr::new(10, 77, 1, 3));

    veth.delete().unwrap();
    assert!(a.ip(&["link", "show", "ve0"]).is_err());
}

#[test]
fn dropping_packets_keeps_the_link_up_but_silences_it() {
    if skipped(netns::drop_available()) {
        return;
    }
    let (a, b, veth) = pair("mdtdrop");
    let server = SocketAddr::V4(SocketAddrV4::new(A_IP, 7002));
    let _stop = echo_server(&a, server);
    echo_from(&b, server, PATIENCE).unwrap();

    veth.set_drop(true).unwrap();
    let link = a.ip(&["link", "show", "ve0"]).unwrap();
    assert!(link.contains("state UP"), "{link}");
    let err = echo_from(&b, server, Duration::from_millis(500)).unwrap_err();
    assert_eq!(err, "connect timed out");

    veth.set_drop(false).unwrap();
    // Undoing twice is harmless.
    veth.set_drop(false).unwrap();
    echo_from(&b, server, PATIENCE).unwrap();

    // One end only: what `b` sends is lost, so its dial times out too.
    netns::set_drop(&b, "ve1", true).unwrap();
    let err = echo_from(&b, server, Duration::from_millis(500)).unwrap_err();
    assert_eq!(err, "connect timed out");
}

#[test]
fn multicast_crosses_the_veth_with_a_multicast_route() {
    if skipped(netns::available()) {
        return;
    }
    let (a, b, _veth) = pair("mdtmcast");
    netns::add_route(&a, "224.0.0.0/4", "ve0").unwrap();
    netns::add_route(&b, "224.0.0.0/4", "ve1").unwrap();
    let routes = b.ip(&["route", "show"]).unwrap();
    assert!(routes.contains("224.0.0.0/4 dev ve1"), "{routes}");

    // The mDNS group and port.
    let group = Ipv4Addr::new(224, 0, 0, 251);
    let (ready_tx, ready_rx) = sync_channel(1);
    let receiver = a
        .run_async(move || async move {
            let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 5353))
                .await
                .unwrap();
            socket.join_multicast_v4(group, A_IP).unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = timeout(PATIENCE, socket.recv_from(&mut buf))
                .await
                .expect("multicast in time")
                .unwrap();
            (buf[..n].to_vec(), from)
        })
        .unwrap();
    ready_rx.recv_timeout(PATIENCE).unwrap();
    b.run_async(move || async move {
        let socket = UdpSocket::bind((B_IP, 0)).await.unwrap();
        socket.send_to(b"query", (group, 5353)).await.unwrap();
    })
    .unwrap()
    .join()
    .unwrap();
    let (datagram, from) = receiver.join().unwrap();
    assert_eq!(datagram, b"query");
    assert_eq!(from.ip(), B_IP);
}
