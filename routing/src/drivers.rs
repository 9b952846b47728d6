//! The discovery drivers over real libp2p protocols, as one
//! [`DriverSet`](crate::DriverSet) for the engine's `Behaviour`.
//!
//! - **DHT**: libp2p-kad provider records. A namespace's key is
//!   SHA-256(`"/multidriver/ns/"` + namespace), so no one else's record
//!   collides with it; advertising is `start_providing`, looking up is
//!   `get_providers`, and providers' addresses come from the lookup itself.
//! - **Rendezvous**: the libp2p-rendezvous client against each configured
//!   rendezvous point; every point is its own driver instance, so the
//!   engine's health and backoff fail one over to the next. Registrations
//!   are signed peer records (the client signs them with the local key).
//! - **mDNS**: libp2p-mdns. It has no namespaces: every libp2p node on the
//!   LAN that runs it is reported, and the app decides whom to connect to.
//!
//! - **Proximity**: BLE-style advertisements and scans through a
//!   [`ProximityRadio`](crate::proximity::ProximityRadio), routes over the
//!   BLE-style links of [`crate::ble`] (see [`ProximityConfig`]).
//!
//! Driver instances are numbered in this order: the DHT (if on), each
//! rendezvous point, mDNS (if on), proximity (if on).
//!
//! Rendezvous registrations carry the swarm's external addresses (added
//! with `add_external_address`, or confirmed by AutoNAT/identify): until
//! the first one is confirmed, registrations wait (counted against the
//! operations bound; the engine's query timeout ends a wait that lasts).

use std::collections::{HashMap, VecDeque};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::{DriverEvent, DriverSet};
use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol, identity::Keypair, kad, mdns, rendezvous};
use multidriver_core::{DriverCaps, EnergyClass, QueryId, Reach};
use multidriver_scoring::Source;
use sha2::{Digest, Sha256};

use crate::Error;

mod nearby;

use nearby::Nearby;
pub use nearby::{
    PROXIMITY_CAPS, PROXIMITY_ROUTE_TTL, ProximityConfig, SCAN_WINDOW, namespace_token,
};

/// The DHT driver's capabilities.
pub const DHT_CAPS: DriverCaps = DriverCaps {
    kind: Source::Dht,
    reach: Reach::Internet,
    energy: EnergyClass::High,
    // The IPFS DHT lookup median (probe-lab 2023, PARAMETERS.md).
    typical_latency: Duration::from_millis(557),
    signed_records: false,
};

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

/// The mDNS driver's capabilities.
pub const MDNS_CAPS: DriverCaps = DriverCaps {
    kind: Source::Mdns,
    reach: Reach::Lan,
    energy: EnergyClass::Medium,
    // The first mDNS probe goes out 500 ms after an interface comes up
    // (libp2p-mdns `behaviour/iface.rs`, PARAMETERS.md).
    typical_latency: Duration::from_millis(500),
    signed_records: false,
};

/// How long a DHT provider's addresses are trusted: our choice, far below
/// the record's own 48 h (libp2p-kad `PROVIDER_RECORD_TTL`), because the
/// addresses are the ones the provider had when it published.
const DHT_ROUTE_TTL: Duration = Duration::from_secs(60 * 60);

/// The rendezvous protocol's TTL bounds (libp2p-rendezvous `lib.rs`:
/// `MIN_TTL` 2 h, `MAX_TTL` 72 h).
const RENDEZVOUS_TTL: std::ops::RangeInclusive<u64> = rendezvous::MIN_TTL..=rendezvous::MAX_TTL;

/// Which drivers run, and their bounds.
#[derive(Debug)]
pub struct DiscoveryConfig {
    /// Run a Kademlia DHT, bootstrapped from these nodes (empty: the DHT
    /// learns peers only from connections). `None`: no DHT.
    pub dht: Option<Vec<(PeerId, Multiaddr)>>,
    /// Kademlia's protocol name. Default `/ipfs/kad/1.0.0`; a private
    /// network should pick its own.
    pub dht_protocol: StreamProtocol,
    /// The rendezvous points, one driver each.
    pub rendezvous: Vec<(PeerId, Multiaddr)>,
    /// Run mDNS.
    pub mdns: bool,
    /// mDNS record TTL and query interval (libp2p-mdns defaults: 6 min and
    /// 5 min).
    pub mdns_config: mdns::Config,
    /// The BLE-style proximity driver's radio, if it runs.
    pub proximity: Option<ProximityConfig>,
    /// Most operations in flight at once. At the bound a new one fails at
    /// once (the engine counts it as a driver failure and backs off).
    /// Default 64, the engine's own `max_queries`.
    pub max_operations: usize,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            dht: None,
            dht_protocol: kad::PROTOCOL_NAME,
            rendezvous: Vec::new(),
            mdns: false,
            mdns_config: mdns::Config::default(),
            proximity: None,
            max_operations: 64,
        }
    }
}

