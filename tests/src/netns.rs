//! Real Linux network namespaces for tests that need separate network stacks.
//!
//! A [`Netns`] is a named namespace made with `ip netns add`; dropping it runs
//! `ip netns del`, also while a test panics. [`VethPair::connect`] joins two
//! namespaces with a virtual Ethernet cable, and the free functions here
//! change links, addresses and routes the way a moving device's network
//! changes. [`Netns::run`] and [`Netns::run_async`] run code on a thread that
//! has entered the namespace, so every socket that code opens lives there.
//!
//! Everything shells out to `ip` (and `tc` for [`set_drop`]) from iproute2,
//! each command bounded by [`COMMAND_TIMEOUT`]. Namespaces need root: call
//! [`available`] first and skip the test with its reason when it fails.
//!
//! Packet loss without a link change: the kernel here has no `netem`, and
//! neither `iptables` nor `nft` is assumed, but the `blackhole` queueing
//! discipline drops every packet an interface sends while the link stays up.
//! [`set_drop`] installs it on one interface (its egress), and
//! [`VethPair::set_drop`] on both ends, which cuts the cable both ways.
//!
//! NAT: [`make_nat_gateway`] turns a namespace into a router that
//! masquerades a private subnet out of its "internet" interface with
//! nftables ([`NatKind`] says how it picks ports), forwards, and drops what
//! arrives unsolicited from the internet, as a home router or a carrier's
//! NAT does. It needs `nft` (package `nftables`); [`nat_available`] says
//! whether it works here. The table is the namespace's, so it goes with it.

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::{self, JoinHandle, Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

/// How long one `ip` or `tc` command may run before it is killed and
/// reported as [`NetnsError::Timeout`]. Our own choice: these commands take
/// milliseconds; ten seconds only catches a wedged system.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest prefix [`Netns::create`] accepts. Our own choice: it keeps names
/// short in `ip netns list` output while leaving room for the pid and counter.
pub const MAX_PREFIX_LEN: usize = 12;

/// Longest Linux interface name (`IFNAMSIZ` is 16 including the NUL).
pub const MAX_IFNAME_LEN: usize = 15;

/// Where `ip netns` keeps the files that name namespaces.
const NETNS_RUN_DIR: &str = "/var/run/netns";

/// How often a running command is polled for exit. Our own choice.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// Namespaces made by this process so far; part of each name.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// What went wrong while making or using a namespace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// A command could not be started (for example `ip` is not installed).
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it could not start.
        source: std::io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it printed on standard error, trimmed.
        stderr: String,
    },
    /// A command ran longer than [`COMMAND_TIMEOUT`] and was killed.
    #[error("`{command}` did not finish within {timeout:?} and was killed")]
    Timeout {
        /// The command line.
        command: String,
        /// The limit it ran into.
        timeout: Duration,
    },
    /// A namespace prefix or interface name is not usable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The namespace file could not be opened.
    #[error("could not open {path}: {source}")]
    Open {
        /// The namespace file.
        path: PathBuf,
        /// Why it could not be opened.
        source: std::io::Error,
    },
    /// `setns(2)` refused to move a thread into the namespace.
    #[error("setns into network namespace {name} failed: {source}")]
    Setns {
        /// The namespace.
        name: String,
        /// The error from the kernel.
        source: nix::Error,
    },
    /// The thread meant to run in the namespace could not be started or died
    /// before it entered the namespace.
    #[error("thread for network namespace {name}: {reason}")]
    Thread {
        /// The namespace.
        name: String,
        /// What happened.
        reason: String,
    },
}

/// A named Linux network namespace, deleted when dropped.
///
/// The name is `<prefix>-<pid>-<counter>`, unique on the machine while this
/// process lives. A new namespace has only `lo`, which [`Netns::create`]
/// brings up. Threads still inside the namespace when it is dropped keep its
/// network stack alive until they exit; the name is gone at once.
#[derive(Debug)]
pub struct Netns {
    name: String,
    deleted: bool,
}

