//! Connections: their state, dials completing, liveness (pings, QUIC
//! keep-alives, detection of dead paths) and closing.

use std::time::Duration;

use multidriver_scoring::Timestamp;

use crate::agent::{Input, Liveness};
use crate::world::{AddrKey, IfKind, PathClass};

use super::Sim;
use super::events::Ev;

pub(super) struct Conn {
    pub(super) node: u32,
    peer: u32,
    pub(super) addr: AddrKey,
    pub(super) via: IfKind,
    pub(super) open: bool,
    liveness: Liveness,
    pub(super) last_rx: Timestamp,
    pub(super) last_app: Timestamp,
    detect_at: Option<Timestamp>,
    /// The peer's app generation and both interfaces' attachments when the
    /// connection opened: a restart or re-attachment on either side kills it.
    peer_generation: u32,
    local_attach: u32,
    remote_attach: u32,
}

/// A connection's key: the node, the agent's generation (a restarted app
/// numbers its connections from 1 again) and the agent's own id.
pub(super) fn conn_key(node: u32, generation: u32, conn: u64) -> u64 {
    (u64::from(node) << 40) | (u64::from(generation & 0xffff) << 24) | (conn & 0xff_ffff)
}

fn local_id(key: u64) -> u64 {
    key & 0xff_ffff
}

