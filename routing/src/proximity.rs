//! BLE-style proximity: the radio interface a host app implements, and an
//! in-process radio for tests and the simulator.
//!
//! A proximity radio does two things: it **advertises** a short token (a BLE
//! advertisement carries about 20 free bytes), and it **scans**, reporting
//! each token it hears with its signal strength. Everything else (which
//! namespace a token stands for, how to reach the peer behind it) is the
//! proximity driver's business, not the radio's.
//!
//! The interface is sans-IO and poll-based like the engine: the host calls
//! into the radio and drains [`ProximityRadio::poll_sighting`]; nothing
//! blocks and nothing reads a clock (times are passed in).
//!
//! The in-process [`Ether`] also carries **data links** between its radios
//! (stations), shaped like BLE connections: a station
//! [listens](Ether::listen), another [connects](Ether::connect) to it while
//! both are on and within range, and each side gets a [`Link`], a duplex
//! byte stream with a one-way latency, a rate limit and bounded buffering
//! per direction (see [`EtherConfig`]). A link breaks when a radio is
//! switched off, moves out of range or is dropped. Unlike sightings, links
//! are async I/O: they read the monotonic clock and wait on real timers
//! (`futures-timer`, so any executor drives them). [`crate::ble`] makes a
//! libp2p transport of them.
//!
//! ```
//! use multidriver_routing::proximity::{Ether, EtherConfig, ProximityRadio, Token};
//! use multidriver_scoring::Timestamp;
//!
//! let ether = Ether::new(EtherConfig::default());
//! let mut alice = ether.radio([0.0, 0.0])?;
//! let mut bob = ether.radio([5.0, 0.0])?; // 5 m away
//! alice.advertise(Token::new(*b"alice-token-0001"))?;
//! bob.start_scan()?;
//! ether.tick(Timestamp::from_millis(1_000));
//! let seen = bob.poll_sighting().expect("in range");
//! assert_eq!(seen.token, Token::new(*b"alice-token-0001"));
//! assert!(seen.rssi_dbm < -59); // weaker than at 1 m
//! # Ok::<(), multidriver_routing::Error>(())
//! ```
//!
//! A data link:
//!
//! ```
//! use libp2p::futures::{AsyncReadExt, AsyncWriteExt, executor::block_on};
//! use multidriver_routing::proximity::{Ether, EtherConfig};
//!
//! let ether = Ether::new(EtherConfig::default());
//! let phone = ether.radio([0.0, 0.0])?;
//! let watch = ether.radio([2.0, 0.0])?;
//! let mut listener = watch.listen()?;
//! let mut link = phone.connect(watch.station())?;
//! block_on(async {
//!     let mut other_end = listener.accept().await?;
//!     link.write_all(b"hello").await?; // readable 30 ms + 0.4 ms later
//!     let mut got = [0; 5];
//!     other_end.read_exact(&mut got).await?;
//!     assert_eq!(&got, b"hello");
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::Duration;

use multidriver_scoring::Timestamp;

use crate::Error;

mod links;

pub use links::{Link, LinkListener};

/// Bytes in a token: a 128-bit service-data payload fits a legacy BLE
/// advertisement (31 bytes) beside its headers.
pub const TOKEN_LEN: usize = 16;

/// What a radio advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token([u8; TOKEN_LEN]);

impl Token {
    /// A token of these bytes.
    pub const fn new(bytes: [u8; TOKEN_LEN]) -> Self {
        Token(bytes)
    }

    /// Its bytes.
    pub const fn bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }
}

/// A token heard by a scanning radio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    /// What was heard.
    pub token: Token,
    /// Who sent it: the advertiser's link address (a BLE advertisement
    /// always carries its device address, `AdvA`, Bluetooth Core Spec v5.3
    /// Vol 6 Part B §2.3.1). For the in-process radio it is the station
    /// number, which [`crate::ble`] dials as `/memory/<station>`.
    pub from: u64,
    /// Received signal strength, dBm (closer is higher).
    pub rssi_dbm: i16,
    /// When.
    pub at: Timestamp,
}

