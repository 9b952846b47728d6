//! The lower bound: a policy that knows the true best path at every instant,
//! needs no discovery and no keep-alives, and moves the moment a better path
//! appears or the current one dies. It respects NATs: it takes the best
//! path a connection can take (`World::best_path`): a direct one where the
//! NATs let a dial through, else a direct one a hole punch would open
//! (reached, as anyone must, through a relayed connection first), else a
//! relayed one.

use std::collections::{BTreeMap, VecDeque};

use multidriver_scoring::{Medium, Timestamp};

use super::{Agent, Input, Liveness, Output, PING_TIMEOUT};
use crate::world::{AddrKey, IfKind, Reach, World};

#[derive(Debug, Default)]
struct Peer {
    conn: Option<(u64, IfKind, AddrKey)>,
    dialing: Option<(u64, IfKind, AddrKey)>,
}

pub(crate) struct OracleAgent {
    me: u32,
    peers: BTreeMap<u32, Peer>,
    next_id: u64,
    out: VecDeque<Output>,
}

impl OracleAgent {
    pub(crate) fn new(me: u32, world: &World) -> OracleAgent {
        OracleAgent {
            me,
            peers: world.nodes[me as usize]
                .contacts
                .iter()
                .map(|&c| (c, Peer::default()))
                .collect(),
            next_id: 0,
            out: VecDeque::new(),
        }
    }

    fn reconsider(&mut self, peer: u32, world: &World) {
        let best = world.best_path(self.me, peer);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let same = |x: &Option<(u64, IfKind, AddrKey)>, via: IfKind, a: AddrKey| {
            x.is_some_and(|(_, v, k)| v == via && k == a)
        };
        let relayed_over = |x: &Option<(u64, IfKind, AddrKey)>, via: IfKind| {
            x.is_some_and(|(_, v, k)| v == via && k.relay.is_some())
        };
        // What to dial: the best path itself, or for one a hole punch would
        // open, a relayed connection over the same interface first (DCUtR
        // runs on it, and the punched connection replaces it).
        let target = best.and_then(|b| match b.how {
            Reach::Direct | Reach::Relayed => Some((b.via, b.addr)),
            Reach::Punched => {
                if same(&p.conn, b.via, b.addr) {
                    Some((b.via, b.addr))
                } else {
                    world
                        .best_relayed(self.me, peer, b.via)
                        .map(|(_, r)| (b.via, r))
                }
            }
        });
        if best.is_some_and(|b| b.how == Reach::Punched)
            && (relayed_over(&p.conn, best.map_or(IfKind::Wifi, |b| b.via))
                || relayed_over(&p.dialing, best.map_or(IfKind::Wifi, |b| b.via)))
        {
            // The punch is on its way over the circuit.
            return;
        }
        match target {
            Some((via, addr)) => {
                if same(&p.conn, via, addr) || same(&p.dialing, via, addr) {
                    return;
                }
                if let Some((c, _, _)) = p.dialing.take() {
                    self.out.push_back(Output::CancelDial { conn: c });
                }
                // The old connection stays until the new one is up, unless
                // it is already dead.
                if let Some((c, v, a)) = p.conn
                    && world.usable_path(self.me, v, a).is_none()
                {
                    p.conn = None;
                    self.out.push_back(Output::Close { conn: c });
                    self.out.push_back(Output::Primary { peer, conn: None });
                }
                self.next_id += 1;
                let conn = self.next_id;
                p.dialing = Some((conn, via, addr));
                self.out.push_back(Output::Dial {
                    conn,
                    peer,
                    addr,
                    via: Some(via),
                });
            }
            None => {
                if let Some((c, _, _)) = p.dialing.take() {
                    self.out.push_back(Output::CancelDial { conn: c });
                }
                if let Some((c, _, _)) = p.conn.take() {
                    self.out.push_back(Output::Close { conn: c });
                    self.out.push_back(Output::Primary { peer, conn: None });
                }
            }
        }
    }
}

impl Agent for OracleAgent {
    fn handle(&mut self, input: Input, _now: Timestamp, world: &World) {
        match input {
            Input::Start => {
                let peers: Vec<u32> = self.peers.keys().copied().collect();
                for p in peers {
                    self.reconsider(p, world);
                }
            }
            Input::PathsChanged { peer } => self.reconsider(peer, world),
            Input::HolePunched {
                relayed,
                peer,
                addr,
                via,
            } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                if p.conn.is_none_or(|c| c.0 != relayed) {
                    return;
                }
                self.next_id += 1;
                let conn = self.next_id;
                p.conn = Some((conn, via, addr));
                self.out.push_back(Output::Adopt {
                    conn,
                    peer,
                    addr,
                    via,
                });
                self.out.push_back(Output::Primary {
                    peer,
                    conn: Some(conn),
                });
                self.out.push_back(Output::Close { conn: relayed });
                self.reconsider(peer, world);
            }
            Input::DialSucceeded { conn } => {
                let Some((&peer, p)) = self
                    .peers
                    .iter_mut()
                    .find(|(_, p)| p.dialing.is_some_and(|d| d.0 == conn))
                else {
                    return;
                };
                let old = p.conn.take();
                p.conn = p.dialing.take();
                self.out.push_back(Output::Primary {
                    peer,
                    conn: Some(conn),
                });
                if let Some((c, _, _)) = old {
                    self.out.push_back(Output::Close { conn: c });
                }
            }
            Input::DialFailed { conn }
            | Input::ConnectionLost { conn }
            | Input::IdleClosed { conn } => {
                let Some(peer) = self.peers.iter_mut().find_map(|(&peer, p)| {
                    if p.dialing.is_some_and(|d| d.0 == conn) {
                        p.dialing = None;
                        Some(peer)
                    } else if p.conn.is_some_and(|d| d.0 == conn) {
                        // Closed under it (a relay cut the circuit): the app
                        // holds its messages until the next connection.
                        p.conn = None;
                        self.out.push_back(Output::Primary { peer, conn: None });
                        Some(peer)
                    } else {
                        None
                    }
                }) else {
                    return;
                };
                self.reconsider(peer, world);
            }
            _ => {}
        }
    }

    fn handle_timeout(&mut self, _now: Timestamp, _world: &World) {}

    fn poll_timeout(&self) -> Option<Timestamp> {
        None
    }

    fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn liveness(&self, _quic: bool, _medium: Medium) -> Liveness {
        // It knows when a path dies: no keep-alives at all.
        Liveness {
            ping_every: None,
            ping_timeout: Some(PING_TIMEOUT),
            quic_keepalive: None,
            quic_idle: None,
            idle_close: None,
        }
    }

    fn wants_path_changes(&self) -> bool {
        true
    }
}
