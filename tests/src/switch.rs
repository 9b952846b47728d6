//! The network-switch harness: a phone loses Wi-Fi while an app talks to a
//! peer, on real sockets in network namespaces, with multidriver or with a
//! stock rust-libp2p swarm, at its defaults or tuned ([`Stack`]).
//!
//! ```text
//!            phone namespace                       peer namespace
//!   ┌───────────────────────────┐          ┌──────────────────────────────┐
//!   │ wlan0 10.77.30.1 ─────────┼── veth ──┼─ pw0 10.77.30.2  peer :P     │
//!   │ wwan0 198.51.100.1 ───────┼── veth ──┼─ pc0 198.51.100.2 relay :Q   │
//!   └───────────────────────────┘          │   (+25 ms each way) → :P     │
//!                                          └──────────────────────────────┘
//! ```
//!
//! The peer listens once; its cellular address is a delaying relay in front
//! of the same listener (the kernel's `netem` is not available), so the
//! cellular path has a 4G-like round trip and Wi-Fi a LAN's. Interface
//! names carry the medium (`wlan*` Wi-Fi, `wwan*` cellular), as on Linux.
//!
//! The app on the phone sends a numbered message every 50 ms; the peer
//! acknowledges each. Unacknowledged messages are sent again when a request
//! fails and when the stack reports a new path (multidriver's route events,
//! stock's new connections), so nothing is lost if the stack recovers. The
//! harness then:
//!
//! 1. lets messages flow over Wi-Fi;
//! 2. takes Wi-Fi away ([`Fault`]);
//! 3. measures the time until an acknowledgement arrives over cellular;
//! 4. brings Wi-Fi back and watches whether the stack moves back to it and
//!    whether messages keep flowing meanwhile;
//! 5. stops sending and waits for every message to be acknowledged.
//!
//! The cellular relay meters the phone's cellular radio
//! ([`RadioMeter`](crate::radio::RadioMeter), LTE's profile): wake-ups and
//! modelled joules over the same window for every stack, from the fault
//! (the losing hint, in that case) until the app stops sending, the last
//! packet's tail counted whole ([`Outcome::radio`]).
//!
//! Every wait is bounded, and the namespaces are deleted when the run ends,
//! panics included.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// Here `multidriver` alone is the submodule; the crate is `::multidriver`.
use ::multidriver::transports::connectivity::{ConnectivityHint, HostTransport, NetworkId};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Multiaddr, PeerId, Swarm};

use crate::netns::{self, Netns, NetnsError, VethPair};
use crate::radio::RadioUse;

mod app;
mod multidriver;
mod peer;
mod stock;
mod tuned;

use self::multidriver::available;
// The phones and the peer are the idle harness's too (crate::idle).
pub(crate) use self::multidriver::multidriver_phone;
pub(crate) use peer::start_peer;
pub(crate) use stock::stock_phone;
pub use tuned::{
    TUNED_IDLE_CONNECTION, TUNED_PING_INTERVAL, TUNED_PING_TIMEOUT, TUNED_QUIC_IDLE,
    TUNED_QUIC_KEEP_ALIVE,
};
pub(crate) use tuned::{ip_of, tuned_phone};

