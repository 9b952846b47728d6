//! Data links between the stations of an [`Ether`]: BLE-style duplex byte
//! streams with latency, a rate limit and bounded buffering per direction.
//!
//! Each direction is a queue of packets of at most [`PACKET_BYTES`]. A
//! packet leaves the writer when the direction's serializer is free and
//! has sent it at the link rate; it can be read one link latency after it
//! has left. Order is kept. The queue holds at most the link buffer's
//! unread bytes; beyond that writes return `Poll::Pending` until the reader
//! makes room (all three in [`EtherConfig`](super::EtherConfig)).
//!
//! All link state lives in the ether's one lock, so a read or write can
//! check the stations (present, on, in range) without a second lock.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_timer::Delay;
use libp2p::futures::io::{AsyncRead, AsyncWrite};

use super::{Ether, Shared, Station, distance, lock, wake_all};
use crate::Error;

/// Payload bytes per simulated packet: our choice, about what one BLE
/// link-layer packet carries with Data Length Extension (at most 251
/// payload bytes since Bluetooth 4.2) after the L2CAP headers. It sets the
/// granularity of delivery: a packet is readable only once all of it has
/// arrived.
const PACKET_BYTES: usize = 244;

/// A station's queue of links waiting to be accepted. Bounded by
/// [`EtherConfig::max_links`](super::EtherConfig::max_links): every entry
/// is a link.
#[derive(Debug, Default)]
pub(super) struct ListenerState {
    pending: VecDeque<u64>,
    waker: Option<Waker>,
}

impl ListenerState {
    /// Gives up the links nobody accepted (their dialers read EOF).
    pub(super) fn release(self, s: &mut Shared, wakers: &mut Vec<Waker>) {
        for id in self.pending {
            release(s, id, LISTENER, wakers);
        }
        wakers.extend(self.waker);
    }
}

/// End 0 of a link is the dialer's, end 1 the listener's; `pipes[i]`
/// carries what end `i` writes.
const DIALER: usize = 0;
const LISTENER: usize = 1;

#[derive(Debug)]
pub(super) struct LinkState {
    /// The stations of the dialer and the listener.
    stations: [u64; 2],
    /// Which ends are still held (a link waiting to be accepted is held by
    /// its listener's queue).
    held: [bool; 2],
    /// Why the link broke, once it has.
    broken: Option<String>,
    pipes: [Pipe; 2],
}

impl LinkState {
    fn break_with(&mut self, reason: String, wakers: &mut Vec<Waker>) {
        self.broken = Some(reason);
        for pipe in &mut self.pipes {
            pipe.packets.clear();
            pipe.queued = 0;
            wakers.extend(pipe.reader.take());
            wakers.extend(pipe.writer.take());
        }
    }
}

#[derive(Debug, Default)]
struct Pipe {
    packets: VecDeque<Packet>,
    /// Unread bytes in `packets`.
    queued: usize,
    /// When the serializer has sent everything written so far.
    sent_until: Option<Instant>,
    /// When the writer's close (or drop) reaches the reader.
    fin: Option<Instant>,
    reader: Option<Waker>,
    writer: Option<Waker>,
}

impl Pipe {
    /// When something written now would start leaving the writer.
    fn free_at(&self, now: Instant) -> Instant {
        self.sent_until.map_or(now, |t| t.max(now))
    }
}

#[derive(Debug)]
struct Packet {
    data: Vec<u8>,
    read: usize,
    arrives: Instant,
}

