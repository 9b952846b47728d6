//! [`Discovery`]: the drivers over real libp2p protocols as one
//! [`DriverSet`], for the engine's `Behaviour`.
//!
//! Each protocol's driver is its own module: [`kad`](crate::kad) (a DHT of
//! provider records), [`rendezvous`](crate::rendezvous) (one driver per
//! rendezvous point), [`mdns`](crate::mdns), and the BLE-style proximity
//! driver ([`ProximityConfig`]). This file owns the
//! libp2p behaviours they drive, numbers the driver instances, and routes
//! the engine's operations to them.
//!
//! Driver instances are numbered in this order: the DHT (if on), each
//! rendezvous point, mDNS (if on), proximity (if on).
//!
//! Each protocol sits behind the crate feature of its name (`kad`,
//! `rendezvous`, `mdns`, `proximity`); with a feature off its builder method
//! is gone and its behaviour is never compiled.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use libp2p::core::Endpoint;
use libp2p::core::transport::PortUse;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, identity::Keypair};
use multidriver_core::{DriverCaps, QueryId};

#[cfg(feature = "kad")]
use crate::kad::{DHT_CAPS, KadDriver};
#[cfg(feature = "mdns")]
use crate::mdns::{MDNS_CAPS, MdnsDriver};
#[cfg(feature = "proximity")]
use crate::nearby::{Nearby, PROXIMITY_CAPS, ProximityConfig};
#[cfg(feature = "rendezvous")]
use crate::rendezvous::{RENDEZVOUS_CAPS, RendezvousDriver};
use crate::{DriverEvent, DriverSet, Error};

/// The libp2p behaviours the drivers run, composed by libp2p's derive (its
/// generated event enum is why this module allows undocumented items). A
/// protocol whose feature is off is a `dummy::Behaviour` that is never on.
#[allow(missing_docs)]
#[doc(hidden)]
pub mod protocols {
    use libp2p::swarm::NetworkBehaviour;
    use libp2p::swarm::behaviour::toggle::Toggle;

    #[cfg(feature = "kad")]
    pub type KadBehaviour = libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>;
    #[cfg(not(feature = "kad"))]
    pub type KadBehaviour = libp2p::swarm::dummy::Behaviour;
    #[cfg(feature = "rendezvous")]
    pub type RendezvousBehaviour = libp2p::rendezvous::client::Behaviour;
    #[cfg(not(feature = "rendezvous"))]
    pub type RendezvousBehaviour = libp2p::swarm::dummy::Behaviour;
    #[cfg(feature = "mdns")]
    pub type MdnsBehaviour = libp2p::mdns::tokio::Behaviour;
    #[cfg(not(feature = "mdns"))]
    pub type MdnsBehaviour = libp2p::swarm::dummy::Behaviour;

    /// Kademlia, the rendezvous client and mDNS, each switched on or off.
    #[derive(NetworkBehaviour)]
    #[behaviour(prelude = "libp2p::swarm::derive_prelude")]
    pub struct Protocols {
        pub(crate) kad: Toggle<KadBehaviour>,
        pub(crate) rendezvous: Toggle<RendezvousBehaviour>,
        pub(crate) mdns: Toggle<MdnsBehaviour>,
    }
}

use protocols::{Protocols, ProtocolsEvent};

/// Which drivers run, and their bounds. Built with its `with_*` methods
/// from [`DiscoveryConfig::default`] (no driver, 64 operations).
#[derive(Debug)]
#[non_exhaustive]
pub struct DiscoveryConfig {
    #[cfg(feature = "kad")]
    dht: Option<Vec<(PeerId, Multiaddr)>>,
    #[cfg(feature = "kad")]
    dht_protocol: libp2p::StreamProtocol,
    #[cfg(feature = "kad")]
    dht_mode: Option<libp2p::kad::Mode>,
    #[cfg(feature = "rendezvous")]
    rendezvous: Vec<(PeerId, Multiaddr)>,
    #[cfg(feature = "mdns")]
    mdns: Option<libp2p::mdns::Config>,
    #[cfg(feature = "proximity")]
    proximity: Option<ProximityConfig>,
    max_operations: usize,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            #[cfg(feature = "kad")]
            dht: None,
            #[cfg(feature = "kad")]
            dht_protocol: libp2p::kad::PROTOCOL_NAME,
            #[cfg(feature = "kad")]
            dht_mode: None,
            #[cfg(feature = "rendezvous")]
            rendezvous: Vec::new(),
            #[cfg(feature = "mdns")]
            mdns: None,
            #[cfg(feature = "proximity")]
            proximity: None,
            // The engine core's own `max_queries` default.
            max_operations: 64,
        }
    }
}

