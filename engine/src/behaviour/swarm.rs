//! The `NetworkBehaviour` implementation: connections as the swarm sees
//! them, mapped to the engine's handles, and the poll loop.

use std::task::{Context, Poll};

use futures::FutureExt;
use futures_timer::Delay;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionId as SwarmConnectionId, FromSwarm,
    NetworkBehaviour, THandler, THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::counters::medium_label;
use super::reach::is_relayed;
use super::{Action, Behaviour, DriverSet, Event, Handler, Untracked, handler};

/// Whether a connection's end says its path failed (a timeout, a reset, an
/// unreachable network) rather than that someone closed it: only a failure
/// penalises the other routes to the host. A remote's deliberate close
/// reaches us as an I/O error too, of another kind. Muxers wrap their
/// errors (`StreamMuxerBox` makes every one `io::Error::other`), so the
/// whole chain is searched: an I/O error of a failure kind at any depth, or
/// an error that says it timed out (quinn's idle timeout has no I/O kind).
pub(crate) fn is_loss(cause: Option<&libp2p::swarm::ConnectionError>) -> bool {
    use std::io::ErrorKind as K;
    let Some(libp2p::swarm::ConnectionError::IO(e)) = cause else {
        return false;
    };
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    // Bounded: error chains are a few links deep.
    for _ in 0..16 {
        let Some(err) = current else {
            return false;
        };
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                K::TimedOut
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::BrokenPipe
                    | K::HostUnreachable
                    | K::NetworkUnreachable
                    | K::NetworkDown
            ) {
                return true;
            }
            if let Some(inner) = io.get_ref() {
                current = Some(inner);
                continue;
            }
        }
        if err.to_string().to_ascii_lowercase().contains("timed out") {
            return true;
        }
        current = err.source();
    }
    false
}

