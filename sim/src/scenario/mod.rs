//! Scenario files: who is where, which networks exist, what happens when.
//!
//! A scenario is a TOML document (see `scenarios/` for commented examples).
//! Every field is checked; an error names the line, column and field.

use multidriver_scoring::toml_support::parse;
use multidriver_scoring::{Lifecycle, Profile};

use crate::Error;

mod raw;
mod validate;

use raw::RawScenario;
use validate::Validator;

/// Most nodes a scenario may hold: addresses encode the node in 24 bits.
pub const MAX_NODES: u32 = 1 << 20;
/// Longest simulated time, 7 days.
pub const MAX_DURATION_S: f64 = 7.0 * 86_400.0;
/// Most contacts per node.
pub const MAX_CONTACTS: u32 = 16;
/// Largest scenario file read, 4 MiB.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The policies a run compares, in the order they are reported.
pub const ALL_POLICIES: &[&str] = &[
    "multidriver",
    "multidriver:performance",
    "multidriver:balanced",
    "multidriver:battery-saver",
    "multidriver:background",
    "libp2p-stock",
    "libp2p-tuned",
    "tinder",
    "single-dht",
    "single-rendezvous",
    "single-mdns",
    "oracle",
];

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Its name.
    pub name: String,
    /// What it shows.
    pub description: String,
    /// Simulated time, in seconds.
    pub duration_s: f64,
    /// The seed all randomness derives from (the command line may override).
    pub seed: u64,
    /// Policies to compare, in report order.
    pub policies: Vec<String>,
    /// How often route quality is sampled, seconds.
    pub sample_interval_s: f64,
    /// App traffic.
    pub traffic: Traffic,
    /// Link parameters.
    pub links: Links,
    /// Regions of the internet core.
    pub regions: Vec<Region>,
    /// LANs (Wi-Fi or Ethernet segments).
    pub lans: Vec<Lan>,
    /// The DHT, if one exists.
    pub dht: Option<Dht>,
    /// Rendezvous points.
    pub rendezvous: Vec<Rendezvous>,
    /// Groups of identical nodes.
    pub groups: Vec<Group>,
    /// What happens, in file order.
    pub events: Vec<ScheduledEvent>,
    /// Bounds on the run itself.
    pub limits: Limits,
}

/// Bounds on a run, so a policy that runs away stops with an error instead
/// of growing without end.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most events one node may cause in one simulated second (timers,
    /// dials, discovery answers, pings, messages, and the outputs its policy
    /// asks for). Past it the run stops with [`Error::Runaway`] naming the
    /// policy, the node and the event kind.
    pub max_events_per_node_second: u32,
}

/// The default of [`Limits::max_events_per_node_second`]: 20 000. A node of
/// the shipped scenarios causes at most a few hundred events in its busiest
/// second (16 contacts, each with dials, probes and messages); a policy that
/// loops or multiplies its own work crosses this within seconds.
pub const DEFAULT_MAX_EVENTS_PER_NODE_SECOND: u32 = 20_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_events_per_node_second: DEFAULT_MAX_EVENTS_PER_NODE_SECOND,
        }
    }
}

/// Messages the app sends to each contact.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    /// Seconds between two messages to the same contact.
    pub message_interval_s: f64,
    /// Bytes per message.
    pub message_bytes: u32,
    /// Messages held per contact while disconnected; beyond it they are lost.
    pub queue_limit: u32,
}

/// Link-level parameters.
#[derive(Debug, Clone, Copy)]
pub struct Links {
    /// Probability that a round trip over Wi-Fi loses a packet.
    pub wifi_loss: f64,
    /// The same over cellular.
    pub cellular_loss: f64,
    /// The cellular access hop's round trip, milliseconds, when the
    /// scenario sets it (to match a measured network); otherwise the
    /// scoring crate's prior for the generation
    /// (`multidriver_scoring::rtt::access_hop`).
    pub cellular_access_rtt_ms: Option<f64>,
    /// How far BLE reaches, metres.
    pub ble_range_m: f64,
}

/// A region of the internet core.
#[derive(Debug, Clone)]
pub struct Region {
    /// Its name.
    pub name: String,
    /// Core round trip to other regions by index (itself included).
    pub core_rtt_ms: Vec<f64>,
}

