//! What `multidriver node` can fail with.

use libp2p::Multiaddr;

/// What `multidriver node` can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum NodeError {
    /// Neither a rendezvous point nor mDNS.
    #[error("nothing to find peers with: give --rendezvous ADDR (repeatable) or --mdns")]
    NoDiscovery,
    /// The namespace was refused.
    #[error("--namespace: {0}")]
    Namespace(multidriver::Error),
    /// A listen address was refused.
    #[error("--listen {addr}: cannot listen: {message}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        message: String,
    },
    /// The discovery drivers could not start (e.g. mDNS without a
    /// multicast socket).
    #[error("discovery: {0}")]
    Drivers(#[from] multidriver_routing::Error),
    /// The engine refused its configuration.
    #[error("engine: {0}")]
    Engine(#[from] multidriver::Error),
    /// The transport stack could not be built.
    #[error("transport stack: {0}")]
    Stack(#[from] multidriver_transports::Error),
    /// No async runtime.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// The signal handlers could not be installed.
    #[error("cannot watch for Ctrl-C and SIGTERM: {0}")]
    Signals(std::io::Error),
    /// Stdout failed (other than closed by the reader).
    #[error("writing the output: {0}")]
    Output(std::io::Error),
    /// The reader of stdout went away (`| head`): not a failure.
    #[error("stdout closed")]
    StdoutClosed,
}
