//! User-space relays that add latency, or cut a path, between a client and
//! a server on this machine.
//!
//! The kernel here has no `netem`, so latency is shaped in user space:
//! [`DelayProxy`] relays TCP and [`UdpDelayProxy`] relays UDP datagrams (for
//! QUIC), each delivering what it read a fixed one-way delay later, in
//! order, in both directions. A client dials the proxy's address instead of
//! the server's.
//!
//! Both need a running tokio runtime (time and I/O enabled) and stop when
//! dropped.
//!
//! Both stand for a cellular path, so each reports every chunk (TCP) or
//! datagram (UDP) it reads from or delivers to its clients to a
//! [`RadioMeter`] with LTE's radio profile ([`DelayProxy::radio`],
//! [`UdpDelayProxy::radio`]): wake-ups and modelled energy of the phone's
//! radio on that path.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use multidriver::scoring::energy::LTE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::radio::{Direction, RadioMeter};

/// Largest chunk one read takes from a TCP socket. Our own choice.
const CHUNK_SIZE: usize = 16 * 1024;

/// Chunks (TCP) or datagrams (UDP) in flight per direction of one
/// connection or session. Our own choice. When full, TCP stops reading (the
/// sender sees normal flow control) and UDP drops the datagram, as a full
/// router queue would.
pub const IN_FLIGHT: usize = 256;

/// Most TCP connections one [`DelayProxy`] relays at once; a connection
/// accepted beyond it is closed at once. Our own choice.
pub const MAX_CONNECTIONS: usize = 256;

/// Most client addresses one [`UdpDelayProxy`] relays for at once; a
/// datagram from a new client beyond it is dropped. Our own choice.
pub const MAX_SESSIONS: usize = 256;

/// A UDP session with no datagram from its client for this long is
/// forgotten (its upstream socket closed). Our own choice: longer than the
/// idle timeouts QUIC stacks use by default.
pub const SESSION_IDLE: Duration = Duration::from_secs(120);

/// How long the proxy waits to connect to the upstream server. Our own
/// choice.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts, and the pause between them, to bind the listening address
/// again after [`ProxyMode::Refuse`]. Our own choice: one second in all.
const REBIND_ATTEMPTS: u32 = 50;
const REBIND_PAUSE: Duration = Duration::from_millis(20);

/// Largest UDP datagram.
const MAX_DATAGRAM: usize = 65_535;

/// What a [`DelayProxy`] does with connections; switchable while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyMode {
    /// Relay both ways with the configured delay.
    Forward,
    /// Accept connections but relay nothing: bytes read from either side are
    /// discarded, including those already in flight and end-of-stream. New
    /// connections accepted now never reach the upstream server, even after
    /// a switch back to [`ProxyMode::Forward`].
    Blackhole,
    /// Refuse new connections (the listening socket is closed, so a dial
    /// fails with "connection refused") and close the connections being
    /// relayed. Switching back binds the same address again.
    Refuse,
}

/// State shared by a proxy handle and its tasks.
#[derive(Debug)]
struct Shared {
    delay_micros: AtomicU64,
    accepted: AtomicUsize,
    /// Every chunk or datagram to or from a client.
    radio: Arc<RadioMeter>,
}

impl Shared {
    fn new(delay: Duration) -> Arc<Self> {
        let shared = Arc::new(Self {
            delay_micros: AtomicU64::new(0),
            accepted: AtomicUsize::new(0),
            radio: Arc::new(RadioMeter::new(LTE)),
        });
        shared.set_delay(delay);
        shared
    }

    fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_micros.load(Ordering::Relaxed))
    }

    fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_micros.store(micros, Ordering::Relaxed);
    }

    /// When something read now is to be delivered.
    fn deadline(&self) -> Instant {
        Instant::now() + self.delay()
    }
}

/// A TCP relay from a listening address to an upstream server that
/// delivers every chunk a fixed one-way delay after reading it.
///
/// Each accepted connection gets its own connection to `upstream`. A round
/// trip through the proxy therefore takes at least twice the delay. Order is
/// kept in each direction; end-of-stream is delayed like data. Dropping the
/// proxy closes the listener and every relayed connection.
#[derive(Debug)]
pub struct DelayProxy {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    mode: watch::Sender<ProxyMode>,
    task: JoinHandle<()>,
}