/// Whether a LAN is wireless.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LanMedium {
    /// Wi-Fi.
    Wifi,
    /// Ethernet.
    Ethernet,
}

/// A LAN segment: mDNS reaches only nodes attached to it.
#[derive(Debug, Clone)]
pub struct Lan {
    /// Its name.
    pub name: String,
    /// Wi-Fi or Ethernet.
    pub medium: LanMedium,
    /// Round trip between two hosts on it, ms.
    pub rtt_ms: f64,
    /// Whether it has an uplink (validated internet access).
    pub internet: bool,
    /// Its region, by index.
    pub region: usize,
    /// The NAT between it and the internet (its router's).
    pub nat: Nat,
}

/// The NAT in front of an attachment, by its mapping and filtering
/// behaviour (RFC 4787). It decides which inbound packets get through and
/// whether a hole punch (DCUtR) can open a direct path (see
/// `sim/src/nat.rs` and docs/PARAMETERS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Nat {
    /// A public address: every inbound dial gets through.
    None,
    /// Endpoint-independent mapping and filtering ("full cone", RFC 4787
    /// §4.1 and §5): inbound only once the host sent out, but from anyone.
    Cone,
    /// Endpoint-independent mapping, address- and port-dependent filtering
    /// (a typical home router, RFC 4787 §5): inbound only from where the
    /// host sent to.
    AddressDependent,
    /// Address- and port-dependent mapping ("symmetric", RFC 4787 §4.1), as
    /// carrier-grade NATs of mobile networks behave: each destination sees
    /// another external port, so a peer cannot predict where to punch.
    Symmetric,
}

impl Nat {
    /// Every NAT, in table order.
    pub const ALL: [Nat; 4] = [Nat::None, Nat::Cone, Nat::AddressDependent, Nat::Symmetric];

    /// Its name in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Nat::None => "none",
            Nat::Cone => "cone",
            Nat::AddressDependent => "address-dependent",
            Nat::Symmetric => "symmetric",
        }
    }

    /// Parses a scenario file's name (`cgnat` is `symmetric`).
    pub fn from_name(name: &str) -> Option<Nat> {
        Some(match name {
            "none" => Nat::None,
            "cone" | "endpoint-independent" => Nat::Cone,
            "address-dependent" => Nat::AddressDependent,
            "symmetric" | "cgnat" => Nat::Symmetric,
            _ => return None,
        })
    }
}

/// The names `nat` accepts.
pub const NAT_NAMES: &str =
    "none, cone (or endpoint-independent), address-dependent, symmetric (or cgnat)";

/// The DHT model.
#[derive(Debug, Clone, Copy)]
pub struct Dht {
    /// Probability that a lookup finds a record that exists.
    pub lookup_success: f64,
}

/// A rendezvous point.
#[derive(Debug, Clone)]
pub struct Rendezvous {
    /// Its name.
    pub name: String,
    /// Its region, by index.
    pub region: usize,
    /// Outages, `[from_s, to_s]`.
    pub outages: Vec<[f64; 2]>,
    /// Whether it also serves circuit relay v2: private nodes hold a
    /// reservation on it and are reached through it.
    pub relay: bool,
}

/// The cellular generation a group's phones attach with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CellularKind {
    /// 4G / LTE.
    G4,
    /// 5G.
    G5,
}

/// A group of identical nodes.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// How many nodes.
    pub count: u32,
    /// Region, by index.
    pub region: usize,
    /// The Wi-Fi LAN attached at start.
    pub wifi: Option<usize>,
    /// The Ethernet LAN attached at start.
    pub ethernet: Option<usize>,
    /// Cellular attached at start.
    pub cellular: Option<CellularKind>,
    /// The NAT of the carrier its cellular attaches through (Wi-Fi and
    /// Ethernet take their LAN's).
    pub nat: Nat,
    /// Whether nodes have a BLE radio on.
    pub ble: bool,
    /// Centre of the group, metres.
    pub position: [f64; 2],
    /// Nodes are placed uniformly within this distance of the centre.
    pub spread_m: f64,
    /// Battery level at start; `None` on mains.
    pub battery: Option<f64>,
    /// Whether charging.
    pub charging: bool,
    /// Battery lost per hour.
    pub drain_per_hour: f64,
    /// Lifecycle at start.
    pub lifecycle: Lifecycle,
    /// Nodes start uniformly over this many seconds.
    pub start_spread_s: f64,
    /// Whom they dial: (group index, how many of its nodes).
    pub contacts: Vec<(usize, u32)>,
    /// Churn: mean online and offline periods, seconds.
    pub churn: Option<(f64, f64)>,
}

