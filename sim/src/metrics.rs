//! What a run measures, and how it is summarised.

use serde::Serialize;

/// Raw counters of one policy's run.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) ttfc: Vec<f64>,
    pub(crate) ttfc_censored: Vec<f64>,
    /// Time to first connection to a contact connected before an app
    /// restart (`restart` action), and those never reconnected.
    pub(crate) ttfc_restart: Vec<f64>,
    pub(crate) ttfc_restart_censored: Vec<f64>,
    pub(crate) failover: Vec<f64>,
    pub(crate) failover_censored: Vec<f64>,
    /// The same by cause (`Cause` as index): done, censored.
    pub(crate) failover_by: [(Vec<f64>, Vec<f64>); 4],
    pub(crate) samples_reachable: u64,
    pub(crate) samples_connected: u64,
    pub(crate) samples_usable: u64,
    pub(crate) samples_best: u64,
    /// Of `samples_usable`, those on a direct (not relayed) connection.
    pub(crate) samples_direct: u64,
    /// Relayed connections opened.
    pub(crate) relayed_opened: u64,
    /// DCUtR runs (one per relayed connection), and those that opened a
    /// direct path.
    pub(crate) punches: u64,
    pub(crate) punches_ok: u64,
    /// Circuits a relay cut at its duration or byte limit.
    pub(crate) circuits_cut: u64,
    pub(crate) switches: u64,
    pub(crate) discoveries: u64,
    pub(crate) answered: u64,
    pub(crate) answered_with_routes: u64,
    pub(crate) sent: u64,
    pub(crate) delivered: u64,
    pub(crate) lost: u64,
    /// Send-to-delivery delay of each delivered message, seconds.
    pub(crate) delays: Vec<f32>,
    pub(crate) dials: u64,
    pub(crate) dial_failures: u64,
    pub(crate) joules: f64,
    /// By radio: Wi-Fi, Ethernet, cellular, BLE.
    pub(crate) joules_by_radio: [f64; 4],
    /// By cause: app, connect, liveness, discovery (`Cause` order).
    pub(crate) joules_by_cause: [f64; 4],
    /// Cellular promotions by cause.
    pub(crate) lte_promotions_by_cause: [u64; 4],
    pub(crate) lte_promotions: u64,
    pub(crate) node_hours: f64,
}

/// Percentiles of a set of durations, in seconds. Samples that never ended
/// (censored at the end of the run, or when a node left) count at the time
/// they had run, so a policy that never recovers cannot look fast.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples that ended.
    pub count: u64,
    /// Samples still running when measured (counted at their running time).
    pub unfinished: u64,
    /// Median, seconds (`None` without samples).
    pub p50: Option<f64>,
    /// 95th percentile, seconds.
    pub p95: Option<f64>,
    /// 99th percentile, seconds.
    pub p99: Option<f64>,
}

impl Percentiles {
    fn of(done: &[f64], censored: &[f64]) -> (Percentiles, Vec<f64>) {
        let mut all: Vec<f64> = done.iter().chain(censored).copied().collect();
        all.sort_by(f64::total_cmp);
        let q = |p: f64| -> Option<f64> {
            if all.is_empty() {
                return None;
            }
            // Nearest rank.
            let rank = ((p * all.len() as f64).ceil() as usize).clamp(1, all.len());
            Some(round(all[rank - 1], 4))
        };
        (
            Percentiles {
                count: done.len() as u64,
                unfinished: censored.len() as u64,
                p50: q(0.50),
                p95: q(0.95),
                p99: q(0.99),
            },
            all,
        )
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| round(a as f64 / b as f64, 4))
}

/// Radio energy per node-hour by radio, joules.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EnergyByRadio {
    /// Wi-Fi.
    pub wifi: f64,
    /// Ethernet.
    pub ethernet: f64,
    /// Cellular.
    pub cellular: f64,
    /// BLE.
    pub ble: f64,
}

