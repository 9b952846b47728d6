//! Round-trip time estimation: SRTT/RTTVAR with per-medium priors and a
//! decaying failure penalty.

use std::time::Duration;

use crate::route::{CellularGeneration, Medium, Scope};
use crate::time::Timestamp;

/// Gain of the smoothed RTT: α = 1/8. Source: RFC 6298 §2.3 (Jacobson/Karels).
const ALPHA: f64 = 1.0 / 8.0;
/// Gain of the RTT variation: β = 1/4. Source: RFC 6298 §2.3.
const BETA: f64 = 1.0 / 4.0;

/// Penalty added per failed dial. Our choice: a dead route should lose to a
/// live one that is several round trips slower, but come back within minutes.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);
/// Upper bound of the accumulated penalty, so repeated failures cannot bury a
/// route for hours.
pub const MAX_FAILURE_PENALTY: Duration = Duration::from_secs(10);
/// Half-life of the failure penalty. Our choice: about twice iroh's path idle
/// time (15 s) and five times Tailscale's path trust (6.5 s), so a route that
/// just failed stays behind for a few of those periods.
pub const FAILURE_PENALTY_HALF_LIFE: Duration = Duration::from_secs(30);

/// Median internet RTT: US west↔east 63.3 ms. Source: libp2p/test-plans
/// `perf/runner/benchmark-results.json`. Added to the access hop of every
/// route whose address is on the internet; a deliberately pessimistic figure
/// for nearby peers, which their first sample corrects.
pub const INTERNET_PATH: Duration = Duration::from_micros(63_300);

/// The round trip through the medium's own access network, up to where the
/// path to the peer starts (the access point, the operator's gateway).
pub fn access_hop(medium: Medium) -> Duration {
    match medium {
        // Wi-Fi access hop: > 50 % of packets see > 20 ms on campus APs.
        // Source: "WiFi can be the weakest link" measurement study.
        Medium::Wifi => Duration::from_millis(20),
        // Wired LAN: sub-millisecond; 1 ms is our conservative choice.
        Medium::Ethernet => Duration::from_millis(1),
        // Loopback: tens of microseconds; 100 µs is our conservative choice.
        Medium::Loopback => Duration::from_micros(100),
        // LTE core network 30–100 ms: midpoint 65 ms. Source: High Performance
        // Browser Networking (HPBN), "Mobile Networks". 5G and unknown
        // generations use the LTE figure (no 5G measurement in docs/PARAMETERS.md).
        Medium::Cellular(
            CellularGeneration::G4 | CellularGeneration::G5 | CellularGeneration::Unknown,
        ) => Duration::from_millis(65),
        // HPBN, "Mobile Networks": 3G 100–500 ms, 2G 300–1000 ms; we take
        // 200 ms and 500 ms. Not in docs/PARAMETERS.md.
        Medium::Cellular(CellularGeneration::G3) => Duration::from_millis(200),
        Medium::Cellular(CellularGeneration::G2) => Duration::from_millis(500),
        // BLE connection interval 7.5 ms – 4 s (Bluetooth Core spec); Android's
        // `BluetoothGatt.CONNECTION_PRIORITY_BALANCED` asks 30–50 ms (Android
        // API docs, not in docs/PARAMETERS.md); a round trip spans about two
        // intervals: 100 ms.
        Medium::Bluetooth => Duration::from_millis(100),
        // A relayed route first crosses the internet to the relay; the leg
        // from the relay to the peer is the internet path added by scope.
        Medium::Relay => INTERNET_PATH,
        // Nothing is known of the access network.
        Medium::Unknown => Duration::ZERO,
    }
}

/// The RTT assumed for a route before any sample arrives: the medium's
/// [`access_hop`] plus, for an internet address, [`INTERNET_PATH`].
pub fn prior(medium: Medium, scope: Scope) -> Duration {
    let path = match scope {
        Scope::Loopback | Scope::Lan => Duration::ZERO,
        Scope::Internet => INTERNET_PATH,
    };
    access_hop(medium) + path
}

/// A smoothed round-trip estimate for one route, with variance, a per-medium
/// prior and a penalty for recent failures that decays with time.
///
/// Samples update SRTT and RTTVAR as RFC 6298 §2 specifies. Until the first
/// sample arrives the estimator reports the route's [`prior`] with a
/// variation of half of it (RFC 6298's initial RTTVAR = R/2). Each failure adds
/// [`FAILURE_PENALTY`] (up to [`MAX_FAILURE_PENALTY`]), halving every
/// [`FAILURE_PENALTY_HALF_LIFE`]; time is always passed in.
///
/// A sample timed from a handshake ([`on_handshake_sample`]) is
/// provisional: it includes the handshake's own processing (key exchange,
/// protocol negotiation), which on a phone's CPU or a debug build can be
/// larger than the path's round trip. The first direct measurement (a
/// ping, [`on_sample`]) replaces provisional samples instead of being
/// smoothed into them.
///
/// [`on_handshake_sample`]: Self::on_handshake_sample
/// [`on_sample`]: Self::on_sample
#[derive(Debug, Clone, PartialEq)]
pub struct RttEstimator {
    prior: Duration,
    /// Smoothed RTT in seconds, once a sample arrived.
    srtt: Option<f64>,
    /// RTT variation in seconds.
    rttvar: f64,
    samples: u32,
    /// Penalty in seconds as of `penalty_at`.
    penalty: f64,
    penalty_at: Timestamp,
    /// Whether every sample so far was timed from a handshake.
    provisional: bool,
}