/// What a scheduled event does to each node of its group (or to a server).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Wi-Fi attaches to a LAN (a new network if it was on another).
    WifiUp(usize),
    /// Wi-Fi detaches; the OS reports it.
    WifiDown,
    /// The host warns Wi-Fi is about to go (Android `onLosing`).
    WifiLosing,
    /// Wi-Fi stays up but silently passes nothing.
    WifiStall,
    /// Ethernet attaches to a LAN.
    EthernetUp(usize),
    /// Ethernet detaches.
    EthernetDown,
    /// Cellular attaches (a new address).
    CellularUp,
    /// Cellular detaches.
    CellularDown,
    /// The app changes lifecycle state.
    Lifecycle(Lifecycle),
    /// The battery level jumps; `charging` as given.
    Battery {
        /// New level.
        level: f64,
        /// Charging or not.
        charging: bool,
    },
    /// The node moves (BLE range).
    Move([f64; 2]),
    /// A rendezvous point stops answering.
    RendezvousDown(usize),
    /// A rendezvous point answers again.
    RendezvousUp(usize),
    /// The app process restarts: its connections close and every policy's
    /// agent is rebuilt as at start, except that the `multidriver`
    /// policies carry their route memory over (exported, stored as bytes
    /// and imported into the new engine, as an app would).
    Restart,
}

/// The names `action` accepts.
pub const ACTION_NAMES: &str = "wifi-up, wifi-down, wifi-losing, wifi-stall, ethernet-up, \
ethernet-down, cellular-up, cellular-down, lifecycle, battery, move, rendezvous-down, rendezvous-up, \
restart";

/// An event of the scenario file.
#[derive(Debug, Clone)]
pub struct ScheduledEvent {
    /// When, seconds.
    pub at_s: f64,
    /// The group it applies to (`None` for server events).
    pub group: Option<usize>,
    /// Each node's copy happens at a uniform offset within this many seconds.
    pub spread_s: f64,
    /// What happens.
    pub action: Action,
}

impl Scenario {
    /// Parses and validates a scenario.
    ///
    /// # Errors
    /// [`Error::Scenario`] naming the line, column and field (the file name is
    /// added by [`Scenario::load`]).
    pub fn from_toml_str(text: &str) -> Result<Scenario, Error> {
        let raw: RawScenario = parse(text).map_err(|e| Error::scenario("", e))?;
        Validator { text }.build(raw)
    }

    /// Reads and validates a scenario file.
    ///
    /// # Errors
    /// [`Error::Io`] if it cannot be read or is larger than
    /// [`MAX_FILE_BYTES`]; [`Error::Scenario`] if it is invalid.
    pub fn load(path: &std::path::Path) -> Result<Scenario, Error> {
        use std::io::Read;
        let shown = path.display().to_string();
        let io = |e: std::io::Error| Error::Io {
            path: shown.clone(),
            message: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let mut bytes = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(Error::Io {
                path: shown,
                message: format!("larger than {MAX_FILE_BYTES} bytes"),
            });
        }
        let text = String::from_utf8(bytes).map_err(|e| Error::Io {
            path: shown.clone(),
            message: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        })?;
        Scenario::from_toml_str(&text).map_err(|e| e.in_file(&shown))
    }

    /// Total nodes.
    pub fn node_count(&self) -> u32 {
        self.groups.iter().map(|g| g.count).sum()
    }
}

/// The profile a `multidriver:NAME` policy fixes, if it names one.
pub(crate) fn policy_profile(policy: &str) -> Option<Profile> {
    policy
        .strip_prefix("multidriver:")
        .and_then(|name| Profile::preset(name).ok())
}