impl DiscoveryConfig {
    /// Runs a Kademlia DHT bootstrapped from `nodes` (empty: the DHT learns
    /// peers only from connections).
    #[cfg(feature = "kad")]
    pub fn with_dht(mut self, nodes: Vec<(PeerId, Multiaddr)>) -> Self {
        self.dht = Some(nodes);
        self
    }

    /// Kademlia's protocol name. Default `/ipfs/kad/1.0.0`; a private
    /// network should pick its own.
    #[cfg(feature = "kad")]
    pub fn with_dht_protocol(mut self, protocol: libp2p::StreamProtocol) -> Self {
        self.dht_protocol = protocol;
        self
    }

    /// Kademlia's mode. Default `None`: kad's own choice, a client until
    /// the swarm has a confirmed external address (AutoNAT, or the app's
    /// `add_external_address`), then a server. A phone behind carrier NAT
    /// thus never claims to serve the DHT. `Some(Mode::Server)` serves
    /// lookups regardless, e.g. nodes on one LAN or loopback that have no
    /// external address and still serve each other.
    #[cfg(feature = "kad")]
    pub fn with_dht_mode(mut self, mode: Option<libp2p::kad::Mode>) -> Self {
        self.dht_mode = mode;
        self
    }

    /// Adds a rendezvous point, one driver instance each.
    #[cfg(feature = "rendezvous")]
    pub fn with_rendezvous(mut self, point: PeerId, addr: Multiaddr) -> Self {
        self.rendezvous.push((point, addr));
        self
    }

    /// Runs mDNS with libp2p-mdns' defaults (record TTL 6 min, queries
    /// every 5 min).
    #[cfg(feature = "mdns")]
    pub fn with_mdns(mut self) -> Self {
        self.mdns.get_or_insert_with(libp2p::mdns::Config::default);
        self
    }

    /// Runs mDNS with this configuration.
    #[cfg(feature = "mdns")]
    pub fn with_mdns_config(mut self, config: libp2p::mdns::Config) -> Self {
        self.mdns = Some(config);
        self
    }

    /// Runs the BLE-style proximity driver over `radio`.
    #[cfg(feature = "proximity")]
    pub fn with_proximity(mut self, radio: ProximityConfig) -> Self {
        self.proximity = Some(radio);
        self
    }

