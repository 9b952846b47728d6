//! Registrations on disk, in SQLite.
//!
//! Each registration is one row: namespace, peer, the signed peer record as
//! received, and its expiry in Unix seconds. Rows carry a sequence number
//! that only grows (SQLite `AUTOINCREMENT`), so a refreshed registration gets
//! a new one and discover cookies (which hold the last number a page showed)
//! stay valid across restarts.
//!
//! The store never reads the clock: every call takes `now`. Counts are kept
//! exact by deleting expired rows inside each registration's transaction,
//! so an expired registration never holds a slot.
//!
//! Durability: the database is in WAL mode. With
//! [`Durability::ProcessCrash`] (SQLite `synchronous=NORMAL`) a committed
//! registration survives the process being killed, `kill -9` included, but
//! may be lost if the machine loses power; [`Durability::PowerLoss`]
//! (`synchronous=FULL`) also survives that, at one `fsync` per commit (one
//! per batch, see [`Store::begin`])
//! (<https://www.sqlite.org/pragma.html#pragma_synchronous>). The file is
//! locked exclusively, so a second process on the same database fails at
//! open instead of corrupting counts.

use std::path::{Path, PathBuf};

use libp2p::PeerId;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::Error;

/// SQLite integers are signed 64-bit; Unix seconds and positions fit.
fn sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Back from SQLite; never negative as we write them.
fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The schema version written to `PRAGMA user_version`.
const SCHEMA_VERSION: i64 = 1;

/// How much a committed write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// Survives the process being killed; may lose the last writes on a
    /// power loss. SQLite `synchronous=NORMAL` in WAL mode.
    #[default]
    ProcessCrash,
    /// Survives a power loss too; one `fsync` per commit.
    /// SQLite `synchronous=FULL`.
    PowerLoss,
}

/// One stored registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its sequence number.
    pub position: u64,
    /// The namespace.
    pub namespace: String,
    /// The signed envelope, as received.
    pub record: Vec<u8>,
    /// When it expires, in Unix seconds.
    pub expires: u64,
}

/// What a registration attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// A new registration was stored.
    New,
    /// The peer's registration in that namespace was replaced.
    Refreshed,
    /// The peer already holds `max_per_peer` registrations in other
    /// namespaces.
    PeerLimit,
    /// The point already holds `max_total` registrations.
    TotalLimit,
}

/// The count limits a registration is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Registrations one peer may hold (in distinct namespaces).
    pub per_peer: u64,
    /// Registrations the point holds in all.
    pub total: u64,
}

/// The SQLite store.
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
    /// Live (possibly expired, not yet swept) rows.
    rows: u64,
    /// The highest sequence number ever given.
    last_position: u64,
    /// Expired rows deleted since the store was opened.
    expired: u64,
    /// No registration expires before this (Unix seconds; `u64::MAX` when
    /// there are none): a lower bound, so a registration deletes expired
    /// rows only once one may have expired.
    next_expiry: u64,
    /// The counts when the open batch began; `None` outside a batch.
    batch: Option<Counters>,
    /// Why the open batch cannot be committed: a registration in it failed
    /// part way.
    batch_failed: Option<String>,
}

