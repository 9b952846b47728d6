//! The node's swarm task: it owns the swarm on the node's runtime, takes
//! the binding calls off their channel, and turns swarm events into host
//! events.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The swarm task's state.
pub(super) struct Task {
    pub(super) swarm: Swarm<Mobile>,
    pub(super) events: Events,
    pub(super) shared: Arc<Mutex<Shared>>,
    /// The one message per peer waiting for its acknowledgement.
    pub(super) in_flight: HashMap<OutboundRequestId, (PeerId, u64)>,
    /// Messages sent after the one in flight to the same peer, in the
    /// order they were sent: each goes once the one before it is
    /// acknowledged or failed, so a peer receives them in that order.
    pub(super) outbox: HashMap<PeerId, VecDeque<(u64, Vec<u8>)>>,
    /// Messages in `in_flight` and `outbox` together (at most
    /// `MAX_MESSAGES_IN_FLIGHT`).
    pub(super) unacknowledged: usize,
    /// Networks the host warned about, with the end of their time to live.
    pub(super) losing: HashMap<NetworkId, tokio::time::Instant>,
    pub(super) power: PowerState,
}

impl Task {
    pub(super) async fn run(
        mut self,
        mut calls: mpsc::Receiver<Call>,
        mut stop: oneshot::Receiver<()>,
    ) {
        loop {
            let deadline = self.losing.values().min().copied();
            tokio::select! {
                _ = &mut stop => break,
                call = calls.recv() => match call {
                    Some(call) => self.call(call),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.swarm_event(event),
                () = async {
                    match deadline {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                } => self.expire_losing(),
            }
        }
        tracing::debug!("node task ends");
    }

    fn expire_losing(&mut self) {
        let now = tokio::time::Instant::now();
        let expired: Vec<NetworkId> = self
            .losing
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(n, _)| *n)
            .collect();
        for network in expired {
            self.losing.remove(&network);
            tracing::info!(
                network = network.0,
                "network's time to live passed: treated as lost"
            );
            self.hint(ConnectivityHint::Lost { network }, "network_losing");
        }
    }

    fn hint(&mut self, hint: ConnectivityHint, call: &str) {
        if let Err(e) = self.swarm.behaviour_mut().multidriver.handle_hint(hint) {
            self.events.warn(format!("{call} refused: {e}"));
        }
    }

    fn power(&mut self) {
        self.swarm.behaviour_mut().multidriver.set_power(self.power);
        let name = self
            .swarm
            .behaviour()
            .multidriver
            .engine()
            .profile()
            .name
            .clone();
        let changed = {
            let mut shared = lock(&self.shared);
            let changed = shared.profile != name;
            shared.profile.clone_from(&name);
            changed
        };
        if changed {
            self.events.emit(NodeEvent::ProfileChanged { name });
        }
    }

    fn call(&mut self, call: Call) {
        let md = &mut self.swarm.behaviour_mut().multidriver;
        match call {
            Call::Advertise(ns) => {
                if let Err(e) = md.advertise(&ns) {
                    self.events.warn(format!("advertise `{ns}` refused: {e}"));
                }
            }
            Call::Subscribe(ns) => {
                if let Err(e) = md.subscribe(&ns) {
                    self.events.warn(format!("subscribe `{ns}` refused: {e}"));
                }
            }
            Call::Discover(ns) => {
                if let Err(e) = md.discover(&ns) {
                    self.events.warn(format!("discover `{ns}` refused: {e}"));
                }
            }
            Call::Connect(peer) => {
                if let Err(e) = md.connect(peer) {
                    self.events.warn(format!("connect {peer} refused: {e}"));
                }
            }
            Call::Disconnect(peer) => md.disconnect(peer),
            Call::Send { peer, data, id } => {
                if self.unacknowledged >= MAX_MESSAGES_IN_FLIGHT {
                    self.events.emit(NodeEvent::MessageFailed {
                        peer: peer.to_base58(),
                        id,
                        reason: format!(
                            "{MAX_MESSAGES_IN_FLIGHT} messages wait for acknowledgement, the most"
                        ),
                    });
                    return;
                }
                md.mark_used(peer);
                self.unacknowledged += 1;
                match self.outbox.get_mut(&peer) {
                    // One is in flight to this peer: this one waits its turn.
                    Some(queue) => queue.push_back((id, data)),
                    None => {
                        self.outbox.insert(peer, VecDeque::new());
                        self.send_now(peer, id, data);
                    }
                }
            }
            Call::Hint(hint) => {
                if let ConnectivityHint::Lost { network }
                | ConnectivityHint::Available { network, .. } = hint
                {
                    self.losing.remove(&network);
                }
                self.hint(hint, "network input");
            }
            Call::Losing { network, ttl } => {
                if let Some(ttl) = ttl {
                    if self.losing.len() < MAX_LOSING || self.losing.contains_key(&network) {
                        self.losing
                            .insert(network, tokio::time::Instant::now() + ttl);
                    } else {
                        self.events.warn(format!(
                            "network_losing: {MAX_LOSING} networks are losing already; network {} \
                             waits for network_lost",
                            network.0
                        ));
                    }
                }
                self.hint(ConnectivityHint::Losing { network }, "network_losing");
            }
            Call::Lifecycle(lifecycle) => {
                self.power.lifecycle = lifecycle.into();
                self.power();
            }
            Call::Battery(battery) => {
                self.power.battery = battery.level;
                self.power.charging = battery.charging;
                self.power.power_save = battery.power_save;
                self.power();
            }
            Call::Import(memory) => import(&mut self.swarm, &memory, &mut self.events),
            Call::Export(reply) => {
                let _ = reply.send(md.export_memory().to_bytes());
            }
        }
    }

    fn swarm_event(&mut self, event: SwarmEvent<MobileEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                // Announced to the drivers (rendezvous registrations carry
                // it); behind NAT it is a private address that only peers
                // on the same network reach.
                self.swarm.add_external_address(address.clone());
                let text = address.to_string();
                {
                    let mut shared = lock(&self.shared);
                    if shared.listening.len() < MAX_LISTEN_ADDRS {
                        shared.listening.push(text.clone());
                    }
                }
                self.events.emit(NodeEvent::Listening { addr: text });
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.swarm.remove_external_address(&address);
                let text = address.to_string();
                lock(&self.shared).listening.retain(|a| *a != text);
            }
            SwarmEvent::ListenerClosed {
                addresses,
                reason: Err(e),
                ..
            } => {
                let addrs: Vec<String> = addresses.iter().map(ToString::to_string).collect();
                self.events
                    .warn(format!("stopped listening on {addrs:?}: {e}"));
            }
            SwarmEvent::ListenerError { error, .. } => {
                self.events.warn(format!("a listener failed: {error}"));
            }
            SwarmEvent::Behaviour(MobileEvent::Multidriver(event)) => self.engine_event(event),
            SwarmEvent::Behaviour(MobileEvent::Messages(event)) => self.message_event(event),
            _ => {}
        }
    }

    fn route_info(
        &self,
        peer: PeerId,
        addr: &Multiaddr,
        interface: multidriver::InterfaceId,
        cost: Option<Components>,
        dialled: bool,
    ) -> RouteInfo {
        let md = &self.swarm.behaviour().multidriver;
        let medium = md.interface_medium(interface).to_string();
        let (cost_ms, latency_ms, energy_ms, reliability_ms, explanation) = match cost {
            Some(c) => (
                c.total_ms(),
                c.latency_ms,
                c.energy_ms,
                c.reliability_ms,
                explain(&c),
            ),
            None => {
                let total = md
                    .ranked_routes(&peer)
                    .into_iter()
                    .find(|(a, _, _)| a == addr)
                    .map_or(0.0, |(_, _, cost)| cost);
                (total, 0.0, 0.0, 0.0, format!("cost {total:.1} ms"))
            }
        };
        RouteInfo {
            peer: peer.to_base58(),
            addr: addr.to_string(),
            medium,
            dialled,
            cost_ms,
            latency_ms,
            energy_ms,
            reliability_ms,
            explanation: if dialled {
                explanation
            } else {
                "they dialled us: no cost of ours".to_owned()
            },
        }
    }

    fn engine_event(&mut self, event: Event) {
        let out = match event {
            Event::PeerDiscovered { peer, source } => NodeEvent::PeerDiscovered {
                peer: peer.to_base58(),
                source: source.to_string(),
            },
            Event::RouteSelected {
                peer,
                addr,
                interface,
                reason,
                ..
            } => {
                let dialled = reason.total_ms() > 0.0;
                let route = self.route_info(peer, &addr, interface, Some(reason), dialled);
                lock(&self.shared).routes.insert(peer, route.clone());
                NodeEvent::RouteSelected { route }
            }
            Event::RouteSwitched {
                peer,
                from,
                to,
                interface,
                reason,
                ..
            } => {
                let cost = match reason {
                    SwitchReason::Better { to, .. } => Some(to),
                    _ => None,
                };
                let route = self.route_info(peer, &to, interface, cost, true);
                lock(&self.shared).routes.insert(peer, route.clone());
                NodeEvent::RouteSwitched {
                    from: from.to_string(),
                    route,
                    reason: reason.label().to_owned(),
                }
            }
            Event::PeerDisconnected { peer } => {
                lock(&self.shared).routes.remove(&peer);
                NodeEvent::PeerLost {
                    peer: peer.to_base58(),
                }
            }
            // A connected peer whose every route failed (its only network
            // went) was reported disconnected just before (the engine's
            // `PeerDisconnected`), so the host's view of who is connected
            // follows the events alone.
            Event::PeerUnreachable { peer, tried } => {
                lock(&self.shared).routes.remove(&peer);
                NodeEvent::PeerUnreachable {
                    peer: peer.to_base58(),
                    tried: u32::try_from(tried).unwrap_or(u32::MAX),
                }
            }
            Event::DriverHealthChanged {
                driver,
                healthy: false,
                consecutive_failures,
                ..
            } => NodeEvent::Warning {
                text: format!(
                    "discovery driver {driver:?} failed {consecutive_failures} times in a row; \
                     it backs off"
                ),
            },
            Event::EventsDropped { count } => NodeEvent::Warning {
                text: format!("the engine dropped {count} events"),
            },
            _ => return,
        };
        self.events.emit(out);
    }

    /// Puts one message on the wire; the peer's outbox entry exists and
    /// nothing else is in flight to it.
    fn send_now(&mut self, peer: PeerId, id: u64, data: Vec<u8>) {
        let request = self
            .swarm
            .behaviour_mut()
            .messages
            .send_request(&peer, data);
        self.in_flight.insert(request, (peer, id));
    }

    /// The message to `peer` in flight was answered or failed: one is
    /// gone from the count, and the next one waiting (if any) goes.
    fn send_next(&mut self, peer: PeerId) {
        self.unacknowledged = self.unacknowledged.saturating_sub(1);
        let next = match self.outbox.get_mut(&peer) {
            Some(queue) => queue.pop_front(),
            None => None,
        };
        match next {
            Some((id, data)) => self.send_now(peer, id, data),
            None => {
                self.outbox.remove(&peer);
            }
        }
    }

    fn message_event(&mut self, event: request_response::Event<Vec<u8>, ()>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                self.swarm.behaviour_mut().multidriver.mark_used(peer);
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .messages
                    .send_response(channel, ());
                self.events.emit(NodeEvent::MessageReceived {
                    peer: peer.to_base58(),
                    data: request,
                });
            }
            request_response::Event::Message {
                message: request_response::Message::Response { request_id, .. },
                ..
            } => {
                if let Some((peer, id)) = self.in_flight.remove(&request_id) {
                    self.events.emit(NodeEvent::MessageDelivered {
                        peer: peer.to_base58(),
                        id,
                    });
                    self.send_next(peer);
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((peer, id)) = self.in_flight.remove(&request_id) {
                    self.events.emit(NodeEvent::MessageFailed {
                        peer: peer.to_base58(),
                        id,
                        reason: error.to_string(),
                    });
                    self.send_next(peer);
                }
            }
            _ => {}
        }
    }
}
