//! Discovery drivers for multidriver.
//!
//! - [`drivers`]: the drivers over real libp2p protocols, as one
//!   [`Discovery`] behaviour that [`multidriver::behaviour::Behaviour`] runs:
//!   a Kademlia DHT (provider records keyed by a hash of the namespace),
//!   rendezvous points (the libp2p-rendezvous client, signed peer records,
//!   one driver per point), and mDNS. Each declares its capabilities.
//! - [`proximity`]: the BLE-style [`proximity::ProximityRadio`] interface a
//!   host app implements (advertise a short token, scan and report
//!   sightings with signal strength), and an in-process implementation
//!   ([`proximity::Ether`], [`proximity::InProcessRadio`]) for tests and the
//!   simulator, whose radios also open BLE-style data links to each other
//!   ([`proximity::Link`]: latency, rate limit, bounded buffers, broken by
//!   range and power).
//! - [`ble`]: [`ble::BleTransport`], a libp2p transport over those links
//!   (`/memory/<station>` addresses), and [`ble::upgraded`] to add Noise and
//!   yamux for `SwarmBuilder::with_other_transport`.
//!
//! The proximity driver turns sightings into routes over the BLE-style
//! transport; the rendezvous point server behind `multidriver rendezvous`
//! is the `multidriver-rendezvous` crate.
//!
//! # Example: multidriver in a swarm
//!
//! ```no_run
//! use std::time::Duration;
//! use libp2p::{futures::StreamExt, identity::Keypair, swarm::SwarmEvent};
//! use multidriver::behaviour::{Behaviour, Config};
//! use multidriver_routing::{Discovery, DiscoveryConfig};
//! use multidriver_transports::stack::{StackConfig, build_swarm};
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
//!         SwarmEvent::Behaviour(multidriver::core::Event::PeerDiscovered { peer, .. }) => {
//!             swarm.behaviour_mut().connect(peer)?;
//!         }
//!         SwarmEvent::Behaviour(event) => println!("{event:?}"),
//!         _ => {}
//!     }
//! }
//! # }
//! ```
//!
//! # Example: the proximity radio
//!
//! ```
//! use multidriver_routing::proximity::{Ether, EtherConfig, ProximityRadio, Token};
//! use multidriver_scoring::Timestamp;
//!
//! let ether = Ether::new(EtherConfig::default());
//! let mut a = ether.radio([0.0, 0.0])?;
//! let mut b = ether.radio([3.0, 4.0])?; // 5 m away
//! a.advertise(Token::new([7; 16]))?;
//! b.start_scan()?;
//! ether.tick(Timestamp::ZERO);
//! assert_eq!(b.poll_sighting().map(|s| s.token), Some(Token::new([7; 16])));
//! # Ok::<(), multidriver_routing::Error>(())
//! ```

pub mod ble;
pub mod drivers;
mod error;
pub mod proximity;

pub use drivers::{Discovery, DiscoveryConfig};
pub use error::Error;
