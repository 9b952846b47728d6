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
pub type Health = std::sync::Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// A batch or a sweep that is still running.
pub type Pending<T> = BoxFuture<'static, Result<T, Error>>;

/// A store of registrations. Calls never read the clock: `now` is Unix
/// seconds, passed in.
pub trait Backend: Send + std::fmt::Debug {
    /// Runs `ops` in order inside one transaction and, once it committed,
    /// returns one [`Done`] per op. On an error nothing of the batch took
    /// effect (or, for a connection lost during the commit, it may have:
    /// the caller confirms nothing either way).
    fn run(&mut self, ops: Vec<Op>, now: u64) -> Pending<Vec<Done>>;

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
    fn run(&mut self, ops: Vec<Op>, now: u64) -> Pending<Vec<Done>> {
        let done = self.run_now(ops, now);
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
        std::sync::Arc::new(move || Ok(what.clone()))
    }
}

impl Store {
    /// [`Backend::run`] for SQLite: the batch in one transaction, now.
    pub fn run_now(&mut self, ops: Vec<Op>, now: u64) -> Result<Vec<Done>, Error> {
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
                    .map(|(rows, complete)| {
                        Done::Discover(Page {
                            rows,
                            complete,
                            last_position: self.last_position(),
                        })
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
        if batched {
            // A failed write already failed the batch; its commit rolls
            // every write of it back.
            let committed = self.commit();
            if let Some(e) = failed {
                return Err(e);
            }
            committed?;
        } else if let Some(e) = failed {
            return Err(e);
        }
        Ok(done)
    }
}
