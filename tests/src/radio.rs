//! A meter of a cellular radio's wake-ups and modelled energy, fed with the
//! packets one path carries.
//!
//! A cellular radio is idle until a packet comes or goes; it then pays a
//! *promotion* (a wake-up), stays in a high-power *tail* until the tail
//! has passed without a packet, and drops back to idle
//! (`multidriver_scoring::energy`). The meter sees every packet of the path
//! (the relays in [`delay_proxy`](crate::delay_proxy) report each chunk or
//! datagram they pass to or from their clients) and keeps only counters and
//! the time of the last packet, so its memory is constant however long it
//! runs:
//!
//! - a packet more than the profile's whole tail after the previous one (or
//!   the first packet) is a **wake-up**, charged the promotion energy;
//! - the time from a packet to the next one, up to the whole tail, is
//!   charged at the tail's power (the radio stays up between packets closer
//!   together than the tail);
//! - the bytes are charged the profile's per-bit energy (payload bytes; the
//!   relays do not see headers).
//!
//! [`RadioMeter::reading`] takes a cumulative reading at an instant;
//! [`Reading::since`] turns two readings into the use over the window
//! between them, where the last packet of the window pays its whole tail
//! (the radio stays up that long whatever happens after the window).
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use multidriver::scoring::energy::LTE;
//! use multidriver_tests::radio::{Direction, RadioMeter};
//!
//! let meter = RadioMeter::new(LTE);
//! let t0 = Instant::now();
//! let start = meter.reading(t0);
//! meter.packet_at(t0 + Duration::from_secs(1), Direction::Up, 100);
//! meter.packet_at(t0 + Duration::from_secs(2), Direction::Down, 100);
//! // Idle for longer than LTE's 10.1 s tail: a second wake-up.
//! meter.packet_at(t0 + Duration::from_secs(20), Direction::Up, 100);
//! let used = meter.reading(t0 + Duration::from_secs(21)).since(&start);
//! assert_eq!(used.wakeups, 2);
//! // Two promotions, 1 s + two whole tails at the tail's power, and bytes.
//! let expected = 2.0 * LTE.promotion_energy()
//!     + LTE.tail_energy_within(Duration::from_secs(1))
//!     + 2.0 * LTE.tail_energy()
//!     + LTE.transfer_energy(200, 100);
//! assert!((used.joules - expected).abs() < 1e-9);
//! ```

use std::sync::Mutex;
use std::time::Instant;

use multidriver::scoring::energy::RadioProfile;

/// Which way a packet goes, seen from the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent by the phone.
    Up,
    /// Received by the phone.
    Down,
}

/// Counts a path's radio wake-ups and models its energy; see the module
/// docs. Shared between threads (a mutex held for a few additions per
/// packet).
#[derive(Debug)]
pub struct RadioMeter {
    profile: RadioProfile,
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    /// The last packet.
    last: Option<Instant>,
    wakeups: u64,
    up_bytes: u64,
    down_bytes: u64,
    /// Tail energy of the gaps between packets so far (each gap up to the
    /// whole tail), in joules.
    tail_j: f64,
}

/// A cumulative reading of a [`RadioMeter`] at one instant.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    profile: RadioProfile,
    at: Instant,
    state: State,
}

/// What a path used over a window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RadioUse {
    /// Packets that found the radio idle.
    pub wakeups: u64,
    /// Payload bytes the phone sent.
    pub up_bytes: u64,
    /// Payload bytes the phone received.
    pub down_bytes: u64,
    /// Modelled energy: promotions, tails, bytes, in joules.
    pub joules: f64,
}

