//! The engine's commands turned into swarm actions and driver calls, the
//! drivers' answers fed back, and the engine's events logged and counted.

use std::time::Instant;

use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{CloseConnection, NotifyHandler, ToSwarm};
use multidriver_scoring::energy::{KEEPALIVE_BYTES, RadioProfile};
use multidriver_scoring::{Medium, TransportKind};

use super::counters::record_energy;
use super::{Behaviour, Dial, DriverEvent, DriverSet, handler};
use crate::core::{Command, Event, QueryOutcome};

impl<D: DriverSet> Behaviour<D> {
    /// Feeds the engine what a discovery behaviour of the app's own found:
    /// bring your own Kademlia, mDNS or rendezvous client instead of a
    /// second instance inside [`Discovery`](crate::Discovery) (two routing
    /// tables on `/ipfs/kad/1.0.0`, double multicast).
    /// `multidriver_routing::{kad, mdns, rendezvous}::discovered` turn those
    /// behaviours' events into [`DriverEvent::Discovered`]s:
    ///
    /// ```ignore
    /// SwarmEvent::Behaviour(MyEvent::Kad(e)) => {
    ///     for found in multidriver::routing::kad::discovered(&e) {
    ///         swarm.behaviour_mut().multidriver.handle_driver_event(found);
    ///     }
    /// }
    /// ```
    ///
    /// Routes are taken as from any driver (unsolicited, `query: None`): a
    /// peer the app wants is dialled through the best of them. A
    /// [`DriverEvent::Finished`] for a query the engine did not order is
    /// ignored.
    pub fn handle_driver_event(&mut self, event: DriverEvent) {
        self.on_driver_event(event);
        self.wake();
    }

    pub(crate) fn on_driver_event(&mut self, event: DriverEvent) {
        let now = self.now();
        match event {
            DriverEvent::Discovered {
                query,
                source,
                peer,
                addrs,
                signed,
                ttl,
            } => {
                if peer == self.local_peer {
                    return;
                }
                for addr in addrs {
                    // Strip a trailing `/p2p/<peer>`: routes are per peer.
                    let addr = match addr.iter().last() {
                        Some(Protocol::P2p(_)) => {
                            let mut a = addr.clone();
                            a.pop();
                            a
                        }
                        _ => addr,
                    };
                    match self.feed(peer, addr.clone(), source, signed, ttl, now) {
                        Ok(()) => {
                            if let Some(q) = query.and_then(|q| self.queries.get_mut(&q)) {
                                q.1 += 1;
                            }
                        }
                        Err(e) => {
                            tracing::debug!(target: "multidriver", %peer, %addr, error = %e, "route refused")
                        }
                    }
                }
                self.adopt(peer, now);
            }
            DriverEvent::Finished { query, result } => {
                let Some((sent, found, source)) = self.queries.remove(&query) else {
                    return;
                };
                metrics::histogram!("multidriver_driver_answer_seconds", "driver" => source.as_str())
                    .record(sent.elapsed().as_secs_f64());
                let outcome = match result {
                    Ok(()) => {
                        tracing::debug!(target: "multidriver", %query, driver = source.as_str(), found, "driver operation succeeded");
                        QueryOutcome::Succeeded { found }
                    }
                    Err(reason) => {
                        tracing::debug!(target: "multidriver", %query, %reason, "driver operation failed");
                        QueryOutcome::Failed
                    }
                };
                self.engine.handle_query_outcome(query, outcome, now);
            }
            other => {
                tracing::debug!(target: "multidriver", event = ?other, "a driver event this adapter does not know; ignored")
            }
        }
    }

