//! Radios: each interface's energy account (promotion, tail, bytes), from
//! the scoring crate's energy model.

use std::time::Duration;

use multidriver_scoring::Timestamp;
use multidriver_scoring::energy::{self, RadioProfile};

use crate::scenario::CellularKind;

/// What a radio's activity was for, to split its energy in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The app's own messages.
    App,
    /// Dials and handshakes (relayed ones included).
    Connect,
    /// Pings, probes and transport keep-alives.
    Liveness,
    /// Discovery: DHT walks, rendezvous requests, mDNS, BLE scans.
    Discovery,
}

/// A radio's energy account: promotions, tails and bytes, from the scoring
/// crate's energy model.
///
/// Each activity owns its promotion, its bytes and the tail that follows it
/// until the next activity; the account splits joules and promotions by the
/// [`Cause`] of the activity that owns them.
#[derive(Debug, Clone)]
pub(crate) struct Radio {
    profile: RadioProfile,
    last: Option<Timestamp>,
    /// The cause of the activity whose tail runs now.
    last_cause: Cause,
    pub(crate) joules: f64,
    pub(crate) promotions: u64,
    /// Joules by [`Cause`], in its declaration order.
    pub(crate) joules_by_cause: [f64; 4],
    /// Promotions by [`Cause`].
    pub(crate) promotions_by_cause: [u64; 4],
}

impl Radio {
    pub(crate) fn new(profile: RadioProfile) -> Radio {
        Radio {
            profile,
            last: None,
            last_cause: Cause::App,
            joules: 0.0,
            promotions: 0,
            joules_by_cause: [0.0; 4],
            promotions_by_cause: [0; 4],
        }
    }

    /// Whether the radio is idle at `now` (a packet would pay a promotion).
    pub(crate) fn idle_at(&self, now: Timestamp) -> bool {
        self.last
            .is_none_or(|l| now.saturating_duration_since(l) > self.profile.tail_duration())
    }

    pub(crate) fn promotion_delay(&self, now: Timestamp) -> Duration {
        if self.idle_at(now) {
            self.profile.promotion
        } else {
            Duration::ZERO
        }
    }

    /// Traffic of `up` and `down` bytes at `now`, for `cause`.
    pub(crate) fn activity(&mut self, now: Timestamp, up: u64, down: u64, cause: Cause) {
        self.busy(now, now, up, down, cause);
    }

    fn charge(&mut self, cause: Cause, joules: f64) {
        self.joules += joules;
        self.joules_by_cause[cause as usize] += joules;
    }

    fn promote(&mut self, cause: Cause) {
        let e = self.profile.promotion_energy();
        self.charge(cause, e);
        self.promotions += 1;
        self.promotions_by_cause[cause as usize] += 1;
    }

    /// Continuous traffic from `from` to `to`, for `cause`.
    pub(crate) fn busy(
        &mut self,
        from: Timestamp,
        to: Timestamp,
        up: u64,
        down: u64,
        cause: Cause,
    ) {
        let before = self.last_cause;
        match self.last {
            // Still inside an earlier busy span.
            Some(last) if from <= last => {}
            Some(last) => {
                let gap = from.saturating_duration_since(last);
                if gap <= self.profile.tail_duration() {
                    let e = self.profile.tail_energy_within(gap);
                    self.charge(before, e);
                } else {
                    let e = self.profile.tail_energy();
                    self.charge(before, e);
                    self.promote(cause);
                }
            }
            None => self.promote(cause),
        }
        let start = self.last.map_or(from, |l| l.max(from));
        let span = to.saturating_duration_since(start).as_secs_f64() * self.profile.tail[0].power_w;
        self.charge(cause, span);
        let bytes = self.profile.transfer_energy(up, down);
        self.charge(cause, bytes);
        if self.last.is_none_or(|l| to >= l) {
            self.last_cause = cause;
        }
        self.last = Some(self.last.map_or(to, |l| l.max(to)));
    }

    /// Closes the account at the end of the run.
    pub(crate) fn finish(&mut self, end: Timestamp) {
        if let Some(last) = self.last.take() {
            let e = self
                .profile
                .tail_energy_within(end.saturating_duration_since(last));
            self.charge(self.last_cause, e);
        }
    }
}

/// Radios of a node, by interface kind.
pub(crate) fn radios(cellular: Option<CellularKind>) -> [Radio; 4] {
    let _ = cellular; // 4G and 5G share the LTE profile (no 5G figures in docs/PARAMETERS.md).
    [
        Radio::new(energy::WIFI),
        Radio::new(energy::ETHERNET),
        Radio::new(energy::LTE),
        Radio::new(energy::BLE),
    ]
}
