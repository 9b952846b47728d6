//! Keep-alives on cellular links, batched into one radio wake-up.
//!
//! A cellular radio pays a promotion and a ≈ 10 s tail (≈ 11 J on LTE,
//! PARAMETERS.md) for every wake-up. If each connection sent its own
//! keep-alive on its own schedule, N connections would wake the radio N times
//! per interval. The engine instead asks for all cellular keep-alives at the
//! same instant, once per the profile's keep-alive interval, so one wake-up
//! and one tail serve every connection.

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

    /// When due, asks for one keep-alive on every cellular connection at
    /// once, and schedules the next batch; stops when none is left.
    pub(crate) fn keepalive_timeout(&mut self, now: Timestamp) {
        let Some(due) = self.next_keepalive else {
            return;
        };
        if due > now {
            return;
        }
        let connections = self.cellular_connections();
        if connections.is_empty() {
            self.next_keepalive = None;
            return;
        }
        self.commands.push_back(Command::KeepAlive { connections });
        self.next_keepalive = Some(now + self.profile.usage.keepalive_interval());
    }
}
