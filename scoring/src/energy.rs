//! The battery cost of using a route: radio promotion, tail, bytes and
//! keep-alives, per medium.
//!
//! A cellular radio wakes from idle with a *promotion* (a short burst at high
//! power), carries traffic, and then lingers in a high-power *tail* before it
//! drops back to idle. An isolated LTE wake-up therefore costs about 11 J
//! although it may carry only a few bytes. A keep-alive sent more often than
//! the tail lasts keeps the radio up for good; one sent less often pays a
//! promotion and a whole tail every time. [`RadioProfile::keepalive_energy`]
//! models both cases.
//!
//! All figures are in joules, watts and seconds; sources are in
//! `docs/PARAMETERS.md` and next to each constant.

use std::time::Duration;

use crate::route::{CellularGeneration, Medium, TransportKind};

/// One stage of a radio's tail: how long it lasts and at what power.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailStage {
    /// How long the radio stays in this stage without traffic.
    pub duration: Duration,
    /// Power drawn meanwhile, in watts.
    pub power_w: f64,
}

impl TailStage {
    const NONE: TailStage = TailStage {
        duration: Duration::ZERO,
        power_w: 0.0,
    };
}

/// The energy parameters of one kind of radio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RadioProfile {
    /// Time to go from idle to connected.
    pub promotion: Duration,
    /// Power drawn during the promotion, in watts.
    pub promotion_power_w: f64,
    /// The tail after the last packet, in up to two stages (the second is
    /// zero-length where a radio has one).
    pub tail: [TailStage; 2],
    /// Energy per bit sent, in joules.
    pub joules_per_bit_up: f64,
    /// Energy per bit received, in joules.
    pub joules_per_bit_down: f64,
}

/// LTE. Source for every figure: AT&T Video Optimizer,
/// `ARO.Core/src/main/resources/lte.conf`.
pub const LTE: RadioProfile = RadioProfile {
    // Promotion 0.26 s at 1.21 W ≈ 0.31 J.
    promotion: Duration::from_millis(260),
    promotion_power_w: 1.21,
    // Inactivity timer 0.1 s + long-DRX tail 10 s, at 1.06 W ≈ 10.7 J.
    tail: [
        TailStage {
            duration: Duration::from_millis(10_100),
            power_w: 1.06,
        },
        TailStage::NONE,
    ],
    // 438.39 mW/Mbps up, 51.97 mW/Mbps down ≈ 0.44 µJ/bit up, 0.05 µJ/bit down.
    joules_per_bit_up: 438.39e-3 / 1e6,
    joules_per_bit_down: 51.97e-3 / 1e6,
};

/// UMTS (3G), also used for 2G. Source: AT&T Video Optimizer `imap.conf`
/// (DCH 1.02 W for 4 s, FACH 0.40 W for 10 s, promotion 2.0 s); the promotion
/// power 0.53 W is Video Optimizer's default `POWER_IDLE_DCH`. Per-bit costs
/// are LTE's (no 3G figure in docs/PARAMETERS.md).
pub const UMTS: RadioProfile = RadioProfile {
    promotion: Duration::from_secs(2),
    promotion_power_w: 0.53,
    tail: [
        TailStage {
            duration: Duration::from_secs(4),
            power_w: 1.02,
        },
        TailStage {
            duration: Duration::from_secs(10),
            power_w: 0.40,
        },
    ],
    joules_per_bit_up: LTE.joules_per_bit_up,
    joules_per_bit_down: LTE.joules_per_bit_down,
};

/// Ratio of LTE's to Wi-Fi's energy per bit. An assumption: docs/PARAMETERS.md has
/// no Wi-Fi per-throughput figure, so we borrow Huang et al.'s whole-device
/// ratio ("LTE up to 23× less power-efficient than Wi-Fi", MobiSys 2012),
/// which is driven mostly by LTE's tail, not its per-bit cost. Per-bit energy
/// is small next to promotion and tail for the traffic profiles model, so
/// the error matters little; replace it when a measured figure arrives.
pub const LTE_OVER_WIFI_PER_BIT: f64 = 23.0;

/// Wi-Fi. Source: AT&T Video Optimizer `WiFi.conf` (active 0.403 W, tail
/// 0.25 s ≈ 0.1 J). Wi-Fi associates once and stays associated, so a wake-up
/// costs no promotion. Per-bit costs are LTE's divided by the assumed
/// [`LTE_OVER_WIFI_PER_BIT`].
pub const WIFI: RadioProfile = RadioProfile {
    promotion: Duration::ZERO,
    promotion_power_w: 0.0,
    tail: [
        TailStage {
            duration: Duration::from_millis(250),
            power_w: 0.403,
        },
        TailStage::NONE,
    ],
    joules_per_bit_up: LTE.joules_per_bit_up / LTE_OVER_WIFI_PER_BIT,
    joules_per_bit_down: LTE.joules_per_bit_down / LTE_OVER_WIFI_PER_BIT,
};

