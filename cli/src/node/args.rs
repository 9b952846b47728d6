//! `multidriver node`'s flags, and parsing a `--rendezvous` point.

use std::fmt;

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// `multidriver node`'s flags.
#[derive(Debug, clap::Args)]
pub(crate) struct NodeArgs {
    /// The namespace to advertise in and look peers up in.
    #[arg(long, value_name = "NS")]
    pub(super) namespace: String,
    /// A rendezvous point, as `/ip4/…/tcp/…/p2p/<peer id>` (repeatable; each
    /// is a driver of its own, and the engine fails over between them).
    #[arg(long = "rendezvous", value_name = "ADDR", value_parser = parse_point)]
    pub(super) rendezvous: Vec<Point>,
    /// Find peers on the LAN with mDNS (it has no namespaces: every libp2p
    /// node on the LAN running it is found).
    #[arg(long)]
    pub(super) mdns: bool,
    /// A listen address (repeatable). Default: TCP and QUIC on every
    /// interface, ports chosen by the OS.
    #[arg(long = "listen", value_name = "ADDR")]
    pub(super) listen: Vec<Multiaddr>,
    /// A preset name (performance, balanced, battery-saver, background) or
    /// a profile TOML file.
    #[arg(long, value_name = "NAME", default_value = "balanced")]
    pub(super) profile: String,
    /// Print one JSON object per line per event, for scripts (the fields
    /// are in the README).
    #[arg(long)]
    pub(super) json: bool,
    /// Exit with status 0 after this many seconds (for scripts and tests).
    #[arg(long, value_name = "SECS")]
    pub(super) exit_after: Option<u64>,
}

/// A rendezvous point from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Point {
    /// Its peer id.
    pub(super) peer: PeerId,
    /// Its address, without the `/p2p/<peer id>`.
    pub(super) addr: Multiaddr,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/p2p/{}", self.addr, self.peer)
    }
}

/// Parses a `--rendezvous` value: a multiaddr ending in `/p2p/<peer id>`
/// with an address before it.
fn parse_point(s: &str) -> Result<Point, String> {
    let full: Multiaddr = s
        .parse()
        .map_err(|e| format!("`{s}` is not a multiaddr: {e}"))?;
    let mut addr = full.clone();
    match addr.pop() {
        Some(Protocol::P2p(peer)) if !addr.is_empty() => Ok(Point { peer, addr }),
        Some(Protocol::P2p(_)) => Err(format!(
            "`{s}` has no address before /p2p/<peer id>; give e.g. /ip4/192.0.2.1/tcp/4001/p2p/<peer id>"
        )),
        _ => Err(format!(
            "`{s}` must end with /p2p/<peer id> of the rendezvous point"
        )),
    }
}

#[cfg(test)]
mod tests {
    use libp2p::PeerId;

    use super::parse_point;

    #[test]
    fn rendezvous_addresses_need_the_point_s_peer_id() {
        let id = PeerId::random();
        let p = parse_point(&format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}")).unwrap();
        assert_eq!(p.peer, id);
        assert_eq!(p.addr.to_string(), "/ip4/127.0.0.1/tcp/4001");
        assert_eq!(p.to_string(), format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}"));

        let e = parse_point("/ip4/127.0.0.1/tcp/4001").unwrap_err();
        assert!(e.contains("`/ip4/127.0.0.1/tcp/4001`"), "{e}");
        assert!(e.contains("/p2p/<peer id>"), "{e}");
        let e = parse_point(&format!("/p2p/{id}")).unwrap_err();
        assert!(e.contains("no address before"), "{e}");
        let e = parse_point("not-an-address").unwrap_err();
        assert!(e.contains("`not-an-address` is not a multiaddr"), "{e}");
    }
}
