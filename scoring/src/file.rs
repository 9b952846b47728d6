//! Loading profiles and route sets from TOML, with errors that name the line
//! and the field (`serde` feature).

use std::fmt::Display;
use std::ops::Range;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use toml::de::{DeTable, DeValue};

use crate::Error;

/// One step of a path into a TOML document.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

/// Deserializes `text`, turning TOML and serde errors into [`Error::Toml`].
pub(crate) fn parse<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let message = explain_mistyped(text, &span, e.message().trim_end())
            .unwrap_or_else(|| e.message().trim_end().to_owned());
        at(text, span, message)
    })
}

/// serde's "invalid type: string \"one hour\", expected f64" in the words of
/// the file: `duration_s: expected a number of seconds, got the string
/// "one hour"`. `None` for any other message.
fn explain_mistyped(text: &str, span: &Range<usize>, message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "))?;
    let (got, expected) = rest.rsplit_once(", expected ")?;
    let path = path_at(text, span.start)?;
    let field = path.rsplit(['.', ']']).next().unwrap_or(&path);
    let expected = match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" => format!("a whole number{}", unit_of(field)),
        "f32" | "f64" => format!("a number{}", unit_of(field)),
        "a boolean" | "bool" => "true or false".to_owned(),
        "a string" | "a borrowed string" => "a string in quotes".to_owned(),
        "a sequence" => "an array [..]".to_owned(),
        other if other.starts_with("struct ") || other == "a map" => "a table".to_owned(),
        other => other.to_owned(),
    };
    Some(format!(
        "{path}: expected {expected}, got {}",
        describe_value(got)
    ))
}

/// The unit a field's name ends in, as words.
fn unit_of(field: &str) -> &'static str {
    // Longer suffixes first: `_per_s` before `_s`.
    const UNITS: [(&str, &str); 8] = [
        ("_per_hour", " per hour"),
        ("_per_s", " per second"),
        ("_mbps", " of megabits per second"),
        ("_kbps", " of kilobits per second"),
        ("_bytes", " of bytes"),
        ("_ms", " of milliseconds"),
        ("_s", " of seconds"),
        ("_m", " of metres"),
    ];
    UNITS
        .iter()
        .find(|(suffix, _)| field.ends_with(suffix))
        .map_or("", |(_, unit)| unit)
}

/// serde's `string "x"`, ``integer `5` ``… as `the string "x"`, `the integer 5`.
fn describe_value(got: &str) -> String {
    let unquoted = |s: &str| s.trim_matches('`').to_owned();
    if let Some(v) = got.strip_prefix("string ") {
        format!("the string {v}")
    } else if let Some(v) = got.strip_prefix("integer ") {
        format!("the integer {}", unquoted(v))
    } else if let Some(v) = got.strip_prefix("floating point ") {
        format!("the number {}", unquoted(v))
    } else if let Some(v) = got.strip_prefix("boolean ") {
        format!("the boolean {}", unquoted(v))
    } else {
        match got {
            "sequence" => "an array".to_owned(),
            "map" => "a table".to_owned(),
            other => other.to_owned(),
        }
    }
}

/// The dotted path (`racing.max_attempts`, `groups[2].count`) of the
/// innermost key or array element whose value holds byte `offset`. Tables
/// from `[section]` headers do not span their fields, so every branch is
/// searched.
fn path_at(text: &str, offset: usize) -> Option<String> {
    fn holds(span: &Range<usize>, offset: usize) -> bool {
        span.contains(&offset) || (span.end == offset && !span.is_empty())
    }
    fn walk(value: &DeValue<'_>, offset: usize, path: &str) -> Option<String> {
        match value {
            DeValue::Table(table) => table.iter().find_map(|(k, v)| {
                let here = if path.is_empty() {
                    k.get_ref().to_string()
                } else {
                    format!("{path}.{}", k.get_ref())
                };
                walk(v.get_ref(), offset, &here).or_else(|| {
                    (holds(&k.span(), offset) || holds(&v.span(), offset)).then_some(here)
                })
            }),
            DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
                let here = format!("{path}[{i}]");
                walk(item.get_ref(), offset, &here)
                    .or_else(|| holds(&item.span(), offset).then_some(here))
            }),
            _ => None,
        }
    }
    let root = DeTable::parse(text).ok()?;
    walk(&DeValue::Table(root.get_ref().clone()), offset, "")
}

