//! Why the node stops: Ctrl-C, SIGTERM or `--exit-after`.

use super::error::NodeError;

/// Why the node stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    Interrupt,
    Terminate,
    ExitAfter,
}

impl Stop {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Stop::Interrupt => "interrupt",
            Stop::Terminate => "terminate",
            Stop::ExitAfter => "exit_after",
        }
    }
}

/// Ctrl-C and SIGTERM, installed before the node starts so that a failure
/// to install them is an error, not an immediate stop.
pub(super) struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn install() -> Result<Self, NodeError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt()).map_err(NodeError::Signals)?,
                terminate: signal(SignalKind::terminate()).map_err(NodeError::Signals)?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    pub(super) async fn next(&mut self) -> Stop {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => Stop::Interrupt,
                _ = self.terminate.recv() => Stop::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            match tokio::signal::ctrl_c().await {
                Ok(()) => Stop::Interrupt,
                // No handler: run until `--exit-after` or forever.
                Err(_) => std::future::pending().await,
            }
        }
    }
}