/// A BLE-style radio, implemented by the host app over the platform's BLE
/// API (Android `BluetoothLeAdvertiser`/`BluetoothLeScanner`, iOS
/// `CBPeripheralManager`/`CBCentralManager`), or by [`InProcessRadio`].
pub trait ProximityRadio {
    /// Advertises `token`, replacing what was advertised before.
    ///
    /// # Errors
    /// The radio is off or advertising is not permitted.
    fn advertise(&mut self, token: Token) -> Result<(), Error>;
    /// Stops advertising.
    fn stop_advertising(&mut self);
    /// Starts scanning; sightings arrive through
    /// [`poll_sighting`](Self::poll_sighting).
    ///
    /// # Errors
    /// The radio is off or scanning is not permitted.
    fn start_scan(&mut self) -> Result<(), Error>;
    /// Stops scanning.
    fn stop_scan(&mut self);
    /// The next sighting, oldest first.
    fn poll_sighting(&mut self) -> Option<Sighting>;
}

/// Bounds and propagation of an [`Ether`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EtherConfig {
    pub(crate) range_m: f64,
    pub(crate) rssi_at_1m_dbm: f64,
    pub(crate) path_loss_exponent: f64,
    pub(crate) max_radios: usize,
    pub(crate) max_pending_sightings: usize,
    pub(crate) max_links: usize,
    pub(crate) link_latency: Duration,
    pub(crate) link_rate_bps: u64,
    pub(crate) link_buffer_bytes: usize,
}

/// Read access to every setting; each says what happens at its bound.
impl EtherConfig {
    /// Farthest a radio hears another, metres. Default 30 m (our assumption:
    /// BLE at 0 dBm indoors reaches 10–30 m).
    pub fn range_m(&self) -> f64 {
        self.range_m
    }

    /// Builder: sets [`range_m`](Self::range_m).
    pub fn with_range_m(mut self, range_m: f64) -> Self {
        self.range_m = range_m;
        self
    }

    /// Signal at 1 m, dBm. Default −59 dBm, the calibrated 1 m power common
    /// in iBeacon advertisements.
    pub fn rssi_at_1m_dbm(&self) -> f64 {
        self.rssi_at_1m_dbm
    }

    /// Builder: sets [`rssi_at_1m_dbm`](Self::rssi_at_1m_dbm).
    pub fn with_rssi_at_1m_dbm(mut self, rssi_at_1m_dbm: f64) -> Self {
        self.rssi_at_1m_dbm = rssi_at_1m_dbm;
        self
    }

    /// Path-loss exponent. Default 2 (free space; indoor values run 2–4).
    pub fn path_loss_exponent(&self) -> f64 {
        self.path_loss_exponent
    }

    /// Builder: sets [`path_loss_exponent`](Self::path_loss_exponent).
    pub fn with_path_loss_exponent(mut self, path_loss_exponent: f64) -> Self {
        self.path_loss_exponent = path_loss_exponent;
        self
    }

    /// Most radios in the ether. At the bound [`Ether::radio`] fails with
    /// [`Error::TableFull`]. Default 1024.
    pub fn max_radios(&self) -> usize {
        self.max_radios
    }

    /// Builder: sets [`max_radios`](Self::max_radios).
    pub fn with_max_radios(mut self, max_radios: usize) -> Self {
        self.max_radios = max_radios;
        self
    }

    /// Most sightings a radio holds until polled. At the bound the oldest is
    /// dropped and counted in [`InProcessRadio::dropped`]. Default 256.
    pub fn max_pending_sightings(&self) -> usize {
        self.max_pending_sightings
    }

    /// Builder: sets [`max_pending_sightings`](Self::max_pending_sightings).
    pub fn with_max_pending_sightings(mut self, max_pending_sightings: usize) -> Self {
        self.max_pending_sightings = max_pending_sightings;
        self
    }

    /// Most data links in the ether at once, counted from
    /// [`Ether::connect`] until both ends are dropped (a link waiting to be
    /// accepted counts; so does a broken link whose ends are still held).
    /// At the bound [`Ether::connect`] fails with [`Error::TableFull`]
    /// (`table: "links"`) and nothing changes. Default 1024 (our choice:
    /// one per radio at the default [`max_radios`](Self::max_radios)).
    pub fn max_links(&self) -> usize {
        self.max_links
    }

    /// Builder: sets [`max_links`](Self::max_links).
    pub fn with_max_links(mut self, max_links: usize) -> Self {
        self.max_links = max_links;
        self
    }

    /// One-way latency of a link, per direction. Default 30 ms: our choice
    /// within the BLE connection interval range (Bluetooth Core Spec v5.3
    /// Vol 6 Part B §4.5.1: 7.5 ms–4 s). Zero: none.
    pub fn link_latency(&self) -> Duration {
        self.link_latency
    }