    /// Turns one engine command into swarm actions or driver calls.
    pub(crate) fn on_command(&mut self, command: Command) {
        tracing::trace!(target: "multidriver", ?command, "engine command");
        match command {
            Command::Dial {
                connection,
                peer,
                addr,
                interface,
            } => {
                let opts = DialOpts::peer_id(peer)
                    .addresses(vec![addr.clone()])
                    .condition(PeerCondition::Always)
                    .build();
                let medium = self.interfaces.medium(interface);
                if let Some(transport) = TransportKind::from_multiaddr(&addr) {
                    record_energy(
                        medium,
                        "dial",
                        RadioProfile::for_medium(medium).setup_energy(transport),
                    );
                }
                tracing::debug!(target: "multidriver", %peer, %addr, %interface, engine = %connection, "dial");
                self.dials.insert(
                    opts.connection_id(),
                    Dial {
                        engine: connection,
                        medium,
                        started: Instant::now(),
                    },
                );
                self.actions.push_back(ToSwarm::Dial { opts });
            }
            // libp2p cannot abort one pending dial; if it still connects,
            // the engine closes it as a duplicate.
            Command::CancelDial { .. } => {}
            Command::Advertise {
                query,
                driver,
                namespace,
                ttl,
            } => match self.driver_index(driver) {
                Some(i) => {
                    let source = self.drivers_kind(i);
                    self.queries.insert(query, (Instant::now(), 0, source));
                    self.drivers.advertise(i, query, &namespace, ttl);
                }
                None => self
                    .engine
                    .handle_query_outcome(query, QueryOutcome::Failed, self.now()),
            },
            Command::StopAdvertising { driver, namespace } => {
                if let Some(i) = self.driver_index(driver) {
                    self.drivers.stop_advertising(i, &namespace);
                }
            }
            Command::Discover {
                query,
                driver,
                namespace,
            } => match self.driver_index(driver) {
                Some(i) => {
                    let source = self.drivers_kind(i);
                    self.queries.insert(query, (Instant::now(), 0, source));
                    self.drivers.discover(i, query, &namespace);
                }
                None => self
                    .engine
                    .handle_query_outcome(query, QueryOutcome::Failed, self.now()),
            },
            Command::CancelQuery { query } => {
                self.queries.remove(&query);
                self.drivers.cancel(query);
            }
            Command::KeepAlive { connections } => {
                // One batch wakes each radio once: a promotion and a tail per
                // medium, plus each probe's bytes (32 each way, framed).
                let mut woken: Vec<Medium> = Vec::new();
                for c in &connections {
                    let Some((_, interface)) = self.engine.connection(*c) else {
                        continue;
                    };
                    let medium = self.interfaces.medium(interface);
                    let radio = RadioProfile::for_medium(medium);
                    let mut joules = radio.transfer_energy(KEEPALIVE_BYTES, KEEPALIVE_BYTES);
                    if !woken.contains(&medium) {
                        woken.push(medium);
                        joules += radio.isolated_wakeup_energy();
                    }
                    record_energy(medium, "probe", joules);
                }
                for c in connections {
                    if let Some((swarm, peer)) = self.by_engine.get(&c) {
                        self.actions.push_back(ToSwarm::NotifyHandler {
                            peer_id: *peer,
                            handler: NotifyHandler::One(*swarm),
                            event: either::Either::Left(handler::In::Probe),
                        });
                    }
                }
            }
            Command::CloseConnection { connection, reason } => {
                if let Some((swarm, peer)) = self.by_engine.remove(&connection) {
                    tracing::debug!(target: "multidriver", %peer, engine = %connection, ?reason, "close");
                    self.open.remove(&swarm);
                    self.closing.insert(swarm);
                    self.actions.push_back(ToSwarm::CloseConnection {
                        peer_id: peer,
                        connection: CloseConnection::One(swarm),
                    });
                }
            }
            c @ (Command::Reserve { .. } | Command::Unreserve { .. }) => {
                self.on_reservation_command(c)
            }
            // A ping on a connection to each relay holding a reservation:
            // its packets keep the NAT binding the relay reaches us through.
            // The answer is not reported (the connection is not the
            // engine's); a reservation that dies ends its listener, which
            // the engine hears as a failed reservation.
            Command::KeepReservations { relays } => {
                for relay in relays {
                    metrics::counter!("multidriver_reservation_keepalives_total").increment(1);
                    self.actions.push_back(ToSwarm::NotifyHandler {
                        peer_id: relay,
                        handler: NotifyHandler::Any,
                        event: either::Either::Left(handler::In::Probe),
                    });
                }
            }
            other => {
                tracing::debug!(target: "multidriver", command = ?other, "a command this adapter does not know; ignored")
            }
        }
    }

    pub(crate) fn on_event(&mut self, event: &Event) {
        match event {
            Event::RouteSelected {
                peer,
                addr,
                interface,
                ..
            } => {
                tracing::info!(target: "multidriver", %peer, %addr, %interface, "route selected");
                if let Some(since) = self.wanted_since.remove(peer) {
                    metrics::histogram!("multidriver_time_to_connect_seconds")
                        .record(since.elapsed().as_secs_f64());
                }
            }
            Event::RouteSwitched {
                peer,
                from,
                to,
                reason,
                ..
            } => {
                let label = reason.label();
                tracing::info!(target: "multidriver", %peer, %from, %to, reason = label, "route switched");
                metrics::counter!("multidriver_route_switches_total", "reason" => label)
                    .increment(1);
            }
            _ => {}
        }
    }
}
