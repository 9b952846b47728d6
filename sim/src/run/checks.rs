//! Invariant checks, run as the simulation goes when
//! [`RunOptions::check_invariants`](crate::RunOptions) is set: after every
//! interface loss, at every sample interval, and at the end.

use crate::Error;
use crate::scenario::Nat;
use crate::world::IfKind;

use super::Sim;

impl Sim<'_> {
    pub(super) fn broken(&mut self, what: String) {
        if self.runaway.is_none() {
            self.runaway = Some(Error::Invariant {
                policy: self.policy.clone(),
                at_s: self.now.since_origin().as_secs_f64(),
                what,
            });
        }
    }

    /// Every message sent is delivered, lost, or waiting in a queue.
    pub(super) fn check_messages(&mut self) {
        let queued: u64 = self
            .pairs
            .iter()
            .flatten()
            .map(|p| p.queue.len() as u64)
            .sum();
        let m = &self.metrics;
        if m.sent != m.delivered + m.lost + queued {
            let what = format!(
                "message accounting: {} sent, but {} delivered + {} lost + {} queued",
                m.sent, m.delivered, m.lost, queued
            );
            self.broken(what);
        }
    }

    /// No working connection got past a NAT it could not: every direct
    /// connection to a public address behind a NAT was opened by a hole
    /// punch (the oracle's included: it never takes an infeasible route).
    pub(super) fn check_nat(&mut self) {
        let bad = self.conns.values().find(|c| {
            c.open
                && !c.punched
                && !c.addr.lan
                && c.addr.relay.is_none()
                && self.world.nat(c.addr.node, c.addr.kind) != Nat::None
                // One whose peer re-attached is dead, whatever NAT it has now.
                && self.conn_path(c).is_some()
        });
        if let Some(c) = bad {
            let what = format!(
                "node {} (group \"{}\") has a direct connection to node {} over {:?} through its {:?} NAT without a hole punch",
                c.node,
                self.plan.group_of(c.node),
                c.addr.node,
                c.addr.kind,
                self.world.nat(c.addr.node, c.addr.kind)
            );
            self.broken(what);
        }
    }

    /// Whether the policy hears interface events. libp2p-stock and tinder
    /// ignore them: a dead connection stays until their keep-alives notice.
    fn hears_interfaces(&self) -> bool {
        !matches!(self.policy.as_str(), "libp2p-stock" | "tinder")
    }

    /// No node of a policy that hears interface events uses a connection
    /// over an interface that is down.
    pub(super) fn check_primaries(&mut self) {
        if !self.hears_interfaces() {
            return;
        }
        for node in 0..self.pairs.len() as u32 {
            for kind in IfKind::IP {
                if !self.world.nodes[node as usize].ifaces[kind as usize].up {
                    self.check_after_down(node, kind);
                }
            }
        }
    }

    /// After a policy that hears interface events handled `kind` going
    /// down, none of `node`'s connections in use leaves through it.
    pub(super) fn check_after_down(&mut self, node: u32, kind: IfKind) {
        if !self.hears_interfaces() {
            return;
        }
        for (slot, p) in self.pairs[node as usize].iter().enumerate() {
            let Some(k) = p.primary else { continue };
            if let Some(c) = self.conns.get(&k)
                && c.open
                && c.via == kind
            {
                let what = format!(
                    "node {node} (group \"{}\") still uses connection {k} to contact {slot} over \
                     {kind:?}, which the OS reported down",
                    self.plan.group_of(node)
                );
                self.broken(what);
                return;
            }
        }
    }
}