impl DiscoveryConfig {
    /// Runs a DHT bootstrapped from `nodes`.
    pub fn with_dht(mut self, nodes: Vec<(PeerId, Multiaddr)>) -> Self {
        self.dht = Some(nodes);
        self
    }

    /// Adds a rendezvous point.
    pub fn with_rendezvous(mut self, point: PeerId, addr: Multiaddr) -> Self {
        self.rendezvous.push((point, addr));
        self
    }

    /// Runs mDNS.
    pub fn with_mdns(mut self) -> Self {
        self.mdns = true;
        self
    }

    /// Runs the BLE-style proximity driver over `radio`.
    pub fn with_proximity(mut self, radio: ProximityConfig) -> Self {
        self.proximity = Some(radio);
        self
    }
}

/// The libp2p behaviours the drivers run, composed by libp2p's derive (its
/// generated event enum is why this module allows undocumented items).
#[allow(missing_docs)]
pub mod protocols {
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::swarm::behaviour::toggle::Toggle;
    use libp2p::{kad, mdns, rendezvous};

    /// Kademlia, the rendezvous client and mDNS, each switched on or off.
    #[derive(NetworkBehaviour)]
    #[behaviour(prelude = "libp2p::swarm::derive_prelude")]
    pub struct Protocols {
        pub(crate) kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
        pub(crate) rendezvous: Toggle<rendezvous::client::Behaviour>,
        pub(crate) mdns: Toggle<mdns::tokio::Behaviour>,
    }
}

use protocols::{Protocols, ProtocolsEvent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Dht,
    Rendezvous(usize),
    Mdns,
    Proximity,
}

/// The drivers; see the [module docs](self).
pub struct Discovery {
    protocols: Protocols,
    slots: Vec<Slot>,
    points: Vec<(PeerId, Multiaddr)>,
    max_operations: usize,
    kad_queries: HashMap<kad::QueryId, QueryId>,
    /// Rendezvous operations in flight: (point, namespace) → queries, oldest
    /// first.
    registering: HashMap<(PeerId, String), VecDeque<QueryId>>,
    discovering: HashMap<(PeerId, String), VecDeque<QueryId>>,
    /// Rendezvous registrations waiting for a first external address.
    awaiting_address: VecDeque<(usize, QueryId, String, Duration)>,
    /// The swarm's confirmed external addresses.
    external: libp2p::swarm::ExternalAddresses,
    mdns_ttl: Duration,
    nearby: Option<Nearby>,
    out: VecDeque<DriverEvent>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("slots", &self.slots)
            .field("operations", &self.operations())
            .finish_non_exhaustive()
    }
}

/// The DHT key of a namespace.
pub fn namespace_key(namespace: &str) -> kad::RecordKey {
    let digest = Sha256::new()
        .chain_update(b"/multidriver/ns/")
        .chain_update(namespace.as_bytes())
        .finalize();
    kad::RecordKey::new(&digest.as_slice())
}

