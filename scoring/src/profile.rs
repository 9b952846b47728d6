//! Scoring profiles: how much latency, battery, reliability and provenance
//! weigh, which links may be used, and how switching and racing behave.
//!
//! Four presets ship with the crate ([`Profile::performance`],
//! [`Profile::balanced`], [`Profile::battery_saver`],
//! [`Profile::background`]), also as TOML files under `profiles/` in the
//! repository. With the `serde` feature a user profile loads from TOML with
//! [`Profile::from_toml_str`]; every field must be present (start from
//! `multidriver profiles show balanced`), unknown fields are rejected, and
//! values outside their range are reported with the field's name, line and
//! the allowed range.
//!
//! Costs are expressed in *millisecond-equivalents*: latency in milliseconds
//! counts as is (times [`Weights::latency`]), a joule of modelled battery
//! cost counts as [`Weights::energy_ms_per_joule`] milliseconds, and so on.

use std::time::Duration;

use crate::Error;

/// Names of the presets, for listings and error messages.
pub const PRESET_NAMES: [&str; 4] = ["performance", "balanced", "battery-saver", "background"];

/// A complete scoring profile.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Profile {
    /// Name, for logs and explanations: 1 to 64 characters of `a-z`, `0-9`,
    /// `-` and `_`.
    pub name: String,
    /// Weights of the cost components.
    pub weights: Weights,
    /// What to do with metered, expensive or constrained links.
    pub links: LinkPolicy,
    /// How the power state scales the energy cost.
    pub battery: BatteryPolicy,
    /// The use the energy cost is estimated for.
    pub usage: Usage,
    /// When to move a connected peer to a better route.
    pub switching: Switching,
    /// How to race a peer's routes when dialling.
    pub racing: Racing,
    /// What liveness costs when the app is quiet. May be left out of a
    /// profile file (files written before it existed): `balanced`'s values
    /// apply.
    #[cfg_attr(feature = "serde", serde(default = "Quiet::balanced"))]
    pub quiet: Quiet,
}

/// Liveness when nothing is happening: how soon a peer the app stopped
/// using costs nothing, how its path is checked when the app comes back,
/// and whether idle cellular connections are closed.
///
/// A peer is *quiet* once the app has not used it (`Engine::mark_used` in
/// `multidriver-core`) for [`after_s`](Self::after_s). Its connections get
/// no liveness probes on a timer: nothing wakes a radio for it. The node's
/// own side is watched through the OS's interface events and the host's
/// hints instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Quiet {
    /// Seconds without app use after which a peer's connections are no
    /// longer probed on a timer. Range `1..=86400`.
    pub after_s: u64,
    /// Probe the connection with the first app message after a quiet
    /// period, with a deadline of the route's RTO; unanswered, the
    /// connection is closed and the next-best route raced at once.
    pub probe_on_resume: bool,
    /// Seconds a quiet peer's connection over cellular stays open; `0`
    /// keeps it open. A closed peer is dialled again through its best known
    /// route when the app next uses it (no new discovery), and is not
    /// redialled before. Range `0..=86400`.
    pub cellular_idle_close_s: u64,
}

// Tailscale stops its path heartbeats after 45 s without traffic
// (`sessionActiveTimeout`, tailscale `wgengine/magicsock/magicsock.go`).
const TAILSCALE_IDLE_S: u64 = 45;
// rust-libp2p closes a connection without streams after 10 s
// (libp2p-swarm 0.48 `idle_connection_timeout`, `src/connection/pool.rs`).
const LIBP2P_IDLE_S: u64 = 10;

impl Quiet {
    /// `balanced`'s: quiet after 120 s, probe on resume, cellular
    /// connections kept.
    pub fn balanced() -> Quiet {
        Quiet {
            // Ours: two gaps of an app that sends once a minute. At
            // Tailscale's 45 s the city runs lost 4–6 % more messages and
            // found moved peers 1.2–1.7 s later (seeds 1–3, docs/PARAMETERS.md).
            after_s: 120,
            probe_on_resume: true,
            cellular_idle_close_s: 0,
        }
    }

    /// [`after_s`](Self::after_s) as a duration.
    pub fn after(&self) -> Duration {
        Duration::from_secs(self.after_s)
    }