/// How often the app sends a message.
pub const MESSAGE_INTERVAL: Duration = Duration::from_millis(50);
/// One-way delay added on the cellular path: 25 ms, a 50 ms round trip,
/// the low end of the LTE core network's 30–100 ms (High Performance
/// Browser Networking, "Mobile Networks"; docs/PARAMETERS.md).
pub const CELL_ONE_WAY: Duration = Duration::from_millis(25);
/// How long messages flow over cellular before Wi-Fi returns, and over
/// Wi-Fi at the end.
const SETTLE: Duration = Duration::from_secs(2);
/// How long messages flow over Wi-Fi before the fault: long enough for a
/// first liveness probe (multidriver's 5 s heartbeat) to measure the path.
const WARM_UP: Duration = Duration::from_secs(6);
/// Up to this much is added to [`WARM_UP`] at random in each run, so the
/// fault falls at any phase of the stacks' 1 s timers (multidriver's active
/// heartbeat, the tuned app's ping), not always just after a probe that
/// started with the connection. Our own choice: one such period.
const WARM_UP_JITTER: Duration = Duration::from_secs(1);
/// The longest a stack is given to recover from the fault: above stock
/// libp2p's worst case at its defaults over TCP, measured here at about
/// 54 s: ping every 15 s with a 20 s timeout (docs/PARAMETERS.md); the fault
/// comes about 7 s after the connection's first ping, so the next ping
/// times out 8 + 20 s after the fault, silently (the first failure is not
/// reported, see [`TUNED_PING_TIMEOUT`]); 15 s later a new ping stream's
/// negotiation times out after 10 s, and that failure is reported. A
/// worst-case phase adds up to 15 s more.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(90);
/// The longest a stack that moves back is given to move back to Wi-Fi once
/// it returns (multidriver; the tuned app when an event tells it Wi-Fi is
/// back).
const RETURN_LIMIT: Duration = Duration::from_secs(20);
/// How long the harness watches a stack that does not move back (stock at
/// its defaults; the tuned app after a silent stall, where no event says
/// Wi-Fi works again).
const RETURN_WATCH: Duration = Duration::from_secs(3);
/// How long after the last message every message must be acknowledged
/// (above request-response's 10 s request timeout, so a message stuck on a
/// dead connection is failed and resent in time).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(25);
/// How long before the fault the losing hint is given.
const HINT_LEAD: Duration = Duration::from_secs(1);
/// Setup (namespaces, first connection) must finish within this.
const SETUP_LIMIT: Duration = Duration::from_secs(30);

const WIFI_PHONE: &str = "10.77.30.1/24";
const WIFI_PEER: &str = "10.77.30.2/24";
const CELL_PHONE: &str = "198.51.100.1/24";
const CELL_PEER: &str = "198.51.100.2/24";
/// The host networks the hint case reports (Android `Network` handles).
const WIFI_NET: NetworkId = NetworkId(100);
const CELL_NET: NetworkId = NetworkId(200);

/// Which transport the app's connection uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP + Noise + yamux.
    Tcp,
    /// QUIC v1.
    Quic,
}

/// How the phone loses Wi-Fi.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The interface goes down and its address goes (what a phone's OS
    /// does when it leaves a Wi-Fi network).
    InterfaceDown,
    /// The link stays up with its address, and silently stops passing
    /// packets both ways.
    Silent,
    /// The host app first says Wi-Fi is losing (Android `onLosing`), and
    /// the default network moves to cellular; a second later the interface
    /// goes down. multidriver runs on host hints only in this case.
    LosingHint,
}

/// Which stack the phone runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// multidriver's `Behaviour` beside the app's protocol.
    Multidriver,
    /// A stock rust-libp2p 0.57 swarm at its defaults ("defaults" in
    /// printed output): smart dial on, ping with its default config (every
    /// 15 s, 20 s timeout), QUIC's 10 s idle timeout; the app treats a
    /// reported ping failure as a lost connection (closes it and dials
    /// again at once), dials again whenever it has no connection, and
    /// ignores interface events and host hints.
    Stock,
    /// A stock rust-libp2p 0.57 swarm configured as a careful mobile
    /// developer would, with the inputs multidriver gets ("tuned"):
    ///
    /// - ping every [`TUNED_PING_INTERVAL`] with a timeout of
    ///   [`TUNED_PING_TIMEOUT`] (multidriver's heartbeat and probe deadline
    ///   on these paths); on a reported failure the app closes the
    ///   connection and dials the peer's other addresses at once;
    /// - QUIC: idle timeout [`TUNED_QUIC_IDLE`], keep-alive every
    ///   [`TUNED_QUIC_KEEP_ALIVE`]; smart dial; outbound streams negotiated
    ///   lazily (see [`TUNED_PING_TIMEOUT`] for why);
    /// - the app watches interfaces with `if-watch` (as multidriver does):
    ///   when the address a connection leaves from goes, it closes that
    ///   connection and dials the peer's addresses reached another way at
    ///   once; when Wi-Fi's address comes back, it dials over Wi-Fi and,
    ///   once connected, closes the others;
    /// - with host hints (the [`Fault::LosingHint`] case, where multidriver
    ///   too runs on hints only): on "losing" it dials the other network
    ///   first and closes the old connection once the new one is up
    ///   (make-before-break with stock APIs: a second dial with
    ///   [`PeerCondition::Always`]); on "lost" as on a lost address; on
    ///   Wi-Fi "available" it moves back as on Wi-Fi's return.
    ///
    /// On every new connection the app sends again what is unacknowledged,
    /// as with the defaults.
    ///
    /// [`PeerCondition::Always`]: libp2p::swarm::dial_opts::PeerCondition::Always
    Tuned,
}

