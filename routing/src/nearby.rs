//! The proximity driver: BLE-style advertisements and scans through a
//! [`ProximityRadio`], turned into routes over the BLE-style links.
//!
//! - **Advertise** `namespace`: the radio advertises the namespace's token,
//!   SHA-256(`"/multidriver/ble/"` + namespace) cut to 16 bytes (one
//!   namespace at a time: a radio sends one advertisement).
//! - **Discover** `namespace`: the radio scans for one scan window; each
//!   advertiser heard with the namespace's token is a candidate at its link
//!   address. An advertisement is too small for a peer id, so the driver
//!   opens one short link to each new advertiser to learn its peer id in
//!   the Noise handshake (Berty's BLE driver does the same through a GATT
//!   exchange), closes it, remembers the peer for that address, and
//!   reports the route. The engine then dials its own connection.

use std::collections::{HashMap, VecDeque};
use std::task::Context;
use std::time::{Duration, Instant};

use crate::DriverEvent;
use futures_timer::Delay;
use libp2p::futures::FutureExt;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{CloseConnection, ConnectionId, FromSwarm, ToSwarm};
use libp2p::{Multiaddr, PeerId};
use multidriver_core::{DriverCaps, EnergyClass, QueryId, Reach};
use multidriver_scoring::Source;
use sha2::{Digest, Sha256};

use crate::proximity::{ProximityRadio, TOKEN_LEN, Token};

/// One scan window: a balanced-mode scan period, 730 ms (AOSP
/// `ScanManager.java`, docs/PARAMETERS.md).
pub const SCAN_WINDOW: Duration = Duration::from_millis(730);

/// How often sightings are drained while scanning or resolving: our
/// choice, a fraction of the scan window.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// How long a scan waits after its window for links still resolving peer
/// ids: our choice, about a BLE connection setup and a Noise handshake at
/// BLE's latency, with margin.
const RESOLVE_GRACE: Duration = Duration::from_secs(3);

/// Resolution links remembered after they were given up, to close them if
/// they connect late; at the bound the oldest is forgotten (it then idles
/// out). Our choice.
const MAX_ABANDONED: usize = 64;

/// How long a route from a sighting is trusted: our choice; a phone in
/// range now may walk away within a minute, and a new scan renews it.
pub const PROXIMITY_ROUTE_TTL: Duration = Duration::from_secs(60);

/// The proximity driver's capabilities.
pub const PROXIMITY_CAPS: DriverCaps = DriverCaps {
    kind: Source::Proximity,
    reach: Reach::Lan,
    energy: EnergyClass::Medium,
    typical_latency: SCAN_WINDOW,
    signed_records: false,
};

/// The radio and its addressing, for [`crate::DiscoveryConfig::with_proximity`].
#[non_exhaustive]
pub struct ProximityConfig {
    radio: Box<dyn ProximityRadio + Send>,
    address_of: fn(u64) -> Multiaddr,
    pub(crate) max_known: usize,
}

impl std::fmt::Debug for ProximityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProximityConfig")
            .field("max_known", &self.max_known)
            .finish_non_exhaustive()
    }
}

impl ProximityConfig {
    /// The host's radio; `address_of` turns an advertiser's link address
    /// into the route to it (the host's BLE transport's address).
    pub fn new(radio: Box<dyn ProximityRadio + Send>, address_of: fn(u64) -> Multiaddr) -> Self {
        ProximityConfig {
            radio,
            address_of,
            max_known: 256,
        }
    }

    /// The in-process radio, addressed as [`crate::ble`] does.
    pub fn in_process(radio: crate::proximity::InProcessRadio) -> Self {
        Self::new(Box::new(radio), crate::ble::address)
    }

    /// Advertisers whose peer id is remembered. At the bound the one seen
    /// longest ago is forgotten (and resolved again if heard again).
    /// Default 256.
    pub fn max_known(&self) -> usize {
        self.max_known
    }

    /// Builder: sets [`max_known`](Self::max_known).
    pub fn with_max_known(mut self, max_known: usize) -> Self {
        self.max_known = max_known;
        self
    }
}

/// The token advertised for a namespace.
pub fn namespace_token(namespace: &str) -> Token {
    let digest = Sha256::new()
        .chain_update(b"/multidriver/ble/")
        .chain_update(namespace.as_bytes())
        .finalize();
    let mut bytes = [0u8; TOKEN_LEN];
    bytes.copy_from_slice(&digest[..TOKEN_LEN]);
    Token::new(bytes)
}

struct Scan {
    query: QueryId,
    token: Token,
    until: Instant,
    /// Advertisers already reported to this scan.
    reported: Vec<u64>,
}

pub(crate) struct Nearby {
    radio: Box<dyn ProximityRadio + Send>,
    address_of: fn(u64) -> Multiaddr,
    max_known: usize,
    scans: Vec<Scan>,
    scanning: bool,
    /// The namespace on air.
    advertising: Option<String>,
    /// Links opened to learn an advertiser's peer id: link → its address
    /// and when it was dialled.
    resolving: HashMap<ConnectionId, (u64, Instant)>,
    /// Resolution links given up on; closed if they connect after all.
    abandoned: VecDeque<ConnectionId>,
    /// Advertiser address → peer id, and when last heard.
    known: HashMap<u64, (PeerId, Instant)>,
    timer: Option<Delay>,
    pub(crate) actions: VecDeque<ToSwarm<DriverEvent, std::convert::Infallible>>,
}

impl Nearby {
    pub(crate) fn new(config: ProximityConfig) -> Self {
        Nearby {
            radio: config.radio,
            address_of: config.address_of,
            max_known: config.max_known,
            scans: Vec::new(),
            scanning: false,
            advertising: None,
            resolving: HashMap::new(),
            abandoned: VecDeque::new(),
            known: HashMap::new(),
            timer: None,
            actions: VecDeque::new(),
        }
    }

