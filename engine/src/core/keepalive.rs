//! Keep-alives and liveness probes.
//!
//! A cellular radio pays a promotion and a ≈ 10 s tail (≈ 11 J on LTE,
//! PARAMETERS.md) for every wake-up. If each connection sent its own
//! keep-alive on its own schedule, N connections would wake the radio N times
//! per interval. The engine instead asks for all cellular keep-alives at the
//! same instant, once per the profile's keep-alive interval, so one wake-up
//! and one tail serve every connection.
//!
//! With [`Config::liveness`](crate::core::Config::liveness) set, the same
//! keep-alives are probes: other connections are probed every heartbeat, the
//! primary connection of a peer the app uses at most every heartbeat, and a
//! probe unanswered for the probe timeout closes its connection. A
//! connection whose RTT was sampled in the last half interval is skipped:
//! the answer already proved it alive.

use std::time::Duration;

use multidriver_scoring::Timestamp;

use crate::core::{CloseReason, Command, ConnectionId, Engine, SwitchReason};

impl Engine {
    /// Open connections over cellular (`true`) or other interfaces.
    fn connections_on(&self, cellular: bool) -> Vec<ConnectionId> {
        self.connections
            .iter()
            .filter(|(_, c)| {
                self.interfaces
                    .get(&c.interface)
                    .is_some_and(|i| i.up && i.medium.is_cellular() == cellular)
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Starts the batch schedules when a connection opens.
    pub(crate) fn schedule_keepalive(&mut self, now: Timestamp) {
        if self.next_keepalive.is_none() && !self.connections_on(true).is_empty() {
            self.next_keepalive = Some(now + self.profile.usage.keepalive_interval());
        }
        if let Some(l) = self.config.liveness
            && self.next_heartbeat.is_none()
            && !self.connections_on(false).is_empty()
        {
            self.next_heartbeat = Some(now + l.heartbeat);
        }
    }

    /// The earliest heartbeat or probe deadline.
    pub(crate) fn liveness_next_timeout(&self) -> Option<Timestamp> {
        let due = self.connections.values().filter_map(|c| c.probe_due).min();
        [self.next_heartbeat, due].into_iter().flatten().min()
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
        if let (Some(due), Some(l)) = (self.next_heartbeat, self.config.liveness)
            && due <= now
        {
            self.next_heartbeat = self
                .batch(false, l.heartbeat, now)
                .then_some(now + l.heartbeat);
        }
        let dead: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(_, c)| c.probe_due.is_some_and(|d| d <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.unresponsive(id, now);
        }
    }

    /// Asks one keep-alive on every connection of the kind that was not
    /// proven alive in the last half `interval`. Returns whether any
    /// connection of the kind is left (the schedule goes on).
    fn batch(&mut self, cellular: bool, interval: Duration, now: Timestamp) -> bool {
        let all = self.connections_on(cellular);
        if all.is_empty() {
            return false;
        }
        let quiet: Vec<ConnectionId> = all
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
    fn probe(&mut self, connections: Vec<ConnectionId>, now: Timestamp) {
        if connections.is_empty() {
            return;
        }
        let timeout = self.config.liveness.map(|l| l.probe_timeout);
        for id in &connections {
            if let Some(c) = self.connections.get_mut(id) {
                c.last_probe = Some(now);
                if let Some(t) = timeout {
                    c.probe_due = c.probe_due.or(Some(now + t));
                }
            }
        }
        self.commands.push_back(Command::KeepAlive { connections });
    }

    /// The app used the peer of `connection`: probe it if it was not probed
    /// or proven alive in the last heartbeat.
    pub(crate) fn probe_with_traffic(&mut self, connection: ConnectionId, now: Timestamp) {
        let Some(l) = self.config.liveness else {
            return;
        };
        let Some(c) = self.connections.get(&connection) else {
            return;
        };
        let recent = |t: Timestamp| now.saturating_duration_since(t) < l.heartbeat;
        if c.probe_due.is_none() && !recent(c.last_traffic) && !c.last_probe.is_some_and(recent) {
            self.probe(vec![connection], now);
        }
    }

    /// A probe went unanswered: the connection is closed and its peer
    /// re-raced, as for [`Engine::handle_connection_lost`].
    fn unresponsive(&mut self, id: ConnectionId, now: Timestamp) {
        self.penalise_host(id, now);
        self.closing.remove(&id);
        let Some(conn) = self.connections.remove(&id) else {
            return;
        };
        self.commands.push_back(Command::CloseConnection {
            connection: id,
            reason: CloseReason::Unresponsive,
        });
        self.lost_connection(
            conn.peer,
            id,
            conn.addr,
            SwitchReason::ConnectionClosed,
            now,
        );
        self.release_capacity(now);
    }
}
