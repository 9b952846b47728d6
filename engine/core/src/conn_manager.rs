//! The connection manager: low and high watermarks, a grace period for new
//! connections, protected and recently used peers, lowest value trimmed
//! first.

use libp2p_identity::PeerId;
use multidriver_scoring::Timestamp;

use crate::{CloseReason, ConnectionHandle, Engine, SwitchReason};

/// How much a connection is worth keeping; lower is trimmed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    /// A warm backup: redundant while its primary lives.
    Backup,
    /// Neither primary nor backup (a straggler the engine keeps no use for).
    Spare,
    /// The primary connection of a peer the app does not hold on to.
    Primary,
}

impl Engine {
    /// Protects `peer`'s connections from trimming until
    /// [`unprotect`](Self::unprotect). Peers the app asked to
    /// [`connect`](Self::connect) are protected too.
    ///
    /// # Errors
    /// [`crate::Error::TableFull`] if the peer is new and the peer table is
    /// full of peers in use.
    pub fn protect(&mut self, peer: PeerId) -> Result<(), crate::Error> {
        self.ensure_peer(peer)?;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.protected = true;
        }
        Ok(())
    }

    /// Lifts [`protect`](Self::protect).
    pub fn unprotect(&mut self, peer: PeerId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.protected = false;
        }
    }

    /// The app used `peer` (sent or received data): its connections are not
    /// trimmed for [`Config::recent_use`](crate::Config::recent_use),
    /// and, with [`Config::liveness`](crate::Config::liveness) set, its
    /// primary connection is probed if it was not in the last heartbeat (the
    /// radio is up for the app's data anyway).
    ///
    /// Without liveness probes, the use itself counts as proof of life for
    /// the keep-alive batches (the adapter's own timers judge liveness).
    ///
    /// Use is what keeps a peer out of quiet liveness (the profile's
    /// `quiet`): after `quiet.after_s` without a use, its connections get no
    /// timed probes and one that closes is not redialled (the peer is
    /// *dormant*); the next use dials its best known route at once, and the
    /// first use after a quiet period carries a probe when the profile's
    /// `quiet.probe_on_resume` says so. The use also tells the engine the
    /// radio of the peer's connection is up: pending radio work rides on it.
    pub fn mark_used(&mut self, peer: PeerId, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let resumed = self.peer_quiet(&peer, now);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.last_used = Some(now);
        let dormant = std::mem::take(&mut p.dormant);
        let Some(c) = p.primary else {
            if dormant {
                // Left unconnected while quiet: dialled now through its
                // best known route (no new discovery).
                self.progress(peer, now);
            }
            return;
        };
        if let Some(i) = self.connections.get(&c).map(|c| c.interface) {
            self.note_radio(i, now);
        }
        if self.config.liveness.is_some() {
            self.probe_with_traffic(c, resumed, now);
        } else if let Some(conn) = self.connections.get_mut(&c) {
            conn.last_traffic = conn.last_traffic.max(now);
        }
        self.piggyback(now, Some(c));
    }

    /// Open connections that count against the watermarks (not those
    /// already closing after a switch).
    fn counted_connections(&self) -> usize {
        self.connections.len() - self.closing.len()
    }

    /// The value of a connection, or `None` if it may not be trimmed now.
    fn trim_value(&self, id: ConnectionHandle, now: Timestamp) -> Option<(Value, Timestamp)> {
        if self.closing.contains_key(&id) {
            return None;
        }
        let conn = self.connections.get(&id)?;
        let peer = self.peers.get(&conn.peer)?;
        let in_grace = now.saturating_duration_since(conn.opened) < self.config.conn_grace;
        let recently_used = peer
            .last_used
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.recent_use);
        let value = if peer.backup == Some(id) {
            Value::Backup
        } else if peer.primary == Some(id) {
            if peer.wanted || peer.protected || recently_used {
                return None;
            }
            Value::Primary
        } else {
            Value::Spare
        };
        if in_grace {
            return None;
        }
        Some((value, peer.last_used.unwrap_or(conn.opened)))
    }

    /// Above the high watermark, closes the lowest-value connections (then
    /// the least recently used) until the low watermark is reached or nothing
    /// else may be trimmed.
    pub(crate) fn trim(&mut self, now: Timestamp) {
        self.trim_checked = self.trim_checked.max(now);
        if self.counted_connections() <= self.config.conn_high_watermark {
            return;
        }
        let mut candidates: Vec<(Value, Timestamp, ConnectionHandle)> = self
            .connections
            .keys()
            .filter_map(|id| self.trim_value(*id, now).map(|(v, t)| (v, t, *id)))
            .collect();
        candidates.sort();
        for (_, _, id) in candidates {
            if self.counted_connections() <= self.config.conn_low_watermark {
                break;
            }
            let Some(conn) = self.connections.remove(&id) else {
                continue;
            };
            self.commands.push(crate::Command::CloseConnection {
                connection: id,
                reason: CloseReason::Trimmed,
            });
            self.lost_connection(
                conn.peer,
                id,
                conn.addr,
                SwitchReason::ConnectionClosed,
                now,
            );
        }
        self.release_capacity(now);
    }

    /// While above the high watermark, when the next connection leaves its
    /// grace period.
    pub(crate) fn conn_manager_next_timeout(&self) -> Option<Timestamp> {
        if self.counted_connections() <= self.config.conn_high_watermark {
            return None;
        }
        self.connections
            .iter()
            .filter(|(id, _)| !self.closing.contains_key(id))
            .map(|(_, c)| c.opened + self.config.conn_grace)
            // A grace period that ended before the last trim was looked at
            // then; one that ended since is due now.
            .filter(|t| *t > self.trim_checked)
            .min()
    }
}
