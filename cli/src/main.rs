//! `multidriver`: the command-line face of the multidriver routing engine.
//!
//! ```text
//! multidriver rank examples/routes/commute.toml --profile balanced
//! multidriver profiles list
//! multidriver profiles show battery-saver > my-profile.toml
//! multidriver rank examples/routes/commute.toml --profile my-profile.toml
//! multidriver sim run scenarios/commute.toml --json out.json --plots out/
//! ```
//!
//! `sim run` runs a simulator scenario (see `scenarios/`): every policy over
//! the same world and seed, printed side by side with ratios against
//! `oracle` and `libp2p-stock`; `--json` writes the results (byte-identical
//! for the same scenario and seed) and `--plots` SVG plots. A progress bar
//! shows on a terminal and stays quiet otherwise.
//!
//! `rank` reads a route set (a peer's routes with RTT samples, dial outcomes
//! and sources, the power state and link conditions; see
//! `examples/routes/commute.toml`), ranks it under a preset or a profile file,
//! and prints each route's cost components, why it stands where it does, and
//! the race plan. A malformed file or an unknown profile prints an error
//! naming the file, line and field, and exits with status 1.
//!
//! ```text
//! multidriver node --namespace my-app --rendezvous /ip4/198.51.100.7/tcp/4001/p2p/12D3Koo…
//! multidriver node --namespace my-app --mdns --profile battery-saver --json
//! ```
//!
//! `node` joins a namespace with the engine (advertises in it and keeps
//! looking it up through the rendezvous points given and/or mDNS), connects
//! to every peer found, and prints the peers, the route in use to each and
//! why, and route switches as they happen, until Ctrl-C or SIGTERM (or
//! `--exit-after SECS`); `--json` prints one JSON object per line per event
//! (the schema is in `node.rs` and the README).

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod node;
mod rendezvous;

use clap::{Parser, Subcommand};
use multidriver_scoring::{PRESET_NAMES, Profile, RacePlan, RouteSet};

/// Largest input file read: 1 MiB. A route set at its 256-route limit with a
/// few samples per route takes well under 100 KiB; anything larger is not a
/// route set or profile, and is refused before it fills memory.
const MAX_INPUT_BYTES: u64 = 1 << 20;

