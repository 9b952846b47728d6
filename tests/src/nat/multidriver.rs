//! Both phones on multidriver ([`Stack::Multidriver`]): the adapter's
//! `Behaviour<Discovery>` with the point as its rendezvous point, beside
//! libp2p's relay client, DCUtR, identify and the AutoNAT v2 client, in
//! `multidriver::build_swarm_with_relay`'s swarm. DCUtR and AutoNAT events
//! go to the engine (`handle_dcutr_event`, `handle_autonat_event`).
//!
//! Phone B only advertises: the engine meets the point, sees from identify
//! that it relays, reserves there (its reachability is unknown) and
//! registers the relayed address. Phone A asks the engine to discover the
//! namespace and to connect to B once found; the engine dials the relayed
//! route, moves to the punched connection make-before-break and closes the
//! circuit.
//!
//! The point also answers AutoNAT v2 (it does with its relay on): its
//! dial-back to a phone's NAT address is dropped by the NAT, so about one
//! probe interval (5 s) in, the engine hears the phone is private and
//! keeps its reservation. Until then reachability is unknown, which
//! reserves as well.
//!
//! [`Stack::Multidriver`]: super::Stack::Multidriver

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, Swarm, SwarmEvent};
use libp2p::{PeerId, autonat, dcutr, identify, relay};
use multidriver::transports::stack::Dns;
use multidriver::{Behaviour, Config, Discovery, DiscoveryConfig, Event, StackConfig};

use super::app::{AppBehaviour, Sender, answer, app_behaviour};
use super::{
    MESSAGE_INTERVAL, NAMESPACE, Point, STOP_POLL, Shared, Side, Transport, lock, note_punch,
};

/// The identify protocol version the app announces.
const IDENTIFY_PROTOCOL: &str = "/multidriver-nat/1.0.0";
/// How often phone A asks the engine to look the namespace up again until
/// B is found. Our own choice: a second, far below the connect limit.
const DISCOVER_AGAIN: Duration = Duration::from_secs(1);

#[derive(NetworkBehaviour)]
struct MdNode {
    multidriver: Behaviour<Discovery>,
    relay: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    identify: identify::Behaviour,
    autonat: autonat::v2::client::Behaviour,
    app: AppBehaviour,
}

fn md_swarm(key: Keypair, point: &Point) -> Result<Swarm<MdNode>, String> {
    let stack = StackConfig::default().with_dns(Dns::Disabled);
    multidriver::build_swarm_with_relay(key, &stack, |key, relay| {
        let local = key.public().to_peer_id();
        let drivers = Discovery::new(
            key,
            DiscoveryConfig::default().with_rendezvous(point.id, point.bare()),
        )
        .expect("no mDNS to fail");
        MdNode {
            multidriver: Behaviour::new(local, Config::default(), drivers).expect("a valid config"),
            relay,
            dcutr: dcutr::Behaviour::new(local),
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.into(),
                key.public(),
            )),
            autonat: autonat::v2::client::Behaviour::default(),
            app: app_behaviour(),
        }
    })
    .map_err(|e| e.to_string())
}

/// What both phones hand to the engine; `true` if the event was one.
fn feed_engine(swarm: &mut Swarm<MdNode>, event: &MdNodeEvent, side: Side, log: &Shared) -> bool {
    match event {
        MdNodeEvent::Dcutr(e) => {
            swarm.behaviour_mut().multidriver.handle_dcutr_event(e);
            note_punch(log, side, e);
            true
        }
        MdNodeEvent::Autonat(e) => {
            swarm.behaviour_mut().multidriver.handle_autonat_event(e);
            true
        }
        _ => false,
    }
}

