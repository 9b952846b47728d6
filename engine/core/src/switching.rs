//! Switching and rechecks: when a better route is worth a make-before-break
//! upgrade (hysteresis), and when a failed better route is tried again.

use libp2p_identity::PeerId;
use multidriver_scoring::rank::Components;
use multidriver_scoring::switch::beats;
use multidriver_scoring::{SwitchDecision, Timestamp, rank};

use crate::{Engine, Purpose, RouteNo, SwitchReason};

impl Engine {
    pub(crate) fn reevaluate_all(&mut self, now: Timestamp) {
        let peers: Vec<PeerId> = self.peers.keys().copied().collect();
        for peer in peers {
            self.progress(peer, now);
        }
    }

    pub(crate) fn consider_upgrade(&mut self, peer_id: PeerId, now: Timestamp) {
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        peer.guard_until = None;
        let peer = &self.peers[&peer_id];
        let Some(primary) = peer.primary.and_then(|c| self.connections.get(&c)) else {
            return;
        };
        let Some(current_no) = primary.route else {
            // Inbound connections have no route of ours to compare.
            return;
        };
        let Some(ci) = peer.index_of(current_no) else {
            return;
        };
        let links = self.links();
        let ctx = self.context(&links, now);
        let current = rank::breakdown(&peer.routes[ci], &ctx).0.components;
        let best = self
            .candidates(peer, now)
            .into_iter()
            .find(|(no, _, _)| *no != current_no && !self.left_to_dcutr(peer, *no));
        let switching = self.profile.switching;
        let peer = self.peers.get_mut(&peer_id).expect("looked up above");
        let decision = peer.guard.evaluate(
            current.total_ms(),
            best.map(|(no, _, cost)| (no, cost)),
            &switching,
            now,
        );
        peer.guard_until = None;
        match decision {
            SwitchDecision::Stay => self.recheck(peer_id, current, now),
            SwitchDecision::Wait { until } => peer.guard_until = Some(until),
            SwitchDecision::Switch => {
                let (no, to, _) = best.expect("a switch needs a candidate");
                self.upgrade_to(peer_id, no, current, to, now);
            }
        }
    }

    /// Races one route, make-before-break, to replace a connected peer's
    /// route costing `from` by one costing `to`.
    pub(crate) fn upgrade_to(
        &mut self,
        peer_id: PeerId,
        no: RouteNo,
        from: Components,
        to: Components,
        now: Timestamp,
    ) {
        self.start_race(
            peer_id,
            Purpose::Upgrade {
                reason: SwitchReason::Better { from, to },
                only: Some(no),
                avoid: None,
            },
            now,
        );
    }

    /// A connected peer stays on its route: if another route would beat it
    /// but for the failure penalty of recent failed dials, try that route
    /// again now and then (make-before-break, only that route), since the
    /// path that failed may work again without any network event (a Wi-Fi
    /// that stopped passing packets and recovered). The first try comes
    /// [`Config::recheck`] after the failure; while tries keep failing, or
    /// keep finding a path that fails again soon, the wait doubles up to
    /// [`Config::max_recheck`]. It starts afresh once no try was needed for
    /// twice `max_recheck`.
    pub(crate) fn recheck(&mut self, peer_id: PeerId, current: Components, now: Timestamp) {
        if self.config.recheck.is_none() {
            return;
        }
        let Some(peer) = self.peers.get(&peer_id) else {
            return;
        };
        if peer.recheck_at.is_some_and(|at| now < at) {
            return;
        }
        // The common case, no penalised route, costs no ranking.
        if peer
            .routes
            .iter()
            .all(|r| r.rtt.failure_penalty(now).is_zero())
        {
            if let Some(peer) = self.peers.get_mut(&peer_id) {
                peer.recheck_at = None;
            }
            return;
        }
        let current_no = peer
            .primary
            .and_then(|c| self.connections.get(&c))
            .and_then(|c| c.route);
        let switching = self.profile.switching;
        let links = self.links();
        let ctx = self.context(&links, now);
        // Each candidate as it would rank with its penalty forgiven (the
        // penalty enters the cost through the profile's weights).
        let pick = self
            .candidates(peer, now)
            .into_iter()
            .filter(|(no, _, _)| Some(*no) != current_no && !self.left_to_dcutr(peer, *no))
            .filter_map(|(no, _, _)| {
                let route = &peer.routes[peer.index_of(no)?];
                if route.rtt.failure_penalty(now).is_zero() {
                    return None;
                }
                let mut forgiven = route.clone();
                forgiven.rtt.on_success();
                let to = rank::breakdown(&forgiven, &ctx).0.components;
                beats(to.total_ms(), current.total_ms(), &switching).then_some((no, to))
            })
            .min_by(|a, b| a.1.total_ms().total_cmp(&b.1.total_ms()));
        let Some((no, to)) = pick else {
            if let Some(peer) = self.peers.get_mut(&peer_id) {
                peer.recheck_at = None;
            }
            return;
        };
        if peer.recheck_at.is_none() {
            self.schedule_recheck(peer_id, now);
            return;
        }
        let peer = self.peers.get_mut(&peer_id).expect("looked up above");
        peer.recheck_at = None;
        peer.recheck_tried = Some(now);
        self.upgrade_to(peer_id, no, current, to, now);
    }

    /// A route of the peer failed: unless a try is already due, schedule
    /// one (see [`Engine::recheck`]). Before trying, wait: the route has
    /// just failed; after a recent try whose path failed again, wait twice
    /// as long as last time.
    pub(crate) fn schedule_recheck(&mut self, peer_id: PeerId, now: Timestamp) {
        let Some(first) = self.config.recheck else {
            return;
        };
        let max = self.config.max_recheck.max(first);
        let Some(peer) = self.peers.get_mut(&peer_id) else {
            return;
        };
        if peer.recheck_at.is_some() {
            return;
        }
        let recent = peer
            .recheck_tried
            .is_some_and(|t| now.saturating_duration_since(t) < 2 * max);
        peer.recheck_wait = if recent {
            (peer.recheck_wait * 2).clamp(first, max)
        } else {
            first
        };
        peer.recheck_at = Some(now + peer.recheck_wait);
        self.refresh_wake(peer_id, now);
    }
}
