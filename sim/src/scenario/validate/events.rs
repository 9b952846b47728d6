//! Checks the `[[events]]` section: when, to which group or server, and the
//! action with the fields it needs.

use toml::Spanned;

use super::Validator;
use crate::Error;
use crate::scenario::raw::RawEvent;
use crate::scenario::{ACTION_NAMES, Action, Lan, LanMedium, MAX_DURATION_S, ScheduledEvent};

impl Validator<'_> {
    #[allow(clippy::too_many_lines)]
    pub(super) fn events(
        &self,
        raw_events: &[RawEvent],
        group_names: &[&str],
        server_names: &[&str],
        lan_names: &[&str],
        lans: &[Lan],
        duration_s: f64,
    ) -> Result<Vec<ScheduledEvent>, Error> {
        let mut events = Vec::new();
        for e in raw_events {
            let at_s = self.range(&e.at_s, "events.at_s", 0.0, duration_s)?;
            let spread_s = self.opt_range(
                e.spread_s.as_ref(),
                "events.spread_s",
                0.0,
                MAX_DURATION_S,
                0.0,
            )?;
            let need =
                |v: &Option<Spanned<String>>, field: &str| -> Result<Spanned<String>, Error> {
                    v.clone().ok_or_else(|| {
                        self.err(
                            e.action.span(),
                            format!("events: action \"{}\" needs `{field}`", e.action.get_ref()),
                        )
                    })
                };
            let action = match e.action.get_ref().as_str() {
                "wifi-up" => Action::WifiUp(self.lan_of(
                    lan_names,
                    lans,
                    &need(&e.lan, "lan")?,
                    "events.lan",
                    LanMedium::Wifi,
                )?),
                "wifi-down" => Action::WifiDown,
                "wifi-losing" => Action::WifiLosing,
                "wifi-stall" => Action::WifiStall,
                "ethernet-up" => Action::EthernetUp(self.lan_of(
                    lan_names,
                    lans,
                    &need(&e.lan, "lan")?,
                    "events.lan",
                    LanMedium::Ethernet,
                )?),
                "ethernet-down" => Action::EthernetDown,
                "cellular-up" => Action::CellularUp,
                "cellular-down" => Action::CellularDown,
                "restart" => Action::Restart,
                "lifecycle" => {
                    let s = need(&e.state, "state")?;
                    Action::Lifecycle(
                        s.get_ref()
                            .parse()
                            .map_err(|err| self.err(s.span(), format!("events.state: {err}")))?,
                    )
                }
                "battery" => {
                    let level = e.level.as_ref().ok_or_else(|| {
                        self.err(
                            e.action.span(),
                            "events: action \"battery\" needs `level`".to_owned(),
                        )
                    })?;
                    Action::Battery {
                        level: self.range(level, "events.level", 0.0, 1.0)?,
                        charging: e.state.as_ref().is_some_and(|s| s.get_ref() == "charging"),
                    }
                }
                "move" => Action::Move(e.to.ok_or_else(|| {
                    self.err(
                        e.action.span(),
                        "events: action \"move\" needs `to`".to_owned(),
                    )
                })?),
                "rendezvous-down" | "rendezvous-up" => {
                    let s = need(&e.server, "server")?;
                    let i = self.lookup(server_names, &s, "events.server", "rendezvous point")?;
                    if e.action.get_ref() == "rendezvous-down" {
                        Action::RendezvousDown(i)
                    } else {
                        Action::RendezvousUp(i)
                    }
                }
                other => {
                    return Err(self.err(
                        e.action.span(),
                        format!("events.action = \"{other}\": expected one of {ACTION_NAMES}"),
                    ));
                }
            };
            let server_event =
                matches!(action, Action::RendezvousDown(_) | Action::RendezvousUp(_));
            let group = match (&e.group, server_event) {
                (Some(g), false) => Some(self.lookup(group_names, g, "events.group", "group")?),
                (None, true) => None,
                (Some(g), true) => {
                    return Err(self.err(
                        g.span(),
                        "events.group: rendezvous events apply to a server, not a group".to_owned(),
                    ));
                }
                (None, false) => {
                    return Err(self.err(
                        e.action.span(),
                        format!("events: action \"{}\" needs `group`", e.action.get_ref()),
                    ));
                }
            };
            events.push(ScheduledEvent {
                at_s,
                group,
                spread_s,
                action,
            });
        }
        Ok(events)
    }
}
