//! The vocabulary of routes: media, transports, sources, route records,
//! network conditions and power state.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};

use crate::Error;
use crate::rtt::RttEstimator;
use crate::time::Timestamp;

/// How long a relay keeps one circuit open when it says nothing else: two
/// minutes, the default of rust-libp2p's relay (libp2p-relay 0.21
/// `behaviour.rs`, `impl Default for Config`: `max_circuit_duration`) and
/// of kubo's (`Swarm.RelayService`).
pub const RELAY_CIRCUIT_DURATION: Duration = Duration::from_secs(2 * 60);

/// How many bytes a relay carries over one circuit, both directions
/// together, when it says nothing else: 128 KiB, the same defaults
/// (`max_circuit_bytes: 1 << 17`; libp2p-relay 0.22 `copy_future.rs` counts
/// both directions against the one limit).
pub const RELAY_CIRCUIT_BYTES: u64 = 1 << 17;

/// How often a relay cuts a circuit over `horizon` for an app that moves
/// `bytes_per_hour` each way: it lasts [`RELAY_CIRCUIT_DURATION`], or less
/// when the app's traffic, both ways, fills [`RELAY_CIRCUIT_BYTES`] sooner.
pub fn circuit_cuts(horizon: Duration, bytes_per_hour: u64) -> f64 {
    let by_time = RELAY_CIRCUIT_DURATION.as_secs_f64();
    let both_ways_per_s = 2.0 * bytes_per_hour as f64 / 3600.0;
    let by_bytes = if bytes_per_hour == 0 {
        f64::INFINITY
    } else {
        RELAY_CIRCUIT_BYTES as f64 / both_ways_per_s
    };
    horizon.as_secs_f64() / by_time.min(by_bytes)
}

/// Generation of a cellular network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CellularGeneration {
    /// GSM/EDGE.
    G2,
    /// UMTS/HSPA.
    G3,
    /// LTE.
    G4,
    /// 5G NR.
    G5,
    /// The host did not say.
    Unknown,
}

/// The physical medium a route leaves this device through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Medium {
    /// Wi-Fi (802.11).
    Wifi,
    /// Wired Ethernet.
    Ethernet,
    /// A cellular data connection.
    Cellular(CellularGeneration),
    /// Bluetooth (Low Energy) to a nearby device.
    Bluetooth,
    /// The loopback interface: the peer runs on this host.
    Loopback,
    /// A relayed route (`/p2p-circuit`): the medium to the relay is unknown.
    Relay,
    /// A medium nobody classified yet.
    Unknown,
}

impl Medium {
    /// Every name [`Medium::from_str`] accepts, for error messages.
    pub const NAMES: &'static str = "wifi, ethernet, cellular, cellular-2g, cellular-3g, cellular-4g (lte), cellular-5g, \
         bluetooth, loopback, relay, unknown";

    /// Number of distinct [`Medium::link_slot`] values.
    pub(crate) const LINK_SLOTS: usize = 7;

    /// Index of the link this medium shares its network conditions with: all
    /// cellular generations share one slot.
    pub(crate) const fn link_slot(self) -> usize {
        match self {
            Medium::Wifi => 0,
            Medium::Ethernet => 1,
            Medium::Cellular(_) => 2,
            Medium::Bluetooth => 3,
            Medium::Loopback => 4,
            Medium::Relay => 5,
            Medium::Unknown => 6,
        }
    }

    /// Whether this is a cellular medium of any generation.
    pub const fn is_cellular(self) -> bool {
        matches!(self, Medium::Cellular(_))
    }
}

impl fmt::Display for Medium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Medium::Wifi => "wifi",
            Medium::Ethernet => "ethernet",
            Medium::Cellular(CellularGeneration::G2) => "cellular-2g",
            Medium::Cellular(CellularGeneration::G3) => "cellular-3g",
            Medium::Cellular(CellularGeneration::G4) => "cellular-4g",
            Medium::Cellular(CellularGeneration::G5) => "cellular-5g",
            Medium::Cellular(CellularGeneration::Unknown) => "cellular",
            Medium::Bluetooth => "bluetooth",
            Medium::Loopback => "loopback",
            Medium::Relay => "relay",
            Medium::Unknown => "unknown",
        })
    }
}

