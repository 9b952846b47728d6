//! Connections: dial outcomes, RTT samples, losses and closes, inbound
//! connections, and which connection is a peer's primary.

use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::Timestamp;
use multidriver_scoring::rank::Components;

use crate::peers::host_of;
use crate::{
    CloseReason, Command, Conn, ConnectionHandle, Engine, Error, Event, InterfaceId, Purpose,
    SwitchReason,
};

impl Engine {
    /// A dial succeeded `now`; the time since the dial command gives an RTT
    /// sample (elapsed ÷ the transport's handshake round trips).
    pub fn handle_dial_succeeded(&mut self, connection: ConnectionHandle, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(attempt) = self.attempts.remove(&connection) else {
            // A dial we cancelled or timed out still connected: the adapter
            // holds a connection nobody wants.
            self.commands.push(Command::CloseConnection {
                connection,
                reason: CloseReason::Duplicate,
            });
            return;
        };
        let peer_id = attempt.peer;
        let keep_backup = self.profile.racing.keep_warm_backup;
        let Some(i) = self
            .peers
            .get(&peer_id)
            .and_then(|p| p.index_of(attempt.route))
        else {
            // The peer or route is gone: nobody wants this connection.
            self.commands.push(Command::CloseConnection {
                connection,
                reason: CloseReason::Duplicate,
            });
            self.release_capacity(now);
            return;
        };
        let peer = self.peers.get_mut(&peer_id).expect("looked up above");
        let route = &mut peer.routes[i];
        route.dials.record_success();
        route.rtt.on_success();
        let elapsed = now.saturating_duration_since(attempt.started);
        route
            .rtt
            .on_handshake_sample(elapsed / route.transport.handshake_round_trips().max(1));
        let addr = route.id.addr.clone();
        let interface = peer.meta[i].interface;
        self.connections.insert(
            connection,
            Conn::new(peer_id, Some(attempt.route), addr.clone(), interface, now),
        );
        let peer = self.peers.get_mut(&peer_id).expect("looked up above");
        // Only one of the race's own attempts can win it; a kept backup dial
        // that lands meanwhile is a straggler.
        let purpose = peer.race.as_mut().and_then(|r| {
            let mine = r.in_flight.contains(&connection);
            r.in_flight.retain(|c| *c != connection);
            mine.then_some(r.purpose)
        });
        match (purpose, peer.primary) {
            (Some(Purpose::Upgrade { reason, .. }), Some(old)) => {
                peer.primary = Some(connection);
                peer.race = None;
                peer.recheck_at = None;
                let from = self
                    .connections
                    .get(&old)
                    .map(|c| c.addr.clone())
                    .unwrap_or_else(|| addr.clone());
                self.closing.insert(old, now + self.config.close_grace);
                // It is on its way out: no probe verdict for it.
                if let Some(c) = self.connections.get_mut(&old) {
                    c.probe_due = None;
                }
                self.push_event(Event::RouteSwitched {
                    peer: peer_id,
                    from,
                    to: addr,
                    connection,
                    interface,
                    reason,
                });
                self.cancel_race_attempts(peer_id, None);
            }
            (_, None) => {
                peer.primary = Some(connection);
                peer.race = None;
                let reason = self.components_of(peer_id, attempt.route, now);
                self.announce_primary(peer_id, connection, addr, interface, reason);
                // Keep one runner-up dialling as a warm backup if asked.
                let keep = if keep_backup {
                    self.attempts
                        .iter()
                        .find(|(_, a)| a.peer == peer_id)
                        .map(|(id, _)| *id)
                } else {
                    None
                };
                self.cancel_race_attempts(peer_id, keep);
            }
            (_, Some(_)) => {
                // A straggler of a finished race, or a connection for an
                // upgrade that lost its primary meanwhile.
                if keep_backup && peer.backup.is_none() {
                    peer.backup = Some(connection);
                } else {
                    self.close(connection, CloseReason::Duplicate);
                }
            }
        }
        self.release_capacity(now);
        self.refresh_wake(peer_id, now);
        self.trim(now);
        self.schedule_keepalive(now);
    }

    /// A dial failed: the route is penalised and the race moves on at once
    /// (fast-forward).
    pub fn handle_dial_failed(&mut self, connection: ConnectionHandle, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(attempt) = self.attempts.remove(&connection) else {
            return;
        };
        self.record_failure(&attempt, connection, now);
        self.release_capacity(now);
    }

