//! Bounds and timings of the engine core.

use std::time::Duration;

use multidriver_scoring::Profile;

use crate::Error;
use crate::schedule::{DriverSchedule, ProfileMap};

/// Configuration of an [`Engine`](crate::Engine): start from
/// [`Config::default`] and change it with the `with_*` builders.
///
/// Every table and queue the engine keeps is bounded here; each setting's
/// reader (e.g. [`Config::max_peers`]) says what happens at its bound.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub(crate) profile: Profile,
    pub(crate) max_peers: usize,
    pub(crate) max_routes_per_peer: usize,
    pub(crate) max_attempts_per_peer: usize,
    pub(crate) max_attempts_total: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_interfaces: usize,
    pub(crate) max_pending_events: usize,
    pub(crate) max_pending_commands: usize,
    pub(crate) dial_timeout: Duration,
    pub(crate) conn_low_watermark: usize,
    pub(crate) conn_high_watermark: usize,
    pub(crate) conn_grace: Duration,
    pub(crate) recent_use: Duration,
    pub(crate) schedule: DriverSchedule,
    pub(crate) profile_map: Option<ProfileMap>,
    pub(crate) max_drivers: usize,
    pub(crate) max_namespaces: usize,
    pub(crate) max_queries: usize,
    pub(crate) query_timeout: Duration,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) seed: u64,
    pub(crate) close_grace: Duration,
    pub(crate) liveness: Option<Liveness>,
    pub(crate) recheck: Option<Duration>,
    pub(crate) max_recheck: Duration,
    pub(crate) max_relays: usize,
    pub(crate) reservations: usize,
}

/// Read access to every setting; each says what happens at its bound.
impl Config {
    /// The scoring profile in force until [`Engine::set_profile`] changes it.
    ///
    /// [`Engine::set_profile`]: crate::Engine::set_profile
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Most peers tracked. At the bound, a new peer evicts the peer that has
    /// no connection, no race and no app interest and was touched longest
    /// ago; if every peer is in use, the new peer's route is refused with
    /// [`Error::TableFull`]. Default 1024.
    pub fn max_peers(&self) -> usize {
        self.max_peers
    }

    /// Most routes kept per peer. At the bound, a new route replaces the
    /// route that carries no connection or dial and expires soonest; if every
    /// route is in use, the new one is refused with [`Error::TableFull`].
    /// Default 16.
    pub fn max_routes_per_peer(&self) -> usize {
        self.max_routes_per_peer
    }

    /// Most dial attempts in flight at once for one peer, whatever the
    /// profile asks. Default 4.
    pub fn max_attempts_per_peer(&self) -> usize {
        self.max_attempts_per_peer
    }

    /// Most dial attempts in flight in total. At the bound, races wait and
    /// continue as attempts resolve. Default 64.
    pub fn max_attempts_total(&self) -> usize {
        self.max_attempts_total
    }

    /// Most open connections tracked. At the bound no new dial starts until
    /// one closes, and inbound connections are refused with
    /// [`Error::TableFull`] (the adapter should close them). Default 512.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Most interfaces tracked. At the bound, a new interface replaces the
    /// lowest-numbered one that is down (its routes are dead and are
    /// forgotten with it); if every tracked interface is up, the new one is
    /// refused with [`Error::TableFull`]. Default 16.
    pub fn max_interfaces(&self) -> usize {
        self.max_interfaces
    }

    /// Most relays known ([`Engine::add_relay`]). At the bound a new relay
    /// is refused with [`Error::TableFull`](crate::Error::TableFull).
    /// Default 8.
    ///
    /// [`Engine::add_relay`]: crate::Engine::add_relay
    pub fn max_relays(&self) -> usize {
        self.max_relays
    }

    /// How many relays hold a reservation for this node while it is not
    /// known to be public; 0 never reserves. Default 1 (iroh keeps one home
    /// relay; a second only helps while the first is being replaced).
    pub fn reservations(&self) -> usize {
        self.reservations
    }

    /// Builder: sets [`max_relays`](Self::max_relays) and
    /// [`reservations`](Self::reservations).
    pub fn with_relays(mut self, max_relays: usize, reservations: usize) -> Self {
        self.max_relays = max_relays;
        self.reservations = reservations;
        self
    }

