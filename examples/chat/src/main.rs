//! A chat over multidriver: processes find each other through mDNS on a
//! LAN or through a rendezvous point, connect through the route the engine
//! ranks best, and print which route they use and why.
//!
//! On one machine, through a rendezvous point that the first process runs:
//!
//! ```text
//! cargo run -p multidriver-chat -- --serve-rendezvous --listen /ip4/127.0.0.1/tcp/4001
//! #   prints: rendezvous point: /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…
//! cargo run -p multidriver-chat -- --rendezvous /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…
//! cargo run -p multidriver-chat -- --rendezvous /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo…
//! ```
//!
//! On a LAN, with mDNS: `cargo run -p multidriver-chat -- --mdns` on each
//! machine. Type a line and press enter to send it to every connected peer.

use std::collections::BTreeSet;
use std::error::Error;
use std::time::Duration;

use clap::Parser;
use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, rendezvous};
use multidriver::scoring::rank::Components;
use multidriver::{
    Behaviour as Multidriver, Config, Discovery, DiscoveryConfig, Event, StackConfig, SwitchReason,
    build_swarm,
};
use tokio::io::{AsyncBufReadExt, BufReader};

/// The chat's own protocol: one line per request, an empty answer.
const CHAT: StreamProtocol = StreamProtocol::new("/multidriver-chat/1");

#[derive(Parser, Debug)]
#[command(about = "Chat over multidriver; shows the route in use and why.")]
struct Args {
    /// The namespace peers advertise and look up.
    #[arg(long, default_value = "multidriver-chat")]
    namespace: String,
    /// Find peers on the LAN with mDNS.
    #[arg(long)]
    mdns: bool,
    /// A rendezvous point, as `/ip4/…/tcp/…/p2p/<peer id>` (repeatable).
    #[arg(long = "rendezvous", value_name = "ADDR")]
    rendezvous: Vec<Multiaddr>,
    /// Also run a rendezvous point in this process.
    #[arg(long)]
    serve_rendezvous: bool,
    /// Listen addresses (repeatable). Default: TCP and QUIC on every
    /// interface, ports chosen by the OS.
    #[arg(long = "listen", value_name = "ADDR")]
    listen: Vec<Multiaddr>,
    /// Send this line to each peer once connected (for scripts).
    #[arg(long, value_name = "TEXT")]
    send: Option<String>,
    /// Exit after this many seconds (for scripts). Default: run until
    /// stdin closes.
    #[arg(long, value_name = "SECS")]
    exit_after: Option<u64>,
}

#[derive(NetworkBehaviour)]
struct Chat {
    multidriver: Multidriver<Discovery>,
    chat: request_response::json::Behaviour<String, ()>,
    rendezvous_point: Toggle<rendezvous::server::Behaviour>,
}

fn short(peer: &PeerId) -> String {
    let s = peer.to_base58();
    s[s.len().saturating_sub(6)..].to_owned()
}

fn why(c: &Components) -> String {
    format!(
        "cost {:.1} ms: latency {:.1}, energy {:.1}, reliability {:.1}, provenance {:.1}",
        c.total_ms(),
        c.latency_ms,
        c.energy_ms,
        c.reliability_ms,
        c.provenance_ms
    )
}

/// What the command line can get wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum ChatError {
    /// A rendezvous address without the point's peer id.
    #[error("rendezvous address {0} must end with /p2p/<peer id>")]
    RendezvousWithoutPeer(Multiaddr),
    /// No way to find peers.
    #[error("nothing to find peers with: give --mdns or --rendezvous ADDR")]
    NoDiscovery,
}

/// Peers greeted as "it connected to us" that the chat remembers (our
/// choice: a chat room's worth; past it, more are still connected to by the
/// message they send).
const MAX_MET: usize = 1024;

