//! The phone running multidriver
//! ([`Stack::Multidriver`](super::Stack::Multidriver)): its `Behaviour`
//! beside the app's protocol, on interface events or host hints.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use multidriver::Event as MdEvent;
use multidriver::behaviour::{Behaviour as Multidriver, Config as MdConfig};
use multidriver::scoring::CellularGeneration;
use multidriver::transports::connectivity::{
    ConnectivityHint, HostTransport, NetworkId, NetworkState,
};
use multidriver_routing::{Discovery, DiscoveryConfig};

use super::app::{App, app_behaviour};
use super::{CELL_NET, Path, Shared, Target, Transport, WIFI_NET, base_swarm, listen_addr, lock};

#[derive(NetworkBehaviour)]
struct MdPhone {
    multidriver: Multidriver<Discovery>,
    app: request_response::json::Behaviour<u64, u64>,
}

pub(super) fn available(network: NetworkId, transport: HostTransport) -> ConnectivityHint {
    ConnectivityHint::Available {
        network,
        state: NetworkState {
            transport,
            validated: true,
            ..NetworkState::default()
        },
    }
}

pub(crate) async fn multidriver_phone(
    transport: Transport,
    target: Target,
    hinted: bool,
    mut hints: tokio::sync::mpsc::Receiver<ConnectivityHint>,
    log: Shared,
    sending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) {
    let key = Keypair::generate_ed25519();
    let local = key.public().to_peer_id();
    let discovery = Discovery::new(&key, DiscoveryConfig::default()).expect("no drivers to fail");
    let config = MdConfig::default().with_interface_watching(!hinted);
    let mut swarm = base_swarm(key, transport, true, |_| MdPhone {
        multidriver: Multidriver::new(local, config, discovery).expect("a valid config"),
        app: app_behaviour(),
    })
    .expect("the stack builds");
    swarm
        .listen_on(listen_addr(transport))
        .expect("a listen address");
    if hinted {
        let md = &mut swarm.behaviour_mut().multidriver;
        md.handle_hint(available(WIFI_NET, HostTransport::Wifi))
            .expect("room for a network");
        md.handle_hint(available(
            CELL_NET,
            HostTransport::Cellular(CellularGeneration::G4),
        ))
        .expect("room for a network");
    }
    let ttl = Duration::from_secs(3600);
    let md = &mut swarm.behaviour_mut().multidriver;
    for addr in [&target.wifi, &target.cell] {
        match md.add_route(target.peer, addr.clone(), ttl) {
            // No interface reaches it (Wi-Fi is off in the idle harness):
            // the engine refuses it, and an app goes on without it.
            Ok(()) | Err(multidriver::Error::NoInterfaceFor { .. }) => {}
            Err(e) => panic!("a route to {addr}: {e}"),
        }
    }
    md.connect(target.peer).expect("a peer to connect to");

    let mut app = App::new(target.peer, log);
    let mut tick = target.traffic.ticker(&stop);
    let mut connected = false;
    while !stop.load(Ordering::SeqCst) {
        tokio::select! {
            _ = tick.tick() => {
                if connected && sending.load(Ordering::SeqCst) {
                    let b = swarm.behaviour_mut();
                    b.multidriver.mark_used(target.peer);
                    app.send_new(&mut b.app);
                }
            }
            Some(hint) = hints.recv() => {
                // Only a full network table refuses a hint; two fit.
                let _ = swarm.behaviour_mut().multidriver.handle_hint(hint);
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { connection_id, endpoint, .. } => {
                    app.paths.insert(connection_id, Path::of(endpoint.get_remote_address()));
                }
                SwarmEvent::Behaviour(MdPhoneEvent::App(e)) => {
                    app.on_app_event(&e, &mut swarm.behaviour_mut().app);
                }
                SwarmEvent::Behaviour(MdPhoneEvent::Multidriver(e)) => {
                    lock(&app.log).notes.push((Instant::now(), format!("{e:?}")));
                    match e {
                    MdEvent::RouteSelected { .. } => {
                        connected = true;
                        app.resend_all(&mut swarm.behaviour_mut().app);
                    }
                    // The app resends on the engine's word that the path
                    // changed: what was in flight on the old one may be gone.
                    MdEvent::RouteSwitched { reason, .. } => {
                        let name = format!("{reason:?}");
                        let name = name.split([' ', '{', '(']).next().unwrap_or("").to_owned();
                        lock(&app.log).switches.push((Instant::now(), name));
                        app.resend_all(&mut swarm.behaviour_mut().app);
                    }
                    _ => {}
                    }
                }
                _ => {}
            },
        }
    }
}
