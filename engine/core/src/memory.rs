//! Route memory: what the engine learned about its peers, carried over an
//! app restart (see [`RouteMemory`]). The binary form is in `codec`, export
//! and import in `engine`.

use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::{Medium, Source};

use crate::reach::Reachability;

mod codec;
mod engine;

pub(crate) use engine::MemoryState;

pub use codec::{
    MEMORY_MAGIC, MEMORY_MAX_ADDR_BYTES, MEMORY_MAX_PEERS, MEMORY_MAX_RELAYS, MEMORY_MAX_ROUTES,
    MEMORY_VERSION,
};

/// What the engine learned about its peers, exported before the app stops
/// and imported into the next process's engine, so that a restarted app
/// dials the route that worked at once instead of waiting for discovery.
///
/// [`Engine::export_memory`](crate::Engine::export_memory) takes one: per peer, its routes
/// (address, the medium of the interface it left through, the sources that
/// reported it), their RTT estimates (SRTT, RTTVAR, sample count), failure
/// penalties and dial history (whether the route connected before), when
/// each was last confirmed and how long it still lives, and the peer's
/// hole-punch backoffs; beside them the node's reachability and its relays.
/// Every time in it is relative to the `now` of the export (an age, a
/// remaining lifetime), since a `Timestamp` means nothing to another
/// process. [`RouteMemory::to_bytes`] and [`RouteMemory::from_bytes`] give
/// it a small versioned binary form for the app to store (docs/DESIGN.md,
/// "Route memory", describes it).
///
/// [`Engine::import_memory`](crate::Engine::import_memory) takes one back:
///
/// - **Interfaces by medium.** Interface ids are the adapter's and change
///   from process to process, so a route goes over an interface of the
///   medium it was remembered with (up and not losing, the lowest id
///   first). A route with no such interface yet waits, bounded like the
///   route table, and joins when an interface of its medium comes up (the
///   adapter may import before it reported any interface); it is dropped
///   once its lifetime passes.
/// - **Usable at once.** An imported route is an ordinary route: a peer the
///   app wants races it at once, best first, with its remembered RTT
///   (provisional until the first probe of this process, which replaces
///   it), penalty and dial history. A direct route that connected before
///   is proven, so it is dialled first without a relay beside it (see the
///   `nat` module).
/// - **TTLs.** A route whose remaining lifetime has passed is not imported.
///   [`RouteMemory::aged`] ages a memory by the time the app was down (the
///   adapter measures it on the wall clock it stored in the memory).
/// - **Bounds, never an error.** What does not fit is dropped, oldest
///   first: peers by their most recently confirmed route (beyond
///   [`Config::max_peers`](crate::Config::max_peers), counting the peers
///   the engine already tracks, which are never evicted for a memory),
///   routes by when they were last confirmed (beyond
///   [`Config::max_routes_per_peer`](crate::Config::max_routes_per_peer),
///   counting the peer's routes already known). Relays carry no time: they
///   are added in the order the old engine added them, and those beyond
///   [`Config::max_relays`](crate::Config::max_relays) are dropped.
/// - **Live facts win.** A route the engine already knows keeps its own
///   RTT, penalty and dial history when it has any; the memory extends its
///   lifetime and adds its sources.
/// - **Reachability** is taken as remembered and, like AutoNAT's verdict,
///   stands until the next network change (an interface reported up makes
///   it unknown again).
///
/// Imported peers raise no [`Event::PeerDiscovered`](crate::Event::PeerDiscovered):
/// nothing was discovered, and the app knows whom it remembered.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use multidriver_core::{Command, Config, Discovered, Engine, InterfaceId, NetworkChange, RouteMemory};
/// use multidriver_scoring::{Medium, NetworkConditions, Source, Timestamp};
///
/// let wifi_up = |interface| NetworkChange::Up {
///     interface,
///     medium: Medium::Wifi,
///     conditions: NetworkConditions::default(),
///     validated: true,
/// };
/// let peer = libp2p_identity::PeerId::random();
///
/// // The app's first process learns a route and stores what it learned.
/// let mut engine = Engine::new(Config::default())?;
/// let t = Timestamp::ZERO;
/// engine.handle_network_change(wifi_up(InterfaceId(3)), t)?;
/// let addr: multiaddr::Multiaddr = "/ip4/192.168.1.20/udp/4001/quic-v1".parse()?;
/// engine.handle_discovered(
///     Discovered { peer, addr: addr.clone(), interface: InterfaceId(3), source: Source::Mdns, signed: false, ttl: Duration::from_secs(360) },
///     t,
/// )?;
/// let stored: Vec<u8> = engine.export_memory(t + Duration::from_secs(60)).to_bytes();
///
/// // The next process (its own clock, its own interface numbers) dials it
/// // at once when the app asks for the peer: no lookup first.
/// let mut engine = Engine::new(Config::default())?;
/// let t = Timestamp::ZERO;
/// engine.import_memory(&RouteMemory::from_bytes(&stored)?, t)?;
/// engine.handle_network_change(wifi_up(InterfaceId(7)), t)?;
/// engine.connect(peer, t)?;
/// assert!(matches!(
///     engine.poll_command(),
///     Some(Command::Dial { addr: a, interface: InterfaceId(7), .. }) if a == addr
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMemory {
    pub(crate) saved_at_unix_ms: Option<u64>,
    pub(crate) reachability: Reachability,
    pub(crate) relays: Vec<RememberedRelay>,
    pub(crate) peers: Vec<RememberedPeer>,
}

