//! The crate's error type.

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bounded table is full; the input was not recorded.
    #[error("the {table} table is full ({limit} entries); report one gone first")]
    TableFull {
        /// Which table.
        table: &'static str,
        /// Its bound.
        limit: usize,
    },
    /// A part of the libp2p transport stack could not be built.
    #[error("building the {part} transport: {message}")]
    Stack {
        /// Which part.
        part: &'static str,
        /// What libp2p said.
        message: String,
    },
    /// A listen address's port could not be bound: held by another socket
    /// (the OS says "address already in use"), or the address is not this
    /// host's (see [`crate::ports`]).
    #[error(
        "{protocol} port {port} of {addr} cannot be taken: {message}; stop what holds it or choose another port"
    )]
    PortTaken {
        /// The listen address.
        addr: String,
        /// `TCP` or `UDP`.
        protocol: &'static str,
        /// The port.
        port: u16,
        /// What the OS said.
        message: String,
    },
}
