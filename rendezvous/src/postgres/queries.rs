//! The statements of a batch, a discover and a sweep, on one pooled
//! connection: what [`PgStore`](super::PgStore)'s [`Backend`] methods run.
//!
//! [`Backend`]: crate::backend::Backend

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::ClientWrapper;
use futures::StreamExt;
use tokio_postgres::IsolationLevel;

use super::{Job, SCHEMA_VERSION, sql, unsigned};
use crate::Error;
use crate::backend::{AnswerBudget, Done, ENTRY_OVERHEAD, Op, Page, release_pages};
use crate::store::{Registered, Stored};

/// One batch: its writes in one transaction under the registry's lock
/// (after the point's earlier batches' writes), then its discovers, each
/// one statement, a few at a time.
pub(super) async fn run_batch(
    job: Job,
    ops: Vec<Op>,
    now: u64,
    turn: Option<Arc<tokio::sync::Mutex<()>>>,
    answers: Arc<AnswerBudget>,
) -> Result<Vec<Done>, Error> {
    let my_turn = match turn {
        Some(turn) => Some(turn.lock_owned().await),
        None => None,
    };
    let mut client = job.client().await?;
    let mut done: Vec<Option<Done>> = vec![None; ops.len()];
    let writes: Vec<(usize, &Op)> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Discover { .. }))
        .collect();
    if !writes.is_empty() {
        let written = write(&job, &mut client, &writes, now).await;
        if written.is_err() {
            // A connection that failed mid-transaction is not reused.
            let _ = deadpool_postgres::Object::take(client);
            return written.map(|_| Vec::new());
        }
        for (i, d) in written? {
            done[i] = Some(d);
        }
    }
    drop(my_turn);
    let discovers: Vec<_> = ops
        .iter()
        .enumerate()
        .filter_map(|(i, op)| match op {
            Op::Discover {
                namespace,
                after,
                limit,
                budget,
            } => Some((i, namespace.as_deref(), *after, *limit, *budget)),
            _ => None,
        })
        .collect();
    // A few at a time on the connection (pipelined), each page charged as
    // it arrives: at most DISCOVERS_AT_ONCE pages beyond the budget exist.
    let client = &client;
    let mut waiting = discovers.into_iter();
    let mut pages = futures::stream::FuturesOrdered::new();
    loop {
        while pages.len() < DISCOVERS_AT_ONCE {
            let Some((i, ns, after, limit, budget)) = waiting.next() else {
                break;
            };
            pages.push_back(indexed(i, discover(client, ns, after, limit, budget, now)));
        }
        let Some((i, page)) = pages.next().await else {
            break;
        };
        done[i] = Some(match page {
            Ok(mut page) => match answers.charge_page(&page.rows) {
                Some(charged) => {
                    page.charged = charged;
                    Done::Discover(page)
                }
                None => Done::Busy,
            },
            // The writes stand; this discover alone failed.
            Err(e) => {
                let e = job.pg(&e);
                job.note(&Err(&e));
                Done::Failed {
                    unavailable: e.is_unavailable(),
                    message: e.to_string(),
                }
            }
        });
    }
    let done: Vec<Done> = done.into_iter().flatten().collect();
    if done.len() != ops.len() {
        release_pages(&done, &answers);
        return Err(Error::missing_answer());
    }
    Ok(done)
}

/// `work`'s outcome with the op's index.
async fn indexed<T>(i: usize, work: impl Future<Output = T>) -> (usize, T) {
    (i, work.await)
}

/// Discovers of one batch sent at once on its connection (our choice:
/// enough to keep the connection busy, few enough that the pages being
/// read beyond the answer budget stay a handful of MiB per batch).
const DISCOVERS_AT_ONCE: usize = 4;

/// Expired registrations one writing transaction deletes at most, under
/// the registry's lock (our choice: a few milliseconds of work; the rest
/// go in later transactions and the periodic sweep, and are never served
/// or counted meanwhile).
const WRITE_SWEEP_CHUNK: i64 = 1_000;

/// Expired registrations one sweep transaction deletes at most, and
/// transactions one sweep runs at most (our choice: 100 000 per sweep,
/// each transaction well inside the store timeout).
const SWEEP_CHUNK: i64 = 10_000;
const SWEEP_CHUNKS: usize = 10;

/// A registration's final state after the batch: its row, or gone.
type Final = Option<(i64, Vec<u8>, i64)>;