/// Phone B: listens, advertises [`NAMESPACE`] (the engine reserves on the
/// point and registers the relayed address), answers A's messages. Sends
/// its id on `ready` once it is running.
pub(super) async fn phone_b(
    transport: Transport,
    point: Point,
    ready: std::sync::mpsc::SyncSender<Result<PeerId, String>>,
    log: Shared,
    stop: Arc<AtomicBool>,
) {
    let key = Keypair::generate_ed25519();
    let id = key.public().to_peer_id();
    let mut swarm = match md_swarm(key, &point) {
        Ok(s) => s,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if let Err(e) = swarm.listen_on(transport.listen("0.0.0.0")) {
        let _ = ready.send(Err(e.to_string()));
        return;
    }
    if let Err(e) = swarm.behaviour_mut().multidriver.advertise(NAMESPACE) {
        let _ = ready.send(Err(e.to_string()));
        return;
    }
    let _ = ready.send(Ok(id));
    let mut tick = tokio::time::interval(STOP_POLL);
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            _ = tick.tick() => {}
            event = swarm.select_next_some() => match event {
                SwarmEvent::ExternalAddrConfirmed { address } => {
                    lock(&log).notes.push((Instant::now(), format!("B: external address {address}")));
                }
                SwarmEvent::Behaviour(MdNodeEvent::App(e)) => {
                    answer(e, &mut swarm.behaviour_mut().app);
                }
                SwarmEvent::Behaviour(e) => {
                    feed_engine(&mut swarm, &e, Side::B, &log);
                }
                _ => {}
            },
        }
    }
}

/// Phone A: has the engine discover [`NAMESPACE`] and connect to B once
/// found; sends a message every [`MESSAGE_INTERVAL`] once connected.
pub(super) async fn phone_a(
    transport: Transport,
    point: Point,
    b: PeerId,
    log: Shared,
    sending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let mut swarm = md_swarm(Keypair::generate_ed25519(), &point).expect("the stack builds");
    swarm
        .listen_on(transport.listen("0.0.0.0"))
        .expect("a listen address");
    let _ = swarm.behaviour_mut().multidriver.discover(NAMESPACE);
    let mut sender = Sender::new(b, Arc::clone(&log));
    let mut wanted = false;
    let mut tick = tokio::time::interval(MESSAGE_INTERVAL);
    let mut discover_again = tokio::time::interval(DISCOVER_AGAIN);
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            _ = tick.tick() => {
                if !sender.direct.is_empty() && sending.load(Ordering::SeqCst) {
                    let md = swarm.behaviour_mut();
                    md.multidriver.mark_used(b);
                    sender.send_new(&mut md.app);
                }
            }
            _ = discover_again.tick() => {
                if !wanted {
                    let _ = swarm.behaviour_mut().multidriver.discover(NAMESPACE);
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, connection_id, endpoint, .. } if peer_id == b => {
                    sender.connected(connection_id, endpoint.get_remote_address());
                }
                SwarmEvent::ConnectionClosed { peer_id, connection_id, .. } if peer_id == b => {
                    sender.closed(connection_id);
                }
                SwarmEvent::Behaviour(MdNodeEvent::App(e)) => {
                    sender.on_event(&e, &mut swarm.behaviour_mut().app);
                }
                SwarmEvent::Behaviour(MdNodeEvent::Multidriver(e)) => {
                    lock(&log).notes.push((Instant::now(), format!("A: {e:?}")));
                    match e {
                        Event::PeerDiscovered { peer, .. } if peer == b && !wanted => {
                            wanted = swarm.behaviour_mut().multidriver.connect(b).is_ok();
                        }
                        // The app sends again on the engine's word that the
                        // path changed: what was in flight on the old one
                        // may be gone.
                        Event::RouteSelected { peer, .. } | Event::RouteSwitched { peer, .. } if peer == b => {
                            sender.resend_all(&mut swarm.behaviour_mut().app);
                        }
                        _ => {}
                    }
                }
                SwarmEvent::Behaviour(e) => {
                    feed_engine(&mut swarm, &e, Side::A, &log);
                }
                _ => {}
            },
        }
    }
}
