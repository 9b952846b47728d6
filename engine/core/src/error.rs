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
    /// Bytes given as a route memory do not start with its magic bytes
    /// ([`MEMORY_MAGIC`](crate::MEMORY_MAGIC)): not a route memory.
    #[error("not a route memory: the input does not start with the magic bytes \"MDRM\"")]
    MemoryMagic,
    /// A route memory of another format version than this build reads.
    #[error(
        "route memory version {version} is not supported (this build reads version {supported})"
    )]
    MemoryVersion {
        /// The version the input says.
        version: u8,
        /// The one this build reads ([`MEMORY_VERSION`](crate::MEMORY_VERSION)).
        supported: u8,
    },
    /// A route memory ends in the middle of a field.
    #[error("route memory truncated at byte {at}: {field} is missing")]
    MemoryTruncated {
        /// The offset where the missing field starts.
        at: usize,
        /// The field (and whose, where it belongs to a peer or relay).
        field: String,
    },
    /// A field of a route memory holds something invalid.
    #[error("route memory invalid at byte {at}: {reason}")]
    MemoryInvalid {
        /// The offset of the field.
        at: usize,
        /// What is wrong, and whose field it is.
        reason: String,
    },
    /// A count in a route memory is beyond the format's bounds.
    #[error("route memory has too many {what} at byte {at}: {count}, at most {limit}")]
    MemoryTooMany {
        /// What is counted (peers, routes, relays, sightings, …).
        what: &'static str,
        /// The count the input says.
        count: usize,
        /// The bound ([`MEMORY_MAX_PEERS`](crate::MEMORY_MAX_PEERS) and
        /// its siblings).
        limit: usize,
        /// The offset of the count.
        at: usize,
    },
}
