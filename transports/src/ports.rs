//! Refusing a listen address whose port another socket already holds.
//!
//! libp2p-tcp sets `SO_REUSEPORT` on its listeners, so a second process that
//! listens on a port a first one holds comes up "listening", and the kernel
//! then splits incoming connections between the two: clients that expect
//! one peer id reach the other and fail with "unexpected peer id".
//! [`ensure_port_free`] binds the address once, without that option, before
//! the swarm listens: a taken port fails there with an error naming it.
//!
//! ```
//! use multidriver_transports::ports::ensure_port_free;
//!
//! let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let port = taken.local_addr()?.port();
//! let addr = format!("/ip4/127.0.0.1/tcp/{port}").parse()?;
//! let err = ensure_port_free(&addr).unwrap_err();
//! assert!(err.to_string().contains(&format!("TCP port {port}")));
//! // Port 0 asks the OS for a free port: nothing to check.
//! ensure_port_free(&"/ip4/127.0.0.1/tcp/0".parse()?)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use crate::Error;

/// Checks that the TCP or UDP port of `addr` is free on its IP address, by
/// binding it once (and letting it go) without `SO_REUSEPORT`. Addresses
/// without an IP and a port (`/dns`, `/memory`), and port 0, pass.
///
/// Check every address of a node before it listens on any: an IPv6 wildcard
/// probe also covers IPv4 and would find the node's own IPv4 listener.
///
/// # Errors
/// [`Error::PortTaken`] naming the address, the protocol and the port.
pub fn ensure_port_free(addr: &Multiaddr) -> Result<(), Error> {
    let mut ip: Option<IpAddr> = None;
    for protocol in addr {
        let (kind, port) = match protocol {
            Protocol::Ip4(a) => {
                ip = Some(a.into());
                continue;
            }
            Protocol::Ip6(a) => {
                ip = Some(a.into());
                continue;
            }
            Protocol::Tcp(port) => ("TCP", port),
            Protocol::Udp(port) => ("UDP", port),
            _ => continue,
        };
        let Some(ip) = ip else { return Ok(()) };
        if port == 0 {
            return Ok(());
        }
        let at = SocketAddr::new(ip, port);
        let bound = if kind == "TCP" {
            TcpListener::bind(at).map(drop)
        } else {
            UdpSocket::bind(at).map(drop)
        };
        return bound.map_err(|e| Error::PortTaken {
            addr: addr.to_string(),
            protocol: kind,
            port,
            message: e.to_string(),
        });
    }
    Ok(())
}

/// [`ensure_port_free`] for every address, all before any is used.
///
/// # Errors
/// The first address whose port is taken.
pub fn ensure_ports_free<'a>(addrs: impl IntoIterator<Item = &'a Multiaddr>) -> Result<(), Error> {
    addrs.into_iter().try_for_each(ensure_port_free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_tcp_or_udp_port_is_named_and_a_free_one_passes() {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        let err = ensure_port_free(&addr).unwrap_err().to_string();
        assert!(
            err.contains(&format!("TCP port {port}")) && err.contains(&addr.to_string()),
            "{err}"
        );
        drop(tcp);
        ensure_port_free(&addr).unwrap();

        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        let addr: Multiaddr = format!("/ip4/127.0.0.1/udp/{port}/quic-v1")
            .parse()
            .unwrap();
        let err = ensure_port_free(&addr).unwrap_err().to_string();
        assert!(err.contains(&format!("UDP port {port}")), "{err}");
    }

    #[test]
    fn addresses_without_a_port_to_check_pass() {
        for a in [
            "/ip4/127.0.0.1/tcp/0",
            "/memory/7",
            "/dns4/example.com/tcp/4001",
        ] {
            ensure_port_free(&a.parse().unwrap()).unwrap();
        }
    }
}