/// Radio energy per node-hour (J) by what the radio was woken for; each
/// activity owns its promotion, its bytes and the tail after it until the
/// next activity.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EnergyByCause {
    /// The app's own messages.
    pub app: f64,
    /// Dials and handshakes, relayed ones included.
    pub connect: f64,
    /// Pings, probes and transport keep-alives.
    pub liveness: f64,
    /// Discovery: DHT walks, rendezvous requests, mDNS queries, BLE scans.
    pub discovery: f64,
    /// Cellular promotions per node-hour, same order (app, connect,
    /// liveness, discovery).
    pub lte_promotions: [f64; 4],
}

/// Relays and hole punching in one policy's run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct NatCounts {
    /// Relayed connections that opened.
    pub relayed_connections: u64,
    /// DCUtR runs (one per relayed connection, up to 3 attempts each).
    pub hole_punches: u64,
    /// Those that opened a direct path.
    pub hole_punches_ok: u64,
    /// Circuits a relay cut at its duration or byte limit (each one a
    /// reconnect).
    pub circuits_cut: u64,
}

/// Failover split by what killed the route in use.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FailoverByCause {
    /// The node's own interface went down or changed network, and the OS
    /// reported it.
    pub interface_lost: Percentiles,
    /// The node's own interface went down after the host warned it was
    /// going (Android `onLosing`).
    pub interface_lost_after_warning: Percentiles,
    /// The node's own Wi-Fi silently stopped passing packets (no OS event).
    pub silent_stall: Percentiles,
    /// The peer's side changed: it moved to another network, lost an
    /// interface, or went offline while another route to it existed.
    pub peer_moved: Percentiles,
}

/// One policy's results.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PolicyResult {
    /// The policy.
    pub policy: String,
    /// Time from wanting a contact to the first connection, seconds.
    pub time_to_first_connection: Percentiles,
    /// After an app restart (`restart` action): time from the restart (or
    /// from when a path to the contact appeared) to the first connection,
    /// for contacts the app was connected to before, seconds. Not in
    /// [`time_to_first_connection`](Self::time_to_first_connection).
    pub time_to_first_connection_after_restart: Percentiles,
    /// Time from the death of the route in use (while another route existed)
    /// until app traffic flows again, seconds.
    pub failover: Percentiles,
    /// The same split by what killed the route.
    pub failover_by_cause: FailoverByCause,
    /// Of the time a contact was reachable, the share it was connected over
    /// a working route.
    pub usable_share: Option<f64>,
    /// Of the time connected over a working route, the share spent on the
    /// best route available (the lowest RTT, within 1 ms).
    pub best_route_share: Option<f64>,
    /// Of the time connected over a working route, the share spent on a
    /// direct path (a plain or hole-punched connection, not a relay).
    pub direct_share: Option<f64>,
    /// Relayed connections opened, DCUtR runs on them, hole punches that
    /// opened a direct path, and circuits a relay cut at its limits.
    pub nat: NatCounts,
    /// Primary route changes per node-hour.
    pub switches_per_node_hour: f64,
    /// Modelled radio energy per node-hour, joules.
    pub energy_j_per_node_hour: f64,
    /// The same by radio.
    pub energy_by_radio: EnergyByRadio,
    /// Energy per node-hour by cause.
    pub energy_by_cause: EnergyByCause,
    /// Cellular radio promotions (idle → connected) per node-hour.
    pub lte_promotions_per_node_hour: f64,
    /// Discovery lookups issued.
    pub discoveries: u64,
    /// Share of answered lookups that returned a route.
    pub discovery_success: Option<f64>,
    /// App messages sent.
    pub messages_sent: u64,
    /// Delivered (at once, or from the queue after reconnecting).
    pub messages_delivered: u64,
    /// Lost: sent into a dead connection, dropped from a full queue, or
    /// still waiting when the app or the run ended.
    pub messages_lost: u64,
    /// Send-to-delivery delay of delivered messages (one way over the path,
    /// plus any wait for a connection), seconds.
    pub message_delay: Percentiles,
    /// Dial attempts, and those that failed.
    pub dials: u64,
    /// Failed dial attempts.
    pub dial_failures: u64,
    /// Node-hours simulated (online time).
    pub node_hours: f64,
    /// Hash of every event this policy processed, in order.
    pub trace_hash: String,
    /// Every failover sample, sorted (for plots).
    #[serde(skip)]
    pub failover_samples: Vec<f64>,
}

