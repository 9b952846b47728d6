//! One event as printed: the report, its human-readable line and its JSON
//! line, and the costs and explanations in it.

use std::time::Duration;

use libp2p::PeerId;
use multidriver::core::{Reachability, SwitchReason};
use multidriver::scoring::rank::Components;
use serde::Serialize;

/// The label, new and old costs, and explanation of a switch.
pub(super) fn switch_reason(
    reason: &SwitchReason,
) -> (&'static str, Option<Cost>, Option<Cost>, String) {
    match reason {
        SwitchReason::Better { from, to } => (
            "better",
            Some(Cost::from(to)),
            Some(Cost::from(from)),
            format!(
                "better: {:.1} ms against {:.1} ms ({})",
                to.total_ms(),
                from.total_ms(),
                why(to)
            ),
        ),
        SwitchReason::InterfaceLost => (
            "interface_lost",
            None,
            None,
            "the old route's interface went down".to_owned(),
        ),
        SwitchReason::InterfaceLosing => (
            "interface_losing",
            None,
            None,
            "the old route's interface is going".to_owned(),
        ),
        SwitchReason::ConnectionClosed => (
            "connection_closed",
            None,
            None,
            "the old connection closed".to_owned(),
        ),
        SwitchReason::HolePunched => (
            "hole_punched",
            None,
            None,
            "a hole punch opened a direct connection".to_owned(),
        ),
        other => ("other", None, None, format!("{other:?}")),
    }
}

/// A route's cost components in words (as `examples/chat` prints them,
/// with the costly-link penalty and a relayed route's circuit limits).
pub(super) fn why(c: &Components) -> String {
    format!(
        "cost {:.1} ms: latency {:.1}, energy {:.1}, reliability {:.1}, provenance {:.1}, costly link {:.1}, relay limits {:.1}",
        c.total_ms(),
        c.latency_ms,
        c.energy_ms,
        c.reliability_ms,
        c.provenance_ms,
        c.costly_link_ms,
        c.relay_ms,
    )
}

/// Milliseconds rounded to 0.1, as printed.
fn ms(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// A route's cost components in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(super) struct Cost {
    total_ms: f64,
    latency_ms: f64,
    energy_ms: f64,
    reliability_ms: f64,
    provenance_ms: f64,
    costly_link_ms: f64,
    relay_ms: f64,
}

impl From<&Components> for Cost {
    fn from(c: &Components) -> Self {
        Cost {
            total_ms: ms(c.total_ms()),
            latency_ms: ms(c.latency_ms),
            energy_ms: ms(c.energy_ms),
            reliability_ms: ms(c.reliability_ms),
            provenance_ms: ms(c.provenance_ms),
            costly_link_ms: ms(c.costly_link_ms),
            relay_ms: ms(c.relay_ms),
        }
    }
}

/// The JSON name of a reachability.
pub(super) fn reachability_name(r: Reachability) -> &'static str {
    match r {
        Reachability::Public => "public",
        Reachability::Private => "private",
        _ => "unknown",
    }
}

/// One event as printed; the JSON field names are the documented schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(super) enum Report {
    Started {
        peer: String,
        namespace: String,
        profile: String,
        drivers: Vec<String>,
    },
    Listening {
        addr: String,
    },
    Discovered {
        peer: String,
        source: &'static str,
        addrs: Vec<String>,
    },
    Connected {
        peer: String,
        addr: String,
        interface: String,
        medium: String,
        transport: Option<String>,
        inbound: bool,
        cost: Option<Cost>,
        why: String,
    },
    Switched {
        peer: String,
        from: String,
        to: String,
        interface: String,
        medium: String,
        transport: Option<String>,
        reason: &'static str,
        cost: Option<Cost>,
        from_cost: Option<Cost>,
        why: String,
    },
    Lost {
        peer: String,
        reason: &'static str,
        tried: Option<usize>,
    },
    DriverRecovered {
        driver: String,
    },
    Reachability {
        reachability: &'static str,
    },
    Warning {
        kind: &'static str,
        driver: Option<String>,
        peer: Option<String>,
        message: String,
    },
    Stopped {
        reason: &'static str,
    },
}

impl Report {
    pub(super) fn warning(
        kind: &'static str,
        driver: Option<String>,
        peer: Option<PeerId>,
        message: String,
    ) -> Self {
        Report::Warning {
            kind,
            driver,
            peer: peer.map(|p| p.to_string()),
            message,
        }
    }