    /// The remote of `connection` does not speak the probe protocol: no
    /// probe is sent on it any more and an unanswered one is forgiven, so
    /// liveness does not close a healthy connection to a peer without
    /// ping. Its failure is then noticed by the transport alone.
    pub fn handle_probe_unsupported(&mut self, connection: ConnectionHandle, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        if let Some(c) = self.connections.get_mut(&connection) {
            c.unprobeable = true;
            c.probe_due = None;
        }
        self.next_probe_due = self.connections.values().filter_map(|c| c.probe_due).min();
    }

    /// An RTT measurement on an open connection (a ping, a QUIC RTT
    /// estimate); it may trigger an upgrade to a better route.
    pub fn handle_rtt_sample(
        &mut self,
        connection: ConnectionHandle,
        rtt: Duration,
        now: Timestamp,
    ) {
        self.last_now = self.last_now.max(now);
        let Some(conn) = self.connections.get_mut(&connection) else {
            return;
        };
        conn.last_traffic = conn.last_traffic.max(now);
        conn.probe_due = None;
        let (peer_id, route) = (conn.peer, conn.route);
        if let (Some(peer), Some(no)) = (self.peers.get_mut(&peer_id), route)
            && let Some(i) = peer.index_of(no)
        {
            peer.routes[i].rtt.on_sample(rtt);
        }
        self.progress(peer_id, now);
    }

    /// A connection stopped answering: a keep-alive or an idle timeout
    /// killed it, rather than a close by either side. Like
    /// [`handle_connection_closed`](Self::handle_connection_closed), and in
    /// addition its route and every other route to the same host address
    /// over the same local interface count a failure (the RTT estimator's
    /// decaying penalty), so the re-race tries the peer's other addresses
    /// first instead of waiting for dials to a host that just went dark to
    /// time out. Routes over other interfaces are left alone: when the local
    /// link is what died, they are the way out. A relayed connection's end
    /// penalises nothing: relays cut circuits at their duration and byte
    /// limits by design (scoring already counts those cuts), and a relay
    /// that went down shows in the failed redial.
    pub fn handle_connection_lost(&mut self, connection: ConnectionHandle, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        if !self
            .connections
            .get(&connection)
            .is_some_and(|c| crate::nat::is_relayed(&c.addr))
        {
            self.penalise_host(connection, now);
        }
        self.handle_connection_closed(connection, now);
    }

    /// Counts a failure on every route to `connection`'s host over its
    /// interface (see [`handle_connection_lost`](Self::handle_connection_lost)).
    pub(crate) fn penalise_host(&mut self, connection: ConnectionHandle, now: Timestamp) {
        if let Some(peer) = self.connections.get(&connection).map(|c| c.peer) {
            self.schedule_recheck(peer, now);
        }
        if let Some(conn) = self.connections.get(&connection)
            && let Some(peer) = self.peers.get_mut(&conn.peer)
        {
            let host = host_of(&conn.addr);
            for (route, meta) in peer.routes.iter_mut().zip(&peer.meta) {
                let same = meta.interface == conn.interface
                    && match &host {
                        Some(h) => host_of(&route.id.addr).as_ref() == Some(h),
                        None => route.id.addr == conn.addr,
                    };
                if same {
                    route.rtt.on_failure(now);
                }
            }
        }
    }

    /// A connection closed (by the remote, an error, or the adapter).
    pub fn handle_connection_closed(&mut self, connection: ConnectionHandle, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        self.closing.remove(&connection);
        let Some(conn) = self.connections.remove(&connection) else {
            return;
        };
        self.lost_connection(
            conn.peer,
            connection,
            conn.addr,
            SwitchReason::ConnectionClosed,
            now,
        );
        self.release_capacity(now);
    }

    /// A peer connected to us. It becomes the peer's primary connection if
    /// it has none. Open connections plus dials in flight never exceed
    /// [`Config::max_connections`](crate::Config::max_connections).
    ///
    /// # Errors
    /// [`Error::UnknownInterface`], or [`Error::TableFull`] when the peer or
    /// connection table is full; the adapter should close the connection.
    pub fn handle_inbound(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        interface: InterfaceId,
        now: Timestamp,
    ) -> Result<ConnectionHandle, Error> {
        self.admit_connection(peer, interface, now)?;
        let connection = self.new_id();
        self.connections.insert(
            connection,
            Conn::new(peer, None, addr.clone(), interface, now),
        );
        let p = self.peers.get_mut(&peer).expect("ensured above");
        p.dormant = false;
        if p.primary.is_none() {
            p.primary = Some(connection);
            self.cancel_race(peer);
            // An inbound connection has no route of ours, hence no cost
            // components to give as the reason.
            self.announce_primary(peer, connection, addr, interface, Components::default());
        }
        self.refresh_wake(peer, now);
        self.trim(now);
        self.schedule_keepalive(now);
        Ok(connection)
    }