impl FromStr for Medium {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "wifi" => Medium::Wifi,
            "ethernet" => Medium::Ethernet,
            "cellular" => Medium::Cellular(CellularGeneration::Unknown),
            "cellular-2g" => Medium::Cellular(CellularGeneration::G2),
            "cellular-3g" => Medium::Cellular(CellularGeneration::G3),
            "cellular-4g" | "lte" => Medium::Cellular(CellularGeneration::G4),
            "cellular-5g" => Medium::Cellular(CellularGeneration::G5),
            "bluetooth" => Medium::Bluetooth,
            "loopback" => Medium::Loopback,
            "relay" => Medium::Relay,
            "unknown" => Medium::Unknown,
            other => {
                return Err(Error::UnknownName {
                    kind: "medium",
                    name: other.to_owned(),
                    allowed: Medium::NAMES,
                });
            }
        })
    }
}

/// How far away a route's address is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// This host (127.0.0.0/8, ::1).
    Loopback,
    /// The local network: private (RFC 1918), link-local and unique-local
    /// (fc00::/7) addresses.
    Lan,
    /// Anything else: public addresses, DNS names, relayed routes.
    Internet,
}

impl Scope {
    /// The scope of an address, from its first IP component; DNS names and
    /// `/p2p-circuit` routes are on the internet; BLE-style `/memory/` links
    /// are local.
    pub fn of(addr: &Multiaddr) -> Scope {
        if addr.iter().any(|p| matches!(p, Protocol::P2pCircuit)) {
            return Scope::Internet;
        }
        if addr.iter().any(|p| matches!(p, Protocol::Memory(_))) {
            return Scope::Lan;
        }
        for protocol in addr.iter() {
            match protocol {
                Protocol::Ip4(ip) if ip.is_loopback() => return Scope::Loopback,
                Protocol::Ip4(ip) if ip.is_private() || ip.is_link_local() => return Scope::Lan,
                Protocol::Ip6(ip) if ip.is_loopback() => return Scope::Loopback,
                Protocol::Ip6(ip)
                    if ip.is_unicast_link_local() || (ip.segments()[0] & 0xfe00) == 0xfc00 =>
                {
                    return Scope::Lan;
                }
                Protocol::Ip4(_) | Protocol::Ip6(_) => return Scope::Internet,
                _ => {}
            }
        }
        Scope::Internet
    }
}

/// The transport protocol a route is dialled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TransportKind {
    /// QUIC v1 (`/udp/…/quic-v1`).
    Quic,
    /// TCP with Noise and yamux.
    Tcp,
    /// WebRTC-direct.
    WebRtc,
    /// A low-bandwidth, high-latency stream over a BLE-style proximity radio.
    Ble,
}

impl TransportKind {
    /// Every name [`TransportKind::from_str`] accepts, for error messages.
    pub const NAMES: &'static str = "quic, tcp, webrtc, ble";

    /// Round trips from the first packet until the connection can carry a
    /// request (secured and multiplexed).
    pub const fn handshake_round_trips(self) -> u32 {
        match self {
            // QUIC: 1 RTT. Source: libp2p specs `quic/README.md`.
            TransportKind::Quic => 1,
            // TCP + multistream-select + Noise XX + yamux ≈ 4 RTT (3 with early
            // muxer negotiation). Source: libp2p specs and docs, docs/PARAMETERS.md.
            TransportKind::Tcp => 4,
            // WebRTC-direct: STUN binding (1) + DTLS (2) + Noise over a data
            // channel (1). Derived from libp2p specs `webrtc/webrtc-direct.md`;
            // no measurement in docs/PARAMETERS.md.
            TransportKind::WebRtc => 4,
            // BLE-style stream: link-layer connect (1) + Noise XX (2). An
            // estimate from the message flow of our own transport; no
            // measurement yet.
            TransportKind::Ble => 3,
        }
    }

