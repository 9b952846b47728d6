//! Routes through NATs: relayed routes (`/p2p-circuit` through a relay the
//! peer holds a reservation on) beside direct ones, hole-punched
//! connections that replace a relayed one, and a per-peer memory of failed
//! hole punches.
//!
//! - **Relay first when direct is unproven.** Unless a direct route the
//!   race can dial now has connected before (and always when the race
//!   recovers a lost connection: the peer may have moved), a race starts
//!   the peer's best relayed routes through up to [`RELAYS_AHEAD`]
//!   different relays at once beside the first direct attempt (instead of
//!   after the stagger),
//!   so that when the peer sits behind a NAT the time to a first
//!   connection is the relay's. Scoring keeps the relay the fallback: its
//!   doubled RTT prior and its circuit limits rank it below a direct route
//!   that works.
//! - **Hole punched.** The adapter reports a direct connection that a hole
//!   punch (DCUtR) opened with [`Engine::handle_hole_punched`]; a peer on a
//!   relayed connection moves to it make-before-break and the circuit is
//!   closed after [`Config::close_grace`](crate::Config::close_grace).
//! - **Failed punches back off.** [`Engine::handle_hole_punch_failed`]
//!   remembers the failure per peer and local interface (each attachment
//!   has its own NAT): while it lasts, the peer's direct internet routes
//!   through that interface are held back as long as a relayed route is
//!   dialable, so neither races nor upgrades dial into a NAT that refused,
//!   in a loop. The wait starts at [`PUNCH_BACKOFF_BASE`] and doubles with
//!   each failure in a row up to [`PUNCH_BACKOFF_MAX`]; a punch that
//!   succeeds, or the interface attaching to another network, forgets it.

use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::{Medium, Route, Scope, Timestamp};

use crate::{
    CloseReason, Conn, ConnectionHandle, Engine, Error, Event, InterfaceId, Peer, RouteMeta,
    RouteNo, SwitchReason,
};

/// How long direct routes through an interface are held back after the
/// first failed hole punch to a peer. DCUtR itself tries three times per
/// relayed connection (libp2p-dcutr `MAX_NUMBER_OF_UPGRADE_ATTEMPTS`);
/// ours: one relay circuit's lifetime (2 min, the relay default) would let
/// every new circuit punch again, so wait a little less than that first.
pub const PUNCH_BACKOFF_BASE: Duration = Duration::from_secs(60);

/// The longest such wait. Ours: a NAT that refused for an hour is tried
/// again hourly.
pub const PUNCH_BACKOFF_MAX: Duration = Duration::from_secs(60 * 60);

impl Engine {
    /// A hole punch (DCUtR) opened a direct connection to `peer` from the
    /// address `addr` over `interface`, whichever side dialled it. It
    /// becomes the peer's primary connection if the peer had none, or
    /// replaces a relayed primary make-before-break ([`Event::RouteSwitched`]
    /// with [`SwitchReason::HolePunched`]; the circuit closes after
    /// [`Config::close_grace`](crate::Config::close_grace)). Beside a direct
    /// primary it is a duplicate and is closed. The peer's hole-punch
    /// backoff over `interface` is forgotten.
    ///
    /// # Errors
    /// [`Error::UnknownInterface`] for an interface never reported up;
    /// [`Error::TableFull`] when the connection or peer table is full (the
    /// adapter should close the connection).
    pub fn handle_hole_punched(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        interface: InterfaceId,
        now: Timestamp,
    ) -> Result<ConnectionHandle, Error> {
        self.admit_connection(peer, interface, now)?;
        let p = self.peers.get_mut(&peer).expect("admitted above");
        p.punch_backoff.remove(&interface);
        // The route it came over, if the peer's routes have it over this
        // interface. Not a dial success: only a coordinated punch reaches
        // it, so a plain dial of it later stays unproven (and the relay
        // keeps starting beside it).
        let route = p
            .routes
            .iter()
            .zip(&p.meta)
            .position(|(r, m)| r.id.addr == addr && m.interface == interface)
            .map(|i| {
                p.routes[i].rtt.on_success();
                p.meta[i].no
            });
        let connection = self.new_id();
        self.connections.insert(
            connection,
            Conn::new(peer, route, addr.clone(), interface, now),
        );
        self.punched(peer, connection, addr, interface, route, now);
        Ok(connection)
    }