    /// Checks that a connection the engine did not dial (inbound, or a
    /// hole punch's) may be taken: its interface is known and the
    /// connection and peer tables have room (dials in flight hold their
    /// place: they may all succeed). The peer is then known and touched.
    pub(crate) fn admit_connection(
        &mut self,
        peer: PeerId,
        interface: InterfaceId,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        if !self.interfaces.contains_key(&interface) {
            return Err(Error::UnknownInterface(interface));
        }
        if self.connections.len() + self.attempts.len() >= self.config.max_connections {
            return Err(Error::TableFull {
                table: "connections",
                limit: self.config.max_connections,
            });
        }
        self.ensure_peer(peer)?;
        self.touch_peer(peer);
        Ok(())
    }

    /// A peer lost `connection`: promote its backup, or re-race.
    pub(crate) fn lost_connection(
        &mut self,
        peer_id: PeerId,
        connection: ConnectionHandle,
        addr: Multiaddr,
        reason: SwitchReason,
        now: Timestamp,
    ) {
        self.lost_connection_then(peer_id, connection, addr, reason, true, now);
    }

    /// [`lost_connection`](Self::lost_connection); `may_sleep: false`
    /// re-races even a quiet peer at once (a probe found its path dead).
    pub(crate) fn lost_connection_then(
        &mut self,
        peer_id: PeerId,
        connection: ConnectionHandle,
        addr: Multiaddr,
        reason: SwitchReason,
        may_sleep: bool,
        now: Timestamp,
    ) {
        // Our own interface going is seen and acted on at once; any other
        // loss of a quiet peer waits for the app to use the peer again.
        let quiet = may_sleep
            && !matches!(
                reason,
                SwitchReason::InterfaceLost | SwitchReason::InterfaceLosing
            )
            && self.peer_quiet(&peer_id, now);
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        if peer.backup == Some(connection) {
            peer.backup = None;
        }
        if peer.primary != Some(connection) {
            return;
        }
        peer.primary = None;
        if let Some(backup) = peer.backup.take()
            && let Some(b) = self.connections.get(&backup)
        {
            peer.primary = Some(backup);
            let (to, interface) = (b.addr.clone(), b.interface);
            self.push_event(Event::RouteSwitched {
                peer: peer_id,
                from: addr,
                to,
                connection: backup,
                interface,
                reason,
            });
            return;
        }
        if !peer.wanted {
            // Nobody asked to keep this peer connected: no redial.
            peer.lost = None;
            self.cancel_race(peer_id);
            self.push_event(Event::PeerDisconnected { peer: peer_id });
            self.refresh_wake(peer_id, now);
            return;
        }
        // An upgrade in progress becomes the way back.
        if let Some(race) = peer.race.as_mut() {
            race.purpose = Purpose::Connect;
        }
        peer.lost = Some((addr, reason));
        peer.dormant = quiet && peer.race.is_none();
        let wanted = peer.wanted;
        let racing = peer.race.is_some();
        self.progress(peer_id, now);
        let peer = &self.peers[&peer_id];
        if !racing && peer.race.is_none() && peer.primary.is_none() {
            let lost = peer.lost.is_some();
            if let Some(p) = self.peers.get_mut(&peer_id) {
                p.lost = None;
            }
            if lost || !wanted {
                self.push_event(Event::PeerDisconnected { peer: peer_id });
            }
        }
    }

    /// Tells the app that `connection` became the peer's primary: a switch
    /// from the route it lost, or its first route.
    pub(crate) fn announce_primary(
        &mut self,
        peer: PeerId,
        connection: ConnectionHandle,
        addr: Multiaddr,
        interface: InterfaceId,
        reason: Components,
    ) {
        let lost = self.peers.get_mut(&peer).and_then(|p| p.lost.take());
        self.push_event(match lost {
            Some((from, why)) => Event::RouteSwitched {
                peer,
                from,
                to: addr,
                connection,
                interface,
                reason: why,
            },
            None => Event::RouteSelected {
                peer,
                connection,
                addr,
                interface,
                reason,
            },
        });
    }

    pub(crate) fn close(&mut self, connection: ConnectionHandle, reason: CloseReason) {
        self.closing.remove(&connection);
        if self.connections.remove(&connection).is_some() {
            self.commands
                .push(Command::CloseConnection { connection, reason });
        }
    }
}
