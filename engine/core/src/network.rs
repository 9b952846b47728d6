//! Network changes: interfaces coming up, changing, warned as losing and
//! going down, and what each does to routes, attempts and connections.

use libp2p_identity::PeerId;
use multidriver_scoring::Timestamp;

use crate::peers::route_medium;
use crate::{
    CloseReason, Command, Conn, ConnectionHandle, Engine, Error, Interface, InterfaceId,
    NetworkChange, Purpose, SwitchReason,
};

impl Engine {
    /// A network change from the OS or the host app.
    ///
    /// # Errors
    /// [`Error::UnknownInterface`] for a change of an interface never
    /// reported [`Up`](NetworkChange::Up); [`Error::TableFull`] for a new
    /// interface beyond [`Config::max_interfaces`](crate::Config::max_interfaces)
    /// while every tracked one is up.
    pub fn handle_network_change(
        &mut self,
        change: NetworkChange,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        match change {
            NetworkChange::Up {
                interface,
                medium,
                conditions,
                validated,
            } => {
                if !self.interfaces.contains_key(&interface)
                    && self.interfaces.len() >= self.config.max_interfaces
                {
                    // Forget the lowest-numbered interface that is down
                    // (hosts number each new attachment afresh, so it is
                    // usually the oldest); its routes are dead.
                    let Some(victim) = self
                        .interfaces
                        .iter()
                        .find(|(_, i)| !i.up)
                        .map(|(id, _)| *id)
                    else {
                        return Err(Error::TableFull {
                            table: "interfaces",
                            limit: self.config.max_interfaces,
                        });
                    };
                    self.forget_interface(victim);
                }
                self.interfaces.insert(
                    interface,
                    Interface {
                        medium,
                        conditions,
                        validated,
                        up: true,
                        losing: false,
                    },
                );
                // A new attachment: what we measured over this interface
                // described another network, and its NAT is another one.
                self.forget_punches_on(interface);
                for peer in self.peers.values_mut() {
                    for (route, meta) in peer.routes.iter_mut().zip(&peer.meta) {
                        if meta.interface == interface {
                            route.medium = route_medium(&route.id.addr, medium);
                            route.rtt.reset();
                        }
                    }
                }
                // Imported routes that waited for an interface of this
                // medium join now (see the `memory` module).
                self.memory_interface_up(interface, now);
                // New local addresses: renew every registration, and start
                // LAN drivers if this brought a LAN.
                self.readvertise_all(now);
                self.reevaluate_all(now);
                // Maybe behind another NAT now: reachability is re-checked.
                self.reservations_on_change(None, now);
                // The medium may have changed kind (cellular or not): the
                // connections over it join the other keep-alive schedule.
                self.schedule_keepalive(now);
            }
            NetworkChange::Changed {
                interface,
                conditions,
                validated,
            } => {
                let i = self.interface_mut(interface)?;
                i.conditions = conditions;
                i.validated = validated;
                self.schedule_drivers(now);
                self.reevaluate_all(now);
            }
            NetworkChange::Losing { interface } => {
                self.interface_mut(interface)?.losing = true;
                self.cancel_attempts_on(interface, now);
                let moving: Vec<PeerId> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.race.is_none())
                    .filter(|(_, p)| {
                        p.primary
                            .and_then(|c| self.connections.get(&c))
                            .is_some_and(|c| c.interface == interface)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                for peer in moving {
                    self.start_race(
                        peer,
                        Purpose::Upgrade {
                            reason: SwitchReason::InterfaceLosing,
                            only: None,
                            avoid: Some(interface),
                        },
                        now,
                    );
                }
                // Races whose attempts over the interface were cancelled go on.
                self.reevaluate_all(now);
                self.release_capacity(now);
            }
            NetworkChange::Down { interface } => {
                let i = self.interface_mut(interface)?;
                i.up = false;
                i.losing = false;
                self.interface_down(interface, now);
                self.readvertise_all(now);
                // Reservations over it are renewed over what is left.
                self.reservations_on_change(Some(interface), now);
            }
        }
        Ok(())
    }

    pub(crate) fn interface_down(&mut self, interface: InterfaceId, now: Timestamp) {
        self.cancel_attempts_on(interface, now);
        let conns: Vec<(ConnectionHandle, Conn)> = self
            .connections
            .iter()
            .filter(|(_, c)| c.interface == interface)
            .map(|(id, c)| (*id, c.clone()))
            .collect();
        // Forget every connection over the interface before reacting to any
        // loss, so a backup on the same interface is never promoted.
        for (id, _) in &conns {
            self.connections.remove(id);
            self.closing.remove(id);
            self.commands.push(Command::CloseConnection {
                connection: *id,
                reason: CloseReason::InterfaceDown,
            });
        }
        for (id, conn) in conns {
            self.lost_connection(conn.peer, id, conn.addr, SwitchReason::InterfaceLost, now);
        }
        self.reevaluate_all(now);
        self.release_capacity(now);
    }

    /// Forgets a down interface and every route over it.
    pub(crate) fn forget_interface(&mut self, interface: InterfaceId) {
        self.interfaces.remove(&interface);
        self.forget_punches_on(interface);
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer_id in peers {
            let Some(peer) = self.peers.get_mut(&peer_id) else {
                continue;
            };
            let mut i = 0;
            while i < peer.meta.len() {
                if peer.meta[i].interface == interface {
                    peer.meta.remove(i);
                    peer.routes.remove(i);
                } else {
                    i += 1;
                }
            }
        }
    }

    /// Cancels every dial attempt through `interface`; their races move on.
    pub(crate) fn cancel_attempts_on(&mut self, interface: InterfaceId, now: Timestamp) {
        let attempts: Vec<(ConnectionHandle, PeerId)> = self
            .attempts
            .iter()
            .filter(|(_, a)| {
                self.peers
                    .get(&a.peer)
                    .and_then(|p| p.index_of(a.route).map(|i| p.meta[i].interface))
                    == Some(interface)
            })
            .map(|(id, a)| (*id, a.peer))
            .collect();
        for (id, peer) in attempts {
            self.attempts.remove(&id);
            self.commands.push(Command::CancelDial { connection: id });
            if let Some(race) = self.peers.get_mut(&peer).and_then(|p| p.race.as_mut()) {
                race.in_flight.retain(|c| *c != id);
                race.next_due = now;
            }
        }
    }
}