    /// The human-readable line (without the newline).
    pub(super) fn human(&self) -> String {
        let how = |medium: &str, transport: &Option<String>| match transport {
            Some(t) => format!("{medium}, {t}"),
            None => medium.to_owned(),
        };
        match self {
            Report::Started {
                peer,
                namespace,
                profile,
                drivers,
            } => format!(
                "I am {peer}; namespace `{namespace}`, profile `{profile}`, finding peers through {}",
                drivers.join(", ")
            ),
            Report::Listening { addr } => format!("listening on {addr}"),
            Report::Discovered {
                peer,
                source,
                addrs,
            } => format!(
                "discovered {peer} through {source}: {}",
                if addrs.is_empty() {
                    "no dialable address".to_owned()
                } else {
                    addrs.join(", ")
                }
            ),
            Report::Connected {
                peer,
                addr,
                interface,
                medium,
                transport,
                why,
                ..
            } => format!(
                "route to {peer}: {addr} on {interface} ({}); {why}",
                how(medium, transport)
            ),
            Report::Switched {
                peer,
                from,
                to,
                interface,
                medium,
                transport,
                why,
                ..
            } => format!(
                "route to {peer} switched: {from} → {to} on {interface} ({}); {why}",
                how(medium, transport)
            ),
            Report::Lost {
                peer,
                reason,
                tried,
            } => match tried {
                Some(1) => format!("lost {peer}: {reason}, the one route tried failed"),
                Some(n) => format!("lost {peer}: {reason}, all {n} routes tried failed"),
                None => format!("lost {peer}: {reason}, no route left to replace the connection"),
            },
            Report::DriverRecovered { driver } => format!("{driver} answers again"),
            Report::Reachability { reachability } => match *reachability {
                "public" => "reachable directly from outside (public)".to_owned(),
                "private" => {
                    "not reachable directly from outside (private): reached through a relay"
                        .to_owned()
                }
                other => format!("reachability {other}"),
            },
            Report::Warning { message, .. } => format!("warning: {message}"),
            Report::Stopped { reason } => format!("stopped ({reason})"),
        }
    }

