//! Discovery: lookups and advertisements over the DHT, rendezvous, mDNS and
//! BLE, and their answers.

use std::time::Duration;

use multidriver_scoring::{Timestamp, TransportKind};

use crate::agent::engine::ADVERT_TTL;
use crate::agent::{DriverRef, Found, Input};
use crate::world::{
    AddrKey, BLE_SCAN, Cause, DHT_LOOKUP, DHT_OP_BYTES, DHT_PUBLISH, IfKind, MDNS_OP_BYTES,
    MDNS_TTL, RENDEZVOUS_OP_BYTES, UNREACHABLE_TIMEOUT,
};

use super::Sim;
use super::events::Ev;

/// How long a proximity sighting stays valid: our assumption (a BLE
/// advertiser out of range for a minute is gone).
const PROXIMITY_TTL: Duration = Duration::from_secs(60);
/// mDNS responders wait 20–120 ms before answering (RFC 6762 §6); the
/// simulator takes the upper end.
const MDNS_RESPONSE_DELAY: Duration = Duration::from_millis(120);

#[derive(Debug)]
pub(super) struct AnswerEv {
    pub(super) node: u32,
    generation: u32,
    query: u64,
    driver: DriverRef,
    ok: bool,
    discover: bool,
    found: Vec<Found>,
    /// What is looked up, answered from the world as it stands when the
    /// answer arrives.
    lookup: Option<Lookup>,
    /// A DHT record or rendezvous registration that takes effect now.
    store: Option<(DriverRef, Vec<AddrKey>, Timestamp)>,
}

