//! Hole punching through the app's own DCUtR: the swarm runs libp2p's relay
//! client and `dcutr::Behaviour` beside this one (see
//! `multidriver::build_swarm_with_relay`), and the app hands the DCUtR
//! events to [`Behaviour::handle_dcutr_event`]. A punched direct connection
//! then replaces the peer's relayed one, make-before-break; a failed punch
//! holds the peer's direct routes through that interface back for a while
//! (see the core's `nat` module).

use libp2p::PeerId;
use libp2p::dcutr;
use libp2p::swarm::{ConnectionId as SwarmConnectionId, NotifyHandler, ToSwarm};
use multidriver_scoring::Timestamp;

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
                let interface = self
                    .engine
                    .primary(&peer)
                    .and_then(|c| self.engine.connection(c))
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
        // Taken in through our listener and already the engine's.
        if let Some(open) = self.open.get(&connection) {
            self.engine.handle_hole_punched_inbound(open.engine, now);
            return;
        }
        let (remote, interface) = if let Some((_, remote)) = self.unordered.remove(&connection) {
            let interface = self.interfaces.route(&remote);
            (remote, interface)
        } else if let Some(u) = self.untracked.remove(&connection) {
            let interface = self.interfaces.of_local(&u.local);
            (u.remote, interface)
        } else {
            return;
        };
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
