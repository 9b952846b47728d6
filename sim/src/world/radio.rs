//! Radios: each interface's energy account (promotion, tail, bytes), from
//! the scoring crate's energy model.

use std::time::Duration;

use multidriver_scoring::Timestamp;
use multidriver_scoring::energy::{self, RadioProfile};

use crate::scenario::CellularKind;

/// A radio's energy account: promotions, tails and bytes, from the scoring
/// crate's energy model.
#[derive(Debug, Clone)]
pub(crate) struct Radio {
    profile: RadioProfile,
    last: Option<Timestamp>,
    pub(crate) joules: f64,
    pub(crate) promotions: u64,
}

impl Radio {
    pub(crate) fn new(profile: RadioProfile) -> Radio {
        Radio {
            profile,
            last: None,
            joules: 0.0,
            promotions: 0,
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

    /// Traffic of `up` and `down` bytes at `now`.
    pub(crate) fn activity(&mut self, now: Timestamp, up: u64, down: u64) {
        self.busy(now, now, up, down);
    }

    /// Continuous traffic from `from` to `to`.
    pub(crate) fn busy(&mut self, from: Timestamp, to: Timestamp, up: u64, down: u64) {
        match self.last {
            // Still inside an earlier busy span.
            Some(last) if from <= last => {}
            Some(last) => {
                let gap = from.saturating_duration_since(last);
                if gap <= self.profile.tail_duration() {
                    self.joules += self.profile.tail_energy_within(gap);
                } else {
                    self.joules += self.profile.tail_energy() + self.profile.promotion_energy();
                    self.promotions += 1;
                }
            }
            None => {
                self.joules += self.profile.promotion_energy();
                self.promotions += 1;
            }
        }
        let start = self.last.map_or(from, |l| l.max(from));
        self.joules +=
            to.saturating_duration_since(start).as_secs_f64() * self.profile.tail[0].power_w;
        self.joules += self.profile.transfer_energy(up, down);
        self.last = Some(self.last.map_or(to, |l| l.max(to)));
    }

    /// Closes the account at the end of the run.
    pub(crate) fn finish(&mut self, end: Timestamp) {
        if let Some(last) = self.last.take() {
            self.joules += self
                .profile
                .tail_energy_within(end.saturating_duration_since(last));
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