    /// Builder: sets [`link_latency`](Self::link_latency).
    pub fn with_link_latency(mut self, link_latency: Duration) -> Self {
        self.link_latency = link_latency;
        self
    }

    /// Rate of a link, bit/s, per direction. Default 100 000 (100 kbit/s):
    /// our conservative figure for L2CAP connection-oriented channels on
    /// phones. Zero: no rate limit.
    pub fn link_rate_bps(&self) -> u64 {
        self.link_rate_bps
    }

    /// Builder: sets [`link_rate_bps`](Self::link_rate_bps).
    pub fn with_link_rate_bps(mut self, link_rate_bps: u64) -> Self {
        self.link_rate_bps = link_rate_bps;
        self
    }

    /// Most bytes a link holds per direction, written and not yet read
    /// (in flight or arrived). At the bound the writer gets
    /// `Poll::Pending` until the reader makes room. Default 16 KiB (our
    /// choice: 1.3 s at the default rate). Treated as at least 1.
    pub fn link_buffer_bytes(&self) -> usize {
        self.link_buffer_bytes
    }

    /// Builder: sets [`link_buffer_bytes`](Self::link_buffer_bytes).
    pub fn with_link_buffer_bytes(mut self, link_buffer_bytes: usize) -> Self {
        self.link_buffer_bytes = link_buffer_bytes;
        self
    }
}

impl Default for EtherConfig {
    fn default() -> Self {
        EtherConfig {
            range_m: 30.0,
            rssi_at_1m_dbm: -59.0,
            path_loss_exponent: 2.0,
            max_radios: 1024,
            max_pending_sightings: 256,
            max_links: 1024,
            link_latency: Duration::from_millis(30),
            link_rate_bps: 100_000,
            link_buffer_bytes: 16 * 1024,
        }
    }
}

#[derive(Debug, Default)]
struct Station {
    position: [f64; 2],
    advertising: Option<Token>,
    scanning: bool,
    on: bool,
    sightings: VecDeque<Sighting>,
    dropped: u64,
    /// Links waiting to be accepted, while a [`LinkListener`] exists.
    listener: Option<links::ListenerState>,
}

#[derive(Debug)]
struct Shared {
    config: EtherConfig,
    stations: BTreeMap<u64, Station>,
    /// The next station number; numbers start at 1 and are never reused.
    next: u64,
    links: BTreeMap<u64, links::LinkState>,
    next_link: u64,
}

/// Distance between two positions, metres.
fn distance(a: [f64; 2], b: [f64; 2]) -> f64 {
    ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt()
}

/// Wakes tasks collected while the lock was held.
fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

/// The shared air of in-process radios: who is where, who advertises what.
/// Cloning it gives another handle to the same air.
#[derive(Debug, Clone)]
pub struct Ether {
    shared: Arc<Mutex<Shared>>,
}

