//! The contract between discovery drivers and the engine's `Behaviour`:
//! [`DriverSet`], a `NetworkBehaviour` whose operations the engine
//! orders, and the [`DriverEvent`]s it answers with.

use std::time::Duration;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{Multiaddr, PeerId};
use multidriver_core::{DriverCaps, QueryId};
use multidriver_scoring::Source;

/// Discovery drivers as one `NetworkBehaviour`, run inside multidriver's `Behaviour`.
///
/// [`Discovery`](crate::Discovery) implements it for Kademlia, rendezvous
/// points, mDNS and the proximity radio; implement it to bring drivers of
/// your own.
/// Drivers are numbered by their position in [`DriverSet::capabilities`]; every
/// operation names its driver by that index and echoes the engine's
/// [`QueryId`] in its [`DriverEvent`]s.
pub trait DriverSet: NetworkBehaviour<ToSwarm = DriverEvent> {
    /// Each driver instance's declared capabilities, registered with the
    /// engine once, in this order, when the `Behaviour` is built.
    fn capabilities(&self) -> Vec<DriverCaps>;
    /// Register the local peer under `namespace` for `ttl` with driver
    /// `driver`; answer with [`DriverEvent::Finished`] for `query`.
    fn advertise(&mut self, driver: usize, query: QueryId, namespace: &str, ttl: Duration);
    /// Withdraw the registration. No answer.
    fn stop_advertising(&mut self, driver: usize, namespace: &str);
    /// Look peers up: [`DriverEvent::Discovered`] for each, then
    /// [`DriverEvent::Finished`].
    fn discover(&mut self, driver: usize, query: QueryId, namespace: &str);
    /// Abandon an operation; later events about it are ignored.
    fn cancel(&mut self, query: QueryId);
}

/// What drivers report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DriverEvent {
    /// A peer and its addresses; `query` is `None` for unsolicited finds
    /// (an mDNS announcement).
    Discovered {
        /// The lookup it answers.
        query: Option<QueryId>,
        /// The driver kind.
        source: Source,
        /// The peer.
        peer: PeerId,
        /// Its addresses.
        addrs: Vec<Multiaddr>,
        /// Whether they came in a signed peer record.
        signed: bool,
        /// How long they stay valid.
        ttl: Duration,
    },
    /// An operation ended; the error says why it failed.
    Finished {
        /// The operation.
        query: QueryId,
        /// `Err` with the reason when it failed.
        result: Result<(), String>,
    },
}
