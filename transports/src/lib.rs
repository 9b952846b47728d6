//! Transport and connectivity helpers for multidriver.
//!
//! What it has:
//!
//! - [`connectivity`]: the connectivity watcher's core. Host hints that
//!   mirror Android's `NetworkCallback` and iOS's `NWPath` (medium, metered,
//!   expensive, constrained, validated, losing, lost) and OS address events
//!   (what `if-watch` reports) become one stream of interface changes for
//!   the engine's network-change input; interface names classify the medium.
//! - [`stack`]: the libp2p 0.57 transport stack built with `SwarmBuilder`:
//!   TCP + Noise + yamux, QUIC, WebRTC-direct (feature `webrtc`), and DNS
//!   through hickory-resolver with an explicit resolver configuration (the
//!   system one cannot be read on Android and iOS).
//! - [`ports`]: refusing a listen address whose port another socket holds
//!   (libp2p-tcp's `SO_REUSEPORT` would otherwise share it).
//!
//! The `if-watch` task that feeds the watcher runs inside
//! `multidriver::behaviour::Behaviour`; the BLE-style stream transport is
//! `multidriver_routing::ble`.
//!
//! # Example
//!
//! ```
//! use multidriver_transports::connectivity::{InterfaceEvent, NetworkChange, Watcher, WatcherConfig};
//! use multidriver_transports::Medium;
//!
//! let mut watcher = Watcher::new(WatcherConfig::default());
//! let event = InterfaceEvent::Up { addr: "192.168.1.20".parse()?, prefix: 24 };
//! let change = watcher.handle_interface(event, Some("wlan0"))?;
//! assert!(matches!(change, Some(NetworkChange::Up { medium: Medium::Wifi, .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod connectivity;
mod error;
pub mod ports;
pub mod stack;

pub use error::Error;
/// The vocabulary of `multidriver-scoring` the watcher speaks, re-exported.
pub use multidriver_scoring::{CellularGeneration, Medium, NetworkConditions};
