//! The behaviour's events: the engine core's, with the swarm's own
//! `ConnectionId` where the core speaks of its connection handles.

use libp2p::swarm::ConnectionId;

/// What the [`Behaviour`](super::Behaviour) tells the app: the core's
/// [`Event`](crate::core::Event)s, with connections named by the swarm's
/// [`ConnectionId`], the one `SwarmEvent`s and other behaviours use. An
/// event about a connection that closed before the event was handed on is
/// dropped; the core's next event about the peer says what became of it.
pub type Event = crate::core::Event<ConnectionId>;
