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
    /// No station of this number is in the ether (there never was one, or
    /// its radio was dropped).
    #[error("no station {station} in the ether")]
    UnknownStation {
        /// The station number.
        station: u64,
    },
    /// The station is out of range, or its radio is off: nothing is heard
    /// from it.
    #[error("station {station} is out of range (or its radio is off)")]
    OutOfRange {
        /// The station number.
        station: u64,
    },
    /// The station does not listen for links.
    #[error("station {station} is not listening for links")]
    NotListening {
        /// The station number.
        station: u64,
    },
    /// The station listens for links already (one listener per station).
    #[error("station {station} is already listening for links")]
    AlreadyListening {
        /// The station number.
        station: u64,
    },
    /// A transport was asked to listen on another station than its own.
    #[error("cannot listen on station {station}: this transport's station is {own}")]
    NotOwnStation {
        /// The station asked for.
        station: u64,
        /// The transport's own station.
        own: u64,
    },
    /// A data link broke (a radio switched off, moved out of range or was
    /// dropped), or its other end closed it.
    #[error("link broken: {reason}")]
    LinkBroken {
        /// What happened.
        reason: String,
    },
    /// A discovery driver could not start.
    #[error("the {driver} driver cannot start: {message}")]
    Driver {
        /// Which driver.
        driver: &'static str,
        /// What went wrong.
        message: String,
    },
}
