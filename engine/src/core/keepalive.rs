//! Keep-alives on cellular links, batched into one radio wake-up.
//!
//! A cellular radio pays a promotion and a ≈ 10 s tail (≈ 11 J on LTE,
//! PARAMETERS.md) for every wake-up. If each connection sent its own
//! keep-alive on its own schedule, N connections would wake the radio N times
//! per interval. The engine instead asks for all cellular keep-alives at the
//! same instant, once per the profile's keep-alive interval, so one wake-up
//! and one tail serve every connection. A connection that carried traffic in
//! the last half interval (an RTT sample, or the app's
//! [`Engine::mark_used`]) is left out: the traffic already proved it alive,
//! and a keep-alive there would be a wake-up of its own.

use multidriver_scoring::Timestamp;

use crate::core::{Command, ConnectionId, Engine};

impl Engine {
    /// Open connections over cellular interfaces, in id order.
    fn cellular_connections(&self) -> Vec<ConnectionId> {
        self.connections
            .iter()
            .filter(|(_, c)| {
                self.interfaces
                    .get(&c.interface)
                    .is_some_and(|i| i.up && i.medium.is_cellular())
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// Starts the batch schedule when the first cellular connection opens.
    pub(crate) fn schedule_keepalive(&mut self, now: Timestamp) {
        if self.next_keepalive.is_none() && !self.cellular_connections().is_empty() {
            self.next_keepalive = Some(now + self.profile.usage.keepalive_interval());
        }
    }

    /// When due, asks for one keep-alive on every cellular connection that
    /// carried no traffic in the last half interval, all at once, and
    /// schedules the next batch; stops when no cellular connection is left.
    pub(crate) fn keepalive_timeout(&mut self, now: Timestamp) {
        let Some(due) = self.next_keepalive else {
            return;
        };
        if due > now {
            return;
        }
        let all = self.cellular_connections();
        if all.is_empty() {
            self.next_keepalive = None;
            return;
        }
        let interval = self.profile.usage.keepalive_interval();
        let quiet_since = |id: &ConnectionId| {
            self.connections
                .get(id)
                .is_some_and(|c| now.saturating_duration_since(c.last_traffic) >= interval / 2)
        };
        let connections: Vec<ConnectionId> = all.into_iter().filter(quiet_since).collect();
        if !connections.is_empty() {
            self.commands.push_back(Command::KeepAlive { connections });
        }
        self.next_keepalive = Some(now + interval);
    }
}