    /// [`cellular_idle_close_s`](Self::cellular_idle_close_s) as a
    /// duration; `None` for `0` (never).
    pub fn cellular_idle_close(&self) -> Option<Duration> {
        (self.cellular_idle_close_s > 0).then(|| Duration::from_secs(self.cellular_idle_close_s))
    }
}

/// Weights of the cost components.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Weights {
    /// Multiplier of the expected time to a first answer over the route, in
    /// ms-equivalent per ms. Range `0..=10`.
    pub latency: f64,
    /// Cost of one joule of modelled battery energy, in ms-equivalent. Range
    /// `0..=1000`; `0` ignores energy.
    pub energy_ms_per_joule: f64,
    /// Cost of a route that certainly fails, in ms-equivalent; a route pays
    /// this times its estimated failure probability. Range `0..=60000`.
    pub reliability_ms: f64,
    /// Cost of a route that no signed peer record nor first-hand source
    /// (the app, or the peer's own inbound connection) vouches for, in
    /// ms-equivalent. Range `0..=60000`.
    pub unvouched_ms: f64,
}

/// What to do with links that are metered, expensive or constrained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
pub enum CostlyLinks {
    /// Use them like any other link.
    Allow,
    /// Use them, adding [`LinkPolicy::costly_penalty_ms`] to their cost.
    Avoid,
    /// Never dial them: such routes are ranked last, marked excluded, and
    /// left out of race plans.
    Forbid,
}

/// Link policy.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct LinkPolicy {
    /// What to do with costly links.
    pub costly: CostlyLinks,
    /// Added to a costly route's cost under [`CostlyLinks::Avoid`], in
    /// ms-equivalent. Range `0..=600000`.
    pub costly_penalty_ms: f64,
}

/// How the power state scales the energy cost.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct BatteryPolicy {
    /// Battery level under which the battery counts as low. Range `0..=1`.
    pub low_threshold: f64,
    /// Energy cost multiplier on a low battery. Range `1..=100`.
    pub low_factor: f64,
    /// Energy cost multiplier while charging or without a battery. Range
    /// `0..=1`.
    pub mains_factor: f64,
}

/// The use the energy cost is estimated for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Usage {
    /// How long a connection is expected to be used, in seconds. Range
    /// `1..=86400`.
    pub horizon_s: u64,
    /// Keep-alive interval on the connection, in seconds. Range `1..=3600`.
    pub keepalive_interval_s: u64,
    /// App traffic each way per hour, in bytes. Range `0..=10^12`.
    pub bytes_per_hour: u64,
}

impl Usage {
    /// [`horizon_s`](Self::horizon_s) as a duration.
    pub fn horizon(&self) -> Duration {
        Duration::from_secs(self.horizon_s)
    }

    /// [`keepalive_interval_s`](Self::keepalive_interval_s) as a duration.
    pub fn keepalive_interval(&self) -> Duration {
        Duration::from_secs(self.keepalive_interval_s)
    }
}

/// When to move a connected peer to a better route (hysteresis).
///
/// A candidate must beat the current route's cost by both margins,
/// continuously, for [`dwell_ms`](Self::dwell_ms).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Switching {
    /// Fraction of the current cost the candidate must save. Range `0..=0.9`.
    pub relative_margin: f64,
    /// Cost the candidate must save, in ms-equivalent. Range `0..=10000`.
    pub absolute_margin_ms: f64,
    /// How long the candidate must stay better, in milliseconds. Range
    /// `0..=600000`.
    pub dwell_ms: u64,
}

impl Switching {
    /// [`dwell_ms`](Self::dwell_ms) as a duration.
    pub fn dwell(&self) -> Duration {
        Duration::from_millis(self.dwell_ms)
    }
}

/// How to race a peer's routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct Racing {
    /// Shortest delay between two attempts, in milliseconds. Range
    /// `10..=2000`: RFC 8305 §8 forbids attempt delays under 10 ms.
    pub min_stagger_ms: u64,
    /// Longest delay between two attempts, in milliseconds. Range
    /// `min_stagger_ms..=10000`.
    pub max_stagger_ms: u64,
    /// Most dial attempts in flight at once for one peer: a [`RacePlan`]
    /// lists this many routes, and the engine's dialer moves on to later
    /// routes as attempts fail. Range `1..=16`.
    ///
    /// [`RacePlan`]: crate::RacePlan
    pub max_attempts: u32,
    /// Keep the runner-up connection open as a warm backup. Read by the
    /// engine's racing dialer; race plans themselves do not depend on it.
    pub keep_warm_backup: bool,
    /// Once one discovery driver answers a lookup with routes, cancel the
    /// other drivers' lookups of that namespace (saves energy; loses the
    /// provenance the slower drivers would add). Read by the engine.
    pub cancel_slower_discovery: bool,
}

