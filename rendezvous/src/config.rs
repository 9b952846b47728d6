//! The rendezvous point's configuration: limits, addresses, files.
//!
//! A TOML file holds any subset of [`Config`]'s fields; what it leaves out
//! keeps its default. The `multidriver rendezvous run` command lays
//! environment variables and flags over it.
//!
//! ```toml
//! key = "rendezvous.key"
//! db = "rendezvous.db"
//! listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
//! announce = ["/dns4/rendezvous.example.com/tcp/4001"]
//! metrics = "127.0.0.1:9464"
//!
//! [limits]
//! max_registrations_per_peer = 32
//! max_registrations = 10000
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::store::Durability;

/// The longest `max_ttl` a configuration may set: 365 days (our choice;
/// the spec recommends 72 h).
pub const MAX_TTL_CAP: u64 = 365 * 24 * 60 * 60;

/// What the point accepts. Each bound is enforced exactly: a value at the
/// bound is accepted, one past it refused with the protocol's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Shortest TTL accepted, seconds. Default 2 h, the spec's
    /// recommendation (libp2p rendezvous spec, "Recommendations for
    /// Rendezvous Points configurations"). Shorter: `E_INVALID_TTL`.
    pub min_ttl: u64,
    /// Longest TTL accepted, seconds. Default 72 h, the spec's
    /// recommendation. Longer: `E_INVALID_TTL`.
    pub max_ttl: u64,
    /// TTL given to a registration that names none, seconds. Default 2 h,
    /// the spec's ("If unspecified, rendezvous nodes should assume a TTL of
    /// 2h"). Must lie within `min_ttl..=max_ttl`.
    pub default_ttl: u64,
    /// Registrations one peer may hold, one per namespace. Default 32, the
    /// stock rust-libp2p server's (libp2p-rendezvous 0.18,
    /// `MAX_REGISTRATION_PEER`). A new namespace past it: `E_UNAVAILABLE`;
    /// refreshing a namespace the peer holds is always accepted.
    pub max_registrations_per_peer: u64,
    /// Registrations the point holds in all. Default 10 000, the stock
    /// server's (`MAX_REGISTRATIONS_TOTAL`). A new registration past it:
    /// `E_UNAVAILABLE`.
    pub max_registrations: u64,
    /// Longest namespace, bytes. Default 255, the spec's. Longer (or
    /// empty, or not UTF-8): `E_INVALID_NAMESPACE`.
    pub max_namespace_len: usize,
    /// Most registrations in one discover answer. Default 1000, as
    /// nim-libp2p (`DiscoverLimit`) and js-libp2p-rendezvous
    /// (`MAX_DISCOVER_LIMIT`). A request for more, or for no limit, gets
    /// this many and a cookie for the rest. A page is also cut to fit the
    /// 1 MiB message limit.
    pub max_discover_limit: u64,
    /// Largest signed peer record, bytes. Default 8 KiB (our choice: a
    /// record with 32 addresses is about 1.5 KiB). Larger:
    /// `E_INVALID_SIGNED_PEER_RECORD`.
    pub max_record_bytes: usize,
    /// Accept peer records signed in the spec's format (RFC 0002/0003: the
    /// `libp2p-peer-record` domain, what Go and JS clients send) beside
    /// rust-libp2p's own (`libp2p-routing-state`). Default `false`: stock
    /// rust-libp2p clients (libp2p-rendezvous 0.18) decode only their own
    /// format and fail a whole discover answer holding one record of the
    /// other, so one such registration would hide a namespace from every
    /// Rust client. Turn it on for a point that serves only Go and JS
    /// clients. Refused: `E_INVALID_SIGNED_PEER_RECORD`.
    pub accept_spec_records: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            min_ttl: 2 * 60 * 60,
            max_ttl: 72 * 60 * 60,
            default_ttl: 2 * 60 * 60,
            max_registrations_per_peer: 32,
            max_registrations: 10_000,
            max_namespace_len: 255,
            max_discover_limit: 1000,
            max_record_bytes: 8 * 1024,
            accept_spec_records: false,
        }
    }
}