    /// Bytes exchanged (sent, received) by this transport's handshake, for the
    /// energy model. Estimates from the message formats, not measurements:
    /// they matter little next to radio promotion and tail energy.
    pub const fn handshake_bytes(self) -> (u64, u64) {
        match self {
            // Client Initial padded to 1200 B (RFC 9000 §14.1) + Finished;
            // server Initial/Handshake with the libp2p self-signed certificate.
            TransportKind::Quic => (1_500, 3_000),
            // TCP SYN/ACK, multistream-select, Noise XX with identity key and
            // signature, yamux window updates.
            TransportKind::Tcp => (700, 700),
            // STUN, DTLS with certificate, SCTP init, Noise.
            TransportKind::WebRtc => (2_500, 2_500),
            // Noise XX over the BLE stream.
            TransportKind::Ble => (300, 300),
        }
    }

    /// The transport a multiaddr is dialled with, if it names one.
    pub fn from_multiaddr(addr: &Multiaddr) -> Option<TransportKind> {
        let mut tcp = false;
        for protocol in addr.iter() {
            match protocol {
                Protocol::QuicV1 | Protocol::Quic => return Some(TransportKind::Quic),
                Protocol::WebRTCDirect | Protocol::WebRTC => return Some(TransportKind::WebRtc),
                // multidriver's BLE-style links of the proximity radio are
                // addressed `/memory/<station>` (multidriver-routing `ble`).
                Protocol::Memory(_) => return Some(TransportKind::Ble),
                Protocol::Tcp(_) => tcp = true,
                _ => {}
            }
        }
        tcp.then_some(TransportKind::Tcp)
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Quic => "quic",
            TransportKind::Tcp => "tcp",
            TransportKind::WebRtc => "webrtc",
            TransportKind::Ble => "ble",
        })
    }
}

impl FromStr for TransportKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "quic" => TransportKind::Quic,
            "tcp" => TransportKind::Tcp,
            "webrtc" => TransportKind::WebRtc,
            "ble" => TransportKind::Ble,
            other => {
                return Err(Error::UnknownName {
                    kind: "transport",
                    name: other.to_owned(),
                    allowed: TransportKind::NAMES,
                });
            }
        })
    }
}

/// Where the engine learned of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Source {
    /// A Kademlia DHT provider record.
    Dht,
    /// A rendezvous point's registration.
    Rendezvous,
    /// Multicast DNS on the local network.
    Mdns,
    /// A BLE-style proximity sighting.
    Proximity,
    /// The application added it.
    Manual,
    /// The peer connected to us from this address.
    Inbound,
}

impl Source {
    /// Number of variants; a route keeps at most one sighting per source.
    pub const COUNT: usize = 6;

    /// Every name [`Source::from_str`] accepts, for error messages.
    pub const NAMES: &'static str = "dht, rendezvous, mdns, proximity, manual, inbound";

    const fn slot(self) -> usize {
        self as usize
    }

    /// Whether an address from this source is trusted without a signature:
    /// the application's own word, or an address the peer just used.
    pub const fn is_first_hand(self) -> bool {
        matches!(self, Source::Manual | Source::Inbound)
    }
}

impl Source {
    /// Its name, as [`Source::NAMES`] lists it (for logs and metric labels).
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Dht => "dht",
            Source::Rendezvous => "rendezvous",
            Source::Mdns => "mdns",
            Source::Proximity => "proximity",
            Source::Manual => "manual",
            Source::Inbound => "inbound",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "dht" => Source::Dht,
            "rendezvous" => Source::Rendezvous,
            "mdns" => Source::Mdns,
            "proximity" => Source::Proximity,
            "manual" => Source::Manual,
            "inbound" => Source::Inbound,
            other => {
                return Err(Error::UnknownName {
                    kind: "source",
                    name: other.to_owned(),
                    allowed: Source::NAMES,
                });
            }
        })
    }
}

