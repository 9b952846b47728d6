//! Inbound connections per remote IP address.
//!
//! Peer ids are free, so the per-peer connection limit does not stop one
//! host from opening thousands of connections under fresh ids. This
//! behaviour counts inbound connections (pending and established) by the
//! remote IPv4 address or IPv6 /64 prefix and refuses one past [`crate::Config::max_connections_per_ip`]
//! before its handshake runs. The table holds one entry per IP address
//! with a connection, so it is bounded by the connection limit.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};

/// The refusal, as the swarm reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyFromIp {
    /// The remote address.
    pub ip: IpAddr,
    /// The limit.
    pub limit: u32,
}

impl std::fmt::Display for TooManyFromIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} already holds {} connections, the per-IP limit",
            self.ip, self.limit
        )
    }
}

impl std::error::Error for TooManyFromIp {}

/// Counts inbound connections by remote IP; see the module docs.
#[derive(Debug)]
pub(crate) struct PerIpLimit {
    limit: u32,
    per_ip: HashMap<IpAddr, u32>,
    by_connection: HashMap<ConnectionId, IpAddr>,
}

/// The address a connection counts against: its IPv4 address, or the /64
/// prefix of its IPv6 address (a host is handed a whole /64, so its
/// addresses are as free as peer ids).
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    addr.iter().find_map(|p| match p {
        Protocol::Ip4(a) => Some(IpAddr::V4(a)),
        Protocol::Ip6(a) => Some(IpAddr::V6(Ipv6Addr::from(
            u128::from(a) & !((1u128 << 64) - 1),
        ))),
        _ => None,
    })
}

impl PerIpLimit {
    pub(crate) fn new(limit: u32) -> PerIpLimit {
        PerIpLimit {
            limit,
            per_ip: HashMap::new(),
            by_connection: HashMap::new(),
        }
    }

    fn release(&mut self, connection: ConnectionId) {
        let Some(ip) = self.by_connection.remove(&connection) else {
            return;
        };
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// Connections counted for `ip` now.
    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> u32 {
        self.per_ip.get(&ip).copied().unwrap_or(0)
    }
}

impl NetworkBehaviour for PerIpLimit {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        // An address without an IP (a relayed circuit, memory) is not ours
        // to count.
        let Some(ip) = ip_of(remote) else {
            return Ok(());
        };
        let n = self.per_ip.entry(ip).or_insert(0);
        if *n >= self.limit {
            metrics::counter!("multidriver_rendezvous_refused_total", "reason" => "per_ip")
                .increment(1);
            return Err(ConnectionDenied::new(TooManyFromIp {
                ip,
                limit: self.limit,
            }));
        }
        *n += 1;
        self.by_connection.insert(connection_id, ip);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. })
            | FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.release(connection_id);
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(ip: &str) -> Multiaddr {
        format!("/ip4/{ip}/tcp/5000").parse().unwrap()
    }

    #[test]
    fn exact_at_the_bound_and_released_on_close_or_failure() {
        let mut l = PerIpLimit::new(3);
        let local: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let a = remote("10.0.0.1");
        for i in 0..3 {
            l.handle_pending_inbound_connection(ConnectionId::new_unchecked(i), &local, &a)
                .unwrap();
        }
        let err = l
            .handle_pending_inbound_connection(ConnectionId::new_unchecked(3), &local, &a)
            .unwrap_err();
        let refusal = err.downcast::<TooManyFromIp>().unwrap();
        assert_eq!((refusal.ip, refusal.limit), (ip_of(&a).unwrap(), 3));
        assert!(refusal.to_string().contains("10.0.0.1"), "{refusal}");
        // Another address is counted apart.
        l.handle_pending_inbound_connection(
            ConnectionId::new_unchecked(4),
            &local,
            &remote("10.0.0.2"),
        )
        .unwrap();
        // A pending connection that failed frees its slot.
        l.on_swarm_event(FromSwarm::ListenFailure(ListenFailure {
            local_addr: &local,
            send_back_addr: &a,
            error: &libp2p::swarm::ListenError::Aborted,
            connection_id: ConnectionId::new_unchecked(0),
            peer_id: None,
        }));
        assert_eq!(l.count(ip_of(&a).unwrap()), 2);
        l.handle_pending_inbound_connection(ConnectionId::new_unchecked(5), &local, &a)
            .unwrap();
        assert_eq!(l.count(ip_of(&a).unwrap()), 3);
        // A refused connection took no slot; releasing it changes nothing.
        l.release(ConnectionId::new_unchecked(3));
        assert_eq!(l.count(ip_of(&a).unwrap()), 3);
        assert_eq!(l.per_ip.len(), 2);
    }

    #[test]
    fn ipv6_addresses_count_per_64_prefix() {
        let mut l = PerIpLimit::new(1);
        let local: Multiaddr = "/ip6/::1/tcp/4001".parse().unwrap();
        let a: Multiaddr = "/ip6/2001:db8:1:2::1/tcp/5000".parse().unwrap();
        let b: Multiaddr = "/ip6/2001:db8:1:2:ffff::9/tcp/5000".parse().unwrap();
        let other: Multiaddr = "/ip6/2001:db8:1:3::1/tcp/5000".parse().unwrap();
        l.handle_pending_inbound_connection(ConnectionId::new_unchecked(0), &local, &a)
            .unwrap();
        assert!(
            l.handle_pending_inbound_connection(ConnectionId::new_unchecked(1), &local, &b)
                .is_err()
        );
        l.handle_pending_inbound_connection(ConnectionId::new_unchecked(2), &local, &other)
            .unwrap();
    }
}