    pub(crate) fn operations(&self) -> usize {
        self.scans.len()
    }

    /// A radio sends one advertisement: a second namespace is refused (the
    /// engine counts the failure and backs off) while the first is on air.
    pub(crate) fn advertise(&mut self, namespace: &str) -> Result<(), String> {
        if let Some(current) = &self.advertising
            && current != namespace
        {
            return Err(format!(
                "the radio already advertises namespace {current:?}; one at a time"
            ));
        }
        self.radio
            .advertise(namespace_token(namespace))
            .map_err(|e| e.to_string())?;
        self.advertising = Some(namespace.to_owned());
        Ok(())
    }

    pub(crate) fn stop_advertising(&mut self, namespace: &str) {
        if self.advertising.as_deref() == Some(namespace) {
            self.radio.stop_advertising();
            self.advertising = None;
        }
    }

    pub(crate) fn discover(&mut self, query: QueryId, namespace: &str) -> Result<(), String> {
        if !self.scanning {
            self.radio.start_scan().map_err(|e| e.to_string())?;
            self.scanning = true;
        }
        self.scans.push(Scan {
            query,
            token: namespace_token(namespace),
            until: Instant::now() + SCAN_WINDOW,
            reported: Vec::new(),
        });
        Ok(())
    }

    pub(crate) fn cancel(&mut self, query: QueryId) {
        self.scans.retain(|s| s.query != query);
    }

    fn report(&mut self, scan: usize, from: u64, peer: PeerId) {
        let s = &mut self.scans[scan];
        if s.reported.contains(&from) {
            return;
        }
        s.reported.push(from);
        self.actions
            .push_back(ToSwarm::GenerateEvent(DriverEvent::Discovered {
                query: Some(s.query),
                source: Source::Proximity,
                peer,
                addrs: vec![(self.address_of)(from)],
                signed: false,
                ttl: PROXIMITY_ROUTE_TTL,
            }));
    }

    fn remember(&mut self, from: u64, peer: PeerId) {
        if !self.known.contains_key(&from) && self.known.len() >= self.max_known {
            let oldest = self
                .known
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.known.remove(&k);
            }
        }
        self.known.insert(from, (peer, Instant::now()));
    }

    pub(crate) fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if let Some(i) = self.abandoned.iter().position(|c| *c == e.connection_id) {
                    self.abandoned.remove(i);
                    self.actions.push_back(ToSwarm::CloseConnection {
                        peer_id: e.peer_id,
                        connection: CloseConnection::One(e.connection_id),
                    });
                    return;
                }
                let Some((from, _)) = self.resolving.remove(&e.connection_id) else {
                    return;
                };
                self.remember(from, e.peer_id);
                for i in 0..self.scans.len() {
                    if self.scans[i].reported.contains(&from) {
                        continue;
                    }
                    self.report(i, from, e.peer_id);
                }
                // The peer id was all this link was for.
                self.actions.push_back(ToSwarm::CloseConnection {
                    peer_id: e.peer_id,
                    connection: CloseConnection::One(e.connection_id),
                });
            }
            FromSwarm::DialFailure(f) => {
                self.resolving.remove(&f.connection_id);
                self.abandoned.retain(|c| *c != f.connection_id);
            }
            _ => {}
        }
    }

    /// Drains sightings, resolves new advertisers, ends scans whose window
    /// passed. Returns the outcomes of finished scans.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Vec<QueryId> {
        if self.scans.is_empty() && self.resolving.is_empty() {
            self.timer = None;
            if self.scanning {
                self.radio.stop_scan();
                self.scanning = false;
            }
            return Vec::new();
        }
        let timer = self.timer.get_or_insert_with(|| Delay::new(POLL_EVERY));
        if timer.poll_unpin(cx).is_pending() {
            return Vec::new();
        }
        self.timer = None;
        while let Some(sighting) = self.radio.poll_sighting() {
            let from = sighting.from;
            let wanted: Vec<usize> = (0..self.scans.len())
                .filter(|i| self.scans[*i].token == sighting.token)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            if let Some((peer, seen)) = self.known.get_mut(&from) {
                *seen = Instant::now();
                let peer = *peer;
                for i in wanted {
                    self.report(i, from, peer);
                }
            } else if !self.resolving.values().any(|(f, _)| *f == from) {
                let opts = DialOpts::unknown_peer_id()
                    .address((self.address_of)(from))
                    .build();
                self.resolving
                    .insert(opts.connection_id(), (from, Instant::now()));
                self.actions.push_back(ToSwarm::Dial { opts });
            }
        }
        let now = Instant::now();
        // A resolution that has not connected within the grace is given up
        // (a suspended peer may accept a link and never finish Noise).
        let stale: Vec<ConnectionId> = self
            .resolving
            .iter()
            .filter(|(_, (_, at))| *at + RESOLVE_GRACE <= now)
            .map(|(c, _)| *c)
            .collect();
        for c in stale {
            self.resolving.remove(&c);
            if self.abandoned.len() >= MAX_ABANDONED {
                self.abandoned.pop_front();
            }
            self.abandoned.push_back(c);
        }
        let mut done = Vec::new();
        // A scan waits for the peer ids it is resolving, a little.
        let resolved = self.resolving.is_empty();
        self.scans.retain(|s| {
            let over = s.until <= now && (resolved || s.until + RESOLVE_GRACE <= now);
            if over {
                done.push(s.query);
            }
            !over
        });
        // Come back for the next sightings.
        let mut timer = Delay::new(POLL_EVERY);
        let _ = timer.poll_unpin(cx);
        self.timer = Some(timer);
        done
    }
}