    /// Most operations in flight at once. At the bound a new one fails at
    /// once (the engine counts it as a driver failure and backs off).
    /// Default 64, the engine's own `max_queries`.
    pub fn with_max_operations(mut self, max: usize) -> Self {
        self.max_operations = max;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    #[cfg(feature = "kad")]
    Dht,
    #[cfg(feature = "rendezvous")]
    Rendezvous(usize),
    #[cfg(feature = "mdns")]
    Mdns,
    #[cfg(feature = "proximity")]
    Proximity,
}

/// The drivers; see the [module docs](self).
pub struct Discovery {
    protocols: Protocols,
    slots: Vec<Slot>,
    max_operations: usize,
    #[cfg(feature = "kad")]
    kad: KadDriver,
    #[cfg(feature = "rendezvous")]
    rendezvous: RendezvousDriver,
    #[cfg(feature = "mdns")]
    mdns: Option<MdnsDriver>,
    #[cfg(feature = "proximity")]
    nearby: Option<Nearby>,
    /// The swarm's confirmed external addresses.
    external: libp2p::swarm::ExternalAddresses,
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

impl Discovery {
    /// The drivers of `config` for the peer with `keypair`.
    ///
    /// # Errors
    /// [`Error::Driver`] when mDNS cannot start (no multicast socket).
    pub fn new(keypair: &Keypair, config: DiscoveryConfig) -> Result<Self, Error> {
        #[cfg_attr(not(feature = "kad"), allow(unused_variables))]
        let local = keypair.public().to_peer_id();
        #[allow(unused_mut)]
        let mut slots = Vec::new();
        #[allow(unused_mut)]
        let mut protocols = Protocols {
            kad: None.into(),
            rendezvous: None.into(),
            mdns: None.into(),
        };
        #[cfg(feature = "kad")]
        if let Some(nodes) = &config.dht {
            use libp2p::kad;
            slots.push(Slot::Dht);
            let mut kad_config = kad::Config::new(config.dht_protocol.clone());
            // A lookup should fail well before the engine's 60 s query
            // timeout so the failure is the DHT's own.
            kad_config.set_query_timeout(std::time::Duration::from_secs(30));
            let mut kad =
                kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), kad_config);
            kad.set_mode(config.dht_mode);
            for (peer, addr) in nodes {
                kad.add_address(peer, addr.clone());
            }
            protocols.kad = Some(kad).into();
        }
        #[cfg(feature = "rendezvous")]
        if !config.rendezvous.is_empty() {
            slots.extend((0..config.rendezvous.len()).map(Slot::Rendezvous));
            protocols.rendezvous =
                Some(libp2p::rendezvous::client::Behaviour::new(keypair.clone())).into();
        }
        #[cfg(feature = "mdns")]
        let mdns = match &config.mdns {
            Some(mdns_config) => {
                slots.push(Slot::Mdns);
                let behaviour = libp2p::mdns::tokio::Behaviour::new(mdns_config.clone(), local)
                    .map_err(|e| Error::Driver {
                        driver: "mdns",
                        message: e.to_string(),
                    })?;
                protocols.mdns = Some(behaviour).into();
                Some(MdnsDriver {
                    ttl: mdns_config.ttl,
                })
            }
            None => None,
        };
        #[cfg(feature = "proximity")]
        let nearby = config.proximity.map(|p| {
            slots.push(Slot::Proximity);
            Nearby::new(p)
        });
        Ok(Discovery {
            protocols,
            slots,
            max_operations: config.max_operations,
            #[cfg(feature = "kad")]
            kad: KadDriver::default(),
            #[cfg(feature = "rendezvous")]
            rendezvous: RendezvousDriver::new(config.rendezvous),
            #[cfg(feature = "mdns")]
            mdns,
            #[cfg(feature = "proximity")]
            nearby,
            external: libp2p::swarm::ExternalAddresses::default(),
            out: VecDeque::new(),
        })
    }

    /// The Kademlia behaviour, if the DHT runs (e.g. to add a node's
    /// address).
    #[cfg(feature = "kad")]
    pub fn kad_mut(
        &mut self,
    ) -> Option<&mut libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>> {
        self.protocols.kad.as_mut()
    }

    /// Operations in flight.
    pub fn operations(&self) -> usize {
        #[allow(unused_mut)]
        let mut n = 0;
        #[cfg(feature = "kad")]
        {
            n += self.kad.operations();
        }
        #[cfg(feature = "rendezvous")]
        {
            n += self.rendezvous.operations();
        }
        #[cfg(feature = "proximity")]
        {
            n += self.nearby.as_ref().map_or(0, Nearby::operations);
        }
        n
    }

    fn finish(&mut self, query: QueryId, result: Result<(), String>) {
        self.out.push_back(DriverEvent::Finished { query, result });
    }

    /// Whether the operations bound is reached; if so the operation
    /// finished as failed.
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

    fn on_protocol_event(&mut self, event: ProtocolsEvent) {
        match event {
            #[cfg(feature = "kad")]
            ProtocolsEvent::Kad(e) => {
                self.kad
                    .on_event(self.protocols.kad.as_mut(), e, &mut self.out)
            }
            #[cfg(feature = "rendezvous")]
            ProtocolsEvent::Rendezvous(e) => self.rendezvous.on_event(e, &mut self.out),
            #[cfg(feature = "mdns")]
            ProtocolsEvent::Mdns(e) => {
                if let Some(m) = &self.mdns {
                    m.on_event(&e, &mut self.out);
                }
            }
            #[allow(unreachable_patterns)]
            other => match other {
                #[cfg(not(feature = "kad"))]
                ProtocolsEvent::Kad(never) => match never {},
                #[cfg(not(feature = "rendezvous"))]
                ProtocolsEvent::Rendezvous(never) => match never {},
                #[cfg(not(feature = "mdns"))]
                ProtocolsEvent::Mdns(never) => match never {},
                #[allow(unreachable_patterns)]
                _ => {}
            },
        }
    }
}