    /// The JSON line (without the newline), with the time since the start.
    pub(super) fn json(&self, elapsed: Duration) -> String {
        #[derive(Serialize)]
        struct Line<'a> {
            #[serde(flatten)]
            report: &'a Report,
            elapsed_ms: u64,
        }
        let line = Line {
            report: self,
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        };
        // Strings, numbers, booleans and arrays of them: this cannot fail.
        serde_json::to_string(&line).unwrap_or_else(|e| {
            format!(
                r#"{{"event":"warning","kind":"output","message":"cannot encode an event: {e}"}}"#
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use multidriver::core::SwitchReason;
    use multidriver::scoring::rank::Components;
    use serde_json::Value;

    use super::{Cost, Report, switch_reason, why};
    use crate::node::signals::Stop;

    fn json(r: &Report) -> Value {
        serde_json::from_str(&r.json(Duration::from_millis(1500))).unwrap()
    }

    #[test]
    fn a_json_line_is_one_object_with_the_event_first_and_every_field() {
        let c = Components {
            latency_ms: 40.31,
            energy_ms: 0.0,
            reliability_ms: 66.66,
            provenance_ms: 0.0,
            costly_link_ms: 0.0,
            relay_ms: 0.0,
        };
        let r = Report::Connected {
            peer: "12D3KooWpeer".to_owned(),
            addr: "/ip4/127.0.0.1/tcp/4001".to_owned(),
            interface: "if1".to_owned(),
            medium: "loopback".to_owned(),
            transport: Some("tcp".to_owned()),
            inbound: false,
            cost: Some(Cost::from(&c)),
            why: why(&c),
        };
        let line = r.json(Duration::from_millis(1500));
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with(r#"{"event":"connected","#), "{line}");
        let v = json(&r);
        assert_eq!(v["elapsed_ms"], 1500);
        assert_eq!(v["peer"], "12D3KooWpeer");
        assert_eq!(v["medium"], "loopback");
        assert_eq!(v["transport"], "tcp");
        assert_eq!(v["inbound"], false);
        assert_eq!(v["cost"]["total_ms"], 107.0);
        assert_eq!(v["cost"]["latency_ms"], 40.3);
        assert_eq!(v["cost"]["reliability_ms"], 66.7);
        assert_eq!(v["cost"]["costly_link_ms"], 0.0);
        assert_eq!(v["cost"]["relay_ms"], 0.0);
        assert_eq!(
            v["why"],
            "cost 107.0 ms: latency 40.3, energy 0.0, reliability 66.7, provenance 0.0, costly link 0.0, relay limits 0.0"
        );
    }

    #[test]
    fn fields_that_do_not_apply_are_null_not_missing() {
        let v = json(&Report::Lost {
            peer: "p".to_owned(),
            reason: "disconnected",
            tried: None,
        });
        assert_eq!(v["event"], "lost");
        assert!(v.as_object().unwrap().contains_key("tried"));
        assert!(v["tried"].is_null());
        let v = json(&Report::warning(
            "rendezvous_unreachable",
            Some("rendezvous /ip4/127.0.0.1/tcp/1/p2p/x".to_owned()),
            None,
            "unreachable".to_owned(),
        ));
        assert_eq!(v["event"], "warning");
        assert_eq!(v["kind"], "rendezvous_unreachable");
        assert!(v.as_object().unwrap().contains_key("peer"));
        assert!(v["peer"].is_null());
    }

    #[test]
    fn switches_name_their_reason_and_both_costs_when_better() {
        let old = Components {
            latency_ms: 120.0,
            ..Components::default()
        };
        let new = Components {
            latency_ms: 30.0,
            ..Components::default()
        };
        let (label, cost, from_cost, why) =
            switch_reason(&SwitchReason::Better { from: old, to: new });
        assert_eq!(label, "better");
        assert_eq!(cost.unwrap().total_ms, 30.0);
        assert_eq!(from_cost.unwrap().total_ms, 120.0);
        assert!(why.starts_with("better: 30.0 ms against 120.0 ms"), "{why}");
        let (label, cost, from_cost, _) = switch_reason(&SwitchReason::InterfaceLost);
        assert_eq!((label, cost, from_cost), ("interface_lost", None, None));
    }

    #[test]
    fn human_lines_are_one_line_each() {
        let r = Report::Discovered {
            peer: "p".to_owned(),
            source: "rendezvous",
            addrs: vec!["/ip4/127.0.0.1/tcp/1".to_owned()],
        };
        assert_eq!(
            r.human(),
            "discovered p through rendezvous: /ip4/127.0.0.1/tcp/1"
        );
        let r = Report::Stopped {
            reason: Stop::ExitAfter.as_str(),
        };
        assert_eq!(r.human(), "stopped (exit_after)");
        let r = Report::Reachability {
            reachability: super::reachability_name(multidriver::core::Reachability::Private),
        };
        assert_eq!(json(&r)["reachability"], "private");
        assert!(r.human().contains("through a relay"), "{}", r.human());
    }

    /// One report of every kind; the match makes a new kind fail to
    /// compile until it is added here (and so checked against the README).
    fn one_of_each() -> Vec<Report> {
        let c = Cost::from(&Components::default());
        let all = vec![
            Report::Started {
                peer: "p".into(),
                namespace: "ns".into(),
                profile: "balanced".into(),
                drivers: vec!["mdns".into()],
            },
            Report::Listening { addr: "a".into() },
            Report::Discovered {
                peer: "p".into(),
                source: "mdns",
                addrs: Vec::new(),
            },
            Report::Connected {
                peer: "p".into(),
                addr: "a".into(),
                interface: "if1".into(),
                medium: "wifi".into(),
                transport: None,
                inbound: true,
                cost: None,
                why: String::new(),
            },
            Report::Switched {
                peer: "p".into(),
                from: "a".into(),
                to: "b".into(),
                interface: "if1".into(),
                medium: "wifi".into(),
                transport: None,
                reason: "better",
                cost: Some(c),
                from_cost: Some(c),
                why: String::new(),
            },
            Report::Lost {
                peer: "p".into(),
                reason: "unreachable",
                tried: Some(2),
            },
            Report::DriverRecovered {
                driver: "mdns".into(),
            },
            Report::Reachability {
                reachability: "private",
            },
            Report::warning("listener", None, None, String::new()),
            Report::Stopped {
                reason: "interrupt",
            },
        ];
        for r in &all {
            match r {
                Report::Started { .. }
                | Report::Listening { .. }
                | Report::Discovered { .. }
                | Report::Connected { .. }
                | Report::Switched { .. }
                | Report::Lost { .. }
                | Report::DriverRecovered { .. }
                | Report::Reachability { .. }
                | Report::Warning { .. }
                | Report::Stopped { .. } => {}
            }
        }
        all
    }

    #[test]
    fn the_readme_documents_every_event_and_field() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
        )
        .unwrap();
        let start = readme
            .find("### `multidriver node`")
            .expect("a `multidriver node` section");
        let section = &readme[start..];
        let section = &section[..section[4..].find("\n#").map_or(section.len(), |e| e + 4)];
        let mut names = Vec::new();
        for r in one_of_each() {
            let v = json(&r);
            let object = v.as_object().unwrap();
            names.push(format!("| `{}` |", v["event"].as_str().unwrap()));
            names.extend(object.keys().map(|k| format!("`{k}`")));
            for cost in ["cost", "from_cost"] {
                if let Some(c) = object.get(cost).and_then(Value::as_object) {
                    names.extend(c.keys().map(|k| format!("\"{k}\"")));
                }
            }
        }
        for name in names {
            assert!(
                section.contains(&name),
                "the README does not document {name}"
            );
        }
    }
}