impl Discovery {
    /// The drivers of `config` for the peer with `keypair`.
    ///
    /// # Errors
    /// [`Error::Driver`] when mDNS cannot start (no multicast socket).
    pub fn new(keypair: &Keypair, config: DiscoveryConfig) -> Result<Self, Error> {
        let local = keypair.public().to_peer_id();
        let mut slots = Vec::new();
        let kad = match &config.dht {
            Some(nodes) => {
                slots.push(Slot::Dht);
                let mut kad_config = kad::Config::new(config.dht_protocol.clone());
                // A lookup should fail well before the engine's 60 s query
                // timeout so the failure is the DHT's own.
                kad_config.set_query_timeout(Duration::from_secs(30));
                let mut kad = kad::Behaviour::with_config(
                    local,
                    kad::store::MemoryStore::new(local),
                    kad_config,
                );
                // Answer lookups whether or not an external address is
                // confirmed: multidriver nodes on a LAN or loopback have
                // none and still serve each other.
                kad.set_mode(Some(kad::Mode::Server));
                for (peer, addr) in nodes {
                    kad.add_address(peer, addr.clone());
                }
                Some(kad)
            }
            None => None,
        };
        let rendezvous = (!config.rendezvous.is_empty()).then(|| {
            for i in 0..config.rendezvous.len() {
                slots.push(Slot::Rendezvous(i));
            }
            rendezvous::client::Behaviour::new(keypair.clone())
        });
        let mdns = if config.mdns {
            slots.push(Slot::Mdns);
            Some(
                mdns::tokio::Behaviour::new(config.mdns_config.clone(), local).map_err(|e| {
                    Error::Driver {
                        driver: "mdns",
                        message: e.to_string(),
                    }
                })?,
            )
        } else {
            None
        };
        let nearby = config.proximity.map(|p| {
            slots.push(Slot::Proximity);
            Nearby::new(p)
        });
        Ok(Discovery {
            protocols: Protocols {
                kad: kad.into(),
                rendezvous: rendezvous.into(),
                mdns: mdns.into(),
            },
            slots,
            points: config.rendezvous,
            max_operations: config.max_operations,
            kad_queries: HashMap::new(),
            registering: HashMap::new(),
            discovering: HashMap::new(),
            awaiting_address: VecDeque::new(),
            external: libp2p::swarm::ExternalAddresses::default(),
            mdns_ttl: config.mdns_config.ttl,
            nearby,
            out: VecDeque::new(),
        })
    }

    /// The Kademlia behaviour, if the DHT runs (e.g. to add a node's
    /// address).
    pub fn kad_mut(&mut self) -> Option<&mut kad::Behaviour<kad::store::MemoryStore>> {
        self.protocols.kad.as_mut()
    }

    /// Operations in flight.
    pub fn operations(&self) -> usize {
        self.kad_queries.len()
            + self.nearby.as_ref().map_or(0, Nearby::operations)
            + self.awaiting_address.len()
            + self.registering.values().map(VecDeque::len).sum::<usize>()
            + self.discovering.values().map(VecDeque::len).sum::<usize>()
    }

    fn finish(&mut self, query: QueryId, result: Result<(), String>) {
        self.out.push_back(DriverEvent::Finished { query, result });
    }

    fn full(&mut self, query: QueryId) -> bool {
        if self.operations() >= self.max_operations {
            let limit = self.max_operations;
            self.finish(
                query,
                Err(format!("{limit} driver operations already in flight")),
            );
            return true;
        }
        false
    }

