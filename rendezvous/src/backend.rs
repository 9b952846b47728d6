//! Where registrations live: the [`Backend`] trait, with SQLite
//! ([`Store`], one point) and PostgreSQL ([`PgStore`](crate::postgres::PgStore),
//! a fleet of points sharing one registry) behind it.
//!
//! The [`Service`](crate::Service) turns each request into an [`Op`] (or
//! answers it at once, when it is malformed); a backend runs the ops of one
//! batch in order inside one transaction and returns one [`Done`] per op,
//! only after the transaction committed. The semantics are the same on
//! every backend: limits are counted inside the transaction, an expired
//! registration never holds a slot, positions only grow, and a discover
//! page ends at a position the store has committed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::BoxFuture;
use libp2p::PeerId;

use crate::Error;
use crate::store::{Caps, Registered, Store, Stored};

/// Bytes one registration takes in a discover answer, at most: the
/// namespace and record with their tags and length prefixes, the TTL, and
/// the entry's own tag and length (protobuf: 1-byte tags, varints of at
/// most 10 bytes).
pub fn entry_len(namespace: usize, record: usize) -> usize {
    let inner = (1 + 10 + namespace) + (1 + 10 + record) + (1 + 10);
    1 + 10 + inner
}

/// Bytes a discover answer holds beside its entries: its cookie, status
/// and framing (an upper bound).
pub const PAGE_OVERHEAD: usize = 1024;

/// What an answer waiting for its client is counted as, in multiples of
/// its size: its encoded bytes, and room for the copies the connection's
/// multiplexer and encryption make while it is written, and for the
/// allocator's slack. Our choice, from
/// `cargo bench -p multidriver-benches --bench rendezvous_load` (128
/// clients that never read 0.7 MB answers, 64 MiB limit): resident memory
/// rose by about 1.1× the answer bytes held, so counted twice the rise stays
/// near 0.6× the limit.
pub const ANSWER_MEMORY_FACTOR: usize = 2;

/// The memory discover answers may hold, from the moment the store has
/// built a page until its client has taken it
/// ([`Config::max_answer_bytes_in_flight`](crate::Config)), shared by the
/// point and its store. A page is charged as the store builds it; one that
/// does not fit is dropped there and answered `E_UNAVAILABLE` (busy), so
/// clients that ask and never read cannot make the point build pages
/// without bound.
#[derive(Debug)]
pub struct AnswerBudget {
    /// Answer bytes charged now.
    charged: AtomicUsize,
    /// Answer bytes that may be charged: the memory limit over
    /// [`ANSWER_MEMORY_FACTOR`].
    limit: usize,
}

impl AnswerBudget {
    /// A budget of `memory` bytes (each answer byte counted
    /// [`ANSWER_MEMORY_FACTOR`] times).
    pub fn new(memory: usize) -> Arc<AnswerBudget> {
        Arc::new(AnswerBudget {
            charged: AtomicUsize::new(0),
            limit: memory / ANSWER_MEMORY_FACTOR,
        })
    }

    /// No limit, for a caller that sends nothing (tests, tools).
    pub fn unlimited() -> Arc<AnswerBudget> {
        Arc::new(AnswerBudget {
            charged: AtomicUsize::new(0),
            limit: usize::MAX,
        })
    }

    /// Charges `bytes` if they fit under the limit; whether they did.
    pub fn try_charge(&self, bytes: usize) -> bool {
        self.charged
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// Charges `bytes` whatever the limit (a small answer that must be
    /// sent: a registration's, an error).
    pub fn charge(&self, bytes: usize) {
        self.charged.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Gives back what an answer was charged, once it is gone.
    pub fn release(&self, bytes: usize) {
        let _ = self
            .charged
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_sub(bytes))
            });
    }

    /// Answer bytes charged now.
    pub fn charged(&self) -> usize {
        self.charged.load(Ordering::Acquire)
    }

    /// Charges a page's worth (what its answer will take encoded); the
    /// charge, or `None` when it does not fit.
    pub fn charge_page(&self, rows: &[Stored]) -> Option<usize> {
        let bytes = rows
            .iter()
            .map(|r| encoded_entry_len(r.namespace.len(), r.record.len()))
            .sum::<usize>()
            + ANSWER_OVERHEAD;
        self.try_charge(bytes).then_some(bytes)
    }
}

