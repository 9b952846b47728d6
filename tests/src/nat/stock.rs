//! Both phones on a stock rust-libp2p 0.57 app ([`Stack::Stock`]) as the
//! rust-libp2p `dcutr` example and the rendezvous docs put it together:
//! TCP and QUIC, the relay client, `dcutr::Behaviour`, identify, ping and
//! the libp2p-rendezvous 0.18 client.
//!
//! Nothing here closes the relayed connection after a punch: the example
//! does not, so neither does a stock app. request-response then spreads
//! requests over both connections (libp2p-request-response 0.30 picks the
//! connection by request id, `try_send_request`), and the relayed one
//! stays open while it carries them.
//!
//! [`Stack::Stock`]: super::Stack::Stock

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, Swarm, SwarmBuilder, dcutr, identify, noise, ping, relay, rendezvous, tcp,
    yamux,
};

use super::app::{AppBehaviour, Sender, answer, app_behaviour};
use super::{
    MESSAGE_INTERVAL, NAMESPACE, Point, SETUP_LIMIT, STOP_POLL, Shared, Side, Transport, lock,
    note_punch,
};

/// The identify protocol version the stock app announces.
const IDENTIFY_PROTOCOL: &str = "/multidriver-nat-stock/1.0.0";
/// A stock app's idle connection timeout: the `dcutr` example's
/// (`with_idle_connection_timeout(Duration::from_secs(60))`).
const IDLE: Duration = Duration::from_secs(60);
/// How long the app waits before dialing or discovering again after a
/// failure (our choice: soon, without spinning; the network-switch
/// harness's pause).
const RETRY_PAUSE: Duration = Duration::from_millis(500);

#[derive(NetworkBehaviour)]
pub(super) struct StockNode {
    relay: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    rendezvous: rendezvous::client::Behaviour,
    app: AppBehaviour,
}

pub(super) fn stock_swarm(key: Keypair) -> Result<Swarm<StockNode>, String> {
    Ok(SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| e.to_string())?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| e.to_string())?
        .with_behaviour(|key, relay| StockNode {
            relay,
            dcutr: dcutr::Behaviour::new(key.public().to_peer_id()),
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.into(),
                key.public(),
            )),
            ping: ping::Behaviour::default(),
            rendezvous: rendezvous::client::Behaviour::new(key.clone()),
            app: app_behaviour(),
        })
        .map_err(|e| e.to_string())?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE))
        .build())
}

/// Listens on the case's transport and waits for the listener, so that
/// later dials (to the point) leave from the listening port.
pub(super) async fn listen(
    swarm: &mut Swarm<StockNode>,
    transport: Transport,
) -> Result<(), String> {
    swarm
        .listen_on(transport.listen("0.0.0.0"))
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + SETUP_LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { .. }) => return Ok(()),
            Ok(_) => {}
            Err(_) => return Err("no listen address".into()),
        }
    }
}

/// Dials the point and waits until identify has told us how the point sees
/// us (the `dcutr` example's first step: it learns the public address that
/// DCUtR will offer).
pub(super) async fn learn_observed_address(
    swarm: &mut Swarm<StockNode>,
    point: &Point,
) -> Result<(), String> {
    swarm.dial(point.addr.clone()).map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + SETUP_LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, swarm.select_next_some()).await {
            Ok(SwarmEvent::Behaviour(StockNodeEvent::Identify(identify::Event::Received {
                peer_id,
                ..
            }))) if peer_id == point.id => return Ok(()),
            Ok(SwarmEvent::OutgoingConnectionError { error, .. }) => {
                return Err(format!("dialing the point: {error}"));
            }
            Ok(_) => {}
            Err(_) => return Err("identify with the point did not complete".into()),
        }
    }
}

/// Phone B: reserves on the point's relay, registers its relayed address,
/// answers A's messages. Sends its id on `ready` once it asked to register.
pub(super) async fn phone_b(
    transport: Transport,
    point: Point,
    ready: std::sync::mpsc::SyncSender<Result<PeerId, String>>,
    log: Shared,
    stop: Arc<AtomicBool>,
) {
    let key = Keypair::generate_ed25519();
    let id = key.public().to_peer_id();
    let mut swarm = match stock_swarm(key) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let setup = async {
        listen(&mut swarm, transport).await?;
        learn_observed_address(&mut swarm, &point).await?;
        swarm
            .listen_on(point.circuit())
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    if let Err(e) = setup.await {
        let _ = ready.send(Err(e));
        return;
    }
    let namespace = rendezvous::Namespace::from_static(NAMESPACE);
    let mut ready = Some(ready);
    let mut tick = tokio::time::interval(STOP_POLL);
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            _ = tick.tick() => {}
            event = swarm.select_next_some() => match event {
                // The relay client confirms the relayed address as external
                // once the reservation is accepted; the registration carries
                // it.
                SwarmEvent::Behaviour(StockNodeEvent::Relay(
                    relay::client::Event::ReservationReqAccepted { .. },
                )) => {
                    lock(&log).notes.push((Instant::now(), "B: reservation accepted".into()));
                    if let Err(e) = swarm.behaviour_mut().rendezvous.register(namespace.clone(), point.id, None)
                        && let Some(r) = ready.take()
                    {
                        let _ = r.send(Err(format!("register: {e}")));
                        return;
                    }
                    if let Some(r) = ready.take() {
                        let _ = r.send(Ok(id));
                    }
                }
                SwarmEvent::Behaviour(StockNodeEvent::Rendezvous(
                    rendezvous::client::Event::RegisterFailed { error, .. },
                )) => {
                    lock(&log).notes.push((Instant::now(), format!("B: registration failed: {error:?}")));
                }
                SwarmEvent::Behaviour(StockNodeEvent::Dcutr(e)) => {
                    note_punch(&log, Side::B, &e);
                }
                SwarmEvent::Behaviour(StockNodeEvent::App(e)) => {
                    answer(e, &mut swarm.behaviour_mut().app);
                }
                _ => {}
            },
        }
    }
}