impl RttEstimator {
    /// An estimator with the [`prior`] of `medium` and `scope`, and no
    /// samples.
    pub fn new(medium: Medium, scope: Scope) -> Self {
        Self::with_prior(prior(medium, scope))
    }

    /// An estimator with an explicit prior and no samples.
    pub fn with_prior(prior: Duration) -> Self {
        RttEstimator {
            prior,
            srtt: None,
            rttvar: prior.as_secs_f64() / 2.0,
            samples: 0,
            penalty: 0.0,
            penalty_at: Timestamp::ZERO,
            provisional: false,
        }
    }

    /// Feeds one direct RTT measurement (a ping's round trip). It replaces
    /// provisional handshake samples.
    pub fn on_sample(&mut self, rtt: Duration) {
        if self.provisional {
            self.provisional = false;
            self.srtt = None;
        }
        self.smooth(rtt);
    }

    /// Feeds one round trip timed from a handshake (its duration divided by
    /// its round trips); provisional until a direct sample arrives.
    pub fn on_handshake_sample(&mut self, rtt: Duration) {
        if self.srtt.is_none() {
            self.provisional = true;
        }
        self.smooth(rtt);
    }

    fn smooth(&mut self, rtt: Duration) {
        let r = rtt.as_secs_f64();
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2.0;
            }
            Some(srtt) => {
                self.rttvar = (1.0 - BETA) * self.rttvar + BETA * (srtt - r).abs();
                self.srtt = Some((1.0 - ALPHA) * srtt + ALPHA * r);
            }
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// Records a failed dial or a timed-out probe at `now`.
    pub fn on_failure(&mut self, now: Timestamp) {
        // A failure reported late (an earlier `now`) never rewinds the decay.
        let at = now.max(self.penalty_at);
        let current = self.penalty_secs(at);
        self.penalty =
            (current + FAILURE_PENALTY.as_secs_f64()).min(MAX_FAILURE_PENALTY.as_secs_f64());
        self.penalty_at = at;
    }

    /// Records a successful dial: the route works now, so its failure
    /// penalty is forgiven (its dial history still counts toward
    /// reliability).
    pub fn on_success(&mut self) {
        self.penalty = 0.0;
    }

    /// Forgets every sample and penalty: the route's path changed (a new
    /// network attachment), so its history describes another network.
    pub fn reset(&mut self) {
        *self = Self::with_prior(self.prior);
    }

    /// The smoothed RTT, or the prior before any sample.
    pub fn srtt(&self) -> Duration {
        self.srtt.map_or(self.prior, saturating_duration)
    }

    /// The RTT variation.
    pub fn rttvar(&self) -> Duration {
        saturating_duration(self.rttvar)
    }

    /// Samples received since creation or the last [`reset`](Self::reset).
    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// Whether [`srtt`](Self::srtt) is still the medium's prior.
    pub fn is_prior(&self) -> bool {
        self.srtt.is_none()
    }

    /// The failure penalty as of `now`.
    pub fn failure_penalty(&self, now: Timestamp) -> Duration {
        saturating_duration(self.penalty_secs(now))
    }

    /// [`srtt`](Self::srtt) in seconds, without a `Duration` round trip (the
    /// ranking hot path).
    pub(crate) fn srtt_secs(&self) -> f64 {
        self.srtt.unwrap_or(self.prior.as_secs_f64())
    }

    /// [`rttvar`](Self::rttvar) in seconds.
    pub(crate) fn rttvar_secs(&self) -> f64 {
        self.rttvar
    }

    /// [`failure_penalty`](Self::failure_penalty) in seconds.
    pub(crate) fn penalty_secs(&self, now: Timestamp) -> f64 {
        if self.penalty == 0.0 {
            return 0.0;
        }
        let elapsed = now.saturating_duration_since(self.penalty_at).as_secs_f64();
        self.penalty * 0.5f64.powf(elapsed / FAILURE_PENALTY_HALF_LIFE.as_secs_f64())
    }
}