impl Stack {
    /// The name printed for the stack.
    pub fn name(self) -> &'static str {
        match self {
            Stack::Multidriver => "multidriver",
            Stack::Stock => "defaults",
            Stack::Tuned => "tuned",
        }
    }
}

/// How long any app waits before dialing again after every address failed
/// (our choice: soon, without spinning).
const REDIAL_PAUSE: Duration = Duration::from_millis(500);

/// How often a phone's send timer looks whether the run stopped, between
/// messages far apart (ours: the phone thread ends within this of the
/// stop, whatever the message interval).
const STOP_POLL: Duration = Duration::from_millis(100);

/// How the app on the phone sends: this harness's steady stream
/// ([`Traffic::STEADY`]), or the idle harness's sparse messages
/// ([`crate::idle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Traffic {
    /// How often the app sends a message.
    pub(crate) interval: Duration,
    /// Sparse traffic: message k goes at a random time in the middle half
    /// of the k-th interval from the phone's start (from a quarter to three
    /// quarters into it), so the messages fall at any phase of the stacks'
    /// timers up to half the interval long (keep-alives, pings), and none
    /// in the first quarter interval, while the stacks connect; and the
    /// stock apps (defaults and tuned) treat a connection the way an app
    /// with a message a minute does: a connection the swarm closed as idle
    /// (`ConnectionError::KeepAliveTimeout`, nothing unacknowledged) is not
    /// dialed again at once but when the app next sends, and a message due
    /// while there is no connection waits for the dial it starts; the
    /// stock swarm at its defaults keeps libp2p-swarm's default idle
    /// timeout. Steady traffic never leaves a connection idle.
    pub(crate) sparse: bool,
}

impl Traffic {
    /// This harness's traffic: a message every [`MESSAGE_INTERVAL`] from
    /// the start.
    pub(crate) const STEADY: Traffic = Traffic {
        interval: MESSAGE_INTERVAL,
        sparse: false,
    };

    /// The app's send timer (inside the phone's runtime), which also ends
    /// its wait once `stop` is set.
    pub(crate) fn ticker(self, stop: &Arc<AtomicBool>) -> Ticker {
        let schedule = if self.sparse {
            let slot = tokio::time::Instant::now();
            Schedule::Sparse {
                interval: self.interval,
                slot,
                due: Schedule::due_in(slot, self.interval),
            }
        } else {
            Schedule::Steady(tokio::time::interval(self.interval))
        };
        Ticker {
            schedule,
            stop: Arc::clone(stop),
        }
    }

    /// Whether an app with this traffic leaves a connection closed with
    /// `cause` for its next message instead of dialing again at once:
    /// sparse traffic, an idle close, and nothing waiting for an
    /// acknowledgement.
    pub(crate) fn leaves_closed(
        self,
        cause: Option<&libp2p::swarm::ConnectionError>,
        log: &Shared,
    ) -> bool {
        self.sparse
            && matches!(
                cause,
                Some(libp2p::swarm::ConnectionError::KeepAliveTimeout)
            )
            && lock(log).messages.values().all(|acked| *acked)
    }
}