/// One source's latest report of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// Which source reported it.
    pub source: Source,
    /// When it last reported it.
    pub last_seen: Timestamp,
    /// Whether the report came in a signed peer record.
    pub signed: bool,
}

/// The identity of a route: which peer, at which address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteId {
    /// The peer the route leads to.
    pub peer: PeerId,
    /// The address the route dials.
    pub addr: Multiaddr,
}

impl fmt::Display for RouteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.addr)
    }
}

/// Dial outcomes of a route, recent ones weighing more.
///
/// Counts are halved whenever their sum reaches [`DialHistory::WINDOW`], so
/// the record is bounded and old outcomes fade.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DialHistory {
    successes: u32,
    failures: u32,
}

impl DialHistory {
    /// Outcomes kept before both counts are halved. Our choice: enough for a
    /// stable ratio, short enough that a route's last few dozen dials count.
    pub const WINDOW: u32 = 64;

    /// A history with the given counts (halved until within the window).
    pub fn new(successes: u32, failures: u32) -> Self {
        let mut history = DialHistory {
            successes,
            failures,
        };
        history.fit_window();
        history
    }

    /// Records a successful dial.
    pub fn record_success(&mut self) {
        self.successes += 1;
        self.fit_window();
    }

    /// Records a failed dial.
    pub fn record_failure(&mut self) {
        self.failures += 1;
        self.fit_window();
    }

    fn fit_window(&mut self) {
        while self.successes.saturating_add(self.failures) >= Self::WINDOW {
            self.successes /= 2;
            self.failures /= 2;
        }
    }

    /// Successful dials in the window.
    pub fn successes(&self) -> u32 {
        self.successes
    }

    /// Failed dials in the window.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Estimated probability that the next dial succeeds: Laplace's rule of
    /// succession, (s + 1) / (s + f + 2), so an unknown route sits at ½.
    pub fn success_probability(&self) -> f64 {
        (f64::from(self.successes) + 1.0) / (f64::from(self.successes + self.failures) + 2.0)
    }
}

/// Everything the scorer knows about one route.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Peer and address.
    pub id: RouteId,
    /// The medium it leaves this device through.
    pub medium: Medium,
    /// The transport it is dialled with.
    pub transport: TransportKind,
    /// Latency estimate.
    pub rtt: RttEstimator,
    /// Dial outcomes.
    pub dials: DialHistory,
    sightings: [Option<Sighting>; Source::COUNT],
}

impl Route {
    /// A route with no sightings, no dial history and the RTT prior of its
    /// medium and [`Scope`].
    pub fn new(id: RouteId, medium: Medium, transport: TransportKind) -> Self {
        let rtt = RttEstimator::new(medium, Scope::of(&id.addr));
        Route {
            id,
            medium,
            transport,
            rtt,
            dials: DialHistory::default(),
            sightings: [None; Source::COUNT],
        }
    }

    /// A route whose transport is read from its address.
    ///
    /// # Errors
    /// [`Error::UnknownTransport`] if the address names no transport.
    pub fn from_addr(peer: PeerId, addr: Multiaddr, medium: Medium) -> Result<Self, Error> {
        let transport =
            TransportKind::from_multiaddr(&addr).ok_or_else(|| Error::UnknownTransport {
                addr: addr.to_string(),
            })?;
        Ok(Route::new(RouteId { peer, addr }, medium, transport))
    }

    /// Records that `source` reported this route at `now`. A source keeps one
    /// sighting per route (the latest); a signed report stays signed.
    pub fn record_sighting(&mut self, source: Source, signed: bool, now: Timestamp) {
        let slot = &mut self.sightings[source.slot()];
        let previous = *slot;
        *slot = Some(Sighting {
            source,
            last_seen: previous.map_or(now, |p| p.last_seen.max(now)),
            signed: signed || previous.is_some_and(|p| p.signed),
        });
    }