impl DelayProxy {
    /// Listens on `listen` (port 0 picks one; see [`DelayProxy::local_addr`])
    /// and relays to `upstream` with `delay` each way, in
    /// [`ProxyMode::Forward`].
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        delay: Duration,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let shared = Shared::new(delay);
        let (mode, mode_rx) = watch::channel(ProxyMode::Forward);
        let task = tokio::spawn(serve_tcp(
            listener,
            local_addr,
            upstream,
            Arc::clone(&shared),
            mode_rx,
        ));
        Ok(Self {
            local_addr,
            shared,
            mode,
            task,
        })
    }

    /// The address clients dial.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The current one-way delay.
    pub fn delay(&self) -> Duration {
        self.shared.delay()
    }

    /// Changes the one-way delay for chunks read from now on; chunks in
    /// flight keep their delivery time (so order is kept even when the delay
    /// shrinks: a later chunk waits for the one before it).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.set_delay(delay);
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *self.mode.borrow()
    }

    /// Switches the mode; see [`ProxyMode`].
    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.send_replace(mode);
    }

    /// How many connections the proxy has accepted so far.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// The meter of the client side's radio: a chunk read from a client is
    /// a packet up, one written to a client a packet down.
    pub fn radio(&self) -> Arc<RadioMeter> {
        Arc::clone(&self.shared.radio)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        // The serve task owns every connection task; aborting it drops them.
        self.task.abort();
    }
}

async fn serve_tcp(
    listener: TcpListener,
    local_addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let mut listener = Some(listener);
    let mut connections = JoinSet::new();
    loop {
        let current = *mode.borrow_and_update();
        match (current, listener.is_some()) {
            (ProxyMode::Refuse, true) => listener = None,
            (ProxyMode::Forward | ProxyMode::Blackhole, false) => {
                listener = rebind(local_addr).await;
            }
            _ => {}
        }
        while connections.try_join_next().is_some() {}
        tokio::select! {
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            accepted = accept(listener.as_ref()), if listener.is_some() => {
                let Ok((client, _)) = accepted else { continue };
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                if connections.len() >= MAX_CONNECTIONS {
                    continue;
                }
                connections.spawn(relay_tcp(
                    client,
                    upstream,
                    Arc::clone(&shared),
                    mode.clone(),
                ));
            }
        }
    }
}

async fn accept(listener: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..REBIND_ATTEMPTS {
        if let Ok(listener) = TcpListener::bind(addr).await {
            return Some(listener);
        }
        tokio::time::sleep(REBIND_PAUSE).await;
    }
    eprintln!(
        "warning: delay proxy cannot listen on {addr} again; refusing until the next mode change"
    );
    None
}

/// A chunk on its way, or end-of-stream, with its delivery time.
enum Chunk {
    Data(Instant, Vec<u8>),
    Eof(Instant),
}

async fn relay_tcp(
    client: TcpStream,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    mut mode: watch::Receiver<ProxyMode>,
) {
    let refused = {
        let mut mode = mode.clone();
        async move {
            // An error means the proxy is gone; stop as well.
            let _ = mode.wait_for(|m| *m == ProxyMode::Refuse).await;
        }
    };
    let work = async {
        if *mode.borrow_and_update() == ProxyMode::Blackhole {
            discard(client).await;
            return;
        }
        let Ok(Ok(server)) =
            tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(upstream)).await
        else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        let (up_tx, up_rx) = mpsc::channel(IN_FLIGHT);
        let (down_tx, down_rx) = mpsc::channel(IN_FLIGHT);
        let radio = &*shared.radio;
        tokio::join!(
            read_side(client_read, up_tx, &shared, Some(radio)),
            write_side(up_rx, server_write, mode.clone(), None),
            read_side(server_read, down_tx, &shared, None),
            write_side(down_rx, client_write, mode.clone(), Some(radio)),
        );
    };
    tokio::select! {
        () = work => {}
        () = refused => {}
    }
}