    /// A connection already reported with [`Engine::handle_inbound`] turned
    /// out to be a hole punch's (the side that took the punch in through
    /// its listener): as [`Engine::handle_hole_punched`], for that
    /// connection. Unknown connections are ignored.
    pub fn handle_hole_punched_inbound(&mut self, connection: ConnectionHandle, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(c) = self.connections.get(&connection) else {
            return;
        };
        let (peer, addr, interface, route) = (c.peer, c.addr.clone(), c.interface, c.route);
        if let Some(p) = self.peers.get_mut(&peer) {
            p.punch_backoff.remove(&interface);
            if p.primary == Some(connection) {
                return;
            }
        }
        self.punched(peer, connection, addr, interface, route, now);
    }

    /// Makes the punched `connection` the peer's primary if it had none or
    /// a relayed one, else closes it as a duplicate.
    fn punched(
        &mut self,
        peer: PeerId,
        connection: ConnectionHandle,
        addr: Multiaddr,
        interface: InterfaceId,
        route: Option<RouteNo>,
        now: Timestamp,
    ) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let relayed_primary = p
            .primary
            .and_then(|c| self.connections.get(&c))
            .filter(|c| is_relayed(&c.addr))
            .map(|c| (p.primary.expect("checked"), c.addr.clone()));
        match (p.primary, relayed_primary) {
            (None, _) => {
                p.primary = Some(connection);
                self.cancel_race(peer);
                let reason = route
                    .map(|no| self.components_of(peer, no, now))
                    .unwrap_or_default();
                self.announce_primary(peer, connection, addr, interface, reason);
            }
            (Some(_), Some((old, from))) => {
                p.primary = Some(connection);
                p.race = None;
                p.recheck_at = None;
                self.closing.insert(old, now + self.config.close_grace);
                if let Some(c) = self.connections.get_mut(&old) {
                    // It is on its way out: no probe verdict for it.
                    c.probe_due = None;
                }
                self.push_event(Event::RouteSwitched {
                    peer,
                    from,
                    to: addr,
                    connection,
                    interface,
                    reason: SwitchReason::HolePunched,
                });
                self.cancel_race_attempts(peer, None);
            }
            (Some(_), None) => self.close(connection, CloseReason::Duplicate),
        }
        // Attempts it cancelled free room for races waiting on capacity.
        self.release_capacity(now);
        self.refresh_wake(peer, now);
        self.trim(now);
        self.schedule_keepalive(now);
    }

    /// A hole punch to `peer` over `interface` failed (every DCUtR attempt
    /// of one relayed connection). The peer's direct internet routes
    /// through `interface` are held back while a relayed route is dialable,
    /// for [`PUNCH_BACKOFF_BASE`] doubling with each failure in a row up to
    /// [`PUNCH_BACKOFF_MAX`]; a punch that succeeds, or the interface
    /// attaching to another network, forgets it. Unknown peers
    /// are ignored.
    pub fn handle_hole_punch_failed(
        &mut self,
        peer: PeerId,
        interface: InterfaceId,
        now: Timestamp,
    ) {
        self.last_now = self.last_now.max(now);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let failures = p.punch_backoff.get(&interface).map_or(0, |(n, _)| *n) + 1;
        let wait = PUNCH_BACKOFF_BASE
            .saturating_mul(1 << (failures - 1).min(16))
            .min(PUNCH_BACKOFF_MAX);
        p.punch_backoff.insert(interface, (failures, now + wait));
        // An upgrade race toward a direct route already in flight goes on;
        // nothing new starts through the interface until the wait is over.
        self.refresh_wake(peer, now);
    }

    /// When the peer's hole-punch backoff over `interface` ends, if it is
    /// in force at `now`.
    pub fn hole_punch_backoff(
        &self,
        peer: &PeerId,
        interface: InterfaceId,
        now: Timestamp,
    ) -> Option<Timestamp> {
        self.peers
            .get(peer)?
            .punch_backoff
            .get(&interface)
            .map(|(_, until)| *until)
            .filter(|until| *until > now)
    }

    /// Whether a route of `peer` is held back by a failed hole punch: a
    /// direct internet route through an interface in backoff, while the
    /// peer has a dialable relayed route.
    pub(crate) fn held_back(
        &self,
        peer: &Peer,
        route: &Route,
        meta: &RouteMeta,
        now: Timestamp,
    ) -> bool {
        let backing_off = peer
            .punch_backoff
            .get(&meta.interface)
            .is_some_and(|(_, until)| *until > now);
        backing_off
            && route.medium != Medium::Relay
            && Scope::of(&route.id.addr) == Scope::Internet
            && peer
                .routes
                .iter()
                .zip(&peer.meta)
                .any(|(r, m)| r.medium == Medium::Relay && self.dialable(r, m, now))
    }

    /// Whether one of these routes (a race's candidates: dialable now) is
    /// direct and has connected before: then the peer is reachable that way
    /// and a race dials routes in rank order; otherwise a relayed route
    /// starts beside the first direct attempt. A LAN route that worked says
    /// nothing once it cannot be dialled (Wi-Fi gone): the peer's internet
    /// routes may sit behind its NAT.
    pub(crate) fn direct_proven(peer: &Peer, candidates: impl Iterator<Item = RouteNo>) -> bool {
        candidates
            .filter_map(|no| peer.index_of(no))
            .any(|i| peer.routes[i].medium != Medium::Relay && peer.routes[i].dials.successes() > 0)
    }

    /// Whether route `no` of a peer whose primary connection is relayed is
    /// left to hole punching rather than upgraded to: a direct internet
    /// route that never connected is most likely behind the peer's NAT,
    /// where only a coordinated punch (DCUtR, on the relayed connection)
    /// gets through; dialling it as an upgrade, again at every recheck,
    /// would only time out, waking a radio each time. LAN routes and routes
    /// that worked before are upgraded to as usual.
    pub(crate) fn left_to_dcutr(&self, peer: &Peer, no: RouteNo) -> bool {
        let relayed_primary = peer
            .primary
            .and_then(|c| self.connections.get(&c))
            .is_some_and(|c| is_relayed(&c.addr));
        relayed_primary
            && peer.index_of(no).is_some_and(|i| {
                let r = &peer.routes[i];
                r.medium != Medium::Relay
                    && Scope::of(&r.id.addr) == Scope::Internet
                    && r.dials.successes() == 0
            })
    }

    /// An interface attached to another network: its NAT is another one,
    /// so failed punches through it are forgotten.
    pub(crate) fn forget_punches_on(&mut self, interface: InterfaceId) {
        for p in self.peers.values_mut() {
            p.punch_backoff.remove(&interface);
        }
    }
}

/// How many relayed routes, each through another relay, a race starts
/// ahead of their turn while the peer's direct routes are unproven. Ours:
/// one relay that is down (its reservations stale in the peer's records)
/// would otherwise cost a whole dial timeout before the next is tried.
pub const RELAYS_AHEAD: usize = 2;

/// The relay of a relayed address: its peer id (the `/p2p` before
/// `/p2p-circuit`), so that one relay's TCP and QUIC addresses are one
/// relay; everything before `/p2p-circuit` when it names no peer. `None`
/// for a direct address.
pub(crate) fn relay_of(addr: &Multiaddr) -> Option<Multiaddr> {
    let mut relay = Multiaddr::empty();
    let mut id = None;
    for p in addr.iter() {
        match p {
            multiaddr::Protocol::P2pCircuit => {
                return Some(id.map_or(relay, |id| Multiaddr::empty().with(id)));
            }
            multiaddr::Protocol::P2p(_) => id = Some(p.clone()),
            _ => {}
        }
        relay.push(p);
    }
    None
}

/// Whether an address goes through a relay.
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, multiaddr::Protocol::P2pCircuit))
}
