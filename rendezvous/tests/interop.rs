//! Stock rust-libp2p rendezvous clients against our point, over real TCP
//! and QUIC on loopback.

use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::rendezvous::{self, Namespace};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder, noise, tcp, yamux};
use multidriver_rendezvous::protocol as wire;
use multidriver_rendezvous::{Config, Server, ServerEvent};
use tokio::sync::{mpsc, oneshot};

/// Every wait in these tests ends by then.
const DEADLINE: Duration = Duration::from_secs(20);

struct Point {
    id: PeerId,
    tcp: Multiaddr,
    quic: Multiaddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), multidriver_rendezvous::Error>>,
    _dir: TempDir,
}

impl Point {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap().unwrap();
    }
}

struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "md-rv-{tag}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_suffix() -> u64 {
    u64::from_le_bytes(PeerId::random().to_bytes()[2..10].try_into().unwrap())
}

async fn start_point(tag: &str) -> Point {
    start_point_with(tag, |_| {}).await
}

async fn start_point_with(tag: &str, configure: impl FnOnce(&mut Config)) -> Point {
    let dir = TempDir::new(tag);
    let mut config = Config {
        db: dir.0.join("rv.db"),
        listen: vec![
            "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
            "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap(),
        ],
        ..Config::default()
    };
    configure(&mut config);
    let server = Server::new(config, Keypair::generate_ed25519(), None).unwrap();
    let id = server.peer_id();
    let (addrs_tx, mut addrs) = mpsc::channel(8);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(
        async move {
            let _ = stopped.await;
        },
        move |e| {
            if let ServerEvent::Listening(a) = e {
                let _ = addrs_tx.try_send(a);
            }
        },
    ));
    let (mut tcp, mut quic) = (None, None);
    while tcp.is_none() || quic.is_none() {
        let a: Multiaddr = tokio::time::timeout(DEADLINE, addrs.recv())
            .await
            .unwrap()
            .unwrap();
        if a.to_string().contains("/quic-v1") {
            quic = Some(a);
        } else {
            tcp = Some(a);
        }
    }
    Point {
        id,
        tcp: tcp.unwrap(),
        quic: quic.unwrap(),
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

fn client() -> Swarm<rendezvous::client::Behaviour> {
    let mut swarm = SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_quic()
        .with_behaviour(|key| rendezvous::client::Behaviour::new(key.clone()))
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build();
    // The record needs an address; any will do for the point.
    swarm.add_external_address("/ip4/127.0.0.1/tcp/9".parse().unwrap());
    swarm
}

/// Dials the point and waits for the connection.
async fn connect<B: NetworkBehaviour>(swarm: &mut Swarm<B>, point: &Multiaddr) {
    swarm.dial(point.clone()).unwrap();
    tokio::time::timeout(DEADLINE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => return,
                SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial: {error}"),
                _ => {}
            }
        }
    })
    .await
    .expect("connected in time");
}

/// The next rendezvous event.
async fn next(swarm: &mut Swarm<rendezvous::client::Behaviour>) -> rendezvous::client::Event {
    tokio::time::timeout(DEADLINE, async {
        loop {
            if let SwarmEvent::Behaviour(e) = swarm.select_next_some().await {
                return e;
            }
        }
    })
    .await
    .expect("a rendezvous event in time")
}

fn ns(s: &str) -> Namespace {
    Namespace::new(s.to_owned()).unwrap()
}