impl Limits {
    /// Checks the limits agree with each other.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, message: String| Err(Error::Config { field, message });
        if self.min_ttl == 0 {
            return bad(
                "limits.min_ttl",
                "must be at least 1 s: a registration with TTL 0 expires before anyone sees it"
                    .into(),
            );
        }
        if self.max_ttl > MAX_TTL_CAP {
            return bad(
                "limits.max_ttl",
                format!(
                    "{} s is over a year ({MAX_TTL_CAP} s); registrations must expire",
                    self.max_ttl
                ),
            );
        }
        if self.min_ttl > self.max_ttl {
            return bad(
                "limits.min_ttl",
                format!("{} is above max_ttl {}", self.min_ttl, self.max_ttl),
            );
        }
        if !(self.min_ttl..=self.max_ttl).contains(&self.default_ttl) {
            return bad(
                "limits.default_ttl",
                format!(
                    "{} is outside min_ttl..=max_ttl ({}..={})",
                    self.default_ttl, self.min_ttl, self.max_ttl
                ),
            );
        }
        for (field, value) in [
            (
                "limits.max_registrations_per_peer",
                self.max_registrations_per_peer,
            ),
            ("limits.max_registrations", self.max_registrations),
            ("limits.max_discover_limit", self.max_discover_limit),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        if self.max_namespace_len == 0 || self.max_namespace_len > 255 {
            return bad(
                "limits.max_namespace_len",
                format!(
                    "{} is outside 1..=255 (the spec's maximum)",
                    self.max_namespace_len
                ),
            );
        }
        if self.max_record_bytes < 64 || self.max_record_bytes > 512 * 1024 {
            return bad(
                "limits.max_record_bytes",
                format!(
                    "{} is outside 64..=524288 (half the 1 MiB message limit)",
                    self.max_record_bytes
                ),
            );
        }
        Ok(())
    }
}

/// Circuit relay v2 served beside the rendezvous protocol, so that peers
/// behind NAT hold a reservation on their rendezvous point and are reached
/// through it (`multidriver rendezvous run --relay`, or `enabled = true`
/// under `[relay]`). Each limit is exact: the request that would go past
/// it is denied with `RESOURCE_LIMIT_EXCEEDED`, counted in
/// `multidriver_rendezvous_relay_*_requests_total`. The defaults are
/// libp2p-relay 0.22's (`behaviour.rs`, `impl Default for Config`), which
/// are also kubo's; so are its rate limits, which this point keeps (per
/// peer 30 reservations and 30 circuits, refilled one per 2 min; per IP
/// 60, refilled one per minute).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayLimits {
    /// Serve the relay. Default off.
    pub enabled: bool,
    /// Reservations held at once, all peers together. Default 128.
    pub max_reservations: usize,
    /// Reservations one peer holds at once (one per connection to the
    /// point). Default 4.
    pub max_reservations_per_peer: usize,
    /// Seconds a reservation lasts before the client must renew it.
    /// Default 3600.
    pub reservation_duration_secs: u64,
    /// Circuits relayed at once. Default 16.
    pub max_circuits: usize,
    /// Circuits one peer opens while it is an end of that many (as source
    /// or destination) already: libp2p-relay checks the peer asking for the
    /// circuit only, so a destination can be an end of more. Default 4.
    pub max_circuits_per_peer: usize,
    /// Seconds a circuit stays open; then the point closes it. Default 120.
    pub max_circuit_duration_secs: u64,
    /// Bytes a circuit carries, both directions together; past them the
    /// point closes it. Default 131072 (128 KiB).
    pub max_circuit_bytes: u64,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            enabled: false,
            max_reservations: 128,
            max_reservations_per_peer: 4,
            reservation_duration_secs: 60 * 60,
            max_circuits: 16,
            max_circuits_per_peer: 4,
            max_circuit_duration_secs: 2 * 60,
            max_circuit_bytes: 1 << 17,
        }
    }
}

