//! World actions: the plan's timeline applied to the world (nodes coming
//! online and leaving, interfaces up, down, losing or stalled, power, moves,
//! rendezvous outages).

use crate::Error;
use crate::agent::{Input, up_input};
use crate::scenario::Action;
use crate::world::{IfKind, Iface};

use super::Sim;
use super::events::Ev;
use super::pairs::Cause;
use super::plan::WorldAction;

impl Sim<'_> {
    pub(super) fn timeline(&mut self) -> Result<(), Error> {
        let plan = self.plan;
        while let Some((t, node, action)) = plan.timeline.get(self.next_timeline) {
            if *t > self.now {
                self.push(*t, Ev::Timeline);
                break;
            }
            self.next_timeline += 1;
            self.mix(u64::from(*node));
            self.world_action(*node, action)?;
        }
        Ok(())
    }

    fn world_action(&mut self, node: u32, action: &WorldAction) -> Result<(), Error> {
        let n = node as usize;
        match action {
            WorldAction::Online => {
                if self.world.nodes[n].online {
                    return Ok(());
                }
                self.world.nodes[n].online = true;
                // A warning the previous app heard is not this one's.
                for i in &mut self.world.nodes[n].ifaces {
                    i.losing = false;
                }
                self.online_since[n] = Some(self.now);
                self.gens[n] += 1;
                let agent = self.make_agent(node)?;
                self.agents[n] = Some(agent);
                for p in &mut self.pairs[n] {
                    p.want_since = None;
                    p.connected_once = false;
                    p.primary = None;
                    p.outage = None;
                    p.queue.clear();
                    p.after_restart = false;
                }
                self.input(node, Input::Start);
                self.paths_changed(node);
            }
            WorldAction::Offline => {
                if !self.world.nodes[n].online {
                    return Ok(());
                }
                self.world.nodes[n].online = false;
                if let Some(s) = self.online_since[n].take() {
                    self.node_seconds += self.now.saturating_duration_since(s).as_secs_f64();
                }
                // The app is gone: its connections and attempts with it.
                let from = u64::from(node) << 40;
                let keys: Vec<u64> = self
                    .conns
                    .range(from..from + (1 << 40))
                    .map(|(k, _)| *k)
                    .collect();
                for k in keys {
                    self.remove_conn(k);
                }
                self.agents[n] = None;
                self.timer_at[n] = None;
                self.gens[n] += 1;
                let now = self.now;
                for p in &mut self.pairs[n] {
                    if !p.connected_once
                        && let Some(w) = p.want_since
                    {
                        // Never connected while it was up: a censored sample.
                        let secs = now.saturating_duration_since(w).as_secs_f64();
                        self.metrics.ttfc(p.after_restart, secs, true);
                    }
                    if let Some((s, cause)) = p.outage.take() {
                        // Left before recovering: unfinished.
                        let secs = now.saturating_duration_since(s).as_secs_f64();
                        self.metrics.failover(cause, secs, true);
                    }
                    // Messages still queued die with the app.
                    self.metrics.lost += p.queue.len() as u64;
                    p.queue.clear();
                    p.primary = None;
                    p.connected_once = true;
                }
                self.paths_changed(node);
            }
            WorldAction::Scenario(Action::Restart) => self.restart(node)?,
            WorldAction::Scenario(a) => self.scenario_action(node, a),
        }
        Ok(())
    }

    fn scenario_action(&mut self, node: u32, a: &Action) {
        let n = node as usize;
        let online = node != u32::MAX && self.world.nodes[n].online;
        match a {
            Action::RendezvousDown(i) | Action::RendezvousUp(i) => {
                let up = matches!(a, Action::RendezvousUp(_));
                let srv = &mut self.world.servers[*i];
                if !up && srv.up {
                    // Its circuits die with it.
                    srv.epoch = srv.epoch.wrapping_add(1);
                }
                srv.up = up;
                if srv.relay {
                    // Relayed paths through it come or go for everyone.
                    for node in 0..self.world.nodes.len() as u32 {
                        if self.world.nodes[node as usize].online {
                            self.paths_changed_by(node, Cause::PeerMoved);
                        }
                    }
                }
            }
            Action::WifiUp(lan) | Action::EthernetUp(lan) => {
                let kind = if matches!(a, Action::WifiUp(_)) {
                    IfKind::Wifi
                } else {
                    IfKind::Ethernet
                };
                let i = &mut self.world.nodes[n].ifaces[kind as usize];
                *i = Iface::attached(Some(*lan as u16), *lan as u16, i.attach.wrapping_add(1));
                if online {
                    let up = up_input(&self.world.nodes[n], kind, &self.world);
                    self.input(node, up);
                }
                self.paths_changed(node);
            }
            Action::WifiDown | Action::EthernetDown | Action::CellularDown => {
                let kind = match a {
                    Action::WifiDown => IfKind::Wifi,
                    Action::EthernetDown => IfKind::Ethernet,
                    _ => IfKind::Cellular,
                };
                let i = &mut self.world.nodes[n].ifaces[kind as usize];
                let was_up = i.up;
                let cause = if i.losing {
                    Cause::WarnedLoss
                } else {
                    Cause::InterfaceLost
                };
                *i = Iface {
                    epoch: i.epoch,
                    attach: i.attach,
                    ..Iface::default()
                };
                // Connections over it die with it (the socket is gone).
                self.paths_changed_by(node, cause);
                if online && was_up {
                    self.input(node, Input::Down { kind });
                    if self.check {
                        self.check_after_down(node, kind);
                    }
                }
            }
            Action::WifiLosing => {
                let i = &mut self.world.nodes[n].ifaces[IfKind::Wifi as usize];
                i.losing = i.up;
                if online {
                    self.input(node, Input::Losing { kind: IfKind::Wifi });
                }
            }
            Action::WifiStall => {
                self.world.nodes[n].ifaces[IfKind::Wifi as usize].stalled = true;
                self.paths_changed_by(node, Cause::SilentStall);
            }
            Action::CellularUp => {
                let nd = &mut self.world.nodes[n];
                if nd.cellular.is_none() {
                    nd.cellular = Some(crate::scenario::CellularKind::G4);
                }
                let epoch = nd.next_cell_epoch;
                nd.next_cell_epoch = nd.next_cell_epoch.wrapping_add(1);
                let attach = nd.ifaces[IfKind::Cellular as usize].attach.wrapping_add(1);
                nd.ifaces[IfKind::Cellular as usize] = Iface::attached(None, epoch, attach);
                if online {
                    let up = up_input(&self.world.nodes[n], IfKind::Cellular, &self.world);
                    self.input(node, up);
                }
                self.paths_changed(node);
            }
            Action::Lifecycle(l) => {
                self.world.nodes[n].power.lifecycle = *l;
                if online {
                    let p = self.world.nodes[n].power;
                    self.input(node, Input::Power(p));
                }
            }
            Action::Battery { level, charging } => {
                let p = &mut self.world.nodes[n].power;
                p.battery = Some(*level);
                p.charging = *charging;
                if online {
                    let p = self.world.nodes[n].power;
                    self.input(node, Input::Power(p));
                }
            }
            Action::Move(to) => self.world.nodes[n].position = *to,
            // Handled by `world_action` (it rebuilds the agent).
            Action::Restart => {}
        }
    }
}
