//! How the [`Behaviour`](super::Behaviour) runs: its [`Config`].

use std::time::Duration;

/// How the [`Behaviour`](super::Behaviour) runs.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) engine: crate::core::Config,
    pub(crate) watch_interfaces: bool,
    pub(crate) probe_timeout: Duration,
    pub(crate) max_route_lookups: usize,
    pub(crate) max_remembered_routes: usize,
    pub(crate) max_pending_actions: usize,
    pub(crate) answer_ping: bool,
}

/// Read access to every setting; each says what happens at its bound.
impl Config {
    /// Whether the behaviour answers `/ipfs/ping/1.0.0` (default: yes).
    /// A stock libp2p peer's ping handler stops answering once it cannot
    /// ping us, so a node without its own ping must answer; answered pings
    /// hold nothing open. An app whose swarm runs its own `ping::Behaviour`
    /// turns this off, so that one handler owns the protocol.
    pub fn answer_ping(&self) -> bool {
        self.answer_ping
    }

    /// Builder: sets [`answer_ping`](Self::answer_ping); `false` when the
    /// swarm runs libp2p's `ping::Behaviour`.
    pub fn with_ping_answers(mut self, answer: bool) -> Self {
        self.answer_ping = answer;
        self
    }

    /// The engine core's configuration (bounds, profile, liveness).
    pub fn engine(&self) -> &crate::core::Config {
        &self.engine
    }

    /// Watch the OS's addresses with `if-watch` (default). Turn off on
    /// mobile when the app reports networks with
    /// [`Behaviour::handle_hint`](super::Behaviour::handle_hint) instead; routes then leave through the
    /// hinted default network.
    pub fn watch_interfaces(&self) -> bool {
        self.watch_interfaces
    }

    /// How long the handler waits for one probe's echo before reporting it
    /// failed. Default 20 s, libp2p-ping's timeout; the engine's liveness
    /// timeout (2 s) acts first.
    pub fn probe_timeout(&self) -> Duration {
        self.probe_timeout
    }

    /// Builder: sets [`probe_timeout`](Self::probe_timeout).
    pub fn with_probe_timeout(mut self, probe_timeout: Duration) -> Self {
        self.probe_timeout = probe_timeout;
        self
    }

    /// Remote addresses whose local interface is remembered. At the bound
    /// the memory is cleared and the kernel asked again; it is cleared on
    /// every network change anyway. Default 256.
    pub fn max_route_lookups(&self) -> usize {
        self.max_route_lookups
    }

    /// Builder: sets [`max_route_lookups`](Self::max_route_lookups).
    pub fn with_max_route_lookups(mut self, max_route_lookups: usize) -> Self {
        self.max_route_lookups = max_route_lookups;
        self
    }

    /// Routes remembered so that each follows its address to another
    /// interface when the network changes (the kernel routes an address
    /// through whichever interface is up). At the bound the route that
    /// lapses first is forgotten; the engine keeps it, but it no longer
    /// moves. Default 4096.
    pub fn max_remembered_routes(&self) -> usize {
        self.max_remembered_routes
    }

    /// Builder: sets [`max_remembered_routes`](Self::max_remembered_routes).
    pub fn with_max_remembered_routes(mut self, max_remembered_routes: usize) -> Self {
        self.max_remembered_routes = max_remembered_routes;
        self
    }

    /// Most commands for the swarm waiting at once (dials, closes,
    /// probes). The engine's own bounds keep it far below; at the bound the
    /// behaviour stops taking commands from the engine until the swarm has
    /// taken some. Default 1024.
    pub fn max_pending_actions(&self) -> usize {
        self.max_pending_actions
    }

    /// Builder: sets [`max_pending_actions`](Self::max_pending_actions).
    pub fn with_max_pending_actions(mut self, max_pending_actions: usize) -> Self {
        self.max_pending_actions = max_pending_actions;
        self
    }
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
            answer_ping: true,
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
