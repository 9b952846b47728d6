// A real, private PostgreSQL cluster for tests: `initdb` in a fresh temp
// dir, the server on a free loopback TCP port, database `multidriver` owned
// by role `multidriver`, trust authentication. Uses the Debian/Ubuntu server
// binaries under /usr/lib/postgresql/<version>/bin and std only.
//
// PostgreSQL refuses to run as root: when this process's effective uid is 0,
// initdb, pg_ctl and psql run as the `postgres` system user, and the temp
// dir is handed to that user.
//
// Every wait is bounded: pg_ctl waits at most PG_CTL_WAIT_SECS, and every
// command is killed when it outlives its own deadline.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where the Debian `postgresql` packages put the server binaries.
const PG_LIB: &str = "/usr/lib/postgresql";
/// `pg_ctl -w -t`: how long pg_ctl waits for the server to start or stop.
const PG_CTL_WAIT_SECS: u64 = 30;
/// How long any single command may run before it is killed.
const COMMAND_DEADLINE: Duration = Duration::from_secs(90);
/// Lines of the server log quoted in errors.
const LOG_TAIL_LINES: usize = 20;
/// Ports tried by `start` when the server cannot bind the one it was given
/// (another process took it between our probe and the server's bind).
const PORT_ATTEMPTS: usize = 3;

/// A private PostgreSQL cluster, stopped (`-m immediate`) and deleted on drop.
// `pub` for the test that includes this file; inside a test crate nothing is
// reachable from outside, hence the `unreachable_pub` allowance.
#[allow(dead_code, unreachable_pub)]
pub struct Cluster {
    /// The temp dir holding everything below; removed on drop.
    dir: PathBuf,
    /// The cluster's data directory (`initdb -D`).
    data: PathBuf,
    /// The server's log (`pg_ctl -l`).
    log: PathBuf,
    /// The directory holding initdb, pg_ctl and postgres.
    bin: PathBuf,
    /// The psql to run.
    psql: PathBuf,
    /// The loopback TCP port the server listens on.
    port: u16,
    /// The uid and gid the PostgreSQL commands run as, when we are root.
    run_as: Option<(u32, u32)>,
    /// Whether the server was started and not stopped since.
    running: bool,
}

#[allow(dead_code, unreachable_pub)]
impl Cluster {
    /// initdb in a fresh temp dir, start on a free loopback TCP port, create
    /// database `multidriver` owned by role `multidriver` (password-less
    /// trust auth). The error says plainly what is missing or what failed.
    pub fn start() -> Result<Cluster, String> {
        let bin = find_server_bin()?;
        let psql = find_psql(&bin)?;
        let run_as = if effective_uid_is_root()? {
            Some(postgres_user()?)
        } else {
            None
        };

        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("md-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the temp dir {}: {e}", dir.display()))?;

        // From here on `Drop` removes the temp dir (and stops the server).
        let mut cluster = Cluster {
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            dir,
            bin,
            psql,
            port: 0,
            run_as,
            running: false,
        };
        cluster.init()?;

        let mut last_err = String::new();
        for _ in 0..PORT_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => {
                    last_err.clear();
                    break;
                }
                Err(e) => {
                    let port_taken = e.contains("already in use") || e.contains("could not bind");
                    last_err = e;
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        if !last_err.is_empty() {
            return Err(last_err);
        }

        cluster.psql_in("postgres", "CREATE ROLE multidriver LOGIN")?;
        cluster.psql_in("postgres", "CREATE DATABASE multidriver OWNER multidriver")?;
        Ok(cluster)
    }

    /// The connection URL of database `multidriver` as role `multidriver`.
    pub fn url(&self) -> String {
        format!("postgres://multidriver@127.0.0.1:{}/multidriver", self.port)
    }