/// Time to send `bytes` at `rate_bps` (zero: no limit).
fn airtime(bytes: usize, rate_bps: u64) -> Duration {
    if rate_bps == 0 {
        return Duration::ZERO;
    }
    let nanos = (bytes as u128 * 8 * 1_000_000_000).div_ceil(u128::from(rate_bps));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Why a link between `stations` cannot stay up, if it cannot.
fn fault(stations: &BTreeMap<u64, Station>, range_m: f64, ends: [u64; 2]) -> Option<String> {
    let mut positions = [[0.0; 2]; 2];
    for (i, id) in ends.into_iter().enumerate() {
        match stations.get(&id) {
            None => return Some(format!("station {id} left the ether")),
            Some(st) if !st.on => return Some(format!("station {id} switched its radio off")),
            Some(st) => positions[i] = st.position,
        }
    }
    let d = distance(positions[0], positions[1]);
    (d > range_m).then(|| {
        format!(
            "stations {} and {} are {d:.1} m apart, beyond the {range_m} m range",
            ends[0], ends[1]
        )
    })
}

/// Breaks every unbroken link (touching station `only`, if given) whose
/// stations are no longer both present, on and in range.
pub(super) fn sweep(s: &mut Shared, only: Option<u64>, wakers: &mut Vec<Waker>) {
    let range_m = s.config.range_m;
    for link in s.links.values_mut() {
        if link.broken.is_some() || only.is_some_and(|st| !link.stations.contains(&st)) {
            continue;
        }
        if let Some(reason) = fault(&s.stations, range_m, link.stations) {
            link.break_with(reason, wakers);
        }
    }
}

/// End `side` of link `id` is let go: what it wrote still reaches the
/// other end, then EOF; the other end's writes fail. The link is removed
/// once neither end is held.
fn release(s: &mut Shared, id: u64, side: usize, wakers: &mut Vec<Waker>) {
    let latency = s.config.link_latency;
    let Some(link) = s.links.get_mut(&id) else {
        return;
    };
    link.held[side] = false;
    let now = Instant::now();
    let out = &mut link.pipes[side];
    if out.fin.is_none() {
        out.fin = Some(out.free_at(now) + latency);
    }
    wakers.extend(out.reader.take());
    let back = &mut link.pipes[1 - side];
    back.packets.clear();
    back.queued = 0;
    wakers.extend(back.writer.take());
    if !link.held.iter().any(|h| *h) {
        s.links.remove(&id);
    }
}

fn broken(reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        Error::LinkBroken {
            reason: reason.to_owned(),
        },
    )
}

fn closed(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        Error::LinkBroken {
            reason: why.to_owned(),
        },
    )
}

/// The link, if it is still up (it is checked first: stations present, on
/// and in range); else why it broke.
fn live<'s>(
    s: &'s mut Shared,
    id: u64,
    wakers: &mut Vec<Waker>,
) -> Result<&'s mut LinkState, String> {
    let range_m = s.config.range_m;
    let Some(link) = s.links.get_mut(&id) else {
        return Err("the link is gone".to_owned());
    };
    if link.broken.is_none()
        && let Some(reason) = fault(&s.stations, range_m, link.stations)
    {
        link.break_with(reason, wakers);
    }
    match &link.broken {
        Some(reason) => Err(reason.clone()),
        None => Ok(link),
    }
}

impl Ether {
    /// Accepts links to `station` through the returned listener, until it
    /// is dropped. Links opened while nobody accepts them wait in the
    /// listener's queue (bounded by
    /// [`EtherConfig::max_links`](super::EtherConfig::max_links)).
    ///
    /// # Errors
    /// [`Error::UnknownStation`] if there is no such station;
    /// [`Error::AlreadyListening`] if it has a listener already.
    pub fn listen(&self, station: u64) -> Result<LinkListener, Error> {
        let mut s = lock(&self.shared);
        let st = s
            .stations
            .get_mut(&station)
            .ok_or(Error::UnknownStation { station })?;
        if st.listener.is_some() {
            return Err(Error::AlreadyListening { station });
        }
        st.listener = Some(ListenerState::default());
        Ok(LinkListener {
            shared: self.shared.clone(),
            station,
        })
    }

    /// Opens a link from station `from` to station `to`, which must be
    /// listening; `to`'s [`LinkListener`] accepts the other end. Both
    /// radios must be on and within
    /// [`EtherConfig::range_m`](super::EtherConfig::range_m) of each other.
    ///
    /// # Errors
    /// [`Error::UnknownStation`] if either station does not exist;
    /// [`Error::RadioOff`] if `from`'s radio is off; [`Error::OutOfRange`]
    /// if `to` is out of range or off; [`Error::NotListening`] if `to` does
    /// not listen; [`Error::TableFull`] (`"links"`) at
    /// [`EtherConfig::max_links`](super::EtherConfig::max_links).
    pub fn connect(&self, from: u64, to: u64) -> Result<Link, Error> {
        let mut s = lock(&self.shared);
        let here = s
            .stations
            .get(&from)
            .ok_or(Error::UnknownStation { station: from })?;
        if !here.on {
            return Err(Error::RadioOff);
        }
        let there = s
            .stations
            .get(&to)
            .ok_or(Error::UnknownStation { station: to })?;
        if !there.on || distance(here.position, there.position) > s.config.range_m {
            return Err(Error::OutOfRange { station: to });
        }
        if there.listener.is_none() {
            return Err(Error::NotListening { station: to });
        }
        if s.links.len() >= s.config.max_links {
            return Err(Error::TableFull {
                table: "links",
                limit: s.config.max_links,
            });
        }
        let id = s.next_link;
        s.next_link += 1;
        s.links.insert(
            id,
            LinkState {
                stations: [from, to],
                held: [true, true],
                broken: None,
                pipes: [Pipe::default(), Pipe::default()],
            },
        );
        let mut waker = None;
        if let Some(listener) = s.stations.get_mut(&to).and_then(|st| st.listener.as_mut()) {
            listener.pending.push_back(id);
            waker = listener.waker.take();
        }
        drop(s);
        wake_all(waker.into_iter().collect());
        Ok(Link::new(self.shared.clone(), id, DIALER, from, to))
    }