/// Seconds as a duration, saturating instead of panicking at the extremes.
fn saturating_duration(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(if secs > 0.0 {
        Duration::MAX
    } else {
        Duration::ZERO
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> f64 {
        d.as_secs_f64() * 1e3
    }

    #[test]
    fn prior_until_first_sample_then_rfc6298() {
        let mut e = RttEstimator::new(Medium::Cellular(CellularGeneration::G4), Scope::Lan);
        assert!(e.is_prior());
        assert_eq!(e.srtt(), Duration::from_millis(65));
        assert!((ms(e.rttvar()) - 32.5).abs() < 1e-9);

        e.on_sample(Duration::from_millis(100));
        assert_eq!(e.samples(), 1);
        assert!((ms(e.srtt()) - 100.0).abs() < 1e-9);
        assert!((ms(e.rttvar()) - 50.0).abs() < 1e-9);

        // RTTVAR = 3/4·50 + 1/4·|100 − 60| = 47.5; SRTT = 7/8·100 + 1/8·60 = 95.
        e.on_sample(Duration::from_millis(60));
        assert!((ms(e.rttvar()) - 47.5).abs() < 1e-9);
        assert!((ms(e.srtt()) - 95.0).abs() < 1e-9);
    }

    #[test]
    fn converges_to_a_steady_rtt() {
        let mut e = RttEstimator::new(Medium::Wifi, Scope::Lan);
        for _ in 0..200 {
            e.on_sample(Duration::from_millis(12));
        }
        assert!((ms(e.srtt()) - 12.0).abs() < 0.01);
        assert!(ms(e.rttvar()) < 0.01);
    }

    #[test]
    fn a_direct_sample_replaces_handshake_samples() {
        let mut e = RttEstimator::new(Medium::Wifi, Scope::Lan);
        e.on_handshake_sample(Duration::from_millis(200));
        e.on_handshake_sample(Duration::from_millis(180));
        assert!(e.srtt() > Duration::from_millis(150));
        e.on_sample(Duration::from_millis(4));
        assert_eq!(e.srtt(), Duration::from_millis(4));
        assert_eq!(e.rttvar(), Duration::from_millis(2));
        // From then on, handshake samples are smoothed in like any other.
        e.on_handshake_sample(Duration::from_millis(12));
        assert_eq!(e.srtt(), Duration::from_millis(5));
        assert_eq!(e.samples(), 4);
    }

    #[test]
    fn a_success_forgives_the_failure_penalty() {
        let mut e = RttEstimator::new(Medium::Wifi, Scope::Lan);
        let t0 = Timestamp::ZERO;
        e.on_failure(t0);
        e.on_failure(t0);
        assert_eq!(e.failure_penalty(t0), 2 * FAILURE_PENALTY);
        e.on_success();
        assert_eq!(e.failure_penalty(t0), Duration::ZERO);
    }

    #[test]
    fn failure_penalty_accumulates_caps_and_halves() {
        let mut e = RttEstimator::new(Medium::Wifi, Scope::Lan);
        let t0 = Timestamp::from_millis(1_000);
        assert_eq!(e.failure_penalty(t0), Duration::ZERO);
        e.on_failure(t0);
        e.on_failure(t0);
        assert!((e.failure_penalty(t0).as_secs_f64() - 2.0).abs() < 1e-9);
        // A late report of an older failure adds to the penalty but does not
        // rewind its decay.
        let mut late = e.clone();
        late.on_failure(Timestamp::ZERO);
        assert!((late.failure_penalty(t0).as_secs_f64() - 3.0).abs() < 1e-9);
        let later = t0 + FAILURE_PENALTY_HALF_LIFE;
        assert!((e.failure_penalty(later).as_secs_f64() - 1.0).abs() < 1e-9);
        for _ in 0..50 {
            e.on_failure(later);
        }
        assert_eq!(e.failure_penalty(later), MAX_FAILURE_PENALTY);
        // A timestamp before the failure (another clock's) never raises it.
        assert_eq!(e.failure_penalty(Timestamp::ZERO), MAX_FAILURE_PENALTY);
    }

    #[test]
    fn reset_returns_to_the_prior() {
        let mut e = RttEstimator::new(Medium::Wifi, Scope::Lan);
        e.on_sample(Duration::from_millis(300));
        e.on_failure(Timestamp::from_millis(5));
        e.reset();
        assert!(e.is_prior());
        assert_eq!(e.srtt(), prior(Medium::Wifi, Scope::Lan));
        assert_eq!(e.failure_penalty(Timestamp::from_millis(5)), Duration::ZERO);
    }

    #[test]
    fn every_prior_is_positive_and_cellular_is_slower_than_wifi() {
        for m in [
            Medium::Wifi,
            Medium::Ethernet,
            Medium::Bluetooth,
            Medium::Loopback,
            Medium::Relay,
            Medium::Unknown,
            Medium::Cellular(CellularGeneration::G2),
            Medium::Cellular(CellularGeneration::G3),
            Medium::Cellular(CellularGeneration::G4),
            Medium::Cellular(CellularGeneration::G5),
        ] {
            assert!(prior(m, Scope::Lan) >= access_hop(m), "{m}");
            assert_eq!(
                prior(m, Scope::Internet),
                access_hop(m) + INTERNET_PATH,
                "{m}"
            );
        }
        let lte = Medium::Cellular(CellularGeneration::G4);
        assert!(prior(Medium::Wifi, Scope::Internet) < prior(lte, Scope::Internet));
        assert!(prior(Medium::Loopback, Scope::Loopback) < prior(Medium::Ethernet, Scope::Lan));
        // A public route over Wi-Fi is never priced below the same peer over
        // an unknown medium.
        assert!(prior(Medium::Wifi, Scope::Internet) >= prior(Medium::Unknown, Scope::Internet));
        assert!(prior(Medium::Relay, Scope::Internet) == INTERNET_PATH * 2);
    }
}