/// Reads and throws away everything until the peer closes.
async fn discard(mut stream: TcpStream) {
    let mut buf = vec![0u8; CHUNK_SIZE];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// Reads one direction into `to`; `radio`: the client's radio, when `from`
/// is the client.
async fn read_side(
    mut from: OwnedReadHalf,
    to: mpsc::Sender<Chunk>,
    shared: &Shared,
    radio: Option<&RadioMeter>,
) {
    let mut buf = vec![0u8; CHUNK_SIZE];
    loop {
        match from.read(&mut buf).await {
            Ok(0) => {
                let _ = to.send(Chunk::Eof(shared.deadline())).await;
                return;
            }
            Ok(n) => {
                if let Some(radio) = radio {
                    radio.packet(Direction::Up, n);
                }
                let chunk = Chunk::Data(shared.deadline(), buf[..n].to_vec());
                if to.send(chunk).await.is_err() {
                    return;
                }
            }
            // A reset or other error: stop reading; the writer drains what
            // was read and then closes its side.
            Err(_) => return,
        }
    }
}

/// Writes one direction from `from`; `radio`: the client's radio, when `to`
/// is the client.
async fn write_side(
    mut from: mpsc::Receiver<Chunk>,
    mut to: OwnedWriteHalf,
    mode: watch::Receiver<ProxyMode>,
    radio: Option<&RadioMeter>,
) {
    while let Some(chunk) = from.recv().await {
        let (deadline, data) = match chunk {
            Chunk::Data(deadline, data) => (deadline, Some(data)),
            Chunk::Eof(deadline) => (deadline, None),
        };
        tokio::time::sleep_until(deadline).await;
        if *mode.borrow() == ProxyMode::Blackhole {
            continue;
        }
        match data {
            Some(data) => {
                if to.write_all(&data).await.is_err() {
                    return;
                }
                if let Some(radio) = radio {
                    radio.packet(Direction::Down, data.len());
                }
            }
            None => {
                let _ = to.shutdown().await;
                return;
            }
        }
    }
}

/// State a [`UdpDelayProxy`] handle shares with its task.
#[derive(Debug)]
struct UdpShared {
    base: Arc<Shared>,
    blackhole: AtomicBool,
}

/// A UDP relay that delays every datagram a fixed time in both directions;
/// enough to put latency under QUIC.
///
/// Each client address (source IP and port) gets its own upstream socket,
/// connected to `upstream`, so the server sees one peer per client and its
/// replies go back to the right client, sent from the proxy's listening
/// address. Per direction, datagrams keep their order; when
/// [`IN_FLIGHT`] are queued, more are dropped. Dropping the proxy closes
/// every socket.
#[derive(Debug)]
pub struct UdpDelayProxy {
    local_addr: SocketAddr,
    shared: Arc<UdpShared>,
    task: JoinHandle<()>,
}

impl UdpDelayProxy {
    /// Binds `listen` (port 0 picks one; see [`UdpDelayProxy::local_addr`])
    /// and relays datagrams to and from `upstream` with `delay` each way.
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        delay: Duration,
    ) -> io::Result<Self> {
        let socket = UdpSocket::bind(listen).await?;
        let local_addr = socket.local_addr()?;
        let shared = Arc::new(UdpShared {
            base: Shared::new(delay),
            blackhole: AtomicBool::new(false),
        });
        let task = tokio::spawn(serve_udp(Arc::new(socket), upstream, Arc::clone(&shared)));
        Ok(Self {
            local_addr,
            shared,
            task,
        })
    }

    /// The address clients send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The current one-way delay.
    pub fn delay(&self) -> Duration {
        self.shared.base.delay()
    }

    /// Changes the one-way delay for datagrams received from now on.
    pub fn set_delay(&self, delay: Duration) {
        self.shared.base.set_delay(delay);
    }

    /// Whether every datagram is dropped, both ways.
    pub fn blackhole(&self) -> bool {
        self.shared.blackhole.load(Ordering::Relaxed)
    }

    /// Drops every datagram, both ways, including those in flight (`true`),
    /// or relays again (`false`).
    pub fn set_blackhole(&self, blackhole: bool) {
        self.shared.blackhole.store(blackhole, Ordering::Relaxed);
    }

    /// How many client addresses the proxy has started relaying for.
    pub fn sessions(&self) -> usize {
        self.shared.base.accepted.load(Ordering::Relaxed)
    }

    /// The meter of the clients' radio: a datagram received from a client
    /// is a packet up, one sent to a client a packet down.
    pub fn radio(&self) -> Arc<RadioMeter> {
        Arc::clone(&self.shared.base.radio)
    }
}