/// A relay the node could reserve on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedRelay {
    pub(crate) peer: PeerId,
    pub(crate) addr: Multiaddr,
}

/// A peer's remembered routes and hole-punch backoffs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedPeer {
    pub(crate) peer: PeerId,
    pub(crate) routes: Vec<RememberedRoute>,
    pub(crate) punch_backoff: Vec<RememberedPunch>,
}

/// One remembered route. Times are relative to the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RememberedRoute {
    pub(crate) addr: Multiaddr,
    pub(crate) interface: Option<Medium>,
    pub(crate) sightings: Vec<RememberedSighting>,
    pub(crate) age: Duration,
    pub(crate) ttl: Duration,
    pub(crate) srtt: Option<Duration>,
    pub(crate) rttvar: Duration,
    pub(crate) samples: u32,
    pub(crate) penalty: Duration,
    pub(crate) successes: u32,
    pub(crate) failures: u32,
}

/// One source's latest report of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RememberedSighting {
    pub(crate) source: Source,
    pub(crate) signed: bool,
    pub(crate) age: Duration,
}

/// Failed hole punches to a peer through an interface of one medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RememberedPunch {
    pub(crate) interface: Medium,
    pub(crate) failures: u32,
    pub(crate) remaining: Duration,
}

/// What [`Engine::import_memory`](crate::Engine::import_memory) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Peers that got at least one route (now or waiting for an interface).
    pub peers: usize,
    /// Routes in the route table now.
    pub routes: usize,
    /// Routes waiting for an interface of their medium to come up.
    pub waiting: usize,
    /// Routes whose remaining lifetime had passed.
    pub expired: usize,
    /// Routes whose address names no transport the engine dials.
    pub unusable: usize,
    /// Peers beyond [`Config::max_peers`](crate::Config::max_peers), with
    /// all their routes.
    pub dropped_peers: usize,
    /// Routes beyond [`Config::max_routes_per_peer`](crate::Config::max_routes_per_peer).
    pub dropped_routes: usize,
    /// Relays added (or whose address was updated).
    pub relays: usize,
    /// Relays beyond [`Config::max_relays`](crate::Config::max_relays).
    pub dropped_relays: usize,
}

impl RouteMemory {
    /// The node's reachability when it was exported.
    pub fn reachability(&self) -> Reachability {
        self.reachability
    }

    /// The relays, in the order the engine added them.
    pub fn relays(&self) -> &[RememberedRelay] {
        &self.relays
    }

    /// The peers, the one with the most recently confirmed route first.
    pub fn peers(&self) -> &[RememberedPeer] {
        &self.peers
    }

    /// The peer's entry, if remembered.
    pub fn peer(&self, peer: &PeerId) -> Option<&RememberedPeer> {
        self.peers.iter().find(|p| p.peer == *peer)
    }

    /// Routes over all peers.
    pub fn route_count(&self) -> usize {
        self.peers.iter().map(|p| p.routes.len()).sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty() && self.relays.is_empty()
    }