/// Bytes a protobuf varint of `v` takes.
fn varint_len(v: usize) -> usize {
    let bits = usize::BITS - v.max(1).leading_zeros();
    bits.div_ceil(7) as usize
}

/// Bytes one registration takes in an encoded discover answer: the entry's
/// tag and length, the namespace and record with theirs, and the TTL (at
/// most 5 bytes: TTLs are capped at a year). Exact but for the TTL.
pub fn encoded_entry_len(namespace: usize, record: usize) -> usize {
    let inner =
        (1 + varint_len(namespace) + namespace) + (1 + varint_len(record) + record) + (1 + 5);
    1 + varint_len(inner) + inner
}

/// Bytes of an encoded discover answer beside its entries, at most: the
/// message type, the response's tag and length, the status, and the
/// cookie (8 bytes and a namespace of up to 255).
pub const ANSWER_OVERHEAD: usize = 2 + (1 + 3) + 2 + (1 + 2 + 8 + 255);

/// The fixed part of [`entry_len`] (everything but the namespace and the
/// record), for backends that sum it in their query language.
pub const ENTRY_OVERHEAD: usize = 44;

/// One thing a request asks of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Store `peer`'s registration in `namespace` until `expires` (Unix
    /// seconds), unless a limit refuses it.
    Register {
        /// The registering peer.
        peer: PeerId,
        /// The namespace.
        namespace: String,
        /// The signed envelope, as received.
        record: Vec<u8>,
        /// When it expires, Unix seconds.
        expires: u64,
        /// The limits it is counted against.
        caps: Caps,
    },
    /// Drop `peer`'s registration in `namespace`.
    Unregister {
        /// The peer.
        peer: PeerId,
        /// The namespace.
        namespace: String,
    },
    /// Live registrations after position `after`, in position order.
    Discover {
        /// One namespace, or all.
        namespace: Option<String>,
        /// The position the client's cookie holds (0 without one).
        after: u64,
        /// Most registrations to return.
        limit: u64,
        /// Most bytes of [`entry_len`] the page may hold.
        budget: usize,
    },
}

/// What one [`Op`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// A registration's outcome.
    Register(Registered),
    /// Whether an unregistration dropped one.
    Unregister(bool),
    /// A discover page.
    Discover(Page),
    /// A discover page that did not fit the [`AnswerBudget`]: dropped,
    /// to be answered `E_UNAVAILABLE` (busy).
    Busy,
    /// A discover that failed after the batch's writes committed (they
    /// stand; this one op is answered with the failure).
    Failed {
        /// Whether the store could not be reached (`E_UNAVAILABLE`), rather
        /// than failed (`E_INTERNAL_ERROR`).
        unavailable: bool,
        /// What went wrong.
        message: String,
    },
}

/// A discover page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The registrations, in position order.
    pub rows: Vec<Stored>,
    /// Whether every match was returned (the page stopped neither at the
    /// limit nor at the byte budget).
    pub complete: bool,
    /// The highest position committed when the page was read (in the same
    /// snapshot), for the cookie of a complete page and to refuse cookies
    /// no point of this registry issued.
    pub last_position: u64,
    /// What the page was charged in the [`AnswerBudget`], to release when
    /// its answer is gone.
    pub charged: usize,
}

/// What a backend's counts look like now, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    /// Registrations held, expired ones not yet swept included (for a
    /// shared registry: as of this point's last transaction).
    pub rows: u64,
    /// Expired registrations this point deleted since it started.
    pub expired: u64,
}

/// Tells the store's state: `Ok(what)` when it serves, `Err(why)` when
/// it does not.
pub type Health = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// A batch or a sweep that is still running.
pub type Pending<T> = BoxFuture<'static, Result<T, Error>>;