/// The registry's lock taken, with the counts under it; a newer schema
/// (a point of a newer build migrated it while this one ran) is refused.
async fn lock_registry(
    tx: &deadpool_postgres::Transaction<'_>,
    shown: &str,
) -> Result<Result<tokio_postgres::Row, Error>, tokio_postgres::Error> {
    let row = tx
        .query_one(
            &tx.prepare_cached(
                "SELECT r.rows, r.last_position, r.next_expiry, r.last_sweep, s.version
                 FROM multidriver_rendezvous_registry r, multidriver_rendezvous_schema s
                 FOR UPDATE OF r",
            )
            .await?,
            &[],
        )
        .await?;
    let version: i32 = row.get(4);
    if version > SCHEMA_VERSION {
        return Ok(Err(Error::Registry {
            url: shown.to_owned(),
            message: format!(
                "schema version {version} is newer than this build's {SCHEMA_VERSION} \
                 (a newer point migrated it); upgrade this point"
            ),
            unavailable: false,
        }));
    }
    Ok(Ok(row))
}

/// Deletes up to `chunk` expired registrations; how many.
async fn delete_expired(
    tx: &deadpool_postgres::Transaction<'_>,
    now: i64,
    chunk: i64,
) -> Result<u64, tokio_postgres::Error> {
    tx.execute(
        &tx.prepare_cached(
            "DELETE FROM multidriver_rendezvous_registrations WHERE position IN (
                 SELECT position FROM multidriver_rendezvous_registrations
                 WHERE expires <= $1 LIMIT $2)",
        )
        .await?,
        &[&now, &chunk],
    )
    .await
}

