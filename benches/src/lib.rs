//! Criterion benchmarks for multidriver; the library target is empty.
//!
//! ```text
//! cargo bench -p multidriver-benches --bench ranking
//! ```
//!
//! - `ranking`: ranking 4, 16 and 64 routes of one peer under the `balanced`
//!   profile, and planning a race over the ranking.
//! - `engine`: the engine core's input throughput with 1,000 connected peers:
//!   an RTT sample, a rediscovered route, and Wi-Fi going down with every
//!   peer failed over to 4G (`cargo bench -p multidriver-benches --bench
//!   engine`).
//! - `rendezvous_load`: our rendezvous point against the stock rust-libp2p
//!   server under stock clients, and under clients that never read.
//! - `rendezvous_fleet`: one point on SQLite, one on PostgreSQL, three
//!   sharing one PostgreSQL registry (it starts its own PostgreSQL).