/// A store of registrations. Calls never read the clock: `now` is Unix
/// seconds, passed in.
pub trait Backend: Send + std::fmt::Debug {
    /// Runs `ops` inside one transaction and, once it committed, returns
    /// one [`Done`] per op. Writes take effect in order, and the writes of
    /// one store's batches in the order `run` was called. Each discover
    /// page is charged in `answers` as it is built ([`Done::Busy`] when it
    /// does not fit). On an error nothing of the batch took effect (or,
    /// for a connection lost during the commit, it may have: the caller
    /// confirms nothing either way).
    fn run(&mut self, ops: Vec<Op>, now: u64, answers: &Arc<AnswerBudget>) -> Pending<Vec<Done>>;

    /// Deletes expired registrations, unless another point of the same
    /// registry swept within `interval_secs`: how many this call deleted,
    /// or `None` when it left the sweep to that point.
    fn sweep(&mut self, now: u64, interval_secs: u64) -> Pending<Option<u64>>;

    /// Counts for metrics.
    fn counts(&self) -> Counts;

    /// Batches that may run at once (a pool's connections; 1 for a store
    /// that runs them as they come).
    fn concurrency(&self) -> usize;

    /// The store's state for `/health`, to call from any thread:
    /// `Ok(what)` when it serves, `Err(why)` when it does not.
    fn health(&self) -> Health;

    /// What must happen before the first batch (connect, create or migrate
    /// the schema); an error stops the point. `None`: nothing.
    fn start(&mut self) -> Option<Pending<()>> {
        None
    }

    /// Whether the store is known to be out of reach now (its last
    /// attempt failed so): batches are answered `E_UNAVAILABLE` at once,
    /// without waiting for it, until a [`Backend::probe`] succeeds.
    fn is_down(&self) -> bool {
        false
    }

    /// Checks that the store is reachable when nothing else has lately;
    /// `None` for a store that cannot be lost (a local file).
    fn probe(&mut self) -> Option<Pending<()>> {
        None
    }

    /// Metrics of the store's own (a pool's use): recorded on each call.
    fn record_metrics(&self) {}

    /// The SQLite store behind it, if it is one (for tests and tools that
    /// open batches by hand).
    fn as_sqlite_mut(&mut self) -> Option<&mut Store> {
        None
    }
}

impl Backend for Store {
    fn run(&mut self, ops: Vec<Op>, now: u64, answers: &Arc<AnswerBudget>) -> Pending<Vec<Done>> {
        let done = self.run_now(ops, now, answers);
        Box::pin(std::future::ready(done))
    }

    fn sweep(&mut self, now: u64, _interval_secs: u64) -> Pending<Option<u64>> {
        let swept = Store::sweep(self, now).map(Some);
        Box::pin(std::future::ready(swept))
    }

    fn counts(&self) -> Counts {
        Counts {
            rows: self.len(),
            expired: self.expired(),
        }
    }

    fn concurrency(&self) -> usize {
        1
    }

    fn as_sqlite_mut(&mut self) -> Option<&mut Store> {
        Some(self)
    }

    fn health(&self) -> Health {
        let what = format!("sqlite {}", self.shown_path().display());
        Arc::new(move || Ok(what.clone()))
    }
}

