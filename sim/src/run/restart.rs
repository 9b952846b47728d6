//! App restarts (the `restart` action): the app process stops and starts
//! again at once. Its connections close and its policy agent is rebuilt as
//! at start; the `multidriver` policies export their route memory first
//! and import it into the new engine through the bytes an app would store
//! (`RouteMemory::to_bytes` / `from_bytes`). Contacts connected before the
//! restart are measured again: time to first connection after a restart.

use crate::Error;
use crate::agent::Input;

use super::Sim;

impl Sim<'_> {
    pub(super) fn restart(&mut self, node: u32) -> Result<(), Error> {
        let n = node as usize;
        if !self.world.nodes[n].online {
            return Ok(());
        }
        let now = self.now;
        // What the app stores before it stops (only the engine's policies
        // with every driver remember; the single-driver setups and the
        // baselines start from scratch).
        let stored = if self.policy.starts_with("multidriver") {
            self.agents[n].as_ref().and_then(|a| a.export_memory(now))
        } else {
            None
        };
        // The process is gone: its connections and attempts with it.
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
        // A warning the old process heard is not the new one's.
        for i in &mut self.world.nodes[n].ifaces {
            i.losing = false;
        }
        for p in &mut self.pairs[n] {
            if let Some((s, cause)) = p.outage.take() {
                // The old process never recovered it: unfinished.
                let secs = now.saturating_duration_since(s).as_secs_f64();
                self.metrics.failover(cause, secs, true);
            }
            // Messages still queued die with the process.
            self.metrics.lost += p.queue.len() as u64;
            p.queue.clear();
            p.primary = None;
            if p.connected_once {
                // A contact the old process reached: its next first
                // connection is measured from now (or from when a path to
                // it appears).
                p.connected_once = false;
                p.want_since = None;
                p.after_restart = true;
            }
            // A contact never reached is still waited for since it was.
        }
        let mut agent = self.make_agent(node)?;
        if let Some(bytes) = &stored {
            agent.import_memory(bytes, now);
        }
        self.agents[n] = Some(agent);
        self.after_agent(node);
        self.input(node, Input::Start);
        self.paths_changed(node);
        Ok(())
    }
}