impl Racing {
    /// [`min_stagger_ms`](Self::min_stagger_ms) as a duration.
    pub fn min_stagger(&self) -> Duration {
        Duration::from_millis(self.min_stagger_ms)
    }

    /// [`max_stagger_ms`](Self::max_stagger_ms) as a duration.
    pub fn max_stagger(&self) -> Duration {
        Duration::from_millis(self.max_stagger_ms)
    }
}

// Preset values without a source below are our choices: weights set so that
// a measured LAN route beats cellular in every preset, and cellular's tail
// energy dominates in the battery-minded ones (`multidriver rank
// examples/routes/commute.toml --profile NAME` shows the effect). The
// simulator is where they will be tuned against measured figures.

// Delays of Happy Eyeballs v2: recommended attempt delay 250 ms, minimum
// 100 ms, maximum 2 s. Source: RFC 8305 §8.
const HE_MIN_STAGGER_MS: u64 = 100;
const HE_MAX_STAGGER_MS: u64 = 2_000;
// Lower bound on any attempt delay. Source: RFC 8305 §8 ("MUST NOT be less
// than 10 ms").
const RFC8305_FLOOR_MS: u64 = 10;
// Same-tier path switch only if ≥ 5 ms better. Source: n0-computer/iroh
// `socket/biased_rtt_path_selector.rs`.
const IROH_SWITCH_MARGIN_MS: f64 = 5.0;
// libp2p-ping's interval, the keep-alive stock rust-libp2p sends. Source:
// libp2p-ping `handler.rs` (15 s).
const LIBP2P_PING_INTERVAL_S: u64 = 15;

impl Profile {
    /// Lowest latency: energy is ignored, costly links are fine, a warm backup
    /// connection is kept, and switching reacts quickly.
    pub fn performance() -> Self {
        Profile {
            name: "performance".to_owned(),
            weights: Weights {
                latency: 1.0,
                energy_ms_per_joule: 0.0,
                reliability_ms: 200.0,
                unvouched_ms: 10.0,
            },
            links: LinkPolicy {
                costly: CostlyLinks::Allow,
                costly_penalty_ms: 0.0,
            },
            battery: BatteryPolicy {
                low_threshold: 0.1,
                low_factor: 1.0,
                mains_factor: 1.0,
            },
            usage: Usage {
                horizon_s: 600,
                keepalive_interval_s: LIBP2P_PING_INTERVAL_S,
                bytes_per_hour: 10_000_000,
            },
            switching: Switching {
                relative_margin: 0.1,
                absolute_margin_ms: IROH_SWITCH_MARGIN_MS,
                dwell_ms: 1_000,
            },
            racing: Racing {
                min_stagger_ms: HE_MIN_STAGGER_MS,
                max_stagger_ms: HE_MAX_STAGGER_MS,
                max_attempts: 4,
                keep_warm_backup: true,
                cancel_slower_discovery: false,
            },
            quiet: Quiet {
                // Ours: five minutes, well past any conversation's pauses.
                after_s: 300,
                probe_on_resume: true,
                cellular_idle_close_s: 0,
            },
        }
    }

    /// The default: latency first, with one joule of battery weighing as much
    /// as a millisecond, four times as much on a low battery.
    pub fn balanced() -> Self {
        Profile {
            name: "balanced".to_owned(),
            weights: Weights {
                latency: 1.0,
                energy_ms_per_joule: 1.0,
                reliability_ms: 200.0,
                unvouched_ms: 20.0,
            },
            links: LinkPolicy {
                costly: CostlyLinks::Allow,
                costly_penalty_ms: 0.0,
            },
            battery: BatteryPolicy {
                low_threshold: 0.2,
                low_factor: 4.0,
                mains_factor: 0.1,
            },
            usage: Usage {
                horizon_s: 600,
                keepalive_interval_s: 30,
                bytes_per_hour: 1_000_000,
            },
            switching: Switching {
                relative_margin: 0.2,
                absolute_margin_ms: 10.0,
                dwell_ms: 2_000,
            },
            racing: Racing {
                min_stagger_ms: HE_MIN_STAGGER_MS,
                max_stagger_ms: HE_MAX_STAGGER_MS,
                max_attempts: 3,
                keep_warm_backup: false,
                cancel_slower_discovery: false,
            },
            quiet: Quiet::balanced(),
        }
    }

