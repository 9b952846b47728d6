//! Race plans: which routes to dial, in which order, and when.

use std::time::Duration;

use crate::profile::Racing;
use crate::rank::Ranking;
use crate::route::Route;

/// Multiplier of RTTVAR in the expected handshake time: K = 4, as in RFC 6298
/// §2's retransmission timeout (SRTT + 4·RTTVAR), so an attempt gets the time
/// a healthy path almost always needs before the next one starts.
const RTTVAR_FACTOR: u32 = 4;

/// The time a healthy route should need for its handshake:
/// SRTT × handshake round trips + 4 × RTTVAR.
pub fn expected_handshake(route: &Route) -> Duration {
    route
        .rtt
        .srtt()
        .saturating_mul(route.transport.handshake_round_trips())
        .saturating_add(route.rtt.rttvar().saturating_mul(RTTVAR_FACTOR))
}

/// The delay before the attempt after `leader` starts: the leader's
/// [`expected_handshake`], clamped to the profile's bounds (by default Happy
/// Eyeballs' 100 ms to 2 s, RFC 8305 §8).
///
/// An unvalidated profile whose minimum exceeds its maximum gets the maximum.
pub fn stagger(leader: &Route, racing: &Racing) -> Duration {
    expected_handshake(leader)
        .max(racing.min_stagger())
        .min(racing.max_stagger())
}

/// One planned dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Index of the route in the slice that was ranked.
    pub index: usize,
    /// When to start it, counted from the start of the race.
    pub start_after: Duration,
    /// How long its handshake should take ([`expected_handshake`]).
    pub expected_handshake: Duration,
}

/// An ordered list of dial attempts with stagger delays.
///
/// The first attempt starts at once; each later one starts when the one
/// before it has had its [`stagger`] (its expected handshake time, clamped),
/// unless the runner fast-forwards: when an attempt fails, the next one should
/// start at once rather than wait for its slot. The first established
/// connection wins. Excluded routes never appear, and at most
/// [`Racing::max_attempts`] do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RacePlan {
    attempts: Vec<Attempt>,
}

impl RacePlan {
    /// Plans a race over `routes` (the slice `ranking` was made from).
    pub fn new(ranking: &Ranking, routes: &[Route], racing: &Racing) -> Self {
        let most = (racing.max_attempts as usize).min(ranking.entries().len());
        let mut attempts = Vec::with_capacity(most);
        let mut start_after = Duration::ZERO;
        for entry in ranking.eligible().take(most) {
            let route = &routes[entry.index];
            attempts.push(Attempt {
                index: entry.index,
                start_after,
                expected_handshake: expected_handshake(route),
            });
            start_after = start_after.saturating_add(stagger(route, racing));
        }
        RacePlan { attempts }
    }

    /// The attempts, in start order.
    pub fn attempts(&self) -> &[Attempt] {
        &self.attempts
    }

    /// Whether there is nothing to dial.
    pub fn is_empty(&self) -> bool {
        self.attempts.is_empty()
    }
}
