//! The run's report: a terminal table with ratios, and JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::metrics::PolicyResult;

/// Everything a run measured. Serialized to JSON it is byte-identical for the
/// same scenario and seed (wall times are kept apart, in [`Report::wall`]).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Nodes simulated.
    pub nodes: u32,
    /// Simulated seconds.
    pub duration_s: f64,
    /// One entry per policy, in the scenario's order.
    pub policies: Vec<PolicyResult>,
    /// A hash over every policy's trace hash: one value to compare runs by.
    pub trace_hash: String,
    /// Wall time per policy (not part of the JSON: it differs run to run).
    #[serde(skip)]
    pub wall: Vec<Duration>,
}

fn secs(x: Option<f64>) -> String {
    match x {
        Some(s) if s < 10.0 => format!("{s:.2}"),
        Some(s) => format!("{s:.1}"),
        None => "-".to_owned(),
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".to_owned(), |v| format!("{:.1}%", v * 100.0))
}

fn times(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "-".to_owned(),
    }
}

/// What every column of [`Report::table`] means, with its unit.
const LEGEND: &str = "
legend (n·h: per node and hour of simulated time; ×: the policy's figure divided by the baseline's):
  ttfc p50, p95       time to first connection with a contact, seconds (median, 95th percentile)
  fail p50, p95, p99  failover: seconds from the route in use dying, while another worked, to a working
                      connection again; \"(k unrecovered)\": still down at the end, counted at their time so far
  usable              of the time a contact was reachable, the share connected over a working route
  best                of that connected time, the share on the best route available (lowest RTT, within 1 ms)
  sw/n·h              route switches per node-hour
  J/n·h               radio energy (Wi-Fi, cellular, Bluetooth), joules per node-hour
  LTE↑/n·h            cellular promotions (the radio woken from idle) per node-hour
  disc ok             of the discovery lookups answered, the share that returned a route
  lost                app messages sent into dead connections, dropped from a full queue or never delivered
  msg p99             send-to-delivery delay of delivered messages, seconds, 99th percentile
  failover by cause   fail p50 / p95 in seconds (samples) when: the phone's own interface went (own interface
                      lost), it went after the OS warned (lost after a warning), Wi-Fi stopped passing packets
                      without going down (silent Wi-Fi stall), or the contact changed networks (peer moved)
  direct              of the connected time, the share on a direct path (plain or hole-punched), not a relay
  relayed             relayed connections opened (count)
  punched/tried       DCUtR hole punches that opened a direct path / punches tried
  circuits cut        relayed circuits ended by the relay's limits (2 min, 128 KiB)
  energy by cause     joules per node-hour spent on the app's own traffic (app), dialling and racing
                      (connect), keep-alives and probes (liveness) and lookups (discovery); in parentheses the
                      cellular promotions per node-hour each caused
  samples             contacts measured after an app restart (restart table)
  × oracle, × stock, × tuned  the restart table's p50 against the oracle's, libp2p-stock's and libp2p-tuned's
  ratios              below 1 is better than the baseline in every column; '-' where either figure is missing
";

