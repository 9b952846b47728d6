//! The stock rust-libp2p stack at its defaults
//! ([`Stack::Stock`](super::Stack::Stock)), and the swarm builder both
//! stock stacks share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Swarm, SwarmBuilder, noise, ping, tcp, yamux};

use super::app::{App, app_behaviour};
use super::{Path, REDIAL_PAUSE, Shared, Target, Transport, base_swarm, listen_knowing_both, lock};

/// A stock swarm over the case's transport: TCP + Noise + yamux or QUIC,
/// with the swarm and QUIC settings `swarm` and `quic` make of libp2p's
/// defaults.
pub(super) fn stock_swarm<B: NetworkBehaviour>(
    key: Keypair,
    transport: Transport,
    swarm: impl FnOnce(libp2p::swarm::Config) -> libp2p::swarm::Config,
    quic: impl FnOnce(libp2p::quic::Config) -> libp2p::quic::Config,
    behaviour: impl FnOnce(&Keypair) -> B,
) -> Result<Swarm<B>, String> {
    match transport {
        Transport::Tcp => Ok(SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| e.to_string())?
            .with_behaviour(behaviour)
            .map_err(|e| e.to_string())?
            .with_swarm_config(swarm)
            .build()),
        Transport::Quic => Ok(SwarmBuilder::with_existing_identity(key)
            .with_tokio()
            .with_quic_config(quic)
            .with_behaviour(behaviour)
            .map_err(|e| e.to_string())?
            .with_swarm_config(swarm)
            .build()),
    }
}

#[derive(NetworkBehaviour)]
struct StockPhone {
    app: request_response::json::Behaviour<u64, u64>,
    ping: ping::Behaviour,
}

pub(crate) async fn stock_phone(
    transport: Transport,
    target: Target,
    log: Shared,
    sending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let behaviour = |_: &Keypair| StockPhone {
        app: app_behaviour(),
        ping: ping::Behaviour::default(),
    };
    let key = Keypair::generate_ed25519();
    let swarm = if target.traffic.sparse {
        // libp2p-swarm's own idle timeout (10 s), which sparse traffic
        // meets; see `Traffic`.
        stock_swarm(key, transport, |c| c.with_smart_dial(), |c| c, behaviour)
    } else {
        base_swarm(key, transport, false, behaviour)
    };
    let mut swarm = swarm.expect("the stack builds");
    // It knows both addresses (as from identify or a rendezvous point) and
    // first connects over Wi-Fi.
    listen_knowing_both(&mut swarm, transport, &target);
    swarm
        .dial(
            DialOpts::peer_id(target.peer)
                .addresses(vec![target.wifi.clone()])
                .build(),
        )
        .expect("a dial");

    let mut app = App::new(target.peer, log);
    let mut tick = target.traffic.ticker(&stop);
    let mut connections = 0usize;
    let mut redial_at: Option<tokio::time::Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let redial = async {
            match redial_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {
                if connections > 0 && sending.load(Ordering::SeqCst) {
                    app.send_new(&mut swarm.behaviour_mut().app);
                } else if target.traffic.sparse && sending.load(Ordering::SeqCst) {
                    // Sent on the connection this dial makes (or one
                    // already being dialed).
                    app.queue_new();
                    let _ = swarm.dial(DialOpts::peer_id(target.peer).build());
                }
            }
            () = redial => {
                redial_at = None;
                if connections == 0 {
                    let _ = swarm.dial(DialOpts::peer_id(target.peer).build());
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { connection_id, endpoint, .. } => {
                    lock(&app.log).notes.push((Instant::now(), format!("connected over {}", endpoint.get_remote_address())));
                    connections += 1;
                    app.paths.insert(connection_id, Path::of(endpoint.get_remote_address()));
                    // A new connection: send again what is unacknowledged.
                    app.resend_all(&mut swarm.behaviour_mut().app);
                }
                SwarmEvent::ConnectionClosed { num_established, cause, .. } => {
                    lock(&app.log).notes.push((Instant::now(), format!("connection closed: {cause:?}")));
                    connections = num_established as usize;
                    if connections == 0 && !target.traffic.leaves_closed(cause.as_ref(), &app.log) {
                        // Dial again at once (smart dial tries both
                        // addresses).
                        let _ = swarm.dial(DialOpts::peer_id(target.peer).build());
                    }
                }
                SwarmEvent::OutgoingConnectionError { .. } if connections == 0 => {
                    // Try again shortly rather than spin.
                    redial_at = Some(tokio::time::Instant::now() + REDIAL_PAUSE);
                }
                SwarmEvent::Behaviour(StockPhoneEvent::Ping(ping::Event { connection, result: Err(e), .. })) => {
                    lock(&app.log).notes.push((Instant::now(), format!("ping failed: {e}")));
                    // Ping no longer closes a connection itself (libp2p-ping
                    // reports the failure); the app takes it as lost: it
                    // closes it and dials again at once, without waiting for
                    // the graceful close of a dead connection (tens of
                    // seconds over TCP).
                    swarm.close_connection(connection);
                    let _ = swarm.dial(
                        DialOpts::peer_id(target.peer)
                            .condition(PeerCondition::Always)
                            .build(),
                    );
                }
                SwarmEvent::Behaviour(StockPhoneEvent::App(e)) => {
                    app.on_app_event(&e, &mut swarm.behaviour_mut().app);
                }
                _ => {}
            },
        }
    }
}
