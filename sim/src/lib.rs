//! The multidriver network simulator.
//!
//! A deterministic discrete-event simulator in virtual time, with one seed
//! for all randomness and no clock reads. Every simulated node runs a policy:
//! the real multidriver engine core (under each profile, or with a single
//! discovery driver), a model of stock rust-libp2p 0.57, a model of Berty's
//! always-on discovery (`tinder`), or an oracle that knows the best route at
//! every instant. All policies run over the same scenario, seed and timeline
//! in one run, so every figure is a ratio measured side by side.
//!
//! # Model
//!
//! - **Nodes** have Wi-Fi, Ethernet, cellular (4G/5G) and BLE interfaces.
//!   Wi-Fi and Ethernet attach to LANs; a LAN may have an uplink. A node's
//!   addresses are a LAN address per LAN interface and a public one per
//!   interface with internet access, each over QUIC and TCP.
//! - **Paths** exist only between a node and its contacts, when they are
//!   used: a LAN path when both ends share a LAN; an internet path of both
//!   access hops (`multidriver_scoring::rtt::access_hop`) plus the core RTT
//!   between the regions. Each round trip is sampled with jitter and a heavy
//!   tail; loss costs a 1 s retransmission. A cellular radio that is idle
//!   adds its promotion delay.
//! - **NATs and relays**: every attachment has a NAT (`nat` on a LAN for
//!   its Wi-Fi and Ethernet hosts, on a group for its cellular carrier;
//!   carrier-grade by default). A dial into a NAT times out. Rendezvous
//!   points with `relay = true` are circuit relays: private nodes reserve
//!   on them and advertise relayed addresses; a circuit costs the legs to
//!   and from the relay and is cut at 2 min or 128 KiB. DCUtR runs on every
//!   relayed connection, succeeding by NAT pair as measured (70 % overall).
//! - **Handshakes** take the transport's round trips (QUIC 1, TCP + Noise +
//!   yamux 4). A dial to an address that no longer exists black-holes until
//!   the transport gives up.
//! - **Discovery**: a DHT whose lookups and publishes follow the IPFS
//!   latency measurements, rendezvous points with RTT, TTL and outages, mDNS
//!   on the LAN, and BLE scanning by distance. Records hold the addresses a
//!   node had when it registered, so they go stale when it moves.
//! - **Energy**: a radio state machine per interface (promotion, tail,
//!   bytes) from the scoring crate's energy model.
//! - **App traffic**: each node sends a message to each contact at a fixed
//!   interval. A message sent into a connection whose path is dead is lost;
//!   while disconnected messages queue (bounded) and are delivered on
//!   reconnection.
//!
//! # Policies
//!
//! - `multidriver`, `multidriver:<preset>`: the engine core, behind an
//!   adapter shaped like the libp2p `Behaviour` (interfaces, drivers, dials
//!   bound to an interface). The engine probes connections itself
//!   (`Config::liveness`); the adapter pings when asked and reports app
//!   traffic (`Engine::mark_used`). The app looks an unreachable peer, or
//!   one it has a message for and no connection to, up again at once, at
//!   most every 5 s.
//! - `single-dht`, `single-rendezvous`, `single-mdns`: the same with one
//!   driver.
//! - `libp2p-stock`: rust-libp2p 0.57 defaults: Kademlia (bootstrap every
//!   5 min, addresses pruned after failed dials), mDNS on its probe
//!   schedule, every rendezvous point asked (the client takes one point per
//!   call, so the app calls each); smart dial's static ranking and stagger;
//!   the OS picks the interface; dead links noticed by ping (15 s / 20 s,
//!   reported at the second failure, as libp2p-ping does) or QUIC's idle
//!   timeout (10 s); idle connections closed after 10 s; the app redials on
//!   loss and looks peers up when it has no address, at most every 5 s (the
//!   same app as the multidriver policies'). It never moves to a better
//!   route while connected, and ignores interface events.
//! - `libp2p-tuned`: the same stack as a competent mobile developer tunes
//!   it, given the inputs multidriver gets: ping every 1 s with a 1 s
//!   timeout (the engine's heartbeat and probe deadline), QUIC idle 3 s with
//!   1 s keep-alives; the app acts on interface events and host hints: it
//!   closes connections over a lost interface and redials at once, on
//!   "losing" dials around the interface before it goes (make-before-break
//!   with `PeerCondition::Always`), and when a LAN interface comes up dials
//!   peers it lost and moves peers off cellular make-before-break. Nothing
//!   tells it a Wi-Fi has silently stalled, so its redials go where the OS
//!   routes them, into that Wi-Fi, until the OS lets it go.
//! - `tinder`: Berty's always-on discovery: every driver and rendezvous
//!   point, a union of addresses that never expires, rendezvous polled every
//!   30 s, go-libp2p's ranking (fast-forward when nothing is in flight), no
//!   idle timeout. Its keep-alives are modelled as rust-libp2p's.
//! - `oracle`: knows the lowest-RTT working path at every instant, needs no
//!   discovery or keep-alives, and moves the moment it changes.
//!
//! # Not modelled yet
//!
//! Link bandwidth (messages are small; BLE's low rate does not show),
//! rendezvous server and relay reservation limits, the callee's side of a
//! hole punch, BLE data routes (sightings hand over the
//! peer's IP addresses; BLE routes arrive with the libp2p adapter's BLE
//! transport), and inbound connections: each node dials its own contacts
//! and the callee does not adopt the connection.
//!
//! # Example
//!
//! ```
//! use multidriver_sim::{RunOptions, Scenario, run};
//!
//! let scenario = Scenario::from_toml_str(r#"
//!     name = "two phones"
//!     duration_s = 120
//!     policies = ["multidriver", "libp2p-stock", "oracle"]
//!     [[lans]]
//!     name = "home"
//!     rtt_ms = 4
//!     [[rendezvous]]
//!     name = "rdvp"
//!     [[groups]]
//!     name = "phones"
//!     count = 2
//!     wifi = "home"
//!     cellular = "4g"
//!     contacts = [{ group = "phones", count = 1 }]
//!     [[events]]
//!     at_s = 60
//!     group = "phones"
//!     action = "wifi-down"
//! "#)?;
//! let report = run(&scenario, &RunOptions::default(), &|_| {})?;
//! println!("{}", report.table());
//! assert_eq!(report.policies.len(), 3);
//! # Ok::<(), multidriver_sim::Error>(())
//! ```

