//! Time as the caller's clock reports it.

use std::fmt;
use std::ops::Add;
use std::time::Duration;

/// A point in time on a clock the caller owns, as the time elapsed since that
/// clock's origin.
///
/// The scoring crate never reads a clock: every function that depends on time
/// takes a `Timestamp`. A libp2p adapter measures from the moment it started;
/// the simulator uses its virtual time. Only differences between timestamps of
/// the same clock are meaningful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(Duration);

impl Timestamp {
    /// The clock's origin.
    pub const ZERO: Timestamp = Timestamp(Duration::ZERO);

    /// The timestamp `since_origin` after the clock's origin.
    pub const fn from_duration(since_origin: Duration) -> Self {
        Timestamp(since_origin)
    }

    /// The timestamp `millis` milliseconds after the clock's origin.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(Duration::from_millis(millis))
    }

    /// The time elapsed since the clock's origin.
    pub const fn since_origin(self) -> Duration {
        self.0
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    /// Saturates at the largest representable timestamp instead of panicking.
    fn add(self, rhs: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(rhs))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{:.3}s", self.0.as_secs_f64())
    }
}
