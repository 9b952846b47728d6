//! Bounds and timings of the engine core.

use std::time::Duration;

use multidriver_scoring::Profile;

use crate::core::Error;

/// Configuration of an [`Engine`](crate::core::Engine).
///
/// Every table and queue the engine keeps is bounded here; each field says
/// what happens at its bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The scoring profile in force until [`Engine::set_profile`] changes it.
    ///
    /// [`Engine::set_profile`]: crate::core::Engine::set_profile
    pub profile: Profile,
    /// Most peers tracked. At the bound, a new peer evicts the peer that has
    /// no connection, no race and no app interest and was touched longest
    /// ago; if every peer is in use, the new peer's route is refused with
    /// [`Error::TableFull`]. Default 1024.
    pub max_peers: usize,
    /// Most routes kept per peer. At the bound, a new route replaces the
    /// route that carries no connection or dial and expires soonest; if every
    /// route is in use, the new one is refused with [`Error::TableFull`].
    /// Default 16.
    pub max_routes_per_peer: usize,
    /// Most dial attempts in flight at once for one peer, whatever the
    /// profile asks. Default 4.
    pub max_attempts_per_peer: usize,
    /// Most dial attempts in flight in total. At the bound, races wait and
    /// continue as attempts resolve. Default 64.
    pub max_attempts_total: usize,
    /// Most open connections tracked. At the bound no new dial starts until
    /// one closes, and inbound connections are refused with
    /// [`Error::TableFull`] (the adapter should close them). Default 512.
    pub max_connections: usize,
    /// Most interfaces tracked. At the bound, a new interface is refused with
    /// [`Error::TableFull`]. Default 16.
    pub max_interfaces: usize,
    /// Most events waiting for [`Engine::poll_event`]. At the bound the
    /// oldest event is dropped and counted; the next poll reports the count
    /// in [`Event::EventsDropped`] before the remaining events. Default 1024.
    ///
    /// [`Engine::poll_event`]: crate::core::Engine::poll_event
    /// [`Event::EventsDropped`]: crate::core::Event::EventsDropped
    pub max_pending_events: usize,
    /// An attempt without a result after this long is cancelled and counted
    /// as failed. Default 5 s, libp2p-quic's handshake timeout (libp2p-quic
    /// 0.14 `config.rs`).
    pub dial_timeout: Duration,
    /// How long the old connection stays open after a better one took over
    /// (make-before-break), so that streams on it can finish. Default 2 s (our
    /// choice: several round trips on any medium we model).
    pub close_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: Profile::balanced(),
            max_peers: 1024,
            max_routes_per_peer: 16,
            max_attempts_per_peer: 4,
            max_attempts_total: 64,
            max_connections: 512,
            max_interfaces: 16,
            max_pending_events: 1024,
            dial_timeout: Duration::from_secs(5),
            close_grace: Duration::from_secs(2),
        }
    }
}

impl Config {
    /// Builder: the scoring profile.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Builder: most peers tracked.
    pub fn with_max_peers(mut self, n: usize) -> Self {
        self.max_peers = n;
        self
    }

    /// Builder: most routes per peer.
    pub fn with_max_routes_per_peer(mut self, n: usize) -> Self {
        self.max_routes_per_peer = n;
        self
    }

    /// Builder: most attempts in flight per peer and in total.
    pub fn with_max_attempts(mut self, per_peer: usize, total: usize) -> Self {
        self.max_attempts_per_peer = per_peer;
        self.max_attempts_total = total;
        self
    }

    /// Builder: most open connections.
    pub fn with_max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Builder: most pending events.
    pub fn with_max_pending_events(mut self, n: usize) -> Self {
        self.max_pending_events = n;
        self
    }

    /// Builder: the dial timeout.
    pub fn with_dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = timeout;
        self
    }

    /// Builder: the make-before-break grace period.
    pub fn with_close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// Checks that every bound is at least 1 and the profile is valid.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the field, or [`Error::Scoring`] for
    /// an invalid profile.
    pub fn validate(&self) -> Result<(), Error> {
        self.profile.validate()?;
        for (field, value) in [
            ("max_peers", self.max_peers),
            ("max_routes_per_peer", self.max_routes_per_peer),
            ("max_attempts_per_peer", self.max_attempts_per_peer),
            ("max_attempts_total", self.max_attempts_total),
            ("max_connections", self.max_connections),
            ("max_interfaces", self.max_interfaces),
            ("max_pending_events", self.max_pending_events),
        ] {
            if value == 0 {
                return Err(Error::InvalidConfig {
                    field,
                    reason: "must be at least 1",
                });
            }
        }
        if self.dial_timeout.is_zero() {
            return Err(Error::InvalidConfig {
                field: "dial_timeout",
                reason: "must be longer than zero",
            });
        }
        Ok(())
    }
}
