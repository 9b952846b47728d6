//! Peers and their routes: what drivers discovered, which peers the app
//! wants, route expiry, and which routes may be dialled now.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::rank::Components;
use multidriver_scoring::{Medium, Route, RouteId, Scope, Timestamp, TransportKind, rank};

use crate::{
    CloseReason, ConnectionHandle, Discovered, Engine, Error, Event, Peer, RouteMeta, RouteNo,
};

impl Engine {
    /// A driver reported a route.
    ///
    /// A route already known (same peer, address and interface) is refreshed:
    /// the source is recorded and the expiry extended. A new route joins a
    /// race in progress in rank order, starts one if the app wants the peer
    /// and it is not connected, or may upgrade a connected peer.
    ///
    /// # Errors
    /// [`Error::UnknownInterface`], [`Error::Scoring`] for an address that
    /// names no transport, or [`Error::TableFull`] when the peer or route
    /// table is full of entries in use; the route is then dropped.
    pub fn handle_discovered(&mut self, d: Discovered, now: Timestamp) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        let medium = self
            .interfaces
            .get(&d.interface)
            .ok_or(Error::UnknownInterface(d.interface))?
            .medium;
        let transport = TransportKind::from_multiaddr(&d.addr).ok_or_else(|| {
            multidriver_scoring::Error::UnknownTransport {
                addr: d.addr.to_string(),
            }
        })?;
        let created = self.ensure_peer(d.peer)?;
        let max_routes = self.config.max_routes_per_peer;
        let expires = now + d.ttl;
        let attempts = &self.attempts;
        let connections = &self.connections;
        let peer = self.peers.get_mut(&d.peer).expect("ensured above");
        match peer
            .routes
            .iter()
            .zip(&peer.meta)
            .position(|(r, m)| r.id.addr == d.addr && m.interface == d.interface)
        {
            Some(i) => {
                peer.routes[i].record_sighting(d.source, d.signed, now);
                peer.meta[i].expires = peer.meta[i].expires.max(expires);
            }
            None => {
                if peer.routes.len() >= max_routes {
                    let in_use = |no: RouteNo| {
                        attempts.values().any(|a| a.peer == d.peer && a.route == no)
                            || connections
                                .values()
                                .any(|c| c.peer == d.peer && c.route == Some(no))
                    };
                    let victim = peer
                        .meta
                        .iter()
                        .enumerate()
                        .filter(|(_, m)| !in_use(m.no))
                        .min_by_key(|(_, m)| (m.expires, m.no))
                        .map(|(i, _)| i);
                    let Some(victim) = victim else {
                        if created {
                            self.peers.remove(&d.peer);
                        }
                        return Err(Error::TableFull {
                            table: "routes",
                            limit: max_routes,
                        });
                    };
                    peer.routes.remove(victim);
                    peer.meta.remove(victim);
                }
                let medium = route_medium(&d.addr, medium);
                let id = RouteId {
                    peer: d.peer,
                    addr: d.addr,
                };
                let mut route = Route::new(id, medium, transport);
                route.record_sighting(d.source, d.signed, now);
                let no = peer.next_route_no;
                peer.next_route_no = peer.next_route_no.wrapping_add(1);
                peer.routes.push(route);
                peer.meta.push(RouteMeta {
                    no,
                    interface: d.interface,
                    expires,
                });
            }
        }
        if created {
            self.push_event(Event::PeerDiscovered {
                peer: d.peer,
                source: d.source,
            });
        }
        self.touch_peer(d.peer);
        self.progress(d.peer, now);
        Ok(())
    }

    /// The app wants `peer` connected, now and after every loss, until
    /// [`disconnect`](Self::disconnect). A peer with no route yet is raced as
    /// soon as one is discovered.
    ///
    /// # Errors
    /// [`Error::TableFull`] if the peer is new and the peer table is full of
    /// peers in use.
    pub fn connect(&mut self, peer: PeerId, now: Timestamp) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        self.ensure_peer(peer)?;
        self.touch_peer(peer);
        let p = self.peers.get_mut(&peer).expect("ensured above");
        p.wanted = true;
        p.dormant = false;
        // Asking for a peer is using it: it is not quiet before the
        // profile's quiet period has passed.
        p.last_used = Some(p.last_used.map_or(now, |t| t.max(now)));
        self.progress(peer, now);
        Ok(())
    }

    /// The app no longer wants `peer`: its race is cancelled and its
    /// connections closed. Its routes are kept until they expire.
    pub fn disconnect(&mut self, peer: PeerId, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        p.wanted = false;
        p.dormant = false;
        p.primary = None;
        p.backup = None;
        p.lost = None;
        self.cancel_race(peer);
        let conns: Vec<ConnectionHandle> = self
            .connections
            .iter()
            .filter(|(_, c)| c.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for c in conns {
            self.close(c, CloseReason::NotWanted);
        }
        self.refresh_wake(peer, now);
        self.release_capacity(now);
    }

    pub(crate) fn touch_peer(&mut self, peer: PeerId) {
        self.touch += 1;
        if let Some(p) = self.peers.get_mut(&peer) {
            p.last_touch = self.touch;
        }
    }

    /// Creates the peer if needed; returns whether it did.
    pub(crate) fn ensure_peer(&mut self, peer: PeerId) -> Result<bool, Error> {
        if self.peers.contains_key(&peer) {
            return Ok(false);
        }
        if self.peers.len() >= self.config.max_peers {
            let victim = self
                .peers
                .iter()
                .filter(|(id, p)| {
                    !p.wanted
                        && p.primary.is_none()
                        && p.backup.is_none()
                        && p.race.is_none()
                        && !self.connections.values().any(|c| c.peer == **id)
                })
                .min_by_key(|(id, p)| (p.last_touch, **id))
                .map(|(id, _)| *id);
            let Some(victim) = victim else {
                return Err(Error::TableFull {
                    table: "peers",
                    limit: self.config.max_peers,
                });
            };
            self.remove_peer(victim);
        }
        self.touch += 1;
        self.peers.insert(peer, Peer::new(self.touch));
        Ok(true)
    }

    pub(crate) fn remove_peer(&mut self, peer: PeerId) {
        self.cancel_race_attempts(peer, None);
        if let Some(p) = self.peers.remove(&peer)
            && let Some(w) = p.wake
        {
            self.wakes.remove(&(w, peer));
        }
        self.blocked.remove(&peer);
    }

    /// Removes expired routes that carry no connection or attempt.
    pub(crate) fn expire_routes(&mut self, peer_id: PeerId, now: Timestamp) {
        let attempts = &self.attempts;
        let connections = &self.connections;
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        let mut i = 0;
        while i < peer.meta.len() {
            let no = peer.meta[i].no;
            let in_use = attempts
                .values()
                .any(|a| a.peer == peer_id && a.route == no)
                || connections
                    .values()
                    .any(|c| c.peer == peer_id && c.route == Some(no));
            if peer.meta[i].expires <= now && !in_use {
                peer.meta.remove(i);
                peer.routes.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Whether a route may be dialled now.
    pub(crate) fn dialable(&self, route: &Route, meta: &RouteMeta, now: Timestamp) -> bool {
        let Some(i) = self.interfaces.get(&meta.interface) else {
            return false;
        };
        i.up && !i.losing
            && now < meta.expires
            && (i.validated || Scope::of(&route.id.addr) != Scope::Internet)
    }

    /// The peer's routes that may be dialled, ranked best first, as (route
    /// number, components, cost).
    pub(crate) fn candidates(
        &self,
        peer: &Peer,
        now: Timestamp,
    ) -> Vec<(RouteNo, Components, f64)> {
        let links = self.links();
        let ctx = self.context(&links, now);
        rank(&peer.routes, &ctx)
            .eligible()
            .filter(|e| {
                let (route, meta) = (&peer.routes[e.index], &peer.meta[e.index]);
                self.dialable(route, meta, now) && !self.held_back(peer, route, meta, now)
            })
            .map(|e| (peer.meta[e.index].no, e.components, e.cost_ms))
            .collect()
    }

    /// The cost components of one route of a peer, dialable or not.
    pub(crate) fn components_of(&self, peer: PeerId, no: RouteNo, now: Timestamp) -> Components {
        let Some(p) = self.peers.get(&peer) else {
            return Components::default();
        };
        let Some(i) = p.index_of(no) else {
            return Components::default();
        };
        let links = self.links();
        let ctx = self.context(&links, now);
        rank::breakdown(&p.routes[i], &ctx).0.components
    }
}

/// The host part of an address (its first IP or DNS component), if any.
pub(crate) fn host_of(addr: &Multiaddr) -> Option<multiaddr::Protocol<'static>> {
    addr.iter()
        .find(|p| {
            matches!(
                p,
                multiaddr::Protocol::Ip4(_)
                    | multiaddr::Protocol::Ip6(_)
                    | multiaddr::Protocol::Dns(_)
                    | multiaddr::Protocol::Dns4(_)
                    | multiaddr::Protocol::Dns6(_)
            )
        })
        .map(|p| p.acquire())
}

/// A relayed address is a relay route whatever interface it leaves through.
pub(crate) fn route_medium(addr: &Multiaddr, interface_medium: Medium) -> Medium {
    if addr
        .iter()
        .any(|p| matches!(p, multiaddr::Protocol::P2pCircuit))
    {
        Medium::Relay
    } else {
        interface_medium
    }
}
