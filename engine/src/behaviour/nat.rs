//! Hole punching through the app's own DCUtR: the swarm runs libp2p's relay
//! client and `dcutr::Behaviour` beside this one (see
//! `multidriver::build_swarm_with_relay`), and the app hands the DCUtR
//! events to [`Behaviour::handle_dcutr_event`]. A punched direct connection
//! then replaces the peer's relayed one, make-before-break; a failed punch
//! away from a relayed connection holds the peer's direct routes through
//! that interface back for a while (see the core's `nat` module). Only
//! peers the engine knows or wants are taken over; a punch to a peer that
//! merely reached us through our relay stays the swarm's.

use libp2p::PeerId;
use libp2p::dcutr;
use libp2p::swarm::{ConnectionId as SwarmConnectionId, NotifyHandler, ToSwarm};
use multidriver_scoring::Timestamp;

use super::reach::is_relayed;
use super::{Behaviour, DriverSet, handler};

impl<D: DriverSet> Behaviour<D> {
    /// Feeds the engine one event of the swarm's `dcutr::Behaviour`:
    ///
    /// ```ignore
    /// SwarmEvent::Behaviour(AppEvent::Dcutr(e)) => swarm.behaviour_mut().multidriver.handle_dcutr_event(&e),
    /// ```
    ///
    /// A punched connection the engine does not know yet becomes a route
    /// it holds (`Event::RouteSwitched` with `SwitchReason::HolePunched`
    /// when the peer was relayed); a failed punch is remembered for the
    /// interface of the peer's relayed connection.
    pub fn handle_dcutr_event(&mut self, event: &dcutr::Event) {
        let now = self.now();
        let peer = event.remote_peer_id;
        match &event.result {
            Ok(connection) => self.hole_punched(peer, *connection, now),
            Err(error) => {
                metrics::counter!("multidriver_hole_punches_total", "outcome" => "failure")
                    .increment(1);
                tracing::debug!(target: "multidriver", %peer, %error, "hole punch failed");
                // Only a punch away from a relayed connection says anything
                // about the NAT behind the interface that carries it.
                let interface = self
                    .engine
                    .primary(&peer)
                    .and_then(|c| self.engine.connection(c))
                    .filter(|(addr, _)| is_relayed(addr))
                    .map(|(_, interface)| interface);
                if let Some(interface) = interface {
                    self.engine.handle_hole_punch_failed(peer, interface, now);
                }
            }
        }
        self.wake();
    }

    fn hole_punched(&mut self, peer: PeerId, connection: SwarmConnectionId, now: Timestamp) {
        metrics::counter!("multidriver_hole_punches_total", "outcome" => "success").increment(1);
        // libp2p-dcutr 0.15 reports the connections it dialled itself; they
        // were remembered if the engine knew or wanted the peer (the side
        // that dialled through the relay). Others stay the swarm's.
        let Some((_, remote)) = self.unordered.remove(&connection) else {
            return;
        };
        let interface = self.interfaces.route(&remote);
        let Some(interface) = interface else {
            tracing::debug!(target: "multidriver", %peer, %remote, "hole punched over no known interface");
            return;
        };
        match self
            .engine
            .handle_hole_punched(peer, remote, interface, now)
        {
            Ok(engine) => {
                self.track(connection, engine, peer);
                self.actions.push_back(ToSwarm::NotifyHandler {
                    peer_id: peer,
                    handler: NotifyHandler::One(connection),
                    event: either::Either::Left(handler::In::KeepAlive(true)),
                });
            }
            Err(error) => {
                tracing::debug!(target: "multidriver", %peer, %error, "hole-punched connection not taken")
            }
        }
    }
}