impl Metrics {
    /// A time to first connection: after an app restart (to a contact
    /// connected before it) or not; `censored` if it never connected.
    pub(crate) fn ttfc(&mut self, after_restart: bool, seconds: f64, censored: bool) {
        match (after_restart, censored) {
            (false, false) => self.ttfc.push(seconds),
            (false, true) => self.ttfc_censored.push(seconds),
            (true, false) => self.ttfc_restart.push(seconds),
            (true, true) => self.ttfc_restart_censored.push(seconds),
        }
    }

    pub(crate) fn failover(&mut self, cause: crate::run::Cause, seconds: f64, censored: bool) {
        let by = &mut self.failover_by[cause as usize];
        if censored {
            self.failover_censored.push(seconds);
            by.1.push(seconds);
        } else {
            self.failover.push(seconds);
            by.0.push(seconds);
        }
    }

    pub(crate) fn into_result(self, policy: String, hash: u64) -> PolicyResult {
        let (ttfc, _) = Percentiles::of(&self.ttfc, &self.ttfc_censored);
        let (ttfc_restart, _) = Percentiles::of(&self.ttfc_restart, &self.ttfc_restart_censored);
        let (failover, samples) = Percentiles::of(&self.failover, &self.failover_censored);
        let by = |i: usize| Percentiles::of(&self.failover_by[i].0, &self.failover_by[i].1).0;
        let failover_by_cause = FailoverByCause {
            interface_lost: by(0),
            silent_stall: by(1),
            peer_moved: by(2),
            interface_lost_after_warning: by(3),
        };
        let per_hour = |x: f64| {
            if self.node_hours > 0.0 {
                round(x / self.node_hours, 3)
            } else {
                0.0
            }
        };
        PolicyResult {
            policy,
            time_to_first_connection: ttfc,
            time_to_first_connection_after_restart: ttfc_restart,
            failover,
            failover_by_cause,
            usable_share: ratio(self.samples_usable, self.samples_reachable),
            best_route_share: ratio(self.samples_best, self.samples_usable),
            direct_share: ratio(self.samples_direct, self.samples_usable),
            nat: NatCounts {
                relayed_connections: self.relayed_opened,
                hole_punches: self.punches,
                hole_punches_ok: self.punches_ok,
                circuits_cut: self.circuits_cut,
            },
            switches_per_node_hour: per_hour(self.switches as f64),
            energy_j_per_node_hour: per_hour(self.joules),
            energy_by_radio: EnergyByRadio {
                wifi: per_hour(self.joules_by_radio[0]),
                ethernet: per_hour(self.joules_by_radio[1]),
                cellular: per_hour(self.joules_by_radio[2]),
                ble: per_hour(self.joules_by_radio[3]),
            },
            energy_by_cause: EnergyByCause {
                app: per_hour(self.joules_by_cause[0]),
                connect: per_hour(self.joules_by_cause[1]),
                liveness: per_hour(self.joules_by_cause[2]),
                discovery: per_hour(self.joules_by_cause[3]),
                lte_promotions: self.lte_promotions_by_cause.map(|n| per_hour(n as f64)),
            },
            lte_promotions_per_node_hour: per_hour(self.lte_promotions as f64),
            discoveries: self.discoveries,
            discovery_success: ratio(self.answered_with_routes, self.answered),
            messages_sent: self.sent,
            messages_delivered: self.delivered,
            messages_lost: self.lost,
            message_delay: {
                let d: Vec<f64> = self.delays.iter().map(|x| f64::from(*x)).collect();
                Percentiles::of(&d, &[]).0
            },
            dials: self.dials,
            dial_failures: self.dial_failures,
            node_hours: round(self.node_hours, 4),
            trace_hash: format!("{hash:016x}"),
            failover_samples: samples,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn censored_samples_count_at_their_running_time() {
        let (p, all) = Percentiles::of(&[1.0, 2.0, 3.0], &[100.0]);
        assert_eq!(p.count, 3);
        assert_eq!(p.unfinished, 1);
        assert_eq!(p.p50, Some(2.0));
        assert_eq!(p.p99, Some(100.0));
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn no_samples_no_percentiles() {
        let (p, _) = Percentiles::of(&[], &[]);
        assert_eq!(p.p50, None);
    }
}
