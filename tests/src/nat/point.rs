//! The rendezvous point on the "internet" side, in-process: the
//! `multidriver-rendezvous` server with its circuit relay on, as
//! `multidriver rendezvous run --relay` runs it; and a probe that asks the
//! point whether phone B's registration is there yet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, SwarmBuilder, noise, rendezvous, tcp, yamux};
use multidriver_rendezvous::{Config, RelayLimits, Server, ServerEvent};

use super::{NAMESPACE, NatError, POINT_IP, POINT_PORT, SETUP_LIMIT};
use crate::netns::Netns;

/// How often a stopping task looks at its stop flag. Our own choice.
const STOP_POLL: Duration = Duration::from_millis(50);

/// The point's relay limits: libp2p-relay 0.22's defaults (the point's
/// own), except a circuit's bytes and duration. At the default 128 KiB and
/// 2 min, the app's flow (a request-response stream per message, 20 a
/// second: about 10 KB/s through the circuit, measured here) would end a
/// circuit after about 13 s, so a conversation that must stay relayed (a
/// symmetric NAT) would be cut by the operator's limit, not the NAT. The
/// limits themselves are tested in `rendezvous/tests/relay.rs`.
fn relay_limits() -> RelayLimits {
    RelayLimits {
        enabled: true,
        max_circuit_bytes: 64 << 20,
        max_circuit_duration_secs: 10 * 60,
        ..RelayLimits::default()
    }
}

/// The running point: dropping it stops it and waits for it to remove its
/// database.
pub(super) struct PointTask {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for PointTask {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            // The server's shutdown is bounded (its flush timeout), so this
            // join is too.
            let _ = handle.join();
        }
    }
}

/// The point, started in `ns` (the internet namespace, where [`POINT_IP`]
/// is on `lo`); its id, its TCP and QUIC addresses (with `/p2p/<id>`), and
/// its task. It runs until `stop` is set or the task is dropped.
pub(super) fn start_point(
    ns: &Netns,
    stop: &Arc<AtomicBool>,
) -> Result<(PeerId, Multiaddr, Multiaddr, PointTask), NatError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(4);
    let task_stop = Arc::clone(stop);
    let stop = Arc::clone(stop);
    let db = std::env::temp_dir().join(format!(
        "multidriver-nat-point-{}-{}.db",
        std::process::id(),
        ns.name()
    ));
    let handle = ns.run_async(move || async move {
        let config = Config {
            db: db.clone(),
            listen: vec![
                format!("/ip4/{POINT_IP}/tcp/{POINT_PORT}")
                    .parse()
                    .expect("valid"),
                format!("/ip4/{POINT_IP}/udp/{POINT_PORT}/quic-v1")
                    .parse()
                    .expect("valid"),
            ],
            relay: relay_limits(),
            ..Config::default()
        };
        let server = match Server::new(config, Keypair::generate_ed25519(), None) {
            Ok(s) => s,
            Err(e) => {
                let _ = ready_tx.send(Err(e.to_string()));
                return;
            }
        };
        let shutdown = async {
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(STOP_POLL).await;
            }
        };
        let result = server
            .run(shutdown, |event| {
                if let ServerEvent::Listening(addr) = event {
                    let _ = ready_tx.try_send(Ok(addr));
                }
            })
            .await;
        if let Err(e) = result {
            eprintln!("rendezvous point: {e}");
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut path = db.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    })?;
    let task = PointTask {
        stop: task_stop,
        handle: Some(handle),
    };
    let mut tcp = None;
    let mut quic = None;
    let deadline = std::time::Instant::now() + SETUP_LIMIT;
    while tcp.is_none() || quic.is_none() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match ready_rx.recv_timeout(left) {
            Ok(Ok(addr)) => {
                let s = addr.to_string();
                if s.contains("/quic-v1") {
                    quic = Some(addr);
                } else if s.contains("/tcp/") {
                    tcp = Some(addr);
                }
            }
            Ok(Err(e)) => return Err(NatError::Setup(format!("rendezvous point: {e}"))),
            Err(_) => {
                return Err(NatError::Setup(
                    "the rendezvous point did not listen".into(),
                ));
            }
        }
    }
    let (tcp, quic) = (tcp.expect("set"), quic.expect("set"));
    let id = tcp
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(id) => Some(id),
            _ => None,
        })
        .ok_or_else(|| NatError::Setup(format!("no /p2p in {tcp}")))?;
    Ok((id, tcp, quic, task))
}

/// Waits (in `ns`, the internet namespace: no NAT in the way) until a
/// discover at the point returns `peer` under [`NAMESPACE`]; asks every
/// 200 ms for at most [`SETUP_LIMIT`]. A stock rendezvous client, so the
/// wait is the same for every stack.
pub(super) fn await_registration(
    ns: &Netns,
    point: PeerId,
    point_addr: Multiaddr,
    peer: PeerId,
) -> Result<(), NatError> {
    let handle = ns.run_async(move || async move {
        let mut swarm = SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| e.to_string())?
            .with_behaviour(|key| rendezvous::client::Behaviour::new(key.clone()))
            .map_err(|e| e.to_string())?
            .build();
        swarm.dial(point_addr).map_err(|e| e.to_string())?;
        let namespace = rendezvous::Namespace::from_static(NAMESPACE);
        let deadline = tokio::time::Instant::now() + SETUP_LIMIT;
        let mut ask = tokio::time::interval(Duration::from_millis(200));
        let mut connected = false;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {
                    return Err(format!("phone B not registered at the point within {SETUP_LIMIT:?}"));
                }
                _ = ask.tick() => {
                    if connected {
                        swarm.behaviour_mut().discover(Some(namespace.clone()), None, None, point);
                    }
                }
                event = swarm.select_next_some() => match event {
                    SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == point => {
                        connected = true;
                    }
                    SwarmEvent::Behaviour(rendezvous::client::Event::Discovered { registrations, .. })
                        if registrations.iter().any(|r| r.record.peer_id() == peer) =>
                    {
                        return Ok(());
                    }
                    _ => {}
                },
            }
        }
    })?;
    handle
        .join()
        .map_err(|_| NatError::Setup("the registration probe panicked".into()))?
        .map_err(NatError::Setup)
}