    fn on_kad(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            return;
        };
        let Some(&query) = self.kad_queries.get(&id) else {
            return;
        };
        match result {
            kad::QueryResult::StartProviding(r) => {
                self.kad_queries.remove(&id);
                self.finish(query, r.map(|_| ()).map_err(|e| e.to_string()));
            }
            kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                providers,
                ..
            })) => {
                for peer in providers {
                    // The lookup carried the providers' addresses; kad
                    // hands them out for dialling while the query lives,
                    // which it does while this progress event is handled.
                    let addrs = self
                        .protocols
                        .kad
                        .as_mut()
                        .and_then(|k| {
                            k.handle_pending_outbound_connection(
                                ConnectionId::new_unchecked(0),
                                Some(peer),
                                &[],
                                Endpoint::Dialer,
                            )
                            .ok()
                        })
                        .unwrap_or_default();
                    if !addrs.is_empty() {
                        self.out.push_back(DriverEvent::Discovered {
                            query: Some(query),
                            source: Source::Dht,
                            peer,
                            addrs,
                            signed: false,
                            ttl: DHT_ROUTE_TTL,
                        });
                    }
                }
                if step.last {
                    self.kad_queries.remove(&id);
                    self.finish(query, Ok(()));
                }
            }
            kad::QueryResult::GetProviders(Ok(
                kad::GetProvidersOk::FinishedWithNoAdditionalRecord { .. },
            )) => {
                self.kad_queries.remove(&id);
                self.finish(query, Ok(()));
            }
            kad::QueryResult::GetProviders(Err(e)) => {
                self.kad_queries.remove(&id);
                self.finish(query, Err(e.to_string()));
            }
            _ => {}
        }
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

    fn on_rendezvous(&mut self, event: rendezvous::client::Event) {
        use rendezvous::client::Event as E;
        match event {
            E::Registered {
                rendezvous_node,
                namespace,
                ..
            } => {
                let key = (rendezvous_node, namespace.to_string());
                if let Some(q) = Self::take(&mut self.registering, &key) {
                    self.finish(q, Ok(()));
                }
            }
            E::RegisterFailed {
                rendezvous_node,
                namespace,
                error,
            } => {
                let key = (rendezvous_node, namespace.to_string());
                if let Some(q) = Self::take(&mut self.registering, &key) {
                    self.finish(q, Err(format!("registration refused: {error:?}")));
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
                let Some(query) = Self::take(&mut self.discovering, &(rendezvous_node, namespace))
                else {
                    return;
                };
                for r in registrations {
                    self.out.push_back(DriverEvent::Discovered {
                        query: Some(query),
                        source: Source::Rendezvous,
                        peer: r.record.peer_id(),
                        addrs: r.record.addresses().to_vec(),
                        signed: true,
                        ttl: Duration::from_secs(r.ttl),
                    });
                }
                self.finish(query, Ok(()));
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
                if let Some(q) = Self::take(&mut self.discovering, &key) {
                    self.finish(q, Err(format!("lookup refused: {error:?}")));
                }
            }
            E::Expired { .. } => {}
        }
    }

    /// The point and namespace of a rendezvous request, or the operation
    /// finished with the reason it cannot be sent.
    fn rendezvous_request(
        &mut self,
        i: usize,
        query: QueryId,
        namespace: &str,
    ) -> Option<(PeerId, rendezvous::Namespace)> {
        let (point, _) = self.points[i];
        if self.protocols.rendezvous.as_ref().is_none() {
            self.finish(query, Err("no rendezvous client".into()));
            return None;
        }
        match rendezvous::Namespace::new(namespace.to_owned()) {
            Ok(ns) => Some((point, ns)),
            Err(e) => {
                self.finish(query, Err(e.to_string()));
                None
            }
        }
    }

    fn register(&mut self, i: usize, query: QueryId, namespace: &str, ttl: Duration) {
        let Some((point, ns)) = self.rendezvous_request(i, query, namespace) else {
            return;
        };
        let Some(client) = self.protocols.rendezvous.as_mut() else {
            return;
        };
        let secs = ttl
            .as_secs()
            .clamp(*RENDEZVOUS_TTL.start(), *RENDEZVOUS_TTL.end());
        match client.register(ns, point, Some(secs)) {
            Ok(()) => self
                .registering
                .entry((point, namespace.to_owned()))
                .or_default()
                .push_back(query),
            Err(e) => self.finish(query, Err(e.to_string())),
        }
    }

    fn on_mdns(&mut self, event: mdns::Event) {
        if let mdns::Event::Discovered(list) = event {
            let mut by_peer: HashMap<PeerId, Vec<Multiaddr>> = HashMap::new();
            for (peer, addr) in list {
                by_peer.entry(peer).or_default().push(addr);
            }
            for (peer, addrs) in by_peer {
                self.out.push_back(DriverEvent::Discovered {
                    query: None,
                    source: Source::Mdns,
                    peer,
                    addrs,
                    signed: false,
                    ttl: self.mdns_ttl,
                });
            }
        }
    }
}

impl DriverSet for Discovery {
    fn capabilities(&self) -> Vec<DriverCaps> {
        self.slots
            .iter()
            .map(|s| match s {
                Slot::Dht => DHT_CAPS,
                Slot::Rendezvous(_) => RENDEZVOUS_CAPS,
                Slot::Mdns => MDNS_CAPS,
                Slot::Proximity => PROXIMITY_CAPS,
            })
            .collect()
    }

    fn advertise(&mut self, driver: usize, query: QueryId, namespace: &str, ttl: Duration) {
        if self.full(query) {
            return;
        }
        match self.slots.get(driver).copied() {
            Some(Slot::Dht) => {
                let Some(kad) = self.protocols.kad.as_mut() else {
                    return self.finish(query, Err("no DHT".into()));
                };
                match kad.start_providing(namespace_key(namespace)) {
                    Ok(id) => {
                        self.kad_queries.insert(id, query);
                    }
                    Err(e) => self.finish(query, Err(e.to_string())),
                }
            }
            Some(Slot::Rendezvous(i)) => {
                if self.external.iter().next().is_none() {
                    // Nothing to register yet: wait for the first external
                    // address rather than fail (a failure would make the
                    // engine back off from a healthy point).
                    self.awaiting_address
                        .push_back((i, query, namespace.to_owned(), ttl));
                    return;
                }
                self.register(i, query, namespace, ttl);
            }
            // mDNS answers every query for the local peer: nothing to
            // register.
            Some(Slot::Mdns) => self.finish(query, Ok(())),
            Some(Slot::Proximity) => {
                let result = match self.nearby.as_mut() {
                    Some(n) => n.advertise(namespace),
                    None => Err("no proximity radio".into()),
                };
                self.finish(query, result);
            }
            None => self.finish(query, Err(format!("no driver number {driver}"))),
        }
    }

