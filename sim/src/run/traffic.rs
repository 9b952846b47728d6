//! App traffic: the messages each node sends its contacts, their delivery,
//! loss and queueing, and the radio energy they cost.

use std::time::Duration;

use multidriver_scoring::Lifecycle;

use crate::agent::Input;
use crate::world::Cause;

use super::Sim;
use super::events::Ev;

impl Sim<'_> {
    /// Half the round trip of a connection's path (zero if it is dead).
    pub(super) fn one_way(&self, key: u64) -> Duration {
        self.conns
            .get(&key)
            .and_then(|c| self.conn_path(c))
            .unwrap_or_default()
            / 2
    }

    pub(super) fn message_energy(&mut self, key: u64, bytes: u64) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.last_app = self.now;
        c.last_rx = self.now;
        let (node, via, remote) = (c.node, c.via, (c.addr.node, c.remote_kind));
        self.world.nodes[node as usize].radios[via as usize].activity(
            self.now,
            bytes,
            0,
            Cause::App,
        );
        self.world.nodes[remote.0 as usize].radios[remote.1 as usize].activity(
            self.now,
            0,
            bytes,
            Cause::App,
        );
        self.circuit_bytes(key, bytes);
    }

    pub(super) fn message(&mut self, node: u32, slot: u16) {
        let s = &self.plan.scenario;
        let interval = Duration::from_secs_f64(s.traffic.message_interval_s);
        let bytes = u64::from(s.traffic.message_bytes);
        let limit = s.traffic.queue_limit;
        self.push(self.now + interval, Ev::Message { node, slot });
        let nd = &self.world.nodes[node as usize];
        if !nd.online || nd.power.lifecycle == Lifecycle::Suspended {
            return;
        }
        self.metrics.sent += 1;
        let (peer, primary) = {
            let p = &self.pairs[node as usize][slot as usize];
            (p.peer, p.primary)
        };
        if primary.is_some() {
            // The app tells its stack it uses the peer (`Engine::mark_used`).
            self.input(node, Input::AppTraffic { peer });
        }
        match self.pairs[node as usize][slot as usize].primary {
            Some(k) if self.conn_alive(k) => {
                self.metrics.delivered += 1;
                let one_way = self.one_way(k);
                self.metrics.delays.push(one_way.as_secs_f32());
                self.message_energy(k, bytes);
            }
            Some(k) => {
                // Sent into a connection whose path is dead: lost.
                self.metrics.lost += 1;
                if let Some(c) = self.conns.get(&k)
                    && self.world.nodes[node as usize].usable(c.via)
                {
                    let via = c.via;
                    self.world.nodes[node as usize].radios[via as usize].activity(
                        self.now,
                        bytes,
                        0,
                        Cause::App,
                    );
                }
            }
            None => {
                let now = self.now;
                let p = &mut self.pairs[node as usize][slot as usize];
                if p.queue.len() < limit as usize {
                    p.queue.push_back(now);
                } else {
                    self.metrics.lost += 1;
                }
                self.input(node, Input::NeedPeer { peer });
            }
        }
    }
}
