//! The behaviour's events: the engine core's, with the swarm's own
//! `ConnectionId` where the core speaks of its connection handles.

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use multidriver_scoring::rank::Components;
use multidriver_scoring::{Source, Timestamp};

use crate::core::{self, DriverId, InterfaceId, SwitchReason};

/// What the [`Behaviour`](super::Behaviour) tells the app, in the past
/// tense. The same facts as the core's [`core::Event`], with connections
/// named by the swarm's [`ConnectionId`], the one `SwarmEvent`s and other
/// behaviours use.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// The first route to a peer was discovered.
    PeerDiscovered {
        /// The peer.
        peer: PeerId,
        /// The driver kind that found it.
        source: Source,
    },
    /// A peer got its first connection (or its first after losing all):
    /// the route the engine chose and why.
    RouteSelected {
        /// The peer.
        peer: PeerId,
        /// The swarm's connection through that route.
        connection: ConnectionId,
        /// The route's address.
        addr: Multiaddr,
        /// The local interface it leaves through.
        interface: InterfaceId,
        /// The route's cost components when it was chosen.
        reason: Components,
    },
    /// A connected peer moved to another route.
    RouteSwitched {
        /// The peer.
        peer: PeerId,
        /// The old route's address.
        from: Multiaddr,
        /// The new route's address.
        to: Multiaddr,
        /// The swarm's connection through the new route.
        connection: ConnectionId,
        /// The local interface the new route leaves through.
        interface: InterfaceId,
        /// Why.
        reason: SwitchReason,
    },
    /// Every route to a wanted peer failed.
    PeerUnreachable {
        /// The peer.
        peer: PeerId,
        /// How many routes were tried.
        tried: usize,
    },
    /// A peer lost its last connection and has no route left to try.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// A discovery driver became healthy or unhealthy.
    DriverHealthChanged {
        /// The driver.
        driver: DriverId,
        /// Whether it is healthy now.
        healthy: bool,
        /// Failures in a row.
        consecutive_failures: u32,
        /// When it is tried again, if it backs off.
        retry_at: Option<Timestamp>,
    },
    /// The engine's event queue was full and this many events were lost.
    EventsDropped {
        /// How many.
        count: u64,
    },
}

impl Event {
    /// The core's event in the swarm's terms; `swarm_id` names the swarm's
    /// connection for an engine connection handle. `None` for an event that
    /// names a connection the swarm no longer has (it closed in between),
    /// or of a kind this adapter does not know.
    pub(crate) fn from_core(
        event: core::Event,
        swarm_id: impl Fn(core::ConnectionHandle) -> Option<ConnectionId>,
    ) -> Option<Self> {
        Some(match event {
            core::Event::PeerDiscovered { peer, source } => Event::PeerDiscovered { peer, source },
            core::Event::RouteSelected {
                peer,
                connection,
                addr,
                interface,
                reason,
            } => Event::RouteSelected {
                peer,
                connection: swarm_id(connection)?,
                addr,
                interface,
                reason,
            },
            core::Event::RouteSwitched {
                peer,
                from,
                to,
                connection,
                interface,
                reason,
            } => Event::RouteSwitched {
                peer,
                from,
                to,
                connection: swarm_id(connection)?,
                interface,
                reason,
            },
            core::Event::PeerUnreachable { peer, tried } => Event::PeerUnreachable { peer, tried },
            core::Event::PeerDisconnected { peer } => Event::PeerDisconnected { peer },
            core::Event::DriverHealthChanged {
                driver,
                healthy,
                consecutive_failures,
                retry_at,
            } => Event::DriverHealthChanged {
                driver,
                healthy,
                consecutive_failures,
                retry_at,
            },
            core::Event::EventsDropped { count } => Event::EventsDropped { count },
            _ => return None,
        })
    }
}
