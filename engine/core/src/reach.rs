//! Reachability and relay reservations: whether peers can dial this node
//! directly, and, when they cannot, a reservation on a relay so that they
//! reach it through a relayed route.
//!
//! - **Reachability** comes from the adapter ([`Engine::handle_reachability`]):
//!   AutoNAT's verdict on the node's observed addresses, or the app's word.
//!   It starts [`Reachability::Unknown`] and a network change (an interface
//!   coming up or going down) makes it unknown again, whoever set it, since
//!   the node may now sit behind another NAT. A new network usually brings
//!   a new observed address, which AutoNAT tests; back on a network whose
//!   address was tested before, it stays unknown (AutoNAT v2 does not test
//!   an address twice) and the node keeps a reservation it may not need.
//! - **Reservations.** While the node is not known to be public, the engine
//!   keeps [`Config::reservations`](crate::Config::reservations) reservations
//!   on the relays it knows ([`Engine::add_relay`], at most
//!   [`Config::max_relays`](crate::Config::max_relays)): it asks for one
//!   with [`Command::Reserve`] and hears back with
//!   [`Engine::handle_reservation_accepted`] or
//!   [`Engine::handle_reservation_failed`]. A relay whose reservation failed
//!   backs off ([`Config::backoff_base`](crate::Config::backoff_base)
//!   doubling up to [`Config::backoff_max`](crate::Config::backoff_max)) and
//!   another relay is tried meanwhile. A public node releases its
//!   reservations ([`Command::Unreserve`]).
//! - **Network changes renew.** A reservation held over an interface that
//!   went down is asked for again ([`Command::Reserve`] for the same relay),
//!   so it is renewed over the interface that carries traffic now, and
//!   every relay's backoff is forgotten (failures over the old attachment
//!   say nothing of the new one); the
//!   adapter advertises the relayed address while the reservation holds and
//!   withdraws it when it ends.

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::Timestamp;

use crate::{Command, Engine, Error, Event, InterfaceId};

/// Whether other peers can dial this node directly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reachability {
    /// Not known (yet, or since the last network change): reservations are
    /// kept, as for a private node, so that the node stays reachable.
    #[default]
    Unknown,
    /// A direct address of this node was confirmed dialable from outside
    /// (AutoNAT dialled it back): no relay is needed.
    Public,
    /// Its addresses were tested and none could be dialled from outside
    /// (behind a NAT or a firewall): it is reached through its relays.
    Private,
}

/// Where one relay's reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    /// No reservation, none asked for.
    None,
    /// Asked for with [`Command::Reserve`]; no answer yet.
    Requested,
    /// Accepted; held over this interface when the adapter knew it.
    Reserved(Option<InterfaceId>),
}

#[derive(Debug, Clone)]
pub(crate) struct Relay {
    pub(crate) peer: PeerId,
    pub(crate) addr: Multiaddr,
    pub(crate) state: ReservationState,
    /// Failed reservations in a row.
    pub(crate) failures: u32,
    /// No reservation is asked for before this.
    pub(crate) retry_at: Option<Timestamp>,
}

/// The relays the engine may reserve on, in the order they were added.
#[derive(Debug, Clone, Default)]
pub(crate) struct Relays {
    pub(crate) list: Vec<Relay>,
    pub(crate) reachability: Reachability,
}

impl Relays {
    fn get_mut(&mut self, peer: &PeerId) -> Option<&mut Relay> {
        self.list.iter_mut().find(|r| r.peer == *peer)
    }

    pub(crate) fn next_timeout(&self) -> Option<Timestamp> {
        if self.reachability == Reachability::Public {
            return None;
        }
        self.list
            .iter()
            .filter(|r| r.state == ReservationState::None)
            .filter_map(|r| r.retry_at)
            .min()
    }
}

impl Engine {
    /// This node's reachability as last reported (unknown after a network
    /// change).
    pub fn reachability(&self) -> Reachability {
        self.relays.reachability
    }

    /// The relays known, with their reservation states, in the order added.
    pub fn relays(&self) -> impl Iterator<Item = (PeerId, &Multiaddr, ReservationState)> {
        self.relays.list.iter().map(|r| (r.peer, &r.addr, r.state))
    }

    /// What AutoNAT or a confirmed external address says of this node.
    /// A change is reported with [`Event::ReachabilityChanged`]; becoming
    /// public releases every reservation, becoming private or unknown takes
    /// them up again.
    pub fn handle_reachability(&mut self, reachability: Reachability, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        self.set_reachability(reachability, now);
    }

    pub(crate) fn set_reachability(&mut self, reachability: Reachability, now: Timestamp) {
        if self.relays.reachability == reachability {
            return;
        }
        self.relays.reachability = reachability;
        self.push_event(Event::ReachabilityChanged { reachability });
        self.manage_reservations(now);
    }

    /// A relay this node may hold a reservation on: `addr` is a dialable
    /// address of the relay, without `/p2p-circuit`. Adding a known relay
    /// updates its address.
    ///
    /// # Errors
    /// [`Error::TableFull`] beyond [`Config::max_relays`](crate::Config::max_relays)
    /// relays (remove one first).
    pub fn add_relay(
        &mut self,
        relay: PeerId,
        addr: Multiaddr,
        now: Timestamp,
    ) -> Result<(), Error> {
        self.last_now = self.last_now.max(now);
        if let Some(r) = self.relays.get_mut(&relay) {
            r.addr = addr;
            return Ok(());
        }
        if self.relays.list.len() >= self.config.max_relays {
            return Err(Error::TableFull {
                table: "relays",
                limit: self.config.max_relays,
            });
        }
        self.relays.list.push(Relay {
            peer: relay,
            addr,
            state: ReservationState::None,
            failures: 0,
            retry_at: None,
        });
        self.manage_reservations(now);
        Ok(())
    }

