//! The multidriver network simulator.
//!
//! **Nothing is implemented here yet.** This crate will hold a deterministic
//! discrete-event simulator in virtual time, with one seed for all randomness,
//! that runs the real multidriver engine core for every simulated node beside
//! baseline policies (a model of stock rust-libp2p 0.57, Berty's always-on
//! discovery, single-driver setups and an oracle) in the same run, and reports
//! time to first connection, failover time after network switches, energy per
//! node-hour and messages lost as ratios against those baselines.
//!
//! Until then, `multidriver rank` (in the `multidriver-cli` package) shows the
//! scoring that the simulator will exercise.
