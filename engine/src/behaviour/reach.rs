//! Reachability and relay reservations in the swarm: the engine's
//! [`Command::Reserve`] becomes a listener on the relay's `/p2p-circuit`
//! address (the relay client in the transport, see
//! `multidriver::build_swarm_with_relay`, makes the reservation, and
//! confirms the relayed address as external while it holds, so that
//! rendezvous registrations and identify carry it), and the listener's
//! first address (accepted) or its end is reported back to the engine. Rendezvous points that
//! serve relay are offered to the engine as relays as soon as identify
//! lists both protocols on a connection we dialled; others are added with
//! [`Behaviour::add_relay`].
//!
//! With the `relay` feature, [`Behaviour::handle_autonat_event`] feeds
//! AutoNAT v2's verdicts: an address on the public internet dialled back
//! makes the node public, a failed test withdraws that address and, when
//! no public external address is left, makes the node private. Addresses
//! the app confirms itself (its LAN listen addresses, say) are not taken
//! as proof of reachability; [`Behaviour::set_reachability`] is the app's
//! word. A swarm without a relay transport turns reservations off after
//! the first refused listener.

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ListenOpts, ToSwarm};
use libp2p::{Multiaddr, PeerId};

use super::{Behaviour, DriverSet};
use crate::Error;
use crate::core::{Command, Reachability};

/// A reservation the engine asked for: its listener, and whether the
/// relay accepted (the listener got its addresses).
#[derive(Debug)]
pub(crate) struct Reservation {
    pub(crate) listener: ListenerId,
    pub(crate) accepted: bool,
}

/// Whether `addr` goes through a relay.
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Whether `addr` is a direct address on the public internet: not a
/// circuit, and its IP neither loopback, private, link-local nor in the
/// shared address space carrier-grade NATs use (100.64.0.0/10, RFC 6598).
/// Only AutoNAT's verdicts need it (the `relay` feature).
#[cfg(any(test, feature = "relay"))]
pub(crate) fn is_public(addr: &Multiaddr) -> bool {
    use multidriver_scoring::Scope;

    let shared = addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64,
        _ => false,
    });
    !is_relayed(addr) && !shared && Scope::of(addr) == Scope::Internet
}

impl<D: DriverSet> Behaviour<D> {
    /// A relay this node may hold a reservation on while it is not known to
    /// be public: `addr` is a dialable address of it, without
    /// `/p2p-circuit`. Rendezvous points that relay are added by
    /// themselves once connected.
    ///
    /// # Errors
    /// [`Error::Core`] with a full table beyond the engine config's
    /// `max_relays`.
    pub fn add_relay(&mut self, relay: PeerId, addr: Multiaddr) -> Result<(), Error> {
        let now = self.now();
        self.engine.add_relay(relay, addr, now)?;
        self.wake();
        Ok(())
    }

    /// This node's reachability as the engine holds it.
    pub fn reachability(&self) -> Reachability {
        self.engine.reachability()
    }

    pub(crate) fn on_reservation_command(&mut self, command: Command) {
        match command {
            Command::Reserve { relay, addr } => {
                // A renewal (the interface that carried it went down): the
                // relay client would ask over the connection it has to the
                // relay, which went down with the interface but may not
                // have noticed yet; closed, the client dials anew over what
                // carries traffic now.
                if self.reservations.contains_key(&relay) {
                    self.actions.push_back(ToSwarm::CloseConnection {
                        peer_id: relay,
                        connection: libp2p::swarm::CloseConnection::All,
                    });
                }
                self.release(&relay);
                let mut circuit = addr;
                if !circuit.iter().any(|p| matches!(p, Protocol::P2p(_))) {
                    circuit.push(Protocol::P2p(relay));
                }
                circuit.push(Protocol::P2pCircuit);
                let opts = ListenOpts::new(circuit.clone());
                tracing::debug!(target: "multidriver", %relay, %circuit, "reserve");
                self.reservations.insert(
                    relay,
                    Reservation {
                        listener: opts.listener_id(),
                        accepted: false,
                    },
                );
                self.actions.push_back(ToSwarm::ListenOn { opts });
            }
            Command::Unreserve { relay } => {
                tracing::debug!(target: "multidriver", %relay, "release reservation");
                self.release(&relay);
            }
            _ => {}
        }
    }

    /// Closes the listener through `relay`, if any (the relay client then
    /// stops advertising its address).
    fn release(&mut self, relay: &PeerId) {
        if let Some(r) = self.reservations.remove(relay) {
            self.actions
                .push_back(ToSwarm::RemoveListener { id: r.listener });
        }
    }

    fn reservation_of(&self, listener: ListenerId) -> Option<PeerId> {
        self.reservations
            .iter()
            .find(|(_, r)| r.listener == listener)
            .map(|(p, _)| *p)
    }

    /// A listener got an address: for a reservation's listener, the relay
    /// accepted.
    pub(crate) fn on_new_listen_addr(&mut self, listener: ListenerId, addr: &Multiaddr) {
        let Some(relay) = self.reservation_of(listener) else {
            return;
        };
        // One address per address of the relay: the first says accepted.
        let Some(r) = self.reservations.get_mut(&relay).filter(|r| !r.accepted) else {
            return;
        };
        r.accepted = true;
        let now = self.now();
        let interface = self.interfaces.route(addr);
        metrics::counter!("multidriver_relay_reservations_total", "outcome" => "accepted")
            .increment(1);
        tracing::info!(target: "multidriver", %relay, %addr, "relay reservation accepted");
        self.engine
            .handle_reservation_accepted(&relay, interface, now);
    }