    /// Builder: sets [`max_interfaces`](Self::max_interfaces).
    pub fn with_max_interfaces(mut self, max_interfaces: usize) -> Self {
        self.max_interfaces = max_interfaces;
        self
    }

    /// Most events waiting for [`Engine::poll_event`]. At the bound the
    /// oldest event is dropped and counted; the next poll reports the count
    /// in [`Event::EventsDropped`] before the remaining events. Default 1024.
    ///
    /// [`Engine::poll_event`]: crate::Engine::poll_event
    /// [`Event::EventsDropped`]: crate::Event::EventsDropped
    pub fn max_pending_events(&self) -> usize {
        self.max_pending_events
    }

    /// Most commands waiting for [`Engine::poll_command`]. A host that drains
    /// commands after every input never comes near it; one that stops
    /// polling finds at most this many. At the bound the oldest command
    /// whose work ends by a deadline of its own is dropped and counted
    /// ([`Engine::dropped_commands`]): a dropped dial fails after
    /// [`Config::dial_timeout`], a dropped lookup or advertisement after
    /// [`Config::query_timeout`], a dropped keep-alive counts as unanswered.
    /// Reservations, releases, stops and closes, which have no deadline, are
    /// kept while any other command can go; only a queue of nothing else
    /// loses its oldest. Default 4096 (our choice: four times the event
    /// bound; one input produces at most a few hundred commands at the
    /// default table bounds).
    ///
    /// [`Engine::poll_command`]: crate::Engine::poll_command
    /// [`Engine::dropped_commands`]: crate::Engine::dropped_commands
    pub fn max_pending_commands(&self) -> usize {
        self.max_pending_commands
    }

    /// An attempt without a result after this long is cancelled and counted
    /// as failed. Default 5 s, libp2p-quic's handshake timeout (libp2p-quic
    /// 0.14 `config.rs`).
    pub fn dial_timeout(&self) -> Duration {
        self.dial_timeout
    }

    /// The connection manager trims open connections down to this many once
    /// there are more than [`conn_high_watermark`](Self::conn_high_watermark).
    /// Default 150, Berty's mobile setting (berty/weshnet
    /// `pkg/ipfsutil/repo.go`).
    pub fn conn_low_watermark(&self) -> usize {
        self.conn_low_watermark
    }

    /// Trimming starts above this many open connections. Default 200, Berty's
    /// mobile setting (same source).
    pub fn conn_high_watermark(&self) -> usize {
        self.conn_high_watermark
    }

    /// A connection younger than this is never trimmed. Default 20 s, Berty's
    /// mobile setting (same source).
    pub fn conn_grace(&self) -> Duration {
        self.conn_grace
    }

    /// A peer the app reported using ([`Engine::mark_used`]) within this
    /// long is never trimmed. Default 60 s, go-libp2p's connection manager
    /// grace period (go-libp2p `p2p/net/connmgr`).
    ///
    /// [`Engine::mark_used`]: crate::Engine::mark_used
    pub fn recent_use(&self) -> Duration {
        self.recent_use
    }

    /// Builder: sets [`recent_use`](Self::recent_use).
    pub fn with_recent_use(mut self, recent_use: Duration) -> Self {
        self.recent_use = recent_use;
        self
    }

    /// Which drivers run in which state.
    pub fn schedule(&self) -> &DriverSchedule {
        &self.schedule
    }

    /// If set, [`Engine::handle_power`] selects the profile from the power
    /// state; if not, the profile changes only by [`Engine::set_profile`].
    /// Default: the default [`ProfileMap`].
    ///
    /// [`Engine::handle_power`]: crate::Engine::handle_power
    /// [`Engine::set_profile`]: crate::Engine::set_profile
    pub fn profile_map(&self) -> &Option<ProfileMap> {
        &self.profile_map
    }

    /// Most drivers registered; more are refused with [`Error::TableFull`].
    /// Default 16.
    pub fn max_drivers(&self) -> usize {
        self.max_drivers
    }

    /// Builder: sets [`max_drivers`](Self::max_drivers).
    pub fn with_max_drivers(mut self, max_drivers: usize) -> Self {
        self.max_drivers = max_drivers;
        self
    }

