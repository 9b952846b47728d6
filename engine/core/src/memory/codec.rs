//! The route memory's binary form, version 1 (docs/DESIGN.md, "Route
//! memory"). Integers are big-endian; every variable-length field carries
//! its length first. Decoding allocates nothing beyond what the remaining
//! input can hold, and rejects counts beyond the format's bounds.
//!
//! ```text
//! magic "MDRM" · version u8 (1) · flags u8 (bit 0: a wall-clock time follows;
//! others 0) · reachability u8 (0 unknown, 1 public, 2 private)
//! [saved_at_unix_ms u64]
//! relays u16, each: peer id (u8 length + bytes) · address (u16 length + bytes)
//! peers u32, each: peer id (u8 length + bytes)
//!   routes u16, each: address (u16 length + bytes) · interface medium u8
//!     (255: not known) · age · remaining ttl · srtt (u64::MAX: no sample) ·
//!     rttvar · samples u32 · failure penalty · dial successes u32 · dial
//!     failures u32 · sightings u8, each: source u8 · signed u8 (0 or 1) · age
//!   punch backoffs u8, each: interface medium u8 · failures u32 · remaining
//! ```
//!
//! Every duration is a u64 of nanoseconds (saturating at 584 years), so a
//! memory survives the round trip exactly.

use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use multidriver_scoring::{CellularGeneration, Medium, Source};

use super::{
    RememberedPeer, RememberedPunch, RememberedRelay, RememberedRoute, RememberedSighting,
    RouteMemory,
};
use crate::Error;
use crate::reach::Reachability;

/// The first bytes of a stored route memory.
pub const MEMORY_MAGIC: [u8; 4] = *b"MDRM";

/// The format version [`RouteMemory::to_bytes`] writes and
/// [`RouteMemory::from_bytes`] reads; any other is refused with
/// [`Error::MemoryVersion`].
pub const MEMORY_VERSION: u8 = 1;

/// Most peers a stored memory may hold. Ours: 64 times the default
/// `Config::max_peers` (1024), so any sensible configuration fits.
pub const MEMORY_MAX_PEERS: usize = 65_536;

/// Most routes per peer. Ours: 16 times the default
/// `Config::max_routes_per_peer` (16).
pub const MEMORY_MAX_ROUTES: usize = 256;

/// Most relays. Ours: 32 times the default `Config::max_relays` (8).
pub const MEMORY_MAX_RELAYS: usize = 256;

/// Longest address, in bytes. Ours: a relayed QUIC address with two peer
/// ids is under 200 bytes; DNS names are at most 253 (RFC 1035 §2.3.4).
pub const MEMORY_MAX_ADDR_BYTES: usize = 1024;

/// Longest peer id, in bytes: an identity multihash of a 42-byte ed25519
/// or secp256k1 key is 38 bytes, a SHA-256 one 34 (libp2p peer-ids spec);
/// ours: the u8 length field's limit.
const MAX_PEER_ID_BYTES: usize = 255;

/// `flags` bit 0: a wall-clock time of the export follows.
const FLAG_SAVED_AT: u8 = 1;

/// The medium code of a route whose interface medium was not known.
const MEDIUM_NOT_KNOWN: u8 = 255;

/// Smallest encodings, to bound allocations by the input left: a relay
/// (two length fields), a peer (id length + two counts), a route (fixed
/// fields), a sighting, a punch backoff.
const MIN_RELAY: usize = 1 + 2;
const MIN_PEER: usize = 1 + 2 + 1;
const MIN_ROUTE: usize = 2 + 1 + 8 * 3 + 8 + 4 + 8 + 4 + 4 + 1;
const MIN_SIGHTING: usize = 1 + 1 + 8;
const MIN_PUNCH: usize = 1 + 4 + 8;