impl Sim<'_> {
    pub(super) fn conn_alive(&self, key: u64) -> bool {
        self.conns
            .get(&key)
            .is_some_and(|c| c.open && self.conn_path(c).is_some())
    }

    /// The RTT of a connection's path if it still carries packets: the path
    /// works and neither end restarted or re-attached since it opened.
    pub(super) fn conn_path(&self, c: &Conn) -> Option<Duration> {
        let local = &self.world.nodes[c.node as usize];
        let remote = &self.world.nodes[c.addr.node as usize];
        let same = self.gens[c.peer as usize] == c.peer_generation
            && local.ifaces[c.via as usize].attach == c.local_attach
            && remote.ifaces[c.addr.kind as usize].attach == c.remote_attach;
        same.then(|| self.world.usable_path(c.node, c.via, c.addr))
            .flatten()
    }

    pub(super) fn class_of(&self, key: u64) -> Option<PathClass> {
        self.conns.get(&key).map(|c| PathClass {
            from: c.via,
            to: c.addr.kind,
            lan: c.addr.lan,
        })
    }

    pub(super) fn conn(
        &self,
        node: u32,
        peer: u32,
        addr: AddrKey,
        via: IfKind,
        liveness: Liveness,
    ) -> Conn {
        Conn {
            node,
            peer,
            addr,
            via,
            open: false,
            liveness,
            last_rx: self.now,
            last_app: self.now,
            detect_at: None,
            peer_generation: self.gens.get(peer as usize).copied().unwrap_or(0),
            local_attach: self.world.nodes[node as usize].ifaces[via as usize].attach,
            remote_attach: self
                .world
                .nodes
                .get(addr.node as usize)
                .map_or(0, |n| n.ifaces[addr.kind as usize].attach),
        }
    }

    pub(super) fn remove_conn(&mut self, key: u64) {
        self.conns.remove(&key);
    }

    pub(super) fn dial_done(&mut self, key: u64, ok: bool) {
        let node = (key >> 40) as u32;
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if c.open {
            return;
        }
        let alive = ok && self.conn_path(c).is_some();
        if alive {
            let now = self.now;
            let lv = {
                let c = self.conns.get_mut(&key).expect("checked above");
                c.open = true;
                c.last_rx = now;
                c.last_app = now;
                c.liveness
            };
            if let Some(p) = lv.ping_every {
                self.push(now + p, Ev::Ping { key });
            }
            if let Some(k) = lv.quic_keepalive {
                self.push(now + k, Ev::QuicKeepalive { key });
            }
            if let Some(i) = lv.idle_close {
                self.push(now + i, Ev::IdleCheck { key });
            }
            self.input(
                node,
                Input::DialSucceeded {
                    conn: local_id(key),
                },
            );
        } else {
            self.conns.remove(&key);
            self.metrics.dial_failures += 1;
            self.input(
                node,
                Input::DialFailed {
                    conn: local_id(key),
                },
            );
        }
    }

    /// One keep-alive exchange on a connection; `repeat` for libp2p-ping's
    /// own timer.
    pub(super) fn ping(&mut self, key: u64, repeat: bool) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if !c.open {
            return;
        }
        let (node, via, addr, lv) = (c.node, c.via, c.addr, c.liveness);
        let path = self.conn_path(c);
        let bytes = multidriver_scoring::energy::KEEPALIVE_BYTES;
        if self.world.nodes[node as usize].usable(via) {
            self.world.nodes[node as usize].radios[via as usize].activity(self.now, bytes, bytes);
        }
        if repeat && let Some(p) = lv.ping_every {
            self.push(self.now + p, Ev::Ping { key });
        }
        match path {
            Some(base) => {
                self.world.nodes[addr.node as usize].radios[addr.kind as usize]
                    .activity(self.now, bytes, bytes);
                let rtt = self.world.sample_rtt(node, base);
                if let Some(c) = self.conns.get_mut(&key) {
                    c.last_rx = self.now;
                    c.detect_at = None;
                }
                self.input(
                    node,
                    Input::Rtt {
                        conn: local_id(key),
                        rtt,
                    },
                );
            }
            None => {
                if let Some(t) = lv.ping_timeout {
                    self.schedule_detect(key, self.now + t);
                }
            }
        }
    }

    fn schedule_detect(&mut self, key: u64, t: Timestamp) {
        let t = t.max(self.now);
        if let Some(c) = self.conns.get_mut(&key)
            && c.detect_at.is_none_or(|d| d > t)
        {
            c.detect_at = Some(t);
            self.push(t, Ev::Detect { key });
        }
    }

    pub(super) fn quic_keepalive(&mut self, key: u64) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if !c.open {
            return;
        }
        let (node, via, addr, lv, last_rx) = (c.node, c.via, c.addr, c.liveness, c.last_rx);
        let alive = self.conn_path(c).is_some();
        if self.world.nodes[node as usize].usable(via) {
            self.world.nodes[node as usize].radios[via as usize].activity(self.now, 60, 60);
        }
        if let Some(k) = lv.quic_keepalive {
            self.push(self.now + k, Ev::QuicKeepalive { key });
        }
        if alive {
            self.world.nodes[addr.node as usize].radios[addr.kind as usize]
                .activity(self.now, 60, 60);
            if let Some(c) = self.conns.get_mut(&key) {
                c.last_rx = self.now;
            }
        } else if let Some(idle) = lv.quic_idle {
            self.schedule_detect(key, last_rx + idle);
        }
    }

    pub(super) fn detect(&mut self, key: u64) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if !c.open || c.detect_at != Some(self.now) {
            return;
        }
        if self.conn_path(c).is_some() {
            if let Some(c) = self.conns.get_mut(&key) {
                c.detect_at = None;
            }
            return;
        }
        self.close_under(key, |conn| Input::ConnectionLost { conn });
    }

    /// The policy's own stack closed a connection: forget it and tell the
    /// policy with `input`.
    fn close_under(&mut self, key: u64, input: impl FnOnce(u64) -> Input) {
        let Some(node) = self.conns.get(&key).map(|c| c.node) else {
            return;
        };
        self.remove_conn(key);
        self.input(node, input(local_id(key)));
    }

    pub(super) fn idle_check(&mut self, key: u64) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        let Some(idle) = c.liveness.idle_close else {
            return;
        };
        if !c.open {
            return;
        }
        let due = c.last_app + idle;
        if due > self.now {
            self.push(due, Ev::IdleCheck { key });
            return;
        }
        self.close_under(key, |conn| Input::IdleClosed { conn });
    }
}

impl Liveness {
    pub(super) fn none() -> Liveness {
        Liveness {
            ping_every: None,
            ping_timeout: None,
            quic_keepalive: None,
            quic_idle: None,
            idle_close: None,
        }
    }
}