impl<D: DriverSet> NetworkBehaviour for Behaviour<D> {
    type ConnectionHandler = Handler<D>;
    type ToSwarm = Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: SwarmConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.drivers
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: SwarmConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.drivers.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        Ok(
            handler::Handler::new(false, self.config.probe_timeout, self.config.answer_ping)
                .select(inner),
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: SwarmConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let theirs = self.drivers.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )?;
        if self.dials.contains_key(&connection_id) {
            // The engine's own dial: exactly the address it chose.
            return Ok(Vec::new());
        }
        let Some(peer) = maybe_peer else {
            return Ok(theirs);
        };
        let mut ours: Vec<Multiaddr> = self
            .engine
            .ranked_routes(&peer, self.now())
            .into_iter()
            .map(|(a, _, _)| a)
            .collect();
        for a in theirs {
            if !ours.contains(&a) {
                ours.push(a);
            }
        }
        Ok(ours)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: SwarmConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let inner = self.drivers.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        let ours = self.dials.contains_key(&connection_id);
        let handler =
            handler::Handler::new(ours, self.config.probe_timeout, self.config.answer_ping);
        // Circuits are not relays to reserve on.
        let handler = if cfg!(feature = "relay") && !is_relayed(addr) {
            handler.with_dialled(addr)
        } else {
            handler
        };
        Ok(handler.select(inner))
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        self.drivers.on_swarm_event(event);
        let now = self.now();
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if let Some(dial) = self.dials.remove(&e.connection_id) {
                    let medium = medium_label(dial.medium);
                    metrics::counter!("multidriver_dials_total", "outcome" => "success", "medium" => medium)
                        .increment(1);
                    metrics::histogram!("multidriver_dial_duration_seconds", "medium" => medium)
                        .record(dial.started.elapsed().as_secs_f64());
                    self.track(e.connection_id, dial.engine, e.peer_id);
                    self.engine.handle_dial_succeeded(dial.engine, now);
                } else if let ConnectedPoint::Dialer { address, .. } = e.endpoint {
                    // Another behaviour's dial (a hole punch's, say) to a
                    // peer the engine knows or wants: remembered so that a
                    // punch can be handed over (`handle_dcutr_event`).
                    if self.engine.wants(&e.peer_id) || self.engine.route_count(&e.peer_id) > 0 {
                        if self.unordered.len() < self.config.engine.max_connections() {
                            self.unordered
                                .insert(e.connection_id, (e.peer_id, address.clone()));
                        } else {
                            tracing::debug!(target: "multidriver", peer = %e.peer_id, "unordered outbound connection not remembered: table full");
                        }
                    }
                } else if let ConnectedPoint::Listener {
                    local_addr,
                    send_back_addr,
                } = e.endpoint
                {
                    // Only peers the engine knows or wants: a DHT neighbour
                    // querying us is not held open or probed. Others wait
                    // (bounded) until the app wants them or a route appears.
                    if self.engine.wants(&e.peer_id) || self.engine.route_count(&e.peer_id) > 0 {
                        self.track_inbound(
                            e.connection_id,
                            e.peer_id,
                            local_addr,
                            send_back_addr.clone(),
                            now,
                        );
                    } else if self.untracked.len() < self.config.engine.max_connections() {
                        self.untracked.insert(
                            e.connection_id,
                            Untracked {
                                peer: e.peer_id,
                                local: local_addr.clone(),
                                remote: send_back_addr.clone(),
                            },
                        );
                    }
                }
            }
            // The swarm repeats confirmations (every AutoNAT success):
            // registrations are renewed only when the set changed.
            FromSwarm::ExternalAddrConfirmed(_) | FromSwarm::ExternalAddrExpired(_)
                if self.external.on_swarm_event(&event) =>
            {
                self.engine.handle_local_addresses_changed(now);
            }
            FromSwarm::NewListenAddr(l) => self.on_new_listen_addr(l.listener_id, l.addr),
            FromSwarm::ListenerError(l) => {
                // The swarm refuses a listener no transport supports (a
                // relayed one without the relay client) with this error.
                let unsupported = matches!(
                    l.err
                        .downcast_ref::<libp2p::TransportError<std::io::Error>>(),
                    Some(libp2p::TransportError::MultiaddrNotSupported(_))
                );
                self.on_listener_gone(l.listener_id, l.err, unsupported);
            }
            FromSwarm::ListenerClosed(l) => match l.reason {
                Ok(()) => self.on_listener_gone(l.listener_id, &"closed", false),
                Err(e) => self.on_listener_gone(l.listener_id, e, false),
            },
            FromSwarm::DialFailure(f) => {
                if let Some(dial) = self.dials.remove(&f.connection_id) {
                    metrics::counter!("multidriver_dials_total", "outcome" => "failure", "medium" => medium_label(dial.medium))
                        .increment(1);
                    tracing::debug!(target: "multidriver", peer = ?f.peer_id, error = %f.error, engine = %dial.engine, "dial failed");
                    self.engine.handle_dial_failed(dial.engine, now);
                }
            }
            FromSwarm::ConnectionClosed(c) => {
                self.untracked.remove(&c.connection_id);
                self.unordered.remove(&c.connection_id);
                if self.closing.remove(&c.connection_id) {
                    return;
                }
                if let Some(open) = self.open.remove(&c.connection_id) {
                    self.by_engine.remove(&open.engine);
                    tracing::debug!(target: "multidriver", peer = %open.peer, engine = %open.engine, cause = ?c.cause, "connection closed");
                    if is_loss(c.cause) {
                        self.engine.handle_connection_lost(open.engine, now);
                    } else {
                        self.engine.handle_connection_closed(open.engine, now);
                    }
                }
            }
            _ => {}
        }
        self.wake();
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: SwarmConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            either::Either::Left(handler::Out::RelayServer(addr)) => {
                self.on_relay_server(peer_id, addr);
            }
            either::Either::Left(out) => {
                let Some(open) = self.open.get(&connection_id).copied() else {
                    return;
                };
                match out {
                    handler::Out::Rtt(rtt) => {
                        metrics::counter!("multidriver_probes_total", "outcome" => "answered")
                            .increment(1);
                        let now = self.now();
                        self.engine.handle_rtt_sample(open.engine, rtt, now);
                    }
                    handler::Out::Unsupported => {
                        metrics::counter!("multidriver_probes_total", "outcome" => "unsupported")
                            .increment(1);
                        let now = self.now();
                        self.engine.handle_probe_unsupported(open.engine, now);
                        tracing::debug!(target: "multidriver", peer = %peer_id, "peer does not answer pings: liveness cannot be measured");
                    }
                    handler::Out::Failed(reason) => {
                        metrics::counter!("multidriver_probes_total", "outcome" => "failed")
                            .increment(1);
                        tracing::debug!(target: "multidriver", peer = %peer_id, %reason, "probe failed");
                    }
                    handler::Out::RelayServer(_) => unreachable!("taken above"),
                }
            }
            either::Either::Right(inner) => {
                self.drivers
                    .on_connection_handler_event(peer_id, connection_id, inner)
            }
        }
        self.wake();
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Action<D>> {
        self.waker = Some(cx.waker().clone());
        self.poll_interfaces(cx);
        // Bounded: a few rounds of timer, drivers and engine per call.
        for _ in 0..16 {
            if let Some(action) = self.actions.pop_front() {
                return Poll::Ready(action);
            }
            if let Some(event) = self.engine.poll_event() {
                self.on_event(&event);
                let by_engine = &self.by_engine;
                match event.map_connection(|h| by_engine.get(&h).map(|(c, _)| *c)) {
                    Some(event) => return Poll::Ready(ToSwarm::GenerateEvent(event)),
                    // Its connection closed in between; the engine's next
                    // event about the peer says what became of it.
                    None => continue,
                }
            }
            match self.drivers.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(e)) => {
                    self.on_driver_event(e);
                    continue;
                }
                Poll::Ready(other) => {
                    return Poll::Ready(
                        other
                            .map_in(either::Either::Right)
                            .map_out(|_| unreachable!("driver events are taken above")),
                    );
                }
                Poll::Pending => {}
            }
            let now = self.now();
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
            }
            let mut progressed = false;
            while self.actions.len() < self.config.max_pending_actions {
                let Some(command) = self.engine.poll_command() else {
                    break;
                };
                self.on_command(command);
                progressed = true;
            }
            if progressed || self.engine.pending_events() > 0 || !self.actions.is_empty() {
                continue;
            }
            // Idle: arm the timer for the engine's next deadline.
            let Some(deadline) = self.engine.poll_timeout() else {
                self.timer = None;
                return Poll::Pending;
            };
            if self.timer.as_ref().is_none_or(|(at, _)| *at != deadline) {
                let wait = deadline.saturating_duration_since(now);
                self.timer = Some((deadline, Delay::new(wait)));
            }
            if let Some((_, delay)) = self.timer.as_mut()
                && delay.poll_unpin(cx).is_pending()
            {
                return Poll::Pending;
            }
            self.timer = None;
        }
        // More work than one call should do: come back at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use libp2p::swarm::ConnectionError;

    use super::is_loss;

    #[test]
    fn losses_are_found_however_deep_the_muxer_wrapped_them() {
        let wrapped = |e: io::Error| ConnectionError::IO(io::Error::other(io::Error::other(e)));
        assert!(is_loss(Some(&wrapped(io::ErrorKind::BrokenPipe.into()))));
        assert!(is_loss(Some(&wrapped(
            io::ErrorKind::ConnectionReset.into()
        ))));
        assert!(is_loss(Some(&ConnectionError::IO(io::Error::other(
            "connection timed out (idle)"
        )))));
        // A deliberate close, an idle timeout of our own, nothing at all.
        assert!(!is_loss(Some(&wrapped(io::Error::other(
            "connection is closed"
        )))));
        assert!(!is_loss(Some(&ConnectionError::KeepAliveTimeout)));
        assert!(!is_loss(None));
    }
}
