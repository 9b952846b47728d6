//! The run plan: the nodes, their contacts and the timeline of world actions,
//! derived once from the scenario and the seed and shared by every policy.

use std::sync::Arc;
use std::time::Duration;

use libp2p_identity::{Keypair, PeerId};
use multidriver_scoring::Timestamp;

use crate::agent::engine::Identities;
use crate::rng::Rng;
use crate::scenario::{Action, Scenario};
use crate::world::{IfKind, Iface, Node, power_of, radios};

/// What happens to the world, from the scenario, the same for every policy.
#[derive(Debug, Clone)]
pub(super) enum WorldAction {
    Online,
    Offline,
    Scenario(Action),
}

/// Everything derived from the scenario and the seed that all policies share.
pub(crate) struct Plan {
    pub(super) scenario: Arc<Scenario>,
    pub(super) seed: u64,
    pub(super) nodes: Vec<Node>,
    pub(super) timeline: Vec<(Timestamp, u32, WorldAction)>,
    pub(super) ids: Arc<Identities>,
}

pub(super) fn at(s: f64) -> Timestamp {
    Timestamp::from_duration(Duration::from_secs_f64(s.max(0.0)))
}

impl Plan {
    /// The name of the group node `node` belongs to.
    pub(crate) fn group_of(&self, node: u32) -> &str {
        let mut first = 0;
        for g in &self.scenario.groups {
            if node < first + g.count {
                return &g.name;
            }
            first += g.count;
        }
        "?"
    }