    /// Links in the ether now (counted against
    /// [`EtherConfig::max_links`](super::EtherConfig::max_links)).
    pub fn links(&self) -> usize {
        lock(&self.shared).links.len()
    }
}

/// Accepts the links opened to one station; see [`Ether::listen`].
/// Dropping it stops listening: links not yet accepted are let go (their
/// dialers read EOF).
pub struct LinkListener {
    shared: Arc<Mutex<Shared>>,
    station: u64,
}

impl fmt::Debug for LinkListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkListener")
            .field("station", &self.station)
            .finish_non_exhaustive()
    }
}

impl LinkListener {
    /// The listening station.
    pub fn station(&self) -> u64 {
        self.station
    }

    /// The next link opened to the station, oldest first. Links that broke
    /// before being accepted are skipped (a link whose dialer has dropped
    /// its end is not: what it wrote can still be read, then EOF).
    ///
    /// # Errors
    /// [`Error::UnknownStation`] once the station's radio has been dropped
    /// (the listener is done then).
    pub fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<Result<Link, Error>> {
        let mut s = lock(&self.shared);
        let mut wakers = Vec::new();
        let result = loop {
            let Some(listener) = s
                .stations
                .get_mut(&self.station)
                .and_then(|st| st.listener.as_mut())
            else {
                break Poll::Ready(Err(Error::UnknownStation {
                    station: self.station,
                }));
            };
            let Some(id) = listener.pending.pop_front() else {
                listener.waker = Some(cx.waker().clone());
                break Poll::Pending;
            };
            let dialer = live(&mut s, id, &mut wakers)
                .ok()
                .map(|link| link.stations[DIALER]);
            let Some(remote) = dialer else {
                release(&mut s, id, LISTENER, &mut wakers);
                continue;
            };
            break Poll::Ready(Ok(Link::new(
                self.shared.clone(),
                id,
                LISTENER,
                self.station,
                remote,
            )));
        };
        drop(s);
        wake_all(wakers);
        result
    }

    /// The next link opened to the station; see
    /// [`poll_accept`](Self::poll_accept).
    ///
    /// # Errors
    /// As [`poll_accept`](Self::poll_accept).
    pub async fn accept(&mut self) -> Result<Link, Error> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }
}

impl Drop for LinkListener {
    fn drop(&mut self) {
        let mut s = lock(&self.shared);
        let mut wakers = Vec::new();
        if let Some(listener) = s
            .stations
            .get_mut(&self.station)
            .and_then(|st| st.listener.take())
        {
            listener.release(&mut s, &mut wakers);
        }
        drop(s);
        wake_all(wakers);
    }
}

/// One end of a data link: a duplex byte stream (futures `AsyncRead` +
/// `AsyncWrite`) to another station; see [`Ether::connect`].
///
/// - Bytes arrive in order, each packet of up to 244 bytes
///   [`EtherConfig::link_latency`](super::EtherConfig::link_latency) after
///   the rate limit
///   ([`EtherConfig::link_rate_bps`](super::EtherConfig::link_rate_bps))
///   let it leave. Times come from the monotonic clock and
///   `futures-timer`, so any executor drives a link.
/// - A write takes what fits in the direction's buffer and returns
///   `Poll::Pending` when it is full; flushing succeeds at once (the bytes
///   are on their way).
/// - Closing sends EOF after the bytes written before it; writing after
///   closing fails. Dropping an end closes it likewise and makes the other
///   end's writes fail (`BrokenPipe`).
/// - When the link breaks (a radio switched off, out of range, or
///   dropped), reads and writes fail with `ConnectionAborted` carrying
///   [`Error::LinkBroken`]; bytes in flight are lost.
pub struct Link {
    shared: Arc<Mutex<Shared>>,
    id: u64,
    side: usize,
    local: u64,
    remote: u64,
    timer: Option<Delay>,
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("local", &self.local)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

/// What a read found.
enum ReadStep {
    Done(io::Result<usize>),
    /// Nothing on its way; the reader's waker is registered.
    Park,
    /// Something arrives (or EOF) at this instant.
    WaitUntil(Instant),
}

impl Link {
    fn new(shared: Arc<Mutex<Shared>>, id: u64, side: usize, local: u64, remote: u64) -> Self {
        Link {
            shared,
            id,
            side,
            local,
            remote,
            timer: None,
        }
    }

