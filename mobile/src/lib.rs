//! multidriver inside Android and iOS apps: [UniFFI] bindings over one
//! [`Node`], for Kotlin, Swift and Python.
//!
//! - **The node.** [`Node::start`] with a [`NodeConfig`] (listen
//!   addresses, rendezvous points, mDNS, a profile's name or TOML, a saved
//!   identity and route memory), then [`Node::advertise`],
//!   [`Node::subscribe`], [`Node::connect`], [`Node::send`] on a trial
//!   message protocol, [`Node::route`] with its explanation,
//!   [`Node::export_memory`] / [`Node::import_memory`] across restarts,
//!   and [`Node::stop`].
//! - **Events** to the host's [`NodeListener`], on the node's own thread,
//!   in order: peers discovered and lost, routes selected and switched
//!   (with the reason), messages, profile changes, warnings.
//! - **Host inputs** from the OS's callbacks: [`Node::network_available`],
//!   [`Node::network_changed`], [`Node::network_losing`] (with the OS's
//!   time to live), [`Node::network_lost`], [`Node::set_lifecycle`],
//!   [`Node::set_battery`]. The README maps each Android and iOS callback
//!   to these.
//! - **Bluetooth** through the host's own stack: a [`ProximityRadio`] the
//!   app implements, which the engine scans, advertises and opens links
//!   through.
//! - **Logs** to logcat on Android and os_log on Apple platforms, at a
//!   level the host sets, only when the host calls [`init_logging`].
//!
//! Every call returns promptly: it checks its arguments, queues work for
//! the node's tokio runtime (its own two threads) and returns. The node's
//! tables and queues are bounded ([`NodeConfig::max_pending_events`],
//! [`NodeConfig::max_pending_calls`], and the radio's: 256 sightings, 32 links, 64 KiB unread per link).
//!
//! # Example (Rust; the bindings read the same)
//!
//! ```no_run
//! use std::sync::Arc;
//! use multidriver_mobile::{Node, NodeConfig, NodeEvent, NodeListener, NetworkInfo, NetworkTransport};
//!
//! struct Print;
//! impl NodeListener for Print {
//!     fn on_event(&self, event: NodeEvent) {
//!         println!("{event:?}");
//!     }
//! }
//!
//! let config = NodeConfig {
//!     listen_addrs: vec!["/ip4/0.0.0.0/tcp/0".into(), "/ip4/0.0.0.0/udp/0/quic-v1".into()],
//!     rendezvous_points: vec!["/ip4/198.51.100.7/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA".into()],
//!     mdns: true,
//!     profile: "balanced".into(),
//!     identity: None,
//!     route_memory: None,
//!     watch_os_interfaces: false,
//!     max_pending_events: 1024,
//!     max_pending_calls: 1024,
//! };
//! let node = Node::start(config, Arc::new(Print), None)?;
//! // From ConnectivityManager.NetworkCallback.onAvailable:
//! node.network_available(100, NetworkInfo {
//!     transport: NetworkTransport::Wifi,
//!     metered: false,
//!     expensive: false,
//!     constrained: false,
//!     validated: true,
//! })?;
//! node.advertise("my-app".into())?;
//! node.subscribe("my-app".into())?;
//! // ... later, from onStop:
//! node.stop();
//! # Ok::<(), multidriver_mobile::MobileError>(())
//! ```
//!
//! [UniFFI]: https://mozilla.github.io/uniffi-rs/

uniffi::setup_scaffolding!();

mod error;
mod log;
mod node;
mod radio;
mod types;

pub use error::{MobileError, RadioError};
pub use log::{LOG_TAG, LogSink, init_logging, set_log_level};
pub use node::{MAX_MESSAGE, MESSAGE_PROTOCOL, Node, NodeListener};
pub use radio::ProximityRadio;
pub use types::{
    AppLifecycle, BatteryInfo, LogLevel, NetworkInfo, NetworkTransport, NodeConfig, NodeEvent,
    RouteInfo,
};
