//! The idle harness: a phone on cellular only whose app sends a message
//! rarely (by default one a minute for ten minutes), on real sockets in
//! network namespaces, with multidriver or a stock rust-libp2p swarm at its
//! defaults or tuned ([`Stack`]); it counts the phone's cellular radio
//! wake-ups and modelled energy over the whole run.
//!
//! ```text
//!            phone namespace                       peer namespace
//!   ┌───────────────────────────┐          ┌──────────────────────────────┐
//!   │ wlan0 (down, no address)  ┼── veth ──┼─ pw0 10.77.40.2   peer :P    │
//!   │ wwan0 198.18.40.1 ────────┼── veth ──┼─ pc0 198.18.40.2  relay :Q   │
//!   └───────────────────────────┘          │   (+25 ms each way) → :P     │
//!                                          └──────────────────────────────┘
//! ```
//!
//! It is the network-switch harness's setup ([`crate::switch`]: the same
//! peer, relay, radio meter, phones and app) in another regime: Wi-Fi is
//! off for the whole run (the phone knows the peer's Wi-Fi address, as from
//! an earlier rendezvous record, and cannot reach it), and the app sends a
//! numbered message every [`IdleCase::message_interval`] on average, each
//! at a random time in the middle half of its interval (from a quarter to
//! three quarters into it, counted from the phone's start), so the
//! messages fall at any phase of the stacks' own timers, for
//! [`IdleCase::duration`]. As in the switch harness the peer
//! acknowledges each message and the app sends again what a failure or a
//! new path left unacknowledged; unlike it, the stock apps let the swarm
//! close a connection that went idle and dial again when they next send,
//! and the stock swarm at its defaults keeps libp2p-swarm's 10 s idle
//! timeout (see `switch::Traffic`). The peer is the switch harness's:
//! stock rust-libp2p with request-response and ping at its defaults.
//!
//! The cellular relay meters the phone's radio
//! ([`RadioMeter`](crate::radio::RadioMeter), LTE's profile) from before
//! the phone's first dial until the run's duration is over, the last
//! packet's tail counted whole ([`IdleOutcome::radio`]). Then the app stops
//! sending and every message must be acknowledged within
//! [`DRAIN_LIMIT`]; those that are not are [`IdleOutcome::lost`].
//!
//! Namespace names (`idphone…`, `idpeer…`) and addresses (above) differ
//! from the switch harness's, so the two can never collide. Every wait is
//! bounded, and the namespaces are deleted when the run ends, panics
//! included.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ::multidriver::transports::connectivity::ConnectivityHint;

use crate::netns::{self, Netns, VethPair};
use crate::radio::RadioUse;
pub use crate::switch::{DRAIN_LIMIT, Stack, SwitchError, Transport};
use crate::switch::{
    Shared, StopOnDrop, Target, Traffic, ip_of, lock, multidriver_phone, start_peer, stock_phone,
    tuned_phone, wait_until,
};

/// The default run: ten minutes (issue 16's measurement).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(600);
/// The default message interval: one a minute, the simulator's sparse
/// traffic (`message_interval_s = 60` in `scenarios/background-day.toml`).
pub const DEFAULT_MESSAGE_INTERVAL: Duration = Duration::from_secs(60);
/// How often [`run`] reports progress. Our own choice: a line a minute on
/// a ten-minute run.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);
/// How often [`run`] reads the meter to time the wake-ups
/// ([`IdleOutcome::wakeups_at`]). Our own choice: well below LTE's 10.1 s
/// tail, so wake-ups are told apart, and a reading is a few additions.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The peer's ping interval when it does not ping on its own
/// ([`IdleCase::peer_pings`]): a day, longer than any run (ours).
const ANSWER_ONLY: Duration = Duration::from_secs(24 * 3600);

/// The phone's Wi-Fi (never up in this harness) and the peer's: a LAN
/// subnet of our own, not the switch harness's `10.77.30.0/24`.
const WIFI_PHONE: &str = "10.77.40.1/24";
const WIFI_PEER: &str = "10.77.40.2/24";
/// The cellular link: in `198.18.0.0/15`, reserved for benchmarks (RFC
/// 2544 appendix C, RFC 6890), not the switch harness's `198.51.100.0/24`.
const CELL_PHONE: &str = "198.18.40.1/24";
const CELL_PEER: &str = "198.18.40.2/24";