    /// This end's station.
    pub fn local_station(&self) -> u64 {
        self.local
    }

    /// The other end's station.
    pub fn remote_station(&self) -> u64 {
        self.remote
    }

    /// Why the link broke, if it has (checked now: stations present, on and
    /// in range).
    pub fn broken(&self) -> Option<Error> {
        self.locked(|l, s, w| live(s, l.id, w).err())
            .map(|reason| Error::LinkBroken { reason })
    }

    fn read_step(
        &self,
        s: &mut Shared,
        buf: &mut [u8],
        waker: &Waker,
        wakers: &mut Vec<Waker>,
    ) -> ReadStep {
        let link = match live(s, self.id, wakers) {
            Ok(link) => link,
            Err(reason) => return ReadStep::Done(Err(broken(&reason))),
        };
        let pipe = &mut link.pipes[1 - self.side];
        if buf.is_empty() {
            return ReadStep::Done(Ok(0));
        }
        let now = Instant::now();
        let mut n = 0;
        while n < buf.len() {
            let Some(packet) = pipe.packets.front_mut() else {
                break;
            };
            if packet.arrives > now {
                break;
            }
            let take = (buf.len() - n).min(packet.data.len() - packet.read);
            buf[n..n + take].copy_from_slice(&packet.data[packet.read..packet.read + take]);
            packet.read += take;
            n += take;
            if packet.read == packet.data.len() {
                pipe.packets.pop_front();
            }
        }
        if n > 0 {
            pipe.queued -= n;
            wakers.extend(pipe.writer.take());
            return ReadStep::Done(Ok(n));
        }
        let at = match (pipe.packets.front(), pipe.fin) {
            (Some(packet), _) => packet.arrives,
            (None, Some(fin)) if fin <= now => return ReadStep::Done(Ok(0)),
            (None, Some(fin)) => fin,
            (None, None) => {
                pipe.reader = Some(waker.clone());
                return ReadStep::Park;
            }
        };
        pipe.reader = Some(waker.clone());
        ReadStep::WaitUntil(at)
    }

    fn write_step(
        &self,
        s: &mut Shared,
        buf: &[u8],
        waker: &Waker,
        wakers: &mut Vec<Waker>,
    ) -> Poll<io::Result<usize>> {
        let config = s.config;
        let link = live(s, self.id, wakers).map_err(|reason| broken(&reason))?;
        if !link.held[1 - self.side] {
            return Poll::Ready(Err(closed(&format!(
                "station {} closed the link",
                self.remote
            ))));
        }
        let pipe = &mut link.pipes[self.side];
        if pipe.fin.is_some() {
            return Poll::Ready(Err(closed("write after close")));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let room = config.link_buffer_bytes.max(1).saturating_sub(pipe.queued);
        if room == 0 {
            pipe.writer = Some(waker.clone());
            return Poll::Pending;
        }
        let n = room.min(buf.len());
        let now = Instant::now();
        for chunk in buf[..n].chunks(PACKET_BYTES) {
            let sent = pipe.free_at(now) + airtime(chunk.len(), config.link_rate_bps);
            pipe.sent_until = Some(sent);
            pipe.packets.push_back(Packet {
                data: chunk.to_vec(),
                read: 0,
                arrives: sent + config.link_latency,
            });
        }
        pipe.queued += n;
        wakers.extend(pipe.reader.take());
        Poll::Ready(Ok(n))
    }

    /// Runs `f` under the lock, then wakes whom it collected.
    fn locked<T>(&self, f: impl FnOnce(&Self, &mut Shared, &mut Vec<Waker>) -> T) -> T {
        let mut s = lock(&self.shared);
        let mut wakers = Vec::new();
        let result = f(self, &mut s, &mut wakers);
        drop(s);
        wake_all(wakers);
        result
    }
}

impl AsyncRead for Link {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let step = this.locked(|l, s, w| l.read_step(s, buf, cx.waker(), w));
            match step {
                ReadStep::Done(result) => return Poll::Ready(result),
                ReadStep::Park => return Poll::Pending,
                ReadStep::WaitUntil(at) => {
                    let wait = at.saturating_duration_since(Instant::now());
                    let timer = this.timer.get_or_insert_with(|| Delay::new(wait));
                    timer.reset(wait);
                    if Pin::new(timer).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.locked(|l, s, w| l.write_step(s, buf, cx.waker(), w))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.locked(|l, s, w| {
            live(s, l.id, w)
                .map(|_| ())
                .map_err(|reason| broken(&reason))
        }))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.locked(|l, s, w| {
            let latency = s.config.link_latency;
            // Closing a broken link has nothing left to do.
            if let Ok(link) = live(s, l.id, w) {
                let pipe = &mut link.pipes[l.side];
                if pipe.fin.is_none() {
                    pipe.fin = Some(pipe.free_at(Instant::now()) + latency);
                    w.extend(pipe.reader.take());
                }
            }
        });
        Poll::Ready(Ok(()))
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.locked(|l, s, w| release(s, l.id, l.side, w));
    }
}

#[cfg(test)]
mod tests {
    use libp2p::futures::executor::block_on;
    use libp2p::futures::io::{AsyncReadExt, AsyncWriteExt};

