//! The core's error type.

use crate::InterfaceId;

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Scoring rejected an input (a profile, an address without a
    /// transport, …).
    #[error(transparent)]
    Scoring(#[from] multidriver_scoring::Error),
    /// A [`Config`](crate::Config) field is out of range.
    #[error("config field `{field}` {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A bounded table is full and nothing in it may be evicted; the input
    /// was not applied.
    #[error("the {table} table is full ({limit} entries, none evictable); the input was dropped")]
    TableFull {
        /// Which table.
        table: &'static str,
        /// Its bound.
        limit: usize,
    },
    /// A namespace is empty or too long.
    #[error("namespace {namespace:?} {reason}")]
    InvalidNamespace {
        /// The namespace (its first 64 characters).
        namespace: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An advertisement TTL is too short.
    #[error("advertisement TTL {ttl:?} is shorter than the minimum {min:?}")]
    InvalidTtl {
        /// The TTL asked for.
        ttl: std::time::Duration,
        /// The shortest accepted.
        min: std::time::Duration,
    },
    /// An input named an interface the engine was never told about.
    #[error("unknown interface {0}: report it with NetworkChange::Up first")]
    UnknownInterface(InterfaceId),
}
