//! The racing dialer: a peer's dialable routes in rank order, staggered by
//! the leader's expected handshake time, fast-forwarded on failure, within
//! the attempt bounds.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::race::stagger;
use multidriver_scoring::{Medium, Timestamp};

use crate::nat::{RELAYS_AHEAD, relay_of};
use crate::{Attempt, Command, ConnectionHandle, Engine, Event, Purpose, Race, RouteNo};

impl Engine {
    /// Moves a peer forward: continue its race, start one if it is wanted
    /// and unconnected, or consider an upgrade if it is connected.
    pub(crate) fn progress(&mut self, peer_id: PeerId, now: Timestamp) {
        let Some(peer) = self.peers.get(&peer_id) else {
            return;
        };
        if peer.race.is_some() {
            self.advance(peer_id, now);
        } else if peer.primary.is_none() {
            if peer.wanted && !peer.dormant {
                self.start_race(peer_id, Purpose::Connect, now);
            }
        } else {
            self.consider_upgrade(peer_id, now);
        }
        self.refresh_wake(peer_id, now);
    }

    pub(crate) fn start_race(&mut self, peer_id: PeerId, purpose: Purpose, now: Timestamp) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        peer.race = Some(Race {
            purpose,
            tried: Vec::new(),
            in_flight: Vec::new(),
            next_due: now,
            wake: None,
        });
        peer.guard.reset();
        peer.guard_until = None;
        self.advance(peer_id, now);
        self.refresh_wake(peer_id, now);
    }

    /// Starts the race's next attempts while they are due and capacity
    /// allows; ends the race when nothing is left to try.
    pub(crate) fn advance(&mut self, peer_id: PeerId, now: Timestamp) {
        let per_peer = self
            .config
            .max_attempts_per_peer
            .min(self.profile.racing.max_attempts as usize);
        loop {
            let Some(peer) = self.peers.get(&peer_id) else {
                return;
            };
            let Some(race) = &peer.race else {
                return;
            };
            let primary_route = peer
                .primary
                .and_then(|c| self.connections.get(&c))
                .and_then(|c| c.route);
            let candidates = self.candidates(peer, now);
            let is_relay = |no: &RouteNo| {
                peer.index_of(*no)
                    .is_some_and(|i| peer.routes[i].medium == Medium::Relay)
            };
            // Relay first while no direct route this race could dial ever
            // connected, or when the race recovers a lost connection (the
            // peer may have moved: its routes that worked may be dead): the
            // best relayed routes through up to `RELAYS_AHEAD` different
            // relays start beside the direct attempts, not after their
            // stagger (see `nat.rs`).
            let relays_tried: Vec<Multiaddr> = race
                .tried
                .iter()
                .filter_map(|no| peer.index_of(*no))
                .filter_map(|i| relay_of(&peer.routes[i].id.addr))
                .collect();
            let relay_now = (race.purpose == Purpose::Connect
                && relays_tried.len() < RELAYS_AHEAD
                && (peer.lost.is_some()
                    || !Self::direct_proven(peer, candidates.iter().map(|(no, _, _)| *no))))
            .then(|| {
                // Over the leader's interface when it can: the next
                // interface is usually a costlier radio.
                let leader = candidates
                    .first()
                    .and_then(|(no, _, _)| peer.index_of(*no))
                    .map(|i| peer.meta[i].interface);
                let ahead = |no: &RouteNo| {
                    !race.tried.contains(no)
                        && is_relay(no)
                        && peer.index_of(*no).is_some_and(|i| {
                            relay_of(&peer.routes[i].id.addr)
                                .is_some_and(|r| !relays_tried.contains(&r))
                        })
                };
                // After a direct connection was lost (a stalled Wi-Fi,
                // say), the leader's interface is suspect: the best relay
                // wherever it is.
                let direct_lost = peer
                    .lost
                    .as_ref()
                    .is_some_and(|(addr, _)| !crate::nat::is_relayed(addr));
                let on = |no: &RouteNo| {
                    direct_lost
                        || peer
                            .index_of(*no)
                            .is_some_and(|i| Some(peer.meta[i].interface) == leader)
                };
                // A second relay ahead only over that interface.
                candidates
                    .iter()
                    .find(|(no, _, _)| ahead(no) && on(no))
                    .or_else(|| {
                        relays_tried
                            .is_empty()
                            .then(|| candidates.iter().find(|(no, _, _)| ahead(no)))
                            .flatten()
                    })
                    .map(|(no, _, _)| *no)
            })
            .flatten();
            let next = candidates.into_iter().find(|(no, _, _)| {
                !race.tried.contains(no)
                    && Some(*no) != primary_route
                    && match race.purpose {
                        Purpose::Connect => true,
                        Purpose::Upgrade { only, avoid, .. } => {
                            only.is_none_or(|o| o == *no)
                                && avoid.is_none_or(|a| {
                                    peer.index_of(*no)
                                        .is_some_and(|i| peer.meta[i].interface != a)
                                })
                        }
                    }
            });
            let in_flight = race.in_flight.len();
            let next_due = race.next_due;
            let purpose = race.purpose;
            let tried = race.tried.len();
            let Some((no, _, _)) = next else {
                if in_flight == 0 {
                    self.end_race(peer_id, purpose, tried);
                } else {
                    // Nothing more to start: wait for the outcomes.
                    self.set_race_wake(peer_id, None);
                }
                return;
            };
            // Every attempt to the peer counts, a warm backup's kept from an
            // earlier race included.
            let peer_in_flight = self.attempts.values().filter(|a| a.peer == peer_id).count();
            if peer_in_flight >= per_peer {
                self.set_race_wake(peer_id, None);
                return;
            }
            if self.attempts.len() >= self.config.max_attempts_total
                || self.attempts.len() + self.connections.len() >= self.config.max_connections
            {
                self.blocked.insert(peer_id);
                self.set_race_wake(peer_id, None);
                return;
            }
            // A relay started ahead of its turn leaves the direct routes'
            // schedule as it was.
            let (no, ahead) = match relay_now {
                Some(relay) if next_due > now => (relay, true),
                _ if next_due > now => {
                    self.set_race_wake(peer_id, Some(next_due));
                    return;
                }
                _ => (no, false),
            };
            self.blocked.remove(&peer_id);
            let id = self.new_id();
            let peer = self.peers.get_mut(&peer_id).expect("looked up above");
            let i = peer.index_of(no).expect("a candidate exists");
            let route = &peer.routes[i];
            let wait = stagger(route, &self.profile.racing);
            let interface = peer.meta[i].interface;
            self.commands.push(Command::Dial {
                connection: id,
                peer: peer_id,
                addr: route.id.addr.clone(),
                interface,
            });
            let race = peer.race.as_mut().expect("looked up above");
            race.tried.push(no);
            race.in_flight.push(id);
            if !ahead {
                race.next_due = now + wait;
            }
            self.note_radio(interface, now);
            self.attempts.insert(
                id,
                Attempt {
                    peer: peer_id,
                    route: no,
                    started: now,
                },
            );
        }
    }

    pub(crate) fn set_race_wake(&mut self, peer_id: PeerId, wake: Option<Timestamp>) {
        if let Some(race) = self.peers.get_mut(&peer_id).and_then(|p| p.race.as_mut()) {
            race.wake = wake;
        }
    }

    pub(crate) fn end_race(&mut self, peer_id: PeerId, purpose: Purpose, tried: usize) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        peer.race = None;
        self.blocked.remove(&peer_id);
        if purpose == Purpose::Connect && peer.primary.is_none() && peer.wanted {
            // A race that was to replace a lost connection: the peer was
            // connected and no longer is, which the app hears first (an app
            // that tracks who is connected by `RouteSelected` and
            // `PeerDisconnected` alone would otherwise keep the peer).
            if peer.lost.take().is_some() {
                self.push_event(Event::PeerDisconnected { peer: peer_id });
            }
            self.push_event(Event::PeerUnreachable {
                peer: peer_id,
                tried,
            });
        }
    }

    /// Cancels every attempt of the peer's race but `keep`, and ends it.
    pub(crate) fn cancel_race_attempts(&mut self, peer_id: PeerId, keep: Option<ConnectionHandle>) {
        let ids: Vec<ConnectionHandle> = self
            .attempts
            .iter()
            .filter(|(id, a)| a.peer == peer_id && Some(**id) != keep)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.attempts.remove(&id);
            self.commands.push(Command::CancelDial { connection: id });
        }
        if let Some(p) = self.peers.get_mut(&peer_id) {
            p.race = None;
        }
        self.blocked.remove(&peer_id);
    }

    pub(crate) fn cancel_race(&mut self, peer_id: PeerId) {
        self.cancel_race_attempts(peer_id, None);
    }

    pub(crate) fn record_failure(
        &mut self,
        attempt: &Attempt,
        connection: ConnectionHandle,
        now: Timestamp,
    ) {
        let peer_id = attempt.peer;
        if let Some(peer) = self.peers.get_mut(&peer_id) {
            if let Some(i) = peer.index_of(attempt.route) {
                peer.routes[i].dials.record_failure();
                peer.routes[i].rtt.on_failure(now);
            }
            if let Some(race) = peer.race.as_mut() {
                race.in_flight.retain(|c| *c != connection);
                // Fast-forward: the next attempt starts at once.
                race.next_due = now;
            }
        }
        self.schedule_recheck(peer_id, now);
        self.progress(peer_id, now);
    }

    /// Lets peers that waited for attempt or connection capacity go on.
    pub(crate) fn release_capacity(&mut self, now: Timestamp) {
        while self.attempts.len() < self.config.max_attempts_total {
            let Some(peer) = self.blocked.pop_first() else {
                return;
            };
            self.progress(peer, now);
            if self.blocked.contains(&peer) {
                // Still blocked (connection capacity); try again later.
                return;
            }
        }
    }
}
