//! The tuned stock rust-libp2p stack ([`Stack::Tuned`](super::Stack::Tuned)):
//! its settings, its swarm, and the app that acts on interface events and
//! host hints.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, Swarm, ping};
use multidriver::transports::connectivity::{ConnectivityHint, NetworkId};

use super::app::{App, app_behaviour};
use super::{
    CELL_NET, CELL_PHONE, Path, REDIAL_PAUSE, Shared, Target, Transport, WIFI_NET, WIFI_PHONE,
    listen_knowing_both, lock, stock,
};

/// The tuned stack's ping interval: 1 s, multidriver's heartbeat on the
/// connection an app is using (`Liveness::active_heartbeat`,
/// `engine/src/core/config.rs`), so both check the path as often.
pub const TUNED_PING_INTERVAL: Duration = Duration::from_secs(1);

/// The tuned stack's ping timeout: 1 s, the deadline multidriver gives a
/// probe of the connection the app is using on these paths. multidriver
/// takes the route's RTO (SRTT + 4 × RTTVAR, RFC 6298), at least
/// `Liveness::active_probe_timeout` (1 s, RFC 6298's minimum RTO) and at
/// most 60 s (`Engine::probe_with_traffic`,
/// `engine/src/core/keepalive.rs`; defaults in
/// `engine/src/core/config.rs`). Both paths here are far below the floor:
/// Wi-Fi's LAN prior is 20 ms with RTTVAR 10 ms (RTO 60 ms) and a veth
/// measures well under a millisecond; cellular's prior is 65 ms (RTO
/// 195 ms) and measures 50 ms (`scoring/src/rtt.rs`). So 1 s.
///
/// How libp2p-ping 0.48.0 reports failures (`protocols/ping/src/handler.rs`
/// in libp2p/rust-libp2p, `Handler::poll`): every failure increments a
/// counter, and "for backward-compatibility the first failure is always
/// 'free' and silent" (lines 273–286): only the second consecutive failure
/// (`failures > 1`) reaches the behaviour as `ping::Event { result: Err }`;
/// a success resets the counter (line 298). A failed ping also loses its
/// stream (taken at line 290, not put back at lines 303–306), so the next
/// ping opens a new stream one interval later (lines 323–331), with
/// `SubstreamProtocol::new`'s 10 s upgrade timeout (libp2p-swarm 0.48
/// `src/handler.rs`). With multistream-select's default `V1` that stream's
/// negotiation waits for the remote's answer, so on a dead path the second,
/// reported failure is "ping protocol negotiation timed out" (lines
/// 207–213) 10 s later, not a ping timeout: what the defaults stack shows.
/// The tuned swarm negotiates outbound streams with `V1Lazy`
/// (`Config::with_substream_upgrade_protocol_override`; the wire protocol
/// is `V1`'s), so the second ping is sent at once and fails at the ping
/// timeout. A dead path is thus reported at most interval + timeout +
/// interval + timeout = 4 s after it died; the app acts on that report and
/// on nothing earlier.
pub const TUNED_PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The tuned stack's QUIC idle timeout: 3 s (our choice for the tuned app:
/// three keep-alive intervals, so a lost keep-alive or two do not close a
/// live connection; libp2p-quic 0.14's default is 10 s, `src/config.rs`).
/// QUIC uses the smaller of both sides' values (RFC 9000 §10.1), and the
/// peer keeps the default 10 s, so 3 s applies.
pub const TUNED_QUIC_IDLE: Duration = Duration::from_secs(3);

/// The tuned stack's QUIC keep-alive interval: 1 s, below the idle timeout
/// as libp2p-quic requires for it to be effective (`Config::
/// keep_alive_interval`), and as often as the ping.
pub const TUNED_QUIC_KEEP_ALIVE: Duration = Duration::from_secs(1);

/// The tuned swarm's idle connection timeout: 10 s, libp2p-swarm 0.48's
/// default (`src/connection/pool.rs`), far above the gaps in the app's
/// traffic (50 ms), so a connection is never closed between messages.
pub const TUNED_IDLE_CONNECTION: Duration = Duration::from_secs(10);