    /// The sources that reported this route, in [`Source`] order.
    pub fn sightings(&self) -> impl Iterator<Item = &Sighting> {
        self.sightings.iter().flatten()
    }

    /// Whether a signed peer record or a first-hand source vouches for it.
    pub fn is_vouched(&self) -> bool {
        self.sightings()
            .any(|s| s.signed || s.source.is_first_hand())
    }
}

/// What the host says about the network a medium is attached to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetworkConditions {
    /// Traffic is counted against a quota (Android `NET_CAPABILITY_NOT_METERED`
    /// absent).
    pub metered: bool,
    /// The path is expensive (iOS `NWPath.isExpensive`: cellular or a
    /// personal hotspot).
    pub expensive: bool,
    /// The user asked to save data (iOS `NWPath.isConstrained`: Low Data
    /// Mode; Android Data Saver).
    pub constrained: bool,
}

impl NetworkConditions {
    /// Whether using the link costs the user money or data allowance: metered,
    /// expensive or constrained. Profiles decide what to do with such links.
    pub const fn is_costly(self) -> bool {
        self.metered || self.expensive || self.constrained
    }
}

/// Network conditions per medium.
///
/// Fixed-size: one entry per medium class (all cellular generations share
/// one). By default cellular is metered and expensive and everything else is
/// free, which is what Android and iOS report on a typical phone until the
/// host says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConditions {
    slots: [NetworkConditions; Medium::LINK_SLOTS],
}

impl Default for LinkConditions {
    fn default() -> Self {
        let mut slots = [NetworkConditions::default(); Medium::LINK_SLOTS];
        slots[Medium::Cellular(CellularGeneration::Unknown).link_slot()] = NetworkConditions {
            metered: true,
            expensive: true,
            constrained: false,
        };
        LinkConditions { slots }
    }
}

impl LinkConditions {
    /// Conditions with no costly link at all.
    pub fn all_free() -> Self {
        LinkConditions {
            slots: [NetworkConditions::default(); Medium::LINK_SLOTS],
        }
    }

    /// The conditions of the link `medium` uses.
    pub fn get(&self, medium: Medium) -> NetworkConditions {
        self.slots[medium.link_slot()]
    }

    /// Sets the conditions of the link `medium` uses (for cellular: every
    /// generation).
    pub fn set(&mut self, medium: Medium, conditions: NetworkConditions) {
        self.slots[medium.link_slot()] = conditions;
    }

    /// Builder form of [`LinkConditions::set`].
    pub fn with(mut self, medium: Medium, conditions: NetworkConditions) -> Self {
        self.set(medium, conditions);
        self
    }
}

/// Whether the app is visible, running in the background, or suspended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// The user is looking at the app.
    #[default]
    Foreground,
    /// The app runs but is not visible.
    Background,
    /// The OS has suspended the app; it runs only in short wake-ups.
    Suspended,
}

impl Lifecycle {
    /// Every name [`Lifecycle::from_str`] accepts, for error messages.
    pub const NAMES: &'static str = "foreground, background, suspended";
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lifecycle::Foreground => "foreground",
            Lifecycle::Background => "background",
            Lifecycle::Suspended => "suspended",
        })
    }
}

impl FromStr for Lifecycle {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Ok(match s {
            "foreground" => Lifecycle::Foreground,
            "background" => Lifecycle::Background,
            "suspended" => Lifecycle::Suspended,
            other => {
                return Err(Error::UnknownName {
                    kind: "lifecycle state",
                    name: other.to_owned(),
                    allowed: Lifecycle::NAMES,
                });
            }
        })
    }
}