impl Netns {
    /// Makes a namespace named `<prefix>-<pid>-<counter>` and brings `lo` up.
    ///
    /// `prefix` is 1 to [`MAX_PREFIX_LEN`] ASCII letters, digits or `_`.
    /// First deletes namespaces with the same prefix left behind by
    /// processes that no longer run (a test killed before it could clean up).
    pub fn create(prefix: &str) -> Result<Self, NetnsError> {
        if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
            return Err(NetnsError::InvalidName {
                name: prefix.to_owned(),
                reason: "prefix must be 1 to 12 characters",
            });
        }
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(NetnsError::InvalidName {
                name: prefix.to_owned(),
                reason: "prefix may hold only ASCII letters, digits and '_'",
            });
        }
        sweep_stale(prefix);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name])?;
        // From here on, `Drop` deletes the namespace if anything fails.
        let ns = Self {
            name,
            deleted: false,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name, as `ip netns list` shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <name> <args>` and returns its standard output.
    pub fn ip(&self, args: &[&str]) -> Result<String, NetnsError> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `ip netns exec <name> <program> <args>` and returns its standard
    /// output; the program runs inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, NetnsError> {
        let mut all = vec!["netns", "exec", self.name.as_str(), program];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Spawns an OS thread that enters this namespace and then runs `f`.
    ///
    /// Returns once the thread is inside the namespace, so a failed
    /// `setns(2)` is an error here and `f` never runs outside it. Sockets
    /// that `f` opens, including those of a runtime it builds, belong to the
    /// namespace.
    pub fn run<F, T>(&self, f: F) -> Result<JoinHandle<T>, NetnsError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let file = self.open()?;
        let name = self.name.clone();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let handle = thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn(move || enter_then(file, name, ready_tx, f))
            .map_err(|e| self.thread_error(e.to_string()))?;
        self.await_entered(&ready_rx)?;
        Ok(handle)
    }

    /// Like [`Netns::run`], but on a thread of `scope`, so `f` may borrow
    /// from the caller's stack.
    pub fn run_scoped<'scope, 'env, F, T>(
        &self,
        scope: &'scope Scope<'scope, 'env>,
        f: F,
    ) -> Result<ScopedJoinHandle<'scope, T>, NetnsError>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let file = self.open()?;
        let name = self.name.clone();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let handle = thread::Builder::new()
            .name(format!("netns-{}", self.name))
            .spawn_scoped(scope, move || enter_then(file, name, ready_tx, f))
            .map_err(|e| self.thread_error(e.to_string()))?;
        self.await_entered(&ready_rx)?;
        Ok(handle)
    }

    /// Runs a future on a tokio current-thread runtime (time and I/O
    /// enabled) on a thread inside this namespace; see [`Netns::run`].
    ///
    /// `make` builds the future on that thread, so the future itself need
    /// not be `Send`. The handle yields its output.
    pub fn run_async<M, Fut>(&self, make: M) -> Result<JoinHandle<Fut::Output>, NetnsError>
    where
        M: FnOnce() -> Fut + Send + 'static,
        Fut: Future,
        Fut::Output: Send + 'static,
    {
        self.run(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio current-thread runtime");
            runtime.block_on(make())
        })
    }

    /// Deletes the namespace now, reporting failure (dropping it also
    /// deletes it, but can only print an error).
    pub fn delete(mut self) -> Result<(), NetnsError> {
        self.deleted = true;
        ip(&["netns", "del", &self.name]).map(drop)
    }

    fn open(&self) -> Result<File, NetnsError> {
        let path = PathBuf::from(NETNS_RUN_DIR).join(&self.name);
        File::open(&path).map_err(|source| NetnsError::Open { path, source })
    }

    fn thread_error(&self, reason: String) -> NetnsError {
        NetnsError::Thread {
            name: self.name.clone(),
            reason,
        }
    }

    fn await_entered(
        &self,
        ready: &mpsc::Receiver<Result<(), NetnsError>>,
    ) -> Result<(), NetnsError> {
        // The thread sends exactly once before doing anything else; a closed
        // channel means it died first, so this cannot wait forever.
        match ready.recv() {
            Ok(result) => result,
            Err(_) => Err(self.thread_error("died before entering the namespace".into())),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!(
                "warning: could not delete network namespace {}: {e}",
                self.name
            );
        }
    }
}

impl fmt::Display for Netns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The body of a namespace thread: enter, report, then run `f` only if
/// entering worked.
fn enter_then<F, T>(
    file: File,
    name: String,
    ready: mpsc::SyncSender<Result<(), NetnsError>>,
    f: F,
) -> T
where
    F: FnOnce() -> T,
{
    let entered = setns(&file, CloneFlags::CLONE_NEWNET);
    drop(file);
    match entered {
        Ok(()) => {
            // The receiver waits for this message; it cannot be gone yet.
            let _ = ready.send(Ok(()));
            drop(ready);
            f()
        }
        Err(source) => {
            let message = format!("could not enter network namespace {name}: {source}");
            let _ = ready.send(Err(NetnsError::Setns { name, source }));
            // The caller already has the error and never joins this thread;
            // unwind without running `f` and without printing a panic.
            std::panic::resume_unwind(Box::new(message))
        }
    }
}

/// Two namespaces joined by a veth pair: what one end sends, the other
/// receives.
///
/// Keeps only names; the pair disappears with either namespace. Use
/// [`VethPair::delete`] to pull the cable while both namespaces live.
#[derive(Debug, Clone)]
pub struct VethPair {
    a_ns: String,
    a_if: String,
    b_ns: String,
    b_if: String,
}

impl VethPair {
    /// Makes a veth pair with end `a_if` in `a` and end `b_if` in `b`, gives
    /// them the addresses `a_addr` and `b_addr` (CIDR, IPv4 or IPv6, for
    /// example `"10.77.1.1/24"`) and brings both links up.
    ///
    /// Interface names are 1 to [`MAX_IFNAME_LEN`] ASCII letters, digits,
    /// `-`, `_` or `.`. IPv6 addresses skip duplicate address detection, so
    /// they are usable at once.
    pub fn connect(
        a: &Netns,
        a_if: &str,
        a_addr: &str,
        b: &Netns,
        b_if: &str,
        b_addr: &str,
    ) -> Result<Self, NetnsError> {
        check_ifname(a_if)?;
        check_ifname(b_if)?;
        // Made directly inside the namespaces, so the names never collide
        // with interfaces of the host or of other tests.
        a.ip(&[
            "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
        ])?;
        let pair = Self {
            a_ns: a.name.clone(),
            a_if: a_if.to_owned(),
            b_ns: b.name.clone(),
            b_if: b_if.to_owned(),
        };
        add_addr(a, a_if, a_addr)?;
        add_addr(b, b_if, b_addr)?;
        set_link(a, a_if, true)?;
        set_link(b, b_if, true)?;
        Ok(pair)
    }

    /// The interface name of the end in namespace `a`.
    pub fn a_if(&self) -> &str {
        &self.a_if
    }

    /// The interface name of the end in namespace `b`.
    pub fn b_if(&self) -> &str {
        &self.b_if
    }

    /// Brings both ends up or down.
    pub fn set_up(&self, up: bool) -> Result<(), NetnsError> {
        let state = if up { "up" } else { "down" };
        ip(&["-n", &self.a_ns, "link", "set", &self.a_if, state])?;
        ip(&["-n", &self.b_ns, "link", "set", &self.b_if, state])?;
        Ok(())
    }

    /// Makes both ends silently drop every packet they send (`drop`) or
    /// forward normally again; the links stay up. See [`set_drop`].
    pub fn set_drop(&self, drop: bool) -> Result<(), NetnsError> {
        set_drop_named(&self.a_ns, &self.a_if, drop)?;
        set_drop_named(&self.b_ns, &self.b_if, drop)
    }

    /// Deletes the pair (both ends).
    pub fn delete(self) -> Result<(), NetnsError> {
        ip(&["-n", &self.a_ns, "link", "del", &self.a_if]).map(drop)
    }
}

/// Brings interface `ifname` in `ns` up or down.
pub fn set_link(ns: &Netns, ifname: &str, up: bool) -> Result<(), NetnsError> {
    ns.ip(&["link", "set", ifname, if up { "up" } else { "down" }])
        .map(drop)
}

/// Adds address `cidr` (for example `"10.77.1.1/24"` or `"fd77::1/64"`) to
/// `ifname` in `ns`. IPv6 addresses skip duplicate address detection.
pub fn add_addr(ns: &Netns, ifname: &str, cidr: &str) -> Result<(), NetnsError> {
    if cidr.contains(':') {
        ns.ip(&["addr", "add", cidr, "dev", ifname, "nodad"])
    } else {
        ns.ip(&["addr", "add", cidr, "dev", ifname])
    }
    .map(drop)
}

/// Removes address `cidr` from `ifname` in `ns`.
pub fn del_addr(ns: &Netns, ifname: &str, cidr: &str) -> Result<(), NetnsError> {
    ns.ip(&["addr", "del", cidr, "dev", ifname]).map(drop)
}

/// Adds a route to `dest` (CIDR) out of `dev` in `ns`.
///
/// `add_route(&ns, "224.0.0.0/4", "veth0")` routes IPv4 multicast over the
/// veth, which mDNS needs in a namespace with no default route.
pub fn add_route(ns: &Netns, dest: &str, dev: &str) -> Result<(), NetnsError> {
    ns.ip(&["route", "add", dest, "dev", dev]).map(drop)
}

/// Adds a route to `dest` (CIDR, or `default`) through the next hop `via`
/// in `ns`: `add_route_via(&ns, "default", "203.0.113.1")`.
pub fn add_route_via(ns: &Netns, dest: &str, via: &str) -> Result<(), NetnsError> {
    ns.ip(&["route", "add", dest, "via", via]).map(drop)
}

/// Turns IPv4 forwarding on or off in `ns` (`net.ipv4.ip_forward`, which
/// each network namespace has its own copy of; off in a new one).
pub fn set_forwarding(ns: &Netns, on: bool) -> Result<(), NetnsError> {
    let value = if on {
        "net.ipv4.ip_forward=1"
    } else {
        "net.ipv4.ip_forward=0"
    };
    ns.exec("sysctl", &["-q", "-w", value]).map(drop)
}

/// How a NAT gateway made by [`make_nat_gateway`] maps a private
/// `address:port` to a public port.
///
/// Filtering is the same for both: Linux conntrack lets in only packets
/// that answer a flow the inside opened, matched on the remote address
/// *and* port ("address and port dependent filtering", RFC 4787 §5), and
/// the gateway drops everything else that arrives on its internet side.
/// What differs is the mapping, which decides whether hole punching can
/// work:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatKind {
    /// Plain `masquerade`: conntrack keeps the inside source port whenever
    /// that port is free on the public address, so the public port is the
    /// same towards every destination: endpoint-independent mapping in
    /// practice (RFC 4787 §4.1), a "port-restricted cone". What a peer
    /// observed (identify) is what another peer reaches, once the inside
    /// has sent towards it: hole punching works.
    Cone,
    /// `masquerade fully-random`: every new flow (a new remote address or
    /// port) gets a random public port, as a symmetric, carrier-grade NAT
    /// does. The port a peer observed is not the one another peer's packets
    /// must reach: hole punching fails.
    Symmetric,
}

impl NatKind {
    /// The name printed for the kind.
    pub fn name(self) -> &'static str {
        match self {
            NatKind::Cone => "cone",
            NatKind::Symmetric => "symmetric",
        }
    }
}

/// Makes `ns` a NAT gateway: IPv4 forwarding on; packets from `lan` (CIDR,
/// for example `"192.168.1.0/24"`) that leave through `wan_if` are
/// masqueraded to `wan_if`'s address as `kind` says; packets arriving on
/// `wan_if` are let in (to the gateway or forwarded inside) only when they
/// answer a flow conntrack knows (`ct state established,related`), else
/// dropped silently, as a home router's or a carrier's firewall does (a
/// TCP reset or ICMP error from the gateway would also abort the other
/// side's half of a TCP hole punch).
///
/// One nftables table, `multidriver_nat`, in `ns`; it goes when `ns` is
/// deleted. Needs `nft`; see [`nat_available`].
pub fn make_nat_gateway(
    ns: &Netns,
    wan_if: &str,
    lan: &str,
    kind: NatKind,
) -> Result<(), NetnsError> {
    check_ifname(wan_if)?;
    if !lan
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'/'))
    {
        return Err(NetnsError::InvalidName {
            name: lan.to_owned(),
            reason: "the private subnet must be an IPv4 CIDR",
        });
    }
    set_forwarding(ns, true)?;
    let masquerade = match kind {
        NatKind::Cone => "masquerade",
        NatKind::Symmetric => "masquerade fully-random",
    };
    let ruleset = format!(
        "table ip {NAT_TABLE} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{wan_if}\" ip saddr {lan} {masquerade}\n\
         \t}}\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\tiifname \"{wan_if}\" ct state established,related accept\n\
         \t\tiifname \"{wan_if}\" drop\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tiifname \"{wan_if}\" ct state established,related accept\n\
         \t\tiifname \"{wan_if}\" drop\n\
         \t}}\n\
         }}\n"
    );
    nft_apply(ns, &ruleset)
}

/// The nftables table [`make_nat_gateway`] installs.
pub const NAT_TABLE: &str = "multidriver_nat";

/// Runs `nft -f <file>` inside `ns` with `ruleset` written to a temporary
/// file (removed afterwards), within [`COMMAND_TIMEOUT`].
pub fn nft_apply(ns: &Netns, ruleset: &str) -> Result<(), NetnsError> {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("multidriver-nft-{}-{n}.nft", std::process::id()));
    std::fs::write(&path, ruleset).map_err(|source| NetnsError::Open {
        path: path.clone(),
        source,
    })?;
    let file = path.to_string_lossy().into_owned();
    let result = ns.exec("nft", &["-f", &file]).map(drop);
    let _ = std::fs::remove_file(&path);
    result
}

/// The gateway's NAT rules as `nft list table` prints them (for a test's
/// story).
pub fn nat_rules(ns: &Netns) -> Result<String, NetnsError> {
    ns.exec("nft", &["list", "table", "ip", NAT_TABLE])
}

/// Whether [`make_nat_gateway`] works here: [`available`], `nft` present,
/// and a gateway of each [`NatKind`] can be made in a probe namespace.
/// Cached like [`available`].
pub fn nat_available() -> Result<(), String> {
    static ANSWER: OnceLock<Result<(), String>> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            available()?;
            run_command("nft", &["--version"], COMMAND_TIMEOUT).map_err(|e| {
                format!("nftables' `nft` is not usable (apt-get install nftables): {e}")
            })?;
            let ns = Netns::create("mdtnat").map_err(|e| e.to_string())?;
            for kind in [NatKind::Cone, NatKind::Symmetric] {
                ns.exec("nft", &["flush", "ruleset"])
                    .map_err(|e| e.to_string())?;
                make_nat_gateway(&ns, "lo", "10.0.0.0/8", kind).map_err(|e| e.to_string())?;
            }
            ns.delete().map_err(|e| e.to_string())
        })
        .clone()
}

/// Makes `ifname` in `ns` silently drop every packet it sends (`drop`), or
/// send normally again; the link stays up and senders see no error.
///
/// Works by making the `blackhole` queueing discipline the interface's root
/// qdisc (`tc qdisc replace dev IF root blackhole`), and by deleting it
/// again. Only outgoing packets are dropped: to cut a veth both ways use
/// [`VethPair::set_drop`]. Needs `tc` from iproute2.
pub fn set_drop(ns: &Netns, ifname: &str, drop: bool) -> Result<(), NetnsError> {
    set_drop_named(&ns.name, ifname, drop)
}

fn set_drop_named(ns: &str, ifname: &str, drop: bool) -> Result<(), NetnsError> {
    let tc = |args: &[&str]| {
        let mut all = vec!["netns", "exec", ns, "tc"];
        all.extend_from_slice(args);
        ip(&all)
    };
    if drop {
        tc(&["qdisc", "replace", "dev", ifname, "root", "blackhole"]).map(std::mem::drop)
    } else {
        match tc(&["qdisc", "del", "dev", ifname, "root"]) {
            Ok(_) => Ok(()),
            Err(e) => {
                // Deleting fails when the default qdisc is in place, that
                // is, when nothing was dropping; only then is it fine.
                let shown = tc(&["qdisc", "show", "dev", ifname, "root"])?;
                if shown.contains("blackhole") {
                    Err(e)
                } else {
                    Ok(())
                }
            }
        }
    }
}

/// Whether network namespaces can be made here: running as root, `ip`
/// present, and a probe namespace can be made, entered and deleted.
///
/// The error is the reason to print when skipping a test. The probe runs
/// once per process; later calls return the cached answer.
pub fn available() -> Result<(), String> {
    static ANSWER: OnceLock<Result<(), String>> = OnceLock::new();
    ANSWER.get_or_init(probe).clone()
}

/// Whether [`set_drop`] works here: [`available`], and `tc` can install the
/// `blackhole` qdisc in a probe namespace. Cached like [`available`].
pub fn drop_available() -> Result<(), String> {
    static ANSWER: OnceLock<Result<(), String>> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            available()?;
            let ns = Netns::create("mdtdrop").map_err(|e| e.to_string())?;
            set_drop(&ns, "lo", true).map_err(|e| e.to_string())?;
            set_drop(&ns, "lo", false).map_err(|e| e.to_string())?;
            ns.delete().map_err(|e| e.to_string())
        })
        .clone()
}

fn probe() -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        return Err("network namespaces need root".into());
    }
    ip(&["-V"]).map_err(|e| format!("iproute2 `ip` is not usable: {e}"))?;
    let ns = Netns::create("mdtprobe").map_err(|e| e.to_string())?;
    let handle = ns.run(|| ()).map_err(|e| e.to_string())?;
    handle
        .join()
        .map_err(|_| "probe thread panicked".to_owned())?;
    let name = ns.name().to_owned();
    ns.delete().map_err(|e| e.to_string())?;
    if list().map_err(|e| e.to_string())?.contains(&name) {
        return Err(format!("probe namespace {name} still listed after delete"));
    }
    Ok(())
}

/// The names `ip netns list` shows.
pub fn list() -> Result<Vec<String>, NetnsError> {
    let out = ip(&["netns", "list"])?;
    // Lines look like `name` or `name (id: 3)`.
    Ok(out
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Deletes namespaces named `<prefix>-<pid>-<n>` whose process is gone.
/// Best effort: errors are ignored.
fn sweep_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(NETNS_RUN_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let mut parts = rest.split('-');
        let (Some(pid), Some(n), None) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if n.parse::<u32>().is_err() || pid == std::process::id() {
            continue;
        }
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", &name]);
        }
    }
}

fn check_ifname(name: &str) -> Result<(), NetnsError> {
    let reason = if name.is_empty() || name.len() > MAX_IFNAME_LEN {
        "interface names are 1 to 15 characters"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        "interface names may hold only ASCII letters, digits, '-', '_' and '.'"
    } else {
        return Ok(());
    };
    Err(NetnsError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Runs `ip <args>` within [`COMMAND_TIMEOUT`]; returns standard output.
fn ip(args: &[&str]) -> Result<String, NetnsError> {
    run_command("ip", args, COMMAND_TIMEOUT)
}

/// Runs a command, killing it after `timeout`; succeeds only on exit 0.
fn run_command(program: &str, args: &[&str], timeout: Duration) -> Result<String, NetnsError> {
    let command = std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    // Read both pipes on their own threads so a chatty command cannot fill
    // a pipe and block while it is polled below.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NetnsError::Timeout { command, timeout });
            }
            Err(source) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(NetnsError::Spawn { command, source });
            }
        }
    };
    // The child has exited, so the pipes reach end of file (unless it left
    // a grandchild holding them; the namespace commands here do not).
    let collect = |h: Option<JoinHandle<Vec<u8>>>| {
        h.and_then(|h| h.join().ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    };
    let stdout = collect(stdout);
    let stderr = collect(stderr);
    if status.success() {
        Ok(stdout)
    } else {
        Err(NetnsError::Command {
            command,
            status,
            stderr: stderr.trim().to_owned(),
        })
    }
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}