impl Drop for UdpDelayProxy {
    fn drop(&mut self) {
        // The serve task owns every session task; aborting it drops them.
        self.task.abort();
    }
}

/// The serve task's view of one client.
struct Session {
    to_upstream: mpsc::Sender<(Instant, Vec<u8>)>,
    last_seen: Instant,
}

async fn serve_udp(socket: Arc<UdpSocket>, upstream: SocketAddr, shared: Arc<UdpShared>) {
    let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut sweep = tokio::time::interval(SESSION_IDLE / 4);
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, client) = match received {
                    Ok(received) => received,
                    Err(e) if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
                    ) => continue,
                    Err(_) => return,
                };
                if shared.blackhole.load(Ordering::Relaxed) {
                    continue;
                }
                shared.base.radio.packet(Direction::Up, n);
                let now = Instant::now();
                if !sessions.contains_key(&client) {
                    if sessions.len() >= MAX_SESSIONS {
                        sessions.retain(|_, s| now.duration_since(s.last_seen) < SESSION_IDLE);
                    }
                    if sessions.len() >= MAX_SESSIONS {
                        continue;
                    }
                    let (tx, rx) = mpsc::channel(IN_FLIGHT);
                    tasks.spawn(udp_session(
                        Arc::clone(&socket),
                        client,
                        upstream,
                        rx,
                        Arc::clone(&shared),
                    ));
                    shared.base.accepted.fetch_add(1, Ordering::Relaxed);
                    sessions.insert(client, Session { to_upstream: tx, last_seen: now });
                }
                let Some(session) = sessions.get_mut(&client) else { continue };
                session.last_seen = now;
                let datagram = (shared.base.deadline(), buf[..n].to_vec());
                if let Err(mpsc::error::TrySendError::Closed(_)) =
                    session.to_upstream.try_send(datagram)
                {
                    // The session failed (no upstream socket); the next
                    // datagram from this client starts a new one.
                    sessions.remove(&client);
                }
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                sessions.retain(|_, s| now.duration_since(s.last_seen) < SESSION_IDLE);
                while tasks.try_join_next().is_some() {}
            }
        }
    }
}

/// Relays for one client until the serve task forgets it (closing `from`).
async fn udp_session(
    listen: Arc<UdpSocket>,
    client: SocketAddr,
    upstream: SocketAddr,
    mut from_client: mpsc::Receiver<(Instant, Vec<u8>)>,
    shared: Arc<UdpShared>,
) {
    let any = match upstream.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let Ok(out) = UdpSocket::bind(SocketAddr::new(any, 0)).await else {
        return;
    };
    if out.connect(upstream).await.is_err() {
        return;
    }
    let (down_tx, mut down_rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT);
    let blackholed = || shared.blackhole.load(Ordering::Relaxed);

    let upward = async {
        while let Some((deadline, datagram)) = from_client.recv().await {
            tokio::time::sleep_until(deadline).await;
            if !blackholed() {
                // A lost datagram is what UDP allows; keep going.
                let _ = out.send(&datagram).await;
            }
        }
    };
    let from_upstream = async {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match out.recv(&mut buf).await {
                Ok(n) => {
                    if !blackholed() {
                        // Full means dropped, as at a full router queue.
                        let _ = down_tx.try_send((shared.base.deadline(), buf[..n].to_vec()));
                    }
                }
                // An ICMP error from an earlier send; the socket still works.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(_) => return,
            }
        }
    };
    let downward = async {
        while let Some((deadline, datagram)) = down_rx.recv().await {
            tokio::time::sleep_until(deadline).await;
            if !blackholed() && listen.send_to(&datagram, client).await.is_ok() {
                shared.base.radio.packet(Direction::Down, datagram.len());
            }
        }
    };
    // The session ends when the client side closes; the upstream reader and
    // the downward writer end with it.
    tokio::select! {
        () = upward => {}
        () = from_upstream => {}
        () = downward => {}
    }
}