/// Wired Ethernet: no radio, hence no promotion and no tail; per-bit costs
/// taken as Wi-Fi's, an upper bound (no Ethernet figure in docs/PARAMETERS.md).
pub const ETHERNET: RadioProfile = RadioProfile {
    promotion: Duration::ZERO,
    promotion_power_w: 0.0,
    tail: [TailStage::NONE, TailStage::NONE],
    joules_per_bit_up: WIFI.joules_per_bit_up,
    joules_per_bit_down: WIFI.joules_per_bit_down,
};

/// Bluetooth Low Energy. A link-layer event is ≈ 1.2 ms at 4.8 mA (nRF52840,
/// 0 dBm), ≈ 17 µJ at 3 V. At the 1 Mbit/s LE PHY the radio draws
/// 4.8 mA × 3 V = 14.4 mW while it moves bits, so ≈ 14.4 nJ/bit (derived).
/// Connecting takes one advertising event and one connection event: ≈ 2.4 ms
/// at 14.4 mW. No tail: the radio sleeps between connection events.
pub const BLE: RadioProfile = RadioProfile {
    promotion: Duration::from_micros(2_400),
    promotion_power_w: 4.8e-3 * 3.0,
    tail: [TailStage::NONE, TailStage::NONE],
    joules_per_bit_up: 4.8e-3 * 3.0 / 1e6,
    joules_per_bit_down: 4.8e-3 * 3.0 / 1e6,
};

/// Loopback: no radio; the CPU cost of moving bytes in memory is negligible
/// next to any radio.
pub const LOOPBACK: RadioProfile = RadioProfile {
    promotion: Duration::ZERO,
    promotion_power_w: 0.0,
    tail: [TailStage::NONE, TailStage::NONE],
    joules_per_bit_up: 0.0,
    joules_per_bit_down: 0.0,
};

impl RadioProfile {
    /// The radio a medium uses. 5G and cellular of unknown generation use
    /// LTE's figures (5G non-standalone anchors on LTE; docs/PARAMETERS.md has no
    /// 5G figure); 2G uses UMTS's. Relay and unknown media are charged as LTE,
    /// the most expensive common case, so an unclassified route never looks
    /// cheaper than it may be.
    pub const fn for_medium(medium: Medium) -> RadioProfile {
        match medium {
            Medium::Cellular(CellularGeneration::G2 | CellularGeneration::G3) => UMTS,
            Medium::Cellular(_) | Medium::Relay | Medium::Unknown => LTE,
            Medium::Wifi => WIFI,
            Medium::Ethernet => ETHERNET,
            Medium::Bluetooth => BLE,
            Medium::Loopback => LOOPBACK,
        }
    }

    /// Energy of one promotion from idle.
    pub fn promotion_energy(&self) -> f64 {
        self.promotion.as_secs_f64() * self.promotion_power_w
    }

    /// Duration of the whole tail.
    pub fn tail_duration(&self) -> Duration {
        self.tail[0].duration + self.tail[1].duration
    }

    /// Energy of the tail's first `span` (the whole tail if `span` is longer).
    pub fn tail_energy_within(&self, span: Duration) -> f64 {
        let mut left = span.as_secs_f64();
        let mut joules = 0.0;
        for stage in &self.tail {
            let t = stage.duration.as_secs_f64().min(left);
            joules += t * stage.power_w;
            left -= t;
        }
        joules
    }

    /// Energy of a whole tail.
    pub fn tail_energy(&self) -> f64 {
        self.tail_energy_within(self.tail_duration())
    }

    /// Energy of one isolated wake-up: promotion plus a whole tail.
    pub fn isolated_wakeup_energy(&self) -> f64 {
        self.promotion_energy() + self.tail_energy()
    }

    /// Energy of moving `up` bytes out and `down` bytes in while the radio is
    /// already up.
    pub fn transfer_energy(&self, up: u64, down: u64) -> f64 {
        // u64 → f64 is exact below 2^53 bytes, far beyond any real transfer.
        (up as f64) * 8.0 * self.joules_per_bit_up + (down as f64) * 8.0 * self.joules_per_bit_down
    }

    /// Energy of the setup burst over `transport` from an idle radio: the
    /// promotion plus the handshake's bytes. The tail that follows is added by
    /// [`estimate`], which knows whether keep-alives hold the radio up.
    pub fn setup_energy(&self, transport: TransportKind) -> f64 {
        let (up, down) = transport.handshake_bytes();
        self.promotion_energy() + self.transfer_energy(up, down)
    }

