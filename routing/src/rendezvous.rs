//! The rendezvous driver: the libp2p-rendezvous client against each
//! configured rendezvous point.
//!
//! Every point is its own driver instance, so the engine's health and
//! backoff fail one over to the next. Registrations are signed peer
//! records (the client signs them with the local key) and carry the
//! swarm's external addresses: until the first one is confirmed,
//! registrations wait (counted against the operations bound; the engine's
//! query timeout ends a wait that lasts).
//!
//! The client behaviour is passed in, so the same code serves
//! [`Discovery`](crate::Discovery)'s own client; [`discovered`] feeds the
//! engine from an app's own client's events.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use libp2p::{Multiaddr, PeerId, rendezvous};
use multidriver_core::{DriverCaps, EnergyClass, QueryId, Reach};
use multidriver_scoring::Source;

use crate::DriverEvent;

/// A rendezvous point's capabilities.
pub const RENDEZVOUS_CAPS: DriverCaps = DriverCaps {
    kind: Source::Rendezvous,
    reach: Reach::Internet,
    energy: EnergyClass::Low,
    // One request/response over an open connection to a regional server:
    // our estimate, one cellular RTT plus server time.
    typical_latency: Duration::from_millis(200),
    signed_records: true,
};

/// The rendezvous protocol's TTL bounds (libp2p-rendezvous `lib.rs`:
/// `MIN_TTL` 2 h, `MAX_TTL` 72 h).
const RENDEZVOUS_TTL: std::ops::RangeInclusive<u64> = rendezvous::MIN_TTL..=rendezvous::MAX_TTL;

