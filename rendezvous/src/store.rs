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
//! (`synchronous=FULL`) also survives that, at one `fsync` per write
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
    /// Survives a power loss too; one `fsync` per write.
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
        Ok(Store {
            conn,
            path,
            rows,
            last_position,
            expired: 0,
        })
    }

    fn error(&self, e: &rusqlite::Error) -> Error {
        Error::Store {
            path: self
                .path
                .clone()
                .unwrap_or_else(|| PathBuf::from(":memory:")),
            message: e.to_string(),
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
        let Caps {
            per_peer: max_per_peer,
            total: max_total,
        } = caps;
        let peer_bytes = peer.to_bytes();
        let tx = self.conn.transaction().map_err(|e| Error::Store {
            path: self.path.clone().unwrap_or_default(),
            message: e.to_string(),
        })?;
        let result = (|| {
            let swept = tx
                .prepare_cached("DELETE FROM registrations WHERE expires <= ?1")?
                .execute(params![sql(now)])? as u64;
            let existing: Option<i64> = tx
                .prepare_cached(
                    "SELECT position FROM registrations WHERE namespace = ?1 AND peer = ?2",
                )?
                .query_row(params![namespace, peer_bytes], |r| r.get(0))
                .optional()?;
            let rows = self.rows - swept;
            if existing.is_none() {
                let held: i64 = tx
                    .prepare_cached("SELECT COUNT(*) FROM registrations WHERE peer = ?1")?
                    .query_row(params![peer_bytes], |r| r.get(0))?;
                if unsigned(held) >= max_per_peer {
                    return Ok((Registered::PeerLimit, swept, rows));
                }
                if rows >= max_total {
                    return Ok((Registered::TotalLimit, swept, rows));
                }
            } else {
                tx.prepare_cached("DELETE FROM registrations WHERE namespace = ?1 AND peer = ?2")?
                    .execute(params![namespace, peer_bytes])?;
            }
            tx.prepare_cached(
                "INSERT INTO registrations (namespace, peer, record, expires)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![namespace, peer_bytes, record, sql(expires)])?;
            let outcome = if existing.is_some() {
                Registered::Refreshed
            } else {
                Registered::New
            };
            let rows = if existing.is_some() { rows } else { rows + 1 };
            Ok::<_, rusqlite::Error>((outcome, swept, rows))
        })();
        match result {
            Ok((outcome, swept, rows)) => {
                let position = tx.last_insert_rowid();
                tx.commit().map_err(|e| self.error(&e))?;
                self.rows = rows;
                self.expired += swept;
                if matches!(outcome, Registered::New | Registered::Refreshed) {
                    self.last_position = u64::try_from(position).unwrap_or(self.last_position);
                }
                Ok(outcome)
            }
            Err(e) => Err(Error::Store {
                path: self.path.clone().unwrap_or_default(),
                message: e.to_string(),
            }),
        }
    }

    /// Drops `peer`'s registration in `namespace`; whether there was one.
    pub fn unregister(&mut self, peer: &PeerId, namespace: &str) -> Result<bool, Error> {
        let n = self
            .conn
            .execute(
                "DELETE FROM registrations WHERE namespace = ?1 AND peer = ?2",
                params![namespace, peer.to_bytes()],
            )
            .map_err(|e| self.error(&e))? as u64;
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
        Ok(n)
    }

    /// Expired registrations deleted since the store was opened, by
    /// [`Store::sweep`] or to make room for a registration.
    pub fn expired(&self) -> u64 {
        self.expired
    }
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