async fn interop_over(point: &Point, addr: &Multiaddr) {
    let mut a = client();
    let mut b = client();
    connect(&mut a, addr).await;
    connect(&mut b, addr).await;

    a.behaviour_mut()
        .register(ns("chat"), point.id, None)
        .unwrap();
    match next(&mut a).await {
        rendezvous::client::Event::Registered { ttl, namespace, .. } => {
            assert_eq!(ttl, 7200);
            assert_eq!(namespace, ns("chat"));
        }
        other => panic!("expected Registered, got {other:?}"),
    }

    b.behaviour_mut()
        .discover(Some(ns("chat")), None, None, point.id);
    let cookie = match next(&mut b).await {
        rendezvous::client::Event::Discovered {
            registrations,
            cookie,
            ..
        } => {
            assert_eq!(registrations.len(), 1);
            assert_eq!(registrations[0].record.peer_id(), *a.local_peer_id());
            assert_eq!(
                registrations[0].record.addresses(),
                ["/ip4/127.0.0.1/tcp/9".parse::<Multiaddr>().unwrap()]
            );
            assert_eq!(cookie.namespace(), Some(&ns("chat")));
            cookie
        }
        other => panic!("expected Discovered, got {other:?}"),
    };
    // The cookie carries on: nothing new.
    b.behaviour_mut()
        .discover(Some(ns("chat")), Some(cookie), None, point.id);
    match next(&mut b).await {
        rendezvous::client::Event::Discovered { registrations, .. } => {
            assert!(registrations.is_empty());
        }
        other => panic!("expected Discovered, got {other:?}"),
    }

    // A TTL under the minimum is refused with the protocol's error.
    a.behaviour_mut()
        .register(ns("short"), point.id, Some(60))
        .unwrap();
    match next(&mut a).await {
        rendezvous::client::Event::RegisterFailed { error, .. } => {
            assert_eq!(error, rendezvous::ErrorCode::InvalidTtl);
        }
        other => panic!("expected RegisterFailed, got {other:?}"),
    }

    // Unregistering removes it. The stock client expects no answer, so
    // wait until a fresh discover no longer shows it.
    a.behaviour_mut().unregister(ns("chat"), point.id);
    let gone = tokio::time::timeout(DEADLINE, async {
        loop {
            b.behaviour_mut().discover(Some(ns("chat")), None, None, point.id);
            tokio::select! {
                e = next(&mut b) => match e {
                    rendezvous::client::Event::Discovered { registrations, .. } if registrations.is_empty() => return,
                    rendezvous::client::Event::Discovered { .. } => {}
                    other => panic!("expected Discovered, got {other:?}"),
                },
                _ = a.select_next_some() => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(gone.is_ok(), "unregistration took effect");
}

#[tokio::test]
async fn stock_clients_register_discover_and_unregister_over_tcp() {
    let point = start_point("tcp").await;
    interop_over(&point, &point.tcp.clone()).await;
    point.stop().await;
}

#[tokio::test]
async fn stock_clients_register_discover_and_unregister_over_quic() {
    let point = start_point("quic").await;
    interop_over(&point, &point.quic.clone()).await;
    point.stop().await;
}

/// A codec that writes raw bytes and reads whatever comes back, or, with
/// `stall`, never reads the answer.
#[derive(Clone, Default)]
struct Raw {
    stall: bool,
}

impl request_response::Codec for Raw {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        unreachable!("outbound only")
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        if self.stall {
            return futures::future::pending().await;
        }
        let mut buf = Vec::new();
        futures::AsyncReadExt::read_to_end(&mut futures::AsyncReadExt::take(io, 1 << 20), &mut buf)
            .await?;
        Ok(buf)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        futures::AsyncWriteExt::write_all(io, &req).await?;
        futures::AsyncWriteExt::close(io).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        unreachable!("outbound only")
    }
}

/// A client over TCP that sends requests with `codec` on the rendezvous
/// protocol: raw bytes ([`Raw`]) or any message (our codec).
fn outbound_client<C>(
    key: Keypair,
    codec: C,
    timeout: Duration,
) -> Swarm<request_response::Behaviour<C>>
where
    C: request_response::Codec<Protocol = StreamProtocol> + Clone + Send + 'static,
{
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                codec,
                [(wire::PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(timeout),
            )
        })
        .unwrap()
        .build()
}

/// A client writing raw bytes over TCP (see [`Raw`]).
fn raw_client(stall: bool) -> Swarm<request_response::Behaviour<Raw>> {
    outbound_client(Keypair::generate_ed25519(), Raw { stall }, DEADLINE * 3)
}

#[tokio::test]
async fn garbage_streams_are_dropped_and_the_point_keeps_serving() {
    let point = start_point("garbage").await;
    let mut raw = raw_client(false);
    connect(&mut raw, &point.tcp).await;
    let garbage: Vec<Vec<u8>> = vec![
        // Not protobuf.
        vec![5, 0xff, 0xff, 0xff, 0xff, 0xff],
        // A length prefix of 2 MiB.
        vec![0x80, 0x80, 0x80, 0x01],
        // A length prefix that never ends.
        vec![0xff; 16],
        // Truncated: says 10 bytes, sends 2.
        vec![10, 8, 0],
        // Valid protobuf, a DISCOVER_RESPONSE: not a request.
        vec![2, 8, 4],
    ];
    let n = garbage.len();
    for g in garbage {
        raw.behaviour_mut().send_request(&point.id, g);
    }
    // Each stream ends without an answer, and the connection survives.
    let mut ended = 0;
    tokio::time::timeout(DEADLINE, async {
        while ended < n {
            match raw.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => {
                    ended += 1
                }
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => {
                    assert!(response.is_empty(), "no answer to garbage: {response:?}");
                    ended += 1;
                }
                SwarmEvent::ConnectionClosed { .. } => panic!("the point closed the connection"),
                _ => {}
            }
        }
    })
    .await
    .expect("every garbage stream ended in time");

    // The point still serves a stock client.
    let mut c = client();
    connect(&mut c, &point.tcp).await;
    c.behaviour_mut()
        .register(ns("still"), point.id, None)
        .unwrap();
    assert!(matches!(
        next(&mut c).await,
        rendezvous::client::Event::Registered { .. }
    ));
    point.stop().await;
}

/// A client speaking our codec, so tests can send any message.
fn wire_client(key: Keypair) -> Swarm<request_response::Behaviour<wire::Codec>> {
    outbound_client(key, wire::Codec::default(), DEADLINE)
}

/// Sends `msg` and waits for the answer.
async fn ask(
    swarm: &mut Swarm<request_response::Behaviour<wire::Codec>>,
    point: PeerId,
    msg: wire::Message,
) -> wire::Message {
    swarm.behaviour_mut().send_request(&point, msg);
    tokio::time::timeout(DEADLINE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::Behaviour(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                }) => return response,
                SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                    error, ..
                }) => {
                    panic!("request failed: {error}")
                }
                _ => {}
            }
        }
    })
    .await
    .expect("an answer in time")
}