/// An [`Error::Toml`] for the text at `span`.
pub(crate) fn at(text: &str, span: Range<usize>, message: String) -> Error {
    let start = span.start.min(text.len());
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = text[line_start..start].chars().count() + 1;
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    Error::Toml {
        line,
        column,
        message,
        snippet: excerpt(text[line_start..line_end].trim_end(), column),
    }
}

/// Characters of the offending line shown on each side of the column.
const SNIPPET_REACH: usize = 60;

/// The line, or the part of it around `column` if it is long.
fn excerpt(line: &str, column: usize) -> String {
    let count = line.chars().count();
    if count <= 2 * SNIPPET_REACH {
        return line.to_owned();
    }
    // The column may lie past the trimmed line's end (an error in trailing
    // blanks): the window then ends at the line's last character.
    let from = column
        .saturating_sub(SNIPPET_REACH + 1)
        .min(count - 2 * SNIPPET_REACH);
    let to = from + 2 * SNIPPET_REACH;
    let mut out: String = if from > 0 {
        "…".to_owned()
    } else {
        String::new()
    };
    out.extend(line.chars().skip(from).take(to - from));
    if to < count {
        out.push('…');
    }
    out
}

/// An [`Error::Toml`] for the field at `path`, or for the document's start if
/// the path is not in it (a field the document left to its default).
pub(crate) fn at_path(text: &str, path: &[Seg<'_>], message: String) -> Error {
    let span = locate(text, path).unwrap_or(0..0);
    at(text, span, message)
}

/// The span of the value at `path` (of the key, for the last table step).
fn locate(text: &str, path: &[Seg<'_>]) -> Option<Range<usize>> {
    let root = DeTable::parse(text).ok()?;
    let mut table: &DeTable<'_> = root.get_ref();
    let mut value: Option<&DeValue<'_>> = None;
    let mut span = None;
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if let Some(v) = value {
                    let DeValue::Table(t) = v else { return None };
                    table = t;
                }
                let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *key)?;
                span = Some(k.span());
                value = Some(v.get_ref());
            }
            Seg::Index(i) => {
                let DeValue::Array(items) = value? else {
                    return None;
                };
                let item = items.get(*i)?;
                span = Some(item.span());
                value = Some(item.get_ref());
            }
        }
    }
    span
}

/// Deserializes a string field through `FromStr`, so the error names what was
/// expected and TOML reports the value's line.
pub(crate) fn from_str<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    let s = String::deserialize(deserializer)?;
    s.parse().map_err(serde::de::Error::custom)
}

