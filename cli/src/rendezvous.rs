//! `multidriver rendezvous`: run a rendezvous point, or make its key.
//!
//! Settings come from, lowest first: the defaults, a TOML config file
//! (`--config`), environment variables (`MULTIDRIVER_RENDEZVOUS_*`), and
//! flags. `run --print-config` prints the result and exits.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use libp2p::Multiaddr;
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
    /// power cut; one fsync per write).
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
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .try_init();
    let key = keys::read(&config.key)?;
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
        let db = config.db.clone();
        let server = Server::new(config, key, prometheus)?;
        println!("peer id: {}", server.peer_id());
        println!(
            "{} registrations in {}",
            server.registrations(),
            db.display()
        );
        server
            .run(shutdown_signal(), |event| match event {
                ServerEvent::Listening(addr) => println!("listening on {addr}"),
                ServerEvent::Expired(addr) => println!("no longer listening on {addr}"),
                ServerEvent::Announcing(addr) => println!("announcing {addr}"),
                ServerEvent::Metrics(addr) => println!("metrics on http://{addr}/metrics"),
                ServerEvent::Swept { expired, left } => {
                    println!("swept {expired} expired registrations, {left} left");
                }
                ServerEvent::Stopping => println!("stopping"),
                other => println!("{other:?}"),
            })
            .await
    })
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