    /// Forgets a relay; its reservation, if any, is released
    /// ([`Command::Unreserve`]) and another relay takes its place.
    pub fn remove_relay(&mut self, relay: &PeerId, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let Some(i) = self.relays.list.iter().position(|r| r.peer == *relay) else {
            return;
        };
        let r = self.relays.list.remove(i);
        if r.state != ReservationState::None {
            self.commands.push(Command::Unreserve { relay: r.peer });
        }
        self.manage_reservations(now);
    }

    /// The relay accepted (or renewed) the reservation asked for; it is held
    /// over `interface` when the adapter knows which. Unknown relays are
    /// ignored; an acceptance nobody asked for (one that arrives after the
    /// relay was released) is answered with [`Command::Unreserve`].
    pub fn handle_reservation_accepted(
        &mut self,
        relay: &PeerId,
        interface: Option<InterfaceId>,
        now: Timestamp,
    ) {
        self.last_now = self.last_now.max(now);
        let public = self.relays.reachability == Reachability::Public;
        let Some(r) = self.relays.get_mut(relay) else {
            return;
        };
        if r.state == ReservationState::None {
            // Not asked for: an answer that arrived after the relay was
            // released (or failed). Holding it would exceed the
            // reservations wanted; the adapter drops it again.
            self.commands.push(Command::Unreserve { relay: *relay });
            return;
        }
        r.failures = 0;
        r.retry_at = None;
        if public {
            // Became public meanwhile: not needed.
            r.state = ReservationState::None;
            self.commands.push(Command::Unreserve { relay: *relay });
            return;
        }
        r.state = ReservationState::Reserved(interface);
        self.schedule_binding(now);
    }

    /// The reservation on `relay` was refused, could not be asked for (the
    /// relay was unreachable), or ended (it expired unrenewed, or its
    /// connection closed). The relay backs off and another one is tried.
    /// Unknown relays are ignored.
    pub fn handle_reservation_failed(&mut self, relay: &PeerId, now: Timestamp) {
        self.last_now = self.last_now.max(now);
        let (base, max) = (self.config.backoff_base, self.config.backoff_max);
        let Some(r) = self.relays.get_mut(relay) else {
            return;
        };
        r.state = ReservationState::None;
        r.failures = r.failures.saturating_add(1);
        let wait = base
            .saturating_mul(1u32 << (r.failures - 1).min(20))
            .min(max);
        r.retry_at = Some(now + wait);
        self.manage_reservations(now);
    }

    /// Asks for reservations up to [`Config::reservations`](crate::Config::reservations)
    /// while the node is not public, and releases them when it is.
    pub(crate) fn manage_reservations(&mut self, now: Timestamp) {
        if self.relays.reachability == Reachability::Public {
            for r in &mut self.relays.list {
                if r.state != ReservationState::None {
                    r.state = ReservationState::None;
                    self.commands.push(Command::Unreserve { relay: r.peer });
                }
            }
            return;
        }
        // Passed backoffs end: those relays may be asked again.
        for r in &mut self.relays.list {
            if r.retry_at.is_some_and(|t| t <= now) {
                r.retry_at = None;
            }
        }
        let held = self
            .relays
            .list
            .iter()
            .filter(|r| r.state != ReservationState::None)
            .count();
        let mut wanted = self.config.reservations.saturating_sub(held);
        // No interface up: nothing could carry a reservation.
        if !self.interfaces.values().any(|i| i.up) {
            return;
        }
        for r in &mut self.relays.list {
            if wanted == 0 {
                break;
            }
            if r.state == ReservationState::None && r.retry_at.is_none() {
                r.state = ReservationState::Requested;
                self.commands.push(Command::Reserve {
                    relay: r.peer,
                    addr: r.addr.clone(),
                });
                wanted -= 1;
            }
        }
    }

    /// A network change: reachability is unknown again, and reservations
    /// held over `down` (or over no known interface) are asked for anew.
    pub(crate) fn reservations_on_change(&mut self, down: Option<InterfaceId>, now: Timestamp) {
        let any_up = self.interfaces.values().any(|i| i.up);
        for r in &mut self.relays.list {
            // Failures seen over the old attachment say nothing of the new
            // one: every relay may be asked at once.
            r.failures = 0;
            r.retry_at = None;
            let renew = match (r.state, down) {
                (ReservationState::Reserved(None), Some(_)) => true,
                (ReservationState::Reserved(Some(i)), Some(d)) => i == d,
                _ => false,
            };
            if renew && any_up {
                r.state = ReservationState::Requested;
                self.commands.push(Command::Reserve {
                    relay: r.peer,
                    addr: r.addr.clone(),
                });
            } else if renew {
                // Nothing to carry it: asked for when an interface is up.
                r.state = ReservationState::None;
                self.commands.push(Command::Unreserve { relay: r.peer });
            }
        }
        if self.relays.reachability == Reachability::Unknown {
            self.manage_reservations(now);
        } else {
            self.set_reachability(Reachability::Unknown, now);
        }
    }

    pub(crate) fn reservations_timeout(&mut self, now: Timestamp) {
        if self.relays.next_timeout().is_some_and(|t| t <= now) {
            self.manage_reservations(now);
        }
    }
}