    /// The loopback TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Fast shutdown (`pg_ctl stop -m fast`); returns once the server has
    /// stopped. The data is kept, for `restart`.
    pub fn stop(&mut self) -> Result<(), String> {
        if !self.running {
            return Err("the PostgreSQL test cluster is not running".to_string());
        }
        self.pg_ctl_stop("fast")?;
        self.running = false;
        Ok(())
    }

    /// Starts the server again on the same port and data dir (after `stop`);
    /// returns once it accepts connections (`pg_ctl -w`).
    pub fn restart(&mut self) -> Result<(), String> {
        if self.running {
            return Err("the PostgreSQL test cluster is already running".to_string());
        }
        self.pg_ctl_start()
    }

    /// Turns TLS on with this certificate chain and key (PEM): writes them
    /// into the cluster's directory, owned by the user the server runs as
    /// (the key readable by it alone, as the server requires), and reloads
    /// the configuration. Plain connections are still accepted.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let cert = self.dir.join("server.crt");
        let key = self.dir.join("server.key");
        for (path, text, mode) in [(&cert, cert_pem, 0o644), (&key, key_pem, 0o600)] {
            std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if let Some((uid, gid)) = self.run_as {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", path.display()))?;
            }
        }
        self.psql_in(
            "postgres",
            &format!(
                "ALTER SYSTEM SET ssl_cert_file = {}",
                conf_quote(&cert.display().to_string())
            ),
        )?;
        self.psql_in(
            "postgres",
            &format!(
                "ALTER SYSTEM SET ssl_key_file = {}",
                conf_quote(&key.display().to_string())
            ),
        )?;
        self.psql_in("postgres", "ALTER SYSTEM SET ssl = on")?;
        self.psql_in("postgres", "SELECT pg_reload_conf()")?;
        Ok(())
    }

    /// Runs SQL with psql against database `multidriver` as the superuser
    /// (`psql -At -c`, stopping at the first error) and returns its stdout
    /// without the final newline.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        self.psql_in("multidriver", sql)
    }

    /// `psql -At -c SQL` against database `db` as superuser `postgres`.
    fn psql_in(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut cmd = self.command(&self.psql);
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        .args(["-U", "postgres", "-d", db, "-c", sql])
        .env("PGCONNECT_TIMEOUT", "10");
        let out = run(&mut cmd, COMMAND_DEADLINE)
            .map_err(|e| format!("psql (database {db}) `{sql}`: {e}"))?;
        if !out.success {
            return Err(format!(
                "psql (database {db}) `{sql}` failed ({}): {}",
                out.status,
                out.stderr.trim()
            ));
        }
        Ok(out.stdout.trim_end_matches('\n').to_string())
    }

    /// `initdb` into `self.data` and the test settings into its
    /// postgresql.conf.
    fn init(&mut self) -> Result<(), String> {
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&self.dir, Some(uid), Some(gid)).map_err(|e| {
                format!(
                    "cannot hand {} to the postgres user: {e}",
                    self.dir.display()
                )
            })?;
        }

        let mut cmd = self.command(&self.bin.join("initdb"));
        cmd.arg("-D").arg(&self.data).args([
            "--auth=trust",
            "-U",
            "postgres",
            "--encoding=UTF8",
            // The C locale exists everywhere; the environment's may not.
            "--locale=C",
            // Skipping the fsync of initdb's own files only; the server
            // keeps fsync on.
            "--no-sync",
        ]);
        let out = run(&mut cmd, COMMAND_DEADLINE).map_err(|e| format!("initdb: {e}"))?;
        if !out.success {
            let mut msg = format!(
                "initdb -D {} failed ({}): {}{}",
                self.data.display(),
                out.status,
                out.stderr.trim(),
                tail_of(&out.stdout, LOG_TAIL_LINES)
            );
            if self.run_as.is_some() {
                msg.push_str(&format!(
                    "\n(running as user postgres: can it reach {}?)",
                    self.dir.display()
                ));
            }
            return Err(msg);
        }

        // Unix sockets are not used (everything goes over 127.0.0.1) but are
        // kept out of the system's socket dir; a socket path past the kernel's
        // 107 bytes would stop the server, so a very long temp dir gets none.
        let sock_dir = self.dir.clone();
        let sock_path_len = sock_dir.as_os_str().len() + "/.s.PGSQL.65535".len();
        let sock_dir = if sock_path_len < 100 {
            conf_quote(&sock_dir.to_string_lossy())
        } else {
            "''".to_string()
        };
        // Appended, so these win over initdb's defaults; the port comes from
        // the command line (`pg_ctl -o "-p PORT"`), so a retry can change it.
        let settings = format!(
            "\n# multidriver test cluster (rendezvous/tests/pg/cluster.rs)\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = {sock_dir}\n\
             max_connections = 200\n\
             shared_buffers = 64MB\n\
             fsync = on\n"
        );
        let conf = self.data.join("postgresql.conf");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .map_err(|e| format!("cannot open {}: {e}", conf.display()))?;
        std::io::Write::write_all(&mut file, settings.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
        Ok(())
    }

    /// `pg_ctl start -w` on `self.port`.
    fn pg_ctl_start(&mut self) -> Result<(), String> {
        let mut cmd = self.command(&self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .arg("-w")
            .arg("-t")
            .arg(PG_CTL_WAIT_SECS.to_string())
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .arg("start");
        let out = run(&mut cmd, COMMAND_DEADLINE);
        match out {
            Ok(out) if out.success => {
                self.running = true;
                Ok(())
            }
            Ok(out) => {
                // It may be up after all (pg_ctl -w timed out just as it came
                // up): let `Drop` stop it in any case.
                self.running = self.data.join("postmaster.pid").exists();
                Err(format!(
                    "pg_ctl start (port {}) failed ({}): {}{}",
                    self.port,
                    out.status,
                    out.stderr.trim(),
                    self.log_tail()
                ))
            }
            Err(e) => {
                self.running = self.data.join("postmaster.pid").exists();
                Err(format!(
                    "pg_ctl start (port {}): {e}{}",
                    self.port,
                    self.log_tail()
                ))
            }
        }
    }

    /// `pg_ctl stop -w -m MODE`.
    fn pg_ctl_stop(&self, mode: &str) -> Result<(), String> {
        let mut cmd = self.command(&self.bin.join("pg_ctl"));
        cmd.arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "-t"])
            .arg(PG_CTL_WAIT_SECS.to_string())
            .arg("stop");
        let out = run(&mut cmd, COMMAND_DEADLINE)
            .map_err(|e| format!("pg_ctl stop -m {mode}: {e}{}", self.log_tail()))?;
        if !out.success {
            return Err(format!(
                "pg_ctl stop -m {mode} failed ({}): {}{}",
                out.status,
                out.stderr.trim(),
                self.log_tail()
            ));
        }
        Ok(())
    }

    /// A command for a PostgreSQL program: run in the temp dir (the postgres
    /// user may not be able to read ours), as the postgres user when we are
    /// root, with HOME in the temp dir and no PG* variables from outside.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(&self.dir)
            .env("HOME", &self.dir)
            .stdin(Stdio::null());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::process::CommandExt::uid(&mut cmd, uid);
            std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        }
        cmd
    }

    /// The last lines of the server log, as a suffix for error messages.
    fn log_tail(&self) -> String {
        match std::fs::read(&self.log) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                format!(
                    "\n--- last lines of {} ---{}",
                    self.log.display(),
                    tail_of(&text, LOG_TAIL_LINES)
                )
            }
            Err(e) => format!("\n(no server log at {}: {e})", self.log.display()),
        }
    }

    /// The postmaster's pid, from postmaster.pid, if there is one.
    fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running && self.pg_ctl_stop("immediate").is_err() {
            // Last resort, so no server outlives the test.
            if let Some(pid) = self.postmaster_pid() {
                let _ = run(
                    Command::new("kill").arg("-KILL").arg(pid.to_string()),
                    Duration::from_secs(10),
                );
            }
        }
        self.running = false;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The highest-versioned /usr/lib/postgresql/*/bin with initdb, pg_ctl and
/// postgres.
fn find_server_bin() -> Result<PathBuf, String> {
    let missing = || {
        format!(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres) under {PG_LIB}/*/bin \
             (install the `postgresql` package)"
        )
    };
    let entries = std::fs::read_dir(PG_LIB).map_err(|_| missing())?;
    let mut best: Option<(Vec<u64>, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(version) = parse_version(&name) else {
            continue;
        };
        let bin = entry.path().join("bin");
        if !["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|p| bin.join(p).is_file())
        {
            continue;
        }
        if best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin).ok_or_else(missing)
}

