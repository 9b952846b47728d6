//! `multidriver rendezvous`: run a rendezvous point, or make its key.
//!
//! Settings come from, lowest first: the defaults, a TOML config file
//! (`--config`), environment variables (`MULTIDRIVER_RENDEZVOUS_*`), and
//! flags. `run --print-config` prints the result and exits.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use libp2p::Multiaddr;
use multidriver_rendezvous::files::{connection_capacity, raise_open_file_limit};
use multidriver_rendezvous::{Config, Durability, Server, ServerEvent, keys};

/// `multidriver rendezvous …`
#[derive(Debug, Args)]
pub(crate) struct RendezvousArgs {
    #[command(subcommand)]
    command: RendezvousCommand,
}

#[derive(Debug, Subcommand)]
enum RendezvousCommand {
    /// Write a new Ed25519 key file (mode 0600; never overwrites) and print
    /// its peer id.
    Genkey {
        /// The key file to create.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Run the rendezvous point until SIGINT or SIGTERM.
    Run(Box<RunArgs>),
}

/// Flags of `run`; each overrides the config file.
#[derive(Debug, Args)]
struct RunArgs {
    /// A TOML config file (fields as in `--print-config`).
    #[arg(long, value_name = "FILE", env = "MULTIDRIVER_RENDEZVOUS_CONFIG")]
    config: Option<PathBuf>,
    /// The key file (see `genkey`).
    #[arg(long, value_name = "FILE", env = "MULTIDRIVER_RENDEZVOUS_KEY")]
    key: Option<PathBuf>,
    /// The SQLite database; created if missing.
    #[arg(long, value_name = "FILE", env = "MULTIDRIVER_RENDEZVOUS_DB")]
    db: Option<PathBuf>,
    /// A PostgreSQL registry shared with other points instead of the
    /// SQLite file: `postgres://user[:password]@host[:port]/database`
    /// (add `?sslmode=require` for TLS). Points on one database serve one
    /// registry.
    #[arg(long, value_name = "URL", env = "MULTIDRIVER_RENDEZVOUS_STORE", value_parser = parse_store)]
    store: Option<String>,
    /// CA certificates (PEM) to check the database's certificate against
    /// with `sslmode=require` (default: the system's roots).
    #[arg(long, value_name = "FILE", env = "MULTIDRIVER_RENDEZVOUS_STORE_CA")]
    store_ca: Option<PathBuf>,
    /// Most connections to the shared registry.
    #[arg(long, value_name = "N", env = "MULTIDRIVER_RENDEZVOUS_STORE_POOL_SIZE")]
    store_pool_size: Option<usize>,
    /// Listen addresses (repeatable, or comma-separated in the variable).
    /// Default: TCP and QUIC on port 4001 of every IPv4 interface.
    #[arg(
        long = "listen",
        value_name = "ADDR",
        env = "MULTIDRIVER_RENDEZVOUS_LISTEN",
        value_delimiter = ','
    )]
    listen: Vec<Multiaddr>,
    /// Addresses to announce beside the listen addresses (repeatable).
    #[arg(
        long = "announce",
        value_name = "ADDR",
        env = "MULTIDRIVER_RENDEZVOUS_ANNOUNCE",
        value_delimiter = ','
    )]
    announce: Vec<Multiaddr>,
    /// Serve Prometheus `/metrics` (and `/health`) on this address.
    #[arg(long, value_name = "IP:PORT", env = "MULTIDRIVER_RENDEZVOUS_METRICS")]
    metrics: Option<SocketAddr>,
    /// Most registrations held in all.
    #[arg(
        long,
        value_name = "N",
        env = "MULTIDRIVER_RENDEZVOUS_MAX_REGISTRATIONS"
    )]
    max_registrations: Option<u64>,
    /// Most registrations one peer may hold.
    #[arg(
        long,
        value_name = "N",
        env = "MULTIDRIVER_RENDEZVOUS_MAX_REGISTRATIONS_PER_PEER"
    )]
    max_registrations_per_peer: Option<u64>,
    /// Shortest TTL accepted, seconds.
    #[arg(long, value_name = "SECS", env = "MULTIDRIVER_RENDEZVOUS_MIN_TTL")]
    min_ttl: Option<u64>,
    /// Longest TTL accepted, seconds.
    #[arg(long, value_name = "SECS", env = "MULTIDRIVER_RENDEZVOUS_MAX_TTL")]
    max_ttl: Option<u64>,
    /// TTL given to registrations that name none, seconds; must lie within
    /// the TTL bounds.
    #[arg(long, value_name = "SECS", env = "MULTIDRIVER_RENDEZVOUS_DEFAULT_TTL")]
    default_ttl: Option<u64>,
    /// Seconds between sweeps of expired registrations.
    #[arg(
        long,
        value_name = "SECS",
        env = "MULTIDRIVER_RENDEZVOUS_SWEEP_INTERVAL"
    )]
    sweep_interval: Option<u64>,
    /// `process-crash` (survives kill -9) or `power-loss` (also survives a
    /// power cut; one fsync per committed group of requests).
    #[arg(long, value_name = "MODE", env = "MULTIDRIVER_RENDEZVOUS_DURABILITY", value_parser = parse_durability)]
    durability: Option<Durability>,
    /// Also serve circuit relay v2, so that peers behind NAT hold a
    /// reservation here and are reached through the point (limits under
    /// `[relay]` in the config file; see `--print-config`).
    #[arg(long, env = "MULTIDRIVER_RENDEZVOUS_RELAY")]
    relay: bool,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn parse_store(s: &str) -> Result<String, String> {
    multidriver_rendezvous::postgres::check_url(s).map(|()| s.to_owned())
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    match s {
        "process-crash" => Ok(Durability::ProcessCrash),
        "power-loss" => Ok(Durability::PowerLoss),
        other => Err(format!(
            "`{other}` is not a durability: use process-crash or power-loss"
        )),
    }
}

