//! The mDNS driver: libp2p-mdns.
//!
//! It has no namespaces: every libp2p node on the LAN that runs it is
//! reported, and the app decides whom to connect to. Advertising is
//! nothing to do (mDNS answers every query for the local peer); a lookup
//! reports what mDNS knows now, and later answers arrive unsolicited.

use std::collections::VecDeque;
use std::time::Duration;

use libp2p::core::Endpoint;
use libp2p::swarm::{ConnectionId, NetworkBehaviour};
use libp2p::{Multiaddr, PeerId, mdns};
use multidriver_core::{DriverCaps, EnergyClass, QueryId, Reach};
use multidriver_scoring::Source;

use crate::DriverEvent;

/// The mDNS driver's capabilities.
pub const MDNS_CAPS: DriverCaps = DriverCaps {
    kind: Source::Mdns,
    reach: Reach::Lan,
    energy: EnergyClass::Medium,
    // The first mDNS probe goes out 500 ms after an interface comes up
    // (libp2p-mdns `behaviour/iface.rs`, docs/PARAMETERS.md).
    typical_latency: Duration::from_millis(500),
    signed_records: false,
};

/// The routes in one of an app's own mDNS events, for
/// `Behaviour::handle_driver_event`: one per peer, all its addresses, for
/// `ttl` (the app's `mdns::Config::ttl`). Unsolicited (`query: None`).
pub fn discovered(event: &mdns::Event, ttl: Duration) -> Vec<DriverEvent> {
    let mdns::Event::Discovered(list) = event else {
        return Vec::new();
    };
    let mut by_peer: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
    for (peer, addr) in list {
        match by_peer.iter_mut().find(|(p, _)| p == peer) {
            Some((_, addrs)) => addrs.push(addr.clone()),
            None => by_peer.push((*peer, vec![addr.clone()])),
        }
    }
    by_peer
        .into_iter()
        .map(|(peer, addrs)| DriverEvent::Discovered {
            query: None,
            source: Source::Mdns,
            peer,
            addrs,
            signed: false,
            ttl,
        })
        .collect()
}

/// The mDNS driver's state: the TTL its routes get.
#[derive(Debug)]
pub(crate) struct MdnsDriver {
    pub(crate) ttl: Duration,
}

impl MdnsDriver {
    /// Reports every peer mDNS knows now, then finishes the lookup.
    pub(crate) fn discover(
        &self,
        mdns: &mut mdns::tokio::Behaviour,
        query: QueryId,
        out: &mut VecDeque<DriverEvent>,
    ) {
        // `discovered_nodes` yields a peer once per address.
        let mut peers: Vec<PeerId> = mdns.discovered_nodes().copied().collect();
        peers.sort_unstable();
        peers.dedup();
        for peer in peers {
            let addrs = mdns
                .handle_pending_outbound_connection(
                    ConnectionId::new_unchecked(0),
                    Some(peer),
                    &[],
                    Endpoint::Dialer,
                )
                .unwrap_or_default();
            out.push_back(DriverEvent::Discovered {
                query: Some(query),
                source: Source::Mdns,
                peer,
                addrs,
                signed: false,
                ttl: self.ttl,
            });
        }
        out.push_back(DriverEvent::Finished {
            query,
            result: Ok(()),
        });
    }

    /// Unsolicited announcements, grouped by peer.
    pub(crate) fn on_event(&self, event: &mdns::Event, out: &mut VecDeque<DriverEvent>) {
        out.extend(discovered(event, self.ttl));
    }
}