    use super::super::{EtherConfig, InProcessRadio};
    use super::*;

    fn fast() -> EtherConfig {
        EtherConfig {
            link_latency: Duration::from_millis(1),
            link_rate_bps: 0,
            ..EtherConfig::default()
        }
    }

    fn pair(config: EtherConfig) -> (Ether, InProcessRadio, InProcessRadio) {
        let ether = Ether::new(config);
        let a = ether.radio([0.0, 0.0]).unwrap();
        let b = ether.radio([5.0, 0.0]).unwrap();
        (ether, a, b)
    }

    #[test]
    fn stations_are_numbered_from_one() {
        let (_ether, a, b) = pair(fast());
        assert_eq!((a.station(), b.station()), (1, 2));
    }

    #[test]
    fn connect_needs_a_listener_in_range_with_both_radios_on() {
        let (ether, mut a, mut b) = pair(fast());
        let far = ether.radio([100.0, 0.0]).unwrap();
        assert_eq!(
            a.connect(b.station()).unwrap_err(),
            Error::NotListening { station: 2 }
        );
        let _listening = b.listen().unwrap();
        assert_eq!(
            b.listen().unwrap_err(),
            Error::AlreadyListening { station: 2 }
        );
        let _far_listening = far.listen().unwrap();
        assert_eq!(
            a.connect(far.station()).unwrap_err(),
            Error::OutOfRange { station: 3 }
        );
        assert_eq!(
            a.connect(99).unwrap_err(),
            Error::UnknownStation { station: 99 }
        );
        b.set_on(false);
        assert_eq!(
            a.connect(b.station()).unwrap_err(),
            Error::OutOfRange { station: 2 }
        );
        b.set_on(true);
        a.set_on(false);
        assert_eq!(a.connect(b.station()).unwrap_err(), Error::RadioOff);
        a.set_on(true);
        assert!(a.connect(b.station()).is_ok());
    }

    #[test]
    fn the_link_bound_is_kept_and_freed_when_both_ends_go() {
        let (ether, a, b) = pair(EtherConfig {
            max_links: 1,
            ..fast()
        });
        let mut listener = b.listen().unwrap();
        let dialer = a.connect(b.station()).unwrap();
        assert_eq!(
            a.connect(b.station()).unwrap_err(),
            Error::TableFull {
                table: "links",
                limit: 1
            }
        );
        let accepted = block_on(listener.accept()).unwrap();
        assert_eq!(
            (accepted.local_station(), accepted.remote_station()),
            (2, 1)
        );
        drop(dialer);
        assert_eq!(ether.links(), 1, "the accepted end still holds it");
        drop(accepted);
        assert_eq!(ether.links(), 0);
        assert!(a.connect(b.station()).is_ok());
    }

    #[test]
    fn bytes_cross_both_ways_and_close_reads_as_eof() {
        let (_ether, a, b) = pair(fast());
        let mut listener = b.listen().unwrap();
        let mut dialer = a.connect(b.station()).unwrap();
        block_on(async {
            let mut accepted = listener.accept().await.unwrap();
            dialer.write_all(b"ping").await.unwrap();
            let mut got = [0; 4];
            accepted.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"ping");
            accepted.write_all(b"pong").await.unwrap();
            accepted.close().await.unwrap();
            let mut rest = Vec::new();
            dialer.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest, b"pong");
            assert!(accepted.write_all(b"more").await.is_err());
        });
    }