impl DriverSet for Discovery {
    fn capabilities(&self) -> Vec<DriverCaps> {
        self.slots
            .iter()
            .map(|s| match *s {
                #[cfg(feature = "kad")]
                Slot::Dht => DHT_CAPS,
                #[cfg(feature = "rendezvous")]
                Slot::Rendezvous(_) => RENDEZVOUS_CAPS,
                #[cfg(feature = "mdns")]
                Slot::Mdns => MDNS_CAPS,
                #[cfg(feature = "proximity")]
                Slot::Proximity => PROXIMITY_CAPS,
            })
            .collect()
    }

    #[cfg_attr(not(feature = "rendezvous"), allow(unused_variables))]
    fn advertise(
        &mut self,
        driver: usize,
        query: QueryId,
        namespace: &str,
        ttl: std::time::Duration,
    ) {
        if self.full(query) {
            return;
        }
        match self.slots.get(driver).copied() {
            #[cfg(feature = "kad")]
            Some(Slot::Dht) => {
                let result = match self.protocols.kad.as_mut() {
                    Some(kad) => self.kad.advertise(kad, query, namespace),
                    None => Err("no DHT".into()),
                };
                if let Err(e) = result {
                    self.finish(query, Err(e));
                }
            }
            #[cfg(feature = "rendezvous")]
            Some(Slot::Rendezvous(i)) => {
                let has_address = self.external.iter().next().is_some();
                match self.protocols.rendezvous.as_mut() {
                    Some(client) => self.rendezvous.advertise(
                        client,
                        has_address,
                        i,
                        query,
                        namespace,
                        ttl,
                        &mut self.out,
                    ),
                    None => self.finish(query, Err("no rendezvous client".into())),
                }
            }
            // mDNS answers every query for the local peer: nothing to
            // register.
            #[cfg(feature = "mdns")]
            Some(Slot::Mdns) => self.finish(query, Ok(())),
            #[cfg(feature = "proximity")]
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

    #[cfg_attr(
        not(any(feature = "kad", feature = "rendezvous", feature = "proximity")),
        allow(unused_variables)
    )]
    fn stop_advertising(&mut self, driver: usize, namespace: &str) {
        match self.slots.get(driver).copied() {
            #[cfg(feature = "kad")]
            Some(Slot::Dht) => {
                if let Some(kad) = self.protocols.kad.as_mut() {
                    KadDriver::stop_advertising(kad, namespace);
                }
            }
            #[cfg(feature = "rendezvous")]
            Some(Slot::Rendezvous(i)) => {
                self.rendezvous
                    .stop_advertising(self.protocols.rendezvous.as_mut(), i, namespace);
            }
            #[cfg(feature = "proximity")]
            Some(Slot::Proximity) => {
                if let Some(n) = self.nearby.as_mut() {
                    n.stop_advertising(namespace);
                }
            }
            #[cfg(feature = "mdns")]
            Some(Slot::Mdns) => {}
            None => {}
        }
    }

