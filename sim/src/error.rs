//! The simulator's error type.

/// Everything that can go wrong when loading or running a scenario.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scenario file is malformed; the message names the line, column and
    /// field.
    #[error("{}{source}", file_prefix(file))]
    Scenario {
        /// The file, when known.
        file: String,
        /// What is wrong, with its position.
        source: multidriver_scoring::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The engine core refused a configuration the simulator built (a bug in
    /// the simulator, reported rather than hidden).
    #[error("engine configuration rejected: {0}")]
    Engine(#[from] multidriver_core::Error),
    /// A policy caused more events for one node in one simulated second
    /// than the scenario's `limits.max_events_per_node_second` allows: it
    /// loops or multiplies its own work, and the run was stopped rather than
    /// left to grow without bound.
    #[error(
        "policy {policy}: node {node} (group \"{group}\") caused more than {limit} events in \
         simulated second {second} (mostly {kind}: {count}); raise limits.max_events_per_node_second \
         if this is expected"
    )]
    Runaway {
        /// The policy that ran away.
        policy: String,
        /// The node's index in the scenario (groups in file order).
        node: u32,
        /// The node's group.
        group: String,
        /// The simulated second it happened in.
        second: u64,
        /// The kind of event it caused most in that second.
        kind: &'static str,
        /// How many of that kind.
        count: u32,
        /// The bound.
        limit: u32,
    },
    /// With [`RunOptions::check_invariants`](crate::RunOptions), a run broke
    /// one of the simulator's invariants (a bug in a policy or the
    /// simulator, reported rather than hidden).
    #[error("policy {policy}: invariant broken at {at_s:.3} s: {what}")]
    Invariant {
        /// The policy.
        policy: String,
        /// When, simulated seconds.
        at_s: f64,
        /// What was broken.
        what: String,
    },
    /// A plot could not be drawn.
    #[error("plot {path}: {message}")]
    Plot {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
}

fn file_prefix(file: &str) -> String {
    if file.is_empty() {
        String::new()
    } else {
        format!("{file}: ")
    }
}

impl Error {
    pub(crate) fn scenario(file: &str, source: multidriver_scoring::Error) -> Error {
        Error::Scenario {
            file: file.to_owned(),
            source,
        }
    }

    /// The same error, naming `file`.
    pub(crate) fn in_file(self, file: &str) -> Error {
        match self {
            Error::Scenario { source, .. } => Error::scenario(file, source),
            other => other,
        }
    }
}
