//! Routes fed to the engine: from drivers and the app, remembered so
//! that each follows its address to another interface, and the peers of
//! inbound connections adopted.

use std::time::Duration;

use libp2p::swarm::{ConnectionId as SwarmConnectionId, NotifyHandler, ToSwarm};
use libp2p::{Multiaddr, PeerId};
use multidriver_scoring::{Source, Timestamp};

use super::{Behaviour, DriverSet, Known, handler};
use crate::Error;
use crate::core::{Discovered, InterfaceId};

impl<D: DriverSet> Behaviour<D> {
    /// The app adds a route it learned elsewhere (a QR code, its own
    /// protocol); it lasts `ttl`.
    ///
    /// # Errors
    /// [`Error::NoInterfaceFor`] when no local interface reaches the
    /// address (it is remembered, and given to the engine once one does), or
    /// as [`Engine::handle_discovered`](crate::core::Engine::handle_discovered).
    pub fn add_route(&mut self, peer: PeerId, addr: Multiaddr, ttl: Duration) -> Result<(), Error> {
        let now = self.now();
        self.feed(peer, addr, Source::Manual, false, ttl, now)?;
        self.adopt(peer, now);
        self.wake();
        Ok(())
    }

    /// Gives the engine a route over the interface the address is reached
    /// through now, and remembers it so that it follows the address to
    /// another interface when the network changes.
    pub(crate) fn feed(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        source: Source,
        signed: bool,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<(), Error> {
        let Some(interface) = self.interfaces.route(&addr) else {
            // Unreachable now; remembered, it is given to the engine when a
            // network change makes it reachable.
            self.remember(peer, addr.clone(), source, signed, now + ttl, None);
            return Err(Error::NoInterfaceFor {
                addr: addr.to_string(),
            });
        };
        self.engine.handle_discovered(
            Discovered {
                peer,
                addr: addr.clone(),
                interface,
                source,
                signed,
                ttl,
            },
            now,
        )?;
        self.remember(peer, addr, source, signed, now + ttl, Some(interface));
        Ok(())
    }

    pub(crate) fn remember(
        &mut self,
        peer: PeerId,
        addr: Multiaddr,
        source: Source,
        signed: bool,
        expires: Timestamp,
        interface: Option<InterfaceId>,
    ) {
        let key = (peer, addr);
        if !self.known.contains_key(&key) && self.known.len() >= self.config.max_remembered_routes {
            // Forget the route that lapses first.
            let first = self
                .known
                .iter()
                .min_by_key(|(_, k)| k.expires)
                .map(|(key, _)| key.clone());
            if let Some(first) = first {
                self.known.remove(&first);
            }
        }
        let known = self.known.entry(key).or_insert(Known {
            source,
            signed,
            expires,
            interface,
        });
        known.expires = known.expires.max(expires);
        known.interface = interface;
    }

    /// The network changed: each remembered route whose address is now
    /// reached through another interface is given to the engine over that
    /// interface.
    pub(crate) fn refeed(&mut self, now: Timestamp) {
        self.known.retain(|_, k| k.expires > now);
        let moved: Vec<((PeerId, Multiaddr), Known, InterfaceId)> = self
            .known
            .iter()
            .filter_map(|(key, k)| {
                let to = self.interfaces.route(&key.1)?;
                (Some(to) != k.interface).then(|| (key.clone(), *k, to))
            })
            .collect();
        for ((peer, addr), k, to) in moved {
            let found = Discovered {
                peer,
                addr: addr.clone(),
                interface: to,
                source: k.source,
                signed: k.signed,
                ttl: k.expires.saturating_duration_since(now),
            };
            match self.engine.handle_discovered(found, now) {
                Ok(()) => {
                    tracing::debug!(target: "multidriver", %peer, %addr, from = ?k.interface, %to, "route follows its address to another interface");
                    if let Some(known) = self.known.get_mut(&(peer, addr)) {
                        known.interface = Some(to);
                    }
                }
                Err(e) => {
                    tracing::debug!(target: "multidriver", %peer, %addr, error = %e, "route not moved")
                }
            }
        }
    }

    /// Hands the engine the inbound connections of `peer` it did not take
    /// when they opened (it did not know the peer then).
    pub(crate) fn adopt(&mut self, peer: PeerId, now: Timestamp) {
        if !self.engine.wants(&peer) && self.engine.route_count(&peer) == 0 {
            return;
        }
        self.adopt_untracked(peer, now);
    }

    /// Hands the engine every untracked inbound connection of `peer`.
    pub(crate) fn adopt_untracked(&mut self, peer: PeerId, now: Timestamp) {
        let theirs: Vec<SwarmConnectionId> = self
            .untracked
            .iter()
            .filter(|(_, u)| u.peer == peer)
            .map(|(id, _)| *id)
            .collect();
        for id in theirs {
            if let Some(u) = self.untracked.remove(&id) {
                self.track_inbound(id, u.peer, &u.local, u.remote, now);
            }
        }
    }

    pub(crate) fn track_inbound(
        &mut self,
        connection: SwarmConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: Multiaddr,
        now: Timestamp,
    ) {
        let Some(interface) = self.interfaces.of_local(local) else {
            return;
        };
        match self.engine.handle_inbound(peer, remote, interface, now) {
            Ok(engine) => {
                self.track(connection, engine, peer);
                self.actions.push_back(ToSwarm::NotifyHandler {
                    peer_id: peer,
                    handler: NotifyHandler::One(connection),
                    event: either::Either::Left(handler::In::KeepAlive(true)),
                });
            }
            Err(err) => {
                tracing::debug!(target: "multidriver", %peer, error = %err, "inbound connection not tracked")
            }
        }
    }
}
