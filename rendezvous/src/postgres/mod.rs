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
//! - Statements are prepared once per connection (deadpool's statement
//!   cache), so each later runs in one round trip.
//! - Namespaces are stored as `bytea`: a namespace is any UTF-8 string,
//!   NUL included, which `text` cannot hold.
//!
//! A point that cannot reach the database answers `E_UNAVAILABLE` (a
//! connection lost during a commit is answered so too: the client
//! retries, and a retried registration is a refresh). The pool reconnects
//! by itself when the database returns.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres::config::{Host, SslMode};

mod queries;

use queries::{run_batch, sweep};

use crate::Error;
use crate::backend::{AnswerBudget, Backend, Counts, Done, Health, Op, Pending};

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
    /// Taken by a batch with writes for its write phase, in the order the
    /// batches were made, so one point's writes happen in that order.
    writes: Arc<tokio::sync::Mutex<()>>,
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
    /// Whether that failure was the registry being out of reach (batches
    /// are then answered at once until a probe succeeds).
    unreachable: bool,
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
            // Class 08: connection exception; 53: insufficient resources
            // (disk full, out of memory, too many connections); 28: the
            // role cannot log in (a password rotated); 57P01-57P03: admin
            // shutdown, crash shutdown, cannot connect now; 57014: our
            // statement_timeout; 55P03: our lock_timeout; 40001, 40P01:
            // serialization failure, deadlock; 25006: read-only transaction
            // (a standby). The PostgreSQL manual, "PostgreSQL Error Codes".
            ["08", "53", "28"]
                .iter()
                .any(|class| code.starts_with(class))
                || matches!(
                    code,
                    "57P01" | "57P02" | "57P03" | "57014" | "55P03" | "40001" | "40P01" | "25006"
                )
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
        // Server-side bounds, so a point cut off in the middle of a
        // transaction cannot hold the registry's lock for long: its
        // statements, lock waits and idle transactions end within the
        // timeout (twice it for an idle transaction), and the server's own
        // keepalive notices a vanished point as ours notices a vanished
        // server.
        let ms = options.timeout.as_millis();
        let mut session = config.get_options().unwrap_or("").to_owned();
        session.push_str(&format!(
            " -c statement_timeout={ms} -c lock_timeout={ms} \
             -c idle_in_transaction_session_timeout={} \
             -c tcp_keepalives_idle={} -c tcp_keepalives_interval={} -c tcp_keepalives_count={}",
            ms * 2,
            KEEPALIVE_IDLE.as_secs(),
            KEEPALIVE_INTERVAL.as_secs(),
            KEEPALIVE_RETRIES
        ));
        config.options(session.trim());
        // A connection is checked (an empty query) before it is reused,
        // so one left blocked or broken by a timed-out batch is replaced.
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
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
            writes: Arc::new(tokio::sync::Mutex::new(())),
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
                    let what = match t {
                        deadpool_postgres::TimeoutType::Wait => "waiting for a free connection",
                        deadpool_postgres::TimeoutType::Create => "connecting",
                        deadpool_postgres::TimeoutType::Recycle => "checking a connection",
                    };
                    (format!("timed out {what} (after {:?})", self.timeout), true)
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
        self.note(&result.as_ref().map(|_| ()));
        result
    }

    /// Notes how the registry fared: any failure shows on `/health` until
    /// the next success.
    fn note(&self, result: &Result<(), &Error>) {
        let mut state = self.state();
        match result {
            Ok(()) => {
                state.down = None;
                state.unreachable = false;
                state.last_ok = Some(Instant::now());
            }
            Err(e) => {
                state.down = Some(e.to_string());
                state.unreachable = e.is_unavailable();
            }
        }
    }
}

impl Backend for PgStore {
    fn run(&mut self, ops: Vec<Op>, now: u64, answers: &Arc<AnswerBudget>) -> Pending<Vec<Done>> {
        let job = Job::new(self);
        let answers = Arc::clone(answers);
        // The writes of this point's batches go in the order `run` was
        // called: the batch queues for its turn on its first poll (the
        // caller polls it at once), and tokio's mutex is fair.
        let turn = ops
            .iter()
            .any(|op| !matches!(op, Op::Discover { .. }))
            .then(|| Arc::clone(&self.writes));
        Box::pin(async move {
            let started = Instant::now();
            let result = job
                .clone()
                .timed(run_batch(job.clone(), ops, now, turn, answers))
                .await;
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
        let job = Job::new(self);
        let state = job.state();
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
            writes: Arc::clone(&self.writes),
        };
        Some(Box::pin(async move { store.migrate().await }))
    }

    fn is_down(&self) -> bool {
        Job::new(self).state().unreachable
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