/// A phone's send timer ([`Traffic::ticker`]).
pub(crate) struct Ticker {
    schedule: Schedule,
    stop: Arc<AtomicBool>,
}

/// When a [`Ticker`]'s messages are due.
enum Schedule {
    /// Every interval from the start.
    Steady(tokio::time::Interval),
    /// One in each interval from `slot` on, at `due`; see
    /// [`Traffic::sparse`].
    Sparse {
        interval: Duration,
        /// The start of the current interval.
        slot: tokio::time::Instant,
        /// When its message is due.
        due: tokio::time::Instant,
    },
}

impl Schedule {
    /// A random time in the middle half of the interval from `slot`.
    fn due_in(slot: tokio::time::Instant, interval: Duration) -> tokio::time::Instant {
        slot + interval / 4 + jitter(interval / 2)
    }
}

impl Ticker {
    /// Until a message is due, or the run stopped (looked at every
    /// [`STOP_POLL`]), so a phone whose messages are minutes apart still
    /// ends soon after the stop. Cancel-safe, as the phones' `select!`
    /// needs: the schedule moves on only when a message is due.
    pub(crate) async fn tick(&mut self) {
        loop {
            let due = async {
                match &mut self.schedule {
                    Schedule::Steady(interval) => {
                        interval.tick().await;
                    }
                    Schedule::Sparse {
                        interval,
                        slot,
                        due,
                    } => {
                        tokio::time::sleep_until(*due).await;
                        *slot += *interval;
                        *due = Schedule::due_in(*slot, *interval);
                    }
                }
            };
            tokio::select! {
                () = due => return,
                () = tokio::time::sleep(STOP_POLL) => {
                    if self.stop.load(Ordering::SeqCst) {
                        return;
                    }
                }
            }
        }
    }
}

/// One run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The transport.
    pub transport: Transport,
    /// The fault.
    pub fault: Fault,
    /// The stack.
    pub stack: Stack,
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// From the fault to the first acknowledgement over cellular; `None`
    /// if none came within [`RECOVERY_LIMIT`].
    pub recovery: Option<Duration>,
    /// Messages the app sent (each number once).
    pub sent: u64,
    /// Messages still unacknowledged [`DRAIN_LIMIT`] after the app
    /// stopped sending.
    pub lost: u64,
    /// Requests sent again (failures and path changes).
    pub resent: u64,
    /// From Wi-Fi's return until the app's messages were acknowledged over
    /// Wi-Fi; `None` if they never were.
    pub back_on_wifi: Option<Duration>,
    /// The longest time without an acknowledgement after Wi-Fi returned,
    /// while messages were being sent (make-before-break keeps it near the
    /// message interval).
    pub return_gap: Duration,
    /// The longest time without an acknowledgement around the fault: from
    /// the first fault action (the losing hint, or the fault) until Wi-Fi
    /// returns, counting the stretches before the first and after the last
    /// acknowledgement in that span. Near the message interval when the
    /// stack left before the fault; about the recovery time otherwise.
    pub fault_gap: Duration,
    /// The phone's cellular radio from the first fault action (the losing
    /// hint, or the fault) until the app stopped sending, the last packet's
    /// tail counted whole: wake-ups, bytes and modelled joules (LTE).
    pub radio: RadioUse,
    /// The same over the whole run, from before the phone's first dial.
    pub radio_run: RadioUse,
    /// The path of the last acknowledgement.
    pub final_path: Option<Path>,
    /// What the stack reported, with times from the fault (negative
    /// before it).
    pub story: Vec<String>,
    /// multidriver's route switches: seconds from the fault (negative
    /// before it) and the reason (`InterfaceLost`, `InterfaceLosing`,
    /// `ConnectionClosed`, `Better`).
    pub switches: Vec<(f64, String)>,
}