    /// Most namespaces advertised at once; more are refused with
    /// [`Error::TableFull`]. Default 32.
    pub fn max_namespaces(&self) -> usize {
        self.max_namespaces
    }

    /// Builder: sets [`max_namespaces`](Self::max_namespaces).
    pub fn with_max_namespaces(mut self, max_namespaces: usize) -> Self {
        self.max_namespaces = max_namespaces;
        self
    }

    /// Most driver operations in flight. At the bound, advertisements wait
    /// for their next refresh and discoveries skip the drivers beyond it.
    /// Default 64.
    pub fn max_queries(&self) -> usize {
        self.max_queries
    }

    /// Builder: sets [`max_queries`](Self::max_queries).
    pub fn with_max_queries(mut self, max_queries: usize) -> Self {
        self.max_queries = max_queries;
        self
    }

    /// A driver operation without an outcome after this long counts as
    /// failed. Default 60 s, libp2p-kad's query timeout (libp2p-kad
    /// `behaviour.rs`).
    pub fn query_timeout(&self) -> Duration {
        self.query_timeout
    }

    /// Builder: sets [`query_timeout`](Self::query_timeout).
    pub fn with_query_timeout(mut self, query_timeout: Duration) -> Self {
        self.query_timeout = query_timeout;
        self
    }

    /// First backoff after a driver fails; doubles with each failure in a
    /// row, ±20 % jitter. Default 1 s (our choice).
    pub fn backoff_base(&self) -> Duration {
        self.backoff_base
    }

    /// Builder: sets [`backoff_base`](Self::backoff_base).
    pub fn with_backoff_base(mut self, backoff_base: Duration) -> Self {
        self.backoff_base = backoff_base;
        self
    }

    /// Longest backoff. Default 5 min (our choice: libp2p-kad bootstraps
    /// every 5 min, libp2p-kad `behaviour.rs`).
    pub fn backoff_max(&self) -> Duration {
        self.backoff_max
    }

    /// Builder: sets [`backoff_max`](Self::backoff_max).
    pub fn with_backoff_max(mut self, backoff_max: Duration) -> Self {
        self.backoff_max = backoff_max;
        self
    }

    /// Seed of the jitter: the same seed and inputs give the same outputs.
    /// Default 0.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// How long the old connection stays open after a better one took over
    /// (make-before-break), so that streams on it can finish. Default 2 s (our
    /// choice: several round trips on any medium we model).
    pub fn close_grace(&self) -> Duration {
        self.close_grace
    }

    /// How the engine checks that open connections still carry packets;
    /// `None` leaves it to the adapter (keep-alives are then only asked on
    /// cellular links, and never timed). Default: [`Liveness::default`].
    pub fn liveness(&self) -> Option<Liveness> {
        self.liveness
    }

    /// How long a connected peer waits before trying again a better route
    /// that failed (with nothing else to say it works again, such as a
    /// network event). While tries keep failing, or keep finding a path
    /// that fails again soon, the wait doubles up to
    /// [`max_recheck`](Self::max_recheck); it starts afresh once no try was
    /// needed for twice that. Each try is one make-before-break dial of
    /// that route. `None`: never, a failed
    /// route is tried again only once its failure penalty has decayed.
    /// Default 5 s (iroh's path heartbeat, n0-computer/iroh `socket.rs`,
    /// docs/PARAMETERS.md).
    pub fn recheck(&self) -> Option<Duration> {
        self.recheck
    }

    /// Builder: sets [`recheck`](Self::recheck).
    pub fn with_recheck(mut self, recheck: Option<Duration>) -> Self {
        self.recheck = recheck;
        self
    }

    /// Longest wait between such tries. Default 60 s (our choice: a broken
    /// Wi-Fi costs one dial a minute).
    pub fn max_recheck(&self) -> Duration {
        self.max_recheck
    }

    /// Builder: sets [`max_recheck`](Self::max_recheck).
    pub fn with_max_recheck(mut self, max_recheck: Duration) -> Self {
        self.max_recheck = max_recheck;
        self
    }
}

