//! Parallel runs: every policy over the same plan, on several threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::Error;
use crate::metrics::PolicyResult;

use super::Sim;
use super::plan::Plan;

/// Progress of a run: which policy, how far in simulated time (0..=1).
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Index of the policy in the run's list.
    pub policy: usize,
    /// Fraction of simulated time done.
    pub fraction: f64,
}

/// Runs every policy of `policies` over the plan, on up to `threads` threads;
/// results come back in the order of `policies` whatever the threads did.
pub(crate) fn run_policies(
    plan: &Plan,
    policies: &[String],
    threads: usize,
    check: bool,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<(PolicyResult, Duration)>, Error> {
    let next = AtomicUsize::new(0);
    type Slot = Option<Result<(PolicyResult, Duration), Error>>;
    let results: std::sync::Mutex<Vec<Slot>> =
        std::sync::Mutex::new((0..policies.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, policies.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(policy) = policies.get(i) else { break };
                    // Wall time of one policy, reported beside (never inside)
                    // the results.
                    let started = std::time::Instant::now();
                    let mut sim = Sim::new(plan, policy);
                    sim.check = check;
                    let r = sim
                        .run(&|f| {
                            progress(Progress {
                                policy: i,
                                fraction: f,
                            })
                        })
                        .map(|r| (r, started.elapsed()));
                    if let Ok(mut g) = results.lock() {
                        g[i] = Some(r);
                    }
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_default();
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(Error::Io {
                    path: String::new(),
                    message: "a policy thread panicked".to_owned(),
                })
            })
        })
        .collect()
}