impl RouteMemory {
    /// The memory in its binary form (version [`MEMORY_VERSION`]).
    /// Counts beyond the format's bounds ([`MEMORY_MAX_PEERS`],
    /// [`MEMORY_MAX_ROUTES`], [`MEMORY_MAX_RELAYS`]) and addresses longer
    /// than [`MEMORY_MAX_ADDR_BYTES`] are left out (an exported memory has
    /// none).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + 128 * self.route_count());
        out.extend_from_slice(&MEMORY_MAGIC);
        out.push(MEMORY_VERSION);
        out.push(if self.saved_at_unix_ms.is_some() {
            FLAG_SAVED_AT
        } else {
            0
        });
        out.push(match self.reachability {
            Reachability::Unknown => 0,
            Reachability::Public => 1,
            Reachability::Private => 2,
        });
        if let Some(t) = self.saved_at_unix_ms {
            out.extend_from_slice(&t.to_be_bytes());
        }
        let relays: Vec<&RememberedRelay> = self
            .relays
            .iter()
            .filter(|r| r.addr.as_ref().len() <= MEMORY_MAX_ADDR_BYTES)
            .take(MEMORY_MAX_RELAYS)
            .collect();
        out.extend_from_slice(&(relays.len() as u16).to_be_bytes());
        for r in relays {
            put_peer(&mut out, &r.peer);
            put_addr(&mut out, &r.addr);
        }
        let peers = &self.peers[..self.peers.len().min(MEMORY_MAX_PEERS)];
        out.extend_from_slice(&(peers.len() as u32).to_be_bytes());
        for p in peers {
            put_peer(&mut out, &p.peer);
            let routes: Vec<&RememberedRoute> = p
                .routes
                .iter()
                .filter(|r| r.addr.as_ref().len() <= MEMORY_MAX_ADDR_BYTES)
                .take(MEMORY_MAX_ROUTES)
                .collect();
            out.extend_from_slice(&(routes.len() as u16).to_be_bytes());
            for r in routes {
                put_addr(&mut out, &r.addr);
                out.push(r.interface.map_or(MEDIUM_NOT_KNOWN, medium_code));
                put_u64(&mut out, nanos(r.age));
                put_u64(&mut out, nanos(r.ttl));
                put_u64(&mut out, r.srtt.map_or(u64::MAX, srtt_nanos));
                put_u64(&mut out, nanos(r.rttvar));
                out.extend_from_slice(&r.samples.to_be_bytes());
                put_u64(&mut out, nanos(r.penalty));
                out.extend_from_slice(&r.successes.to_be_bytes());
                out.extend_from_slice(&r.failures.to_be_bytes());
                let sightings = &r.sightings[..r.sightings.len().min(Source::COUNT)];
                out.push(sightings.len() as u8);
                for s in sightings {
                    out.push(source_code(s.source));
                    out.push(u8::from(s.signed));
                    put_u64(&mut out, nanos(s.age));
                }
            }
            let punches = &p.punch_backoff[..p.punch_backoff.len().min(MAX_PUNCHES)];
            out.push(punches.len() as u8);
            for b in punches {
                out.push(medium_code(b.interface));
                out.extend_from_slice(&b.failures.to_be_bytes());
                put_u64(&mut out, nanos(b.remaining));
            }
        }
        out
    }

    /// Reads a memory written by [`to_bytes`](Self::to_bytes).
    ///
    /// # Errors
    /// [`Error::MemoryMagic`] when the input does not start with
    /// [`MEMORY_MAGIC`]; [`Error::MemoryVersion`] for any version but
    /// [`MEMORY_VERSION`]; [`Error::MemoryTruncated`] naming the byte and
    /// the field that is cut off; [`Error::MemoryInvalid`] naming the byte
    /// and what is wrong (an invalid peer id or multiaddr, and whose; an
    /// unknown medium or source code; unknown flags; bytes after the end);
    /// [`Error::MemoryTooMany`] for a count beyond the format's bounds.
    pub fn from_bytes(bytes: &[u8]) -> Result<RouteMemory, Error> {
        let mut r = Reader { bytes, at: 0 };
        if bytes.len() < MEMORY_MAGIC.len() || bytes[..MEMORY_MAGIC.len()] != MEMORY_MAGIC {
            return Err(Error::MemoryMagic);
        }
        r.at = MEMORY_MAGIC.len();
        let version = r.u8("version")?;
        if version != MEMORY_VERSION {
            return Err(Error::MemoryVersion {
                version,
                supported: MEMORY_VERSION,
            });
        }
        let flags_at = r.at;
        let flags = r.u8("flags")?;
        if flags & !FLAG_SAVED_AT != 0 {
            return Err(r.invalid(flags_at, format!("unknown flags {flags:#04x}")));
        }
        let reach_at = r.at;
        let reachability = match r.u8("reachability")? {
            0 => Reachability::Unknown,
            1 => Reachability::Public,
            2 => Reachability::Private,
            other => {
                return Err(r.invalid(reach_at, format!("unknown reachability code {other}")));
            }
        };
        let saved_at_unix_ms = if flags & FLAG_SAVED_AT != 0 {
            Some(r.u64("saved_at_unix_ms")?)
        } else {
            None
        };
        let n = r.count16("relay count", "relays", MEMORY_MAX_RELAYS)?;
        let mut relays = Vec::with_capacity(r.fit(n, MIN_RELAY));
        for i in 0..n {
            let peer = r.peer(&format!("relay {i}"))?;
            let addr = r.addr(&format!("relay {peer}"))?;
            relays.push(RememberedRelay { peer, addr });
        }
        let count_at = r.at;
        let n = r.u32("peer count")? as usize;
        if n > MEMORY_MAX_PEERS {
            return Err(r.too_many("peers", n, MEMORY_MAX_PEERS, count_at));
        }
        let mut peers = Vec::with_capacity(r.fit(n, MIN_PEER));
        for i in 0..n {
            let peer = r.peer(&format!("peer {i}"))?;
            let n = r.count16("route count", "routes", MEMORY_MAX_ROUTES)?;
            let mut routes = Vec::with_capacity(r.fit(n, MIN_ROUTE));
            for j in 0..n {
                routes.push(r.route(&peer, j)?);
            }
            let count_at = r.at;
            let n = r.u8("punch backoff count")? as usize;
            if n > MAX_PUNCHES {
                return Err(r.too_many("punch backoffs", n, MAX_PUNCHES, count_at));
            }
            let mut punch_backoff = Vec::with_capacity(r.fit(n, MIN_PUNCH));
            for _ in 0..n {
                let medium_at = r.at;
                let interface = r.medium("punch backoff medium")?.ok_or_else(|| {
                    r.invalid(
                        medium_at,
                        format!("punch backoff of peer {peer} without a medium"),
                    )
                })?;
                punch_backoff.push(RememberedPunch {
                    interface,
                    failures: r.u32("punch failures")?,
                    remaining: Duration::from_nanos(r.u64("punch backoff remaining")?),
                });
            }
            peers.push(RememberedPeer {
                peer,
                routes,
                punch_backoff,
            });
        }
        if r.at != bytes.len() {
            return Err(r.invalid(r.at, format!("{} bytes after the end", bytes.len() - r.at)));
        }
        Ok(RouteMemory {
            saved_at_unix_ms,
            reachability,
            relays,
            peers,
        })
    }
}

