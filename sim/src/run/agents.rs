//! The agents: creating each node's policy agent, feeding it inputs, and
//! applying its outputs to the world.

use std::time::Duration;

use multidriver_scoring::TransportKind;

use crate::Error;
use crate::agent::classic::{ClassicAgent, Flavor, route_for};
use crate::agent::engine::{DriverSet, EngineAgent};
use crate::agent::oracle::OracleAgent;
use crate::agent::{Agent, DriverRef, Input, Liveness, Output};
use crate::scenario::policy_profile;
use crate::world::{Cause, IfKind, UNREACHABLE_TIMEOUT};

use super::Sim;
use super::budget::Kind;
use super::connections::conn_key;
use super::events::Ev;

/// A TCP dial to an address that never answers fails after 10 s. Our
/// assumption: libp2p sets no TCP connect timeout of its own, Linux gives up
/// after ~127 s of SYN retries, and apps commonly wrap dials in 10 s.
const TCP_BLACKHOLE_TIMEOUT: Duration = Duration::from_secs(10);

impl Sim<'_> {
    pub(super) fn input(&mut self, node: u32, input: Input) {
        let Some(mut a) = self.agents[node as usize].take() else {
            return;
        };
        a.handle(input, self.now, &self.world);
        self.agents[node as usize] = Some(a);
        self.after_agent(node);
    }

    pub(super) fn after_agent(&mut self, node: u32) {
        loop {
            let out = match self.agents[node as usize].as_mut() {
                Some(a) => a.poll_output(),
                None => None,
            };
            let Some(out) = out else { break };
            if !self.charge(node, Kind::of_output(&out)) {
                // Over budget: the run stops after this event.
                break;
            }
            self.apply(node, out);
        }
        let due = self.agents[node as usize]
            .as_ref()
            .and_then(|a| a.poll_timeout());
        if let Some(t) = due {
            // A timer in the past runs now (the engine asks for one when
            // an input moved its clock past a deadline first).
            // One asked again for the instant it just fired at runs 1 ms
            // later, so a policy's mistake cannot stall simulated time.
            let mut t = t.max(self.now);
            if self.fired_at[node as usize] == Some(t) {
                t = t + Duration::from_millis(1);
            }
            if self.timer_at[node as usize] != Some(t) {
                self.timer_at[node as usize] = Some(t);
                let generation = self.gens[node as usize];
                self.push(t, Ev::Timer { node, generation });
            }
        } else {
            self.timer_at[node as usize] = None;
        }
    }

    pub(super) fn make_agent(&self, node: u32) -> Result<Box<dyn Agent>, Error> {
        let seed = self.plan.seed ^ (u64::from(node) << 32) ^ u64::from(self.gens[node as usize]);
        let engine = |profile, set| -> Result<Box<dyn Agent>, Error> {
            Ok(Box::new(EngineAgent::new(
                node,
                profile,
                set,
                seed,
                self.plan.ids.clone(),
                &self.world,
                self.now,
            )?))
        };
        use multidriver_scoring::Source;
        match self.policy.as_str() {
            "libp2p-stock" => Ok(Box::new(ClassicAgent::new(
                node,
                Flavor::Stock,
                &self.world,
            ))),
            "libp2p-tuned" => Ok(Box::new(ClassicAgent::new(
                node,
                Flavor::Tuned,
                &self.world,
            ))),
            "tinder" => Ok(Box::new(ClassicAgent::new(
                node,
                Flavor::Tinder,
                &self.world,
            ))),
            "oracle" => Ok(Box::new(OracleAgent::new(node, &self.world))),
            "single-dht" => engine(None, DriverSet::Only(Source::Dht)),
            "single-rendezvous" => engine(None, DriverSet::Only(Source::Rendezvous)),
            "single-mdns" => engine(None, DriverSet::Only(Source::Mdns)),
            other => engine(policy_profile(other), DriverSet::All),
        }
    }

    fn apply(&mut self, node: u32, out: Output) {
        let n = node as usize;
        match out {
            Output::Dial {
                conn,
                peer,
                addr,
                via,
            } => {
                let key = conn_key(node, self.gens[node as usize], conn);
                self.metrics.dials += 1;
                let via = via.or_else(|| route_for(&self.world, node, addr));
                let liveness = self.agents[n].as_ref().map(|a| {
                    a.liveness(
                        addr.quic,
                        self.world.nodes[n].medium(via.unwrap_or(IfKind::Wifi)),
                    )
                });
                let (Some(via), Some(liveness)) = (via, liveness) else {
                    self.push(self.now, Ev::DialDone { key, ok: false });
                    self.conns.insert(
                        key,
                        self.conn(node, peer, addr, IfKind::Wifi, Liveness::none()),
                    );
                    return;
                };
                self.conns
                    .insert(key, self.conn(node, peer, addr, via, liveness));
                // A dial over an interface that is down fails at once; over
                // one that silently stalled it black-holes below (the OS
                // cannot tell).
                let iface = &self.world.nodes[n].ifaces[via as usize];
                if !self.world.nodes[n].online
                    || !iface.up
                    || peer as usize >= self.world.nodes.len()
                {
                    self.push(self.now, Ev::DialDone { key, ok: false });
                    return;
                }
                let transport = if addr.quic {
                    TransportKind::Quic
                } else {
                    TransportKind::Tcp
                };
                let (up, down) = transport.handshake_bytes();
                // A relayed dial: a QUIC handshake with the relay, the
                // circuit's HOP CONNECT / STOP exchange, then the peer's
                // own handshake over the circuit (**ours**: three relayed
                // round trips for QUIC, the transport's plus two for TCP).
                let rounds =
                    transport.handshake_round_trips() + 2 * u32::from(addr.relay.is_some());
                let remote_kind = self.conns.get(&key).map_or(addr.kind, |c| c.remote_kind);
                match self.world.dial_path(node, via, addr) {
                    Some(base) => {
                        let hs = self.world.handshake_time(node, via, base, rounds, self.now);
                        self.world.nodes[n].radios[via as usize].busy(
                            self.now,
                            self.now + hs,
                            up,
                            down,
                            Cause::Connect,
                        );
                        let target = &mut self.world.nodes[addr.node as usize];
                        target.radios[remote_kind as usize].activity(
                            self.now + hs / 2,
                            down,
                            up,
                            Cause::Connect,
                        );
                        self.push(self.now + hs, Ev::DialDone { key, ok: true });
                    }
                    None => {
                        // Nothing answers: a dead address, or a NAT that
                        // drops the unsolicited packets. The dial times out.
                        self.world.nodes[n].radios[via as usize].activity(
                            self.now,
                            up,
                            0,
                            Cause::Connect,
                        );
                        let timeout = if addr.quic {
                            UNREACHABLE_TIMEOUT
                        } else {
                            TCP_BLACKHOLE_TIMEOUT
                        };
                        self.push(self.now + timeout, Ev::DialDone { key, ok: false });
                    }
                }
            }
            Output::CancelDial { conn } => {
                let key = conn_key(node, self.gens[node as usize], conn);
                if self.conns.get(&key).is_some_and(|c| !c.open) {
                    self.conns.remove(&key);
                }
            }
            Output::Close { conn } => {
                self.remove_conn(conn_key(node, self.gens[node as usize], conn))
            }
            Output::KeepAlive { conns } => {
                for c in conns {
                    self.ping(conn_key(node, self.gens[node as usize], c), false);
                }
            }
            Output::Primary { peer, conn } => {
                if let Some(slot) = self.slot_of(node, peer) {
                    self.set_primary(
                        node,
                        slot,
                        conn.map(|c| conn_key(node, self.gens[node as usize], c)),
                    );
                }
            }
            Output::Adopt {
                conn,
                peer,
                addr,
                via,
            } => {
                let key = conn_key(node, self.gens[n], conn);
                self.adopt(key, peer, addr, via);
            }
            Output::Advertise { query, driver } => self.advertise(node, query, driver),
            Output::StopAdvertising { driver } => match driver {
                DriverRef::Mdns => self.world.nodes[n].mdns_visible = false,
                DriverRef::Proximity => self.world.nodes[n].ble_visible = false,
                DriverRef::Rendezvous(s) => {
                    if let Some(srv) = self.world.servers.get_mut(s as usize) {
                        srv.registrations[n] = None;
                    }
                }
                DriverRef::Dht => {}
            },
            Output::Discover {
                query,
                driver,
                peer,
            } => self.discover(node, query, driver, peer),
        }
    }
}