    /// Battery first: energy weighs ten times more than in `balanced`, costly
    /// links are avoided, fewer parallel attempts, and switching is slow.
    pub fn battery_saver() -> Self {
        Profile {
            name: "battery-saver".to_owned(),
            weights: Weights {
                latency: 0.5,
                energy_ms_per_joule: 10.0,
                reliability_ms: 200.0,
                unvouched_ms: 20.0,
            },
            links: LinkPolicy {
                costly: CostlyLinks::Avoid,
                costly_penalty_ms: 5_000.0,
            },
            battery: BatteryPolicy {
                low_threshold: 0.3,
                low_factor: 4.0,
                mains_factor: 0.2,
            },
            usage: Usage {
                horizon_s: 600,
                keepalive_interval_s: 60,
                bytes_per_hour: 1_000_000,
            },
            switching: Switching {
                relative_margin: 0.3,
                absolute_margin_ms: 20.0,
                dwell_ms: 5_000,
            },
            racing: Racing {
                min_stagger_ms: 250,
                max_stagger_ms: HE_MAX_STAGGER_MS,
                max_attempts: 2,
                keep_warm_backup: false,
                cancel_slower_discovery: true,
            },
            quiet: Quiet {
                after_s: TAILSCALE_IDLE_S,
                probe_on_resume: true,
                // Ours: a minute past the quiet period.
                cellular_idle_close_s: 60,
            },
        }
    }

    /// For an app in the background: rare keep-alives, little traffic,
    /// energy dominant, costly links a last resort, one attempt at a time.
    pub fn background() -> Self {
        Profile {
            name: "background".to_owned(),
            weights: Weights {
                latency: 0.2,
                energy_ms_per_joule: 20.0,
                reliability_ms: 200.0,
                unvouched_ms: 20.0,
            },
            links: LinkPolicy {
                costly: CostlyLinks::Avoid,
                costly_penalty_ms: 20_000.0,
            },
            battery: BatteryPolicy {
                low_threshold: 0.3,
                low_factor: 4.0,
                mains_factor: 0.2,
            },
            usage: Usage {
                horizon_s: 1_800,
                keepalive_interval_s: 120,
                bytes_per_hour: 100_000,
            },
            switching: Switching {
                relative_margin: 0.5,
                absolute_margin_ms: 50.0,
                dwell_ms: 10_000,
            },
            racing: Racing {
                min_stagger_ms: 500,
                max_stagger_ms: HE_MAX_STAGGER_MS,
                max_attempts: 1,
                keep_warm_backup: false,
                cancel_slower_discovery: true,
            },
            quiet: Quiet {
                // The app is not looking: as soon as rust-libp2p would
                // close an idle connection, and closed then on cellular.
                after_s: LIBP2P_IDLE_S,
                probe_on_resume: true,
                cellular_idle_close_s: LIBP2P_IDLE_S,
            },
        }
    }

    /// The preset called `name` (see [`PRESET_NAMES`]).
    ///
    /// # Errors
    /// [`Error::UnknownProfile`] for any other name.
    pub fn preset(name: &str) -> Result<Self, Error> {
        match name {
            "performance" => Ok(Self::performance()),
            "balanced" => Ok(Self::balanced()),
            "battery-saver" => Ok(Self::battery_saver()),
            "background" => Ok(Self::background()),
            other => Err(Error::UnknownProfile {
                name: other.to_owned(),
            }),
        }
    }

    /// Every preset, in [`PRESET_NAMES`] order.
    pub fn presets() -> [Profile; 4] {
        [
            Self::performance(),
            Self::balanced(),
            Self::battery_saver(),
            Self::background(),
        ]
    }