impl RelayLimits {
    /// Checks that every limit admits at least one and that no per-peer
    /// limit exceeds its total.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |field: &'static str, message: String| Err(Error::Config { field, message });
        for (field, value) in [
            ("relay.max_reservations", self.max_reservations as u64),
            (
                "relay.max_reservations_per_peer",
                self.max_reservations_per_peer as u64,
            ),
            (
                "relay.reservation_duration_secs",
                self.reservation_duration_secs,
            ),
            ("relay.max_circuits", self.max_circuits as u64),
            (
                "relay.max_circuits_per_peer",
                self.max_circuits_per_peer as u64,
            ),
            (
                "relay.max_circuit_duration_secs",
                self.max_circuit_duration_secs,
            ),
            ("relay.max_circuit_bytes", self.max_circuit_bytes),
        ] {
            if value == 0 {
                return bad(field, "must be at least 1".into());
            }
        }
        if self.max_reservations_per_peer > self.max_reservations {
            return bad(
                "relay.max_reservations_per_peer",
                format!(
                    "{} is more than relay.max_reservations ({})",
                    self.max_reservations_per_peer, self.max_reservations
                ),
            );
        }
        if self.max_circuits_per_peer > self.max_circuits {
            return bad(
                "relay.max_circuits_per_peer",
                format!(
                    "{} is more than relay.max_circuits ({})",
                    self.max_circuits_per_peer, self.max_circuits
                ),
            );
        }
        Ok(())
    }
}