    #[cfg_attr(
        not(any(feature = "kad", feature = "rendezvous", feature = "proximity")),
        allow(unused_variables)
    )]
    fn discover(&mut self, driver: usize, query: QueryId, namespace: &str) {
        if self.full(query) {
            return;
        }
        match self.slots.get(driver).copied() {
            #[cfg(feature = "kad")]
            Some(Slot::Dht) => match self.protocols.kad.as_mut() {
                Some(kad) => self.kad.discover(kad, query, namespace),
                None => self.finish(query, Err("no DHT".into())),
            },
            #[cfg(feature = "rendezvous")]
            Some(Slot::Rendezvous(i)) => match self.protocols.rendezvous.as_mut() {
                Some(client) => {
                    self.rendezvous
                        .discover(client, i, query, namespace, &mut self.out)
                }
                None => self.finish(query, Err("no rendezvous client".into())),
            },
            #[cfg(feature = "mdns")]
            Some(Slot::Mdns) => match (self.protocols.mdns.as_mut(), &self.mdns) {
                (Some(behaviour), Some(driver)) => driver.discover(behaviour, query, &mut self.out),
                _ => self.finish(query, Err("no mDNS".into())),
            },
            #[cfg(feature = "proximity")]
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

    #[cfg_attr(
        not(any(feature = "kad", feature = "rendezvous", feature = "proximity")),
        allow(unused_variables)
    )]
    fn cancel(&mut self, query: QueryId) {
        #[cfg(feature = "kad")]
        self.kad.cancel(self.protocols.kad.as_mut(), query);
        #[cfg(feature = "rendezvous")]
        self.rendezvous.cancel(query);
        #[cfg(feature = "proximity")]
        if let Some(n) = self.nearby.as_mut() {
            n.cancel(query);
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
        #[allow(unused_mut)]
        let mut addrs = self.protocols.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?;
        // The rendezvous points' configured addresses.
        #[cfg(feature = "rendezvous")]
        if let Some(peer) = maybe_peer {
            for a in self.rendezvous.addresses_of(peer) {
                if !addrs.contains(a) {
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
        #[cfg(feature = "proximity")]
        if let Some(n) = self.nearby.as_mut() {
            n.on_swarm_event(event);
        }
        // The set, not a count: the swarm repeats confirmations and reports
        // expiries of addresses it never had.
        #[allow(unused_variables)]
        let first_address =
            self.external.on_swarm_event(&event) && self.external.iter().next().is_some();
        #[cfg(feature = "rendezvous")]
        if first_address && let Some(client) = self.protocols.rendezvous.as_mut() {
            self.rendezvous.address_confirmed(client, &mut self.out);
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
        #[cfg(feature = "proximity")]
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
        #[cfg(feature = "rendezvous")]
        if let Some((peer, addr)) = self.rendezvous.dials.pop_front() {
            // Connected already: the condition makes it a no-op.
            let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(vec![addr])
                .condition(libp2p::swarm::dial_opts::PeerCondition::DisconnectedAndNotDialing)
                .build();
            return Poll::Ready(ToSwarm::Dial { opts });
        }
        // Bounded: a few protocol events per call, then our own.
        for _ in 0..32 {
            if let Some(e) = self.out.pop_front() {
                return Poll::Ready(ToSwarm::GenerateEvent(e));
            }
            match self.protocols.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(e)) => self.on_protocol_event(e),
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
    use multidriver_scoring::Source;

    use super::*;

    #[cfg(all(feature = "kad", feature = "rendezvous"))]
    #[test]
    fn drivers_are_numbered_the_dht_then_each_rendezvous_point() {
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

    #[cfg(feature = "kad")]
    #[test]
    fn operations_beyond_the_bound_fail_at_once() {
        let key = Keypair::generate_ed25519();
        let config = DiscoveryConfig::default()
            .with_dht(Vec::new())
            .with_max_operations(1);
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

    #[cfg(feature = "kad")]
    #[test]
    fn the_dht_is_a_client_until_an_external_address_is_confirmed() {
        let key = Keypair::generate_ed25519();
        let mut d = Discovery::new(&key, DiscoveryConfig::default().with_dht(Vec::new())).unwrap();
        // kad's automatic mode starts as a client…
        assert_eq!(d.kad_mut().unwrap().mode(), libp2p::kad::Mode::Client);
        // …and serves once the swarm confirms an external address.
        let addr: Multiaddr = "/ip4/198.51.100.7/tcp/4001".parse().unwrap();
        d.on_swarm_event(FromSwarm::ExternalAddrConfirmed(
            libp2p::swarm::behaviour::ExternalAddrConfirmed { addr: &addr },
        ));
        assert_eq!(d.kad_mut().unwrap().mode(), libp2p::kad::Mode::Server);
        let mut d = Discovery::new(
            &key,
            DiscoveryConfig::default()
                .with_dht(Vec::new())
                .with_dht_mode(Some(libp2p::kad::Mode::Server)),
        )
        .unwrap();
        assert_eq!(d.kad_mut().unwrap().mode(), libp2p::kad::Mode::Server);
    }
}
