//! How the [`Behaviour`](super::Behaviour) runs: its [`Config`].

use std::time::Duration;

/// How the [`Behaviour`] runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The engine core's configuration (bounds, profile, liveness).
    pub engine: crate::core::Config,
    /// Watch the OS's addresses with `if-watch` (default). Turn off on
    /// mobile when the app reports networks with
    /// [`Behaviour::handle_hint`] instead; routes then leave through the
    /// hinted default network.
    pub watch_interfaces: bool,
    /// How long the handler waits for one probe's echo before reporting it
    /// failed. Default 20 s, libp2p-ping's timeout; the engine's liveness
    /// timeout (2 s) acts first.
    pub probe_timeout: Duration,
    /// Remote addresses whose local interface is remembered. At the bound
    /// the memory is cleared and the kernel asked again; it is cleared on
    /// every network change anyway. Default 256.
    pub max_route_lookups: usize,
    /// Routes remembered so that each follows its address to another
    /// interface when the network changes (the kernel routes an address
    /// through whichever interface is up). At the bound the route that
    /// lapses first is forgotten; the engine keeps it, but it no longer
    /// moves. Default 4096.
    pub max_remembered_routes: usize,
    /// Most commands for the swarm waiting at once (dials, closes,
    /// probes). The engine's own bounds keep it far below; at the bound the
    /// behaviour stops taking commands from the engine until the swarm has
    /// taken some. Default 1024.
    pub max_pending_actions: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            engine: crate::core::Config::default(),
            watch_interfaces: true,
            // libp2p-ping's default timeout (ping `handler.rs`).
            probe_timeout: Duration::from_secs(20),
            max_route_lookups: 256,
            max_remembered_routes: 4096,
            max_pending_actions: 1024,
        }
    }
}

impl Config {
    /// Replaces the engine configuration.
    pub fn with_engine(mut self, engine: crate::core::Config) -> Self {
        self.engine = engine;
        self
    }

    /// Turns the `if-watch` address watcher on or off.
    pub fn with_interface_watching(mut self, on: bool) -> Self {
        self.watch_interfaces = on;
        self
    }
}
