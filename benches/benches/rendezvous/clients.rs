// Stock rust-libp2p rendezvous clients under load, shared by the
// `rendezvous_load` and `rendezvous_fleet` benches (each includes this file
// with `#[path]`).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::rendezvous::{self, Namespace};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, noise, tcp, yamux};
use multidriver_rendezvous::protocol::{self as wire, MessageType};
use tokio::sync::{Barrier, mpsc};

/// No phase may take longer.
pub(crate) const PHASE_DEADLINE: Duration = Duration::from_secs(300);

/// A client: the stock rendezvous client registers; discovers go through
/// a plain request-response client that does not verify the records it
/// gets, so the discover phase measures the point, not the clients'
/// signature checks (with the stock client, all three points measured the
/// same: the clients were the bottleneck).
#[derive(NetworkBehaviour)]
pub(crate) struct Client {
    pub(crate) stock: rendezvous::client::Behaviour,
    raw: request_response::Behaviour<wire::Codec>,
}

/// A swarm over TCP (Nagle off) with a new identity.
pub(crate) fn tcp_swarm<B: NetworkBehaviour>(
    idle: Duration,
    behaviour: impl FnOnce(&Keypair) -> B,
) -> Swarm<B> {
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_behaviour(behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build()
}

pub(crate) fn client_swarm() -> Swarm<Client> {
    let mut swarm = tcp_swarm(Duration::from_secs(600), |key| Client {
        stock: rendezvous::client::Behaviour::new(key.clone()),
        raw: request_response::Behaviour::with_codec(
            wire::Codec::default(),
            [(wire::PROTOCOL, ProtocolSupport::Outbound)],
            request_response::Config::default(),
        ),
    });
    swarm.add_external_address("/ip4/192.0.2.1/tcp/4001".parse().expect("valid"));
    swarm
}

/// Starts a point process (`command`, this bench re-run as a child) with
/// piped stdin (closing it stops the point) and waits for its `listening
/// on <addr>` line.
pub(crate) fn spawn_point(command: &mut Command) -> (Child, Multiaddr) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the point starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let addr = loop {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(a) = line.strip_prefix("listening on ") {
                    break a.parse().expect("a multiaddr");
                }
            }
            _ => panic!("the point exited before listening"),
        }
    };
    (child, addr)
}

/// The point's peer id, from the `/p2p` at the end of its address.
pub(crate) fn point_id(addr: &Multiaddr) -> PeerId {
    match addr.iter().last() {
        Some(Protocol::P2p(id)) => id,
        _ => panic!("no /p2p in {addr}"),
    }
}

/// The shape of a load: `clients` clients each register in `namespaces`
/// namespaces (`{prefix}-0`, `{prefix}-1`, …) at once, then ask for
/// `{prefix}-0` `discovers` times, one request after another.
pub(crate) struct Load {
    pub(crate) clients: usize,
    pub(crate) namespaces: usize,
    pub(crate) discovers: usize,
    pub(crate) prefix: &'static str,
}

/// The phases' gates and the clients' reports: each client reports (ok,
/// failed) once per phase.
pub(crate) struct Phases {
    pub(crate) start: Arc<Barrier>,
    pub(crate) middle: Arc<Barrier>,
    pub(crate) done: mpsc::Receiver<(usize, usize)>,
}

/// Starts the clients, client `i` on point `i mod addrs.len()`; they
/// connect, then wait at `start` to register and at `middle` to discover.
/// A discover counts as answered when its page holds every client.
pub(crate) fn spawn_clients(addrs: &[Multiaddr], load: &Load) -> Phases {
    let start = Arc::new(Barrier::new(load.clients + 1));
    let middle = Arc::new(Barrier::new(load.clients + 1));
    let (done_tx, done) = mpsc::channel::<(usize, usize)>(load.clients);
    for c in 0..load.clients {
        let addr = addrs[c % addrs.len()].clone();
        let point = point_id(&addr);
        let (start, middle, done_tx) = (Arc::clone(&start), Arc::clone(&middle), done_tx.clone());
        let (namespaces, discovers, clients, prefix) =
            (load.namespaces, load.discovers, load.clients, load.prefix);
        tokio::spawn(async move {
            let mut swarm = client_swarm();
            swarm.dial(addr).expect("dial");
            loop {
                match swarm.select_next_some().await {
                    SwarmEvent::ConnectionEstablished { .. } => break,
                    SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial: {error}"),
                    _ => {}
                }
            }
            // Phase 1: register in every namespace at once.
            start.wait().await;
            for i in 0..namespaces {
                let ns = Namespace::new(format!("{prefix}-{i}")).expect("short");
                swarm
                    .behaviour_mut()
                    .stock
                    .register(ns, point, None)
                    .expect("an external address");
            }
            let (mut ok, mut failed) = (0, 0);
            while ok + failed < namespaces {
                match swarm.select_next_some().await {
                    SwarmEvent::Behaviour(ClientEvent::Stock(
                        rendezvous::client::Event::Registered { .. },
                    )) => ok += 1,
                    SwarmEvent::Behaviour(ClientEvent::Stock(
                        rendezvous::client::Event::RegisterFailed { .. },
                    )) => failed += 1,
                    _ => {}
                }
            }
            let _ = done_tx.send((ok, failed)).await;
            // Phase 2: discover one namespace, one request after another.
            middle.wait().await;
            let (mut found, mut failed) = (0, 0);
            for _ in 0..discovers {
                let request = wire::Message {
                    r#type: Some(MessageType::Discover as i32),
                    discover: Some(wire::Discover {
                        ns: Some(format!("{prefix}-0").into_bytes()),
                        limit: None,
                        cookie: None,
                    }),
                    ..wire::Message::default()
                };
                swarm.behaviour_mut().raw.send_request(&point, request);
                loop {
                    match swarm.select_next_some().await {
                        SwarmEvent::Behaviour(ClientEvent::Raw(
                            request_response::Event::Message {
                                message: request_response::Message::Response { response, .. },
                                ..
                            },
                        )) => {
                            let page = response.discover_response.map(|r| r.registrations.len());
                            if page == Some(clients) {
                                found += 1;
                            } else {
                                failed += 1;
                            }
                            break;
                        }
                        SwarmEvent::Behaviour(ClientEvent::Raw(
                            request_response::Event::OutboundFailure { .. },
                        )) => {
                            failed += 1;
                            break;
                        }
                        _ => {}
                    }
                }
            }
            let _ = done_tx.send((found, failed)).await;
            // Hold the connection until the other clients are done.
            let _ = tokio::time::timeout(Duration::from_secs(2), swarm.select_next_some()).await;
        });
    }
    Phases {
        start,
        middle,
        done,
    }
}

/// Sums `n` reports, within the phase deadline.
pub(crate) async fn collect(done: &mut mpsc::Receiver<(usize, usize)>, n: usize) -> (usize, usize) {
    tokio::time::timeout(PHASE_DEADLINE, async {
        let (mut a, mut b) = (0, 0);
        for _ in 0..n {
            let (x, y) = done.recv().await.expect("clients report");
            a += x;
            b += y;
        }
        (a, b)
    })
    .await
    .expect("the phase finished in time")
}