/// A radio in an [`Ether`], a numbered station. Dropping it removes it
/// from the air and breaks its links.
#[derive(Debug)]
pub struct InProcessRadio {
    id: u64,
    shared: Arc<Mutex<Shared>>,
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding the lock leaves plain data behind; keep going.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Ether {
    /// Empty air.
    pub fn new(config: EtherConfig) -> Self {
        Ether {
            shared: Arc::new(Mutex::new(Shared {
                config,
                stations: BTreeMap::new(),
                next: 1,
                links: BTreeMap::new(),
                next_link: 0,
            })),
        }
    }

    /// A new radio at `position` (metres), switched on, silent. Its
    /// station number ([`InProcessRadio::station`]) is the next one, from
    /// 1 up; 0 is never a station.
    ///
    /// # Errors
    /// [`Error::TableFull`] at [`EtherConfig::max_radios`].
    pub fn radio(&self, position: [f64; 2]) -> Result<InProcessRadio, Error> {
        let mut s = lock(&self.shared);
        if s.stations.len() >= s.config.max_radios {
            return Err(Error::TableFull {
                table: "radios",
                limit: s.config.max_radios,
            });
        }
        let id = s.next;
        s.next += 1;
        s.stations.insert(
            id,
            Station {
                position,
                on: true,
                ..Station::default()
            },
        );
        Ok(InProcessRadio {
            id,
            shared: self.shared.clone(),
        })
    }

    /// One scan period at `now`: every scanning radio hears every other
    /// radio in range that advertises (in radio order). Links whose radios
    /// are off or out of range break (they also break as soon as a radio
    /// moves, is switched off or is dropped, and on their next read or
    /// write).
    pub fn tick(&self, now: Timestamp) {
        let mut s = lock(&self.shared);
        let mut wakers = Vec::new();
        links::sweep(&mut s, None, &mut wakers);
        let config = s.config;
        let adverts: Vec<(u64, [f64; 2], Token)> = s
            .stations
            .iter()
            .filter(|(_, st)| st.on)
            .filter_map(|(id, st)| st.advertising.map(|t| (*id, st.position, t)))
            .collect();
        for (id, st) in s.stations.iter_mut() {
            if !(st.on && st.scanning) {
                continue;
            }
            for &(other, pos, token) in &adverts {
                if other == *id {
                    continue;
                }
                let d = distance(pos, st.position);
                if d > config.range_m {
                    continue;
                }
                // Log-distance path loss; closer than 1 m reads as 1 m.
                let rssi =
                    config.rssi_at_1m_dbm - 10.0 * config.path_loss_exponent * d.max(1.0).log10();
                if st.sightings.len() >= config.max_pending_sightings {
                    st.sightings.pop_front();
                    st.dropped += 1;
                }
                st.sightings.push_back(Sighting {
                    token,
                    from: other,
                    rssi_dbm: rssi.round().clamp(-127.0, 20.0) as i16,
                    at: now,
                });
            }
        }
        drop(s);
        wake_all(wakers);
    }
}

impl InProcessRadio {
    /// The radio's station number in its [`Ether`] (from 1 up, never
    /// reused). [`crate::ble`] addresses it as `/memory/<station>`.
    pub fn station(&self) -> u64 {
        self.id
    }

    /// A handle to the radio's [`Ether`].
    pub fn ether(&self) -> Ether {
        Ether {
            shared: self.shared.clone(),
        }
    }

    /// Accepts links to this radio; see [`Ether::listen`].
    ///
    /// # Errors
    /// As [`Ether::listen`].
    pub fn listen(&self) -> Result<LinkListener, Error> {
        self.ether().listen(self.id)
    }

    /// Opens a link from this radio to station `to`; see
    /// [`Ether::connect`].
    ///
    /// # Errors
    /// As [`Ether::connect`].
    pub fn connect(&self, to: u64) -> Result<Link, Error> {
        self.ether().connect(self.id, to)
    }

    /// Moves the radio. Its links to radios now out of range break.
    pub fn move_to(&mut self, position: [f64; 2]) {
        self.update(|st| st.position = position);
    }

    /// Switches the radio on or off (Bluetooth toggled by the user). While
    /// off it neither advertises nor hears, [`ProximityRadio`] calls that
    /// start something fail, its links break and no link can be opened to
    /// or from it (a [`LinkListener`] stays, and accepts again once on).
    pub fn set_on(&mut self, on: bool) {
        self.update(|st| st.on = on);
    }

    fn update(&mut self, f: impl FnOnce(&mut Station)) {
        let mut s = lock(&self.shared);
        if let Some(st) = s.stations.get_mut(&self.id) {
            f(st);
        }
        let mut wakers = Vec::new();
        links::sweep(&mut s, Some(self.id), &mut wakers);
        drop(s);
        wake_all(wakers);
    }

    /// Sightings dropped because nobody polled them in time.
    pub fn dropped(&self) -> u64 {
        lock(&self.shared)
            .stations
            .get(&self.id)
            .map_or(0, |st| st.dropped)
    }

    fn with_on<T>(&mut self, f: impl FnOnce(&mut Station) -> T) -> Result<T, Error> {
        let mut s = lock(&self.shared);
        match s.stations.get_mut(&self.id) {
            Some(st) if st.on => Ok(f(st)),
            _ => Err(Error::RadioOff),
        }
    }
}

impl ProximityRadio for InProcessRadio {
    fn advertise(&mut self, token: Token) -> Result<(), Error> {
        self.with_on(|st| st.advertising = Some(token))
    }

    fn stop_advertising(&mut self) {
        if let Some(st) = lock(&self.shared).stations.get_mut(&self.id) {
            st.advertising = None;
        }
    }

    fn start_scan(&mut self) -> Result<(), Error> {
        self.with_on(|st| st.scanning = true)
    }

    fn stop_scan(&mut self) {
        if let Some(st) = lock(&self.shared).stations.get_mut(&self.id) {
            st.scanning = false;
        }
    }