/// How the engine probes open connections and decides one is dead.
///
/// Each probe is a [`Command::KeepAlive`] entry; the adapter pings the
/// connection and reports the answer with [`Engine::handle_rtt_sample`]. A
/// probe unanswered for [`probe_timeout`](Self::probe_timeout) closes the
/// connection ([`CloseReason::Unresponsive`]) and re-races its peer, as
/// [`Engine::handle_connection_lost`] does.
///
/// Probes are sent:
/// - on the primary connection of a peer the app uses
///   ([`Engine::mark_used`]), at most once per
///   [`active_heartbeat`](Self::active_heartbeat), with a deadline of
///   its route's RTO (SRTT + 4 × RTTVAR), at least
///   [`active_probe_timeout`](Self::active_probe_timeout) and at most 60 s:
///   the radio is up for the app's data anyway, and an app that is talking
///   needs a dead path found in about two seconds, not seven;
/// - on the other connections of peers used within the profile's quiet
///   period (`quiet.after_s`): over cellular batched once per the
///   profile's keep-alive interval (one radio wake-up for all), elsewhere
///   batched every [`heartbeat`](Self::heartbeat);
/// - on any connection whose interface just carried a packet (riding on
///   that radio wake-up, see [`RIDE_WINDOW`](crate::RIDE_WINDOW)), if it
///   was not probed in the last half keep-alive interval.
///
/// A connection whose RTT was sampled in the last half interval is skipped.
/// A peer the app left quiet gets no timed probes at all (see the profile's
/// [`Quiet`](multidriver_scoring::profile::Quiet)).
///
/// [`Command::KeepAlive`]: crate::Command::KeepAlive
/// [`Engine::handle_rtt_sample`]: crate::Engine::handle_rtt_sample
/// [`Engine::handle_connection_lost`]: crate::Engine::handle_connection_lost
/// [`Engine::mark_used`]: crate::Engine::mark_used
/// [`CloseReason::Unresponsive`]: crate::CloseReason::Unresponsive
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub(crate) heartbeat: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) active_heartbeat: Duration,
    pub(crate) active_probe_timeout: Duration,
}

/// Read access to every setting; each says what happens at its bound.
impl Liveness {
    /// How often non-cellular connections are probed. Default 5 s, iroh's
    /// path heartbeat (n0-computer/iroh `socket.rs`, docs/PARAMETERS.md).
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }

    /// Builder: sets [`heartbeat`](Self::heartbeat).
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// How long a probe may go unanswered. Default 2 s (our choice: twice
    /// RFC 6298's 1 s minimum RTO, above any RTT the profiles expect, below
    /// libp2p-ping's 20 s).
    pub fn probe_timeout(&self) -> Duration {
        self.probe_timeout
    }

    /// Builder: sets [`probe_timeout`](Self::probe_timeout).
    pub fn with_probe_timeout(mut self, probe_timeout: Duration) -> Self {
        self.probe_timeout = probe_timeout;
        self
    }

    /// How often the primary connection of a peer the app is using is
    /// probed. Default 1 s (our choice: Tailscale's 3 s heartbeat and
    /// iroh's 5 s serve idle paths; a path carrying an app's messages is
    /// checked more often at no radio cost).
    pub fn active_heartbeat(&self) -> Duration {
        self.active_heartbeat
    }

    /// Builder: sets [`active_heartbeat`](Self::active_heartbeat).
    pub fn with_active_heartbeat(mut self, active_heartbeat: Duration) -> Self {
        self.active_heartbeat = active_heartbeat;
        self
    }

    /// The shortest deadline of such a probe. Default 1 s, RFC 6298's
    /// minimum RTO (§2.4), so a probe queued behind the app's own data on
    /// a busy connection is not taken for a dead path.
    pub fn active_probe_timeout(&self) -> Duration {
        self.active_probe_timeout
    }

    /// Builder: sets [`active_probe_timeout`](Self::active_probe_timeout).
    pub fn with_active_probe_timeout(mut self, active_probe_timeout: Duration) -> Self {
        self.active_probe_timeout = active_probe_timeout;
        self
    }
}