    fn stop_advertising(&mut self, driver: usize, namespace: &str) {
        self.awaiting_address.retain(|(i, _, ns, _)| {
            !(Some(Slot::Rendezvous(*i)) == self.slots.get(driver).copied() && ns == namespace)
        });
        match self.slots.get(driver).copied() {
            Some(Slot::Dht) => {
                if let Some(kad) = self.protocols.kad.as_mut() {
                    kad.stop_providing(&namespace_key(namespace));
                }
            }
            Some(Slot::Rendezvous(i)) => {
                let (point, _) = self.points[i];
                if let (Some(client), Ok(ns)) = (
                    self.protocols.rendezvous.as_mut(),
                    rendezvous::Namespace::new(namespace.to_owned()),
                ) {
                    client.unregister(ns, point);
                }
            }
            Some(Slot::Proximity) => {
                if let Some(n) = self.nearby.as_mut() {
                    n.stop_advertising(namespace);
                }
            }
            Some(Slot::Mdns) | None => {}
        }
    }

    fn discover(&mut self, driver: usize, query: QueryId, namespace: &str) {
        if self.full(query) {
            return;
        }
        match self.slots.get(driver).copied() {
            Some(Slot::Dht) => {
                let Some(kad) = self.protocols.kad.as_mut() else {
                    return self.finish(query, Err("no DHT".into()));
                };
                let id = kad.get_providers(namespace_key(namespace));
                self.kad_queries.insert(id, query);
            }
            Some(Slot::Rendezvous(i)) => {
                let Some((point, ns)) = self.rendezvous_request(i, query, namespace) else {
                    return;
                };
                let Some(client) = self.protocols.rendezvous.as_mut() else {
                    return;
                };
                client.discover(Some(ns), None, None, point);
                self.discovering
                    .entry((point, namespace.to_owned()))
                    .or_default()
                    .push_back(query);
            }
            Some(Slot::Mdns) => {
                // What mDNS knows now; later answers arrive unsolicited.
                let Some(m) = self.protocols.mdns.as_mut() else {
                    return self.finish(query, Err("no mDNS".into()));
                };
                // `discovered_nodes` yields a peer once per address.
                let mut peers: Vec<PeerId> = m.discovered_nodes().copied().collect();
                peers.sort_unstable();
                peers.dedup();
                for peer in peers {
                    let addrs = m
                        .handle_pending_outbound_connection(
                            ConnectionId::new_unchecked(0),
                            Some(peer),
                            &[],
                            Endpoint::Dialer,
                        )
                        .unwrap_or_default();
                    self.out.push_back(DriverEvent::Discovered {
                        query: Some(query),
                        source: Source::Mdns,
                        peer,
                        addrs,
                        signed: false,
                        ttl: self.mdns_ttl,
                    });
                }
                self.finish(query, Ok(()));
            }
            Some(Slot::Proximity) => {
                let started = match self.nearby.as_mut() {
                    Some(n) => n.discover(query, namespace),
                    None => Err("no proximity radio".into()),
                };
                if let Err(e) = started {
                    self.finish(query, Err(e));
                }
            }
            None => self.finish(query, Err(format!("no driver number {driver}"))),
        }
    }

    fn cancel(&mut self, query: QueryId) {
        let kad_ids: Vec<kad::QueryId> = self
            .kad_queries
            .iter()
            .filter(|(_, q)| **q == query)
            .map(|(k, _)| *k)
            .collect();
        for id in kad_ids {
            self.kad_queries.remove(&id);
            if let Some(mut q) = self.protocols.kad.as_mut().and_then(|k| k.query_mut(&id)) {
                q.finish();
            }
        }
        self.awaiting_address.retain(|(_, q, _, _)| *q != query);
        if let Some(n) = self.nearby.as_mut() {
            n.cancel(query);
        }
        // A rendezvous request cannot be withdrawn; its answer is dropped.
        for map in [&mut self.registering, &mut self.discovering] {
            map.retain(|_, queue| {
                queue.retain(|q| *q != query);
                !queue.is_empty()
            });
        }
    }
}