/// [`from_str`] for an optional field.
pub(crate) fn from_str_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    Option::<String>::deserialize(deserializer)?
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_keys_tables_and_array_elements() {
        let text = "a = 1\n[b]\nc = 2\n[[d]]\ne = 3\n[[d]]\ne = 4\n";
        let line = |path: &[Seg<'_>]| match at_path(text, path, String::new()) {
            Error::Toml { line, .. } => line,
            other => panic!("{other:?}"),
        };
        assert_eq!(line(&[Seg::Key("a")]), 1);
        assert_eq!(line(&[Seg::Key("b"), Seg::Key("c")]), 3);
        assert_eq!(line(&[Seg::Key("d"), Seg::Index(1), Seg::Key("e")]), 7);
        // Unknown paths point at the start of the document.
        assert_eq!(line(&[Seg::Key("zzz")]), 1);
    }

    #[test]
    fn long_lines_are_cut_around_the_column() {
        let line = format!("x = [{}]", "1, ".repeat(10_000));
        let Error::Toml { snippet, .. } = at(&line, 15_000..15_001, "bad".into()) else {
            panic!()
        };
        assert!(
            snippet.chars().count() <= 2 * SNIPPET_REACH + 2,
            "{snippet}"
        );
        assert!(snippet.starts_with('…') && snippet.ends_with('…'));
        assert_eq!(excerpt("short", 3), "short");
    }

    /// Regression: an error position beyond a long line's trimmed end (trailing
    /// blanks) made the window start after its end: a subtraction overflow.
    #[test]
    fn an_error_in_trailing_blanks_of_a_long_line_shows_the_line_end() {
        let text = format!("x = \"{}\"{}\ny = 1\n", "a".repeat(150), " ".repeat(100));
        for start in 0..=text.len() {
            let Error::Toml { snippet, .. } = at(&text, start..start, "bad".into()) else {
                panic!()
            };
            assert!(
                snippet.chars().count() <= 2 * SNIPPET_REACH + 2,
                "{start}: {snippet}"
            );
        }
        let Error::Toml {
            snippet, column, ..
        } = at(&text, 240..240, "bad".into())
        else {
            panic!()
        };
        assert_eq!(column, 241);
        assert!(
            snippet.starts_with('…') && snippet.ends_with("aaa\""),
            "{snippet}"
        );
    }

    #[test]
    fn column_and_snippet() {
        let Error::Toml {
            line,
            column,
            snippet,
            ..
        } = at("x = 1\n  y = oops\n", 12..16, "bad".into())
        else {
            panic!()
        };
        assert_eq!((line, column, snippet.as_str()), (2, 7, "  y = oops"));
    }
}

mod profile_file {
    use super::{Seg, at_path, parse};
    use crate::{Error, Profile};

    impl Profile {
        /// Loads a profile from a TOML document and validates it.
        ///
        /// Every field must be present; unknown fields are rejected.
        ///
        /// # Errors
        /// [`Error::Toml`] with the line, column and a message naming the
        /// field: for malformed TOML, a missing, unknown or mistyped field,
        /// or a value outside its range (the message then gives the range).
        pub fn from_toml_str(text: &str) -> Result<Profile, Error> {
            let profile: Profile = parse(text)?;
            profile.validate().map_err(|e| match &e {
                Error::InvalidField { field, .. } => {
                    let path: Vec<Seg<'_>> = field.split('.').map(Seg::Key).collect();
                    at_path(text, &path, e.to_string())
                }
                _ => e,
            })?;
            Ok(profile)
        }

        /// The profile as a TOML document that [`Profile::from_toml_str`]
        /// reads back.
        pub fn to_toml_string(&self) -> String {
            // Serializing plain structs of numbers, strings and booleans into
            // a TOML document cannot fail.
            toml::to_string(self).unwrap_or_else(|e| unreachable!("profile to TOML: {e}"))
        }

        /// The profile as the commented TOML document of `profiles/*.toml`:
        /// a header, and above every field what it means and its range.
        /// [`Profile::from_toml_str`] reads it back.
        pub fn to_documented_toml(&self) -> String {
            let header = match preset_summary(&self.name) {
                Some(summary) => format!(
                    "# The `{}` preset of multidriver-scoring. {summary}\n",
                    self.name
                ),
                None => format!("# The profile `{}`, for multidriver-scoring.\n", self.name),
            };
            let mut out = header;
            out.push_str(HEADER_TAIL);
            let mut section = "";
            for line in self.to_toml_string().lines() {
                let trimmed = line.trim();
                if let Some(name) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
                    section = FIELD_DOCS
                        .iter()
                        .find(|(s, _, _)| *s == name)
                        .map_or("", |(s, _, _)| s);
                } else if let Some((key, _)) = trimmed.split_once(" = ")
                    && let Some((_, _, doc)) = FIELD_DOCS
                        .iter()
                        .find(|(s, k, _)| *s == section && *k == key)
                {
                    out.push_str("# ");
                    out.push_str(doc);
                    out.push('\n');
                }
                out.push_str(line);
                out.push('\n');
            }
            out
        }
    }

    /// One line on what a preset is for.
    fn preset_summary(name: &str) -> Option<&'static str> {
        Some(match name {
            "performance" => {
                "Lowest latency: energy ignored, costly links fine, a warm backup kept, quick switching."
            }
            "balanced" => {
                "The default: latency first; one joule of battery weighs as much as a millisecond (4x on a low battery)."
            }
            "battery-saver" => {
                "Battery first: energy weighs 10x more than in balanced, costly links avoided, slow switching."
            }
            "background" => {
                "For an app in the background: rare keep-alives, little traffic, energy dominant, one attempt at a time."
            }
            _ => return None,
        })
    }

    const HEADER_TAIL: &str = "\
# Costs are in ms-equivalents: lower is better. Every field is required;
# copy this file and change values to make your own profile:
#   multidriver rank FILE --profile my-profile.toml

