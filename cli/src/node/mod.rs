//! `multidriver node`: join a namespace with the engine and print the peers
//! it finds, the route in use to each and why, and route switches as they
//! happen.
//!
//! ```text
//! multidriver node --namespace my-app --rendezvous /ip4/198.51.100.7/tcp/4001/p2p/12D3Koo…
//! multidriver node --namespace my-app --mdns --profile battery-saver
//! multidriver node --namespace my-app --rendezvous ADDR --json --exit-after 60
//! ```
//!
//! The node advertises itself in the namespace and keeps looking it up
//! through every discovery driver given (each `--rendezvous` point, mDNS
//! with `--mdns`), connects to every peer found through the route the
//! engine ranks best under `--profile`, and follows the engine's decisions.
//! Besides the engine's periodic look-ups (every 30 s in the foreground),
//! the node looks the namespace up again 1, 3 and 7 s after it starts
//! ([`WARMUP_LOOKUPS`]: a registration still in flight at its first look-up
//! is missed otherwise), and at once when a peer it does not know connects
//! to it (at most every [`INBOUND_LOOKUP_INTERVAL`]).
//! It runs until Ctrl-C or SIGTERM (exit status 0), or for `--exit-after`
//! seconds.
//!
//! Behind a NAT: the node runs libp2p's relay client, DCUtR, identify and
//! AutoNAT v2 beside the engine. A rendezvous point started with `--relay`
//! (which also answers AutoNAT) holds a reservation for it while it is not
//! known to be public, so peers reach it through the point, and DCUtR then
//! moves them to a direct path where the NATs allow it.
//!
//! # Output
//!
//! One line per event. Human-readable lines go to stdout and warnings to
//! stderr (`warning: …`). With `--json`, every event, warnings included, is
//! one JSON object on one line of stdout. Every object has `event` (its
//! kind) and `elapsed_ms` (milliseconds since the node started); every
//! other field listed for its kind is always present, `null` where it does
//! not apply. Peer ids are base58, addresses multiaddrs, costs milliseconds
//! rounded to 0.1.
//!
//! | `event` | fields |
//! |---|---|
//! | `started` | `peer` (ours), `namespace`, `profile` (its name), `drivers` (e.g. `["rendezvous /ip4/…/p2p/…", "mdns"]`) |
//! | `listening` | `addr` (a listen address ending in `/p2p/<our id>`) |
//! | `discovered` | `peer`, `source` (`rendezvous`, `mdns`, …), `addrs` (the routes the engine may dial, best first) |
//! | `connected` | `peer`, `addr`, `interface` (e.g. `if1`), `medium` (`loopback`, `wifi`, `ethernet`, `cellular-4g`, …), `transport` (`tcp`, `quic`, `webrtc`, `ble`, or `null`), `inbound` (they dialled us: then `cost` is `null`), `cost`, `why` |
//! | `switched` | `peer`, `from`, `to`, `interface`, `medium`, `transport`, `reason` (`better`, `interface_lost`, `interface_losing`, `connection_closed`, `hole_punched`), `cost` and `from_cost` (the new and old route's, for `better`), `why` |
//! | `lost` | `peer`, `reason` (`disconnected`: its last connection closed and no route replaces it; `unreachable`: every route tried failed), `tried` (routes tried, for `unreachable`) |
//! | `driver_recovered` | `driver` (a driver that had failed answers again) |
//! | `reachability` | `reachability` (`public`, `private` or `unknown`: whether peers can dial this node directly, from AutoNAT; while not public the node holds a reservation on a rendezvous point that relays) |
//! | `warning` | `kind` (`rendezvous_unreachable`, `driver_unhealthy`, `listener`, `connect_refused`, `events_dropped`), `driver`, `peer`, `message` (the same sentence human mode prints) |
//! | `stopped` | `reason` (`interrupt`, `terminate`, `exit_after`) |
//!
//! A `cost` is an object `{"total_ms", "latency_ms", "energy_ms",
//! "reliability_ms", "provenance_ms", "costly_link_ms", "relay_ms"}`: the route's cost
//! components under the profile when the engine chose it (see
//! `multidriver rank` for what each means).

mod args;
mod error;
mod error_text;
mod events;
mod output;
mod report;
mod signals;

use std::time::Duration;

use libp2p::Multiaddr;
use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{autonat, dcutr, identify, relay};
use multidriver::behaviour::{Behaviour, Config};
use multidriver::scoring::Profile;
use multidriver_routing::{Discovery, DiscoveryConfig};
use multidriver_transports::stack::{StackConfig, build_swarm_with_relay};

pub(crate) use self::args::NodeArgs;
pub(crate) use self::error::NodeError;
use self::events::State;
use self::output::Out;
use self::report::Report;
use self::signals::{Signals, Stop};
use crate::CliError;

/// The shortest time between two look-ups of the namespace made because an
/// unknown peer connected to us: our choice, so that a burst of inbound
/// connections costs one look-up, not one each. The engine's own periodic
/// look-up (30 s in the foreground) finds them anyway.
const INBOUND_LOOKUP_INTERVAL: Duration = Duration::from_secs(5);

/// When the node looks the namespace up again after its start, besides the
/// engine's periodic look-ups: our choice. Nodes started together miss each
/// other's registrations in their first look-up; without these they would
/// wait for the engine's next one, 30 s later in the foreground.
const WARMUP_LOOKUPS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(7),
];