/// The device's power situation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerState {
    /// Battery charge in `0.0..=1.0`, or `None` for a device without a
    /// battery (a desktop or server on mains power).
    pub battery: Option<f64>,
    /// Whether the device is charging.
    pub charging: bool,
    /// The app's lifecycle state. Ranking does not read it: the engine maps
    /// lifecycle states to profiles, and ranking takes the profile it is
    /// given.
    pub lifecycle: Lifecycle,
    /// The OS's power-saving mode is on (Android
    /// `PowerManager.isPowerSaveMode()`, iOS
    /// `ProcessInfo.isLowPowerModeEnabled`). The engine treats it as a low
    /// battery whatever the level: the user asked every app to spend less.
    pub power_save: bool,
}

impl PowerState {
    /// A device on mains power without a battery, app in the foreground.
    pub const MAINS: PowerState = PowerState {
        battery: None,
        charging: false,
        lifecycle: Lifecycle::Foreground,
        power_save: false,
    };

    /// A phone on battery at `level` (`0.0..=1.0`), app in the foreground.
    pub const fn on_battery(level: f64) -> Self {
        PowerState {
            battery: Some(level),
            charging: false,
            lifecycle: Lifecycle::Foreground,
            power_save: false,
        }
    }

    /// Whether energy is drawn from mains power (charging, or no battery).
    pub fn on_mains(&self) -> bool {
        self.charging || self.battery.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_circuit_is_cut_by_its_time_or_its_bytes_whichever_comes_first() {
        let ten_minutes = Duration::from_secs(600);
        // Little traffic: the 2 min limit cuts it five times.
        assert_eq!(circuit_cuts(ten_minutes, 1_000), 5.0);
        assert_eq!(circuit_cuts(ten_minutes, 0), 5.0);
        // 1 KiB/s each way fills 128 KiB in 64 s.
        assert_eq!(circuit_cuts(ten_minutes, 1024 * 3600), 600.0 / 64.0);
    }

    #[test]
    fn a_relayed_route_ranks_below_a_direct_one_on_the_same_path() {
        use crate::{Context, LinkConditions, PowerState, Profile, rank};
        let peer = PeerId::random();
        let direct = Route::from_addr(
            peer,
            addr("/ip4/203.0.113.9/udp/4001/quic-v1"),
            Medium::Wifi,
        )
        .unwrap();
        let relayed = Route::from_addr(
            peer,
            addr("/ip4/203.0.113.9/udp/4001/quic-v1/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA/p2p-circuit"),
            Medium::Relay,
        )
        .unwrap();
        let profile = Profile::balanced();
        let ctx = Context {
            profile: &profile,
            links: &LinkConditions::default(),
            power: PowerState::MAINS,
            now: Timestamp::ZERO,
        };
        let routes = [relayed, direct];
        let ranking = rank(&routes, &ctx);
        assert_eq!(ranking.best().map(|b| b.index), Some(1));
        let relay = ranking.entries().iter().find(|e| e.index == 0).unwrap();
        assert!(relay.components.relay_ms > 0.0);
    }

    #[test]
    fn scope_of_addresses() {
        assert_eq!(Scope::of(&addr("/ip4/127.0.0.1/tcp/1")), Scope::Loopback);
        assert_eq!(Scope::of(&addr("/ip6/::1/udp/1/quic-v1")), Scope::Loopback);
        for lan in [
            "/ip4/192.168.1.2/tcp/1",
            "/ip4/10.0.0.1/tcp/1",
            "/ip4/172.16.5.5/tcp/1",
            "/ip4/169.254.1.1/tcp/1",
            "/ip6/fe80::1/tcp/1",
            "/ip6/fd00::1/tcp/1",
        ] {
            assert_eq!(Scope::of(&addr(lan)), Scope::Lan, "{lan}");
        }
        for internet in [
            "/ip4/203.0.113.1/tcp/1",
            "/ip6/2001:db8::1/tcp/1",
            "/dns4/example.net/tcp/1",
            "/ip4/192.168.1.2/tcp/1/p2p-circuit",
            "/ip4/100.64.0.1/tcp/1",
        ] {
            assert_eq!(Scope::of(&addr(internet)), Scope::Internet, "{internet}");
        }
    }

    #[test]
    fn transport_from_multiaddr() {
        assert_eq!(
            TransportKind::from_multiaddr(&addr("/ip4/1.2.3.4/udp/1/quic-v1")),
            Some(TransportKind::Quic)
        );
        assert_eq!(
            TransportKind::from_multiaddr(&addr("/ip4/1.2.3.4/tcp/1")),
            Some(TransportKind::Tcp)
        );
        assert_eq!(
            TransportKind::from_multiaddr(&addr("/ip4/1.2.3.4/udp/1/webrtc-direct")),
            Some(TransportKind::WebRtc)
        );
        assert_eq!(
            TransportKind::from_multiaddr(&addr("/ip4/1.2.3.4/udp/1")),
            None
        );
        assert_eq!(
            TransportKind::from_multiaddr(&addr("/memory/7")),
            Some(TransportKind::Ble)
        );
        assert_eq!(Scope::of(&addr("/memory/7")), Scope::Lan);
    }

    #[test]
    fn names_round_trip_and_unknown_names_list_the_allowed_ones() {
        for m in [
            "wifi",
            "ethernet",
            "cellular",
            "cellular-2g",
            "cellular-3g",
            "cellular-4g",
            "cellular-5g",
            "bluetooth",
            "loopback",
            "relay",
            "unknown",
        ] {
            assert_eq!(m.parse::<Medium>().unwrap().to_string(), m);
        }
        assert_eq!(
            "lte".parse::<Medium>().unwrap(),
            Medium::Cellular(CellularGeneration::G4)
        );
        let err = "fibre".parse::<Medium>().unwrap_err().to_string();
        assert!(
            err.contains("fibre") && err.contains("cellular-5g"),
            "{err}"
        );
        assert!(
            "udp"
                .parse::<TransportKind>()
                .unwrap_err()
                .to_string()
                .contains("quic")
        );
        assert!(
            "gossip"
                .parse::<Source>()
                .unwrap_err()
                .to_string()
                .contains("rendezvous")
        );
        assert!(
            "asleep"
                .parse::<Lifecycle>()
                .unwrap_err()
                .to_string()
                .contains("suspended")
        );
    }

    #[test]
    fn dial_history_is_bounded_and_keeps_the_ratio() {
        let mut h = DialHistory::default();
        assert_eq!(h.success_probability(), 0.5);
        for _ in 0..1_000 {
            h.record_success();
            h.record_success();
            h.record_failure();
        }
        assert!(h.successes() + h.failures() < DialHistory::WINDOW);
        assert!((h.success_probability() - 2.0 / 3.0).abs() < 0.05, "{h:?}");
    }

    #[test]
    fn a_sighting_stays_signed_and_keeps_the_latest_time() {
        let peer = PeerId::random();
        let mut r = Route::from_addr(peer, addr("/ip4/203.0.113.1/tcp/1"), Medium::Wifi).unwrap();
        assert!(!r.is_vouched());
        r.record_sighting(Source::Rendezvous, true, Timestamp::from_millis(10));
        r.record_sighting(Source::Rendezvous, false, Timestamp::from_millis(5));
        let s = r.sightings().next().unwrap();
        assert!(s.signed);
        assert_eq!(s.last_seen, Timestamp::from_millis(10));
        r.record_sighting(Source::Dht, false, Timestamp::from_millis(20));
        assert_eq!(r.sightings().count(), 2);
        let mut inbound =
            Route::from_addr(peer, addr("/ip4/203.0.113.2/tcp/1"), Medium::Wifi).unwrap();
        inbound.record_sighting(Source::Inbound, false, Timestamp::ZERO);
        assert!(inbound.is_vouched());
    }
}