/// One run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleCase {
    /// The stack on the phone.
    pub stack: Stack,
    /// The transport.
    pub transport: Transport,
    /// How long the app runs (and the radio is metered).
    pub duration: Duration,
    /// How often the app sends a message.
    pub message_interval: Duration,
    /// Whether the peer pings the phone on its own (libp2p-ping 0.48's
    /// default, `Config::new`: at once on a new connection and every 15 s;
    /// the switch harness's peer), or only at once on a new connection and then only answers
    /// the phone's pings. A connection held open to a stock peer is pinged
    /// every 15 s whatever the phone's stack does; without the peer's pings
    /// what remains is the phone's own.
    pub peer_pings: bool,
}

impl IdleCase {
    /// `stack` over `transport` with [`DEFAULT_DURATION`] and
    /// [`DEFAULT_MESSAGE_INTERVAL`], against a peer that pings.
    pub fn new(stack: Stack, transport: Transport) -> IdleCase {
        IdleCase {
            stack,
            transport,
            duration: DEFAULT_DURATION,
            message_interval: DEFAULT_MESSAGE_INTERVAL,
            peer_pings: true,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleOutcome {
    /// The phone's cellular radio from before its first dial until the
    /// run's duration was over, the last packet's tail counted whole:
    /// wake-ups, bytes and modelled joules (LTE).
    pub radio: RadioUse,
    /// The metered window (the run's duration and the phone's start).
    pub window: Duration,
    /// Messages the app sent (each number once).
    pub sent: u64,
    /// Messages acknowledged by the end ([`DRAIN_LIMIT`] after the app
    /// stopped sending).
    pub delivered: u64,
    /// Messages still unacknowledged then.
    pub lost: u64,
    /// Requests sent again (failures, new paths, messages that waited for
    /// a connection).
    pub resent: u64,
    /// When each wake-up came, from the phone's start, to within 250 ms
    /// (the time of the meter's reading that first counted it).
    pub wakeups_at: Vec<Duration>,
    /// What the stack reported (route events, connections), with seconds
    /// from the phone's start.
    pub story: Vec<String>,
}

impl IdleOutcome {
    /// Wake-ups per hour of the metered window.
    pub fn wakeups_per_hour(&self) -> f64 {
        per_hour(self.radio.wakeups as f64, self.window)
    }

    /// Joules per hour of the metered window.
    pub fn joules_per_hour(&self) -> f64 {
        per_hour(self.radio.joules, self.window)
    }
}

fn per_hour(x: f64, window: Duration) -> f64 {
    let secs = window.as_secs_f64();
    if secs > 0.0 { x * 3600.0 / secs } else { 0.0 }
}

/// Runs one case; `progress` hears what happens as it happens (a line when
/// the phone starts and one every minute).
pub fn run(case: IdleCase, progress: &mut dyn FnMut(&str)) -> Result<IdleOutcome, SwitchError> {
    if case.duration.is_zero() || case.message_interval.is_zero() {
        return Err(SwitchError::Setup(
            "the duration and the message interval must be longer than zero".into(),
        ));
    }
    netns::available().map_err(SwitchError::Unavailable)?;
    let phone = Netns::create("idphone")?;
    let peer_ns = Netns::create("idpeer")?;
    let _wifi = VethPair::connect(&phone, "wlan0", WIFI_PHONE, &peer_ns, "pw0", WIFI_PEER)?;
    // Wi-Fi is off on the phone before its stack starts.
    netns::del_addr(&phone, "wlan0", WIFI_PHONE)?;
    netns::set_link(&phone, "wlan0", false)?;
    let _cell = VethPair::connect(&phone, "wwan0", CELL_PHONE, &peer_ns, "pc0", CELL_PEER)?;

    let stop = Arc::new(AtomicBool::new(false));
    // Stops the peer's and the phone's threads however this function ends.
    let _stop_on_exit = StopOnDrop(Arc::clone(&stop));
    let (peer_id, wifi_addr, cell_addr, radio) = start_peer(
        &peer_ns,
        case.transport,
        [ip_of(WIFI_PEER), ip_of(CELL_PEER)],
        if case.peer_pings {
            libp2p::ping::Config::default()
        } else {
            libp2p::ping::Config::default().with_interval(ANSWER_ONLY)
        },
        &stop,
    )?;
    progress(&format!(
        "peer {peer_id} at {cell_addr} (cellular; {wifi_addr} over Wi-Fi, which is off)"
    ));

    let log: Shared = Arc::default();
    let sending = Arc::new(AtomicBool::new(true));
    // No host hints in this harness; the sender lives as long as the run.
    let (_hints_tx, hints_rx) = tokio::sync::mpsc::channel::<ConnectivityHint>(1);
    let target = Target {
        peer: peer_id,
        wifi: wifi_addr,
        cell: cell_addr,
        traffic: Traffic {
            interval: case.message_interval,
            sparse: true,
        },
    };
    let started = Instant::now();
    let radio_at_start = radio.reading(started);
    let phone_task = {
        let (log, sending, stop) = (Arc::clone(&log), Arc::clone(&sending), Arc::clone(&stop));
        let transport = case.transport;
        match case.stack {
            Stack::Multidriver => phone.run_async(move || {
                multidriver_phone(transport, target, false, hints_rx, log, sending, stop)
            })?,
            Stack::Tuned => phone.run_async(move || {
                tuned_phone(transport, target, false, hints_rx, log, sending, stop)
            })?,
            Stack::Stock => {
                drop(hints_rx);
                phone.run_async(move || stock_phone(transport, target, log, sending, stop))?
            }
        }
    };
    progress(&format!(
        "{} over {:?}: a message every {:?} for {:?}; the peer {}",
        case.stack.name(),
        case.transport,
        case.message_interval,
        case.duration,
        if case.peer_pings {
            "pings every 15 s"
        } else {
            "only answers pings"
        }
    ));

    let end = started + case.duration;
    let mut wakeups_at = Vec::new();
    let mut next_progress = started + PROGRESS_EVERY;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep((end - now).min(SAMPLE_EVERY));
        if phone_task.is_finished() {
            return Err(SwitchError::Setup("the phone's stack stopped".into()));
        }
        let now = Instant::now();
        let used = radio.reading(now).since(&radio_at_start);
        let new = usize::try_from(used.wakeups)
            .unwrap_or(usize::MAX)
            .saturating_sub(wakeups_at.len());
        wakeups_at.extend(std::iter::repeat_n(now - started, new));
        if now >= next_progress && now < end {
            next_progress += PROGRESS_EVERY;
            let (sent, delivered) = counts(&log);
            progress(&format!(
                "{:>4.0} s: sent {sent}, delivered {delivered}; cellular wake-ups {}, {:.1} J",
                (now - started).as_secs_f64(),
                used.wakeups,
                used.joules
            ));
        }
    }

    // The run is over: the radio's window closes, and every message must
    // be acknowledged.
    sending.store(false, Ordering::SeqCst);
    let stopped_at = Instant::now();
    let used = radio.reading(stopped_at).since(&radio_at_start);
    let new = usize::try_from(used.wakeups)
        .unwrap_or(usize::MAX)
        .saturating_sub(wakeups_at.len());
    wakeups_at.extend(std::iter::repeat_n(stopped_at - started, new));
    wait_until(DRAIN_LIMIT, || {
        lock(&log).messages.values().all(|acked| *acked)
    });
    stop.store(true, Ordering::SeqCst);
    if phone_task.join().is_err() {
        return Err(SwitchError::Setup("the phone's stack panicked".into()));
    }

    let (sent, delivered) = counts(&log);
    let log = lock(&log);
    let story = log
        .notes
        .iter()
        .map(|(t, note)| format!("{:.3} s {note}", (*t - started).as_secs_f64()))
        .collect();
    Ok(IdleOutcome {
        radio: used,
        window: stopped_at - started,
        sent,
        delivered,
        lost: sent - delivered,
        resent: log.resent,
        wakeups_at,
        story,
    })
}

/// Messages sent and acknowledged so far.
fn counts(log: &Shared) -> (u64, u64) {
    let log = lock(log);
    let sent = log.messages.len() as u64;
    let delivered = log.messages.values().filter(|acked| **acked).count() as u64;
    (sent, delivered)
}