/// The store's counts, kept to restore them when a batch fails.
#[derive(Debug, Clone, Copy)]
struct Counters {
    rows: u64,
    last_position: u64,
    expired: u64,
    next_expiry: u64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .field("last_position", &self.last_position)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<Store, Error> {
        let conn = Connection::open(path).map_err(|e| Error::Store {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Store::init(conn, Some(path.to_owned()), durability)
    }

    /// A store in memory, for tests and benchmarks: nothing survives.
    pub fn in_memory() -> Result<Store, Error> {
        let conn = Connection::open_in_memory().map_err(|e| Error::Store {
            path: PathBuf::from(":memory:"),
            message: e.to_string(),
        })?;
        Store::init(conn, None, Durability::ProcessCrash)
    }

    fn init(
        conn: Connection,
        path: Option<PathBuf>,
        durability: Durability,
    ) -> Result<Store, Error> {
        let shown = path.clone().unwrap_or_else(|| PathBuf::from(":memory:"));
        let fail = |e: rusqlite::Error| {
            let message = match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                    "locked by another process (is another rendezvous point using it?)".to_owned()
                }
                Some(rusqlite::ErrorCode::NotADatabase) => "not a database".to_owned(),
                _ => e.to_string(),
            };
            Error::Store {
                path: shown.clone(),
                message,
            }
        };
        let sync = match durability {
            Durability::ProcessCrash => "NORMAL",
            Durability::PowerLoss => "FULL",
        };
        conn.execute_batch(&format!(
            "PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {sync};"
        ))
        .map_err(fail)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(fail)?;
        if version > SCHEMA_VERSION {
            return Err(Error::Store {
                path: shown,
                message: format!(
                    "schema version {version} is newer than this build's {SCHEMA_VERSION}; \
                     upgrade multidriver or use another database"
                ),
            });
        }
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;
             CREATE TABLE IF NOT EXISTS registrations (
                 position INTEGER PRIMARY KEY AUTOINCREMENT,
                 namespace TEXT NOT NULL,
                 peer BLOB NOT NULL,
                 record BLOB NOT NULL,
                 expires INTEGER NOT NULL,
                 -- Peer first: the same index finds a peer's registration
                 -- in a namespace and counts a peer's registrations.
                 UNIQUE (peer, namespace)
             );
             CREATE INDEX IF NOT EXISTS registrations_by_expiry ON registrations (expires);
             CREATE INDEX IF NOT EXISTS registrations_by_namespace
                 ON registrations (namespace, position);
             PRAGMA user_version = {SCHEMA_VERSION};
             COMMIT;"
        ))
        .map_err(fail)?;
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM registrations", [], |r| r.get(0))
            .map_err(fail)?;
        let rows = unsigned(rows);
        let last_position: i64 = conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'registrations'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(fail)?
            .unwrap_or(0);
        let last_position = unsigned(last_position);
        let next_expiry: Option<i64> = conn
            .query_row("SELECT MIN(expires) FROM registrations", [], |r| r.get(0))
            .map_err(fail)?;
        Ok(Store {
            next_expiry: next_expiry.map_or(u64::MAX, unsigned),
            conn,
            path,
            rows,
            last_position,
            expired: 0,
            batch: None,
            batch_failed: None,
        })
    }

    fn error(&self, e: &rusqlite::Error) -> Error {
        self.failure(e.to_string())
    }

    /// A store error naming this database.
    fn failure(&self, message: String) -> Error {
        Error::Store {
            path: self
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from(":memory:")),
            message,
        }
    }

    /// Registrations held, expired ones not yet swept included.
    pub fn len(&self) -> u64 {
        self.rows
    }

    /// Whether no registration is held.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The highest sequence number given so far (0 before the first).
    pub fn last_position(&self) -> u64 {
        self.last_position
    }

    /// Stores `peer`'s registration in `namespace` until `expires`, unless a
    /// limit refuses it. Refreshing an existing registration is never
    /// refused by a count limit: it takes no new slot.
    pub fn register(
        &mut self,
        peer: &PeerId,
        namespace: &str,
        record: &[u8],
        expires: u64,
        now: u64,
        caps: Caps,
    ) -> Result<Registered, Error> {
        self.batch_still_open()?;
        let peer_bytes = peer.to_bytes();
        let counts = (self.rows, self.next_expiry);
        let result = if self.batch.is_some() {
            // Inside a batch, no savepoint of its own (two more statements
            // per registration): a failure fails the whole batch instead,
            // and its commit rolls all of it back.
            let result = register_rows(
                &self.conn,
                &peer_bytes,
                namespace,
                record,
                expires,
                now,
                caps,
                counts,
            );
            if let Err(e) = &result {
                self.batch_failed.get_or_insert_with(|| e.to_string());
            }
            result
        } else {
            self.conn.transaction().and_then(|tx| {
                let result = register_rows(
                    &tx,
                    &peer_bytes,
                    namespace,
                    record,
                    expires,
                    now,
                    caps,
                    counts,
                )?;
                tx.commit()?;
                Ok(result)
            })
        };
        match result {
            Ok(done) => {
                self.next_expiry = done.next_expiry;
                self.rows = done.rows;
                self.expired += done.swept;
                if let Some(position) = done.position {
                    self.last_position = position;
                }
                Ok(done.outcome)
            }
            Err(e) => Err(self.error(&e)),
        }
    }

    /// Opens a batch: the registrations and unregistrations until
    /// [`Store::commit`] become durable together, in one transaction (group
    /// commit: one write of the log, and with [`Durability::PowerLoss`] one
    /// `fsync`, for all of them). Reads inside the batch see its writes.
    /// Whoever opens a batch must not confirm a write in it before
    /// [`Store::commit`] returns `Ok`.
    pub fn begin(&mut self) -> Result<(), Error> {
        if self.batch.is_some() {
            return Ok(());
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.error(&e))?;
        self.batch = Some(Counters {
            rows: self.rows,
            last_position: self.last_position,
            expired: self.expired,
            next_expiry: self.next_expiry,
        });
        Ok(())
    }

    /// Commits the open batch (nothing when none is open). On failure the
    /// batch is rolled back, the counts return to what they were at
    /// [`Store::begin`], and none of its writes happened.
    pub fn commit(&mut self) -> Result<(), Error> {
        let Some(before) = self.batch.take() else {
            return Ok(());
        };
        let committed = match self.batch_failed.take() {
            Some(why) => Err(self.failure(format!("a registration in the batch failed: {why}"))),
            None => self
                .conn
                .execute_batch("COMMIT")
                .map_err(|e| self.error(&e)),
        };
        match committed {
            Ok(()) => Ok(()),
            Err(error) => {
                // A failed COMMIT can leave the transaction open.
                if !self.conn.is_autocommit() {
                    let _ = self.conn.execute_batch("ROLLBACK");
                }
                self.rows = before.rows;
                self.last_position = before.last_position;
                self.expired = before.expired;
                self.next_expiry = before.next_expiry;
                Err(error)
            }
        }
    }

    /// Marks the open batch failed, so [`Store::commit`] rolls it back.
    pub fn fail_batch(&mut self, why: &Error) {
        if self.batch.is_some() {
            self.batch_failed.get_or_insert_with(|| why.to_string());
        }
    }

    /// The database's path (`:memory:` for one in memory).
    pub fn shown_path(&self) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| PathBuf::from(":memory:"))
    }

    /// Whether a batch is open.
    pub fn in_batch(&self) -> bool {
        self.batch.is_some()
    }

    /// Inside a batch that already failed, or whose transaction SQLite
    /// rolled back by itself (an I/O error, a full disk), refuses the
    /// write before it touches the database: outside the transaction it
    /// would commit on its own while the batch is answered as failed.
    fn batch_still_open(&mut self) -> Result<(), Error> {
        if self.batch.is_none() {
            return Ok(());
        }
        if self.batch_failed.is_none() && self.conn.is_autocommit() {
            self.batch_failed = Some("the database rolled the batch back".to_owned());
        }
        match &self.batch_failed {
            None => Ok(()),
            Some(why) => Err(self.failure(format!("an earlier write in this batch failed: {why}"))),
        }
    }

    /// Drops `peer`'s registration in `namespace`; whether there was one.
    /// Inside a batch, a failure fails the batch (see [`Store::commit`]).
    pub fn unregister(&mut self, peer: &PeerId, namespace: &str) -> Result<bool, Error> {
        self.batch_still_open()?;
        let n = match self.conn.execute(
            "DELETE FROM registrations WHERE namespace = ?1 AND peer = ?2",
            params![namespace, peer.to_bytes()],
        ) {
            Ok(n) => n as u64,
            Err(e) => {
                if self.batch.is_some() {
                    self.batch_failed.get_or_insert_with(|| e.to_string());
                }
                return Err(self.error(&e));
            }
        };
        self.rows -= n;
        Ok(n > 0)
    }

    /// Live registrations after `position`, in sequence order, in
    /// `namespace` or in every namespace: at most `limit`, read one row at a
    /// time and only while `admit` accepts them (a page's byte budget), so a
    /// page never loads rows it will not send. The flag says whether every
    /// match was returned.
    pub fn discover(
        &self,
        namespace: Option<&str>,
        position: u64,
        limit: u64,
        now: u64,
        mut admit: impl FnMut(&Stored) -> bool,
    ) -> Result<(Vec<Stored>, bool), Error> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let row = |r: &rusqlite::Row<'_>| {
            Ok(Stored {
                position: unsigned(r.get(0)?),
                namespace: r.get(1)?,
                record: r.get(2)?,
                expires: unsigned(r.get(3)?),
            })
        };
        let mut page = Vec::new();
        let mut take = |rows: &mut dyn Iterator<Item = rusqlite::Result<Stored>>| {
            for r in rows {
                let stored = r?;
                if !admit(&stored) {
                    return Ok(false);
                }
                page.push(stored);
            }
            // The query ran dry: all matches are in, unless it stopped at
            // the limit.
            Ok::<_, rusqlite::Error>(i64::try_from(page.len()).unwrap_or(i64::MAX) < limit)
        };
        let result = match namespace {
            Some(ns) => self
                .conn
                .prepare_cached(
                    "SELECT position, namespace, record, expires FROM registrations
                     WHERE namespace = ?1 AND position > ?2 AND expires > ?3
                     ORDER BY position LIMIT ?4",
                )
                .and_then(|mut s| {
                    take(&mut s.query_map(params![ns, sql(position), sql(now), limit], row)?)
                }),
            None => self
                .conn
                .prepare_cached(
                    "SELECT position, namespace, record, expires FROM registrations
                     WHERE position > ?1 AND expires > ?2
                     ORDER BY position LIMIT ?3",
                )
                .and_then(|mut s| {
                    take(&mut s.query_map(params![sql(position), sql(now), limit], row)?)
                }),
        };
        let complete = result.map_err(|e| self.error(&e))?;
        Ok((page, complete))
    }

    /// Deletes expired registrations; how many.
    pub fn sweep(&mut self, now: u64) -> Result<u64, Error> {
        let n = self
            .conn
            .execute(
                "DELETE FROM registrations WHERE expires <= ?1",
                params![sql(now)],
            )
            .map_err(|e| self.error(&e))? as u64;
        self.rows -= n;
        self.expired += n;
        let earliest: Option<i64> = self
            .conn
            .query_row("SELECT MIN(expires) FROM registrations", [], |r| r.get(0))
            .map_err(|e| self.error(&e))?;
        self.next_expiry = earliest.map_or(u64::MAX, unsigned);
        Ok(n)
    }

    /// Expired registrations deleted since the store was opened, by
    /// [`Store::sweep`] or to make room for a registration.
    pub fn expired(&self) -> u64 {
        self.expired
    }
}