/// Which path a connection takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Through `wlan0`.
    Wifi,
    /// Through `wwan0` and the delaying relay.
    Cellular,
}

impl Path {
    fn of(addr: &Multiaddr) -> Option<Path> {
        let ip = addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(ip),
            _ => None,
        })?;
        match ip.octets() {
            [10, 77, 30, _] => Some(Path::Wifi),
            [198, 51, 100, _] => Some(Path::Cellular),
            _ => None,
        }
    }
}

/// Why a run could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwitchError {
    /// Namespaces cannot be made here (not root, no `ip`).
    #[error("network namespaces unavailable: {0}")]
    Unavailable(String),
    /// A namespace operation failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Setting up the peer or the phone failed or timed out.
    #[error("setup: {0}")]
    Setup(String),
}

/// What the phone saw, with times.
#[derive(Debug, Default)]
pub(crate) struct Log {
    /// Acknowledgements: when, and over which path.
    pub(crate) acks: Vec<(Instant, Option<Path>)>,
    /// Messages sent: number → acknowledged.
    pub(crate) messages: BTreeMap<u64, bool>,
    pub(crate) resent: u64,
    /// What the stack reported (route events, connections), for the story.
    pub(crate) notes: Vec<(Instant, String)>,
    /// multidriver's route switches: when, and the reason's name.
    switches: Vec<(Instant, String)>,
}

pub(crate) type Shared = Arc<Mutex<Log>>;

