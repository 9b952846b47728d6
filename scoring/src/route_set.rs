//! A peer's routes with everything needed to rank them: the input of
//! `multidriver rank`.

use libp2p_identity::PeerId;

use crate::profile::Profile;
use crate::rank::{Context, Ranking, rank};
use crate::route::{LinkConditions, PowerState, Route};
use crate::time::Timestamp;

/// Most routes a [`RouteSet`] file may hold; a larger file is rejected. Our
/// bound: far above the addresses one peer advertises (libp2p peers list a
/// handful), low enough that a file cannot make ranking costly.
pub const MAX_ROUTES: usize = 256;

/// Most entries in any list of one route in a [`RouteSet`] file (`rtt_ms`,
/// `failures_at_ms`, `sources`); a longer list is rejected. Our bound: the
/// estimator and the dial history keep only a summary, so more entries add
/// nothing.
pub const MAX_LIST_ENTRIES: usize = 1024;

/// A snapshot of one peer's routes, the device's power state and its link
/// conditions at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteSet {
    /// The peer every route leads to.
    pub peer: PeerId,
    /// The instant the snapshot describes.
    pub now: Timestamp,
    /// The device's power state.
    pub power: PowerState,
    /// Conditions of each link.
    pub links: LinkConditions,
    /// The routes.
    pub routes: Vec<Route>,
}

impl RouteSet {
    /// The ranking context for `profile`.
    pub fn context<'a>(&'a self, profile: &'a Profile) -> Context<'a> {
        Context {
            profile,
            links: &self.links,
            power: self.power,
            now: self.now,
        }
    }

    /// Ranks the routes under `profile`.
    pub fn rank(&self, profile: &Profile) -> Ranking {
        rank(&self.routes, &self.context(profile))
    }
}