    /// The wall-clock time of the export, milliseconds since the Unix
    /// epoch, if the adapter set one ([`with_saved_at_unix_ms`](Self::with_saved_at_unix_ms));
    /// the core never reads a clock.
    pub fn saved_at_unix_ms(&self) -> Option<u64> {
        self.saved_at_unix_ms
    }

    /// The memory stamped with the wall-clock time of its export, so that
    /// the importer can [age](Self::aged) it by the time in between.
    pub fn with_saved_at_unix_ms(mut self, unix_ms: u64) -> Self {
        self.saved_at_unix_ms = Some(unix_ms);
        self
    }

    /// The memory as it stands `by` later (the app was down that long):
    /// every age grows by `by`, every remaining lifetime and backoff
    /// shrinks by it (to zero: [`Engine::import_memory`](crate::Engine::import_memory) skips routes with
    /// none left).
    pub fn aged(&self, by: Duration) -> RouteMemory {
        let mut m = self.clone();
        for p in &mut m.peers {
            for r in &mut p.routes {
                *r = r.aged(by);
            }
            for b in &mut p.punch_backoff {
                b.remaining = b.remaining.saturating_sub(by);
            }
        }
        m
    }
}

impl RememberedRelay {
    /// The relay's peer id.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Its dialable address, without `/p2p-circuit`.
    pub fn addr(&self) -> &Multiaddr {
        &self.addr
    }
}

impl RememberedPeer {
    /// The peer.
    pub fn peer(&self) -> PeerId {
        self.peer
    }

    /// Its routes, the most recently confirmed first.
    pub fn routes(&self) -> &[RememberedRoute] {
        &self.routes
    }

    /// Hole-punch backoffs still running at the export.
    pub fn punch_backoff(&self) -> &[RememberedPunch] {
        &self.punch_backoff
    }

    /// How long ago its most recently confirmed route was confirmed.
    pub fn age(&self) -> Duration {
        self.routes
            .iter()
            .map(|r| r.age)
            .min()
            .unwrap_or(Duration::MAX)
    }
}

impl RememberedRoute {
    /// The address.
    pub fn addr(&self) -> &Multiaddr {
        &self.addr
    }

    /// The medium of the interface it left through, if it was known.
    pub fn interface_medium(&self) -> Option<Medium> {
        self.interface
    }

    /// The sources that reported it, in [`Source`] order.
    pub fn sightings(&self) -> &[RememberedSighting] {
        &self.sightings
    }

    /// How long before the export it was last confirmed: reported by a
    /// source, or carrying an open connection's traffic.
    pub fn age(&self) -> Duration {
        self.age
    }

    /// How long it still lived at the export.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Its smoothed RTT; `None` while it rested on the medium's prior.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// Its RTT variation.
    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    /// RTT samples the estimate rested on.
    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// Its failure penalty at the export (decaying, see
    /// `multidriver_scoring::rtt`).
    pub fn failure_penalty(&self) -> Duration {
        self.penalty
    }

    /// Successful dials in its history.
    pub fn successes(&self) -> u32 {
        self.successes
    }

    /// Failed dials in its history.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether a dial over it connected before (a direct route that did is
    /// dialled first, without a relay beside it).
    pub fn connected_before(&self) -> bool {
        self.successes > 0
    }

    pub(crate) fn aged(&self, by: Duration) -> RememberedRoute {
        let mut r = self.clone();
        r.age = r.age.saturating_add(by);
        r.ttl = r.ttl.saturating_sub(by);
        for s in &mut r.sightings {
            s.age = s.age.saturating_add(by);
        }
        r
    }
}

impl RememberedSighting {
    /// Which source reported the route.
    pub fn source(&self) -> Source {
        self.source
    }

    /// Whether in a signed peer record.
    pub fn signed(&self) -> bool {
        self.signed
    }

    /// How long before the export it last did.
    pub fn age(&self) -> Duration {
        self.age
    }
}

impl RememberedPunch {
    /// The medium of the interface the punches failed through.
    pub fn interface_medium(&self) -> Medium {
        self.interface
    }

    /// Failed punches in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// How long the backoff still ran at the export.
    pub fn remaining(&self) -> Duration {
        self.remaining
    }
}