/// "15" → [15], "9.6" → [9, 6]; anything else is not a version dir.
fn parse_version(name: &OsStr) -> Option<Vec<u64>> {
    name.to_str()?
        .split('.')
        .map(|part| part.parse().ok())
        .collect()
}

/// psql from the server's bin dir (the real binary, not Debian's
/// pg_wrapper), else from PATH.
fn find_psql(bin: &Path) -> Result<PathBuf, String> {
    let beside = bin.join("psql");
    if beside.is_file() {
        return Ok(beside);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("psql"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "no psql in {} or on PATH (install the `postgresql-client` package)",
                bin.display()
            )
        })
}

/// Whether this process runs with effective uid 0 (`id -u`, else the owner
/// of /proc/self, which is the effective uid).
fn effective_uid_is_root() -> Result<bool, String> {
    if let Ok(out) = Command::new("id").arg("-u").stdin(Stdio::null()).output()
        && out.status.success()
        && let Ok(uid) = String::from_utf8_lossy(&out.stdout).trim().parse::<u32>()
    {
        return Ok(uid == 0);
    }
    let proc_self = std::fs::metadata("/proc/self")
        .map_err(|e| format!("cannot tell whether we run as root (`id -u` failed): {e}"))?;
    Ok(std::os::unix::fs::MetadataExt::uid(&proc_self) == 0)
}

