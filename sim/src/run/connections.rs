//! Connections: their state, dials completing, liveness (pings, QUIC
//! keep-alives, detection of dead paths) and closing.

use std::time::Duration;

use multidriver_scoring::Timestamp;
use multidriver_scoring::route::{RELAY_CIRCUIT_BYTES, RELAY_CIRCUIT_DURATION};

use crate::agent::{Input, Liveness};
use crate::nat::{DCUTR_ATTEMPTS, attempt_setup, attempts_to_success, punchable};
use crate::world::{AddrKey, Cause, IfKind, PathClass, UNREACHABLE_TIMEOUT};

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
    /// The peer's interface the connection reaches: the address's, or for
    /// a relayed one the interface the peer's reservation is over.
    pub(super) remote_kind: IfKind,
    /// A relayed connection's circuit: the relay's outage count when it
    /// opened, and the bytes it carried both ways.
    circuit: Option<Circuit>,
    /// Opened by a hole punch (past both NATs), not by a dial.
    pub(super) punched: bool,
    /// How long libp2p-dcutr's handler keeps a relayed connection alive
    /// despite the swarm's idle timeout (see [`DcutrHold`]); `None` on a
    /// direct connection, or a relayed one DCUtR has not started on.
    dcutr_hold: Option<DcutrHold>,
}

/// libp2p-dcutr 0.15's handler on a relayed connection keeps it alive while
/// fewer than `MAX_NUMBER_OF_UPGRADE_ATTEMPTS` (3) attempts were made on it
/// (`handler/relayed.rs`, `connection_keep_alive`; on the dialing side an
/// attempt is counted when the listener's CONNECT stream is negotiated,
/// `on_fully_negotiated_inbound`), and the swarm's idle timer does not run
/// while a stream is open (libp2p-swarm 0.48 `connection.rs`). The 10 s
/// idle timeout therefore starts only once the third attempt's exchange is
/// over, and never after a punch that worked at the first or second
/// attempt (the behaviour then stops: `behaviour.rs` retries only on a
/// failed direct dial).
#[derive(Debug, Clone, Copy)]
enum DcutrHold {
    /// Kept alive until this instant (the third attempt's exchange ends).
    Until(Timestamp),
    /// Kept alive for as long as it lives.
    Always,
}

