//! The DHT driver: libp2p-kad provider records.
//!
//! A namespace's key is SHA-256(`"/multidriver/ns/"` + namespace)
//! ([`namespace_key`]), so no one else's record collides with it;
//! advertising is `start_providing`, looking up is `get_providers`, and
//! providers' addresses come from the lookup itself.
//!
//! The driver keeps only its own query table; the `kad::Behaviour` it drives
//! is passed in, so it is the same code whether [`Discovery`](crate::Discovery)
//! owns the behaviour or the app does ([`discovered`] feeds the engine from
//! the app's own Kademlia events).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use libp2p::core::Endpoint;
use libp2p::kad;
use libp2p::swarm::{ConnectionId, NetworkBehaviour};
use multidriver_core::{DriverCaps, EnergyClass, QueryId, Reach};
use multidriver_scoring::Source;
use sha2::{Digest, Sha256};

use crate::DriverEvent;

/// The DHT driver's capabilities.
pub const DHT_CAPS: DriverCaps = DriverCaps {
    kind: Source::Dht,
    reach: Reach::Internet,
    energy: EnergyClass::High,
    // The IPFS DHT lookup median (probe-lab 2023, docs/PARAMETERS.md).
    typical_latency: Duration::from_millis(557),
    signed_records: false,
};

/// How long a DHT provider's addresses are trusted: our choice, far below
/// the record's own 48 h (libp2p-kad `PROVIDER_RECORD_TTL`), because the
/// addresses are the ones the provider had when it published.
pub const DHT_ROUTE_TTL: Duration = Duration::from_secs(60 * 60);

/// The DHT key of a namespace.
pub fn namespace_key(namespace: &str) -> kad::RecordKey {
    let digest = Sha256::new()
        .chain_update(b"/multidriver/ns/")
        .chain_update(namespace.as_bytes())
        .finalize();
    kad::RecordKey::new(&digest.as_slice())
}

/// Routes in one of the app's own Kademlia events, for
/// `Behaviour::handle_driver_event`: the addresses of a peer kad added to
/// its routing table, and the peers a closest-peers lookup found with
/// their addresses. Every route is unsolicited (`query: None`) and trusted
/// for [`DHT_ROUTE_TTL`].
pub fn discovered(event: &kad::Event) -> Vec<DriverEvent> {
    let found = |peer, addrs: Vec<libp2p::Multiaddr>| DriverEvent::Discovered {
        query: None,
        source: Source::Dht,
        peer,
        addrs,
        signed: false,
        ttl: DHT_ROUTE_TTL,
    };
    match event {
        kad::Event::RoutingUpdated {
            peer, addresses, ..
        } => vec![found(*peer, addresses.iter().cloned().collect())],
        kad::Event::OutboundQueryProgressed {
            result: kad::QueryResult::GetClosestPeers(Ok(ok)),
            ..
        } => ok
            .peers
            .iter()
            .filter(|p| !p.addrs.is_empty())
            .map(|p| found(p.peer_id, p.addrs.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

/// The DHT driver's state: the engine's queries by kad's.
#[derive(Debug, Default)]
pub(crate) struct KadDriver {
    queries: HashMap<kad::QueryId, QueryId>,
}

impl KadDriver {
    /// Operations in flight.
    pub(crate) fn operations(&self) -> usize {
        self.queries.len()
    }

    /// Starts providing the namespace's key.
    pub(crate) fn advertise<S: kad::store::RecordStore + Send + 'static>(
        &mut self,
        kad: &mut kad::Behaviour<S>,
        query: QueryId,
        namespace: &str,
    ) -> Result<(), String> {
        let id = kad
            .start_providing(namespace_key(namespace))
            .map_err(|e| e.to_string())?;
        self.queries.insert(id, query);
        Ok(())
    }

    /// Stops providing the namespace's key.
    pub(crate) fn stop_advertising<S: kad::store::RecordStore + Send + 'static>(
        kad: &mut kad::Behaviour<S>,
        namespace: &str,
    ) {
        kad.stop_providing(&namespace_key(namespace));
    }

    /// Looks the namespace's providers up.
    pub(crate) fn discover<S: kad::store::RecordStore + Send + 'static>(
        &mut self,
        kad: &mut kad::Behaviour<S>,
        query: QueryId,
        namespace: &str,
    ) {
        let id = kad.get_providers(namespace_key(namespace));
        self.queries.insert(id, query);
    }

    /// Abandons the engine's query: kad's lookups for it are finished.
    pub(crate) fn cancel<S: kad::store::RecordStore + Send + 'static>(
        &mut self,
        kad: Option<&mut kad::Behaviour<S>>,
        query: QueryId,
    ) {
        let ids: Vec<kad::QueryId> = self
            .queries
            .iter()
            .filter(|(_, q)| **q == query)
            .map(|(k, _)| *k)
            .collect();
        let mut kad = kad;
        for id in ids {
            self.queries.remove(&id);
            if let Some(mut q) = kad.as_deref_mut().and_then(|k| k.query_mut(&id)) {
                q.finish();
            }
        }
    }

    /// Turns kad's progress on one of our queries into driver events.
    pub(crate) fn on_event<S: kad::store::RecordStore + Send + 'static>(
        &mut self,
        kad: Option<&mut kad::Behaviour<S>>,
        event: kad::Event,
        out: &mut VecDeque<DriverEvent>,
    ) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            return;
        };
        let Some(&query) = self.queries.get(&id) else {
            return;
        };
        let finished = |out: &mut VecDeque<DriverEvent>, result| {
            out.push_back(DriverEvent::Finished { query, result });
        };
        match result {
            kad::QueryResult::StartProviding(r) => {
                self.queries.remove(&id);
                finished(out, r.map(|_| ()).map_err(|e| e.to_string()));
            }
            kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                providers,
                ..
            })) => {
                let mut kad = kad;
                for peer in providers {
                    // The lookup carried the providers' addresses; kad
                    // hands them out for dialling while the query lives,
                    // which it does while this progress event is handled.
                    let addrs = kad
                        .as_deref_mut()
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
                        out.push_back(DriverEvent::Discovered {
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
                    self.queries.remove(&id);
                    finished(out, Ok(()));
                }
            }
            kad::QueryResult::GetProviders(Ok(
                kad::GetProvidersOk::FinishedWithNoAdditionalRecord { .. },
            )) => {
                self.queries.remove(&id);
                finished(out, Ok(()));
            }
            kad::QueryResult::GetProviders(Err(e)) => {
                self.queries.remove(&id);
                finished(out, Err(e.to_string()));
            }
            _ => {}
        }
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
    fn a_routing_update_of_the_apps_own_kad_is_a_route() {
        let peer = libp2p::PeerId::random();
        let addr: libp2p::Multiaddr = "/ip4/198.51.100.7/tcp/4001".parse().unwrap();
        let event = kad::Event::RoutingUpdated {
            peer,
            is_new_peer: true,
            addresses: kad::Addresses::new(addr.clone()),
            bucket_range: (
                kad::KBucketDistance::default(),
                kad::KBucketDistance::default(),
            ),
            old_peer: None,
        };
        assert_eq!(
            discovered(&event),
            [DriverEvent::Discovered {
                query: None,
                source: Source::Dht,
                peer,
                addrs: vec![addr],
                signed: false,
                ttl: DHT_ROUTE_TTL,
            }]
        );
        assert!(
            discovered(&kad::Event::ModeChanged {
                new_mode: kad::Mode::Client
            })
            .is_empty()
        );
    }
}