impl Default for Liveness {
    fn default() -> Self {
        Liveness {
            heartbeat: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(2),
            active_heartbeat: Duration::from_secs(1),
            active_probe_timeout: Duration::from_secs(1),
        }
    }
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
            max_pending_commands: 4096,
            dial_timeout: Duration::from_secs(5),
            close_grace: Duration::from_secs(2),
            conn_low_watermark: 150,
            conn_high_watermark: 200,
            conn_grace: Duration::from_secs(20),
            recent_use: Duration::from_secs(60),
            schedule: DriverSchedule::default(),
            profile_map: Some(ProfileMap::default()),
            max_drivers: 16,
            max_namespaces: 32,
            max_queries: 64,
            query_timeout: Duration::from_secs(60),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            seed: 0,
            liveness: Some(Liveness::default()),
            recheck: Some(Duration::from_secs(5)),
            max_recheck: Duration::from_secs(60),
            max_relays: 8,
            reservations: 1,
        }
    }
}

impl Config {
    /// Builder: how connections are probed; `None` leaves it to the adapter.
    pub fn with_liveness(mut self, liveness: Option<Liveness>) -> Self {
        self.liveness = liveness;
        self
    }

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

    /// Builder: most commands waiting for the host.
    pub fn with_max_pending_commands(mut self, n: usize) -> Self {
        self.max_pending_commands = n;
        self
    }

    /// Builder: the dial timeout.
    pub fn with_dial_timeout(mut self, timeout: Duration) -> Self {
        self.dial_timeout = timeout;
        self
    }

    /// Builder: the connection manager's watermarks and grace period.
    pub fn with_watermarks(mut self, low: usize, high: usize, grace: Duration) -> Self {
        self.conn_low_watermark = low;
        self.conn_high_watermark = high;
        self.conn_grace = grace;
        self
    }

    /// Builder: the driver schedule.
    pub fn with_schedule(mut self, schedule: DriverSchedule) -> Self {
        self.schedule = schedule;
        self
    }

    /// Builder: the profile map (`None`: the profile changes only by
    /// `set_profile`).
    pub fn with_profile_map(mut self, map: Option<ProfileMap>) -> Self {
        self.profile_map = map;
        self
    }

    /// Builder: the jitter seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
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
            ("max_pending_commands", self.max_pending_commands),
            ("max_drivers", self.max_drivers),
            ("max_namespaces", self.max_namespaces),
            ("max_queries", self.max_queries),
            ("max_relays", self.max_relays),
        ] {
            if value == 0 {
                return Err(Error::InvalidConfig {
                    field,
                    reason: "must be at least 1",
                });
            }
        }
        if let Some(map) = &self.profile_map {
            for p in [
                &map.foreground,
                &map.background,
                &map.suspended,
                &map.low_battery,
            ] {
                p.validate()?;
            }
        }
        if let Some(l) = self.liveness
            && (l.heartbeat.is_zero()
                || l.probe_timeout.is_zero()
                || l.active_heartbeat.is_zero()
                || l.active_probe_timeout.is_zero())
        {
            return Err(Error::InvalidConfig {
                field: "liveness",
                reason: "heartbeats and probe timeouts must be longer than zero",
            });
        }
        if let Some(r) = self.recheck
            && (r.is_zero() || self.max_recheck < r)
        {
            return Err(Error::InvalidConfig {
                field: "recheck",
                reason: "must be longer than zero and at most max_recheck",
            });
        }
        if self.conn_low_watermark > self.conn_high_watermark {
            return Err(Error::InvalidConfig {
                field: "conn_low_watermark",
                reason: "must be at most conn_high_watermark",
            });
        }
        if self.backoff_base.is_zero() || self.backoff_max < self.backoff_base {
            return Err(Error::InvalidConfig {
                field: "backoff_base",
                reason: "must be longer than zero and at most backoff_max",
            });
        }
        if self.schedule.foreground_interval.is_zero()
            || self.schedule.background_interval.is_zero()
        {
            return Err(Error::InvalidConfig {
                field: "schedule.foreground_interval",
                reason: "and schedule.background_interval must be longer than zero",
            });
        }
        if self.query_timeout.is_zero() {
            return Err(Error::InvalidConfig {
                field: "query_timeout",
                reason: "must be longer than zero",
            });
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
