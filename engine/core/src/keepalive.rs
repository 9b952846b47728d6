//! Keep-alives and liveness probes.
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

use multidriver_scoring::{Lifecycle, Timestamp};

use crate::{CloseReason, Command, ConnectionHandle, Engine, SwitchReason};

/// The longest deadline of a probe riding on app traffic: 60 s, RFC 6298
/// (2.5)'s lowest allowed cap on the RTO.
const MAX_RTO: Duration = Duration::from_secs(60);

impl Engine {
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
        let mut lost = Vec::new();
        for id in dead {
            self.penalise_host(id, now);
            self.closing.remove(&id);
            if let Some(conn) = self.connections.remove(&id) {
                self.commands.push_back(Command::CloseConnection {
                    connection: id,
                    reason: CloseReason::Unresponsive,
                });
                lost.push((id, conn));
            }
        }
        for (id, conn) in lost {
            self.lost_connection(
                conn.peer,
                id,
                conn.addr,
                SwitchReason::ConnectionClosed,
                now,
            );
        }
        self.release_capacity(now);
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
                self.connections
                    .get(id)
                    .is_some_and(|c| now.saturating_duration_since(c.last_traffic) >= interval / 2)
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
            if let Some(c) = self.connections.get_mut(id) {
                c.last_probe = Some(now);
                if let Some(t) = timeout {
                    let due = *c.probe_due.get_or_insert(now + t);
                    self.next_probe_due = Some(self.next_probe_due.map_or(due, |d| d.min(due)));
                }
            }
        }
        self.commands.push_back(Command::KeepAlive { connections });
    }

    /// The app used the peer of `connection`: probe it if it was not probed
    /// or proven alive in the last active heartbeat, with a deadline from
    /// its route's RTT (see [`Liveness`](crate::Liveness)).
    pub(crate) fn probe_with_traffic(&mut self, connection: ConnectionHandle, now: Timestamp) {
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