    /// Checks every field against its documented range.
    ///
    /// # Errors
    /// [`Error::InvalidField`] naming the first field out of range, its
    /// value, and the allowed range.
    pub fn validate(&self) -> Result<(), Error> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(Error::InvalidField {
                field: "name",
                value: format!("{:?}", self.name),
                allowed: "1 to 64 characters of a-z, 0-9, '-' and '_'".to_owned(),
            });
        }
        let w = &self.weights;
        in_range("weights.latency", w.latency, 0.0, 10.0)?;
        in_range(
            "weights.energy_ms_per_joule",
            w.energy_ms_per_joule,
            0.0,
            1000.0,
        )?;
        in_range("weights.reliability_ms", w.reliability_ms, 0.0, 60_000.0)?;
        in_range("weights.unvouched_ms", w.unvouched_ms, 0.0, 60_000.0)?;
        in_range(
            "links.costly_penalty_ms",
            self.links.costly_penalty_ms,
            0.0,
            600_000.0,
        )?;
        let b = &self.battery;
        in_range("battery.low_threshold", b.low_threshold, 0.0, 1.0)?;
        in_range("battery.low_factor", b.low_factor, 1.0, 100.0)?;
        in_range("battery.mains_factor", b.mains_factor, 0.0, 1.0)?;
        let u = &self.usage;
        in_range_u64("usage.horizon_s", u.horizon_s, 1, 86_400)?;
        in_range_u64(
            "usage.keepalive_interval_s",
            u.keepalive_interval_s,
            1,
            3_600,
        )?;
        in_range_u64(
            "usage.bytes_per_hour",
            u.bytes_per_hour,
            0,
            1_000_000_000_000,
        )?;
        let s = &self.switching;
        in_range("switching.relative_margin", s.relative_margin, 0.0, 0.9)?;
        in_range(
            "switching.absolute_margin_ms",
            s.absolute_margin_ms,
            0.0,
            10_000.0,
        )?;
        in_range_u64("switching.dwell_ms", s.dwell_ms, 0, 600_000)?;
        let r = &self.racing;
        in_range_u64(
            "racing.min_stagger_ms",
            r.min_stagger_ms,
            RFC8305_FLOOR_MS,
            2_000,
        )?;
        in_range_u64(
            "racing.max_stagger_ms",
            r.max_stagger_ms,
            r.min_stagger_ms,
            10_000,
        )?;
        in_range_u64("racing.max_attempts", u64::from(r.max_attempts), 1, 16)?;
        let q = &self.quiet;
        in_range_u64("quiet.after_s", q.after_s, 1, 86_400)?;
        in_range_u64(
            "quiet.cellular_idle_close_s",
            q.cellular_idle_close_s,
            0,
            86_400,
        )?;
        Ok(())
    }
}

impl Default for Profile {
    /// [`Profile::balanced`].
    fn default() -> Self {
        Self::balanced()
    }
}

fn in_range(field: &'static str, value: f64, lo: f64, hi: f64) -> Result<(), Error> {
    // `contains` is false for NaN, so NaN is rejected too.
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidField {
            field,
            value: value.to_string(),
            allowed: format!("{lo}..={hi}"),
        })
    }
}

fn in_range_u64(field: &'static str, value: u64, lo: u64, hi: u64) -> Result<(), Error> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(Error::InvalidField {
            field,
            value: value.to_string(),
            allowed: format!("{lo}..={hi}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_named_as_listed() {
        for (profile, name) in Profile::presets().iter().zip(PRESET_NAMES) {
            profile.validate().unwrap();
            assert_eq!(profile.name, name);
            assert_eq!(&Profile::preset(name).unwrap(), profile);
        }
    }

    #[test]
    fn unknown_preset_is_an_error_listing_the_presets() {
        let err = Profile::preset("turbo").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("turbo"), "{text}");
        for name in PRESET_NAMES {
            assert!(text.contains(name), "{text}");
        }
    }

    #[test]
    fn validation_names_the_field_and_range() {
        let mut p = Profile::balanced();
        p.racing.min_stagger_ms = 5;
        let text = p.validate().unwrap_err().to_string();
        assert!(text.contains("racing.min_stagger_ms"), "{text}");
        assert!(text.contains("10..=2000"), "{text}");

        let mut p = Profile::balanced();
        p.weights.latency = f64::NAN;
        let text = p.validate().unwrap_err().to_string();
        assert!(text.contains("weights.latency"), "{text}");

        let mut p = Profile::balanced();
        p.racing.max_stagger_ms = p.racing.min_stagger_ms - 1;
        let text = p.validate().unwrap_err().to_string();
        assert!(text.contains("racing.max_stagger_ms"), "{text}");

        let mut p = Profile::balanced();
        p.name = "Has Spaces".to_owned();
        assert!(p.validate().unwrap_err().to_string().contains("name"));
    }
}
