//! Registrations in PostgreSQL, shared by a fleet of points.
//!
//! Several points on one database are one registry: a registration
//! confirmed by any of them is discoverable through every one, discover
//! cookies carry positions that mean the same at every point, and the
//! limits are counted in the database's transactions, not per process.
//!
//! How:
//! - One row (`multidriver_rendezvous_registry`) holds the registry's
//!   counts: registrations held, the last position given, the earliest
//!   expiry, and when it was last swept. Every writing transaction locks
//!   it first (`SELECT … FOR UPDATE`), so the writes of the fleet are
//!   serialised there and each batch counts against exact numbers. A batch
//!   is one transaction of a few statements whatever its size (the
//!   registrations of a batch are written with one `INSERT … SELECT FROM
//!   unnest(…)`), so the lock is held for a few round trips.
//! - Positions are given under that lock from the registry row, so they
//!   only grow and are committed in order; a discover reads its page and
//!   the last committed position in one statement (one snapshot), so a
//!   cookie never skips a registration committed later.
//! - Expired registrations are deleted inside the first writing
//!   transaction that finds one due (under the lock, once), and by the
//!   periodic sweep of whichever point finds the last sweep older than the
//!   interval.
//! - The schema is created and migrated at start, under an advisory lock,
//!   and a schema newer than this build is refused.
//! - Namespaces are stored as `bytea`: a namespace is any UTF-8 string,
//!   NUL included, which `text` cannot hold.
//!
//! A point that cannot reach the database answers `E_UNAVAILABLE` (a
//! connection lost during a commit is answered so too: the client
//! retries, and a retried registration is a refresh). The pool reconnects
//! by itself when the database returns.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, NoTls};

use crate::Error;
use crate::backend::{Backend, Counts, Done, ENTRY_OVERHEAD, Health, Op, Page, Pending};
use crate::store::{Registered, Stored};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i32 = 1;

/// The advisory lock key under which points create and migrate the schema
/// (any constant; ours spells "mdrv" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d64_7276;

/// TCP keepalive on database connections, so a database host that
/// vanished without closing them is noticed: first probe after 10 s idle,
/// then every 5 s, 3 unanswered ones close it (our choice; the kernel's
/// default waits 2 h).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

/// What the point needs to reach the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// `postgres://user[:password]@host[:port]/database[?sslmode=require]`.
    pub url: String,
    /// Most connections this point opens.
    pub pool_size: usize,
    /// How long a batch may wait for a connection, and take, before it is
    /// answered `E_UNAVAILABLE`.
    pub timeout: Duration,
    /// The CA certificates (PEM) the database's certificate is checked
    /// against with `sslmode=require`; `None` for the system's roots.
    pub ca: Option<PathBuf>,
}

/// The PostgreSQL store. Cheap to share: batches run on the pool's
/// connections, concurrently up to the pool's size.
pub struct PgStore {
    pool: Pool,
    shown: String,
    timeout: Duration,
    state: Arc<Mutex<State>>,
}

/// What the point last saw of the registry.
#[derive(Debug, Default)]
struct State {
    /// Registrations held, as of this point's last transaction.
    rows: u64,
    /// Expired registrations this point deleted.
    expired: u64,
    /// Why the last attempt failed; `None` after a success.
    down: Option<String>,
    /// When the registry last answered.
    last_ok: Option<Instant>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("registry", &self.shown)
            .finish_non_exhaustive()
    }
}

/// Whether `url` names a PostgreSQL registry rather than a file.
pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `url` without its password: `postgres://user@host:port/database`.
pub fn redacted(url: &str) -> String {
    match tokio_postgres::Config::from_str(url) {
        Ok(c) => shown(&c),
        Err(_) => "postgres://(unparsable)".to_owned(),
    }
}

