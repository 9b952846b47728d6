//! Discovery drivers for multidriver.
//!
//! What exists today:
//!
//! - [`proximity`]: the BLE-style [`proximity::ProximityRadio`] interface a
//!   host app implements (advertise a short token, scan and report
//!   sightings with signal strength), and an in-process implementation
//!   ([`proximity::Ether`], [`proximity::InProcessRadio`]) for tests and the
//!   simulator.
//!
//! Still to come, behind the engine's driver interface, each declaring its
//! capabilities: the DHT driver (libp2p-kad provider records keyed by a hash
//! of the namespace), the rendezvous driver (the libp2p-rendezvous client
//! against one or several rendezvous points, signed peer records), the mDNS
//! driver (libp2p-mdns), the proximity driver over the radio above, and the
//! rendezvous point server library behind `multidriver rendezvous`.
//!
//! # Example
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

mod error;
pub mod proximity;

pub use error::Error;