";

    /// (section, field, what it means and its range), as
    /// [`Profile::validate`] checks it.
    const FIELD_DOCS: &[(&str, &str, &str)] = &[
        (
            "",
            "name",
            "Name for logs and explanations: 1-64 characters of a-z, 0-9, '-', '_'.",
        ),
        (
            "weights",
            "latency",
            "Multiplier of the expected time to a first answer (ms-eq per ms). 0..=10",
        ),
        (
            "weights",
            "energy_ms_per_joule",
            "Cost of one joule of modelled battery energy, in ms-eq. 0..=1000 (0 ignores energy)",
        ),
        (
            "weights",
            "reliability_ms",
            "Cost of a route that certainly fails; a route pays this × its failure probability. 0..=60000",
        ),
        (
            "weights",
            "unvouched_ms",
            "Cost of a route no signed record, the app, or the peer itself vouches for. 0..=60000",
        ),
        (
            "links",
            "costly",
            "Metered, expensive or constrained links: \"allow\", \"avoid\" (add costly_penalty_ms) or \"forbid\" (never dial).",
        ),
        (
            "links",
            "costly_penalty_ms",
            "Added to a costly route's cost under \"avoid\", in ms-eq. 0..=600000",
        ),
        (
            "battery",
            "low_threshold",
            "Battery level under which the battery counts as low. 0..=1",
        ),
        (
            "battery",
            "low_factor",
            "Energy cost multiplier on a low battery. 1..=100",
        ),
        (
            "battery",
            "mains_factor",
            "Energy cost multiplier while charging or without a battery. 0..=1",
        ),
        (
            "usage",
            "horizon_s",
            "How long a connection is expected to be used, in seconds (energy estimate). 1..=86400",
        ),
        (
            "usage",
            "keepalive_interval_s",
            "Keep-alive interval, in seconds. 1..=3600",
        ),
        (
            "usage",
            "bytes_per_hour",
            "App traffic each way per hour, in bytes. 0..=1000000000000",
        ),
        (
            "switching",
            "relative_margin",
            "A candidate must save this fraction of the current route's cost... 0..=0.9",
        ),
        (
            "switching",
            "absolute_margin_ms",
            "...and this many ms-eq... 0..=10000",
        ),
        (
            "switching",
            "dwell_ms",
            "...continuously for this long before a connected peer switches, in ms. 0..=600000",
        ),
        (
            "racing",
            "min_stagger_ms",
            "Shortest delay between two dial attempts, in ms. 10..=2000 (RFC 8305 §8 floor: 10 ms)",
        ),
        (
            "racing",
            "max_stagger_ms",
            "Longest delay between two dial attempts, in ms. min_stagger_ms..=10000",
        ),
        (
            "racing",
            "max_attempts",
            "Most routes one race dials. 1..=16",
        ),
        (
            "racing",
            "keep_warm_backup",
            "Keep the runner-up connection open as a warm backup.",
        ),
        (
            "racing",
            "cancel_slower_discovery",
            "Cancel the other drivers' lookups once one answered with routes.",
        ),
        (
            "quiet",
            "after_s",
            "Seconds without app use after which a peer's connections get no liveness probes. 1..=86400",
        ),
        (
            "quiet",
            "probe_on_resume",
            "Probe the path with the first message after a quiet period; unanswered within the route's RTO, race the next-best route.",
        ),
        (
            "quiet",
            "cellular_idle_close_s",
            "Seconds a quiet peer's cellular connection stays open; it is redialled through its best known route on next use. 0 = never close. 0..=86400",
        ),
    ];
}