mod agent;
mod error;
mod metrics;
mod nat;
mod plot;
mod report;
mod rng;
mod run;
pub mod scenario;
mod world;

use std::sync::Arc;

pub use error::Error;
pub use metrics::{
    EnergyByCause, EnergyByRadio, FailoverByCause, NatCounts, Percentiles, PolicyResult,
};
pub use plot::write_plots;
pub use report::Report;
pub use run::Progress;
pub use scenario::Scenario;

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Overrides the scenario's policy list.
    pub policies: Option<Vec<String>>,
    /// Worker threads; policies run in parallel, results do not depend on it.
    pub threads: usize,
    /// Check the simulator's invariants as the run goes (slower; for
    /// tests): at every sample interval and at the end, every message is
    /// delivered, lost or still queued; after every interface loss and at
    /// every sample interval, no policy that hears interface events uses a
    /// connection over an interface that is down. A break stops the run
    /// with [`Error::Invariant`].
    pub check_invariants: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: None,
            policies: None,
            threads: 2,
            check_invariants: false,
        }
    }
}

/// Runs a scenario: every policy over the same world and seed.
///
/// `progress` is called from the worker threads as simulated time advances.
///
/// # Errors
/// [`Error::Scenario`] if an overriding policy name is unknown;
/// [`Error::Engine`] if the engine refuses the configuration the simulator
/// built.
pub fn run(
    scenario: &Scenario,
    options: &RunOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Report, Error> {
    let seed = options.seed.unwrap_or(scenario.seed);
    let policies = match &options.policies {
        Some(p) => {
            for name in p {
                if !scenario::ALL_POLICIES.contains(&name.as_str()) {
                    return Err(Error::Scenario {
                        file: String::new(),
                        source: multidriver_scoring::Error::UnknownName {
                            kind: "policy",
                            name: name.clone(),
                            allowed: "multidriver, multidriver:performance, multidriver:balanced, \
                                      multidriver:battery-saver, multidriver:background, libp2p-stock, libp2p-tuned, tinder, \
                                      single-dht, single-rendezvous, single-mdns, oracle",
                        },
                    });
                }
            }
            p.clone()
        }
        None => scenario.policies.clone(),
    };
    let plan = run::Plan::new(Arc::new(scenario.clone()), seed);
    let results = run::run_policies(
        &plan,
        &policies,
        options.threads,
        options.check_invariants,
        progress,
    )?;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (r, _) in &results {
        for b in r.trace_hash.bytes() {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let (policies, wall) = results.into_iter().unzip();
    Ok(Report {
        scenario: scenario.name.clone(),
        seed,
        nodes: scenario.node_count(),
        duration_s: scenario.duration_s,
        policies,
        trace_hash: format!("{hash:016x}"),
        wall,
    })
}
