//! What the event loop keeps between events, and how it turns swarm and
//! engine events into reports (and look-ups).

use std::time::Instant;

use libp2p::multiaddr::Protocol;
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p::{Multiaddr, PeerId};
use multidriver::Event;
use multidriver::core::InterfaceId;
use multidriver::scoring::TransportKind;
use multidriver::scoring::rank::Components;

use super::args::Point;
use super::error::NodeError;
use super::error_text::{dial_failure, one_line};
use super::output::Out;
use super::report::{Cost, Report, reachability_name, switch_reason, why};
use super::{INBOUND_LOOKUP_INTERVAL, NodeBehaviour, NodeBehaviourEvent};

type NodeSwarm = Swarm<NodeBehaviour>;

/// What the event loop keeps between events.
pub(super) struct State<'a> {
    pub(super) me: PeerId,
    pub(super) namespace: &'a str,
    pub(super) points: &'a [Point],
    /// Driver labels by driver index.
    pub(super) labels: Vec<String>,
    /// The last look-up made because an unknown peer connected.
    pub(super) last_lookup: Option<Instant>,
}

impl State<'_> {
    fn driver_label(&self, swarm: &NodeSwarm, driver: multidriver::core::DriverId) -> String {
        swarm
            .behaviour()
            .multidriver
            .driver_index(driver)
            .and_then(|i| self.labels.get(i).cloned())
            .unwrap_or_else(|| format!("driver {driver}"))
    }

    pub(super) fn on_event(
        &mut self,
        swarm: &mut NodeSwarm,
        event: SwarmEvent<NodeBehaviourEvent>,
        out: &mut Out,
    ) -> Result<(), NodeError> {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                // Rendezvous registrations carry the external addresses: the
                // node announces what it listens on (peers on its LAN reach
                // it there). A relayed address (a reservation on a point)
                // is confirmed by the relay client; a public one by AutoNAT.
                if !address.iter().any(|p| p == Protocol::P2pCircuit) {
                    swarm.add_external_address(address.clone());
                }
                // Relayed addresses end in our id already.
                let addr = if address.iter().last() == Some(Protocol::P2p(self.me)) {
                    address
                } else {
                    address.with(Protocol::P2p(self.me))
                };
                out.emit(&Report::Listening {
                    addr: addr.to_string(),
                })
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                swarm.remove_external_address(&address);
                Ok(())
            }
            SwarmEvent::ListenerError { error, .. } => out.emit(&Report::warning(
                "listener",
                None,
                None,
                format!("a listener failed: {}", one_line(&error.to_string())),
            )),
            SwarmEvent::ListenerClosed {
                addresses,
                reason: Err(error),
                ..
            } => {
                let addrs: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                out.emit(&Report::warning(
                    "listener",
                    None,
                    None,
                    format!(
                        "stopped listening on {}: {}",
                        addrs.join(", "),
                        one_line(&error.to_string())
                    ),
                ))
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => match self.points.iter().position(|p| p.peer == peer) {
                Some(i) => out.emit(&Report::warning(
                    "rendezvous_unreachable",
                    self.labels.get(i).cloned(),
                    None,
                    format!(
                        "rendezvous point {} unreachable: {}",
                        self.points[i],
                        dial_failure(&error)
                    ),
                )),
                // The engine's own dials: a failed route is part of a race,
                // and the engine reports a peer it cannot reach.
                None => Ok(()),
            },
            SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } if endpoint.is_listener()
                && swarm.behaviour().multidriver.engine().route_count(&peer_id) == 0
                && !self.points.iter().any(|p| p.peer == peer_id) =>
            {
                // Someone found us first: look them up now rather than at
                // the next periodic look-up.
                if self
                    .last_lookup
                    .is_none_or(|t| t.elapsed() >= INBOUND_LOOKUP_INTERVAL)
                {
                    self.last_lookup = Some(Instant::now());
                    swarm
                        .behaviour_mut()
                        .multidriver
                        .discover(self.namespace)
                        .map_err(NodeError::Namespace)?;
                }
                Ok(())
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Multidriver(event)) => {
                self.on_engine_event(swarm, event, out)
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Dcutr(event)) => {
                swarm.behaviour_mut().multidriver.handle_dcutr_event(&event);
                Ok(())
            }
            SwarmEvent::Behaviour(NodeBehaviourEvent::Autonat(event)) => {
                swarm
                    .behaviour_mut()
                    .multidriver
                    .handle_autonat_event(&event);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_engine_event(
        &mut self,
        swarm: &mut NodeSwarm,
        event: Event,
        out: &mut Out,
    ) -> Result<(), NodeError> {
        match event {
            Event::PeerDiscovered { peer, source } => {
                let addrs = swarm
                    .behaviour()
                    .multidriver
                    .ranked_routes(&peer)
                    .into_iter()
                    .map(|(addr, _, _)| addr.to_string())
                    .collect();
                out.emit(&Report::Discovered {
                    peer: peer.to_string(),
                    source: source.as_str(),
                    addrs,
                })?;
                match swarm.behaviour_mut().multidriver.connect(peer) {
                    Ok(()) => Ok(()),
                    Err(e) => out.emit(&Report::warning(
                        "connect_refused",
                        None,
                        Some(peer),
                        format!("cannot connect to {peer}: {e}"),
                    )),
                }
            }
            Event::RouteSelected {
                peer,
                addr,
                interface,
                reason,
                ..
            } => {
                // An inbound connection has no route of ours, hence no cost
                // (the engine gives default components).
                let inbound = reason == Components::default();
                let (cost, why) = if inbound {
                    (None, "they dialled us".to_owned())
                } else {
                    (Some(Cost::from(&reason)), why(&reason))
                };
                let link = Link::new(swarm, &addr, interface);
                out.emit(&Report::Connected {
                    peer: peer.to_string(),
                    addr: addr.to_string(),
                    interface: link.interface,
                    medium: link.medium,
                    transport: link.transport,
                    inbound,
                    cost,
                    why,
                })
            }
            Event::RouteSwitched {
                peer,
                from,
                to,
                interface,
                reason,
                ..
            } => {
                let (label, cost, from_cost, why) = switch_reason(&reason);
                let link = Link::new(swarm, &to, interface);
                out.emit(&Report::Switched {
                    peer: peer.to_string(),
                    from: from.to_string(),
                    to: to.to_string(),
                    interface: link.interface,
                    medium: link.medium,
                    transport: link.transport,
                    reason: label,
                    cost,
                    from_cost,
                    why,
                })
            }
            Event::PeerDisconnected { peer } => out.emit(&Report::Lost {
                peer: peer.to_string(),
                reason: "disconnected",
                tried: None,
            }),
            Event::PeerUnreachable { peer, tried } => out.emit(&Report::Lost {
                peer: peer.to_string(),
                reason: "unreachable",
                tried: Some(tried),
            }),
            Event::DriverHealthChanged {
                driver,
                healthy: true,
                ..
            } => out.emit(&Report::DriverRecovered {
                driver: self.driver_label(swarm, driver),
            }),
            Event::DriverHealthChanged {
                driver,
                healthy: false,
                consecutive_failures,
                ..
            } => {
                let label = self.driver_label(swarm, driver);
                let message = format!(
                    "{label} failed ({consecutive_failures} in a row); the engine backs off and tries it again later"
                );
                out.emit(&Report::warning(
                    "driver_unhealthy",
                    Some(label),
                    None,
                    message,
                ))
            }
            Event::ReachabilityChanged { reachability } => out.emit(&Report::Reachability {
                reachability: reachability_name(reachability),
            }),
            Event::EventsDropped { count } => out.emit(&Report::warning(
                "events_dropped",
                None,
                None,
                format!("{count} engine events were dropped: the node fell behind"),
            )),
            _ => Ok(()),
        }
    }
}

/// The interface, medium and transport of a route, as printed.
struct Link {
    interface: String,
    medium: String,
    transport: Option<String>,
}

impl Link {
    fn new(swarm: &NodeSwarm, addr: &Multiaddr, interface: InterfaceId) -> Self {
        Link {
            interface: interface.to_string(),
            medium: swarm
                .behaviour()
                .multidriver
                .interface_medium(interface)
                .to_string(),
            transport: TransportKind::from_multiaddr(addr).map(|t| t.to_string()),
        }
    }
}