    fn poll_sighting(&mut self) -> Option<Sighting> {
        lock(&self.shared)
            .stations
            .get_mut(&self.id)
            .and_then(|st| st.sightings.pop_front())
    }
}

impl Drop for InProcessRadio {
    fn drop(&mut self) {
        let mut s = lock(&self.shared);
        let mut wakers = Vec::new();
        if let Some(st) = s.stations.remove(&self.id)
            && let Some(listener) = st.listener
        {
            listener.release(&mut s, &mut wakers);
        }
        links::sweep(&mut s, Some(self.id), &mut wakers);
        drop(s);
        wake_all(wakers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: u8) -> Token {
        Token::new([n; TOKEN_LEN])
    }

    #[test]
    fn only_radios_in_range_are_heard_and_closer_is_louder() {
        let ether = Ether::new(EtherConfig::default());
        let mut scanner = ether.radio([0.0, 0.0]).unwrap();
        let mut near = ether.radio([2.0, 0.0]).unwrap();
        let mut far = ether.radio([20.0, 0.0]).unwrap();
        let mut out = ether.radio([31.0, 0.0]).unwrap();
        near.advertise(token(1)).unwrap();
        far.advertise(token(2)).unwrap();
        out.advertise(token(3)).unwrap();
        scanner.start_scan().unwrap();
        ether.tick(Timestamp::from_millis(730));
        let seen: Vec<Sighting> = std::iter::from_fn(|| scanner.poll_sighting()).collect();
        assert_eq!(
            seen.iter().map(|s| s.token).collect::<Vec<_>>(),
            vec![token(1), token(2)]
        );
        assert!(seen[0].rssi_dbm > seen[1].rssi_dbm, "{seen:?}");
        assert!(seen.iter().all(|s| s.at == Timestamp::from_millis(730)));
        // The advertisers hear nothing: they do not scan.
        assert_eq!(near.poll_sighting(), None);
    }

    #[test]
    fn stopping_moving_and_switching_off_are_honoured() {
        let ether = Ether::new(EtherConfig::default());
        let mut scanner = ether.radio([0.0, 0.0]).unwrap();
        let mut peer = ether.radio([5.0, 0.0]).unwrap();
        peer.advertise(token(9)).unwrap();
        scanner.start_scan().unwrap();
        peer.move_to([50.0, 0.0]);
        ether.tick(Timestamp::ZERO);
        assert_eq!(scanner.poll_sighting(), None, "moved out of range");
        peer.move_to([5.0, 0.0]);
        peer.set_on(false);
        ether.tick(Timestamp::ZERO);
        assert_eq!(scanner.poll_sighting(), None, "switched off");
        assert_eq!(peer.advertise(token(9)), Err(Error::RadioOff));
        peer.set_on(true);
        peer.stop_advertising();
        ether.tick(Timestamp::ZERO);
        assert_eq!(scanner.poll_sighting(), None, "stopped advertising");
        peer.advertise(token(9)).unwrap();
        scanner.stop_scan();
        ether.tick(Timestamp::ZERO);
        assert_eq!(scanner.poll_sighting(), None, "stopped scanning");
        drop(peer);
        scanner.start_scan().unwrap();
        ether.tick(Timestamp::ZERO);
        assert_eq!(
            scanner.poll_sighting(),
            None,
            "dropped radios leave the air"
        );
    }

    #[test]
    fn bounds_are_kept_and_overflow_is_counted() {
        let ether = Ether::new(EtherConfig {
            max_radios: 2,
            max_pending_sightings: 3,
            ..EtherConfig::default()
        });
        let mut scanner = ether.radio([0.0, 0.0]).unwrap();
        let mut peer = ether.radio([1.0, 0.0]).unwrap();
        assert_eq!(
            ether.radio([0.0, 0.0]).unwrap_err(),
            Error::TableFull {
                table: "radios",
                limit: 2
            }
        );
        peer.advertise(token(1)).unwrap();
        scanner.start_scan().unwrap();
        for ms in 0..5 {
            ether.tick(Timestamp::from_millis(ms));
        }
        assert_eq!(scanner.dropped(), 2);
        let kept: Vec<Timestamp> = std::iter::from_fn(|| scanner.poll_sighting())
            .map(|s| s.at)
            .collect();
        assert_eq!(
            kept,
            (2..5).map(Timestamp::from_millis).collect::<Vec<_>>(),
            "oldest dropped first"
        );
    }
}