    /// A reservation's listener closed or failed: the reservation was
    /// refused, could not be made, or ended; `unsupported` when the swarm
    /// has no transport for relayed addresses at all.
    pub(crate) fn on_listener_gone(
        &mut self,
        listener: ListenerId,
        reason: &dyn std::fmt::Display,
        unsupported: bool,
    ) {
        let Some(relay) = self.reservation_of(listener) else {
            return;
        };
        let now = self.now();
        self.reservations.remove(&relay);
        // The swarm has no relay transport (built without
        // `build_swarm_with_relay`): no reservation can ever be made.
        if unsupported {
            tracing::warn!(target: "multidriver", %relay, "the swarm cannot listen through relays (no relay client in its transport): relay reservations are off");
            self.engine.remove_relay(&relay, now);
            self.no_relay_transport = true;
            return;
        }
        metrics::counter!("multidriver_relay_reservations_total", "outcome" => "failed")
            .increment(1);
        tracing::info!(target: "multidriver", %relay, %reason, "relay reservation failed or ended");
        self.engine.handle_reservation_failed(&relay, now);
    }

    /// A connection we dialled turned out to reach a rendezvous point that
    /// relays.
    pub(crate) fn on_relay_server(&mut self, peer: PeerId, addr: Multiaddr) {
        let now = self.now();
        if self.no_relay_transport || self.engine.relays().any(|(p, _, _)| p == peer) {
            return;
        }
        match self.engine.add_relay(peer, addr, now) {
            Ok(()) => {
                tracing::debug!(target: "multidriver", %peer, "rendezvous point relays: a relay to reserve on")
            }
            Err(error) => tracing::debug!(target: "multidriver", %peer, %error, "relay not added"),
        }
    }

    /// Sets this node's reachability when the app knows it (a server with a
    /// public address, or the host's own NAT detection). AutoNAT's next
    /// verdict, or a network change (which makes it unknown), replaces it.
    pub fn set_reachability(&mut self, reachability: Reachability) {
        let now = self.now();
        self.engine.handle_reachability(reachability, now);
        self.wake();
    }

    /// Feeds one event of the swarm's AutoNAT v2 client
    /// (`libp2p::autonat::v2::client::Behaviour`):
    ///
    /// ```ignore
    /// SwarmEvent::Behaviour(AppEvent::Autonat(e)) => swarm.behaviour_mut().multidriver.handle_autonat_event(&e),
    /// ```
    ///
    /// A dialled-back address makes the node public (the client confirms
    /// the address itself). A failed test withdraws the tested address if
    /// it was confirmed, and makes the node private when no direct external
    /// address is left: it is then reached through a relay reservation.
    #[cfg(feature = "relay")]
    pub fn handle_autonat_event(&mut self, event: &libp2p::autonat::v2::client::Event) {
        let now = self.now();
        match &event.result {
            Ok(()) => {
                metrics::counter!("multidriver_autonat_tests_total", "outcome" => "reachable")
                    .increment(1);
                // Dialled back at a LAN or carrier-NAT address: reachable
                // from the server's network only, not from the internet.
                if is_public(&event.tested_addr) {
                    self.engine.handle_reachability(Reachability::Public, now);
                }
            }
            Err(error) => {
                metrics::counter!("multidriver_autonat_tests_total", "outcome" => "unreachable")
                    .increment(1);
                tracing::debug!(target: "multidriver", addr = %event.tested_addr, %error, "not reachable from outside");
                let tested = &event.tested_addr;
                if self.external.iter().any(|a| a == tested) {
                    self.actions
                        .push_back(ToSwarm::ExternalAddrExpired(tested.clone()));
                }
                let direct_left = self.external.iter().any(|a| a != tested && is_public(a));
                if !direct_left {
                    self.engine.handle_reachability(Reachability::Private, now);
                }
            }
        }
        self.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_internet_addresses_count_as_public() {
        for (addr, public) in [
            ("/ip4/198.51.100.7/tcp/4001", true),
            ("/ip6/2001:db8::1/udp/4001/quic-v1", true),
            ("/ip4/127.0.0.1/tcp/4001", false),
            ("/ip4/192.168.1.20/tcp/4001", false),
            ("/ip4/10.0.0.2/tcp/4001", false),
            ("/ip4/169.254.1.1/tcp/4001", false),
            ("/ip4/100.64.0.9/tcp/4001", false),
            ("/ip4/100.127.255.1/tcp/4001", false),
            ("/ip4/100.128.0.1/tcp/4001", true),
            ("/ip6/fe80::1/tcp/4001", false),
            ("/ip6/fd00::1/tcp/4001", false),
            (
                "/ip4/203.0.113.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit",
                false,
            ),
        ] {
            let a: Multiaddr = addr.parse().unwrap();
            assert_eq!(is_public(&a), public, "{addr}");
        }
    }
}