fn discover_all() -> wire::Message {
    wire::Message {
        r#type: Some(wire::MessageType::Discover as i32),
        discover: Some(wire::Discover::default()),
        ..wire::Message::default()
    }
}

#[tokio::test]
async fn clients_that_never_read_cannot_make_the_point_hold_answers_without_bound() {
    // One full answer fits (it counts twice its size), a second does not.
    const BUDGET: usize = 2 * wire::MAX_MESSAGE_BYTES + 64 * 1024;
    let point = start_point_with("stall", |c| {
        c.max_answer_bytes_in_flight = BUDGET;
        c.limits.max_record_bytes = 128 * 1024;
    })
    .await;
    // Eleven peers with records of about 100 KiB: a discover of all is a
    // page of about 1 MiB.
    for _ in 0..11 {
        let key = Keypair::generate_ed25519();
        let addrs: Vec<Multiaddr> = (0..400)
            .map(|i| {
                format!("/dns4/{i}.{}.example/tcp/4001", "x".repeat(240))
                    .parse()
                    .unwrap()
            })
            .collect();
        let record = libp2p::core::PeerRecord::new(&key, addrs)
            .unwrap()
            .into_signed_envelope()
            .into_protobuf_encoding();
        let mut c = wire_client(key);
        connect(&mut c, &point.tcp).await;
        let answer = ask(
            &mut c,
            point.id,
            wire::Message {
                r#type: Some(wire::MessageType::Register as i32),
                register: Some(wire::Register {
                    ns: Some(b"big".to_vec()),
                    signed_peer_record: Some(record),
                    ttl: None,
                }),
                ..wire::Message::default()
            },
        )
        .await;
        assert_eq!(answer.register_response.unwrap().status, Some(0));
    }

    // One client asks and never reads: its answer stays in flight.
    let mut staller = raw_client(true);
    connect(&mut staller, &point.tcp).await;
    staller.behaviour_mut().send_request(
        &point.id,
        prost::Message::encode_length_delimited_to_vec(&discover_all()),
    );
    let drive = tokio::spawn(async move {
        loop {
            staller.select_next_some().await;
        }
    });

    // Another client is told the point is busy rather than being queued.
    let mut reader = wire_client(Keypair::generate_ed25519());
    connect(&mut reader, &point.tcp).await;
    let busy = tokio::time::timeout(DEADLINE, async {
        loop {
            let r = ask(&mut reader, point.id, discover_all())
                .await
                .discover_response
                .unwrap();
            if r.status == Some(wire::ResponseStatus::Unavailable as i32) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the budget is reached");
    assert!(busy.registrations.is_empty());

    // When the staller goes, its answer is released and pages flow again.
    drive.abort();
    let page = tokio::time::timeout(DEADLINE, async {
        loop {
            let r = ask(&mut reader, point.id, discover_all())
                .await
                .discover_response
                .unwrap();
            if r.status == Some(0) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the budget is released");
    assert!(
        page.registrations.len() >= 9,
        "{}",
        page.registrations.len()
    );
    point.stop().await;
}

/// Dials the point; whether a connection came up.
async fn try_connect<B: NetworkBehaviour>(swarm: &mut Swarm<B>, point: &Multiaddr) -> bool {
    swarm.dial(point.clone()).unwrap();
    tokio::time::timeout(DEADLINE, async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => return true,
                SwarmEvent::OutgoingConnectionError { .. } => return false,
                // Denied after the handshake: it closes at once.
                SwarmEvent::ConnectionClosed { .. } => return false,
                _ => {}
            }
        }
    })
    .await
    .expect("a dial outcome in time")
}

/// Peer ids are free: a host gets `max_connections_per_ip` connections
/// whatever ids it uses, the next is refused, and a closed one frees its
/// slot.
#[tokio::test]
async fn connections_per_ip_are_exact_at_the_bound() {
    let point = start_point_with("per-ip", |c| c.max_connections_per_ip = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = client();
        assert!(
            try_connect(&mut c, &point.tcp).await,
            "a connection under the limit"
        );
        held.push(c);
    }
    let mut fourth = client();
    assert!(
        !try_connect(&mut fourth, &point.tcp).await,
        "the fourth from one address"
    );
    // Keep the held connections polled while the point notices a close.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let mut again = client();
        if try_connect(&mut again, &point.tcp).await {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(held);
    point.stop().await;
}

/// The `host:port` of a `/ip4/…/tcp/…` address.
fn socket_addr(addr: &Multiaddr) -> std::net::SocketAddr {
    use libp2p::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    std::net::SocketAddr::new(ip.expect("an IPv4 address"), port.expect("a TCP port"))
}

/// Half-open handshakes (TCP connected, nothing sent) hold a slot only for
/// `handshake_timeout_secs`: the point closes them, and the slots they
/// held go to real clients. With the point's 1 s here, they must be gone
/// well before libp2p's own 10 s connection timeout would close them.
#[tokio::test]
async fn silent_handshakes_are_closed_at_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let point = start_point_with("handshake", |c| {
        c.max_connections_per_ip = 2;
        c.handshake_timeout_secs = 1;
    })
    .await;
    let to = socket_addr(&point.tcp);
    let mut silent = Vec::new();
    for _ in 0..2 {
        silent.push(tokio::net::TcpStream::connect(to).await.unwrap());
    }
    // Both slots of the address are held by the silent handshakes.
    let mut refused = client();
    assert!(
        !try_connect(&mut refused, &point.tcp).await,
        "a third connection while two handshakes are pending"
    );
    // libp2p's default connection timeout, which the point shortens.
    let libp2p_default = Duration::from_secs(10);
    let started = tokio::time::Instant::now();
    for mut s in silent {
        let mut buf = [0u8; 64];
        // The point may send its multistream header before it gives up;
        // what matters is that it closes (end of stream or reset).
        let closed = tokio::time::timeout(libp2p_default / 2, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(
            closed.is_ok(),
            "a silent handshake still open {:?} after it started",
            started.elapsed()
        );
    }
    let mut later = client();
    assert!(
        try_connect(&mut later, &point.tcp).await,
        "the slots of the closed handshakes are free again"
    );
    point.stop().await;
}
