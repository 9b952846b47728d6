//! Transport and connectivity helpers for multidriver.
//!
//! What exists today:
//!
//! - [`connectivity`]: the connectivity watcher's core. Host hints that
//!   mirror Android's `NetworkCallback` and iOS's `NWPath` (medium, metered,
//!   expensive, constrained, validated, losing, lost) and OS address events
//!   (what `if-watch` reports) become one stream of interface changes for
//!   the engine's network-change input; interface names classify the medium.
//!
//! Still to come (they need the libp2p adapter): the `SwarmBuilder` helpers
//! for TCP + Noise + yamux, QUIC, WebRTC-direct and DNS through
//! hickory-resolver with an explicit resolver configuration; the `if-watch`
//! task that feeds the watcher; and the BLE-style stream transport over the
//! proximity radio.
//!
//! # Example
//!
//! ```
//! use multidriver_transports::connectivity::{Change, InterfaceEvent, Watcher, WatcherConfig};
//! use multidriver_transports::Medium;
//!
//! let mut watcher = Watcher::new(WatcherConfig::default());
//! let event = InterfaceEvent::Up { addr: "192.168.1.20".parse()?, prefix: 24 };
//! let change = watcher.handle_interface(event, Some("wlan0"))?;
//! assert!(matches!(change, Some(Change::Up { medium: Medium::Wifi, .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod connectivity;
mod error;

pub use error::Error;
/// The vocabulary of `multidriver-scoring` the watcher speaks, re-exported.
pub use multidriver_scoring::{CellularGeneration, Medium, NetworkConditions};
