//! The peer: it acknowledges every message, listens once, and is reached
//! over cellular through a delaying relay that meters the phone's radio.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, ping};

use super::app::app_behaviour;
use super::{CELL_ONE_WAY, SETUP_LIMIT, SwitchError, Transport, base_swarm, listen_addr};
use crate::delay_proxy::{DelayProxy, UdpDelayProxy};
use crate::netns::Netns;
use crate::radio::RadioMeter;

#[derive(NetworkBehaviour)]
struct PeerBehaviour {
    app: request_response::json::Behaviour<u64, u64>,
    ping: ping::Behaviour,
}

/// Starts the peer, with `ping` for its pings, and the cellular relay in
/// `ns`, where its Wi-Fi and cellular interfaces have the addresses
/// `[wifi, cell]`; its id, its addresses (the cellular one the relay's),
/// and the relay's meter of the phone's cellular radio.
pub(crate) fn start_peer(
    ns: &Netns,
    transport: Transport,
    [wifi_ip, cell_ip]: [IpAddr; 2],
    ping: ping::Config,
    stop: &Arc<AtomicBool>,
) -> Result<(PeerId, Multiaddr, Multiaddr, Arc<RadioMeter>), SwitchError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let stop = Arc::clone(stop);
    ns.run_async(move || async move {
        let key = Keypair::generate_ed25519();
        let id = key.public().to_peer_id();
        let mut swarm = match base_swarm(key, transport, false, |_| PeerBehaviour {
            app: app_behaviour(),
            ping: ping::Behaviour::new(ping),
        }) {
            Ok(s) => s,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        if let Err(e) = swarm.listen_on(listen_addr(transport)) {
            let _ = ready_tx.send(Err(e.to_string()));
            return;
        }
        let port = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await
                && let Some(port) = port_of(&address)
            {
                break port;
            }
        };
        let upstream: SocketAddr = ([127, 0, 0, 1], port).into();
        let relay_at = SocketAddr::new(cell_ip, 0);
        // Both kinds are started; the transport's one carries the traffic.
        let (relay, radio, _tcp, _udp) = match transport {
            Transport::Tcp => match DelayProxy::start(relay_at, upstream, CELL_ONE_WAY).await {
                Ok(p) => (p.local_addr(), p.radio(), Some(p), None),
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cellular relay: {e}")));
                    return;
                }
            },
            Transport::Quic => match UdpDelayProxy::start(relay_at, upstream, CELL_ONE_WAY).await {
                Ok(p) => (p.local_addr(), p.radio(), None, Some(p)),
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("cellular relay: {e}")));
                    return;
                }
            },
        };
        let wifi = SocketAddr::new(wifi_ip, port);
        let _ = ready_tx.send(Ok((
            id,
            socket_to_multiaddr(transport, wifi),
            socket_to_multiaddr(transport, relay),
            radio,
        )));
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        while !stop.load(Ordering::SeqCst) {
            tokio::select! {
                _ = tick.tick() => {}
                event = swarm.select_next_some() => {
                    if let SwarmEvent::Behaviour(PeerBehaviourEvent::App(
                        request_response::Event::Message {
                            message: request_response::Message::Request { request, channel, .. },
                            ..
                        },
                    )) = event
                    {
                        let _ = swarm.behaviour_mut().app.send_response(channel, request);
                    }
                }
            }
        }
    })?;
    match ready_rx.recv_timeout(SETUP_LIMIT) {
        Ok(Ok(ready)) => Ok(ready),
        Ok(Err(e)) => Err(SwitchError::Setup(format!("peer: {e}"))),
        Err(_) => Err(SwitchError::Setup("the peer did not start".into())),
    }
}

fn port_of(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        Protocol::Tcp(port) | Protocol::Udp(port) => Some(port),
        _ => None,
    })
}

fn socket_to_multiaddr(transport: Transport, addr: SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    let base = Multiaddr::empty().with(ip);
    match transport {
        Transport::Tcp => base.with(Protocol::Tcp(addr.port())),
        Transport::Quic => base.with(Protocol::Udp(addr.port())).with(Protocol::QuicV1),
    }
}
