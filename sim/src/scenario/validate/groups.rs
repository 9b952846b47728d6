//! Checks the `[[groups]]` section: node counts, interfaces, battery,
//! lifecycle, start spread, contacts and churn.

use multidriver_scoring::Lifecycle;

use super::Validator;
use crate::Error;
use crate::scenario::raw::RawGroup;
use crate::scenario::{
    CellularKind, Group, Lan, LanMedium, MAX_CONTACTS, MAX_DURATION_S, MAX_NODES, Nat,
};

impl Validator<'_> {
    #[allow(clippy::too_many_lines)]
    pub(super) fn groups(
        &self,
        raw_groups: &[RawGroup],
        group_names: &[&str],
        region_names: &[&str],
        lan_names: &[&str],
        lans: &[Lan],
        duration_s: f64,
    ) -> Result<Vec<Group>, Error> {
        self.unique(group_names, "groups")?;
        if raw_groups.is_empty() {
            return Err(self.err(0..0, "groups: at least one group is needed".to_owned()));
        }
        let mut groups = Vec::new();
        let mut total: u64 = 0;
        for g in raw_groups {
            let count = *g.count.get_ref();
            total += u64::from(count);
            if total > u64::from(MAX_NODES) {
                return Err(self.err(
                    g.count.span(),
                    format!("groups.count: more than {MAX_NODES} nodes in all"),
                ));
            }
            let cellular = match &g.cellular {
                None => None,
                Some(c) => Some(match c.get_ref().as_str() {
                    "4g" | "lte" => CellularKind::G4,
                    "5g" => CellularKind::G5,
                    other => {
                        return Err(self.err(
                            c.span(),
                            format!("groups.cellular = \"{other}\": expected 4g or 5g"),
                        ));
                    }
                }),
            };
            let lifecycle = match &g.lifecycle {
                None => Lifecycle::Foreground,
                Some(l) => l
                    .get_ref()
                    .parse()
                    .map_err(|e| self.err(l.span(), format!("groups.lifecycle: {e}")))?,
            };
            let mut contacts = Vec::new();
            for c in &g.contacts {
                let gi = self.lookup(group_names, &c.group, "groups.contacts.group", "group")?;
                let n = *c.count.get_ref();
                if n > MAX_CONTACTS {
                    return Err(self.err(
                        c.count.span(),
                        format!("groups.contacts.count = {n} is outside the allowed range 0..={MAX_CONTACTS}"),
                    ));
                }
                contacts.push((gi, n));
            }
            let churn = match &g.churn {
                None => None,
                Some(c) => Some((
                    self.range(&c.online_s, "groups.churn.online_s", 1.0, MAX_DURATION_S)?,
                    self.range(&c.offline_s, "groups.churn.offline_s", 1.0, MAX_DURATION_S)?,
                )),
            };
            groups.push(Group {
                name: g.name.clone(),
                count,
                region: self.region_of(region_names, &g.region, "groups.region")?,
                wifi: g
                    .wifi
                    .as_ref()
                    .map(|v| self.lan_of(lan_names, lans, v, "groups.wifi", LanMedium::Wifi))
                    .transpose()?,
                ethernet: g
                    .ethernet
                    .as_ref()
                    .map(|v| {
                        self.lan_of(lan_names, lans, v, "groups.ethernet", LanMedium::Ethernet)
                    })
                    .transpose()?,
                cellular,
                // Mobile carriers put phones behind carrier-grade NAT
                // (docs/PARAMETERS.md, "NAT"): the default.
                nat: self.nat(g.nat.as_ref(), "groups.nat", Nat::Symmetric)?,
                ble: g.ble,
                position: g.position,
                spread_m: g.spread_m.clamp(0.0, 1e6),
                battery: g
                    .battery
                    .as_ref()
                    .map(|b| self.range(b, "groups.battery", 0.0, 1.0))
                    .transpose()?,
                charging: g.charging,
                drain_per_hour: self.opt_range(
                    g.drain_per_hour.as_ref(),
                    "groups.drain_per_hour",
                    0.0,
                    1.0,
                    0.0,
                )?,
                lifecycle,
                start_spread_s: self.opt_range(
                    g.start_spread_s.as_ref(),
                    "groups.start_spread_s",
                    0.0,
                    duration_s,
                    0.0,
                )?,
                contacts,
                churn,
            });
        }
        for (g, raw_g) in groups.iter().zip(raw_groups) {
            for (&(gi, n), rc) in g.contacts.iter().zip(&raw_g.contacts) {
                // A group of no nodes listing contacts in itself has no
                // other node: saturate rather than wrap.
                let available = groups[gi]
                    .count
                    .saturating_sub(u32::from(std::ptr::eq(g, &groups[gi])));
                if n > available {
                    return Err(self.err(
                        rc.count.span(),
                        format!(
                            "groups.contacts.count = {n}, but group \"{}\" has only {available} other node(s)",
                            groups[gi].name
                        ),
                    ));
                }
            }
        }
        Ok(groups)
    }
}