impl Report {
    /// Time to first connection after an app restart (the `restart`
    /// action), for contacts connected before it, with ratios against the
    /// oracle and the stock stacks; nothing without restarts.
    fn restart_table(&self, s: &mut String) {
        fn after(p: &PolicyResult) -> &crate::Percentiles {
            &p.time_to_first_connection_after_restart
        }
        if self
            .policies
            .iter()
            .all(|p| after(p).count + after(p).unfinished == 0)
        {
            return;
        }
        let base = |name: &str| self.find(name).and_then(|b| after(b).p50);
        let (oracle, stock, tuned) = (base("oracle"), base("libp2p-stock"), base("libp2p-tuned"));
        let _ = writeln!(
            s,
            "\nttfc after an app restart (contacts connected before it), seconds:\n{:<26} {:>8} {:>8} {:>8} {:>9} {:>11} {:>11} {:>11}",
            "policy", "p50", "p95", "p99", "samples", "× oracle", "× stock", "× tuned"
        );
        for p in &self.policies {
            let a = after(p);
            let _ = writeln!(
                s,
                "{:<26} {:>8} {:>8} {:>8} {:>9} {:>11} {:>11} {:>11}",
                p.policy,
                secs(a.p50),
                secs(a.p95),
                secs(a.p99),
                a.count + a.unfinished,
                times(a.p50, oracle),
                times(a.p50, stock),
                times(a.p50, tuned),
            );
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        // Serializing plain structs of numbers and strings cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    fn find(&self, name: &str) -> Option<&PolicyResult> {
        self.policies.iter().find(|p| p.policy == name)
    }

    /// The terminal table: each policy's figures, then ratios against
    /// `libp2p-stock` (defaults), `libp2p-tuned` and `oracle` where those ran.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "scenario {} · seed {} · {} nodes · {:.0} s simulated · trace {}",
            self.scenario, self.seed, self.nodes, self.duration_s, self.trace_hash
        );
        let _ = writeln!(
            s,
            "{:<26} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8} {:>9} {:>8} {:>7} {:>7} {:>8}",
            "policy",
            "ttfc p50",
            "ttfc p95",
            "fail p50",
            "fail p95",
            "fail p99",
            "usable",
            "best",
            "sw/n·h",
            "J/n·h",
            "LTE↑/n·h",
            "disc ok",
            "lost",
            "msg p99"
        );
        for p in &self.policies {
            let unfinished = if p.failover.unfinished > 0 {
                format!(" ({} unrecovered)", p.failover.unfinished)
            } else {
                String::new()
            };
            let _ = writeln!(
                s,
                "{:<26} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>8.2} {:>9.1} {:>8.1} {:>7} {:>7} {:>8}{}",
                p.policy,
                secs(p.time_to_first_connection.p50),
                secs(p.time_to_first_connection.p95),
                secs(p.failover.p50),
                secs(p.failover.p95),
                secs(p.failover.p99),
                pct(p.usable_share),
                pct(p.best_route_share),
                p.switches_per_node_hour,
                p.energy_j_per_node_hour,
                p.lte_promotions_per_node_hour,
                pct(p.discovery_success),
                p.messages_lost,
                secs(p.message_delay.p99),
                unfinished,
            );
        }
        let _ = writeln!(
            s,
            "\nfailover by cause, seconds p50 / p95 (samples):\n{:<26} {:>22} {:>22} {:>22} {:>22}",
            "policy",
            "own interface lost",
            "lost after a warning",
            "silent Wi-Fi stall",
            "peer moved"
        );
        for p in &self.policies {
            let c = &p.failover_by_cause;
            let cell = |x: &crate::Percentiles| {
                format!(
                    "{} / {} ({})",
                    secs(x.p50),
                    secs(x.p95),
                    x.count + x.unfinished
                )
            };
            let _ = writeln!(
                s,
                "{:<26} {:>22} {:>22} {:>22} {:>22}",
                p.policy,
                cell(&c.interface_lost),
                cell(&c.interface_lost_after_warning),
                cell(&c.silent_stall),
                cell(&c.peer_moved)
            );
        }
        if self.policies.iter().any(|p| p.nat.relayed_connections > 0) {
            let _ = writeln!(
                s,
                "\nrelays and hole punching:\n{:<26} {:>8} {:>8} {:>8} {:>14} {:>12}",
                "policy", "ttfc p50", "direct", "relayed", "punched/tried", "circuits cut"
            );
            for p in &self.policies {
                let _ = writeln!(
                    s,
                    "{:<26} {:>8} {:>8} {:>8} {:>14} {:>12}",
                    p.policy,
                    secs(p.time_to_first_connection.p50),
                    pct(p.direct_share),
                    p.nat.relayed_connections,
                    format!("{}/{}", p.nat.hole_punches_ok, p.nat.hole_punches),
                    p.nat.circuits_cut
                );
            }
        }
        let _ = writeln!(
            s,
            "\nenergy by cause, J/node·h (cellular promotions/node·h):\n{:<26} {:>15} {:>15} {:>15} {:>15}",
            "policy", "app", "connect", "liveness", "discovery"
        );
        for p in &self.policies {
            let e = &p.energy_by_cause;
            let cell = |j: f64, n: f64| format!("{j:.0} ({n:.1})");
            let _ = writeln!(
                s,
                "{:<26} {:>15} {:>15} {:>15} {:>15}",
                p.policy,
                cell(e.app, e.lte_promotions[0]),
                cell(e.connect, e.lte_promotions[1]),
                cell(e.liveness, e.lte_promotions[2]),
                cell(e.discovery, e.lte_promotions[3]),
            );
        }
        self.restart_table(&mut s);
        for base in ["libp2p-stock", "libp2p-tuned", "oracle"] {
            let Some(b) = self.find(base) else { continue };
            let _ = writeln!(
                s,
                "\nratios against {base} (lower is better for every column):"
            );
            let _ = writeln!(
                s,
                "{:<26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                "policy", "ttfc p50", "fail p50", "fail p95", "msg p99", "energy", "LTE↑"
            );
            for p in &self.policies {
                if p.policy == base {
                    continue;
                }
                let _ = writeln!(
                    s,
                    "{:<26} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                    p.policy,
                    times(
                        p.time_to_first_connection.p50,
                        b.time_to_first_connection.p50
                    ),
                    times(p.failover.p50, b.failover.p50),
                    times(p.failover.p95, b.failover.p95),
                    times(p.message_delay.p99, b.message_delay.p99),
                    times(
                        Some(p.energy_j_per_node_hour),
                        Some(b.energy_j_per_node_hour)
                    ),
                    times(
                        Some(p.lte_promotions_per_node_hour),
                        Some(b.lte_promotions_per_node_hour)
                    ),
                );
            }
        }
        s.push_str(LEGEND);
        s
    }
}