    pub(crate) fn new(scenario: Arc<Scenario>, seed: u64) -> Plan {
        let end = scenario.duration_s;
        let mut nodes = Vec::new();
        let mut first_of_group = Vec::new();
        let mut timeline = Vec::new();
        for g in &scenario.groups {
            first_of_group.push(nodes.len() as u32);
            for _ in 0..g.count {
                let id = nodes.len() as u32;
                let mut r = Rng::stream(seed, 1, u64::from(id));
                let angle = r.f64() * std::f64::consts::TAU;
                let dist = g.spread_m * r.f64().sqrt();
                let mut ifaces = [Iface::default(); 4];
                if let Some(l) = g.wifi {
                    ifaces[IfKind::Wifi as usize] = Iface::attached(Some(l as u16), l as u16, 0);
                }
                if let Some(l) = g.ethernet {
                    ifaces[IfKind::Ethernet as usize] =
                        Iface::attached(Some(l as u16), l as u16, 0);
                }
                if g.cellular.is_some() {
                    ifaces[IfKind::Cellular as usize] = Iface::attached(None, 0, 0);
                }
                ifaces[IfKind::Ble as usize].up = g.ble;
                nodes.push(Node {
                    region: g.region as u16,
                    online: false,
                    ifaces,
                    cellular: g.cellular,
                    position: [
                        g.position[0] + dist * angle.cos(),
                        g.position[1] + dist * angle.sin(),
                    ],
                    power: power_of(g),
                    contacts: Vec::new(),
                    radios: radios(g.cellular),
                    mdns_visible: false,
                    ble_visible: false,
                    next_cell_epoch: 1,
                    cell_nat: g.nat,
                });
                let start = r.f64() * g.start_spread_s;
                timeline.push((at(start), id, WorldAction::Online));
                if let Some((on, off)) = g.churn {
                    let mut t = start + r.exp(on);
                    while t < end {
                        timeline.push((at(t), id, WorldAction::Offline));
                        t += r.exp(off);
                        if t >= end {
                            break;
                        }
                        timeline.push((at(t), id, WorldAction::Online));
                        t += r.exp(on);
                    }
                }
                if g.drain_per_hour > 0.0
                    && let Some(level) = g.battery
                {
                    // Battery readings every 5 min, as Android's battery
                    // broadcast roughly arrives (our assumption).
                    let mut t = 300.0;
                    while t < end {
                        let l = (level - g.drain_per_hour * t / 3600.0).max(0.0);
                        timeline.push((
                            at(t),
                            id,
                            WorldAction::Scenario(Action::Battery {
                                level: l,
                                charging: g.charging,
                            }),
                        ));
                        t += 300.0;
                    }
                }
            }
        }
        // Contacts: distinct nodes of the named groups, never oneself.
        for (gi, g) in scenario.groups.iter().enumerate() {
            for k in 0..g.count {
                let id = first_of_group[gi] + k;
                let mut r = Rng::stream(seed, 2, u64::from(id));
                let mut contacts = Vec::new();
                for &(cg, n) in &g.contacts {
                    let base = first_of_group[cg];
                    let size = scenario.groups[cg].count;
                    let mut picked = 0;
                    let mut guard = 0;
                    while picked < n && guard < 64 * (n + 1) {
                        guard += 1;
                        let c = base + r.below(u64::from(size)) as u32;
                        if c != id && !contacts.contains(&c) {
                            contacts.push(c);
                            picked += 1;
                        }
                    }
                    // Small groups: fill deterministically.
                    let mut c = base;
                    while picked < n && c < base + size {
                        if c != id && !contacts.contains(&c) {
                            contacts.push(c);
                            picked += 1;
                        }
                        c += 1;
                    }
                }
                nodes[id as usize].contacts = contacts;
            }
        }
        for e in &scenario.events {
            match e.group {
                Some(g) => {
                    for k in 0..scenario.groups[g].count {
                        let id = first_of_group[g] + k;
                        let mut r =
                            Rng::stream(seed, 3, (u64::from(id) << 20) ^ timeline.len() as u64);
                        let t = e.at_s + r.f64() * e.spread_s;
                        if t <= end {
                            timeline.push((at(t), id, WorldAction::Scenario(e.action.clone())));
                        }
                    }
                }
                None => timeline.push((
                    at(e.at_s),
                    u32::MAX,
                    WorldAction::Scenario(e.action.clone()),
                )),
            }
        }
        for (i, s) in scenario.rendezvous.iter().enumerate() {
            for o in &s.outages {
                timeline.push((
                    at(o[0]),
                    u32::MAX,
                    WorldAction::Scenario(Action::RendezvousDown(i)),
                ));
                timeline.push((
                    at(o[1]),
                    u32::MAX,
                    WorldAction::Scenario(Action::RendezvousUp(i)),
                ));
            }
        }
        // Stable: events at the same instant keep file order.
        timeline.sort_by_key(|e| e.0);
        let peers: Vec<PeerId> = (0..nodes.len() as u32)
            .map(|i| {
                let mut bytes = [0u8; 32];
                bytes[..4].copy_from_slice(&i.to_be_bytes());
                bytes[4..12].copy_from_slice(&seed.to_be_bytes());
                bytes[12] = 0x5a;
                // Any 32 bytes are a valid ed25519 secret key.
                Keypair::ed25519_from_bytes(bytes)
                    .expect("32 bytes are always an ed25519 secret key")
                    .public()
                    .to_peer_id()
            })
            .collect();
        // The relays' ids: keys no node uses (byte 12 differs).
        let relays: Vec<PeerId> = (0..scenario.rendezvous.len() as u32)
            .map(|i| {
                let mut bytes = [0u8; 32];
                bytes[..4].copy_from_slice(&i.to_be_bytes());
                bytes[4..12].copy_from_slice(&seed.to_be_bytes());
                bytes[12] = 0xa5;
                Keypair::ed25519_from_bytes(bytes)
                    .expect("32 bytes are always an ed25519 secret key")
                    .public()
                    .to_peer_id()
            })
            .collect();
        let index = peers
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i as u32))
            .collect();
        Plan {
            scenario,
            seed,
            nodes,
            timeline,
            ids: Arc::new(Identities {
                peers,
                index,
                relays,
            }),
        }
    }
}