/// What one registration did to the table.
struct RegisterRows {
    outcome: Registered,
    /// Expired rows deleted on the way.
    swept: u64,
    /// Rows held after it.
    rows: u64,
    /// The new lower bound of expiries.
    next_expiry: u64,
    /// The new row's sequence number, if one was written.
    position: Option<u64>,
}

/// The statements of [`Store::register`], on `conn` (a transaction, or the
/// connection inside an open batch). `counts`: the rows held and the
/// expiry lower bound before it.
#[allow(clippy::too_many_arguments)]
fn register_rows(
    conn: &Connection,
    peer_bytes: &[u8],
    namespace: &str,
    record: &[u8],
    expires: u64,
    now: u64,
    caps: Caps,
    (rows, next_expiry): (u64, u64),
) -> rusqlite::Result<RegisterRows> {
    // Nothing can have expired before the earliest expiry: skip the delete
    // until then.
    let due = next_expiry <= now;
    let swept = if due {
        conn.prepare_cached("DELETE FROM registrations WHERE expires <= ?1")?
            .execute(params![sql(now)])? as u64
    } else {
        0
    };
    let next_expiry = if due {
        let earliest: Option<i64> = conn
            .prepare_cached("SELECT MIN(expires) FROM registrations")?
            .query_row([], |r| r.get(0))?;
        earliest.map_or(u64::MAX, unsigned)
    } else {
        next_expiry
    };
    let existing: Option<i64> = conn
        .prepare_cached("SELECT position FROM registrations WHERE namespace = ?1 AND peer = ?2")?
        .query_row(params![namespace, peer_bytes], |r| r.get(0))
        .optional()?;
    let rows = rows - swept;
    let refused = |outcome| RegisterRows {
        outcome,
        swept,
        rows,
        next_expiry,
        position: None,
    };
    if existing.is_none() {
        let held: i64 = conn
            .prepare_cached("SELECT COUNT(*) FROM registrations WHERE peer = ?1")?
            .query_row(params![peer_bytes], |r| r.get(0))?;
        if unsigned(held) >= caps.per_peer {
            return Ok(refused(Registered::PeerLimit));
        }
        if rows >= caps.total {
            return Ok(refused(Registered::TotalLimit));
        }
    } else {
        conn.prepare_cached("DELETE FROM registrations WHERE namespace = ?1 AND peer = ?2")?
            .execute(params![namespace, peer_bytes])?;
    }
    conn.prepare_cached(
        "INSERT INTO registrations (namespace, peer, record, expires)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![namespace, peer_bytes, record, sql(expires)])?;
    Ok(RegisterRows {
        outcome: if existing.is_some() {
            Registered::Refreshed
        } else {
            Registered::New
        },
        swept,
        rows: if existing.is_some() { rows } else { rows + 1 },
        next_expiry: next_expiry.min(expires),
        position: u64::try_from(conn.last_insert_rowid()).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(per_peer: u64, total: u64) -> Caps {
        Caps { per_peer, total }
    }

    fn peer() -> PeerId {
        PeerId::random()
    }

    #[test]
    fn refresh_at_the_per_peer_cap_is_accepted_and_a_new_namespace_is_not() {
        let mut s = Store::in_memory().unwrap();
        let p = peer();
        for ns in ["a", "b"] {
            assert_eq!(
                s.register(&p, ns, b"r", 100, 0, caps(2, 10)).unwrap(),
                Registered::New
            );
        }
        assert_eq!(
            s.register(&p, "a", b"r2", 200, 0, caps(2, 10)).unwrap(),
            Registered::Refreshed
        );
        assert_eq!(
            s.register(&p, "c", b"r", 100, 0, caps(2, 10)).unwrap(),
            Registered::PeerLimit
        );
        assert_eq!(s.len(), 2);
    }

    /// A fresh database file in the system's temporary folder; removed
    /// with its WAL files when dropped.
    struct TempDb(PathBuf);

    impl TempDb {
        fn new(name: &str) -> TempDb {
            let path = std::env::temp_dir().join(format!(
                "multidriver-store-{name}-{}.db",
                std::process::id()
            ));
            let db = TempDb(path);
            db.clean();
            db
        }
        fn clean(&self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = self.0.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            self.clean();
        }
    }

    #[test]
    fn a_batch_sees_its_own_writes_and_keeps_them_only_once_committed() {
        let db = TempDb::new("batch");
        let (a, b, c) = (peer(), peer(), peer());
        {
            let mut s = Store::open(&db.0, Durability::ProcessCrash).unwrap();
            s.begin().unwrap();
            assert!(s.in_batch());
            s.register(&a, "ns", b"a", 100, 0, caps(1, 10)).unwrap();
            s.register(&b, "ns", b"b", 100, 0, caps(1, 10)).unwrap();
            // A refusal inside the batch takes none of the batch with it.
            assert_eq!(
                s.register(&a, "other", b"a", 100, 0, caps(1, 10)).unwrap(),
                Registered::PeerLimit
            );
            assert!(s.unregister(&b, "ns").unwrap());
            assert_eq!(s.len(), 1);
            let (page, _) = s.discover(Some("ns"), 0, 10, 0, |_| true).unwrap();
            assert_eq!(page.len(), 1);
            s.commit().unwrap();
            assert!(!s.in_batch());
            // A batch never committed is gone with the process.
            s.begin().unwrap();
            s.register(&c, "ns", b"c", 100, 0, caps(1, 10)).unwrap();
            assert_eq!(s.len(), 2);
        }
        let s = Store::open(&db.0, Durability::ProcessCrash).unwrap();
        assert_eq!(s.len(), 1);
        let (page, _) = s.discover(Some("ns"), 0, 10, 0, |_| true).unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].record, b"a");
    }

    /// When SQLite rolls a batch's transaction back by itself (an I/O
    /// error, a full disk), later writes of the batch are refused instead
    /// of committing one by one, and the commit reports the failure.
    #[test]
    fn a_batch_rolled_back_under_it_takes_no_more_writes() {
        let db = TempDb::new("rolled-back");
        let (a, b) = (peer(), peer());
        {
            let mut s = Store::open(&db.0, Durability::ProcessCrash).unwrap();
            s.begin().unwrap();
            s.register(&a, "ns", b"a", 100, 0, caps(1, 10)).unwrap();
            // What SQLite does on its own after such an error.
            s.conn.execute_batch("ROLLBACK").unwrap();
            let e = s
                .register(&b, "ns", b"b", 100, 0, caps(1, 10))
                .unwrap_err()
                .to_string();
            assert!(e.contains("an earlier write in this batch failed"), "{e}");
            assert!(s.unregister(&a, "ns").is_err());
            assert!(s.commit().is_err());
            assert_eq!(s.len(), 0);
        }
        let s = Store::open(&db.0, Durability::ProcessCrash).unwrap();
        assert_eq!(s.len(), 0, "nothing of the failed batch was kept");
    }

    #[test]
    fn the_total_limit_admits_exactly_max_total() {
        let mut s = Store::in_memory().unwrap();
        for _ in 0..3 {
            assert_eq!(
                s.register(&peer(), "ns", b"r", 100, 0, caps(5, 3)).unwrap(),
                Registered::New
            );
        }
        assert_eq!(
            s.register(&peer(), "ns", b"r", 100, 0, caps(5, 3)).unwrap(),
            Registered::TotalLimit
        );
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn expired_rows_free_their_slots_and_are_never_discovered() {
        let mut s = Store::in_memory().unwrap();
        let (a, b) = (peer(), peer());
        s.register(&a, "ns", b"a", 10, 0, caps(5, 1)).unwrap();
        assert_eq!(
            s.discover(Some("ns"), 0, 10, 9, |_| true).unwrap().0.len(),
            1
        );
        assert!(
            s.discover(Some("ns"), 0, 10, 10, |_| true)
                .unwrap()
                .0
                .is_empty()
        );
        // The slot is free at t = 10 even without a sweep.
        assert_eq!(
            s.register(&b, "ns", b"b", 30, 10, caps(5, 1)).unwrap(),
            Registered::New
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s.expired(), 1, "the expired row made room");
        assert_eq!(s.sweep(30).unwrap(), 1);
        assert!(s.is_empty());
        assert_eq!(s.expired(), 2);
    }

    #[test]
    fn refreshes_move_to_the_end_and_positions_only_grow() {
        let mut s = Store::in_memory().unwrap();
        let (a, b) = (peer(), peer());
        s.register(&a, "ns", b"a1", 100, 0, caps(5, 10)).unwrap();
        s.register(&b, "ns", b"b", 100, 0, caps(5, 10)).unwrap();
        s.register(&a, "ns", b"a2", 100, 0, caps(5, 10)).unwrap();
        let (all, complete) = s.discover(None, 0, 10, 0, |_| true).unwrap();
        assert!(complete);
        let records: Vec<_> = all.iter().map(|r| r.record.as_slice()).collect();
        assert_eq!(records, [b"b".as_slice(), b"a2"]);
        assert_eq!(s.last_position(), 3);
        assert!(s.unregister(&a, "ns").unwrap());
        assert!(!s.unregister(&a, "ns").unwrap());
        s.register(&a, "other", b"a3", 100, 0, caps(5, 10)).unwrap();
        assert_eq!(s.last_position(), 4);
        let (after, _) = s.discover(None, 2, 10, 0, |_| true).unwrap();
        // A page stops where `admit` refuses, and is then not complete.
        let (first, complete) = s.discover(None, 0, 10, 0, |r| r.record != b"a3").unwrap();
        assert_eq!((first.len(), complete), (1, false));
        let (limited, complete) = s.discover(None, 0, 1, 0, |_| true).unwrap();
        assert_eq!((limited.len(), complete), (1, false));
        assert_eq!(after.len(), 1);
        assert_eq!(after[0].namespace, "other");
    }
}