impl RunArgs {
    /// Defaults, then the file, then these flags and variables.
    fn config(&self) -> Result<Config, multidriver_rendezvous::Error> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = &self.key {
            c.key.clone_from(v);
        }
        if let Some(v) = &self.db {
            c.db.clone_from(v);
        }
        if let Some(v) = &self.store {
            c.store = Some(v.clone());
        }
        if let Some(v) = &self.store_ca {
            c.store_ca = Some(v.clone());
        }
        c.store_pool_size = self.store_pool_size.unwrap_or(c.store_pool_size);
        if !self.listen.is_empty() {
            c.listen.clone_from(&self.listen);
        }
        if !self.announce.is_empty() {
            c.announce.clone_from(&self.announce);
        }
        c.metrics = self.metrics.or(c.metrics);
        c.relay.enabled |= self.relay;
        let l = &mut c.limits;
        l.max_registrations = self.max_registrations.unwrap_or(l.max_registrations);
        l.max_registrations_per_peer = self
            .max_registrations_per_peer
            .unwrap_or(l.max_registrations_per_peer);
        l.min_ttl = self.min_ttl.unwrap_or(l.min_ttl);
        l.max_ttl = self.max_ttl.unwrap_or(l.max_ttl);
        l.default_ttl = self.default_ttl.unwrap_or(l.default_ttl);
        c.sweep_interval_secs = self.sweep_interval.unwrap_or(c.sweep_interval_secs);
        c.durability = self.durability.unwrap_or(c.durability);
        c.validate()?;
        Ok(c)
    }
}

/// Runs the subcommand; what it printed is already on stdout.
pub(crate) fn run(args: RendezvousArgs) -> Result<(), multidriver_rendezvous::Error> {
    match args.command {
        RendezvousCommand::Genkey { out } => {
            let key = keys::generate(&out)?;
            println!("{}", key.public().to_peer_id());
            Ok(())
        }
        RendezvousCommand::Run(args) => {
            let config = args.config()?;
            if args.print_config {
                print!(
                    "{}",
                    toml::to_string(&config).expect("the config serialises")
                );
                return Ok(());
            }
            serve(config)
        }
    }
}

fn serve(config: Config) -> Result<(), multidriver_rendezvous::Error> {
    {
        use tracing_subscriber::Layer;
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(rate_limited(LOG_BURST, LOG_WINDOW, |line| {
                        eprintln!("{line}")
                    })),
            )
            .with(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .try_init();
    }
    let key = keys::read(&config.key)?;
    // Each TCP connection holds a file: raise the soft limit before any
    // socket opens, and say what the limit allows.
    let files = raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| multidriver_rendezvous::Error::Io {
            path: PathBuf::from("<runtime>"),
            source: e,
        })?;
    runtime.block_on(async move {
        let prometheus = match config.metrics {
            Some(_) => Some(multidriver_rendezvous::install_recorder()?),
            None => None,
        };
        let max_connections = config.max_connections;
        let server = Server::new(config, key, prometheus)?;
        println!("peer id: {}", server.peer_id());
        let shown = |n: Option<u64>| n.map_or("unlimited".to_owned(), |n| n.to_string());
        let capacity = connection_capacity(files.now, max_connections);
        // The warning first: whoever reads the connections line has it.
        if capacity < max_connections {
            eprintln!(
                "warning: the open-file limit holds the point to {capacity} connections, under max_connections = {max_connections}; raise the hard limit (ulimit -Hn, LimitNOFILE=) to reach it"
            );
        }
        println!(
            "connections: at most {capacity} at once (max_connections {max_connections}; open files: {}{}, hard limit {})",
            shown(files.now),
            if files.now == files.before {
                String::new()
            } else {
                format!(", raised from {}", shown(files.before))
            },
            shown(files.hard)
        );
        server
            .run(shutdown_signal(), |event| match event {
                ServerEvent::Listening(addr) => println!("listening on {addr}"),
                ServerEvent::Expired(addr) => println!("no longer listening on {addr}"),
                ServerEvent::Announcing(addr) => println!("announcing {addr}"),
                ServerEvent::Metrics(addr) => println!("metrics on http://{addr}/metrics"),
                ServerEvent::Store {
                    store,
                    registrations,
                } => println!("{registrations} registrations in {store}"),
                ServerEvent::Swept { expired, left } => {
                    println!("swept {expired} expired registrations, {left} left");
                }
                ServerEvent::Stopping => println!("stopping"),
                other => println!("{other:?}"),
            })
            .await
    })
}