impl RadioMeter {
    /// A meter for a radio with `profile` (for a cellular path,
    /// `multidriver_scoring::energy::LTE`).
    pub fn new(profile: RadioProfile) -> RadioMeter {
        RadioMeter {
            profile,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A packet of `bytes` now.
    pub fn packet(&self, direction: Direction, bytes: usize) {
        let mut state = self.lock();
        // Read under the lock, so packets are recorded in time order.
        let now = Instant::now();
        self.record(&mut state, now, direction, bytes);
    }

    /// A packet of `bytes` at `at` (not before the previous packet; an
    /// earlier time is taken as the previous packet's).
    pub fn packet_at(&self, at: Instant, direction: Direction, bytes: usize) {
        let mut state = self.lock();
        self.record(&mut state, at, direction, bytes);
    }

    fn record(&self, state: &mut State, at: Instant, direction: Direction, bytes: usize) {
        let tail = self.profile.tail_duration();
        match state.last {
            Some(last) if at.saturating_duration_since(last) <= tail => {
                state.tail_j += self
                    .profile
                    .tail_energy_within(at.saturating_duration_since(last));
            }
            previous => {
                if previous.is_some() {
                    state.tail_j += self.profile.tail_energy();
                }
                state.wakeups += 1;
            }
        }
        state.last = Some(state.last.map_or(at, |last| last.max(at)));
        let bytes = bytes as u64;
        match direction {
            Direction::Up => state.up_bytes += bytes,
            Direction::Down => state.down_bytes += bytes,
        }
    }

    /// The cumulative reading at `at` (now or later than every packet so
    /// far).
    pub fn reading(&self, at: Instant) -> Reading {
        Reading {
            profile: self.profile,
            at,
            state: *self.lock(),
        }
    }
}

impl Reading {
    /// Energy through this reading's instant: the tail of the last packet
    /// counts up to the instant only.
    fn joules_through(&self) -> f64 {
        let s = &self.state;
        let open_tail = s.last.map_or(0.0, |last| {
            self.profile
                .tail_energy_within(self.at.saturating_duration_since(last))
        });
        s.wakeups as f64 * self.profile.promotion_energy()
            + s.tail_j
            + open_tail
            + self.profile.transfer_energy(s.up_bytes, s.down_bytes)
    }

    /// The rest of the last packet's tail after this reading's instant.
    fn tail_left(&self) -> f64 {
        self.state.last.map_or(0.0, |last| {
            let gone = self.at.saturating_duration_since(last);
            if gone >= self.profile.tail_duration() {
                0.0
            } else {
                self.profile.tail_energy() - self.profile.tail_energy_within(gone)
            }
        })
    }

    /// What the path used between `start` and this reading: wake-ups and
    /// bytes in the window, and their energy, the last packet's tail
    /// counted whole. A packet before the window whose tail reaches into it
    /// charges the window only for the part inside.
    pub fn since(&self, start: &Reading) -> RadioUse {
        let (now, then) = (&self.state, &start.state);
        let any = now.wakeups != then.wakeups || now.last != then.last;
        RadioUse {
            wakeups: now.wakeups - then.wakeups,
            up_bytes: now.up_bytes - then.up_bytes,
            down_bytes: now.down_bytes - then.down_bytes,
            joules: (self.joules_through() - start.joules_through()
                + if any { self.tail_left() } else { 0.0 })
            .max(0.0),
        }
    }

    /// The reading's instant.
    pub fn at(&self) -> Instant {
        self.at
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use multidriver::scoring::energy::LTE;

    use super::*;

    #[test]
    fn packets_closer_than_the_tail_share_one_wake_up() {
        let meter = RadioMeter::new(LTE);
        let t0 = Instant::now();
        let start = meter.reading(t0);
        for i in 0..100 {
            meter.packet_at(t0 + Duration::from_millis(50 * i), Direction::Up, 10);
        }
        let used = meter.reading(t0 + Duration::from_secs(60)).since(&start);
        assert_eq!(used.wakeups, 1);
        assert_eq!(used.up_bytes, 1000);
        let expected = LTE.promotion_energy()
            + LTE.tail_energy_within(Duration::from_millis(50 * 99))
            + LTE.tail_energy()
            + LTE.transfer_energy(1000, 0);
        assert!((used.joules - expected).abs() < 1e-9, "{used:?}");
    }

    #[test]
    fn a_window_without_packets_costs_only_the_tail_reaching_into_it() {
        let meter = RadioMeter::new(LTE);
        let t0 = Instant::now();
        meter.packet_at(t0, Direction::Down, 10);
        let start = meter.reading(t0 + Duration::from_secs(4));
        let used = meter.reading(t0 + Duration::from_secs(30)).since(&start);
        assert_eq!(used.wakeups, 0);
        let expected = LTE.tail_energy() - LTE.tail_energy_within(Duration::from_secs(4));
        assert!((used.joules - expected).abs() < 1e-9, "{used:?}");
        // Long after the tail: nothing at all.
        let start = meter.reading(t0 + Duration::from_secs(40));
        let used = meter.reading(t0 + Duration::from_secs(50)).since(&start);
        assert_eq!(used, RadioUse::default());
    }
}