/// The routes in one of an app's own rendezvous client's events, for
/// `Behaviour::handle_driver_event`: each registration of a `Discovered`
/// answer, with the registration's own TTL. Unsolicited (`query: None`).
pub fn discovered(event: &rendezvous::client::Event) -> Vec<DriverEvent> {
    match event {
        rendezvous::client::Event::Discovered { registrations, .. } => registrations
            .iter()
            .map(|r| DriverEvent::Discovered {
                query: None,
                source: Source::Rendezvous,
                peer: r.record.peer_id(),
                addrs: r.record.addresses().to_vec(),
                signed: true,
                ttl: Duration::from_secs(r.ttl),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The rendezvous drivers' state: the points, and operations in flight.
#[derive(Debug)]
pub(crate) struct RendezvousDriver {
    pub(crate) points: Vec<(PeerId, Multiaddr)>,
    /// Operations in flight: (point, namespace) → queries, oldest first.
    registering: HashMap<(PeerId, String), VecDeque<QueryId>>,
    discovering: HashMap<(PeerId, String), VecDeque<QueryId>>,
    /// Registrations waiting for a first external address: point number,
    /// query, namespace, TTL.
    awaiting_address: VecDeque<(usize, QueryId, String, Duration)>,
    /// Points to connect to while a registration waits for an address:
    /// identify on that connection tells us our observed address (which
    /// AutoNAT then tests) and whether the point also relays. At most one
    /// entry per point.
    pub(crate) dials: VecDeque<(PeerId, Multiaddr)>,
}

fn take(
    map: &mut HashMap<(PeerId, String), VecDeque<QueryId>>,
    key: &(PeerId, String),
) -> Option<QueryId> {
    let queue = map.get_mut(key)?;
    let q = queue.pop_front();
    if queue.is_empty() {
        map.remove(key);
    }
    q
}

fn finished(out: &mut VecDeque<DriverEvent>, query: QueryId, result: Result<(), String>) {
    out.push_back(DriverEvent::Finished { query, result });
}

impl RendezvousDriver {
    pub(crate) fn new(points: Vec<(PeerId, Multiaddr)>) -> Self {
        RendezvousDriver {
            points,
            registering: HashMap::new(),
            discovering: HashMap::new(),
            awaiting_address: VecDeque::new(),
            dials: VecDeque::new(),
        }
    }

    /// Operations in flight, waiting registrations included.
    pub(crate) fn operations(&self) -> usize {
        self.awaiting_address.len()
            + self.registering.values().map(VecDeque::len).sum::<usize>()
            + self.discovering.values().map(VecDeque::len).sum::<usize>()
    }

    /// The point's configured address, for a dial to `peer`.
    pub(crate) fn addresses_of(&self, peer: PeerId) -> impl Iterator<Item = &Multiaddr> {
        self.points
            .iter()
            .filter(move |(p, _)| *p == peer)
            .map(|(_, a)| a)
    }

    /// The point and namespace of a request, or the operation finished
    /// with the reason it cannot be sent.
    fn request(
        &self,
        point: usize,
        query: QueryId,
        namespace: &str,
        out: &mut VecDeque<DriverEvent>,
    ) -> Option<(PeerId, rendezvous::Namespace)> {
        let Some(&(peer, _)) = self.points.get(point) else {
            finished(out, query, Err(format!("no rendezvous point {point}")));
            return None;
        };
        match rendezvous::Namespace::new(namespace.to_owned()) {
            Ok(ns) => Some((peer, ns)),
            Err(e) => {
                finished(out, query, Err(e.to_string()));
                None
            }
        }
    }

    /// Registers at point `point`, or waits for a first external address
    /// (a failure would make the engine back off from a healthy point).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn advertise(
        &mut self,
        client: &mut rendezvous::client::Behaviour,
        has_external_address: bool,
        point: usize,
        query: QueryId,
        namespace: &str,
        ttl: Duration,
        out: &mut VecDeque<DriverEvent>,
    ) {
        if !has_external_address {
            self.awaiting_address
                .push_back((point, query, namespace.to_owned(), ttl));
            if let Some(p) = self.points.get(point)
                && !self.dials.contains(p)
            {
                self.dials.push_back(p.clone());
            }
            return;
        }
        self.register(client, point, query, namespace, ttl, out);
    }

    fn register(
        &mut self,
        client: &mut rendezvous::client::Behaviour,
        point: usize,
        query: QueryId,
        namespace: &str,
        ttl: Duration,
        out: &mut VecDeque<DriverEvent>,
    ) {
        let Some((peer, ns)) = self.request(point, query, namespace, out) else {
            return;
        };
        let secs = ttl
            .as_secs()
            .clamp(*RENDEZVOUS_TTL.start(), *RENDEZVOUS_TTL.end());
        match client.register(ns, peer, Some(secs)) {
            Ok(()) => self
                .registering
                .entry((peer, namespace.to_owned()))
                .or_default()
                .push_back(query),
            Err(e) => finished(out, query, Err(e.to_string())),
        }
    }

    /// The first external address was confirmed: the waiting registrations
    /// go out.
    pub(crate) fn address_confirmed(
        &mut self,
        client: &mut rendezvous::client::Behaviour,
        out: &mut VecDeque<DriverEvent>,
    ) {
        for (point, query, namespace, ttl) in std::mem::take(&mut self.awaiting_address) {
            self.register(client, point, query, &namespace, ttl, out);
        }
    }

    /// Withdraws the registration at point `point`.
    pub(crate) fn stop_advertising(
        &mut self,
        client: Option<&mut rendezvous::client::Behaviour>,
        point: usize,
        namespace: &str,
    ) {
        self.awaiting_address
            .retain(|(i, _, ns, _)| !(*i == point && ns == namespace));
        let Some(&(peer, _)) = self.points.get(point) else {
            return;
        };
        if let (Some(client), Ok(ns)) = (client, rendezvous::Namespace::new(namespace.to_owned())) {
            client.unregister(ns, peer);
        }
    }

    /// Looks the namespace up at point `point`.
    pub(crate) fn discover(
        &mut self,
        client: &mut rendezvous::client::Behaviour,
        point: usize,
        query: QueryId,
        namespace: &str,
        out: &mut VecDeque<DriverEvent>,
    ) {
        let Some((peer, ns)) = self.request(point, query, namespace, out) else {
            return;
        };
        client.discover(Some(ns), None, None, peer);
        self.discovering
            .entry((peer, namespace.to_owned()))
            .or_default()
            .push_back(query);
    }

    /// Abandons an operation. A request cannot be withdrawn; its answer is
    /// dropped.
    pub(crate) fn cancel(&mut self, query: QueryId) {
        self.awaiting_address.retain(|(_, q, _, _)| *q != query);
        for map in [&mut self.registering, &mut self.discovering] {
            map.retain(|_, queue| {
                queue.retain(|q| *q != query);
                !queue.is_empty()
            });
        }
    }

    /// Turns the client's event into driver events.
    pub(crate) fn on_event(
        &mut self,
        event: rendezvous::client::Event,
        out: &mut VecDeque<DriverEvent>,
    ) {
        use rendezvous::client::Event as E;
        match event {
            E::Registered {
                rendezvous_node,
                namespace,
                ..
            } => {
                let key = (rendezvous_node, namespace.to_string());
                if let Some(q) = take(&mut self.registering, &key) {
                    finished(out, q, Ok(()));
                }
            }
            E::RegisterFailed {
                rendezvous_node,
                namespace,
                error,
            } => {
                let key = (rendezvous_node, namespace.to_string());
                if let Some(q) = take(&mut self.registering, &key) {
                    finished(out, q, Err(format!("registration refused: {error:?}")));
                }
            }
            E::Discovered {
                rendezvous_node,
                registrations,
                cookie,
            } => {
                // The answer names its namespace in its cookie (the stock
                // server sets it for a namespaced lookup), else through its
                // registrations; failing both it answers the oldest lookup.
                let namespace = cookie
                    .namespace()
                    .map(|ns| ns.to_string())
                    .or_else(|| registrations.first().map(|r| r.namespace.to_string()))
                    .or_else(|| {
                        self.discovering
                            .iter()
                            .filter(|((p, _), _)| *p == rendezvous_node)
                            .min_by_key(|(_, queue)| queue.front().copied())
                            .map(|((_, ns), _)| ns.clone())
                    });
                let Some(namespace) = namespace else {
                    return;
                };
                let Some(query) = take(&mut self.discovering, &(rendezvous_node, namespace)) else {
                    return;
                };
                for r in registrations {
                    out.push_back(DriverEvent::Discovered {
                        query: Some(query),
                        source: Source::Rendezvous,
                        peer: r.record.peer_id(),
                        addrs: r.record.addresses().to_vec(),
                        signed: true,
                        ttl: Duration::from_secs(r.ttl),
                    });
                }
                finished(out, query, Ok(()));
            }
            E::DiscoverFailed {
                rendezvous_node,
                namespace,
                error,
            } => {
                let Some(namespace) = namespace else {
                    return;
                };
                let key = (rendezvous_node, namespace.to_string());
                if let Some(q) = take(&mut self.discovering, &key) {
                    finished(out, q, Err(format!("lookup refused: {error:?}")));
                }
            }
            E::Expired { .. } => {}
        }
    }
}
