//! Keep-alives and liveness probes, and quiet liveness.
//!
//! **Quiet liveness.** Nothing wakes a radio when nothing happens. A peer the
//! app has not used for the profile's `quiet.after_s` is *quiet*: its
//! connections get no probes on a timer, and the node's own side is watched
//! through OS interface events and host hints instead. The first message
//! after the quiet carries a probe (`quiet.probe_on_resume`) whose deadline
//! is the route's RTO; unanswered, the connection is closed and the
//! next-best route raced at once. A quiet peer's connection that closes (a
//! relay's circuit limit, the remote, the connection manager) is not
//! redialled: the peer goes *dormant* and is dialled through its best known
//! route when the app next uses it. Over cellular, a quiet peer's
//! connection is closed after `quiet.cellular_idle_close_s` (when the
//! profile sets it).
//!
//! **Keep-alives for NAT bindings.** The connections that hold this node's
//! relay reservations are the ones a NAT must not forget (the relay reaches
//! the node through them): they get a keep-alive
//! ([`Command::KeepReservations`]) every [`UDP_BINDING_KEEPALIVE`] over UDP
//! and every profile keep-alive interval over TCP.
//!
//! **Riding wake-ups.** The engine records when each interface's radio last
//! carried a packet it knows of (its probes, dials and lookups, and the
//! app's use of a peer). Within [`RIDE_WINDOW`] of one, pending radio work
//! is done at once: a probe on every connection over that interface not
//! probed in the last half keep-alive interval (quiet ones too), and over
//! cellular the idle closes and the reservation keep-alives and lookups due
//! within half their interval.
//!
//! A cellular radio pays a promotion and a ≈ 10 s tail (≈ 11 J on LTE,
//! docs/PARAMETERS.md) for every wake-up. If each connection sent its own
//! keep-alive on its own schedule, N connections would wake the radio N times
//! per interval. The engine instead asks for all cellular keep-alives at the
//! same instant, once per the profile's keep-alive interval, so one wake-up
//! and one tail serve every connection.
//!
//! With [`Config::liveness`](crate::Config::liveness) set, the same
//! keep-alives are probes: other connections are probed every heartbeat (in
//! the foreground; at the profile's keep-alive interval in the background;
//! not while suspended), the primary connection of a peer the app uses at
//! most every active heartbeat with a deadline from its RTT, and a probe
//! unanswered by its deadline closes its connection. A connection whose RTT was sampled in the last half
//! interval is skipped: the answer already proved it alive. Connections
//! closing after a switch are not probed.

use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Protocol;
use multidriver_scoring::{Lifecycle, Timestamp};

use crate::reach::ReservationState;
use crate::{CloseReason, Command, Conn, ConnectionHandle, Engine, InterfaceId, SwitchReason};

/// The keep-alive interval that holds a NAT's UDP binding: 25 s. The
/// shortest UDP binding timeout measured on home gateways is 30 s
/// (Hätönen et al., "An Experimental Study of Home Gateway
/// Characteristics", IMC 2010); 25 s is WireGuard's conventional
/// `PersistentKeepalive` for the same purpose (wireguard-tools docs).
pub const UDP_BINDING_KEEPALIVE: Duration = Duration::from_secs(25);

/// The longest deadline of a probe riding on app traffic: 60 s, RFC 6298
/// (2.5)'s lowest allowed cap on the RTO.
const MAX_RTO: Duration = Duration::from_secs(60);

/// Work started within this long of a packet rides on that packet's radio
/// wake-up: 1 s. **Ours**: it extends LTE's tail by at most 1 s, ≈ 1.1 J at
/// the tail's 1.06 W, a tenth of a wake-up's ≈ 11 J (docs/PARAMETERS.md).
pub const RIDE_WINDOW: Duration = Duration::from_secs(1);