/// Most punch backoffs per peer. Ours: one per medium code (11).
const MAX_PUNCHES: usize = 11;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], Error> {
        if self.bytes.len() - self.at < n {
            return Err(Error::MemoryTruncated {
                at: self.at,
                field: field.to_owned(),
            });
        }
        let s = &self.bytes[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    fn u8(&mut self, field: &str) -> Result<u8, Error> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &str) -> Result<u16, Error> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, field: &str) -> Result<u32, Error> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, field: &str) -> Result<u64, Error> {
        let b = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// How many entries of at least `min` bytes the input left can hold,
    /// at most `n`: the capacity to allocate for a count read from input.
    fn fit(&self, n: usize, min: usize) -> usize {
        n.min((self.bytes.len() - self.at) / min)
    }

    fn count16(&mut self, field: &str, what: &'static str, limit: usize) -> Result<usize, Error> {
        let at = self.at;
        let n = self.u16(field)? as usize;
        if n > limit {
            return Err(self.too_many(what, n, limit, at));
        }
        Ok(n)
    }

    fn too_many(&self, what: &'static str, count: usize, limit: usize, at: usize) -> Error {
        Error::MemoryTooMany {
            what,
            count,
            limit,
            at,
        }
    }

    fn invalid(&self, at: usize, reason: String) -> Error {
        Error::MemoryInvalid { at, reason }
    }

    fn peer(&mut self, whose: &str) -> Result<PeerId, Error> {
        let at = self.at;
        let len = self.u8(&format!("{whose}'s peer id length"))? as usize;
        let bytes = self.take(len, &format!("{whose}'s peer id"))?;
        PeerId::from_bytes(bytes)
            .map_err(|e| self.invalid(at, format!("invalid peer id of {whose}: {e}")))
    }

    fn addr(&mut self, whose: &str) -> Result<Multiaddr, Error> {
        let at = self.at;
        let len = self.u16(&format!("{whose}'s address length"))? as usize;
        if len > MEMORY_MAX_ADDR_BYTES {
            return Err(self.too_many("address bytes", len, MEMORY_MAX_ADDR_BYTES, at));
        }
        let bytes = self.take(len, &format!("{whose}'s address"))?;
        Multiaddr::try_from(bytes.to_vec())
            .map_err(|e| self.invalid(at, format!("invalid multiaddr in {whose}: {e}")))
    }

    fn medium(&mut self, field: &str) -> Result<Option<Medium>, Error> {
        let at = self.at;
        let code = self.u8(field)?;
        if code == MEDIUM_NOT_KNOWN {
            return Ok(None);
        }
        medium_of(code)
            .map(Some)
            .ok_or_else(|| self.invalid(at, format!("unknown medium code {code}")))
    }

    fn route(&mut self, peer: &PeerId, j: usize) -> Result<RememberedRoute, Error> {
        let whose = format!("peer {peer}'s route {j}");
        let addr = self.addr(&whose)?;
        let interface = self.medium("route medium")?;
        let age = Duration::from_nanos(self.u64("route age")?);
        let ttl = Duration::from_nanos(self.u64("route ttl")?);
        let srtt = match self.u64("route srtt")? {
            u64::MAX => None,
            ns => Some(Duration::from_nanos(ns)),
        };
        let rttvar = Duration::from_nanos(self.u64("route rttvar")?);
        let samples = self.u32("route samples")?;
        let penalty = Duration::from_nanos(self.u64("route failure penalty")?);
        let successes = self.u32("route dial successes")?;
        let failures = self.u32("route dial failures")?;
        let count_at = self.at;
        let n = self.u8("sighting count")? as usize;
        if n > Source::COUNT {
            return Err(self.too_many("sightings", n, Source::COUNT, count_at));
        }
        let mut sightings = Vec::with_capacity(self.fit(n, MIN_SIGHTING));
        for _ in 0..n {
            let at = self.at;
            let code = self.u8("sighting source")?;
            let source = source_of(code).ok_or_else(|| {
                self.invalid(at, format!("unknown source code {code} in {whose}"))
            })?;
            let at = self.at;
            let signed = match self.u8("sighting signed")? {
                0 => false,
                1 => true,
                other => {
                    return Err(self.invalid(at, format!("signed flag {other} in {whose}")));
                }
            };
            let age = Duration::from_nanos(self.u64("sighting age")?);
            sightings.push(RememberedSighting {
                source,
                signed,
                age,
            });
        }
        Ok(RememberedRoute {
            addr,
            interface,
            sightings,
            age,
            ttl,
            srtt,
            rttvar,
            samples,
            penalty,
            successes,
            failures,
        })
    }
}