/// The uid and gid of the `postgres` system user.
fn postgres_user() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run `id {flag} postgres`: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "running as root, and PostgreSQL refuses to run as root, but there is no \
                 `postgres` user to run it as (`id {flag} postgres`: {}); install the \
                 `postgresql` package, or run the tests as an ordinary user",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|e| format!("`id {flag} postgres` printed no number: {e}"))
    };
    Ok((id("-u")?, id("-g")?))
}

/// A loopback TCP port nobody listens on right now.
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot bind 127.0.0.1:0 to find a free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot read the free port: {e}"))
}

/// A value quoted for postgresql.conf.
fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The last `n` lines of `text`, each on its own line, or nothing.
fn tail_of(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].iter().map(|l| format!("\n{l}")).collect()
}

/// What a finished command printed.
struct Finished {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

/// Runs `cmd` to completion, killing it once `deadline` has passed.
fn run(cmd: &mut Command, deadline: Duration) -> Result<Finished, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    // `thread::Builder` rather than `thread::spawn`, which panics when no
    // thread can be made: `Drop` runs commands too and must not panic.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::Builder::new().spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );

    let (stdout, stderr) = match (stdout, stderr) {
        (Ok(stdout), Ok(stderr)) => (stdout, stderr),
        (Err(e), _) | (_, Err(e)) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "cannot start a thread to read {:?}: {e}",
                cmd.get_program()
            ));
        }
    };

    let until = Instant::now() + deadline;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                // The readers are left behind: a grandchild may still hold
                // the pipes.
                return Err(format!(
                    "{:?} did not finish within {deadline:?} and was killed",
                    cmd.get_program()
                ));
            }
            Err(e) => return Err(format!("cannot wait for {:?}: {e}", cmd.get_program())),
        }
    };
    Ok(Finished {
        success: status.success(),
        status: status.to_string(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}