impl Engine {
    /// When the app last used the peer of `c`, or when `c` opened if it
    /// never did (or did before).
    fn quiet_since(&self, c: &Conn) -> Timestamp {
        self.peers
            .get(&c.peer)
            .and_then(|p| p.last_used)
            .map_or(c.opened, |t| t.max(c.opened))
    }

    /// Whether the app left the peer of `c` quiet for the profile's
    /// `quiet.after_s` at `now`.
    fn conn_quiet(&self, c: &Conn, now: Timestamp) -> bool {
        now.saturating_duration_since(self.quiet_since(c)) >= self.profile.quiet.after()
    }

    /// Whether the app left `peer` quiet (never used counts as quiet).
    pub(crate) fn peer_quiet(&self, peer: &PeerId, now: Timestamp) -> bool {
        let after = self.profile.quiet.after();
        self.peers.get(peer).is_some_and(|p| {
            p.last_used
                .is_none_or(|t| now.saturating_duration_since(t) >= after)
        })
    }

    /// The radio of `interface` carried a packet at `now` (the engine's
    /// own, or the app's as reported with `mark_used`).
    pub(crate) fn note_radio(&mut self, interface: InterfaceId, now: Timestamp) {
        // Only packets within the window matter: older entries go (the map
        // holds at most the interfaces that carried one in the last
        // `RIDE_WINDOW`).
        self.last_packet
            .retain(|_, t| now.saturating_duration_since(*t) <= RIDE_WINDOW);
        if self.interfaces.get(&interface).is_some_and(|i| i.up) {
            let t = self.last_packet.entry(interface).or_insert(now);
            *t = (*t).max(now);
        }
    }

    /// The interfaces that are up and whose radio carried a packet within
    /// [`RIDE_WINDOW`] of `now`.
    pub(crate) fn riding(&self, now: Timestamp) -> Vec<InterfaceId> {
        self.last_packet
            .iter()
            .filter(|(i, t)| {
                now.saturating_duration_since(**t) <= RIDE_WINDOW
                    && self.interfaces.get(i).is_some_and(|i| i.up)
            })
            .map(|(i, _)| *i)
            .collect()
    }

    /// Whether a cellular radio is up at `now` and work started now rides
    /// on its wake-up (see [`RIDE_WINDOW`]).
    pub(crate) fn cellular_riding(&self, now: Timestamp) -> bool {
        self.riding(now).iter().any(|i| {
            self.interfaces
                .get(i)
                .is_some_and(|i| i.medium.is_cellular())
        })
    }

    /// Does the radio work that can ride on a wake-up now, on every
    /// interface whose radio just carried a packet: a probe on each of its
    /// connections (but `except`) not probed nor proven alive in the last
    /// half keep-alive interval (quiet ones too, the radio being up anyway,
    /// unless the profile turns `quiet.probe_on_resume` off), and over
    /// cellular the idle closes, the reservation keep-alives due within
    /// half their interval, and the subscription lookups due within half
    /// their interval.
    pub(crate) fn piggyback(&mut self, now: Timestamp, except: Option<ConnectionHandle>) {
        let riding = self.riding(now);
        if riding.is_empty() {
            return;
        }
        let cellular = self.cellular_riding(now);
        if cellular {
            // First, so that what closes is not probed.
            self.close_idle_cellular(now);
        }

        let half = self.profile.usage.keepalive_interval() / 2;
        let quiet_too = self.profile.quiet.probe_on_resume;
        let due: Vec<ConnectionHandle> = self
            .connections
            .iter()
            .filter(|(id, c)| {
                Some(**id) != except
                    && !self.closing.contains_key(id)
                    && riding.contains(&c.interface)
                    && c.probe_due.is_none()
                    && (quiet_too || !self.conn_quiet(c, now))
                    && now.saturating_duration_since(c.last_traffic) >= half
                    && c.last_probe
                        .is_none_or(|p| now.saturating_duration_since(p) >= half)
            })
            .map(|(id, _)| *id)
            .collect();
        self.probe(due, now);
        if !cellular {
            return;
        }

        if let Some(due) = self.next_binding
            && let Some(every) = self.binding_interval()
            && due.saturating_duration_since(now) <= every / 2
        {
            self.keep_reservations(now);
        }
        self.rediscover(now);
    }

