//! Criterion benchmarks for multidriver; the library target is empty.
//!
//! ```text
//! cargo bench -p multidriver-benches --bench ranking
//! ```
//!
//! - `ranking`: ranking 4, 16 and 64 routes of one peer under the `balanced`
//!   profile, and planning a race over the ranking.