impl Store {
    /// [`Backend::run`] for SQLite: the batch in one transaction, now, in
    /// order (a discover sees the writes before it). Pages are built one
    /// at a time and charged at once, so at most one page beyond the
    /// budget exists.
    pub fn run_now(
        &mut self,
        ops: Vec<Op>,
        now: u64,
        answers: &AnswerBudget,
    ) -> Result<Vec<Done>, Error> {
        let batched = ops.len() > 1;
        if batched {
            self.begin()?;
        }
        let mut done = Vec::with_capacity(ops.len());
        let mut failed = None;
        for op in ops {
            let result = match op {
                Op::Register {
                    peer,
                    namespace,
                    record,
                    expires,
                    caps,
                } => self
                    .register(&peer, &namespace, &record, expires, now, caps)
                    .map(Done::Register),
                Op::Unregister { peer, namespace } => {
                    self.unregister(&peer, &namespace).map(Done::Unregister)
                }
                Op::Discover {
                    namespace,
                    after,
                    limit,
                    mut budget,
                } => self
                    .discover(namespace.as_deref(), after, limit, now, |row| {
                        let size = entry_len(row.namespace.len(), row.record.len());
                        let fits = size <= budget;
                        if fits {
                            budget -= size;
                        }
                        fits
                    })
                    .map(|(rows, complete)| match answers.charge_page(&rows) {
                        Some(charged) => Done::Discover(Page {
                            rows,
                            complete,
                            last_position: self.last_position(),
                            charged,
                        }),
                        None => Done::Busy,
                    }),
            };
            match result {
                Ok(d) => done.push(d),
                Err(e) => {
                    if batched {
                        self.fail_batch(&e);
                    }
                    failed = Some(e);
                    break;
                }
            }
        }
        // A failed write already failed the batch; its commit rolls every
        // write of it back.
        let committed = if batched { self.commit() } else { Ok(()) };
        match failed.map_or(committed, Err) {
            Ok(()) => Ok(done),
            Err(e) => {
                release_pages(&done, answers);
                Err(e)
            }
        }
    }
}

/// Gives back what the pages among `done` were charged (their batch
/// failed, and they will not be sent).
pub fn release_pages(done: &[Done], answers: &AnswerBudget) {
    for d in done {
        if let Done::Discover(page) = d {
            answers.release(page.charged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{self, Cookie, DiscoverResponse, Message, MessageType, Register};

    /// A page's charge is at least what its answer takes encoded, and
    /// close to it.
    #[test]
    fn a_page_is_charged_what_its_answer_takes() {
        for (ns, rec, n) in [(1, 1, 1), (12, 150, 400), (255, 8192, 3), (200, 127, 1000)] {
            let rows: Vec<Stored> = (0..n)
                .map(|i| Stored {
                    position: i,
                    namespace: "n".repeat(ns),
                    record: vec![7; rec],
                    expires: u64::MAX,
                })
                .collect();
            let answer = Message {
                r#type: Some(MessageType::DiscoverResponse as i32),
                discover_response: Some(DiscoverResponse {
                    registrations: rows
                        .iter()
                        .map(|r| Register {
                            ns: Some(r.namespace.clone().into_bytes()),
                            signed_peer_record: Some(r.record.clone()),
                            // The longest TTL a point grants.
                            ttl: Some(crate::config::MAX_TTL_CAP),
                        })
                        .collect(),
                    cookie: Some(
                        Cookie {
                            position: u64::MAX,
                            namespace: Some("n".repeat(255)),
                        }
                        .to_bytes(),
                    ),
                    status: Some(protocol::ResponseStatus::Ok as i32),
                    status_text: None,
                }),
                ..Message::default()
            };
            let encoded = prost::Message::encoded_len(&answer);
            let budget = AnswerBudget::unlimited();
            let charged = budget.charge_page(&rows).unwrap();
            assert!(charged >= encoded, "{ns}/{rec}/{n}: {charged} < {encoded}");
            assert!(
                charged <= encoded + n as usize * 2 + 16,
                "{ns}/{rec}/{n}: {charged} is far over {encoded}"
            );
        }
    }

    #[test]
    fn the_budget_refuses_past_its_limit_and_takes_back_what_is_released() {
        let budget = AnswerBudget::new(1000);
        assert!(budget.try_charge(500));
        assert!(!budget.try_charge(1), "500 answer bytes are 1000 of memory");
        budget.release(200);
        assert!(budget.try_charge(200));
        budget.charge(50);
        assert_eq!(budget.charged(), 550);
        budget.release(10_000);
        assert_eq!(budget.charged(), 0);
    }
}