/// The tuned stack's swarm: see [`Stack::Tuned`](super::Stack::Tuned).
fn tuned_swarm<B: NetworkBehaviour>(
    key: Keypair,
    transport: Transport,
    behaviour: impl FnOnce(&Keypair) -> B,
) -> Result<Swarm<B>, String> {
    use libp2p::core::upgrade::Version;

    stock::stock_swarm(
        key,
        transport,
        |c| {
            c.with_smart_dial()
                .with_idle_connection_timeout(TUNED_IDLE_CONNECTION)
                // See TUNED_PING_TIMEOUT: a new ping stream on a dead path
                // must fail at the ping timeout, not at the 10 s negotiation
                // timeout.
                .with_substream_upgrade_protocol_override(Version::V1Lazy)
        },
        |mut c| {
            c.max_idle_timeout = u32::try_from(TUNED_QUIC_IDLE.as_millis()).unwrap_or(u32::MAX);
            c.keep_alive_interval = TUNED_QUIC_KEEP_ALIVE;
            c
        },
        behaviour,
    )
}

#[derive(NetworkBehaviour)]
struct TunedPhone {
    app: request_response::json::Behaviour<u64, u64>,
    ping: ping::Behaviour,
}

/// The local address the kernel sends from to reach `addr`'s IP (a UDP
/// socket's `connect` picks it; nothing is sent), as multidriver's
/// `Behaviour` finds a route's interface; `None` when there is no route.
fn source_ip(addr: &Multiaddr) -> Option<IpAddr> {
    let ip: IpAddr = addr.iter().find_map(|p| match p {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    })?;
    let any: IpAddr = match ip {
        IpAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    // Port 9 (discard): irrelevant, nothing is sent.
    let socket = std::net::UdpSocket::bind(SocketAddr::new(any, 0)).ok()?;
    socket.connect(SocketAddr::new(ip, 9)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// The address of `cidr` (`10.77.30.1/24` → `10.77.30.1`).
pub(crate) fn ip_of(cidr: &str) -> IpAddr {
    cidr.split('/')
        .next()
        .and_then(|ip| ip.parse().ok())
        .expect("a valid address")
}

/// The tuned app's view of its connections and dials; see
/// [`Stack::Tuned`](super::Stack::Tuned).
struct TunedApp {
    app: App,
    target: Target,
    /// The phone's Wi-Fi address: the app prefers Wi-Fi (unmetered), and
    /// knows which address is Wi-Fi as an Android app does from the
    /// network's `LinkProperties`.
    wifi_ip: IpAddr,
    /// The host's networks and the phone's address on each (hint case).
    networks: [(NetworkId, IpAddr); 2],
    /// Open connections: remote address and the local address they leave
    /// from.
    conns: HashMap<ConnectionId, (Multiaddr, Option<IpAddr>)>,
    /// Dials in flight and the addresses they try.
    dialing: HashMap<ConnectionId, Vec<Multiaddr>>,
    /// Local addresses being left: their connections close once a
    /// connection over another address is up.
    leaving: HashSet<IpAddr>,
}

impl TunedApp {
    fn note(&self, note: String) {
        lock(&self.app.log).notes.push((Instant::now(), note));
    }

    /// The peer's addresses the kernel reaches from `from` (`Some`) or
    /// from anywhere but `not` (`None` in `from`).
    fn addresses(&self, from: Option<IpAddr>, not: Option<IpAddr>) -> Vec<Multiaddr> {
        [&self.target.wifi, &self.target.cell]
            .into_iter()
            .filter(|a| {
                let src = source_ip(a);
                src.is_some() && (from.is_none() || src == from) && (not.is_none() || src != not)
            })
            .cloned()
            .collect()
    }

    /// Dials the peer at `addresses` now, beside any connection it has.
    fn dial(&mut self, swarm: &mut Swarm<TunedPhone>, addresses: Vec<Multiaddr>, why: &str) {
        if addresses.is_empty() {
            return;
        }
        let opts = DialOpts::peer_id(self.target.peer)
            .condition(PeerCondition::Always)
            .addresses(addresses.clone())
            .build();
        let id = opts.connection_id();
        self.note(format!("{why}: dialing {addresses:?}"));
        if swarm.dial(opts).is_ok() {
            self.dialing.insert(id, addresses);
        }
    }

    /// Whether a dial in flight tries an address reached from `from`.
    fn dialing_from(&self, from: IpAddr) -> bool {
        self.dialing
            .values()
            .flatten()
            .any(|a| source_ip(a) == Some(from))
    }

    /// Closes the connections leaving from `ip`.
    fn close_from(&mut self, swarm: &mut Swarm<TunedPhone>, ip: IpAddr) {
        for (id, (_, local)) in &self.conns {
            if *local == Some(ip) {
                swarm.close_connection(*id);
            }
        }
    }

    /// The address `ip` went (interface down, address removed, host
    /// "lost"): close what leaves from it and dial the other ways at once.
    fn lost(&mut self, swarm: &mut Swarm<TunedPhone>, ip: IpAddr) {
        let had = self.conns.values().any(|(_, l)| *l == Some(ip));
        self.close_from(swarm, ip);
        let over_other = self
            .conns
            .values()
            .any(|(_, l)| l.is_some() && *l != Some(ip));
        if had && !over_other {
            let others = self.addresses(None, Some(ip));
            self.dial(swarm, others, &format!("{ip} lost"));
        }
    }

    /// The host says the network of `ip` is going: dial the other ways
    /// first; the old connection closes once the new one is up.
    fn leave(&mut self, swarm: &mut Swarm<TunedPhone>, ip: IpAddr) {
        self.leaving.insert(ip);
        let others = self.addresses(None, Some(ip));
        self.dial(swarm, others, &format!("{ip} losing"));
    }

    /// Wi-Fi (`ip`) is usable again: dial over it unless already there; the
    /// others close once it is up.
    fn join(&mut self, swarm: &mut Swarm<TunedPhone>, ip: IpAddr) {
        self.leaving.remove(&ip);
        let there = self.conns.values().any(|(_, l)| *l == Some(ip));
        if ip == self.wifi_ip && !there && !self.dialing_from(ip) {
            let over = self.addresses(Some(ip), None);
            self.dial(swarm, over, &format!("{ip} back"));
        }
    }

    fn established(&mut self, swarm: &mut Swarm<TunedPhone>, id: ConnectionId, remote: &Multiaddr) {
        self.dialing.remove(&id);
        let local = source_ip(remote);
        // The address dialed, without the peer id the swarm appends.
        let remote: Multiaddr = remote
            .iter()
            .filter(|p| !matches!(p, Protocol::P2p(_)))
            .collect();
        let remote = &remote;
        self.note(format!("connected over {remote} from {local:?}"));
        self.app.paths.insert(id, Path::of(remote));
        // Make-before-break: the new connection is up, so close those being
        // left, and, when it is over Wi-Fi, every other.
        let on_wifi = local == Some(self.wifi_ip);
        for (old, (_, l)) in &self.conns {
            let left = l.is_some_and(|l| self.leaving.contains(&l));
            if left || (on_wifi && *l != Some(self.wifi_ip)) {
                swarm.close_connection(*old);
            }
        }
        self.conns.insert(id, (remote.clone(), local));
        // The app's requests move to the new connection: what is
        // unacknowledged is sent again (request-response spreads requests
        // over a peer's open connections, and the old ones are closing).
        self.app.resend_all(&mut swarm.behaviour_mut().app);
    }

    fn on_hint(&mut self, swarm: &mut Swarm<TunedPhone>, hint: ConnectivityHint) {
        let ip_of_net = |n: NetworkId| {
            self.networks
                .iter()
                .find(|(id, _)| *id == n)
                .map(|(_, ip)| *ip)
        };
        self.note(format!("hint {hint:?}"));
        match hint {
            ConnectivityHint::Losing { network } => {
                if let Some(ip) = ip_of_net(network) {
                    self.leave(swarm, ip);
                }
            }
            ConnectivityHint::Lost { network } => {
                if let Some(ip) = ip_of_net(network) {
                    self.lost(swarm, ip);
                }
            }
            ConnectivityHint::Available { network, .. } => {
                if let Some(ip) = ip_of_net(network) {
                    self.join(swarm, ip);
                }
            }
            _ => {}
        }
    }

    fn on_if_event(&mut self, swarm: &mut Swarm<TunedPhone>, event: if_watch::IfEvent) {
        match event {
            if_watch::IfEvent::Down(net) if !net.addr().is_loopback() => {
                self.note(format!("address {net} gone"));
                self.lost(swarm, net.addr());
            }
            if_watch::IfEvent::Up(net) if !net.addr().is_loopback() => {
                self.note(format!("address {net} up"));
                self.join(swarm, net.addr());
            }
            _ => {}
        }
    }
}

pub(crate) async fn tuned_phone(
    transport: Transport,
    target: Target,
    hinted: bool,
    mut hints: tokio::sync::mpsc::Receiver<ConnectivityHint>,
    log: Shared,
    sending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let ping = ping::Config::new()
        .with_interval(TUNED_PING_INTERVAL)
        .with_timeout(TUNED_PING_TIMEOUT);
    let mut swarm = tuned_swarm(Keypair::generate_ed25519(), transport, |_| TunedPhone {
        app: app_behaviour(),
        ping: ping::Behaviour::new(ping),
    })
    .expect("the stack builds");
    listen_knowing_both(&mut swarm, transport, &target);
    // Interface events, as multidriver gets them; in the hint case host
    // hints only, as multidriver there.
    let mut watcher = if hinted {
        None
    } else {
        Some(if_watch::tokio::IfWatcher::new().expect("a netlink socket"))
    };
    let wifi_ip = ip_of(WIFI_PHONE);
    let mut tuned = TunedApp {
        app: App::new(target.peer, log),
        wifi_ip,
        networks: [(WIFI_NET, wifi_ip), (CELL_NET, ip_of(CELL_PHONE))],
        target: target.clone(),
        conns: HashMap::new(),
        dialing: HashMap::new(),
        leaving: HashSet::new(),
    };
    // It first connects over Wi-Fi.
    tuned.dial(&mut swarm, vec![target.wifi.clone()], "start");

    let mut tick = target.traffic.ticker(&stop);
    let mut redial_at: Option<tokio::time::Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let redial = async {
            match redial_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let if_event = async {
            match watcher.as_mut() {
                Some(w) => w.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {
                if !tuned.conns.is_empty() && sending.load(Ordering::SeqCst) {
                    tuned.app.send_new(&mut swarm.behaviour_mut().app);
                } else if target.traffic.sparse && sending.load(Ordering::SeqCst) {
                    // Sent on the connection this dial makes (or the one
                    // being dialed).
                    tuned.app.queue_new();
                    if tuned.dialing.is_empty() {
                        let all = tuned.addresses(None, None);
                        tuned.dial(&mut swarm, all, "message to send");
                    }
                }
            }
            () = redial => {
                redial_at = None;
                if tuned.conns.is_empty() && tuned.dialing.is_empty() {
                    let all = tuned.addresses(None, None);
                    tuned.dial(&mut swarm, all, "no connection");
                }
            }
            Some(hint) = hints.recv() => tuned.on_hint(&mut swarm, hint),
            event = if_event => match event {
                Some(Ok(event)) => tuned.on_if_event(&mut swarm, event),
                // The watcher failed or ended: go on without it.
                _ => watcher = None,
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { connection_id, endpoint, .. } => {
                    tuned.established(&mut swarm, connection_id, endpoint.get_remote_address());
                }
                SwarmEvent::ConnectionClosed { connection_id, cause, .. } => {
                    tuned.note(format!("connection closed: {cause:?}"));
                    tuned.conns.remove(&connection_id);
                    let idle = target.traffic.leaves_closed(cause.as_ref(), &tuned.app.log);
                    if tuned.conns.is_empty() && tuned.dialing.is_empty() && !idle {
                        // Dial again at once.
                        let all = tuned.addresses(None, None);
                        tuned.dial(&mut swarm, all, "no connection");
                    }
                }
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                    tuned.dialing.remove(&connection_id);
                    tuned.note(format!("dial failed: {error}"));
                    if tuned.conns.is_empty() && tuned.dialing.is_empty() {
                        // Try again shortly rather than spin.
                        redial_at = Some(tokio::time::Instant::now() + REDIAL_PAUSE);
                    }
                }
                SwarmEvent::Behaviour(TunedPhoneEvent::Ping(ping::Event { connection, result: Err(e), .. })) => {
                    // A reported failure (the second in a row; see
                    // TUNED_PING_TIMEOUT): the connection is taken as dead,
                    // closed, and the peer dialed at once over its other
                    // addresses.
                    tuned.note(format!("ping failed: {e}"));
                    swarm.close_connection(connection);
                    let failed = tuned.conns.remove(&connection);
                    let others: Vec<Multiaddr> = tuned
                        .addresses(None, None)
                        .into_iter()
                        .filter(|a| failed.as_ref().is_none_or(|(remote, _)| remote != a))
                        .collect();
                    let over_other = !tuned.conns.is_empty();
                    if !over_other {
                        let all = tuned.addresses(None, None);
                        tuned.dial(&mut swarm, if others.is_empty() { all } else { others }, "ping failed");
                    }
                }
                SwarmEvent::Behaviour(TunedPhoneEvent::App(e)) => {
                    tuned.app.on_app_event(&e, &mut swarm.behaviour_mut().app);
                }
                _ => {}
            },
        }
    }
}
