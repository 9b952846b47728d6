//! The crate's error type.

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A bounded table is full; the input was not recorded.
    #[error("the {table} table is full ({limit} entries)")]
    TableFull {
        /// Which table.
        table: &'static str,
        /// Its bound.
        limit: usize,
    },
    /// The radio is switched off (or the platform refused it).
    #[error("the proximity radio is off")]
    RadioOff,
    /// A discovery driver could not start.
    #[error("the {driver} driver cannot start: {message}")]
    Driver {
        /// Which driver.
        driver: &'static str,
        /// What went wrong.
        message: String,
    },
    /// The engine refused the configuration.
    #[error(transparent)]
    Engine(#[from] multidriver::Error),
}