/// Everything a rendezvous point runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The key file (`multidriver rendezvous genkey` writes one).
    pub key: PathBuf,
    /// The SQLite database; created if missing. Unused with `store`.
    pub db: PathBuf,
    /// A PostgreSQL registry shared by several points
    /// (`postgres://user[:password]@host[:port]/database`, with
    /// `?sslmode=require` for TLS), instead of the SQLite file `db`. Every
    /// point on the same database serves the same registrations, limits
    /// and cookies. The point creates the schema at start and refuses a
    /// newer one. `None` (the default): SQLite.
    pub store: Option<String>,
    /// Most connections to `store` this point opens, and so most batches
    /// it runs at once. Default 8 (our choice: writing batches take turns
    /// on the registry's lock, so more connections help discovers only).
    /// 1..=256.
    pub store_pool_size: usize,
    /// Seconds a batch may wait for its turn and a `store` connection,
    /// and take, before its requests are answered `E_UNAVAILABLE`; also
    /// the connect timeout, and the database's `statement_timeout` and
    /// `lock_timeout` for the point's sessions. Once the store is found
    /// out of reach, requests are answered at once until a check (every
    /// 2 s) reaches it. Default 5 (our choice). 1..=8: under
    /// libp2p-request-response's 10 s, so the client hears the refusal.
    pub store_timeout_secs: u64,
    /// CA certificates (PEM) the database's certificate is checked against
    /// with `sslmode=require`; `None` for the system's roots.
    pub store_ca: Option<PathBuf>,
    /// Addresses to listen on. Default TCP and QUIC on port 4001 of every
    /// IPv4 interface.
    pub listen: Vec<Multiaddr>,
    /// Addresses to announce to clients (through identify) beside the
    /// listen addresses, e.g. a public DNS name behind a load balancer.
    pub announce: Vec<Multiaddr>,
    /// Where `/metrics` is served (Prometheus text format); `None` for
    /// nowhere.
    pub metrics: Option<SocketAddr>,
    /// What the point accepts.
    pub limits: Limits,
    /// How much a committed registration survives.
    pub durability: Durability,
    /// Most requests committed together (group commit). Requests that have
    /// arrived are handled in order inside one transaction, committed once,
    /// and only then answered, so no registration is confirmed before it is
    /// committed. Default 256 (our choice: a batch takes a few
    /// milliseconds, and 256 registrations share one write of the log, and
    /// with `durability = "power-loss"` one `fsync`). When it is reached
    /// the batch is committed and the next requests start a new one. A
    /// database error on any write of a batch fails the whole batch: none
    /// of it is kept and every register in it is answered
    /// `E_INTERNAL_ERROR` (database errors are disk, I/O or corruption
    /// errors; refusals for limits are answers, not errors).
    /// 1..=65536; 1 commits each request on its own.
    pub max_batch: usize,
    /// Seconds between sweeps of expired registrations. Default 60 (our
    /// choice). Expired registrations are never served in between; the
    /// sweep only frees their rows.
    pub sweep_interval_secs: u64,
    /// Most connections at once. Default 10 000 (our choice, the same as
    /// the registration limit). Past it, new connections are refused.
    pub max_connections: u32,
    /// Most connections one peer may hold at once. Default 4 (our choice:
    /// a client needs one; a few allow TCP and QUIC side by side).
    pub max_connections_per_peer: u32,
    /// Most inbound connections from one IP address at once, pending
    /// handshakes included (peer ids are free; addresses are not). Default
    /// 512 (our choice: a carrier-grade NAT puts many phones behind one
    /// address, so hundreds fit, while one host can take at most about 5 %
    /// of the default connection limit). A value above `max_connections`
    /// acts as `max_connections`. IPv6 addresses count per /64 prefix (one
    /// host is handed a whole /64). Past it, a new connection from that
    /// address is refused before its handshake.
    pub max_connections_per_ip: u32,
    /// Seconds a new connection may take to finish its handshake (TCP:
    /// Noise and yamux; QUIC: the TLS handshake, within QUIC's own limit).
    /// Default 3 (our choice: a handshake takes two to three round trips,
    /// under 2 s even at 600 ms, a poor cellular path; libp2p's own default
    /// of 10 s lets idle half-open connections hold slots and files for
    /// long). 1..=60.
    pub handshake_timeout_secs: u64,
    /// Rendezvous requests one connection may have open at once. Default 32
    /// (our choice: the per-peer registration limit, so a client can
    /// register all its namespaces at once; libp2p-request-response's
    /// default is 100). Past it, new streams are dropped.
    pub max_streams_per_connection: usize,
    /// Memory that answers waiting for their clients may hold, across all
    /// connections. Each answer counts twice its size: its bytes, and the
    /// copy the multiplexer and encryption hold while it is written.
    /// Default 64 MiB (our choice). A page is counted as the store builds
    /// it, and a discover whose page would go past it gets `E_UNAVAILABLE`
    /// instead (on PostgreSQL, each running batch reads at most four pages
    /// beyond it), so clients that ask and never read
    /// cannot make the point hold their answers without bound. When such
    /// answers are gone, the memory they held is handed back to the system.
    /// At least 2 MiB (one full answer).
    pub max_answer_bytes_in_flight: usize,
    /// Seconds a connection without streams stays open. Default 60 (our
    /// choice; libp2p-swarm's default is 10 s).
    pub idle_connection_timeout_secs: u64,
    /// Circuit relay v2 beside the rendezvous protocol; off by default.
    pub relay: RelayLimits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            key: PathBuf::from("rendezvous.key"),
            db: PathBuf::from("rendezvous.db"),
            store: None,
            store_pool_size: 8,
            store_timeout_secs: 5,
            store_ca: None,
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".parse().expect("valid multiaddr"),
                "/ip4/0.0.0.0/udp/4001/quic-v1"
                    .parse()
                    .expect("valid multiaddr"),
            ],
            announce: Vec::new(),
            metrics: None,
            limits: Limits::default(),
            durability: Durability::default(),
            max_batch: 256,
            sweep_interval_secs: 60,
            max_connections: 10_000,
            max_connections_per_peer: 4,
            max_connections_per_ip: 512,
            handshake_timeout_secs: 3,
            max_streams_per_connection: 32,
            max_answer_bytes_in_flight: 64 * 1024 * 1024,
            idle_connection_timeout_secs: 60,
            relay: RelayLimits::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file; fields it leaves out keep their defaults. An
    /// unknown field or a bad value is an error naming the file, the line
    /// and the field.
    pub fn from_file(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_owned(),
            source: e,
        })?;
        Config::from_toml(&text).map_err(|message| Error::ConfigFile {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text; the error says where.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.to_string().trim_end().to_owned())
    }

    /// Checks the whole configuration.
    pub fn validate(&self) -> Result<(), Error> {
        self.limits.validate()?;
        self.relay.validate()?;
        if self.listen.is_empty() {
            return Err(Error::Config {
                field: "listen",
                message: "no listen address".into(),
            });
        }
        if self.sweep_interval_secs == 0 {
            return Err(Error::Config {
                field: "sweep_interval_secs",
                message: "must be at least 1".into(),
            });
        }
        if self.max_streams_per_connection == 0 {
            return Err(Error::Config {
                field: "max_streams_per_connection",
                message: "must be at least 1".into(),
            });
        }
        if self.max_answer_bytes_in_flight < 2 * crate::protocol::MAX_MESSAGE_BYTES {
            return Err(Error::Config {
                field: "max_answer_bytes_in_flight",
                message: format!(
                    "{} is under what one full answer holds ({} bytes: twice its {} bytes)",
                    self.max_answer_bytes_in_flight,
                    2 * crate::protocol::MAX_MESSAGE_BYTES,
                    crate::protocol::MAX_MESSAGE_BYTES
                ),
            });
        }
        if !(1..=65_536).contains(&self.max_batch) {
            return Err(Error::Config {
                field: "max_batch",
                message: format!("{} is outside 1..=65536", self.max_batch),
            });
        }
        if let Some(url) = &self.store {
            crate::postgres::check_url(url).map_err(|message| Error::Config {
                field: "store",
                message,
            })?;
        }
        if !(1..=256).contains(&self.store_pool_size) {
            return Err(Error::Config {
                field: "store_pool_size",
                message: format!("{} is outside 1..=256", self.store_pool_size),
            });
        }
        if !(1..=8).contains(&self.store_timeout_secs) {
            return Err(Error::Config {
                field: "store_timeout_secs",
                message: format!(
                    "{} is outside 1..=8 (a client gives up on a request after 10 s)",
                    self.store_timeout_secs
                ),
            });
        }
        if !(1..=60).contains(&self.handshake_timeout_secs) {
            return Err(Error::Config {
                field: "handshake_timeout_secs",
                message: format!("{} is outside 1..=60", self.handshake_timeout_secs),
            });
        }
        if self.max_connections == 0 || self.max_connections_per_peer == 0 {
            return Err(Error::Config {
                field: "max_connections",
                message: "connection limits must be at least 1".into(),
            });
        }
        if self.max_connections_per_ip == 0 {
            return Err(Error::Config {
                field: "max_connections_per_ip",
                message: "must be at least 1".into(),
            });
        }
        Ok(())
    }

    /// The sweep interval.
    pub fn sweep_interval(&self) -> Duration {
        Duration::from_secs(self.sweep_interval_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_a_file_overrides_only_what_it_names() {
        Config::default().validate().unwrap();
        let c = Config::from_toml("db = \"x.db\"\n[limits]\nmax_registrations = 5\n").unwrap();
        assert_eq!(c.db, PathBuf::from("x.db"));
        assert_eq!(c.limits.max_registrations, 5);
        assert_eq!(c.limits.max_ttl, Limits::default().max_ttl);
    }

    #[test]
    fn relay_limits_are_checked_and_named() {
        let c = Config::from_toml("[relay]\nenabled = true\nmax_circuits = 2\n").unwrap();
        assert!(c.relay.enabled);
        assert_eq!(c.relay.max_circuits, 2);
        assert_eq!(
            c.relay.max_circuit_bytes,
            RelayLimits::default().max_circuit_bytes
        );
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("relay.max_circuits_per_peer"), "{e}");
        let c = Config::from_toml("[relay]\nmax_circuit_bytes = 0\n").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("relay.max_circuit_bytes"), "{e}");
        let e = Config::from_toml("[relay]\nmax_circuit = 2\n").unwrap_err();
        assert!(e.contains("max_circuit"), "{e}");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let e = Config::from_toml("[limits]\nmax_registratons = 5\n").unwrap_err();
        assert!(e.contains("max_registratons"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        let e = Config::from_toml("listen = [\"not an address\"]\n").unwrap_err();
        assert!(e.contains("listen"), "{e}");
        let c = Config {
            limits: Limits {
                min_ttl: 10,
                max_ttl: 5,
                ..Limits::default()
            },
            ..Config::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("limits.min_ttl"), "{e}");
    }
}