/// How long the node keeps running after a stop to send its rendezvous
/// unregistrations: our choice, many loopback or LAN round trips. A
/// registration that does not get out lapses by its TTL.
const UNREGISTER_GRACE: Duration = Duration::from_millis(250);

/// The identify protocol version the node announces.
const IDENTIFY_PROTOCOL: &str = "/multidriver/node/1.0.0";

/// The node's protocols: the engine, and what reaching peers behind NATs
/// takes beside it.
#[derive(NetworkBehaviour)]
pub(crate) struct NodeBehaviour {
    pub(crate) multidriver: Behaviour<Discovery>,
    relay: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    identify: identify::Behaviour,
    autonat: autonat::v2::client::Behaviour,
}

/// Runs `multidriver node` until a signal or `--exit-after`.
pub(crate) fn run(args: NodeArgs) -> Result<(), CliError> {
    if args.rendezvous.is_empty() && !args.mdns {
        return Err(NodeError::NoDiscovery.into());
    }
    let profile = crate::load_profile(&args.profile)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NodeError::Runtime)?;
    match runtime.block_on(node(args, profile)) {
        Ok(()) | Err(NodeError::StdoutClosed) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn node(args: NodeArgs, profile: Profile) -> Result<(), NodeError> {
    // `RUST_LOG=multidriver=debug` shows the engine's dials and decisions.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let mut out = Out::new(args.json);
    let mut signals = Signals::install()?;

    let key = Keypair::generate_ed25519();
    let me = key.public().to_peer_id();
    // Driver labels in the order `Discovery` numbers its drivers: the
    // rendezvous points, then mDNS.
    let mut drivers = DiscoveryConfig::default();
    let mut labels = Vec::new();
    for point in &args.rendezvous {
        drivers = drivers.with_rendezvous(point.peer, point.addr.clone());
        labels.push(format!("rendezvous {point}"));
    }
    if args.mdns {
        drivers = drivers.with_mdns();
        labels.push("mdns".to_owned());
    }
    let discovery = Discovery::new(&key, drivers)?;
    let config = Config::default().with_engine(
        multidriver::core::Config::default()
            .with_profile(profile.clone())
            // The profile asked for stays, whatever the power state.
            .with_profile_map(None),
    );
    let multidriver = Behaviour::new(me, config, discovery)?;
    let mut swarm =
        build_swarm_with_relay(key, &StackConfig::default(), |key, relay| NodeBehaviour {
            multidriver,
            relay,
            dcutr: dcutr::Behaviour::new(me),
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.into(),
                key.public(),
            )),
            autonat: autonat::v2::client::Behaviour::default(),
        })?;
    let listen = if args.listen.is_empty() {
        vec![
            Multiaddr::empty()
                .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                .with(Protocol::Tcp(0)),
            Multiaddr::empty()
                .with(Protocol::Ip4(std::net::Ipv4Addr::UNSPECIFIED))
                .with(Protocol::Udp(0))
                .with(Protocol::QuicV1),
        ]
    } else {
        args.listen.clone()
    };
    // Every port checked before any is used: libp2p-tcp's SO_REUSEPORT
    // would otherwise share a taken port with another process.
    for addr in &listen {
        multidriver_transports::ports::ensure_port_free(addr).map_err(|e| NodeError::Listen {
            addr: addr.clone(),
            message: e.to_string(),
        })?;
    }
    for addr in listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NodeError::Listen {
                addr,
                message: e.to_string(),
            })?;
    }
    swarm
        .behaviour_mut()
        .multidriver
        .advertise(&args.namespace)
        .map_err(NodeError::Namespace)?;
    swarm
        .behaviour_mut()
        .multidriver
        .subscribe(&args.namespace)
        .map_err(NodeError::Namespace)?;
    out.emit(&Report::Started {
        peer: me.to_string(),
        namespace: args.namespace.clone(),
        profile: profile.name.clone(),
        drivers: labels.clone(),
    })?;

    let mut state = State {
        me,
        namespace: &args.namespace,
        points: &args.rendezvous,
        labels,
        last_lookup: None,
    };
    let exit_after = async {
        match args.exit_after {
            Some(secs) => tokio::time::sleep(Duration::from_secs(secs)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(exit_after);
    let started = tokio::time::Instant::now();
    let mut warmup = WARMUP_LOOKUPS.iter().map(|after| started + *after);
    let mut next_warmup = warmup.next();
    let stop = loop {
        let warmup_due = tokio::time::sleep_until(next_warmup.unwrap_or(started));
        tokio::select! {
            stop = signals.next() => break stop,
            () = &mut exit_after => break Stop::ExitAfter,
            () = warmup_due, if next_warmup.is_some() => {
                next_warmup = warmup.next();
                swarm
                    .behaviour_mut()
                    .multidriver
                    .discover(&args.namespace)
                    .map_err(NodeError::Namespace)?;
            }
            event = swarm.select_next_some() => state.on_event(&mut swarm, event, &mut out)?,
        }
    };
    // Withdraw the registrations, and give them a moment to get out.
    swarm
        .behaviour_mut()
        .multidriver
        .stop_advertising(&args.namespace);
    let _ = tokio::time::timeout(UNREGISTER_GRACE, async {
        loop {
            swarm.select_next_some().await;
        }
    })
    .await;
    out.emit(&Report::Stopped {
        reason: stop.as_str(),
    })
}