mod route_set_file {
    use std::collections::HashMap;

    use libp2p_identity::PeerId;
    use multiaddr::Multiaddr;
    use serde::Deserialize;

    use super::{Seg, at_path, from_str, from_str_opt, parse};
    use crate::Error;
    use crate::route::{
        DialHistory, Lifecycle, LinkConditions, Medium, NetworkConditions, PowerState, Route,
        RouteId, Source, TransportKind,
    };
    use crate::route_set::{MAX_LIST_ENTRIES, MAX_ROUTES, RouteSet};
    use crate::time::Timestamp;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawRouteSet {
        now_ms: u64,
        #[serde(deserialize_with = "from_str")]
        peer: PeerId,
        #[serde(default)]
        power: RawPower,
        #[serde(default)]
        conditions: RawConditions,
        routes: Vec<RawRoute>,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RawPower {
        battery: Option<f64>,
        #[serde(default)]
        charging: bool,
        #[serde(default, deserialize_with = "from_str_opt")]
        lifecycle: Option<Lifecycle>,
        #[serde(default)]
        power_save: bool,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RawConditions {
        wifi: Option<RawNet>,
        ethernet: Option<RawNet>,
        cellular: Option<RawNet>,
        bluetooth: Option<RawNet>,
        loopback: Option<RawNet>,
        relay: Option<RawNet>,
        unknown: Option<RawNet>,
    }

    #[derive(Deserialize, Clone, Copy)]
    #[serde(deny_unknown_fields)]
    struct RawNet {
        #[serde(default)]
        metered: bool,
        #[serde(default)]
        expensive: bool,
        #[serde(default)]
        constrained: bool,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawRoute {
        #[serde(deserialize_with = "from_str")]
        addr: Multiaddr,
        #[serde(deserialize_with = "from_str")]
        medium: Medium,
        #[serde(default, deserialize_with = "from_str_opt")]
        transport: Option<TransportKind>,
        #[serde(default)]
        rtt_ms: Vec<f64>,
        #[serde(default)]
        dial_successes: u32,
        #[serde(default)]
        failures_at_ms: Vec<u64>,
        #[serde(default)]
        sources: Vec<RawSighting>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawSighting {
        #[serde(deserialize_with = "from_str")]
        source: Source,
        last_seen_ms: u64,
        #[serde(default)]
        signed: bool,
    }

    // Longest RTT sample accepted: one minute. Our bound: no live path has a
    // round trip near it; a longer figure is a typo or a unit mistake.
    const MAX_RTT_MS: f64 = 60_000.0;

    impl RouteSet {
        /// Loads a route set from a TOML document.
        ///
        /// # Errors
        /// [`Error::Toml`] with the line, column and a message naming the
        /// field, for malformed TOML, a missing, unknown or mistyped field, a
        /// bad peer id, multiaddr or name, a value out of range, a time after
        /// `now_ms`, a duplicate address, or more than [`MAX_ROUTES`] routes.
        pub fn from_toml_str(text: &str) -> Result<RouteSet, Error> {
            let raw: RawRouteSet = parse(text)?;
            let fail = |path: &[Seg<'_>], message: String| at_path(text, path, message);
            if raw.routes.len() > MAX_ROUTES {
                return Err(fail(
                    &[Seg::Key("routes")],
                    format!(
                        "routes: {} routes, at most {MAX_ROUTES} allowed",
                        raw.routes.len()
                    ),
                ));
            }
            if let Some(level) = raw.power.battery
                && !(0.0..=1.0).contains(&level)
            {
                return Err(fail(
                    &[Seg::Key("power"), Seg::Key("battery")],
                    format!("power.battery = {level} is outside the allowed range 0..=1"),
                ));
            }
            let power = PowerState {
                battery: raw.power.battery,
                charging: raw.power.charging,
                lifecycle: raw.power.lifecycle.unwrap_or_default(),
                power_save: raw.power.power_save,
            };
            let mut links = LinkConditions::default();
            let c = &raw.conditions;
            for (medium, net) in [
                (Medium::Wifi, c.wifi),
                (Medium::Ethernet, c.ethernet),
                (
                    Medium::Cellular(crate::CellularGeneration::Unknown),
                    c.cellular,
                ),
                (Medium::Bluetooth, c.bluetooth),
                (Medium::Loopback, c.loopback),
                (Medium::Relay, c.relay),
                (Medium::Unknown, c.unknown),
            ] {
                if let Some(n) = net {
                    links.set(
                        medium,
                        NetworkConditions {
                            metered: n.metered,
                            expensive: n.expensive,
                            constrained: n.constrained,
                        },
                    );
                }
            }

            let now = Timestamp::from_millis(raw.now_ms);
            let mut seen: HashMap<Multiaddr, usize> = HashMap::with_capacity(raw.routes.len());
            let mut routes = Vec::with_capacity(raw.routes.len());
            for (i, r) in raw.routes.into_iter().enumerate() {
                let here = |key| [Seg::Key("routes"), Seg::Index(i), Seg::Key(key)];
                for (key, len) in [
                    ("rtt_ms", r.rtt_ms.len()),
                    ("failures_at_ms", r.failures_at_ms.len()),
                    ("sources", r.sources.len()),
                ] {
                    if len > MAX_LIST_ENTRIES {
                        return Err(fail(
                            &here(key),
                            format!(
                                "routes[{i}].{key}: {len} entries, at most {MAX_LIST_ENTRIES} allowed"
                            ),
                        ));
                    }
                }
                if let Some(first) = seen.insert(r.addr.clone(), i) {
                    return Err(fail(
                        &here("addr"),
                        format!(
                            "routes[{i}].addr {} duplicates routes[{first}].addr",
                            r.addr
                        ),
                    ));
                }
                let transport = match r.transport {
                    Some(t) => t,
                    None => TransportKind::from_multiaddr(&r.addr).ok_or_else(|| {
                        fail(
                            &here("addr"),
                            format!(
                                "routes[{i}].addr {} names no transport; add transport = one of {}",
                                r.addr,
                                TransportKind::NAMES
                            ),
                        )
                    })?,
                };
                let mut route = Route::new(
                    RouteId {
                        peer: raw.peer,
                        addr: r.addr,
                    },
                    r.medium,
                    transport,
                );
                for &sample in &r.rtt_ms {
                    if !(sample > 0.0 && sample <= MAX_RTT_MS) {
                        return Err(fail(
                            &here("rtt_ms"),
                            format!(
                                "routes[{i}].rtt_ms holds {sample}; samples must be in (0, {MAX_RTT_MS}] ms"
                            ),
                        ));
                    }
                    route
                        .rtt
                        .on_sample(std::time::Duration::from_secs_f64(sample / 1e3));
                }
                let mut failures = r.failures_at_ms.clone();
                failures.sort_unstable();
                if let Some(&late) = failures.last()
                    && late > raw.now_ms
                {
                    return Err(fail(
                        &here("failures_at_ms"),
                        format!(
                            "routes[{i}].failures_at_ms holds {late}, after now_ms = {}",
                            raw.now_ms
                        ),
                    ));
                }
                for at in &failures {
                    route.rtt.on_failure(Timestamp::from_millis(*at));
                }
                let failure_count = u32::try_from(failures.len()).unwrap_or(u32::MAX);
                route.dials = DialHistory::new(r.dial_successes, failure_count);
                for (j, s) in r.sources.iter().enumerate() {
                    if s.last_seen_ms > raw.now_ms {
                        return Err(fail(
                            &[
                                Seg::Key("routes"),
                                Seg::Index(i),
                                Seg::Key("sources"),
                                Seg::Index(j),
                            ],
                            format!(
                                "routes[{i}].sources[{j}].last_seen_ms = {} is after now_ms = {}",
                                s.last_seen_ms, raw.now_ms
                            ),
                        ));
                    }
                    route.record_sighting(
                        s.source,
                        s.signed,
                        Timestamp::from_millis(s.last_seen_ms),
                    );
                }
                routes.push(route);
            }
            Ok(RouteSet {
                peer: raw.peer,
                now,
                power,
                links,
                routes,
            })
        }
    }
}