pub(crate) fn lock(log: &Shared) -> std::sync::MutexGuard<'_, Log> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs one case; `progress` hears what happens as it happens.
pub fn run(case: Case, progress: &mut dyn FnMut(&str)) -> Result<Outcome, SwitchError> {
    netns::available().map_err(SwitchError::Unavailable)?;
    if case.fault == Fault::Silent {
        netns::drop_available().map_err(SwitchError::Unavailable)?;
    }
    let phone = Netns::create("swphone")?;
    let peer_ns = Netns::create("swpeer")?;
    let wifi = VethPair::connect(&phone, "wlan0", WIFI_PHONE, &peer_ns, "pw0", WIFI_PEER)?;
    let _cell = VethPair::connect(&phone, "wwan0", CELL_PHONE, &peer_ns, "pc0", CELL_PEER)?;

    let stop = Arc::new(AtomicBool::new(false));
    // Stops the peer's and the phone's threads however this function ends.
    let _stop_on_exit = StopOnDrop(Arc::clone(&stop));
    let (peer_id, wifi_addr, cell_addr, radio) = start_peer(
        &peer_ns,
        case.transport,
        [ip_of(WIFI_PEER), ip_of(CELL_PEER)],
        libp2p::ping::Config::default(),
        &stop,
    )?;
    let radio_at_start = radio.reading(Instant::now());
    progress(&format!(
        "peer {peer_id} at {wifi_addr} (Wi-Fi) and {cell_addr} (cellular)"
    ));

    let log: Shared = Arc::default();
    let sending = Arc::new(AtomicBool::new(true));
    let (hints_tx, hints_rx) = tokio::sync::mpsc::channel::<ConnectivityHint>(8);
    let target = Target {
        peer: peer_id,
        wifi: wifi_addr,
        cell: cell_addr,
        traffic: Traffic::STEADY,
    };
    let phone_task = {
        let (log, sending, stop) = (Arc::clone(&log), Arc::clone(&sending), Arc::clone(&stop));
        let transport = case.transport;
        let hinted = case.fault == Fault::LosingHint;
        match case.stack {
            Stack::Multidriver => phone.run_async(move || {
                multidriver_phone(transport, target, hinted, hints_rx, log, sending, stop)
            })?,
            Stack::Tuned => phone.run_async(move || {
                tuned_phone(transport, target, hinted, hints_rx, log, sending, stop)
            })?,
            Stack::Stock => {
                drop(hints_rx);
                phone.run_async(move || stock_phone(transport, target, log, sending, stop))?
            }
        }
    };

    // 1. Messages flow over Wi-Fi.
    wait_until(SETUP_LIMIT, || {
        lock(&log).acks.iter().any(|(_, p)| *p == Some(Path::Wifi))
    })
    .ok_or_else(|| SwitchError::Setup("no acknowledgement over Wi-Fi".into()))?;
    progress("messages flow over Wi-Fi");
    std::thread::sleep(WARM_UP + jitter(WARM_UP_JITTER));

    // 2. Wi-Fi goes.
    let phase_start = Instant::now();
    let radio_at_phase = radio.reading(phase_start);
    if case.fault == Fault::LosingHint {
        let _ = hints_tx.try_send(ConnectivityHint::Losing { network: WIFI_NET });
        progress("hint: Wi-Fi is losing");
        std::thread::sleep(HINT_LEAD);
    }
    let fault_at = Instant::now();
    match case.fault {
        Fault::InterfaceDown | Fault::LosingHint => {
            wifi.set_up(false)?;
            netns::del_addr(&phone, "wlan0", WIFI_PHONE)?;
            if case.fault == Fault::LosingHint {
                let _ = hints_tx.try_send(ConnectivityHint::Lost { network: WIFI_NET });
            }
        }
        Fault::Silent => wifi.set_drop(true)?,
    }
    progress(&format!("Wi-Fi lost ({:?})", case.fault));

    // 3. Until an acknowledgement comes over cellular.
    let recovered = wait_until(RECOVERY_LIMIT, || {
        lock(&log)
            .acks
            .iter()
            .any(|(t, p)| *t > fault_at && *p == Some(Path::Cellular))
    });
    let recovery = recovered.map(|at| at - fault_at);
    match recovery {
        Some(d) => progress(&format!("messages flow over cellular after {d:.2?}")),
        None => progress(&format!("no recovery within {RECOVERY_LIMIT:?}")),
    }
    std::thread::sleep(SETTLE);

    // 4. Wi-Fi returns.
    let returned_at = Instant::now();
    match case.fault {
        Fault::InterfaceDown | Fault::LosingHint => {
            wifi.set_up(true)?;
            netns::add_addr(&phone, "wlan0", WIFI_PHONE)?;
            if case.fault == Fault::LosingHint {
                let _ = hints_tx.try_send(available(WIFI_NET, HostTransport::Wifi));
            }
        }
        Fault::Silent => wifi.set_drop(false)?,
    }
    progress("Wi-Fi is back");
    let limit = match (case.stack, case.fault) {
        (Stack::Multidriver, _) | (Stack::Tuned, Fault::InterfaceDown | Fault::LosingHint) => {
            RETURN_LIMIT
        }
        (Stack::Stock, _) | (Stack::Tuned, Fault::Silent) => RETURN_WATCH,
    };
    let back = wait_until(limit, || {
        lock(&log)
            .acks
            .iter()
            .any(|(t, p)| *t > returned_at && *p == Some(Path::Wifi))
    });
    let back_on_wifi = back.map(|at| at - returned_at);
    match back_on_wifi {
        Some(d) => progress(&format!("back on Wi-Fi after {d:.2?}")),
        None => progress("still on cellular"),
    }
    std::thread::sleep(SETTLE);

    // 5. Stop sending; every message must be acknowledged.
    sending.store(false, Ordering::SeqCst);
    let stopped_at = Instant::now();
    let radio_at_stop = radio.reading(stopped_at);
    wait_until(DRAIN_LIMIT, || {
        lock(&log).messages.values().all(|acked| *acked)
    });
    stop.store(true, Ordering::SeqCst);
    let _ = phone_task.join();

    let log = lock(&log);
    let sent = log.messages.len() as u64;
    let lost = log.messages.values().filter(|a| !**a).count() as u64;
    let return_gap = longest_gap(&log.acks, returned_at, stopped_at);
    let fault_gap = longest_gap(&log.acks, phase_start, returned_at);
    let final_path = log.acks.last().and_then(|(_, p)| *p);
    let from_fault = |t: Instant| {
        if t >= fault_at {
            (t - fault_at).as_secs_f64()
        } else {
            -(fault_at - t).as_secs_f64()
        }
    };
    let story = log
        .notes
        .iter()
        .map(|(t, note)| format!("{:+.3} s {note}", from_fault(*t)))
        .collect();
    let switches = log
        .switches
        .iter()
        .map(|(t, reason)| (from_fault(*t), reason.clone()))
        .collect();
    Ok(Outcome {
        recovery,
        sent,
        lost,
        resent: log.resent,
        back_on_wifi,
        return_gap,
        fault_gap,
        radio: radio_at_stop.since(&radio_at_phase),
        radio_run: radio_at_stop.since(&radio_at_start),
        final_path,
        story,
        switches,
    })
}