impl NetworkBehaviour for Discovery {
    type ConnectionHandler = THandler<Protocols>;
    type ToSwarm = DriverEvent;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.protocols
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.protocols.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let mut addrs = self.protocols.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?;
        // The rendezvous points' configured addresses.
        if let Some(peer) = maybe_peer {
            for (p, a) in &self.points {
                if *p == peer && !addrs.contains(a) {
                    addrs.insert(0, a.clone());
                }
            }
        }
        Ok(addrs)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.protocols.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        self.protocols.on_swarm_event(event);
        if let Some(n) = self.nearby.as_mut() {
            n.on_swarm_event(event);
        }
        // The set, not a count: the swarm repeats confirmations and reports
        // expiries of addresses it never had.
        if self.external.on_swarm_event(&event) && self.external.iter().next().is_some() {
            for (i, query, namespace, ttl) in std::mem::take(&mut self.awaiting_address) {
                self.register(i, query, &namespace, ttl);
            }
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.protocols
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<DriverEvent, THandlerInEvent<Self>>> {
        if let Some(n) = self.nearby.as_mut() {
            for query in n.poll(cx) {
                self.out.push_back(DriverEvent::Finished {
                    query,
                    result: Ok(()),
                });
            }
            if let Some(action) = n.actions.pop_front() {
                return Poll::Ready(action.map_in(|never| match never {}));
            }
        }
        // Bounded: a few protocol events per call, then our own.
        for _ in 0..32 {
            if let Some(e) = self.out.pop_front() {
                return Poll::Ready(ToSwarm::GenerateEvent(e));
            }
            match self.protocols.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(e)) => match e {
                    ProtocolsEvent::Kad(e) => self.on_kad(e),
                    ProtocolsEvent::Rendezvous(e) => self.on_rendezvous(e),
                    ProtocolsEvent::Mdns(e) => self.on_mdns(e),
                },
                Poll::Ready(other) => {
                    return Poll::Ready(
                        other.map_out(|_| unreachable!("protocol events are taken above")),
                    );
                }
                Poll::Pending => {
                    return match self.out.pop_front() {
                        Some(e) => Poll::Ready(ToSwarm::GenerateEvent(e)),
                        None => Poll::Pending,
                    };
                }
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_keys_are_distinct_and_stable() {
        assert_eq!(namespace_key("chat"), namespace_key("chat"));
        assert_ne!(namespace_key("chat"), namespace_key("chat2"));
        assert_eq!(namespace_key("chat").as_ref().len(), 32);
    }

    #[test]
    fn drivers_are_numbered_dht_rendezvous_mdns() {
        let key = Keypair::generate_ed25519();
        let point = PeerId::random();
        let config = DiscoveryConfig::default()
            .with_dht(Vec::new())
            .with_rendezvous(point, "/ip4/127.0.0.1/tcp/1".parse().unwrap())
            .with_rendezvous(PeerId::random(), "/ip4/127.0.0.1/tcp/2".parse().unwrap());
        let d = Discovery::new(&key, config).unwrap();
        let kinds: Vec<Source> = d.capabilities().iter().map(|c| c.kind).collect();
        assert_eq!(kinds, [Source::Dht, Source::Rendezvous, Source::Rendezvous]);
    }

    #[test]
    fn operations_beyond_the_bound_fail_at_once() {
        let key = Keypair::generate_ed25519();
        let config = DiscoveryConfig {
            max_operations: 1,
            ..DiscoveryConfig::default().with_dht(Vec::new())
        };
        let mut d = Discovery::new(&key, config).unwrap();
        let (q1, q2) = (QueryId::from_raw(1), QueryId::from_raw(2));
        d.discover(0, q1, "chat");
        d.discover(0, q2, "chat");
        assert_eq!(d.operations(), 1);
        let Some(DriverEvent::Finished {
            query,
            result: Err(reason),
        }) = d.out.pop_front()
        else {
            panic!("the second lookup failed at once");
        };
        assert_eq!(query, q2);
        assert!(reason.contains("1 driver operations"), "{reason}");
    }
}
