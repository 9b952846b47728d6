//! The crate's error type.

/// Everything that can go wrong in the libp2p adapter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The engine core refused an input (a bad config, a full table, an
    /// invalid namespace, …); nothing was applied.
    #[error(transparent)]
    Core(#[from] multidriver_core::Error),
    /// No local interface reaches an address: no address of ours routes to
    /// it, and no default network is known.
    #[error(
        "no local interface reaches {addr}: no local address routes there and no network is up"
    )]
    NoInterfaceFor {
        /// The address.
        addr: String,
    },
    /// The connectivity watcher refused an input.
    #[error(transparent)]
    Transports(#[from] multidriver_transports::Error),
}

impl From<multidriver_scoring::Error> for Error {
    fn from(e: multidriver_scoring::Error) -> Self {
        Error::Core(e.into())
    }
}