/// The batch's writes, in order, in one transaction.
async fn write(
    job: &Job,
    client: &mut ClientWrapper,
    writes: &[(usize, &Op)],
    now: u64,
) -> Result<Vec<(usize, Done)>, Error> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(|e| job.pg(&e))?;
    let now_sql = sql(now);
    let work = async {
        let row = match lock_registry(&tx, &job.shown).await? {
            Ok(row) => row,
            Err(newer) => return Ok(Err(newer)),
        };
        // `rows` counts every stored row; `stale` the expired ones still
        // stored, which hold no slot.
        let mut rows = unsigned(row.get(0));
        let mut last = unsigned(row.get(1));
        let mut next_expiry = unsigned(row.get(2));
        let mut swept = 0;
        let mut stale_count = 0;
        if next_expiry <= now {
            swept = delete_expired(&tx, now_sql, WRITE_SWEEP_CHUNK).await?;
            rows = rows.saturating_sub(swept);
            if swept == WRITE_SWEEP_CHUNK as u64 {
                let left: i64 = tx
                    .query_one(
                        &tx.prepare_cached(
                            "SELECT count(*) FROM multidriver_rendezvous_registrations
                             WHERE expires <= $1",
                        )
                        .await?,
                        &[&now_sql],
                    )
                    .await?
                    .get(0);
                stale_count = unsigned(left);
            }
            next_expiry = earliest(&tx).await?;
        }
        // What the batch's peers hold now.
        let peers: Vec<Vec<u8>> = writes
            .iter()
            .map(|(_, op)| match op {
                Op::Register { peer, .. } | Op::Unregister { peer, .. } => peer.to_bytes(),
                Op::Discover { .. } => Vec::new(),
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let held_rows = tx
            .query(
                &tx.prepare_cached(
                    "SELECT peer, namespace, expires > $2 FROM multidriver_rendezvous_registrations
                     WHERE peer = ANY($1)",
                )
                .await?,
                &[&peers, &now_sql],
            )
            .await?;
        let mut held: HashSet<(Vec<u8>, Vec<u8>)> = HashSet::new();
        let mut stale: HashSet<(Vec<u8>, Vec<u8>)> = HashSet::new();
        let mut per_peer: HashMap<Vec<u8>, u64> = HashMap::new();
        for r in held_rows {
            let key: (Vec<u8>, Vec<u8>) = (r.get(0), r.get(1));
            if r.get::<_, bool>(2) {
                *per_peer.entry(key.0.clone()).or_default() += 1;
                held.insert(key);
            } else {
                stale.insert(key);
            }
        }
        let mut finals: HashMap<(Vec<u8>, Vec<u8>), Final> = HashMap::new();
        let mut done = Vec::with_capacity(writes.len());
        for (i, op) in writes {
            match op {
                Op::Register {
                    peer,
                    namespace,
                    record,
                    expires,
                    caps,
                } => {
                    let key = (peer.to_bytes(), namespace.as_bytes().to_vec());
                    let live = rows.saturating_sub(stale_count);
                    let outcome = if held.contains(&key) {
                        Registered::Refreshed
                    } else if per_peer.get(&key.0).copied().unwrap_or(0) >= caps.per_peer {
                        Registered::PeerLimit
                    } else if live >= caps.total {
                        Registered::TotalLimit
                    } else {
                        if stale.remove(&key) {
                            // Its expired row is replaced: stored rows
                            // stay, one more is live.
                            stale_count = stale_count.saturating_sub(1);
                        } else {
                            rows += 1;
                        }
                        *per_peer.entry(key.0.clone()).or_default() += 1;
                        held.insert(key.clone());
                        Registered::New
                    };
                    if matches!(outcome, Registered::New | Registered::Refreshed) {
                        last += 1;
                        next_expiry = next_expiry.min(*expires);
                        finals.insert(key, Some((sql(last), record.clone(), sql(*expires))));
                    }
                    done.push((*i, Done::Register(outcome)));
                }
                Op::Unregister { peer, namespace } => {
                    let key = (peer.to_bytes(), namespace.as_bytes().to_vec());
                    let dropped = held.remove(&key);
                    if dropped {
                        rows = rows.saturating_sub(1);
                        if let Some(n) = per_peer.get_mut(&key.0) {
                            *n = n.saturating_sub(1);
                        }
                    } else if stale.remove(&key) {
                        // Its expired row goes with it.
                        rows = rows.saturating_sub(1);
                        stale_count = stale_count.saturating_sub(1);
                    }
                    // Deleting a row that is not there is nothing.
                    finals.insert(key, None);
                    done.push((*i, Done::Unregister(dropped)));
                }
                Op::Discover { .. } => {}
            }
        }
        let (mut gone_peer, mut gone_ns) = (Vec::new(), Vec::new());
        let (mut positions, mut namespaces, mut owners, mut records, mut expiries) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for ((peer, ns), end) in finals {
            match end {
                None => {
                    gone_peer.push(peer);
                    gone_ns.push(ns);
                }
                Some((position, record, expires)) => {
                    positions.push(position);
                    namespaces.push(ns);
                    owners.push(peer);
                    records.push(record);
                    expiries.push(expires);
                }
            }
        }
        if !gone_peer.is_empty() {
            tx.execute(
                &tx.prepare_cached(
                    "DELETE FROM multidriver_rendezvous_registrations
                     WHERE (peer, namespace) IN (SELECT * FROM unnest($1::bytea[], $2::bytea[]))",
                )
                .await?,
                &[&gone_peer, &gone_ns],
            )
            .await?;
        }
        if !positions.is_empty() {
            tx.execute(
                &tx.prepare_cached(
                    "INSERT INTO multidriver_rendezvous_registrations
                         (position, namespace, peer, record, expires)
                     SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[],
                                          $5::bigint[])
                     ON CONFLICT (peer, namespace) DO UPDATE SET position = EXCLUDED.position,
                         record = EXCLUDED.record, expires = EXCLUDED.expires",
                )
                .await?,
                &[&positions, &namespaces, &owners, &records, &expiries],
            )
            .await?;
        }
        tx.execute(
            &tx.prepare_cached(
                "UPDATE multidriver_rendezvous_registry
                 SET rows = $1, last_position = $2, next_expiry = $3",
            )
            .await?,
            &[&sql(rows), &sql(last), &sql(next_expiry)],
        )
        .await?;
        Ok::<_, tokio_postgres::Error>(Ok((done, rows, swept)))
    };
    let (done, rows, swept) = match work.await.map_err(|e| job.pg(&e))? {
        Ok(done) => done,
        Err(newer) => return Err(newer),
    };
    tx.commit().await.map_err(|e| job.pg(&e))?;
    let mut state = job.state();
    state.rows = rows;
    state.expired += swept;
    Ok(done)
}

/// The earliest expiry held (`u64::MAX` for none).
async fn earliest(tx: &deadpool_postgres::Transaction<'_>) -> Result<u64, tokio_postgres::Error> {
    let min: Option<i64> = tx
        .query_one(
            &tx.prepare_cached("SELECT MIN(expires) FROM multidriver_rendezvous_registrations")
                .await?,
            &[],
        )
        .await?
        .get(0);
    Ok(min.map_or(u64::MAX, unsigned))
}

