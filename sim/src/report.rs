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
        let _ = writeln!(
            s,
            "\nttfc: time to first connection; fail: failover after the route in use died while another \
             existed (s); usable: share of reachable time connected over a working route; best: share of \
             that on the lowest-RTT route; sw: route switches; J: radio energy; LTE↑: cellular promotions; \
             lost: app messages sent into dead connections, dropped from a full queue or never delivered; msg p99: \
             send-to-delivery delay of delivered messages; direct: share of connected time on a direct \
             (plain or hole-punched) path rather than a relay; relayed: relayed connections opened; \
             punched/tried: DCUtR runs that opened a direct path; circuits cut: at the relay's 2 min / \
             128 KiB limits."
        );
        s
    }
}