/// A random duration below `max` (the standard library's randomly keyed
/// hasher is the source: enough to spread phases, nothing more).
fn jitter(max: Duration) -> Duration {
    use std::hash::BuildHasher;
    let r = std::collections::hash_map::RandomState::new().hash_one(0u8);
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX).max(1);
    Duration::from_nanos(r % nanos)
}

/// Sets the flag when dropped, so a panicking harness stops its threads.
pub(crate) struct StopOnDrop(pub(crate) Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls `done` every 5 ms for at most `limit`; when it turned true.
pub(crate) fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The peer the phone's app talks to, and how it sends.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) peer: PeerId,
    /// Its address over Wi-Fi.
    pub(crate) wifi: Multiaddr,
    /// Its address over cellular (the metering relay).
    pub(crate) cell: Multiaddr,
    pub(crate) traffic: Traffic,
}

fn listen_addr(transport: Transport) -> Multiaddr {
    match transport {
        Transport::Tcp => "/ip4/0.0.0.0/tcp/0",
        Transport::Quic => "/ip4/0.0.0.0/udp/0/quic-v1",
    }
    .parse()
    .expect("a valid multiaddr")
}

/// A stock phone listens, and knows both of the peer's addresses (as from
/// identify or a rendezvous point).
fn listen_knowing_both<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    transport: Transport,
    target: &Target,
) {
    swarm
        .listen_on(listen_addr(transport))
        .expect("a listen address");
    swarm.add_peer_address(target.peer, target.wifi.clone());
    swarm.add_peer_address(target.peer, target.cell.clone());
}

/// A swarm over the case's transport with stock settings, or with
/// multidriver's (`engine`: idle connections kept open, QUIC keep-alive
/// left to the engine).
fn base_swarm<B: NetworkBehaviour>(
    key: Keypair,
    transport: Transport,
    engine: bool,
    behaviour: impl FnOnce(&Keypair) -> B,
) -> Result<Swarm<B>, String> {
    if engine {
        return ::multidriver::transports::stack::build_swarm(
            key,
            &::multidriver::transports::stack::StackConfig::default(),
            behaviour,
        )
        .map_err(|e| e.to_string());
    }
    let idle = Duration::from_secs(300);
    stock::stock_swarm(
        key,
        transport,
        |c| c.with_smart_dial().with_idle_connection_timeout(idle),
        |c| c,
        behaviour,
    )
}

/// The longest time between `from`, the acknowledgements in between, and
/// `to`.
fn longest_gap(acks: &[(Instant, Option<Path>)], from: Instant, to: Instant) -> Duration {
    let mut gap = Duration::ZERO;
    let mut last = from;
    for (t, _) in acks.iter().filter(|(t, _)| *t > from && *t < to) {
        gap = gap.max(*t - last);
        last = *t;
    }
    gap.max(to.saturating_duration_since(last))
}
