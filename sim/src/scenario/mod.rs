//! Scenario files: who is where, which networks exist, what happens when.
//!
//! A scenario is a TOML document (see `scenarios/` for commented examples).
//! Every field is checked; an error names the line, column and field.

use std::collections::BTreeMap;
use std::ops::Range;

use multidriver_scoring::toml_support::{error_at, parse};
use multidriver_scoring::{Lifecycle, Profile};
use toml::Spanned;

use crate::Error;

mod raw;

use raw::*;

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
}

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
}

/// The names `action` accepts.
pub const ACTION_NAMES: &str = "wifi-up, wifi-down, wifi-losing, wifi-stall, ethernet-up, \
ethernet-down, cellular-up, cellular-down, lifecycle, battery, move, rendezvous-down, rendezvous-up";

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

struct Validator<'a> {
    text: &'a str,
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, message: String) -> Error {
        Error::scenario("", error_at(self.text, span, message))
    }

    fn range(&self, v: &Spanned<f64>, field: &str, lo: f64, hi: f64) -> Result<f64, Error> {
        let x = *v.get_ref();
        if x.is_finite() && (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(self.err(
                v.span(),
                format!("{field} = {x} is outside the allowed range {lo}..={hi}"),
            ))
        }
    }

    fn opt_range(
        &self,
        v: Option<&Spanned<f64>>,
        field: &str,
        lo: f64,
        hi: f64,
        default: f64,
    ) -> Result<f64, Error> {
        v.map_or(Ok(default), |v| self.range(v, field, lo, hi))
    }

    fn lookup(
        &self,
        names: &[&str],
        v: &Spanned<String>,
        field: &str,
        kind: &str,
    ) -> Result<usize, Error> {
        names.iter().position(|n| *n == v.get_ref()).ok_or_else(|| {
            self.err(
                v.span(),
                format!(
                    "{field} = \"{}\" names no {kind}; the {kind}s are: {}",
                    v.get_ref(),
                    if names.is_empty() {
                        "(none)".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
    }

    fn unique(&self, names: &[&str], what: &str) -> Result<(), Error> {
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(self.err(0..0, format!("two {what} are named \"{n}\"")));
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_lines)]
    fn build(&self, raw: RawScenario) -> Result<Scenario, Error> {
        let duration_s = self.range(&raw.duration_s, "duration_s", 1.0, MAX_DURATION_S)?;
        let policies = match &raw.policies {
            None => ALL_POLICIES.iter().map(|p| (*p).to_owned()).collect(),
            Some(list) => {
                let mut out = Vec::new();
                for p in list {
                    if !ALL_POLICIES.contains(&p.get_ref().as_str()) {
                        return Err(self.err(
                            p.span(),
                            format!(
                                "policies: unknown policy \"{}\"; the policies are: {}",
                                p.get_ref(),
                                ALL_POLICIES.join(", ")
                            ),
                        ));
                    }
                    if !out.contains(p.get_ref()) {
                        out.push(p.get_ref().clone());
                    }
                }
                if out.is_empty() {
                    return Err(self.err(0..0, "policies: the list is empty".to_owned()));
                }
                out
            }
        };
        let sample_interval_s = self.opt_range(
            raw.metrics.sample_interval_s.as_ref(),
            "metrics.sample_interval_s",
            0.1,
            3600.0,
            1.0,
        )?;
        let traffic = Traffic {
            message_interval_s: self.opt_range(
                raw.traffic.message_interval_s.as_ref(),
                "traffic.message_interval_s",
                0.05,
                86_400.0,
                5.0,
            )?,
            message_bytes: raw.traffic.message_bytes.unwrap_or(200).clamp(1, 1 << 20),
            queue_limit: raw.traffic.queue_limit.unwrap_or(64).min(1 << 16),
        };
        let links = Links {
            wifi_loss: self.opt_range(
                raw.links.wifi_loss.as_ref(),
                "links.wifi_loss",
                0.0,
                0.5,
                0.0,
            )?,
            cellular_loss: self.opt_range(
                raw.links.cellular_loss.as_ref(),
                "links.cellular_loss",
                0.0,
                0.5,
                0.0,
            )?,
            // BLE reaches ~10–30 m indoors at 0 dBm; 30 m is our assumption,
            // not a measurement.
            ble_range_m: self.opt_range(
                raw.links.ble_range_m.as_ref(),
                "links.ble_range_m",
                0.0,
                1000.0,
                30.0,
            )?,
            cellular_access_rtt_ms: raw
                .links
                .cellular_access_rtt_ms
                .as_ref()
                .map(|v| self.range(v, "links.cellular_access_rtt_ms", 0.1, 2000.0))
                .transpose()?,
        };

        // Regions: a default one if none is given.
        let mut raw_regions = raw.regions;
        if raw_regions.is_empty() {
            raw_regions.push(RawRegion {
                name: "default".to_owned(),
                core_rtt_ms: BTreeMap::new(),
            });
        }
        let region_names: Vec<&str> = raw_regions.iter().map(|r| r.name.as_str()).collect();
        self.unique(&region_names, "regions")?;
        let mut regions = Vec::new();
        for r in &raw_regions {
            let mut core = Vec::new();
            for other in &raw_regions {
                // Defaults: 10 ms inside a region (our assumption: a metro
                // core); 63.3 ms between regions, the median US west↔east
                // RTT (libp2p/test-plans perf results, docs/PARAMETERS.md).
                let default = if other.name == r.name { 10.0 } else { 63.3 };
                let v = r
                    .core_rtt_ms
                    .get(&other.name)
                    .or_else(|| other.core_rtt_ms.get(&r.name));
                core.push(self.opt_range(
                    v,
                    &format!("regions.{}.core_rtt_ms.{}", r.name, other.name),
                    0.0,
                    2000.0,
                    default,
                )?);
            }
            for (k, v) in &r.core_rtt_ms {
                if !region_names.contains(&k.as_str()) {
                    return Err(self.err(
                        v.span(),
                        format!("regions.{}.core_rtt_ms: no region is named \"{k}\"", r.name),
                    ));
                }
            }
            regions.push(Region {
                name: r.name.clone(),
                core_rtt_ms: core,
            });
        }
        let region_of = |v: &Option<Spanned<String>>, field: &str| -> Result<usize, Error> {
            v.as_ref()
                .map_or(Ok(0), |v| self.lookup(&region_names, v, field, "region"))
        };

        let lan_names: Vec<&str> = raw.lans.iter().map(|l| l.name.as_str()).collect();
        self.unique(&lan_names, "lans")?;
        let mut lans = Vec::new();
        for l in &raw.lans {
            let medium = match l.medium.get_ref().as_str() {
                "wifi" => LanMedium::Wifi,
                "ethernet" => LanMedium::Ethernet,
                other => {
                    return Err(self.err(
                        l.medium.span(),
                        format!("lans.medium = \"{other}\": expected wifi or ethernet"),
                    ));
                }
            };
            lans.push(Lan {
                name: l.name.clone(),
                medium,
                rtt_ms: self.range(&l.rtt_ms, "lans.rtt_ms", 0.01, 1000.0)?,
                internet: l.internet,
                region: region_of(&l.region, "lans.region")?,
            });
        }
        let dht = match &raw.dht {
            None => None,
            Some(d) => Some(Dht {
                // Lookups of records that exist nearly always succeed in the
                // IPFS measurements (probe-lab); 0.98 is our assumption.
                lookup_success: self.opt_range(
                    d.lookup_success.as_ref(),
                    "dht.lookup_success",
                    0.0,
                    1.0,
                    0.98,
                )?,
            }),
        };
        let server_names: Vec<&str> = raw.rendezvous.iter().map(|r| r.name.as_str()).collect();
        self.unique(&server_names, "rendezvous points")?;
        let mut rendezvous = Vec::new();
        for r in &raw.rendezvous {
            let mut outages = Vec::new();
            for o in &r.outages {
                let [a, b] = *o.get_ref();
                if !(a.is_finite() && b.is_finite() && 0.0 <= a && a < b) {
                    return Err(self.err(
                        o.span(),
                        format!("rendezvous.outages: [{a}, {b}] must be [from_s, to_s] with 0 <= from_s < to_s"),
                    ));
                }
                outages.push([a, b]);
            }
            rendezvous.push(Rendezvous {
                name: r.name.clone(),
                region: region_of(&r.region, "rendezvous.region")?,
                outages,
            });
        }

        let group_names: Vec<&str> = raw.groups.iter().map(|g| g.name.as_str()).collect();
        self.unique(&group_names, "groups")?;
        if raw.groups.is_empty() {
            return Err(self.err(0..0, "groups: at least one group is needed".to_owned()));
        }
        let lan_of = |v: &Spanned<String>, field: &str, want: LanMedium| -> Result<usize, Error> {
            let i = self.lookup(&lan_names, v, field, "LAN")?;
            if lans[i].medium == want {
                Ok(i)
            } else {
                Err(self.err(
                    v.span(),
                    format!(
                        "{field} = \"{}\" is a{} LAN",
                        v.get_ref(),
                        if want == LanMedium::Wifi {
                            "n Ethernet"
                        } else {
                            " Wi-Fi"
                        }
                    ),
                ))
            }
        };
        let mut groups = Vec::new();
        let mut total: u64 = 0;
        for g in &raw.groups {
            let count = *g.count.get_ref();
            total += u64::from(count);
            if total > u64::from(MAX_NODES) {
                return Err(self.err(
                    g.count.span(),
                    format!("groups.count: more than {MAX_NODES} nodes in all"),
                ));
            }
            let cellular = match &g.cellular {
                None => None,
                Some(c) => Some(match c.get_ref().as_str() {
                    "4g" | "lte" => CellularKind::G4,
                    "5g" => CellularKind::G5,
                    other => {
                        return Err(self.err(
                            c.span(),
                            format!("groups.cellular = \"{other}\": expected 4g or 5g"),
                        ));
                    }
                }),
            };
            let lifecycle = match &g.lifecycle {
                None => Lifecycle::Foreground,
                Some(l) => l
                    .get_ref()
                    .parse()
                    .map_err(|e| self.err(l.span(), format!("groups.lifecycle: {e}")))?,
            };
            let mut contacts = Vec::new();
            for c in &g.contacts {
                let gi = self.lookup(&group_names, &c.group, "groups.contacts.group", "group")?;
                let n = *c.count.get_ref();
                if n > MAX_CONTACTS {
                    return Err(self.err(
                        c.count.span(),
                        format!("groups.contacts.count = {n} is outside the allowed range 0..={MAX_CONTACTS}"),
                    ));
                }
                contacts.push((gi, n));
            }
            let churn = match &g.churn {
                None => None,
                Some(c) => Some((
                    self.range(&c.online_s, "groups.churn.online_s", 1.0, MAX_DURATION_S)?,
                    self.range(&c.offline_s, "groups.churn.offline_s", 1.0, MAX_DURATION_S)?,
                )),
            };
            groups.push(Group {
                name: g.name.clone(),
                count,
                region: region_of(&g.region, "groups.region")?,
                wifi: g
                    .wifi
                    .as_ref()
                    .map(|v| lan_of(v, "groups.wifi", LanMedium::Wifi))
                    .transpose()?,
                ethernet: g
                    .ethernet
                    .as_ref()
                    .map(|v| lan_of(v, "groups.ethernet", LanMedium::Ethernet))
                    .transpose()?,
                cellular,
                ble: g.ble,
                position: g.position,
                spread_m: g.spread_m.clamp(0.0, 1e6),
                battery: g
                    .battery
                    .as_ref()
                    .map(|b| self.range(b, "groups.battery", 0.0, 1.0))
                    .transpose()?,
                charging: g.charging,
                drain_per_hour: self.opt_range(
                    g.drain_per_hour.as_ref(),
                    "groups.drain_per_hour",
                    0.0,
                    1.0,
                    0.0,
                )?,
                lifecycle,
                start_spread_s: self.opt_range(
                    g.start_spread_s.as_ref(),
                    "groups.start_spread_s",
                    0.0,
                    duration_s,
                    0.0,
                )?,
                contacts,
                churn,
            });
        }
        for (g, raw_g) in groups.iter().zip(&raw.groups) {
            for (&(gi, n), rc) in g.contacts.iter().zip(&raw_g.contacts) {
                let available = groups[gi].count - u32::from(std::ptr::eq(g, &groups[gi]));
                if n > available {
                    return Err(self.err(
                        rc.count.span(),
                        format!(
                            "groups.contacts.count = {n}, but group \"{}\" has only {available} other node(s)",
                            groups[gi].name
                        ),
                    ));
                }
            }
        }

        let mut events = Vec::new();
        for e in &raw.events {
            let at_s = self.range(&e.at_s, "events.at_s", 0.0, duration_s)?;
            let spread_s = self.opt_range(
                e.spread_s.as_ref(),
                "events.spread_s",
                0.0,
                MAX_DURATION_S,
                0.0,
            )?;
            let need =
                |v: &Option<Spanned<String>>, field: &str| -> Result<Spanned<String>, Error> {
                    v.clone().ok_or_else(|| {
                        self.err(
                            e.action.span(),
                            format!("events: action \"{}\" needs `{field}`", e.action.get_ref()),
                        )
                    })
                };
            let action = match e.action.get_ref().as_str() {
                "wifi-up" => Action::WifiUp(lan_of(
                    &need(&e.lan, "lan")?,
                    "events.lan",
                    LanMedium::Wifi,
                )?),
                "wifi-down" => Action::WifiDown,
                "wifi-losing" => Action::WifiLosing,
                "wifi-stall" => Action::WifiStall,
                "ethernet-up" => Action::EthernetUp(lan_of(
                    &need(&e.lan, "lan")?,
                    "events.lan",
                    LanMedium::Ethernet,
                )?),
                "ethernet-down" => Action::EthernetDown,
                "cellular-up" => Action::CellularUp,
                "cellular-down" => Action::CellularDown,
                "lifecycle" => {
                    let s = need(&e.state, "state")?;
                    Action::Lifecycle(
                        s.get_ref()
                            .parse()
                            .map_err(|err| self.err(s.span(), format!("events.state: {err}")))?,
                    )
                }
                "battery" => {
                    let level = e.level.as_ref().ok_or_else(|| {
                        self.err(
                            e.action.span(),
                            "events: action \"battery\" needs `level`".to_owned(),
                        )
                    })?;
                    Action::Battery {
                        level: self.range(level, "events.level", 0.0, 1.0)?,
                        charging: e.state.as_ref().is_some_and(|s| s.get_ref() == "charging"),
                    }
                }
                "move" => Action::Move(e.to.ok_or_else(|| {
                    self.err(
                        e.action.span(),
                        "events: action \"move\" needs `to`".to_owned(),
                    )
                })?),
                "rendezvous-down" | "rendezvous-up" => {
                    let s = need(&e.server, "server")?;
                    let i = self.lookup(&server_names, &s, "events.server", "rendezvous point")?;
                    if e.action.get_ref() == "rendezvous-down" {
                        Action::RendezvousDown(i)
                    } else {
                        Action::RendezvousUp(i)
                    }
                }
                other => {
                    return Err(self.err(
                        e.action.span(),
                        format!("events.action = \"{other}\": expected one of {ACTION_NAMES}"),
                    ));
                }
            };
            let server_event =
                matches!(action, Action::RendezvousDown(_) | Action::RendezvousUp(_));
            let group = match (&e.group, server_event) {
                (Some(g), false) => Some(self.lookup(&group_names, g, "events.group", "group")?),
                (None, true) => None,
                (Some(g), true) => {
                    return Err(self.err(
                        g.span(),
                        "events.group: rendezvous events apply to a server, not a group".to_owned(),
                    ));
                }
                (None, false) => {
                    return Err(self.err(
                        e.action.span(),
                        format!("events: action \"{}\" needs `group`", e.action.get_ref()),
                    ));
                }
            };
            events.push(ScheduledEvent {
                at_s,
                group,
                spread_s,
                action,
            });
        }

        let limits = Limits {
            max_events_per_node_second: self.opt_range(
                raw.limits.max_events_per_node_second.as_ref(),
                "limits.max_events_per_node_second",
                10.0,
                10_000_000.0,
                f64::from(DEFAULT_MAX_EVENTS_PER_NODE_SECOND),
            )? as u32,
        };

        Ok(Scenario {
            name: raw.name,
            description: raw.description,
            duration_s,
            seed: raw.seed,
            policies,
            sample_interval_s,
            traffic,
            links,
            regions,
            lans,
            dht,
            rendezvous,
            groups,
            events,
            limits,
        })
    }
}

/// The profile a `multidriver:NAME` policy fixes, if it names one.
pub(crate) fn policy_profile(policy: &str) -> Option<Profile> {
    policy
        .strip_prefix("multidriver:")
        .and_then(|name| Profile::preset(name).ok())
}