impl AnswerEv {
    /// A failed answer with nothing found, to fill in.
    fn new(node: u32, generation: u32, query: u64, driver: DriverRef, discover: bool) -> Self {
        AnswerEv {
            node,
            generation,
            query,
            driver,
            ok: false,
            discover,
            found: Vec::new(),
            lookup: None,
            store: None,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Lookup {
    /// A DHT record or rendezvous registration of this peer.
    Record(u32),
    /// mDNS neighbours on the LAN of this interface.
    Mdns(IfKind, u16, Option<u32>),
    /// BLE advertisers in range.
    Ble(Option<u32>),
}

impl Sim<'_> {
    fn default_via(&self, node: u32) -> Option<IfKind> {
        self.world.nodes[node as usize].default_route(&self.world)
    }

    fn answer_at(&mut self, t: Timestamp, a: AnswerEv) {
        self.push(t, Ev::Answer(Box::new(a)));
    }

    pub(super) fn discover(&mut self, node: u32, query: u64, driver: DriverRef, peer: Option<u32>) {
        // A lookup of a peer, or a scan that hears everyone, counts as a
        // discovery; a DHT walk without a target (a bootstrap) does not.
        let counted = peer.is_some() || matches!(driver, DriverRef::Mdns | DriverRef::Proximity);
        if counted {
            self.metrics.discoveries += 1;
        }
        let generation = self.gens[node as usize];
        let mut a = AnswerEv::new(node, generation, query, driver, counted);
        let n = node as usize;
        match driver {
            DriverRef::Dht => {
                let Some(lat) = self.dht_exchange(node, &DHT_LOOKUP) else {
                    return self.answer_at(self.now, a);
                };
                let success = self.plan.scenario.dht.map_or(0.0, |d| d.lookup_success);
                a.ok = self.world.link_rng[n].chance(success);
                a.lookup = peer.filter(|_| a.ok).map(Lookup::Record);
                self.answer_at(self.now + lat, a);
            }
            DriverRef::Rendezvous(s) => {
                let Some(lat) =
                    self.rendezvous_exchange(node, s as usize, 300, RENDEZVOUS_OP_BYTES)
                else {
                    return self.answer_at(self.now, a);
                };
                let Ok(lat) = lat else {
                    return self.answer_at(self.now + UNREACHABLE_TIMEOUT, a);
                };
                a.ok = true;
                a.lookup = peer.map(Lookup::Record);
                self.answer_at(self.now + lat, a);
            }
            DriverRef::Mdns => {
                let nd = &self.world.nodes[n];
                let Some(via) = [IfKind::Wifi, IfKind::Ethernet]
                    .into_iter()
                    .find(|&k| nd.usable(k) && nd.ifaces[k as usize].lan.is_some())
                else {
                    return self.answer_at(self.now, a);
                };
                let lan = nd.ifaces[via as usize].lan.unwrap_or(0);
                let rtt = Duration::from_secs_f64(self.world.lans[lan as usize].rtt_ms / 1000.0);
                self.world.nodes[n].radios[via as usize].activity(
                    self.now,
                    MDNS_OP_BYTES,
                    MDNS_OP_BYTES,
                    Cause::Discovery,
                );
                a.ok = true;
                a.lookup = Some(Lookup::Mdns(via, lan, peer));
                self.answer_at(self.now + rtt + MDNS_RESPONSE_DELAY, a);
            }
            DriverRef::Proximity => {
                if !self.world.nodes[n].usable(IfKind::Ble) {
                    return self.answer_at(self.now, a);
                }
                self.world.nodes[n].radios[IfKind::Ble as usize].busy(
                    self.now,
                    self.now + BLE_SCAN,
                    0,
                    64,
                    Cause::Discovery,
                );
                a.ok = true;
                a.lookup = Some(Lookup::Ble(peer));
                self.answer_at(self.now + BLE_SCAN, a);
            }
        }
    }

    /// One DHT walk over the node's default route, its latency drawn from
    /// `quantiles`; `None` without a route. Keeps the radio busy meanwhile.
    fn dht_exchange(&mut self, node: u32, quantiles: &[(f64, f64)]) -> Option<Duration> {
        let via = self.default_via(node)?;
        let n = node as usize;
        let lat = Duration::from_secs_f64(self.world.link_rng[n].quantiles(quantiles));
        let half = DHT_OP_BYTES / 2;
        let now = self.now;
        self.world.nodes[n].radios[via as usize].busy(now, now + lat, half, half, Cause::Discovery);
        Some(lat)
    }

    /// One request to rendezvous point `s` over the node's default route:
    /// `None` without a route, `Err` if the server is down (the request
    /// times out), else the time until the answer. Charges the radio.
    fn rendezvous_exchange(
        &mut self,
        node: u32,
        s: usize,
        up: u64,
        down: u64,
    ) -> Option<Result<Duration, ()>> {
        let via = self.default_via(node)?;
        let (n, v) = (node as usize, via as usize);
        if !self.world.servers[s].up {
            self.world.nodes[n].radios[v].activity(self.now, 200, 0, Cause::Discovery);
            return Some(Err(()));
        }
        let rtt = self.world.server_rtt(node, via, s);
        let rounds = TransportKind::Tcp.handshake_round_trips() + 1;
        let lat = self.world.handshake_time(node, via, rtt, rounds, self.now);
        let now = self.now;
        self.world.nodes[n].radios[v].busy(now, now + lat, up, down, Cause::Discovery);
        Some(Ok(lat))
    }

    pub(super) fn advertise(&mut self, node: u32, query: u64, driver: DriverRef) {
        let n = node as usize;
        let generation = self.gens[n];
        let mut a = AnswerEv::new(node, generation, query, driver, false);
        let addrs = self.world.nodes[n].addresses(node, &self.world, false, true);
        match driver {
            DriverRef::Mdns => {
                self.world.nodes[n].mdns_visible = true;
                a.ok = true;
                self.answer_at(self.now, a);
            }
            DriverRef::Proximity => {
                self.world.nodes[n].ble_visible = true;
                a.ok = true;
                self.answer_at(self.now, a);
            }
            DriverRef::Dht => {
                let Some(lat) = self.dht_exchange(node, &DHT_PUBLISH) else {
                    return self.answer_at(self.now, a);
                };
                a.ok = true;
                // Kademlia provider records live 48 h (libp2p-kad
                // `PROVIDER_RECORD_TTL`); the simulated hours never reach it.
                a.store = Some((
                    driver,
                    addrs,
                    self.now + lat + Duration::from_secs(48 * 3600),
                ));
                self.answer_at(self.now + lat, a);
            }
            DriverRef::Rendezvous(s) => {
                let Some(lat) =
                    self.rendezvous_exchange(node, s as usize, RENDEZVOUS_OP_BYTES, 300)
                else {
                    return self.answer_at(self.now, a);
                };
                let Ok(lat) = lat else {
                    return self.answer_at(self.now + UNREACHABLE_TIMEOUT, a);
                };
                a.ok = true;
                a.store = Some((driver, addrs, self.now + lat + ADVERT_TTL));
                self.answer_at(self.now + lat, a);
            }
        }
    }

    pub(super) fn answer(&mut self, mut a: AnswerEv) {
        match a.lookup {
            Some(Lookup::Mdns(via, lan, only)) => {
                let heard = self.world.mdns_neighbours(a.node, via);
                for c in heard.into_iter().filter(|c| only.is_none_or(|o| o == *c)) {
                    let addrs = self.world.lan_addresses(c, lan);
                    a.found.push(Found {
                        peer: c,
                        addrs,
                        ttl: MDNS_TTL,
                        signed: false,
                    });
                }
            }
            Some(Lookup::Ble(only)) => {
                let heard = self.world.ble_neighbours(a.node);
                for c in heard.into_iter().filter(|c| only.is_none_or(|o| o == *c)) {
                    let addrs = self.world.nodes[c as usize].addresses(c, &self.world, true, true);
                    a.found.push(Found {
                        peer: c,
                        addrs,
                        ttl: PROXIMITY_TTL,
                        signed: false,
                    });
                }
            }
            Some(Lookup::Record(peer)) => self.record_lookup(&mut a, peer),
            None => {}
        }
        self.deliver(a);
    }

    fn record_lookup(&mut self, a: &mut AnswerEv, peer: u32) {
        {
            let record = match a.driver {
                DriverRef::Dht => self
                    .world
                    .dht
                    .get(peer as usize)
                    .cloned()
                    .flatten()
                    .filter(|r| r.1 <= self.now)
                    .map(|(addrs, _, expires)| (addrs, expires, false)),
                DriverRef::Rendezvous(s) if self.world.servers[s as usize].up => self.world.servers
                    [s as usize]
                    .registrations
                    .get(peer as usize)
                    .cloned()
                    .flatten()
                    .map(|(addrs, expires)| (addrs, expires, true)),
                _ => None,
            };
            if let Some((addrs, expires, signed)) = record.filter(|r| r.1 > self.now) {
                a.found.push(Found {
                    peer,
                    addrs,
                    ttl: expires.saturating_duration_since(self.now),
                    signed,
                });
            }
        }
    }

    fn deliver(&mut self, a: AnswerEv) {
        let n = a.node as usize;
        if let Some((driver, addrs, expires)) = a.store {
            match driver {
                DriverRef::Dht => self.world.dht[n] = Some((addrs, self.now, expires)),
                // A server that went down meanwhile loses the request.
                DriverRef::Rendezvous(s) if self.world.servers[s as usize].up => {
                    self.world.servers[s as usize].registrations[n] = Some((addrs, expires));
                }
                _ => {}
            }
        }
        if a.generation != self.gens[n] || !self.world.nodes[n].online {
            return;
        }
        if a.discover {
            self.metrics.answered += 1;
            if a.found.iter().any(|f| !f.addrs.is_empty()) {
                self.metrics.answered_with_routes += 1;
            }
        }
        self.mix(a.query);
        self.input(
            a.node,
            Input::Answer {
                query: a.query,
                driver: a.driver,
                ok: a.ok,
                found: a.found,
            },
        );
    }
}