/// One discover page and the last committed position, in one statement
/// (one snapshot). Rows are summed as they are read and the page stops at
/// the first that does not fit the budget.
async fn discover(
    client: &ClientWrapper,
    namespace: Option<&str>,
    after: u64,
    limit: u64,
    budget: usize,
    now: u64,
) -> Result<Page, tokio_postgres::Error> {
    let limit_sql = sql(limit);
    let budget_sql = sql(budget as u64);
    let overhead = sql(ENTRY_OVERHEAD as u64);
    let (after, now) = (sql(after), sql(now));
    let select = |filter: &str| {
        format!(
            "WITH c AS (
                 SELECT position, namespace, record, expires,
                        sum($1::bigint + octet_length(namespace) + octet_length(record))
                            OVER (ORDER BY position ROWS UNBOUNDED PRECEDING) AS spent
                 FROM multidriver_rendezvous_registrations
                 WHERE {filter} position > $2 AND expires > $3
                 ORDER BY position LIMIT $4)
             SELECT g.last_position, (SELECT count(*) FROM c),
                    c.position, c.namespace, c.record, c.expires
             FROM multidriver_rendezvous_registry g
             LEFT JOIN c ON c.spent <= $5::bigint
             ORDER BY c.position"
        )
    };
    let found = match namespace {
        Some(ns) => {
            client
                .query(
                    &client.prepare_cached(&select("namespace = $6 AND")).await?,
                    &[
                        &overhead,
                        &after,
                        &now,
                        &limit_sql,
                        &budget_sql,
                        &ns.as_bytes(),
                    ],
                )
                .await?
        }
        None => {
            client
                .query(
                    &client.prepare_cached(&select("")).await?,
                    &[&overhead, &after, &now, &limit_sql, &budget_sql],
                )
                .await?
        }
    };
    let mut last_position = 0;
    let mut candidates = 0;
    let mut rows = Vec::with_capacity(found.len());
    for r in found {
        last_position = unsigned(r.get(0));
        candidates = unsigned(r.get(1));
        if let Some(position) = r.get::<_, Option<i64>>(2) {
            let namespace: Vec<u8> = r.get(3);
            rows.push(Stored {
                position: unsigned(position),
                namespace: String::from_utf8(namespace).unwrap_or_default(),
                record: r.get(4),
                expires: unsigned(r.get(5)),
            });
        }
    }
    let complete = candidates < limit && rows.len() as u64 == candidates;
    Ok(Page {
        rows,
        complete,
        last_position,
        charged: 0,
    })
}

/// The periodic sweep: only when no point swept within `interval_secs`,
/// in transactions of at most `SWEEP_CHUNK` rows, `SWEEP_CHUNKS` of them.
pub(super) async fn sweep(job: Job, now: u64, interval_secs: u64) -> Result<Option<u64>, Error> {
    let mut client = job.client().await?;
    let mut total = 0;
    for chunk in 0..SWEEP_CHUNKS {
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::ReadCommitted)
            .start()
            .await
            .map_err(|e| job.pg(&e))?;
        let work = async {
            let row = match lock_registry(&tx, &job.shown).await? {
                Ok(row) => row,
                Err(newer) => return Ok(Err(newer)),
            };
            let rows = unsigned(row.get(0));
            let last_sweep = unsigned(row.get(3));
            if chunk == 0 && last_sweep.saturating_add(interval_secs) > now {
                return Ok(Ok(None));
            }
            let n = delete_expired(&tx, sql(now), SWEEP_CHUNK).await?;
            let next_expiry = earliest(&tx).await?;
            let rows = rows.saturating_sub(n);
            tx.execute(
                &tx.prepare_cached(
                    "UPDATE multidriver_rendezvous_registry
                     SET rows = $1, next_expiry = $2, last_sweep = $3",
                )
                .await?,
                &[&sql(rows), &sql(next_expiry), &sql(now)],
            )
            .await?;
            Ok::<_, tokio_postgres::Error>(Ok(Some((n, rows))))
        };
        let swept = work.await.map_err(|e| job.pg(&e))??;
        tx.commit().await.map_err(|e| job.pg(&e))?;
        let Some((n, rows)) = swept else {
            return Ok(None);
        };
        total += n;
        let mut state = job.state();
        state.rows = rows;
        state.expired += n;
        if n < SWEEP_CHUNK as u64 {
            break;
        }
    }
    Ok(Some(total))
}
