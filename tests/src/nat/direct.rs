//! Whether the NAT is real: phone A tries to reach phone B directly,
//! without a relay or a punch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, Swarm};

use super::stock::{StockNode, learn_observed_address, listen, stock_swarm};
use super::{NatError, PHONE_PORT, Point, SETUP_LIMIT, STOP_POLL, StopOnDrop, Topology, Transport};
use crate::netns::NatKind;

/// How long one direct dial is given. Our own choice: a connection on veth
/// takes milliseconds; 5 s only allows for a loaded machine (a dropped TCP
/// SYN would otherwise be retried for about two minutes, Linux's
/// `tcp_syn_retries` of 6).
pub const DIRECT_DIAL_WAIT: Duration = Duration::from_secs(5);

/// What phone A reached directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectDial {
    /// A connected to the rendezvous point (the control: the internet is
    /// reachable through A's NAT).
    pub point: bool,
    /// A connected to B at B's NAT's public address and B's port, while B
    /// listens there and its NAT holds a mapping for that port (B dialled
    /// the point from it).
    pub b_public: bool,
    /// A connected to B's private address.
    pub b_private: bool,
    /// What each dial ended with.
    pub notes: Vec<String>,
}

/// Builds the topology with a cone NAT in front of A and `nat_b` in front
/// of B, and tries A → point, A → B's public address, A → B's private
/// address, each for at most [`DIRECT_DIAL_WAIT`].
pub fn direct_dial(transport: Transport, nat_b: NatKind) -> Result<DirectDial, NatError> {
    let topology = Topology::build(NatKind::Cone, nat_b)?;
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_exit = StopOnDrop(Arc::clone(&stop));
    let (point_id, tcp, quic, point_task) = super::point::start_point(&topology.inet, &stop)?;
    let point = Point {
        id: point_id,
        addr: match transport {
            Transport::Tcp => tcp,
            Transport::Quic => quic,
        },
    };

    // B listens and talks to the point, so its NAT has a mapping.
    let (b_tx, b_rx) = std::sync::mpsc::sync_channel(1);
    let b_task = {
        let (point, stop) = (point.clone(), Arc::clone(&stop));
        topology.phone_b.run_async(move || async move {
            let mut swarm = match stock_swarm(Keypair::generate_ed25519()) {
                Ok(s) => s,
                Err(e) => {
                    let _ = b_tx.send(Err(e));
                    return;
                }
            };
            let id = *swarm.local_peer_id();
            let setup = async {
                listen(&mut swarm, transport).await?;
                learn_observed_address(&mut swarm, &point).await
            };
            let _ = b_tx.send(setup.await.map(|()| id));
            let mut tick = tokio::time::interval(STOP_POLL);
            while !stop.load(Ordering::SeqCst) {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = swarm.select_next_some() => {}
                }
            }
        })?
    };
    let b_id = match b_rx.recv_timeout(SETUP_LIMIT) {
        Ok(Ok(id)) => id,
        Ok(Err(e)) => return Err(NatError::Setup(format!("phone B: {e}"))),
        Err(_) => return Err(NatError::Setup("phone B did not start".into())),
    };

    let public = transport
        .listen(topology.b_public_ip())
        .with(libp2p::multiaddr::Protocol::P2p(b_id));
    let private = transport
        .listen(topology.b_private_ip())
        .with(libp2p::multiaddr::Protocol::P2p(b_id));
    debug_assert!(public.to_string().contains(&PHONE_PORT.to_string()));
    let a_task = {
        let point = point.clone();
        topology.phone_a.run_async(move || async move {
            let mut swarm = stock_swarm(Keypair::generate_ed25519())?;
            listen(&mut swarm, transport).await?;
            let mut notes = Vec::new();
            let point_ok = dial(&mut swarm, point.addr.clone(), point.id, &mut notes).await;
            let public_ok = dial(&mut swarm, public, b_id, &mut notes).await;
            let private_ok = dial(&mut swarm, private, b_id, &mut notes).await;
            Ok::<_, String>(DirectDial {
                point: point_ok,
                b_public: public_ok,
                b_private: private_ok,
                notes,
            })
        })?
    };
    let result = a_task
        .join()
        .map_err(|_| NatError::Setup("phone A panicked".into()))?
        .map_err(NatError::Setup);
    stop.store(true, Ordering::SeqCst);
    let _ = b_task.join();
    drop(point_task);
    result
}

/// Dials `addr` and waits up to [`DIRECT_DIAL_WAIT`] for a connection to
/// `peer`; notes how it ended.
async fn dial(
    swarm: &mut Swarm<StockNode>,
    addr: Multiaddr,
    peer: PeerId,
    notes: &mut Vec<String>,
) -> bool {
    let opts: DialOpts = addr.clone().into();
    let id = opts.connection_id();
    if let Err(e) = swarm.dial(opts) {
        notes.push(format!("{addr}: not dialled: {e}"));
        return false;
    }
    let deadline = tokio::time::Instant::now() + DIRECT_DIAL_WAIT;
    loop {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            }) if peer_id == peer && connection_id == id => {
                notes.push(format!("{addr}: connected"));
                return true;
            }
            Ok(SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            }) if connection_id == id => {
                notes.push(format!("{addr}: {error}"));
                return false;
            }
            Ok(_) => {}
            Err(_) => {
                notes.push(format!("{addr}: nothing within {DIRECT_DIAL_WAIT:?}"));
                return false;
            }
        }
    }
}