    /// The relays holding a reservation of this node now.
    fn reserved_relays(&self) -> impl Iterator<Item = (PeerId, &multiaddr::Multiaddr)> + '_ {
        self.relays
            .list
            .iter()
            .filter(|r| matches!(r.state, ReservationState::Reserved(_)))
            .map(|r| (r.peer, &r.addr))
    }

    /// How often the reservations' connections need a keep-alive: the
    /// shortest of [`UDP_BINDING_KEEPALIVE`] (a relay reached over UDP) and
    /// the profile's keep-alive interval (over TCP); `None` without a
    /// reservation.
    fn binding_interval(&self) -> Option<Duration> {
        let profile = self.profile.usage.keepalive_interval();
        self.reserved_relays()
            .map(|(_, addr)| {
                if addr.iter().any(|p| matches!(p, Protocol::Udp(_))) {
                    UDP_BINDING_KEEPALIVE.min(profile)
                } else {
                    profile
                }
            })
            .min()
    }

    /// Starts the reservations' keep-alive schedule if one is held.
    pub(crate) fn schedule_binding(&mut self, now: Timestamp) {
        match self.binding_interval() {
            Some(every) => {
                let due = now + every;
                self.next_binding = Some(self.next_binding.map_or(due, |d| d.min(due)));
            }
            None => self.next_binding = None,
        }
    }

    /// Sends the reservations' keep-alives and schedules the next.
    fn keep_reservations(&mut self, now: Timestamp) {
        let relays: Vec<PeerId> = self.reserved_relays().map(|(p, _)| p).collect();
        let interfaces: Vec<InterfaceId> = self
            .relays
            .list
            .iter()
            .filter_map(|r| match r.state {
                ReservationState::Reserved(Some(i)) => Some(i),
                _ => None,
            })
            .collect();
        self.next_binding = None;
        if relays.is_empty() {
            return;
        }
        for i in interfaces {
            self.note_radio(i, now);
        }
        self.commands.push(Command::KeepReservations { relays });
        self.schedule_binding(now);
    }

    /// Closes the cellular connections of peers quiet for the profile's
    /// `quiet.cellular_idle_close_s` (and its quiet period); their peers go
    /// dormant. Called only while the radio is up: the close rides on that
    /// wake-up instead of causing one.
    fn close_idle_cellular(&mut self, now: Timestamp) {
        let Some(limit) = self.profile.quiet.cellular_idle_close() else {
            return;
        };
        let limit = limit.max(self.profile.quiet.after());
        let idle: Vec<ConnectionHandle> = self
            .connections_on(true)
            .filter(|id| {
                self.connections.get(id).is_some_and(|c| {
                    c.probe_due.is_none()
                        && now.saturating_duration_since(self.quiet_since(c)) >= limit
                })
            })
            .collect();
        // The idle limit is at least the quiet period: their peers are
        // quiet, and `lost_connection` leaves them dormant.
        self.close_all(idle, CloseReason::Idle, true, now);
    }

    /// Closes `ids` for `reason`, all of them before any peer reacts (so a
    /// backup closing with its primary is never promoted), then lets each
    /// peer react; `may_sleep` as in `lost_connection_then`.
    fn close_all(
        &mut self,
        ids: Vec<ConnectionHandle>,
        reason: CloseReason,
        may_sleep: bool,
        now: Timestamp,
    ) {
        let mut closed = Vec::new();
        for id in ids {
            self.closing.remove(&id);
            if let Some(conn) = self.connections.remove(&id) {
                self.commands.push(Command::CloseConnection {
                    connection: id,
                    reason,
                });
                closed.push((id, conn));
            }
        }
        for (id, conn) in closed {
            self.lost_connection_then(
                conn.peer,
                id,
                conn.addr,
                SwitchReason::ConnectionClosed,
                may_sleep,
                now,
            );
        }
        self.release_capacity(now);
    }

    /// Open connections over cellular (`true`) or other interfaces, except
    /// those already closing after a switch.
    fn connections_on(&self, cellular: bool) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.connections
            .iter()
            .filter(move |(id, c)| {
                !self.closing.contains_key(id)
                    && self
                        .interfaces
                        .get(&c.interface)
                        .is_some_and(|i| i.up && i.medium.is_cellular() == cellular)
            })
            .map(|(id, _)| *id)
    }

    /// The heartbeat in force: [`Liveness::heartbeat`] in the foreground; in
    /// the background no more often than the profile's keep-alive interval;
    /// none while suspended (the OS grants only short wake-ups).
    ///
    /// [`Liveness::heartbeat`]: crate::Liveness::heartbeat
    fn heartbeat(&self) -> Option<Duration> {
        let l = self.config.liveness?;
        match self.power.lifecycle {
            Lifecycle::Foreground => Some(l.heartbeat),
            Lifecycle::Background => Some(l.heartbeat.max(self.profile.usage.keepalive_interval())),
            Lifecycle::Suspended => None,
        }
    }

    /// Starts the batch schedules when a connection opens or an interface
    /// changes.
    pub(crate) fn schedule_keepalive(&mut self, now: Timestamp) {
        if self.next_keepalive.is_none() && self.connections_on(true).next().is_some() {
            self.next_keepalive = Some(now + self.profile.usage.keepalive_interval());
        }
        if self.next_heartbeat.is_none()
            && let Some(h) = self.heartbeat()
            && self.connections_on(false).next().is_some()
        {
            self.next_heartbeat = Some(now + h);
        }
    }

    /// The lifecycle changed: the heartbeat follows it.
    pub(crate) fn reschedule_heartbeat(&mut self, now: Timestamp) {
        self.next_heartbeat = None;
        self.schedule_keepalive(now);
    }

    /// The earliest heartbeat or probe deadline.
    pub(crate) fn liveness_next_timeout(&self) -> Option<Timestamp> {
        [self.next_heartbeat, self.next_probe_due]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the due batches, then closes connections whose probe went
    /// unanswered.
    pub(crate) fn keepalive_timeout(&mut self, now: Timestamp) {
        if let Some(due) = self.next_keepalive
            && due <= now
        {
            // The cellular connections of peers in use that no wake-up
            // carried a probe for in the last half interval: this batch
            // wakes the radio once for all of them.
            let interval = self.profile.usage.keepalive_interval();
            self.next_keepalive = self.batch(true, interval, now).then_some(now + interval);
        }
        if let Some(due) = self.next_heartbeat
            && due <= now
        {
            self.next_heartbeat = self
                .heartbeat()
                .and_then(|h| self.batch(false, h, now).then_some(now + h));
        }
        if self.next_probe_due.is_some_and(|d| d <= now) {
            self.probe_deadlines(now);
        }
        if self.next_binding.is_some_and(|d| d <= now) {
            self.keep_reservations(now);
        }
        self.piggyback(now, None);
    }

    /// Closes every connection whose probe went unanswered by `now`, and
    /// recomputes the next deadline. All the dead are removed before any
    /// peer is re-raced, so a backup that died with its primary is never
    /// promoted (as when an interface goes down).
    fn probe_deadlines(&mut self, now: Timestamp) {
        let dead: Vec<ConnectionHandle> = self
            .connections
            .iter()
            .filter(|(_, c)| c.probe_due.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in &dead {
            self.penalise_host(*id, now);
        }
        // A probe found the path dead: the radio is up for it anyway, so
        // even a quiet peer is raced again at once rather than left dormant.
        self.close_all(dead, CloseReason::Unresponsive, false, now);
        self.next_probe_due = self.connections.values().filter_map(|c| c.probe_due).min();
    }

    /// Asks one keep-alive on every connection of the kind that was not
    /// proven alive in the last half `interval`. Returns whether any
    /// connection of the kind is left (the schedule goes on).
    fn batch(&mut self, cellular: bool, interval: Duration, now: Timestamp) -> bool {
        let all: Vec<ConnectionHandle> = self.connections_on(cellular).collect();
        if all.is_empty() {
            return false;
        }
        let quiet: Vec<ConnectionHandle> = all
            .into_iter()
            .filter(|id| {
                self.connections.get(id).is_some_and(|c| {
                    !self.conn_quiet(c, now)
                        && now.saturating_duration_since(c.last_traffic) >= interval / 2
                })
            })
            .collect();
        self.probe(quiet, now);
        true
    }

    /// Asks a keep-alive on `connections` and, with liveness on, starts their
    /// probe deadlines.
    fn probe(&mut self, connections: Vec<ConnectionHandle>, now: Timestamp) {
        let timeout = self.config.liveness.map(|l| l.probe_timeout);
        self.probe_within(connections, timeout, now);
    }

    /// [`probe`](Self::probe) with the deadline `timeout` (`None`: none).
    fn probe_within(
        &mut self,
        mut connections: Vec<ConnectionHandle>,
        timeout: Option<Duration>,
        now: Timestamp,
    ) {
        connections.retain(|id| self.connections.get(id).is_some_and(|c| !c.unprobeable));
        if connections.is_empty() {
            return;
        }
        for id in &connections {
            if let Some(i) = self.connections.get(id).map(|c| c.interface) {
                self.note_radio(i, now);
            }
            if let Some(c) = self.connections.get_mut(id) {
                c.last_probe = Some(now);
                if let Some(t) = timeout {
                    let due = *c.probe_due.get_or_insert(now + t);
                    self.next_probe_due = Some(self.next_probe_due.map_or(due, |d| d.min(due)));
                }
            }
        }
        self.commands.push(Command::KeepAlive { connections });
    }

    /// The app used the peer of `connection`: probe it if it was not probed
    /// or proven alive in the last active heartbeat, with a deadline from
    /// its route's RTT (see [`Liveness`](crate::Liveness)).
    ///
    /// `resumed`: the use ends a quiet period; without the profile's
    /// `quiet.probe_on_resume` no probe is sent then.
    pub(crate) fn probe_with_traffic(
        &mut self,
        connection: ConnectionHandle,
        resumed: bool,
        now: Timestamp,
    ) {
        let Some(l) = self.config.liveness else {
            return;
        };
        let Some(c) = self.connections.get(&connection) else {
            return;
        };
        let every = l.active_heartbeat.min(l.heartbeat);
        let recent = |t: Timestamp| now.saturating_duration_since(t) < every;
        if c.probe_due.is_some() || recent(c.last_traffic) || c.last_probe.is_some_and(recent) {
            return;
        }
        if resumed && !self.profile.quiet.probe_on_resume {
            return;
        }
        // RFC 6298's RTO (SRTT + 4 × RTTVAR) of the route, within bounds.
        let rto = c
            .route
            .and_then(|no| {
                let peer = self.peers.get(&c.peer)?;
                let rtt = &peer.routes[peer.index_of(no)?].rtt;
                Some(rtt.srtt() + 4 * rtt.rttvar())
            })
            .unwrap_or(l.probe_timeout);
        // Never below the floor, and never below the path's own RTO (a slow
        // path is not a dead one); RFC 6298 (2.5) lets RTO be capped at no
        // less than 60 s.
        let timeout = rto
            .max(l.active_probe_timeout)
            .min(MAX_RTO.max(l.active_probe_timeout));
        self.probe_within(vec![connection], Some(timeout), now);
    }
}