fn shown(c: &tokio_postgres::Config) -> String {
    let host = c
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = c
        .get_ports()
        .first()
        .map_or(String::new(), |p| format!(":{p}"));
    format!(
        "postgres://{}@{host}{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

/// Checks a registry URL without connecting: the error says what is wrong.
pub fn check_url(url: &str) -> Result<(), String> {
    if !is_postgres_url(url) {
        return Err(format!(
            "`{}` is not a postgres:// URL",
            url.split('@').next_back().unwrap_or(url)
        ));
    }
    let c = tokio_postgres::Config::from_str(url).map_err(|e| e.to_string())?;
    if c.get_hosts().is_empty() {
        return Err("the URL names no host".to_owned());
    }
    if !matches!(
        c.get_ssl_mode(),
        SslMode::Disable | SslMode::Prefer | SslMode::Require
    ) {
        return Err("sslmode must be disable, prefer or require".to_owned());
    }
    Ok(())
}

fn sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn unsigned(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Whether a database error means "cannot be reached now" rather than
/// "refused the statement": no answer from the server, a connection
/// error, a server shutting down or starting, or out of connections.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Not the server's answer: the connection's I/O failed (or timed
        // out), or the client refused something (a bug, not an outage).
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
        Some(code) => {
            let code = code.code();
            // Class 08: connection exception; 57P01-57P03: admin shutdown,
            // crash shutdown, cannot connect now; 53300: too many
            // connections; 25006: read-only transaction (a standby). The
            // PostgreSQL manual, "PostgreSQL Error Codes".
            code.starts_with("08")
                || matches!(code, "57P01" | "57P02" | "57P03" | "53300" | "25006")
        }
    }
}

impl PgStore {
    /// A store on the registry at `options.url`. Connects nothing yet:
    /// [`Backend::start`] connects, creates or migrates the schema and
    /// refuses a newer one.
    pub fn new(options: &PgOptions) -> Result<PgStore, Error> {
        let fail = |message: String| Error::Registry {
            url: redacted(&options.url),
            message,
            unavailable: false,
        };
        check_url(&options.url).map_err(fail)?;
        let mut config =
            tokio_postgres::Config::from_str(&options.url).map_err(|e| fail(e.to_string()))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.timeout);
        }
        config
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
        if config.get_application_name().is_none() {
            config.application_name("multidriver-rendezvous");
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if config.get_ssl_mode() == SslMode::Require {
            let tls = tls(options.ca.as_deref()).map_err(fail)?;
            Manager::from_config(config.clone(), tls, manager_config)
        } else {
            // `prefer` without a verified connector would be TLS that
            // checks nothing: plain, and said so in the docs.
            config.ssl_mode(SslMode::Disable);
            Manager::from_config(config.clone(), NoTls, manager_config)
        };
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .wait_timeout(Some(options.timeout))
            .create_timeout(Some(options.timeout))
            .recycle_timeout(Some(options.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(PgStore {
            pool,
            shown: shown(&config),
            timeout: options.timeout,
            state: Arc::new(Mutex::new(State::default())),
        })
    }

    /// The registry's address, without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Connects, creates the schema if there is none, and refuses one
    /// newer than this build's. Points starting together take turns.
    pub async fn migrate(&self) -> Result<(), Error> {
        let job = Job::new(self);
        job.clone()
            .timed(async move {
                let mut client = job.client().await?;
                let tx = client.transaction().await.map_err(|e| job.pg(&e))?;
                let run = async {
                    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                        .await?;
                    tx.batch_execute(
                        "CREATE TABLE IF NOT EXISTS multidriver_rendezvous_schema (
                             only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
                             version integer NOT NULL
                         )",
                    )
                    .await?;
                    tx.query_opt("SELECT version FROM multidriver_rendezvous_schema", &[])
                        .await
                        .map(|r| r.map(|r| r.get::<_, i32>(0)))
                };
                let version = run.await.map_err(|e| job.pg(&e))?;
                match version {
                    Some(v) if v > SCHEMA_VERSION => {
                        return Err(Error::Registry {
                            url: job.shown.clone(),
                            message: format!(
                                "schema version {v} is newer than this build's \
                                 {SCHEMA_VERSION}; upgrade multidriver or use another database"
                            ),
                            unavailable: false,
                        });
                    }
                    Some(_) => {}
                    None => {
                        tx.batch_execute(SCHEMA_V1).await.map_err(|e| job.pg(&e))?;
                        tx.execute(
                            "INSERT INTO multidriver_rendezvous_schema (version) VALUES ($1)",
                            &[&SCHEMA_VERSION],
                        )
                        .await
                        .map_err(|e| job.pg(&e))?;
                    }
                }
                let rows: i64 = tx
                    .query_one("SELECT rows FROM multidriver_rendezvous_registry", &[])
                    .await
                    .map_err(|e| job.pg(&e))?
                    .get(0);
                tx.commit().await.map_err(|e| job.pg(&e))?;
                job.state().rows = unsigned(rows);
                Ok(())
            })
            .await
    }
}

/// Version 1 of the schema.
const SCHEMA_V1: &str = "
CREATE TABLE multidriver_rendezvous_registry (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    rows bigint NOT NULL,
    last_position bigint NOT NULL,
    next_expiry bigint NOT NULL,
    last_sweep bigint NOT NULL
);
INSERT INTO multidriver_rendezvous_registry (rows, last_position, next_expiry, last_sweep)
    VALUES (0, 0, 9223372036854775807, 0);
CREATE TABLE multidriver_rendezvous_registrations (
    position bigint PRIMARY KEY,
    namespace bytea NOT NULL,
    peer bytea NOT NULL,
    record bytea NOT NULL,
    expires bigint NOT NULL,
    UNIQUE (peer, namespace)
);
CREATE INDEX multidriver_rendezvous_by_namespace
    ON multidriver_rendezvous_registrations (namespace, position);
CREATE INDEX multidriver_rendezvous_by_expiry
    ON multidriver_rendezvous_registrations (expires);
";

/// The TLS connector: the CA file's certificates, or the system's roots.
fn tls(ca: Option<&Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("CA file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("CA file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("CA file {}: no certificate in it", path.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(
                    "sslmode=require, and the system has no root certificates: name a CA file"
                        .to_owned(),
                );
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// What one batch or sweep needs, owned, so its future outlives the call.
#[derive(Clone)]
struct Job {
    pool: Pool,
    shown: String,
    timeout: Duration,
    state: Arc<Mutex<State>>,
}

impl Job {
    fn new(store: &PgStore) -> Job {
        Job {
            pool: store.pool.clone(),
            shown: store.shown.clone(),
            timeout: store.timeout,
            state: Arc::clone(&store.state),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn pg(&self, e: &tokio_postgres::Error) -> Error {
        let message = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            // The client's own errors hide their cause (a refused
            // connection, a certificate) in their sources.
            None => {
                let mut message = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(cause) = source {
                    message.push_str(": ");
                    message.push_str(&cause.to_string());
                    source = cause.source();
                }
                message
            }
        };
        Error::Registry {
            url: self.shown.clone(),
            message,
            unavailable: unreachable(e),
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, Error> {
        self.pool.get().await.map_err(|e| {
            let (message, unavailable) = match &e {
                PoolError::Backend(pg) => return self.pg(pg),
                PoolError::Timeout(t) => {
                    (format!("no connection within the timeout ({t:?})"), true)
                }
                other => (other.to_string(), true),
            };
            Error::Registry {
                url: self.shown.clone(),
                message,
                unavailable,
            }
        })
    }

    /// Runs `work` within the timeout, and notes how the registry fared.
    async fn timed<T>(self, work: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
        let result = match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(Error::Registry {
                url: self.shown.clone(),
                message: format!("no answer within {:?}", self.timeout),
                unavailable: true,
            }),
        };
        let mut state = self.state();
        match &result {
            Ok(_) => {
                state.down = None;
                state.last_ok = Some(Instant::now());
            }
            Err(e) if e.is_unavailable() => state.down = Some(e.to_string()),
            Err(_) => {}
        }
        result
    }
}

impl Backend for PgStore {
    fn run(&mut self, ops: Vec<Op>, now: u64) -> Pending<Vec<Done>> {
        let job = Job::new(self);
        Box::pin(async move {
            let started = Instant::now();
            let result = job.clone().timed(run_batch(job.clone(), ops, now)).await;
            metrics::histogram!("multidriver_rendezvous_store_seconds", "op" => "batch")
                .record(started.elapsed().as_secs_f64());
            result
        })
    }

    fn sweep(&mut self, now: u64, interval_secs: u64) -> Pending<Option<u64>> {
        let job = Job::new(self);
        Box::pin(async move {
            let started = Instant::now();
            let result = job
                .clone()
                .timed(sweep(job.clone(), now, interval_secs))
                .await;
            metrics::histogram!("multidriver_rendezvous_store_seconds", "op" => "sweep")
                .record(started.elapsed().as_secs_f64());
            result
        })
    }

    fn counts(&self) -> Counts {
        let state = Job::new(self);
        let state = state.state();
        Counts {
            rows: state.rows,
            expired: state.expired,
        }
    }

    fn concurrency(&self) -> usize {
        self.pool.status().max_size
    }

    fn health(&self) -> Health {
        let job = Job::new(self);
        Arc::new(move || {
            let state = job.state();
            match (&state.down, state.last_ok) {
                (Some(why), _) => Err(format!("postgres {}: unavailable: {why}", job.shown)),
                (None, Some(at)) => Ok(format!(
                    "postgres {}: ok, answered {} ms ago",
                    job.shown,
                    at.elapsed().as_millis()
                )),
                (None, None) => Err(format!("postgres {}: not reached yet", job.shown)),
            }
        })
    }

    fn start(&mut self) -> Option<Pending<()>> {
        let store = PgStore {
            pool: self.pool.clone(),
            shown: self.shown.clone(),
            timeout: self.timeout,
            state: Arc::clone(&self.state),
        };
        Some(Box::pin(async move { store.migrate().await }))
    }

    fn probe(&mut self) -> Option<Pending<()>> {
        let job = Job::new(self);
        Some(Box::pin(async move {
            let started = Instant::now();
            let result = job
                .clone()
                .timed(async {
                    let client = job.client().await?;
                    client
                        .simple_query("SELECT 1")
                        .await
                        .map_err(|e| job.pg(&e))?;
                    Ok(())
                })
                .await;
            metrics::histogram!("multidriver_rendezvous_store_seconds", "op" => "probe")
                .record(started.elapsed().as_secs_f64());
            result
        }))
    }

    fn record_metrics(&self) {
        let status = self.pool.status();
        metrics::gauge!("multidriver_rendezvous_store_pool_connections", "state" => "idle")
            .set(status.available as f64);
        metrics::gauge!("multidriver_rendezvous_store_pool_connections", "state" => "busy")
            .set(status.size.saturating_sub(status.available) as f64);
        metrics::gauge!("multidriver_rendezvous_store_pool_max").set(status.max_size as f64);
        metrics::gauge!("multidriver_rendezvous_store_pool_waiting").set(status.waiting as f64);
        let up = Job::new(self).state().down.is_none();
        metrics::gauge!("multidriver_rendezvous_store_up").set(if up { 1.0 } else { 0.0 });
    }
}

/// One batch: its writes in one transaction under the registry's lock,
/// then its discovers, each one statement.
async fn run_batch(job: Job, ops: Vec<Op>, now: u64) -> Result<Vec<Done>, Error> {
    let mut client = job.client().await?;
    let mut done: Vec<Option<Done>> = vec![None; ops.len()];
    let writes: Vec<(usize, &Op)> = ops
        .iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, Op::Discover { .. }))
        .collect();
    if !writes.is_empty() {
        for (i, d) in write(&job, &mut client, &writes, now).await? {
            done[i] = Some(d);
        }
    }
    let discovers = ops.iter().enumerate().filter_map(|(i, op)| match op {
        Op::Discover {
            namespace,
            after,
            limit,
            budget,
        } => Some((i, namespace.as_deref(), *after, *limit, *budget)),
        _ => None,
    });
    // Sent together: the connection pipelines them.
    let pages = futures::future::join_all(discovers.map(|(i, ns, after, limit, budget)| {
        let client = &client;
        let job = &job;
        async move {
            discover(client, ns, after, limit, budget, now)
                .await
                .map(|page| (i, page))
                .map_err(|e| job.pg(&e))
        }
    }))
    .await;
    for page in pages {
        let (i, page) = page?;
        done[i] = Some(Done::Discover(page));
    }
    done.into_iter()
        .map(|d| d.ok_or_else(Error::missing_answer))
        .collect()
}

/// A registration's final state after the batch: its row, or gone.
type Final = Option<(i64, Vec<u8>, i64)>;

/// The batch's writes, in order, in one transaction.
async fn write(
    job: &Job,
    client: &mut Client,
    writes: &[(usize, &Op)],
    now: u64,
) -> Result<Vec<(usize, Done)>, Error> {
    let tx = client.transaction().await.map_err(|e| job.pg(&e))?;
    let now_sql = sql(now);
    let work = async {
        let row = tx
            .query_one(
                "SELECT rows, last_position, next_expiry FROM multidriver_rendezvous_registry
                 FOR UPDATE",
                &[],
            )
            .await?;
        let mut rows = unsigned(row.get(0));
        let mut last = unsigned(row.get(1));
        let mut next_expiry = unsigned(row.get(2));
        let mut swept = 0;
        if next_expiry <= now {
            swept = tx
                .execute(
                    "DELETE FROM multidriver_rendezvous_registrations WHERE expires <= $1",
                    &[&now_sql],
                )
                .await?;
            rows = rows.saturating_sub(swept);
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
                "SELECT peer, namespace FROM multidriver_rendezvous_registrations
                 WHERE peer = ANY($1)",
                &[&peers],
            )
            .await?;
        let mut held: HashSet<(Vec<u8>, Vec<u8>)> = HashSet::new();
        let mut per_peer: HashMap<Vec<u8>, u64> = HashMap::new();
        for r in held_rows {
            let peer: Vec<u8> = r.get(0);
            *per_peer.entry(peer.clone()).or_default() += 1;
            held.insert((peer, r.get(1)));
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
                    let outcome = if held.contains(&key) {
                        Registered::Refreshed
                    } else if per_peer.get(&key.0).copied().unwrap_or(0) >= caps.per_peer {
                        Registered::PeerLimit
                    } else if rows >= caps.total {
                        Registered::TotalLimit
                    } else {
                        rows += 1;
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
                        finals.insert(key, None);
                    }
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
                "DELETE FROM multidriver_rendezvous_registrations
                 WHERE (peer, namespace) IN (SELECT * FROM unnest($1::bytea[], $2::bytea[]))",
                &[&gone_peer, &gone_ns],
            )
            .await?;
        }
        if !positions.is_empty() {
            tx.execute(
                "INSERT INTO multidriver_rendezvous_registrations
                     (position, namespace, peer, record, expires)
                 SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bytea[], $4::bytea[],
                                      $5::bigint[])
                 ON CONFLICT (peer, namespace) DO UPDATE SET position = EXCLUDED.position,
                     record = EXCLUDED.record, expires = EXCLUDED.expires",
                &[&positions, &namespaces, &owners, &records, &expiries],
            )
            .await?;
        }
        tx.execute(
            "UPDATE multidriver_rendezvous_registry
             SET rows = $1, last_position = $2, next_expiry = $3",
            &[&sql(rows), &sql(last), &sql(next_expiry)],
        )
        .await?;
        Ok::<_, tokio_postgres::Error>((done, rows, swept))
    };
    let (done, rows, swept) = work.await.map_err(|e| job.pg(&e))?;
    tx.commit().await.map_err(|e| job.pg(&e))?;
    let mut state = job.state();
    state.rows = rows;
    state.expired += swept;
    Ok(done)
}

/// The earliest expiry held (`u64::MAX` for none).
async fn earliest(tx: &tokio_postgres::Transaction<'_>) -> Result<u64, tokio_postgres::Error> {
    let min: Option<i64> = tx
        .query_one(
            "SELECT MIN(expires) FROM multidriver_rendezvous_registrations",
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
    client: &Client,
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
                    &select("namespace = $6 AND"),
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
                    &select(""),
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
    })
}

/// The periodic sweep: only when no point swept within `interval_secs`.
async fn sweep(job: Job, now: u64, interval_secs: u64) -> Result<Option<u64>, Error> {
    let mut client = job.client().await?;
    let tx = client.transaction().await.map_err(|e| job.pg(&e))?;
    let work = async {
        let row = tx
            .query_one(
                "SELECT rows, last_sweep FROM multidriver_rendezvous_registry FOR UPDATE",
                &[],
            )
            .await?;
        let rows = unsigned(row.get(0));
        let last_sweep = unsigned(row.get(1));
        if last_sweep.saturating_add(interval_secs) > now {
            return Ok((None, rows));
        }
        let n = tx
            .execute(
                "DELETE FROM multidriver_rendezvous_registrations WHERE expires <= $1",
                &[&sql(now)],
            )
            .await?;
        let next_expiry = earliest(&tx).await?;
        let rows = rows.saturating_sub(n);
        tx.execute(
            "UPDATE multidriver_rendezvous_registry
             SET rows = $1, next_expiry = $2, last_sweep = $3",
            &[&sql(rows), &sql(next_expiry), &sql(now)],
        )
        .await?;
        Ok::<_, tokio_postgres::Error>((Some(n), rows))
    };
    let (n, rows) = work.await.map_err(|e| job.pg(&e))?;
    tx.commit().await.map_err(|e| job.pg(&e))?;
    let mut state = job.state();
    state.rows = rows;
    state.expired += n.unwrap_or(0);
    Ok(n)
}
