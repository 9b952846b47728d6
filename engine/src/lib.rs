//! multidriver: a routing engine for libp2p.
//!
//! It runs several discovery drivers at once (Kademlia DHT, rendezvous,
//! mDNS, BLE-style proximity), scores every route by measured latency and
//! battery cost, dials through the best one, and reacts live when a phone moves
//! between Wi-Fi and 4G, all as one `NetworkBehaviour` in your swarm.
//!
//! This is the crate an app adds. Its root has what a swarm needs:
//! [`Behaviour`] and its [`Config`] and [`Event`]s, the discovery drivers
//! ([`Discovery`], [`DiscoveryConfig`]) and the transport stack
//! ([`build_swarm`], [`StackConfig`]).
//!
//! # Crates and layers
//!
//! - [`core`] (`multidriver-core`): the sans-IO engine. One deterministic
//!   state machine; time is passed in, it opens no socket and spawns no
//!   task. Depends only on scoring, `libp2p-identity` and `multiaddr`; the
//!   simulator runs it without any of libp2p's networking.
//! - [`scoring`] (`multidriver-scoring`): route ranking by latency and
//!   battery cost, profiles, the energy model.
//! - [`behaviour`]: the libp2p adapter over the core.
//! - [`routing`] (`multidriver-routing`): the discovery drivers and the
//!   [`DriverSet`] contract; [`transports`] (`multidriver-transports`): the
//!   transport stack and the connectivity watcher.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `kad` | on | the Kademlia DHT driver |
//! | `mdns` | on | the mDNS driver |
//! | `rendezvous` | on | rendezvous point drivers |
//! | `proximity` | on | the BLE-style proximity driver and transport |
//! | `quic` | on | QUIC in [`build_swarm`] |
//! | `relay` | on | relayed routes and hole punching: [`build_swarm_with_relay`], [`Behaviour::handle_dcutr_event`] |
//! | `webrtc` | off | WebRTC-direct in [`build_swarm`] (libp2p-webrtc, alpha) |
//! | `serde` | off | load scoring profiles from TOML |
//!
//! # Example: multidriver in a swarm
//!
//! ```no_run
//! use libp2p::{futures::StreamExt, identity::Keypair, swarm::SwarmEvent};
//! use multidriver::{Behaviour, Config, Discovery, DiscoveryConfig, Event, StackConfig, build_swarm};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let key = Keypair::generate_ed25519();
//! let drivers = Discovery::new(&key, DiscoveryConfig::default().with_mdns())?;
//! let behaviour = Behaviour::new(key.public().to_peer_id(), Config::default(), drivers)?;
//! let mut swarm = build_swarm(key, &StackConfig::default(), |_| behaviour)?;
//! swarm.listen_on("/ip4/0.0.0.0/udp/0/quic-v1".parse()?)?;
//! swarm.behaviour_mut().advertise("my-app")?;
//! swarm.behaviour_mut().subscribe("my-app")?;
//! loop {
//!     match swarm.select_next_some().await {
//!         SwarmEvent::Behaviour(Event::PeerDiscovered { peer, .. }) => {
//!             swarm.behaviour_mut().connect(peer)?;
//!         }
//!         SwarmEvent::Behaviour(event) => println!("{event:?}"),
//!         _ => {}
//!     }
//! }
//! # }
//! ```
//!
//! # Example: ranking routes
//!
//! ```
//! use multidriver::scoring::{Context, LinkConditions, Medium, PowerState, Profile, Route, Timestamp, rank};
//!
//! let peer = libp2p_identity::PeerId::random();
//! let routes = [
//!     Route::from_addr(peer, "/ip4/10.0.0.2/tcp/4001".parse()?, Medium::Ethernet)?,
//!     Route::from_addr(peer, "/ip4/203.0.113.9/udp/4001/quic-v1".parse()?, Medium::Unknown)?,
//! ];
//! let profile = Profile::performance();
//! let ctx = Context {
//!     profile: &profile,
//!     links: &LinkConditions::default(),
//!     power: PowerState::MAINS,
//!     now: Timestamp::ZERO,
//! };
//! let ranking = rank(&routes, &ctx);
//! // The wired LAN route wins: a 1 ms prior beats 63 ms, even with TCP's 4-RTT handshake.
//! assert_eq!(routes[ranking.best().unwrap().index].medium, Medium::Ethernet);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod behaviour;
mod error;

pub use behaviour::{Behaviour, Config, Event, ImportReport, RouteMemory};
pub use error::Error;
pub use multidriver_core as core;
// The core's vocabulary that `Event`s carry.
pub use multidriver_core::{DriverId, InterfaceId, SwitchReason};
pub use multidriver_routing as routing;
pub use multidriver_routing::{Discovery, DiscoveryConfig, DriverEvent, DriverSet};
pub use multidriver_scoring as scoring;
// The driver kinds and timestamps that `Event`s carry.
pub use multidriver_scoring::{Source, Timestamp};
pub use multidriver_transports as transports;
#[cfg(feature = "relay")]
pub use multidriver_transports::stack::build_swarm_with_relay;
pub use multidriver_transports::stack::{StackConfig, build_swarm};