    /// Whether keep-alives every `interval` keep the radio from ever
    /// returning to idle (the interval is shorter than the tail).
    pub fn held_up_by(&self, interval: Duration) -> bool {
        interval < self.tail_duration()
    }

    /// Energy of keeping a connection alive for `window` with a keep-alive of
    /// `bytes` each way every `interval`, after a setup at the window's start.
    ///
    /// If `interval` is shorter than the tail, the radio never returns to
    /// idle: the whole window costs the tail's first `interval` once per
    /// interval. Otherwise each keep-alive that falls inside the window (at
    /// `interval`, `2 × interval`, …) pays a promotion and a whole tail.
    pub fn keepalive_energy(&self, interval: Duration, window: Duration, bytes: u64) -> f64 {
        if interval.is_zero() {
            // Continuous traffic: the radio sits in its first tail stage.
            return window.as_secs_f64() * self.tail[0].power_w;
        }
        let ratio = window.as_secs_f64() / interval.as_secs_f64();
        let per_byte = self.transfer_energy(bytes, bytes);
        if self.held_up_by(interval) {
            ratio * (self.tail_energy_within(interval) + per_byte)
        } else {
            ratio.floor() * (self.isolated_wakeup_energy() + per_byte)
        }
    }
}

/// The modelled energy of using a route over a profile's horizon.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EnergyEstimate {
    /// Promotion, handshake bytes and, unless keep-alives hold the radio up,
    /// the tail after the handshake, in joules.
    pub setup_j: f64,
    /// Keep-alives over the horizon, in joules.
    pub keepalive_j: f64,
    /// The app's expected traffic over the horizon, in joules.
    pub traffic_j: f64,
}

impl EnergyEstimate {
    /// The sum of every part, in joules.
    pub fn total_j(&self) -> f64 {
        self.setup_j + self.keepalive_j + self.traffic_j
    }
}

/// Size of one keep-alive exchange each way: a libp2p ping is 32 bytes of
/// payload (libp2p specs `ping/ping.md`) inside a yamux/QUIC frame and an
/// IP/UDP or IP/TCP header; 100 bytes rounds that up.
pub const KEEPALIVE_BYTES: u64 = 100;

