//! Contact pairs: the route each node uses to each contact, outages and
//! failover as the world changes, and the periodic samples of them.

use std::time::Duration;

use multidriver_scoring::Timestamp;

use crate::agent::Input;
use crate::world::PathClass;

use super::Sim;
use super::events::Ev;

/// Why the route in use died, for failover by cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The node's own interface went down or changed network; the OS says so.
    InterfaceLost = 0,
    /// The node's own Wi-Fi silently stopped passing packets.
    SilentStall = 1,
    /// The peer's side changed (it moved, lost an interface, or left).
    PeerMoved = 2,
    /// The node's own interface went down after the host warned of it.
    WarnedLoss = 3,
}

pub(super) struct Pair {
    pub(super) peer: u32,
    pub(super) primary: Option<u64>,
    /// Since when the app wants the contact and a path to it exists: the
    /// start of time to first connection (waiting for a contact that is not
    /// online yet is nobody's fault). `None` until both hold.
    pub(super) want_since: Option<Timestamp>,
    pub(super) connected_once: bool,
    pub(super) last_class: Option<PathClass>,
    pub(super) outage: Option<(Timestamp, Cause)>,
    /// When each waiting message was sent (bounded by the queue limit).
    pub(super) queue: std::collections::VecDeque<Timestamp>,
    /// The app restarted since it was last connected to the contact: its
    /// next first connection is a time to first connection after a
    /// restart.
    pub(super) after_restart: bool,
}

impl Sim<'_> {
    /// After the world changed around `node`: outages start or end for the
    /// pairs it is part of, and the oracle is told.
    pub(super) fn paths_changed(&mut self, node: u32) {
        self.paths_changed_by(node, Cause::InterfaceLost);
    }

    /// [`Self::paths_changed`] with the cause charged to `node`'s own pairs
    /// (its contacts' pairs towards it are charged to the peer moving).
    pub(super) fn paths_changed_by(&mut self, node: u32, cause: Cause) {
        let mut pairs: Vec<(u32, u16)> = (0..self.pairs[node as usize].len() as u16)
            .map(|s| (node, s))
            .collect();
        pairs.extend(self.pairs_to[node as usize].iter().copied());
        for (a, slot) in pairs {
            let (primary, outage, peer) = {
                let p = &self.pairs[a as usize][slot as usize];
                (p.primary, p.outage, p.peer)
            };
            if !self.world.nodes[a as usize].online {
                continue;
            }
            let pair = &self.pairs[a as usize][slot as usize];
            if !pair.connected_once
                && pair.want_since.is_none()
                && self.world.best_path(a, peer).is_some()
            {
                self.pairs[a as usize][slot as usize].want_since = Some(self.now);
            }
            let alive = primary.is_some_and(|k| self.conn_alive(k));
            if alive && let Some((s, cause)) = outage {
                // The route in use came back before anything replaced it.
                let secs = self.now.saturating_duration_since(s).as_secs_f64();
                self.metrics.failover(cause, secs, false);
                self.pairs[a as usize][slot as usize].outage = None;
            }
            if primary.is_some()
                && !alive
                && outage.is_none()
                && self.world.best_path(a, peer).is_some()
            {
                // The route in use died while another exists: failover starts.
                let cause = if a == node { cause } else { Cause::PeerMoved };
                self.pairs[a as usize][slot as usize].outage = Some((self.now, cause));
            }
            if self.agents[a as usize]
                .as_ref()
                .is_some_and(|ag| ag.wants_path_changes())
            {
                self.input(a, Input::PathsChanged { peer });
            }
        }
    }

    pub(super) fn slot_of(&self, node: u32, peer: u32) -> Option<usize> {
        self.pairs[node as usize]
            .iter()
            .position(|p| p.peer == peer)
    }

    pub(super) fn set_primary(&mut self, node: u32, slot: usize, key: Option<u64>) {
        let now = self.now;
        let class = key.and_then(|k| self.class_of(k));
        let alive = key.is_some_and(|k| self.conn_alive(k));
        let bytes = u64::from(self.plan.scenario.traffic.message_bytes);
        let p = &mut self.pairs[node as usize][slot];
        p.primary = key.filter(|_| class.is_some());
        let Some(class) = class else {
            return;
        };
        if !p.connected_once {
            p.connected_once = true;
            let secs = now
                .saturating_duration_since(p.want_since.unwrap_or(now))
                .as_secs_f64();
            self.metrics.ttfc(p.after_restart, secs, false);
        }
        if p.last_class.is_some_and(|c| c != class) {
            self.metrics.switches += 1;
        }
        p.last_class = Some(class);
        if alive {
            if let Some((s, cause)) = p.outage.take() {
                self.metrics
                    .failover(cause, now.saturating_duration_since(s).as_secs_f64(), false);
            }
            let queued = std::mem::take(&mut p.queue);
            if !queued.is_empty() {
                let k = key.expect("class implies a key");
                let one_way = self.one_way(k);
                for sent in &queued {
                    let delay = now.saturating_duration_since(*sent) + one_way;
                    self.metrics.delivered += 1;
                    self.metrics.delays.push(delay.as_secs_f32());
                }
                self.message_energy(k, bytes * queued.len() as u64);
            }
        }
    }

    pub(super) fn sample(&mut self) {
        let s = &self.plan.scenario;
        self.push(
            self.now + Duration::from_secs_f64(s.sample_interval_s),
            Ev::Sample,
        );
        for node in 0..self.pairs.len() {
            if !self.world.nodes[node].online {
                continue;
            }
            for slot in 0..self.pairs[node].len() {
                let (primary, peer) = {
                    let p = &self.pairs[node][slot];
                    (p.primary, p.peer)
                };
                let best = self.world.best_path(node as u32, peer);
                if best.is_none() {
                    continue;
                }
                self.metrics.samples_reachable += 1;
                let Some(k) = primary else { continue };
                self.metrics.samples_connected += 1;
                if !self.conn_alive(k) {
                    continue;
                }
                self.metrics.samples_usable += 1;
                if !self.relayed(k) {
                    self.metrics.samples_direct += 1;
                }
                let Some(best_rtt) = best.map(|b| b.rtt) else {
                    continue;
                };
                let rtt = self.conn_path(&self.conns[&k]);
                // Best: within 1 ms of the lowest-RTT path that works now.
                if rtt.is_some_and(|r| r <= best_rtt + Duration::from_millis(1)) {
                    self.metrics.samples_best += 1;
                }
            }
        }
    }
}
