//! Checks the scenario file as a whole: the top-level keys (`duration_s`,
//! `policies`), `[metrics]` and `[limits]`, and calls each section's check in
//! file order.

use std::ops::Range;

use multidriver_scoring::toml_support::error_at;
use toml::Spanned;

use super::raw::RawScenario;
use super::{
    ALL_POLICIES, DEFAULT_MAX_EVENTS_PER_NODE_SECOND, Limits, MAX_DURATION_S, NAT_NAMES, Nat,
    Scenario,
};
use crate::Error;

mod dht;
mod events;
mod groups;
mod lans;
mod links;
mod regions;
mod rendezvous;
mod traffic;

pub(super) struct Validator<'a> {
    pub(super) text: &'a str,
}

impl Validator<'_> {
    fn err(&self, span: Range<usize>, message: String) -> Error {
        Error::scenario("", error_at(self.text, span, message))
    }

    fn range(&self, v: &Spanned<f64>, field: &str, lo: f64, hi: f64) -> Result<f64, Error> {
        let x = *v.get_ref();
        if x.is_finite() && (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(self.err(
                v.span(),
                format!("{field} = {x} is outside the allowed range {lo}..={hi}"),
            ))
        }
    }

    fn opt_range(
        &self,
        v: Option<&Spanned<f64>>,
        field: &str,
        lo: f64,
        hi: f64,
        default: f64,
    ) -> Result<f64, Error> {
        v.map_or(Ok(default), |v| self.range(v, field, lo, hi))
    }

    fn lookup(
        &self,
        names: &[&str],
        v: &Spanned<String>,
        field: &str,
        kind: &str,
    ) -> Result<usize, Error> {
        names.iter().position(|n| *n == v.get_ref()).ok_or_else(|| {
            self.err(
                v.span(),
                format!(
                    "{field} = \"{}\" names no {kind}; the {kind}s are: {}",
                    v.get_ref(),
                    if names.is_empty() {
                        "(none)".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            )
        })
    }

    /// The NAT a `nat` field names; `default` if it is absent.
    fn nat(&self, v: Option<&Spanned<String>>, field: &str, default: Nat) -> Result<Nat, Error> {
        let Some(v) = v else { return Ok(default) };
        Nat::from_name(v.get_ref()).ok_or_else(|| {
            self.err(
                v.span(),
                format!("{field} = \"{}\": expected one of {NAT_NAMES}", v.get_ref()),
            )
        })
    }

    fn unique(&self, names: &[&str], what: &str) -> Result<(), Error> {
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(self.err(0..0, format!("two {what} are named \"{n}\"")));
            }
        }
        Ok(())
    }

    pub(super) fn build(&self, raw: RawScenario) -> Result<Scenario, Error> {
        let duration_s = self.range(&raw.duration_s, "duration_s", 1.0, MAX_DURATION_S)?;
        let policies = self.policies(raw.policies.as_deref())?;
        let sample_interval_s = self.opt_range(
            raw.metrics.sample_interval_s.as_ref(),
            "metrics.sample_interval_s",
            0.1,
            3600.0,
            1.0,
        )?;
        let traffic = self.traffic(&raw.traffic)?;
        let links = self.links(&raw.links)?;

        let raw_regions = regions::with_default(raw.regions);
        let region_names: Vec<&str> = raw_regions.iter().map(|r| r.name.as_str()).collect();
        let regions = self.regions(&raw_regions, &region_names)?;

        let lan_names: Vec<&str> = raw.lans.iter().map(|l| l.name.as_str()).collect();
        let lans = self.lans(&raw.lans, &lan_names, &region_names)?;
        let dht = self.dht(raw.dht.as_ref())?;
        let server_names: Vec<&str> = raw.rendezvous.iter().map(|r| r.name.as_str()).collect();
        let rendezvous = self.rendezvous(&raw.rendezvous, &server_names, &region_names)?;

        let group_names: Vec<&str> = raw.groups.iter().map(|g| g.name.as_str()).collect();
        let groups = self.groups(
            &raw.groups,
            &group_names,
            &region_names,
            &lan_names,
            &lans,
            duration_s,
        )?;

        let events = self.events(
            &raw.events,
            &group_names,
            &server_names,
            &lan_names,
            &lans,
            duration_s,
        )?;

        let limits = Limits {
            max_events_per_node_second: self.opt_range(
                raw.limits.max_events_per_node_second.as_ref(),
                "limits.max_events_per_node_second",
                10.0,
                10_000_000.0,
                f64::from(DEFAULT_MAX_EVENTS_PER_NODE_SECOND),
            )? as u32,
        };

        Ok(Scenario {
            name: raw.name,
            description: raw.description,
            duration_s,
            seed: raw.seed,
            policies,
            sample_interval_s,
            traffic,
            links,
            regions,
            lans,
            dht,
            rendezvous,
            groups,
            events,
            limits,
        })
    }

    /// Checks `policies`: every name known, duplicates dropped, not empty.
    /// Absent means all of them.
    fn policies(&self, raw: Option<&[Spanned<String>]>) -> Result<Vec<String>, Error> {
        Ok(match raw {
            None => ALL_POLICIES.iter().map(|p| (*p).to_owned()).collect(),
            Some(list) => {
                let mut out = Vec::new();
                for p in list {
                    if !ALL_POLICIES.contains(&p.get_ref().as_str()) {
                        return Err(self.err(
                            p.span(),
                            format!(
                                "policies: unknown policy \"{}\"; the policies are: {}",
                                p.get_ref(),
                                ALL_POLICIES.join(", ")
                            ),
                        ));
                    }
                    if !out.contains(p.get_ref()) {
                        out.push(p.get_ref().clone());
                    }
                }
                if out.is_empty() {
                    return Err(self.err(0..0, "policies: the list is empty".to_owned()));
                }
                out
            }
        })
    }
}