/// Splits `/…/p2p/<id>` into the peer and the address before it.
fn point(addr: &Multiaddr) -> Result<(PeerId, Multiaddr), ChatError> {
    let mut rest = addr.clone();
    match rest.pop() {
        Some(Protocol::P2p(peer)) => Ok((peer, rest)),
        _ => Err(ChatError::RendezvousWithoutPeer(addr.clone())),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("multidriver-chat: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    // `RUST_LOG=multidriver=debug` shows the engine's dials and decisions.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let key = Keypair::generate_ed25519();
    let me = key.public().to_peer_id();

    let mut drivers = DiscoveryConfig::default();
    if args.mdns {
        drivers = drivers.with_mdns();
    }
    let mut points = BTreeSet::new();
    for addr in &args.rendezvous {
        let (peer, addr) = point(addr)?;
        points.insert(peer);
        drivers = drivers.with_rendezvous(peer, addr);
    }
    if !args.mdns && args.rendezvous.is_empty() && !args.serve_rendezvous {
        return Err(ChatError::NoDiscovery.into());
    }
    let discovery = Discovery::new(&key, drivers)?;
    let multidriver = Multidriver::new(me, Config::default(), discovery)?;
    let serve = args.serve_rendezvous;
    let mut swarm = build_swarm(key, &StackConfig::default(), |_| Chat {
        multidriver,
        chat: request_response::json::Behaviour::new(
            [(CHAT, ProtocolSupport::Full)],
            request_response::Config::default(),
        ),
        rendezvous_point: serve
            .then(|| rendezvous::server::Behaviour::new(rendezvous::server::Config::default()))
            .into(),
    })?;
    let listen = if args.listen.is_empty() {
        vec![
            "/ip4/0.0.0.0/tcp/0".parse()?,
            "/ip4/0.0.0.0/udp/0/quic-v1".parse()?,
        ]
    } else {
        args.listen.clone()
    };
    // A taken port is refused, not shared through libp2p-tcp's SO_REUSEPORT
    // (which would split the peers who dial it between two processes).
    multidriver::transports::ports::ensure_ports_free(&listen)?;
    for addr in listen {
        swarm.listen_on(addr)?;
    }
    swarm
        .behaviour_mut()
        .multidriver
        .advertise(&args.namespace)?;
    swarm
        .behaviour_mut()
        .multidriver
        .subscribe(&args.namespace)?;
    println!("I am {me} (…{})", short(&me));

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut peers: BTreeSet<PeerId> = BTreeSet::new();
    // Peers that dialled in before we knew them, greeted once (at most
    // MAX_MET remembered).
    let mut met: BTreeSet<PeerId> = BTreeSet::new();
    let deadline = args
        .exit_after
        .map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let sleep =
        tokio::time::sleep_until(deadline.unwrap_or_else(|| {
            tokio::time::Instant::now() + Duration::from_secs(60 * 60 * 24 * 365)
        }));
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return Ok(()),
            line = stdin.next_line(), if stdin_open => match line? {
                Some(line) if !line.trim().is_empty() => {
                    for peer in &peers {
                        swarm.behaviour_mut().chat.send_request(peer, line.clone());
                        swarm.behaviour_mut().multidriver.mark_used(*peer);
                    }
                    if peers.is_empty() {
                        println!("(nobody connected yet)");
                    }
                }
                Some(_) => {}
                None if deadline.is_some() => stdin_open = false,
                None => return Ok(()),
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    // A real deployment would learn its public addresses
                    // (AutoNAT, identify); this example announces what it
                    // listens on.
                    swarm.add_external_address(address.clone());
                    if serve {
                        println!("rendezvous point: {address}/p2p/{me}");
                    } else {
                        println!("listening on {address}");
                    }
                }
                // A later chat found us first and dialled in: we want it too,
                // now rather than at our next lookup. (Only chats and the
                // rendezvous points connect to a chat.)
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. }
                    if endpoint.is_listener()
                        && !points.contains(&peer_id)
                        && !peers.contains(&peer_id)
                        && met.len() < MAX_MET
                        && met.insert(peer_id) =>
                {
                    println!("found …{} (it connected to us)", short(&peer_id));
                    // A full table is the engine's to report; the chat goes on.
                    if let Err(e) = swarm.behaviour_mut().multidriver.connect(peer_id) {
                        eprintln!("…{}: {e}", short(&peer_id));
                    }
                }
                SwarmEvent::Behaviour(ChatEvent::Multidriver(event)) => match event {
                    Event::PeerDiscovered { peer, source } => {
                        println!("found …{} through {source}", short(&peer));
                        swarm.behaviour_mut().multidriver.connect(peer)?;
                    }
                    Event::RouteSelected { peer, addr, interface, reason, .. } => {
                        // An inbound connection has no cost of ours.
                        let why = if reason.total_ms() > 0.0 { why(&reason) } else { "they dialled us".to_owned() };
                        println!("route to …{}: {addr} on {interface} ({why})", short(&peer));
                        if peers.insert(peer)
                            && let Some(text) = &args.send
                        {
                            swarm.behaviour_mut().chat.send_request(&peer, text.clone());
                        }
                    }
                    Event::RouteSwitched { peer, from, to, reason, .. } => {
                        let because = match reason {
                            SwitchReason::Better { from, to } => format!(
                                "better: {:.1} ms against {:.1} ms",
                                to.total_ms(),
                                from.total_ms()
                            ),
                            SwitchReason::InterfaceLost => "its interface went down".to_owned(),
                            SwitchReason::InterfaceLosing => "its interface is going".to_owned(),
                            SwitchReason::ConnectionClosed => "the connection closed".to_owned(),
                            SwitchReason::HolePunched => "a hole punch opened a direct path".to_owned(),
                            other => format!("{other:?}"),
                        };
                        println!("route to …{} switched: {from} → {to} ({because})", short(&peer));
                    }
                    Event::PeerDisconnected { peer } => {
                        peers.remove(&peer);
                        println!("…{} disconnected", short(&peer));
                    }
                    Event::PeerUnreachable { peer, tried } => {
                        println!("…{} unreachable ({tried} routes tried)", short(&peer));
                    }
                    _ => {}
                },
                SwarmEvent::Behaviour(ChatEvent::Chat(request_response::Event::Message {
                    peer,
                    message: request_response::Message::Request { request, channel, .. },
                    ..
                })) => {
                    println!("…{}: {request}", short(&peer));
                    if !peers.contains(&peer) {
                        // Someone who found us first: we want them too.
                        swarm.behaviour_mut().multidriver.connect(peer)?;
                    }
                    swarm.behaviour_mut().multidriver.mark_used(peer);
                    let _ = swarm.behaviour_mut().chat.send_response(channel, ());
                }
                _ => {}
            },
        }
    }
}
