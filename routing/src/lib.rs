//! Discovery drivers for multidriver.
//!
//! - [`DriverSet`]: the contract between discovery drivers and the engine's
//!   libp2p `Behaviour` (in the `multidriver` crate), which runs them and
//!   orders their operations.
//! - [`Discovery`]: the drivers over real libp2p protocols, as one driver
//!   set, one module each ([`kad`], [`rendezvous`], [`mdns`], and the
//!   proximity driver):
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
//! is the `multidriver-rendezvous` crate. Apps add the `multidriver` crate,
//! which re-exports [`Discovery`] and has the full example of a swarm.
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

#[cfg(feature = "proximity")]
pub mod ble;
pub mod discovery;
mod driver_set;
mod error;
#[cfg(feature = "kad")]
pub mod kad;
#[cfg(feature = "mdns")]
pub mod mdns;
#[cfg(feature = "proximity")]
mod nearby;
#[cfg(feature = "proximity")]
pub mod proximity;
#[cfg(feature = "rendezvous")]
pub mod rendezvous;

pub use discovery::{Discovery, DiscoveryConfig};
pub use driver_set::{DriverEvent, DriverSet};
pub use error::Error;
#[cfg(feature = "proximity")]
pub use nearby::{
    PROXIMITY_CAPS, PROXIMITY_ROUTE_TTL, ProximityConfig, SCAN_WINDOW, namespace_token,
};
