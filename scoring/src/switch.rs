//! Hysteresis: when to move a connected peer to a better route.

use std::time::Duration;

use crate::profile::Switching;
use crate::time::Timestamp;

/// What to do about a connected peer's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchDecision {
    /// Keep the current route: no candidate beats it by both margins.
    Stay,
    /// A candidate beats the current route by both margins but has not yet
    /// done so for the whole dwell time; ask again at `until` at the latest.
    Wait {
        /// When the dwell time ends if the candidate keeps winning.
        until: Timestamp,
    },
    /// Switch to the candidate.
    Switch,
}

/// Whether `candidate` beats `current` (costs in ms-equivalents) by both the
/// relative and the absolute margin.
pub fn beats(candidate: f64, current: f64, switching: &Switching) -> bool {
    let saving = current - candidate;
    saving >= switching.absolute_margin_ms && saving >= current * switching.relative_margin
        // A saving of zero never switches, even with both margins at zero.
        && saving > 0.0
}

/// Remembers which candidate has been beating the current route, and since
/// when, for one connected peer.
///
/// Feed it the current route's cost and the best other route's cost whenever
/// either changes (and at the [`SwitchDecision::Wait`] deadline). It answers
/// [`SwitchDecision::Switch`] only when the same candidate has beaten the
/// current route by both margins at every evaluation for the profile's dwell
/// time. A different candidate, or one evaluation where the margins are not
/// met, starts the dwell over. The key `K` identifies routes (e.g. a route id
/// or an index).
///
/// It is meant for choosing among live routes; a route that has died is
/// replaced at once, without hysteresis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchGuard<K> {
    leader: Option<(K, Timestamp)>,
}

impl<K> Default for SwitchGuard<K> {
    fn default() -> Self {
        SwitchGuard { leader: None }
    }
}

impl<K: PartialEq> SwitchGuard<K> {
    /// A guard with no candidate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides whether to switch from a route costing `current` to
    /// `candidate`, a route key and its cost, at `now`.
    pub fn evaluate(
        &mut self,
        current: f64,
        candidate: Option<(K, f64)>,
        switching: &Switching,
        now: Timestamp,
    ) -> SwitchDecision {
        let Some((key, _)) = candidate.filter(|(_, cost)| beats(*cost, current, switching)) else {
            self.leader = None;
            return SwitchDecision::Stay;
        };
        let since = match &self.leader {
            Some((leader, since)) if *leader == key => *since,
            _ => now,
        };
        let dwell: Duration = switching.dwell();
        if now.saturating_duration_since(since) >= dwell {
            self.leader = None;
            SwitchDecision::Switch
        } else {
            self.leader = Some((key, since));
            SwitchDecision::Wait {
                until: since + dwell,
            }
        }
    }

    /// Forgets the candidate (after a switch made elsewhere, or a network
    /// change).
    pub fn reset(&mut self) {
        self.leader = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Switching {
        Switching {
            relative_margin: 0.2,
            absolute_margin_ms: 10.0,
            dwell_ms: 2_000,
        }
    }

    #[test]
    fn both_margins_are_needed() {
        let p = policy();
        // 20 % of 100 is 20: 79 beats it, 81 does not.
        assert!(beats(79.0, 100.0, &p));
        assert!(!beats(81.0, 100.0, &p));
        // At 20 ms the relative margin is 4 ms but the absolute one is 10 ms.
        assert!(!beats(14.0, 20.0, &p));
        assert!(beats(10.0, 20.0, &p));
    }

    #[test]
    fn switches_only_after_the_dwell_time() {
        let p = policy();
        let mut g = SwitchGuard::new();
        let t = Timestamp::from_millis;
        assert_eq!(
            g.evaluate(100.0, Some((1, 50.0)), &p, t(0)),
            SwitchDecision::Wait { until: t(2_000) }
        );
        assert_eq!(
            g.evaluate(100.0, Some((1, 50.0)), &p, t(1_999)),
            SwitchDecision::Wait { until: t(2_000) }
        );
        assert_eq!(
            g.evaluate(100.0, Some((1, 50.0)), &p, t(2_000)),
            SwitchDecision::Switch
        );
    }

    #[test]
    fn a_lapse_or_another_candidate_restarts_the_dwell() {
        let p = policy();
        let mut g = SwitchGuard::new();
        let t = Timestamp::from_millis;
        g.evaluate(100.0, Some((1, 50.0)), &p, t(0));
        assert_eq!(
            g.evaluate(100.0, Some((1, 95.0)), &p, t(1_000)),
            SwitchDecision::Stay
        );
        assert_eq!(
            g.evaluate(100.0, Some((1, 50.0)), &p, t(1_500)),
            SwitchDecision::Wait { until: t(3_500) }
        );
        assert_eq!(
            g.evaluate(100.0, Some((2, 40.0)), &p, t(3_500)),
            SwitchDecision::Wait { until: t(5_500) }
        );
        assert_eq!(g.evaluate(100.0, None, &p, t(6_000)), SwitchDecision::Stay);
    }

    #[test]
    fn zero_dwell_switches_at_once_but_never_on_equal_cost() {
        let p = Switching {
            relative_margin: 0.0,
            absolute_margin_ms: 0.0,
            dwell_ms: 0,
        };
        let mut g = SwitchGuard::new();
        assert_eq!(
            g.evaluate(100.0, Some((1, 100.0)), &p, Timestamp::ZERO),
            SwitchDecision::Stay
        );
        assert_eq!(
            g.evaluate(100.0, Some((1, 99.0)), &p, Timestamp::ZERO),
            SwitchDecision::Switch
        );
    }
}