/// Phone A: discovers B at the point, dials the registered addresses,
/// sends a message every [`MESSAGE_INTERVAL`] once connected.
pub(super) async fn phone_a(
    transport: Transport,
    point: Point,
    b: PeerId,
    log: Shared,
    sending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let mut swarm = stock_swarm(Keypair::generate_ed25519()).expect("the stack builds");
    let setup = async {
        listen(&mut swarm, transport).await?;
        learn_observed_address(&mut swarm, &point).await
    };
    if let Err(e) = setup.await {
        lock(&log)
            .notes
            .push((Instant::now(), format!("A: setup failed: {e}")));
        return;
    }
    let namespace = rendezvous::Namespace::from_static(NAMESPACE);
    swarm
        .behaviour_mut()
        .rendezvous
        .discover(Some(namespace.clone()), None, None, point.id);
    let mut sender = Sender::new(b, Arc::clone(&log));
    let mut b_addrs: Vec<Multiaddr> = Vec::new();
    let mut tick = tokio::time::interval(MESSAGE_INTERVAL);
    let mut retry_at: Option<tokio::time::Instant> = None;
    while !stop.load(Ordering::SeqCst) {
        let retry = async {
            match retry_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {
                if !sender.direct.is_empty() && sending.load(Ordering::SeqCst) {
                    sender.send_new(&mut swarm.behaviour_mut().app);
                }
            }
            () = retry => {
                retry_at = None;
                if !sender.direct.is_empty() {
                    continue;
                }
                if b_addrs.is_empty() {
                    swarm.behaviour_mut().rendezvous.discover(Some(namespace.clone()), None, None, point.id);
                } else {
                    let _ = swarm.dial(DialOpts::peer_id(b).addresses(b_addrs.clone()).build());
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(StockNodeEvent::Rendezvous(
                    rendezvous::client::Event::Discovered { registrations, .. },
                )) => {
                    match registrations.iter().find(|r| r.record.peer_id() == b) {
                        Some(r) => {
                            b_addrs = r.record.addresses().to_vec();
                            lock(&log).notes.push((Instant::now(), format!("A: discovered B at {b_addrs:?}")));
                            let _ = swarm.dial(DialOpts::peer_id(b).addresses(b_addrs.clone()).build());
                        }
                        None => retry_at = Some(tokio::time::Instant::now() + RETRY_PAUSE),
                    }
                }
                SwarmEvent::Behaviour(StockNodeEvent::Rendezvous(
                    rendezvous::client::Event::DiscoverFailed { .. },
                )) => retry_at = Some(tokio::time::Instant::now() + RETRY_PAUSE),
                SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } if peer_id == b => {
                    sender.connected(connection_id, endpoint.get_remote_address());
                    // A new connection: send again what is unacknowledged.
                    sender.resend_all(&mut swarm.behaviour_mut().app);
                }
                SwarmEvent::ConnectionClosed { peer_id, connection_id, num_established, .. } if peer_id == b => {
                    sender.closed(connection_id);
                    if num_established == 0 {
                        retry_at = Some(tokio::time::Instant::now() + RETRY_PAUSE);
                    }
                }
                SwarmEvent::OutgoingConnectionError { peer_id: Some(p), error, .. } if p == b => {
                    lock(&log).notes.push((Instant::now(), format!("A: dial to B failed: {error}")));
                    if sender.direct.is_empty() {
                        retry_at = Some(tokio::time::Instant::now() + RETRY_PAUSE);
                    }
                }
                SwarmEvent::Behaviour(StockNodeEvent::Dcutr(e)) => {
                    note_punch(&log, Side::A, &e);
                }
                SwarmEvent::Behaviour(StockNodeEvent::App(e)) => {
                    sender.on_event(&e, &mut swarm.behaviour_mut().app);
                }
                _ => {}
            },
        }
    }
}
