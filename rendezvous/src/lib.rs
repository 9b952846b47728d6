//! A libp2p rendezvous point for operators.
//!
//! It speaks the libp2p rendezvous protocol (`/rendezvous/1.0.0`) with
//! signed peer records, and stock rust-libp2p rendezvous clients register
//! and discover against it unchanged. Beside the stock server it:
//!
//! - **keeps registrations on disk** (SQLite, WAL): a restart, even after
//!   `kill -9`, loses none; expired ones are swept;
//! - **runs as a fleet** on one PostgreSQL database ([`Config::store`],
//!   [`PgStore`]): several points are one registry, with limits exact
//!   across them, cookies valid at each, and `E_UNAVAILABLE` while the
//!   database is out of reach. Both stores sit behind [`Backend`];
//! - **enforces every limit exactly** ([`Limits`]): TTL bounds, per-peer and
//!   total registrations, namespace length, record size, discover page
//!   size. Refreshing a registration a peer already holds is accepted at the
//!   per-peer cap, and the total cap admits exactly `max_registrations`
//!   (the stock server refuses the first and admits one more than the
//!   second);
//! - **answers malformed requests with the protocol's error**, and drops
//!   streams it cannot parse without harm to others;
//! - **serves `/metrics`** in Prometheus format: its own metrics and
//!   libp2p's side by side;
//! - **relays** for peers behind NAT when [`RelayLimits::enabled`]: circuit
//!   relay v2 with exact reservation and circuit limits, and metrics of its
//!   own (`multidriver_rendezvous_relay_*`).
//!
//! Operators run it as `multidriver rendezvous run`; apps can embed it:
//!
//! ```no_run
//! use multidriver_rendezvous::{Config, Server, ServerEvent, keys};
//!
//! # async fn run() -> Result<(), multidriver_rendezvous::Error> {
//! let config = Config {
//!     db: "rendezvous.db".into(),
//!     listen: vec!["/ip4/127.0.0.1/tcp/4001".parse().unwrap()],
//!     ..Config::default()
//! };
//! let key = keys::read_or_generate("rendezvous.key".as_ref())?;
//! let server = Server::new(config, key, None)?;
//! server
//!     .run(
//!         async { tokio::signal::ctrl_c().await.ok(); },
//!         |event| {
//!             if let ServerEvent::Listening(addr) = event {
//!                 println!("listening on {addr}");
//!             }
//!         },
//!     )
//!     .await
//! # }
//! ```
//!
//! A point of a fleet differs only in its store:
//!
//! ```no_run
//! # use multidriver_rendezvous::Config;
//! let config = Config {
//!     store: Some("postgres://rendezvous@db.internal/rendezvous?sslmode=require".into()),
//!     store_ca: Some("db-ca.pem".into()),
//!     ..Config::default()
//! };
//! ```
//!
//! ## Metrics
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `multidriver_rendezvous_registrations` | gauge | |
//! | `multidriver_rendezvous_requests_total` | counter | `kind` (register, unregister, discover, invalid), `status` (ok or the protocol error) |
//! | `multidriver_rendezvous_request_duration_seconds` | histogram | `kind` |
//! | `multidriver_rendezvous_discovered_total` | counter | registrations returned |
//! | `multidriver_rendezvous_expired_total` | counter | |
//! | `multidriver_rendezvous_sweeps_total` | counter | `by` (`this_point`, or `another_point` when a point of the fleet had just swept) |
//! | `multidriver_rendezvous_store_up` | gauge | (PostgreSQL) 1 when the registry answered last, 0 when it did not |
//! | `multidriver_rendezvous_store_pool_connections` | gauge | (PostgreSQL) `state` (idle, busy) |
//! | `multidriver_rendezvous_store_pool_max`, `…_store_pool_waiting` | gauge | (PostgreSQL) the pool's size, batches waiting for a connection |
//! | `multidriver_rendezvous_store_seconds` | histogram | (PostgreSQL) `op` (batch, sweep, probe) |
//! | `multidriver_rendezvous_inbound_failures_total` | counter | `reason` (malformed, timeout, …) |
//! | `multidriver_rendezvous_connections` | gauge | |
//! | `multidriver_rendezvous_relay_reservations`, `…_relay_circuits` | gauge | (with `--relay`) |
//! | `multidriver_rendezvous_relay_reservation_requests_total`, `…_relay_circuit_requests_total` | counter | `status` (`accepted`, `renewed`, or the denial) |
//! | `multidriver_rendezvous_relay_reservations_ended_total`, `…_relay_circuits_closed_total` | counter | `reason` |
//! | `libp2p_*` | | libp2p-metrics: connections, bandwidth, identify, ping, relay |

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use libp2p::Multiaddr;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

pub mod backend;
pub mod config;
pub mod files;
pub mod http;
pub mod ip_limit;
pub mod keys;
pub mod postgres;
pub mod protocol;
mod relay;
pub mod server;
pub mod service;
pub mod store;

pub use backend::Backend;
pub use config::{Config, Limits, RelayLimits};
pub use postgres::PgStore;
pub use server::{Server, ServerEvent};
pub use service::{Outcome, Service};
pub use store::{Durability, Store};

/// Everything the rendezvous point can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database could not be opened or used.
    #[error("database {path}: {message}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        message: String,
    },
    /// The shared registry (PostgreSQL) could not be reached or used.
    #[error("registry{}{url}: {message}", if url.is_empty() { "" } else { " " })]
    Registry {
        /// The registry's address, without its password.
        url: String,
        /// What went wrong.
        message: String,
        /// Whether it could not be reached (the connection, a timeout, a
        /// server shutting down): requests are answered `E_UNAVAILABLE`
        /// then, and the point goes on trying.
        unavailable: bool,
    },
    /// A key file holds no valid key.
    #[error("key file {path}: {message}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A configuration file could not be parsed.
    #[error("config file {path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// A configuration value is out of range or contradicts another.
    #[error("config {field}: {message}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A listen address could not be used.
    #[error("cannot listen on {addr}: {message}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        message: String,
    },
    /// The metrics address could not be bound.
    #[error("cannot serve metrics on {addr}: {source}")]
    MetricsListen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A metrics recorder other than ours is installed.
    #[error("another metrics recorder is installed in this process")]
    Recorder,
    /// Building the libp2p stack failed.
    #[error("{part}: {message}")]
    Stack {
        /// Which part.
        part: &'static str,
        /// Why.
        message: String,
    },
}

impl Error {
    /// Whether the error is a store that cannot be reached now (and may be
    /// later), rather than one that failed.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Registry {
                unavailable: true,
                ..
            }
        )
    }

    /// A store that returned fewer answers than ops: a bug, never expected.
    pub(crate) fn missing_answer() -> Error {
        Error::Registry {
            url: String::new(),
            message: "the store returned fewer answers than requests".to_owned(),
            unavailable: false,
        }
    }
}

/// Histogram buckets, seconds: 100 µs (a store write) to 30 s (a slow dial).
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// Installs a Prometheus recorder as the process's `metrics` recorder (once;
/// later calls return the same handle) and returns its handle for
/// [`Server::new`]. Fails if the process installed another recorder.
pub fn install_recorder() -> Result<PrometheusHandle, Error> {
    static HANDLE: OnceLock<Result<PrometheusHandle, ()>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .map_err(|_| ())?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).map_err(|_| ())?;
            Ok(handle)
        })
        .clone()
        .map_err(|()| Error::Recorder)
}