/// Everything the command can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
enum CliError {
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file was read but its content is wrong.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with line and field.
        source: multidriver_scoring::Error,
    },
    /// A file is larger than any route set or profile should be.
    #[error("{path}: larger than {limit} bytes; route sets and profiles are small text files", limit = MAX_INPUT_BYTES)]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// The simulator failed (a malformed scenario names the file, line and
    /// field).
    #[error(transparent)]
    Sim(#[from] multidriver_sim::Error),
    /// An output file could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A profile name is neither a preset nor an existing file.
    #[error("unknown profile `{0}`: not a preset ({presets}) nor a profile file", presets = PRESET_NAMES.join(", "))]
    UnknownProfile(String),
    /// A profile given as a path names no readable file.
    #[error("profile file {path} does not exist or is not a file (the presets are {presets})", presets = PRESET_NAMES.join(", "))]
    NoProfileFile {
        /// The path given.
        path: PathBuf,
    },
    /// `multidriver node` failed.
    #[error(transparent)]
    Node(#[from] node::NodeError),
    /// `multidriver rendezvous` failed.
    #[error(transparent)]
    Rendezvous(#[from] multidriver_rendezvous::Error),
}

#[derive(Debug, Parser)]
#[command(
    name = "multidriver",
    version,
    about = "A routing engine for libp2p: rank routes by latency and battery cost"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rank a peer's routes under a profile and explain the order.
    Rank {
        /// A route-set TOML file (see examples/routes/commute.toml).
        file: PathBuf,
        /// A preset name (performance, balanced, battery-saver, background) or
        /// a profile TOML file.
        #[arg(long, default_value = "balanced")]
        profile: String,
    },
    /// List or print the scoring profiles.
    Profiles {
        #[command(subcommand)]
        command: ProfilesCommand,
    },
    /// Run the network simulator.
    Sim {
        #[command(subcommand)]
        command: SimCommand,
    },
    /// Join a namespace with the engine and print peers, routes and switches.
    Node(node::NodeArgs),
    /// Run a rendezvous point (persistent, with limits and metrics), or
    /// make its key.
    Rendezvous(rendezvous::RendezvousArgs),
}

#[derive(Debug, Subcommand)]
enum SimCommand {
    /// Run a scenario: every policy side by side, same world and seed.
    Run {
        /// A scenario TOML file (see scenarios/).
        scenario: PathBuf,
        /// Override the scenario's seed.
        #[arg(long)]
        seed: Option<u64>,
        /// Override the policies, comma-separated (e.g. multidriver,libp2p-stock,oracle).
        #[arg(long, value_delimiter = ',')]
        policies: Option<Vec<String>>,
        /// Write the results as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write SVG plots (failover CDF, energy per policy) into this directory.
        #[arg(long)]
        plots: Option<PathBuf>,
        /// Worker threads (policies run in parallel; results do not depend on it).
        #[arg(long, default_value_t = 2)]
        threads: usize,
    },
}

#[derive(Debug, Subcommand)]
enum ProfilesCommand {
    /// List the preset profiles.
    List,
    /// Print a preset (or a profile file, validated) as TOML.
    Show {
        /// A preset name or a profile TOML file.
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match from_the_environment(&e) {
            Some(message) => {
                eprint!("{message}");
                return ExitCode::from(2);
            }
            None => e.exit(),
        },
    };
    match run(cli.command) {
        Ok(output) => match std::io::stdout().lock().write_all(output.as_bytes()) {
            // A reader that stopped early (`| head`) is not an error.
            Ok(()) => ExitCode::SUCCESS,
            Err(e) if e.kind() == ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: writing the output: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<String, CliError> {
    match command {
        Command::Rank { file, profile } => {
            let profile = load_profile(&profile)?;
            let text = read(&file)?;
            let set = RouteSet::from_toml_str(&text).map_err(|source| CliError::Parse {
                path: file.clone(),
                source,
            })?;
            Ok(render_ranking(&set, &profile))
        }
        Command::Profiles {
            command: ProfilesCommand::List,
        } => {
            let mut out = String::new();
            for p in Profile::presets() {
                out.push_str(&format!("{:<14} {}\n", p.name, summary(&p)));
            }
            Ok(out)
        }
        Command::Profiles {
            command: ProfilesCommand::Show { name },
        } => Ok(load_profile(&name)?.to_documented_toml()),
        Command::Sim {
            command:
                SimCommand::Run {
                    scenario,
                    seed,
                    policies,
                    json,
                    plots,
                    threads,
                },
        } => sim_run(
            &scenario,
            seed,
            policies,
            json.as_deref(),
            plots.as_deref(),
            threads,
        ),
        // It prints as it runs; nothing is left to print at the end.
        Command::Node(args) => node::run(args).map(|()| String::new()),
        Command::Rendezvous(args) => rendezvous::run(args)
            .map(|()| String::new())
            .map_err(CliError::from),
    }
}

fn sim_run(
    path: &Path,
    seed: Option<u64>,
    policies: Option<Vec<String>>,
    json: Option<&Path>,
    plots: Option<&Path>,
    threads: usize,
) -> Result<String, CliError> {
    use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

    let scenario = multidriver_sim::Scenario::load(path)?;
    let options = multidriver_sim::RunOptions {
        seed,
        policies,
        threads,
        check_invariants: false,
    };
    let names = options
        .policies
        .clone()
        .unwrap_or_else(|| scenario.policies.clone());
    // indicatif draws nothing when stderr is not a terminal.
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix:>26} [{bar:30}] {percent:>3}% {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bars: Vec<ProgressBar> = names
        .iter()
        .map(|n| {
            let b = multi.add(ProgressBar::new(1000));
            b.set_style(style.clone());
            b.set_prefix(n.clone());
            b
        })
        .collect();
    let report = multidriver_sim::run(&scenario, &options, &|p| {
        if let Some(b) = bars.get(p.policy) {
            b.set_position((p.fraction * 1000.0) as u64);
        }
    })?;
    for b in &bars {
        b.finish_and_clear();
    }
    let mut out = report.table();
    out.push_str("\nwall time per policy:");
    for (p, w) in report.policies.iter().zip(&report.wall) {
        out.push_str(&format!(" {} {:.2} s;", p.policy, w.as_secs_f64()));
    }
    out.push('\n');
    if let Some(j) = json {
        std::fs::write(j, report.to_json()).map_err(|source| CliError::Write {
            path: j.to_owned(),
            source,
        })?;
        out.push_str(&format!("results written to {}\n", j.display()));
    }
    if let Some(dir) = plots {
        for f in multidriver_sim::write_plots(&report, dir)? {
            out.push_str(&format!("plot written to {}\n", f.display()));
        }
    }
    Ok(out)
}

/// clap's error for a bad value that came from an environment variable (the
/// flag absent from the command line), rewritten to name the variable: an
/// operator who never typed `--max-ttl` should read
/// `MULTIDRIVER_RENDEZVOUS_MAX_TTL`. `None` for every other error.
fn from_the_environment(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind as Kind};
    if !matches!(e.kind(), Kind::ValueValidation | Kind::InvalidValue) {
        return None;
    }
    let Some(ContextValue::String(shown)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = shown.split_whitespace().next()?.strip_prefix("--")?;
    let argv: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    if argv
        .iter()
        .any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}=")))
    {
        return None;
    }
    // The variable behind that flag in whichever subcommand declared it.
    fn env_of(cmd: &clap::Command, long: &str) -> Option<String> {
        cmd.get_arguments()
            .find(|a| a.get_long() == Some(long))
            .and_then(|a| a.get_env())
            .map(|v| v.to_string_lossy().into_owned())
            .or_else(|| cmd.get_subcommands().find_map(|c| env_of(c, long)))
    }
    let var = env_of(&<Cli as clap::CommandFactory>::command(), long)?;
    std::env::var_os(&var)?;
    let rendered = e.render().to_string();
    Some(rendered.replacen(
        &format!("'{shown}'"),
        &format!("the environment variable {var} (the setting behind --{long})"),
        1,
    ))
}

/// Reads a UTF-8 text file of at most [`MAX_INPUT_BYTES`].
fn read(path: &Path) -> Result<String, CliError> {
    let failed = |source| CliError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let mut text = String::new();
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(failed)?;
    if text.len() as u64 > MAX_INPUT_BYTES {
        return Err(CliError::TooLarge {
            path: path.to_owned(),
        });
    }
    Ok(text)
}

/// A preset by name, or else a profile file at that path.
fn load_profile(name: &str) -> Result<Profile, CliError> {
    if let Ok(p) = Profile::preset(name) {
        return Ok(p);
    }
    let path = Path::new(name);
    if !path.is_file() {
        // A value that looks like a path was meant as a file: say that the
        // file is missing rather than that no preset has that name.
        let looks_like_a_path = name.contains('/')
            || name.contains(std::path::MAIN_SEPARATOR)
            || name.ends_with(".toml")
            || path.exists();
        return Err(if looks_like_a_path {
            CliError::NoProfileFile {
                path: path.to_owned(),
            }
        } else {
            CliError::UnknownProfile(name.to_owned())
        });
    }
    let text = read(path)?;
    Profile::from_toml_str(&text).map_err(|source| CliError::Parse {
        path: path.to_owned(),
        source,
    })
}

fn summary(p: &Profile) -> String {
    format!(
        "latency ×{}, {} ms per joule, costly links: {:?}, keep-alive every {} s, at most {} attempt(s) staggered {}–{} ms{}",
        p.weights.latency,
        p.weights.energy_ms_per_joule,
        p.links.costly,
        p.usage.keepalive_interval_s,
        p.racing.max_attempts,
        p.racing.min_stagger_ms,
        p.racing.max_stagger_ms,
        if p.racing.keep_warm_backup {
            ", warm backup"
        } else {
            ""
        },
    )
}

fn render_ranking(set: &RouteSet, profile: &Profile) -> String {
    let ranking = set.rank(profile);
    let power = match (set.power.battery, set.power.charging) {
        (None, _) => "on mains".to_owned(),
        (Some(level), charging) => format!(
            "battery {:.0} %{}",
            level * 100.0,
            if charging { ", charging" } else { "" }
        ),
    };
    let mut out = format!(
        "{} routes to {} at {} under profile `{}` ({}, {}{})\n\n",
        set.routes.len(),
        set.peer,
        set.now,
        profile.name,
        power,
        set.power.lifecycle,
        if set.power.power_save {
            ", power saving"
        } else {
            ""
        },
    );
    out.push_str(
        &ranking
            .explain(&set.routes, &set.context(profile))
            .to_string(),
    );
    let plan = RacePlan::new(&ranking, &set.routes, &profile.racing);
    out.push_str(&format!(
        "\nrace plan (up to {} attempts, stagger = expected handshake clamped to {}..{} ms; a failure starts the next attempt at once):\n",
        profile.racing.max_attempts, profile.racing.min_stagger_ms, profile.racing.max_stagger_ms
    ));
    if plan.is_empty() {
        out.push_str("  nothing to dial: no route is allowed under this profile\n");
    }
    for a in plan.attempts() {
        out.push_str(&format!(
            "  at {:>6.0} ms  {}  (expected handshake {:.0} ms)\n",
            a.start_after.as_secs_f64() * 1e3,
            set.routes[a.index].id.addr,
            a.expected_handshake.as_secs_f64() * 1e3,
        ));
    }
    out
}