#[derive(Debug, Clone, Copy)]
struct Circuit {
    epoch: u32,
    bytes: u64,
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
            && remote.ifaces[c.remote_kind as usize].attach == c.remote_attach;
        if !same {
            return None;
        }
        match (c.addr.relay, c.circuit) {
            (Some(r), Some(circuit)) => {
                let srv = self.world.servers.get(usize::from(r))?;
                if srv.epoch != circuit.epoch {
                    return None;
                }
                self.world
                    .relay_rtt(c.node, c.via, r, c.addr.node, c.remote_kind)
            }
            _ => self.world.usable_path(c.node, c.via, c.addr),
        }
    }

    /// Whether a connection goes through a relay.
    pub(super) fn relayed(&self, key: u64) -> bool {
        self.conns.get(&key).is_some_and(|c| c.circuit.is_some())
    }

    pub(super) fn class_of(&self, key: u64) -> Option<PathClass> {
        self.conns.get(&key).map(|c| PathClass {
            from: c.via,
            to: c.remote_kind,
            lan: c.addr.lan,
            relayed: c.circuit.is_some(),
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
        let remote_kind = match addr.relay {
            Some(_) => self.world.reservation(addr.node).unwrap_or(addr.kind),
            None => addr.kind,
        };
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
                .map_or(0, |n| n.ifaces[remote_kind as usize].attach),
            remote_kind,
            circuit: addr.relay.map(|r| Circuit {
                epoch: self
                    .world
                    .servers
                    .get(usize::from(r))
                    .map_or(0, |s| s.epoch),
                bytes: 0,
            }),
            punched: false,
            dcutr_hold: None,
        }
    }

    /// Marks a connection open and starts its stack's liveness timers; a
    /// relayed one also starts DCUtR and its circuit's duration limit.
    fn opened(&mut self, key: u64) {
        let now = self.now;
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        c.open = true;
        c.last_rx = now;
        c.last_app = now;
        let lv = c.liveness;
        let relayed = c.circuit.is_some();
        if let Some(p) = lv.ping_every {
            self.push(now + p, Ev::Ping { key });
        }
        if let Some(k) = lv.quic_keepalive {
            self.push(now + k, Ev::QuicKeepalive { key });
        }
        if let Some(i) = lv.idle_close {
            self.push(now + i, Ev::IdleCheck { key });
        }
        if relayed {
            self.metrics.relayed_opened += 1;
            self.push(now + RELAY_CIRCUIT_DURATION, Ev::CircuitEnd { key });
            self.start_dcutr(key);
        }
    }

    /// DCUtR over a relayed connection that just opened (libp2p runs it by
    /// itself on every relayed connection the NAT'd side accepts): whether
    /// it opens a direct path is the pair's draw (`crate::nat::punchable`);
    /// how long it takes, the attempts' setup over the circuit, a direct
    /// handshake for the one that works and a dial timeout for each that
    /// does not.
    fn start_dcutr(&mut self, key: u64) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        let (node, via, peer, kind) = (c.node, c.via, c.addr.node, c.remote_kind);
        let Some(relayed) = self.conn_path(c) else {
            return;
        };
        let ok = punchable(
            self.world.seed,
            self.world.punch_side(node, via),
            self.world.punch_side(peer, kind),
        );
        let attempts = if ok {
            attempts_to_success(&mut self.rng)
        } else {
            DCUTR_ATTEMPTS
        };
        let failed = attempts - u32::from(ok);
        let mut t = (attempt_setup(relayed) + UNREACHABLE_TIMEOUT) * failed;
        let hold = if attempts < DCUTR_ATTEMPTS {
            DcutrHold::Always
        } else {
            // The third attempt's exchange ends after two whole attempts
            // and its own setup.
            DcutrHold::Until(
                self.now
                    + (attempt_setup(relayed) + UNREACHABLE_TIMEOUT) * (DCUTR_ATTEMPTS - 1)
                    + attempt_setup(relayed),
            )
        };
        if let Some(c) = self.conns.get_mut(&key) {
            c.dcutr_hold = Some(hold);
        }
        if ok {
            let direct = AddrKey::public(
                peer,
                kind,
                self.world.nodes[peer as usize].ifaces[kind as usize].epoch,
            );
            // The punched dial's QUIC handshake: one direct round trip.
            t += attempt_setup(relayed)
                + self.world.usable_path(node, via, direct).unwrap_or(relayed);
        }
        self.metrics.punches += 1;
        self.push(self.now + t, Ev::Punch { key, ok });
    }

    /// DCUtR over the relayed connection `key` ended.
    pub(super) fn punch_done(&mut self, key: u64, ok: bool) {
        let Some(c) = self.conns.get(&key) else {
            return;
        };
        if !c.open || self.conn_path(c).is_none() {
            return;
        }
        let (node, via, peer, kind) = (c.node, c.via, c.peer, c.remote_kind);
        let direct = AddrKey::public(
            c.addr.node,
            kind,
            self.world.nodes[c.addr.node as usize].ifaces[kind as usize].epoch,
        );
        if ok && self.world.usable_path(node, via, direct).is_some() {
            self.metrics.punches_ok += 1;
            self.input(
                node,
                Input::HolePunched {
                    relayed: local_id(key),
                    peer,
                    addr: direct,
                    via,
                },
            );
        } else {
            self.input(node, Input::HolePunchFailed { peer, via });
        }
    }

    /// A policy took the direct connection a hole punch opened: it is open
    /// at once, past both NATs.
    pub(super) fn adopt(&mut self, key: u64, peer: u32, addr: AddrKey, via: IfKind) {
        let Some(liveness) = self.agents[(key >> 40) as usize].as_ref().map(|a| {
            a.liveness(
                addr.quic,
                self.world.nodes[(key >> 40) as usize].medium(via),
            )
        }) else {
            return;
        };
        let mut c = self.conn((key >> 40) as u32, peer, addr, via, liveness);
        c.punched = true;
        self.conns.insert(key, c);
        self.opened(key);
    }

    /// Counts `bytes` (both ways together) against a relayed connection's
    /// circuit; past the relay's byte limit the circuit is cut.
    pub(super) fn circuit_bytes(&mut self, key: u64, bytes: u64) {
        let Some(circuit) = self.conns.get_mut(&key).and_then(|c| c.circuit.as_mut()) else {
            return;
        };
        let before = circuit.bytes;
        circuit.bytes = circuit.bytes.saturating_add(bytes);
        if before < RELAY_CIRCUIT_BYTES && circuit.bytes >= RELAY_CIRCUIT_BYTES {
            self.push(self.now, Ev::CircuitEnd { key });
        }
    }

    /// The relay cuts a circuit at its limit: both ends see the connection
    /// close at once (the relay resets the streams).
    pub(super) fn circuit_end(&mut self, key: u64) {
        if !self.conns.get(&key).is_some_and(|c| c.open) {
            return;
        }
        self.metrics.circuits_cut += 1;
        self.close_under(key, |conn| Input::ConnectionLost { conn });
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
            self.opened(key);
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
        let (node, via, remote, lv) = (c.node, c.via, (c.addr.node, c.remote_kind), c.liveness);
        let path = self.conn_path(c);
        let bytes = multidriver_scoring::energy::KEEPALIVE_BYTES;
        if self.world.nodes[node as usize].usable(via) {
            self.world.nodes[node as usize].radios[via as usize].activity(
                self.now,
                bytes,
                bytes,
                Cause::Liveness,
            );
        }
        if repeat && let Some(p) = lv.ping_every {
            self.push(self.now + p, Ev::Ping { key });
        }
        match path {
            Some(base) => {
                self.world.nodes[remote.0 as usize].radios[remote.1 as usize].activity(
                    self.now,
                    bytes,
                    bytes,
                    Cause::Liveness,
                );
                self.circuit_bytes(key, 2 * bytes);
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
        let (node, via, remote, lv, last_rx) = (
            c.node,
            c.via,
            (c.addr.node, c.remote_kind),
            c.liveness,
            c.last_rx,
        );
        let alive = self.conn_path(c).is_some();
        if self.world.nodes[node as usize].usable(via) {
            self.world.nodes[node as usize].radios[via as usize].activity(
                self.now,
                60,
                60,
                Cause::Liveness,
            );
        }
        if let Some(k) = lv.quic_keepalive {
            self.push(self.now + k, Ev::QuicKeepalive { key });
        }
        if alive {
            self.world.nodes[remote.0 as usize].radios[remote.1 as usize].activity(
                self.now,
                60,
                60,
                Cause::Liveness,
            );
            self.circuit_bytes(key, 120);
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
        // DCUtR's handler may keep a relayed connection alive.
        let held = match c.dcutr_hold {
            Some(DcutrHold::Always) => return,
            Some(DcutrHold::Until(t)) => t,
            None => c.last_app,
        };
        let due = c.last_app.max(held) + idle;
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