fn put_u64(out: &mut Vec<u8>, x: u64) {
    out.extend_from_slice(&x.to_be_bytes());
}

fn put_peer(out: &mut Vec<u8>, peer: &PeerId) {
    let b = peer.to_bytes();
    // A peer id is a multihash of at most 64 digest bytes: it fits a u8.
    let b = &b[..b.len().min(MAX_PEER_ID_BYTES)];
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

fn put_addr(out: &mut Vec<u8>, addr: &Multiaddr) {
    let b = addr.as_ref();
    out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    out.extend_from_slice(b);
}

/// A duration in nanoseconds, saturating at `u64::MAX` (about 584 years).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// As [`nanos`], one below: `u64::MAX` stands for "no sample" in the srtt
/// field. Only the srtt field is capped there; the others keep `u64::MAX`,
/// so every decoded snapshot encodes to the same bytes.
fn srtt_nanos(d: Duration) -> u64 {
    nanos(d).min(u64::MAX - 1)
}

fn medium_code(m: Medium) -> u8 {
    match m {
        Medium::Wifi => 0,
        Medium::Ethernet => 1,
        Medium::Cellular(CellularGeneration::G2) => 2,
        Medium::Cellular(CellularGeneration::G3) => 3,
        Medium::Cellular(CellularGeneration::G4) => 4,
        Medium::Cellular(CellularGeneration::G5) => 5,
        Medium::Cellular(CellularGeneration::Unknown) => 6,
        Medium::Bluetooth => 7,
        Medium::Loopback => 8,
        Medium::Relay => 9,
        Medium::Unknown => 10,
    }
}

fn medium_of(code: u8) -> Option<Medium> {
    Some(match code {
        0 => Medium::Wifi,
        1 => Medium::Ethernet,
        2 => Medium::Cellular(CellularGeneration::G2),
        3 => Medium::Cellular(CellularGeneration::G3),
        4 => Medium::Cellular(CellularGeneration::G4),
        5 => Medium::Cellular(CellularGeneration::G5),
        6 => Medium::Cellular(CellularGeneration::Unknown),
        7 => Medium::Bluetooth,
        8 => Medium::Loopback,
        9 => Medium::Relay,
        10 => Medium::Unknown,
        _ => return None,
    })
}

fn source_code(s: Source) -> u8 {
    match s {
        Source::Dht => 0,
        Source::Rendezvous => 1,
        Source::Mdns => 2,
        Source::Proximity => 3,
        Source::Manual => 4,
        Source::Inbound => 5,
    }
}

fn source_of(code: u8) -> Option<Source> {
    Some(match code {
        0 => Source::Dht,
        1 => Source::Rendezvous,
        2 => Source::Mdns,
        3 => Source::Proximity,
        4 => Source::Manual,
        5 => Source::Inbound,
        _ => return None,
    })
}