/// Log lines one call site may print per [`LOG_WINDOW`] (our choice: a
/// person reading the log sees the first few of a kind, and a client that
/// provokes a warning per stream cannot flood the log).
const LOG_BURST: u32 = 5;
/// The window of [`LOG_BURST`].
const LOG_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// A filter that lets through at most `burst` events per call site per
/// `window`, and reports through `report` how many it held back once the
/// window turns. Its table holds one entry per call site (a static set).
struct RateLimit<R> {
    burst: u32,
    window: std::time::Duration,
    report: R,
    sites: std::sync::Mutex<std::collections::HashMap<tracing::callsite::Identifier, Site>>,
}

/// One call site's window.
struct Site {
    since: std::time::Instant,
    shown: u32,
    held: u64,
}

fn rate_limited<R: Fn(String)>(burst: u32, window: std::time::Duration, report: R) -> RateLimit<R> {
    RateLimit {
        burst,
        window,
        report,
        sites: std::sync::Mutex::new(std::collections::HashMap::new()),
    }
}

impl<S, R: Fn(String)> tracing_subscriber::layer::Filter<S> for RateLimit<R> {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        if !meta.is_event() {
            return true;
        }
        let now = std::time::Instant::now();
        let mut sites = self
            .sites
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let site = sites.entry(meta.callsite()).or_insert(Site {
            since: now,
            shown: 0,
            held: 0,
        });
        if now.duration_since(site.since) >= self.window {
            if site.held > 0 {
                (self.report)(format!(
                    "({} more lines from {} at {}:{} in the last {} s were not shown)",
                    site.held,
                    meta.target(),
                    meta.file().unwrap_or("?"),
                    meta.line().unwrap_or(0),
                    self.window.as_secs()
                ));
            }
            *site = Site {
                since: now,
                shown: 0,
                held: 0,
            };
        }
        if site.shown < self.burst {
            site.shown += 1;
            true
        } else {
            site.held += 1;
            false
        }
    }

    /// Asked per event, never cached per call site.
    fn callsite_enabled(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    use super::rate_limited;

    /// One call site flooding: `burst` lines pass per window, the rest are
    /// counted, and the count is reported once the window turns; another
    /// call site is not held back by the first.
    #[test]
    fn a_flooding_call_site_is_held_to_its_burst_and_the_rest_counted() {
        let passed = Arc::new(Mutex::new(0u32));
        let reports = Arc::new(Mutex::new(Vec::<String>::new()));
        let counter = {
            let passed = Arc::clone(&passed);
            tracing_subscriber::fmt::layer()
                .with_writer(move || {
                    *passed.lock().unwrap() += 1;
                    std::io::sink()
                })
                .with_filter(rate_limited(3, Duration::from_millis(200), {
                    let reports = Arc::clone(&reports);
                    move |line| reports.lock().unwrap().push(line)
                }))
        };
        let subscriber = tracing_subscriber::registry().with(counter);
        let flood = || tracing::warn!("flood");
        tracing::subscriber::with_default(subscriber, || {
            for _ in 0..100 {
                flood();
            }
            tracing::warn!("another site");
            assert_eq!(*passed.lock().unwrap(), 4);
            assert!(reports.lock().unwrap().is_empty());
            std::thread::sleep(Duration::from_millis(250));
            for _ in 0..100 {
                flood();
            }
        });
        // Filters are asked once per call site per event: the first window's
        // 97 held lines are reported when the second begins.
        let reports = reports.lock().unwrap();
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(reports[0].starts_with("(97 more lines"), "{}", reports[0]);
        assert_eq!(*passed.lock().unwrap(), 7);
    }
}