/// Estimates the energy of using a route over `medium` and `transport` for
/// `horizon`, with a keep-alive every `keepalive_interval` and
/// `bytes_per_hour` of app traffic each way.
pub fn estimate(
    medium: Medium,
    transport: TransportKind,
    horizon: Duration,
    keepalive_interval: Duration,
    bytes_per_hour: u64,
) -> EnergyEstimate {
    let radio = RadioProfile::for_medium(medium);
    let hours = horizon.as_secs_f64() / 3600.0;
    // f64 → u64 saturates; traffic beyond 2^64 bytes is not a real input.
    let bytes = (bytes_per_hour as f64 * hours) as u64;
    // Unless keep-alives hold the radio up, the setup burst is followed by a
    // whole tail of its own.
    let setup_tail = if radio.held_up_by(keepalive_interval) {
        0.0
    } else {
        radio.tail_energy()
    };
    EnergyEstimate {
        setup_j: radio.setup_energy(transport) + setup_tail,
        keepalive_j: radio.keepalive_energy(keepalive_interval, horizon, KEEPALIVE_BYTES),
        traffic_j: radio.transfer_energy(bytes, bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn lte_isolated_wakeup_is_about_11_joules() {
        // docs/PARAMETERS.md: ≈ 0.31 J promotion + ≈ 10.7 J tail ≈ 11 J.
        assert!(
            close(LTE.promotion_energy(), 0.31, 0.01),
            "{}",
            LTE.promotion_energy()
        );
        assert!(
            close(LTE.tail_energy(), 10.7, 0.01),
            "{}",
            LTE.tail_energy()
        );
        assert!(close(LTE.isolated_wakeup_energy(), 11.0, 0.05));
    }

    #[test]
    fn wifi_tail_is_about_a_tenth_of_a_joule() {
        // docs/PARAMETERS.md: 0.25 s at 0.403 W ≈ 0.1 J.
        assert!(
            close(WIFI.tail_energy(), 0.1, 0.001),
            "{}",
            WIFI.tail_energy()
        );
        assert_eq!(WIFI.promotion_energy(), 0.0);
    }

    #[test]
    fn umts_tail_is_about_8_joules() {
        // docs/PARAMETERS.md: DCH 4 s at 1.02 W + FACH 10 s at 0.40 W ≈ 8.1 J.
        assert!(
            close(UMTS.tail_energy(), 8.08, 0.001),
            "{}",
            UMTS.tail_energy()
        );
    }

    #[test]
    fn lte_per_bit_costs_match_parameters() {
        // docs/PARAMETERS.md: ≈ 0.44 µJ/bit up, 0.05 µJ/bit down.
        assert!(close(LTE.joules_per_bit_up * 1e6, 0.44, 0.005));
        assert!(close(LTE.joules_per_bit_down * 1e6, 0.05, 0.005));
        // One megabyte up over an active LTE radio ≈ 3.5 J.
        assert!(close(LTE.transfer_energy(1_000_000, 0), 3.507, 0.001));
    }

    #[test]
    fn ble_connect_is_two_link_layer_events_of_about_17_microjoules() {
        // docs/PARAMETERS.md: an event is ≈ 1.2 ms at 4.8 mA, at 3 V ≈ 17 µJ; the
        // model's connect is one advertising and one connection event.
        let micro = BLE.promotion_energy() * 1e6;
        assert!(close(micro, 2.0 * 17.3, 0.2), "{micro}");
        assert_eq!(BLE.tail_energy(), 0.0);
    }

    #[test]
    fn keepalive_shorter_than_the_tail_keeps_the_radio_up() {
        let hour = Duration::from_secs(3600);
        // Every 5 s on LTE: the radio never idles, ≈ 1.06 W for an hour.
        let held = LTE.keepalive_energy(Duration::from_secs(5), hour, 0);
        assert!(close(held, 1.06 * 3600.0, 1e-6), "{held}");
        // Every 30 s: 120 isolated wake-ups of ≈ 11 J.
        let woken = LTE.keepalive_energy(Duration::from_secs(30), hour, 0);
        assert!(
            close(woken, 120.0 * LTE.isolated_wakeup_energy(), 1e-6),
            "{woken}"
        );
        // Waking up for every keep-alive pays off only once the interval is
        // long enough to amortise the promotion: at the tail's length it still
        // costs more than holding the radio up, at twice it costs less.
        let at_tail = LTE.keepalive_energy(LTE.tail_duration(), hour, 0);
        assert!(at_tail > held, "{at_tail} <= {held}");
        let at_twice = LTE.keepalive_energy(LTE.tail_duration() * 2, hour, 0);
        assert!(at_twice < held, "{at_twice} >= {held}");
    }

    #[test]
    fn keepalive_energy_grows_as_the_interval_shrinks() {
        let hour = Duration::from_secs(3600);
        for radio in [LTE, UMTS, WIFI, BLE] {
            let mut previous = 0.0;
            for secs in [600, 120, 30, 15, 10, 5, 1] {
                let e = radio.keepalive_energy(Duration::from_secs(secs), hour, KEEPALIVE_BYTES);
                assert!(e >= previous, "{radio:?} at {secs}s: {e} < {previous}");
                previous = e;
            }
        }
    }

    #[test]
    fn a_connection_used_once_pays_one_whole_wake_up() {
        let lte = Medium::Cellular(CellularGeneration::G4);
        // A 60 s horizon with a 120 s keep-alive: no keep-alive falls in the
        // window, so the setup's promotion and tail are the whole cost.
        let e = estimate(
            lte,
            TransportKind::Quic,
            Duration::from_secs(60),
            Duration::from_secs(120),
            0,
        );
        assert_eq!(e.keepalive_j, 0.0);
        let expected = LTE.isolated_wakeup_energy() + LTE.transfer_energy(1_500, 3_000);
        assert!(close(e.total_j(), expected, 1e-9), "{e:?}");
        // With keep-alives every 5 s the radio stays up, so the setup pays no
        // tail of its own and the window costs ≈ 1.06 W × 60 s.
        let held = estimate(
            lte,
            TransportKind::Quic,
            Duration::from_secs(60),
            Duration::from_secs(5),
            0,
        );
        assert!(close(
            held.setup_j,
            LTE.setup_energy(TransportKind::Quic),
            1e-12
        ));
        assert!(close(held.keepalive_j, 1.06 * 60.0, 0.1), "{held:?}");
    }

    #[test]
    fn cellular_costs_more_than_wifi_for_the_same_use() {
        let horizon = Duration::from_secs(600);
        let interval = Duration::from_secs(30);
        let lte = estimate(
            Medium::Cellular(CellularGeneration::G4),
            TransportKind::Quic,
            horizon,
            interval,
            1_000_000,
        );
        let wifi = estimate(
            Medium::Wifi,
            TransportKind::Quic,
            horizon,
            interval,
            1_000_000,
        );
        let wired = estimate(
            Medium::Ethernet,
            TransportKind::Quic,
            horizon,
            interval,
            1_000_000,
        );
        assert!(lte.total_j() > 20.0 * wifi.total_j());
        assert!(wifi.total_j() > wired.total_j());
        assert!(
            estimate(
                Medium::Loopback,
                TransportKind::Tcp,
                horizon,
                interval,
                1_000_000
            )
            .total_j()
                == 0.0
        );
    }
}
