//! multidriver: a routing engine for libp2p.
//!
//! It runs several discovery drivers at once (Kademlia DHT, rendezvous,
//! mDNS, BLE-style proximity), scores every route by measured latency and
//! battery cost, dials through the best one, and reacts live when a phone moves
//! between Wi-Fi and 4G, all as one `NetworkBehaviour` in your swarm.
//!
//! # Status
//!
//! - [`scoring`] (re-exported): route ranking by latency and battery cost.
//! - [`core`]: the sans-IO engine core: routes per peer, the racing dialer,
//!   make-before-break upgrades, network changes, discovery driver
//!   orchestration with health and backoff, profiles by power state, and a
//!   connection manager. See its docs for an example of driving it by hand.
//! - [`behaviour`]: the libp2p adapter, [`behaviour::Behaviour`], one
//!   `NetworkBehaviour` that runs the core over a real swarm.
//!
//! # Example
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

pub use error::Error;
pub use multidriver_core as core;
pub use multidriver_scoring as scoring;
pub use multidriver_transports as transports;