    #[test]
    fn a_full_buffer_holds_the_writer_back() {
        let (_ether, a, b) = pair(EtherConfig {
            link_buffer_bytes: 100,
            ..fast()
        });
        let _listener = b.listen().unwrap();
        let mut dialer = a.connect(b.station()).unwrap();
        let waker = libp2p::futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut w = Pin::new(&mut dialer);
        assert!(matches!(
            w.as_mut().poll_write(&mut cx, &[0; 150]),
            Poll::Ready(Ok(100))
        ));
        assert!(w.as_mut().poll_write(&mut cx, &[0; 50]).is_pending());
    }

    fn assert_broken(link: &mut Link, why: &str) {
        let err = block_on(link.read(&mut [0; 8])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);
        assert!(err.to_string().contains(why), "{err}");
        assert!(block_on(link.write_all(b"x")).is_err());
        assert!(matches!(link.broken(), Some(Error::LinkBroken { .. })));
    }

    #[test]
    fn links_break_out_of_range_off_and_dropped() {
        let (ether, mut a, mut b) = pair(fast());
        let mut listener = b.listen().unwrap();

        let mut d1 = a.connect(b.station()).unwrap();
        let mut l1 = block_on(listener.accept()).unwrap();
        assert!(d1.broken().is_none());
        a.move_to([50.0, 0.0]);
        assert_broken(&mut d1, "beyond the 30 m range");
        assert_broken(&mut l1, "beyond the 30 m range");
        a.move_to([0.0, 0.0]);

        let mut d2 = a.connect(b.station()).unwrap();
        let mut l2 = block_on(listener.accept()).unwrap();
        b.set_on(false);
        assert_broken(&mut d2, "station 2 switched its radio off");
        assert_broken(&mut l2, "station 2 switched its radio off");
        b.set_on(true);

        let c = ether.radio([1.0, 1.0]).unwrap();
        let mut d3 = c.connect(b.station()).unwrap();
        let _l3 = block_on(listener.accept()).unwrap();
        drop(c);
        assert_broken(&mut d3, "station 3 left the ether");
    }

    #[test]
    fn tick_breaks_links_too() {
        let (ether, a, b) = pair(fast());
        let _listener = b.listen().unwrap();
        let link = a.connect(b.station()).unwrap();
        // Move b without its own handle's sweep: through the shared table.
        lock(&ether.shared)
            .stations
            .get_mut(&b.station())
            .unwrap()
            .position = [500.0, 0.0];
        assert!(
            lock(&ether.shared)
                .links
                .values()
                .all(|l| l.broken.is_none()),
            "not swept yet"
        );
        ether.tick(multidriver_scoring::Timestamp::ZERO);
        assert!(
            lock(&ether.shared)
                .links
                .values()
                .all(|l| l.broken.is_some())
        );
        drop(link);
    }

    #[test]
    fn unaccepted_links_are_let_go_with_their_listener() {
        let (ether, a, b) = pair(fast());
        let listener = b.listen().unwrap();
        let mut dialer = a.connect(b.station()).unwrap();
        drop(listener);
        let mut rest = Vec::new();
        assert_eq!(block_on(dialer.read_to_end(&mut rest)).unwrap(), 0);
        assert!(block_on(dialer.write_all(b"x")).is_err());
        drop(dialer);
        assert_eq!(ether.links(), 0);
        assert_eq!(
            a.connect(b.station()).unwrap_err(),
            Error::NotListening { station: 2 }
        );
    }

    #[test]
    fn what_a_dialer_wrote_before_dropping_is_still_delivered() {
        let (_ether, a, b) = pair(fast());
        let mut listener = b.listen().unwrap();
        let mut dialer = a.connect(b.station()).unwrap();
        block_on(dialer.write_all(b"bye")).unwrap();
        drop(dialer);
        let mut accepted = block_on(listener.accept()).unwrap();
        let mut got = Vec::new();
        block_on(accepted.read_to_end(&mut got)).unwrap();
        assert_eq!(got, b"bye");
        let err = block_on(accepted.write_all(b"x")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn airtime_follows_the_rate() {
        assert_eq!(airtime(12_500, 100_000), Duration::from_secs(1));
        assert_eq!(airtime(1, 0), Duration::ZERO);
    }
}
