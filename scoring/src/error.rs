//! The crate's error type.

use crate::profile::PRESET_NAMES;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A profile or route-set field holds a value outside its allowed range.
    #[error("{field} = {value} is outside the allowed range {allowed}")]
    InvalidField {
        /// The field's path, e.g. `racing.min_stagger_ms`.
        field: &'static str,
        /// The rejected value.
        value: String,
        /// The allowed range or form.
        allowed: String,
    },
    /// No preset profile has this name.
    #[error("unknown profile `{name}`; the presets are {}", PRESET_NAMES.join(", "))]
    UnknownProfile {
        /// The name asked for.
        name: String,
    },
    /// A medium, transport, source or lifecycle name is not one we know.
    #[error("unknown {kind} `{name}`; expected one of: {allowed}")]
    UnknownName {
        /// What kind of name it was meant to be.
        kind: &'static str,
        /// The name given.
        name: String,
        /// The names accepted.
        allowed: &'static str,
    },
    /// A multiaddr names no transport we can dial.
    #[error("address {addr} names no transport (expected /tcp, /quic-v1 or /webrtc-direct)")]
    UnknownTransport {
        /// The address.
        addr: String,
    },
    /// A TOML document is malformed or does not describe what it should.
    #[error("line {line}, column {column}: {message}{}", snippet_suffix(snippet))]
    Toml {
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters) of the offending text.
        column: usize,
        /// What is wrong, naming the field where one is known.
        message: String,
        /// The offending line, for display.
        snippet: String,
    },
}

fn snippet_suffix(snippet: &str) -> String {
    if snippet.trim().is_empty() {
        String::new()
    } else {
        format!("\n    | {snippet}")
    }
}
