//! The scenario file as read, before validation: every field as written,
//! with its position for error messages.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawScenario {
    pub(super) name: String,
    #[serde(default)]
    pub(super) description: String,
    pub(super) duration_s: Spanned<f64>,
    #[serde(default)]
    pub(super) seed: u64,
    #[serde(default)]
    pub(super) policies: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(super) metrics: RawMetrics,
    #[serde(default)]
    pub(super) traffic: RawTraffic,
    #[serde(default)]
    pub(super) links: RawLinks,
    #[serde(default)]
    pub(super) regions: Vec<RawRegion>,
    #[serde(default)]
    pub(super) lans: Vec<RawLan>,
    #[serde(default)]
    pub(super) dht: Option<RawDht>,
    #[serde(default)]
    pub(super) rendezvous: Vec<RawRendezvous>,
    pub(super) groups: Vec<RawGroup>,
    #[serde(default)]
    pub(super) events: Vec<RawEvent>,
    #[serde(default)]
    pub(super) limits: RawLimits,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) max_events_per_node_second: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) sample_interval_s: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTraffic {
    pub(super) message_interval_s: Option<Spanned<f64>>,
    pub(super) message_bytes: Option<u32>,
    pub(super) queue_limit: Option<u32>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLinks {
    pub(super) wifi_loss: Option<Spanned<f64>>,
    pub(super) cellular_loss: Option<Spanned<f64>>,
    pub(super) ble_range_m: Option<Spanned<f64>>,
    pub(super) cellular_access_rtt_ms: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    pub(super) name: String,
    #[serde(default)]
    pub(super) core_rtt_ms: BTreeMap<String, Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLan {
    pub(super) name: String,
    #[serde(default = "default_lan_medium")]
    pub(super) medium: Spanned<String>,
    pub(super) rtt_ms: Spanned<f64>,
    #[serde(default = "yes")]
    pub(super) internet: bool,
    pub(super) region: Option<Spanned<String>>,
    pub(super) nat: Option<Spanned<String>>,
}

fn default_lan_medium() -> Spanned<String> {
    Spanned::new(0..0, "wifi".to_owned())
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDht {
    pub(super) lookup_success: Option<Spanned<f64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRendezvous {
    pub(super) name: String,
    pub(super) region: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) outages: Vec<Spanned<[f64; 2]>>,
    #[serde(default)]
    pub(super) relay: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGroup {
    pub(super) name: String,
    pub(super) count: Spanned<u32>,
    pub(super) region: Option<Spanned<String>>,
    pub(super) wifi: Option<Spanned<String>>,
    pub(super) ethernet: Option<Spanned<String>>,
    pub(super) cellular: Option<Spanned<String>>,
    pub(super) nat: Option<Spanned<String>>,
    #[serde(default)]
    pub(super) ble: bool,
    #[serde(default)]
    pub(super) position: [f64; 2],
    #[serde(default)]
    pub(super) spread_m: f64,
    pub(super) battery: Option<Spanned<f64>>,
    #[serde(default)]
    pub(super) charging: bool,
    pub(super) drain_per_hour: Option<Spanned<f64>>,
    pub(super) lifecycle: Option<Spanned<String>>,
    pub(super) start_spread_s: Option<Spanned<f64>>,
    #[serde(default)]
    pub(super) contacts: Vec<RawContacts>,
    pub(super) churn: Option<RawChurn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawContacts {
    pub(super) group: Spanned<String>,
    pub(super) count: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChurn {
    pub(super) online_s: Spanned<f64>,
    pub(super) offline_s: Spanned<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvent {
    pub(super) at_s: Spanned<f64>,
    pub(super) group: Option<Spanned<String>>,
    pub(super) spread_s: Option<Spanned<f64>>,
    pub(super) action: Spanned<String>,
    pub(super) lan: Option<Spanned<String>>,
    pub(super) state: Option<Spanned<String>>,
    pub(super) level: Option<Spanned<f64>>,
    pub(super) to: Option<[f64; 2]>,
    pub(super) server: Option<Spanned<String>>,
}
