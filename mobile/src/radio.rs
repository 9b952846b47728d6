//! The host's Bluetooth as the engine's proximity radio and as a libp2p
//! transport.
//!
//! The host implements [`ProximityRadio`] over its own BLE stack (Core
//! Bluetooth, Android BLE) and pushes what the radio hears and receives
//! into the node ([`Node::radio_sighting`](crate::Node::radio_sighting),
//! [`radio_link_opened`](crate::Node::radio_link_opened),
//! [`radio_link_data`](crate::Node::radio_link_data),
//! [`radio_link_closed`](crate::Node::radio_link_closed)). Inside, the
//! radio drives the engine's proximity driver ([`HostRadio`]) and carries
//! libp2p connections ([`HostLinks`], upgraded with Noise and yamux like
//! any stream transport), addressed `/memory/<link address>` as the
//! engine's BLE-style routes are.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use libp2p::Multiaddr;
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};
use libp2p::futures::future::{self, Ready};
use libp2p::futures::{AsyncRead, AsyncWrite};
use multidriver::scoring::Timestamp;
use multidriver_routing::ble;
use multidriver_routing::proximity::{self as engine_radio, Sighting, TOKEN_LEN, Token};

use crate::error::{MobileError, RadioError};

/// Most sightings waiting for the proximity driver (it drains them every
/// 100 ms while scanning); at the bound the oldest is dropped. Our choice:
/// a crowded room's advertisers over a few scan windows.
pub(crate) const MAX_SIGHTINGS: usize = 256;
/// Most links open at once. At the bound an inbound link is refused
/// ([`MobileError::Link`]) and an outbound dial fails. Our choice: BLE
/// controllers hold a handful of connections (Android's default is 7).
pub(crate) const MAX_LINKS: usize = 32;
/// Most inbound links waiting for the node to accept them; at the bound
/// `radio_link_opened` is refused.
const MAX_PENDING_ACCEPTS: usize = 8;
/// Most bytes received on a link and not yet read. At the bound
/// `radio_link_data` is refused and the host keeps the data (L2CAP credits
/// stop the sender). Our choice: 64 KiB, a few yamux windows' worth of
/// BLE traffic.
pub(crate) const MAX_LINK_BUFFER: usize = 64 * 1024;

/// The host's BLE radio, implemented in Kotlin or Swift over the
/// platform's API; every method must return promptly (start the work,
/// report its outcome through the node's `radio_*` methods).
///
/// Link ids are the host's: one id space for links it opened and links it
/// accepted.
#[uniffi::export(with_foreign)]
pub trait ProximityRadio: Send + Sync {
    /// This device's link address: what others' sightings of it say in
    /// `from`, and what they open links to.
    fn local_address(&self) -> u64;
    /// Advertise these 16 bytes, replacing what was advertised before.
    fn advertise(&self, token: Vec<u8>) -> Result<(), RadioError>;
    /// Stop advertising.
    fn stop_advertising(&self);
    /// Start scanning; report each advertisement heard with
    /// `Node::radio_sighting`.
    fn start_scan(&self) -> Result<(), RadioError>;
    /// Stop scanning.
    fn stop_scan(&self);
    /// Open a data link (an L2CAP channel, say) to the device at `address`
    /// and return its id at once; report a failure to open with
    /// `Node::radio_link_closed(id)`.
    fn open_link(&self, address: u64) -> Result<u64, RadioError>;
    /// Send bytes on a link, in order.
    fn send(&self, link: u64, data: Vec<u8>) -> Result<(), RadioError>;
    /// Close a link.
    fn close_link(&self, link: u64);
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind, still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sightings the host reported, for the driver.
#[derive(Debug, Default)]
pub(crate) struct Sightings {
    queue: Mutex<VecDeque<Sighting>>,
}

impl Sightings {
    /// Queues a sighting; `Err` with the token's length if it is not a
    /// token. Returns whether the oldest was dropped to make room.
    pub(crate) fn push(
        &self,
        token: &[u8],
        from: u64,
        rssi_dbm: i16,
        at: Timestamp,
    ) -> Result<bool, MobileError> {
        let bytes: [u8; TOKEN_LEN] = token.try_into().map_err(|_| {
            MobileError::invalid(
                "token",
                &format!("{} bytes", token.len()),
                format!("a token is {TOKEN_LEN} bytes, what the node asked to advertise"),
            )
        })?;
        let mut q = lock(&self.queue);
        let dropped = q.len() >= MAX_SIGHTINGS;
        if dropped {
            q.pop_front();
        }
        q.push_back(Sighting {
            token: Token::new(bytes),
            from,
            rssi_dbm,
            at,
        });
        Ok(dropped)
    }
}

/// The host's radio as the engine's proximity driver sees it.
pub(crate) struct HostRadio {
    radio: Arc<dyn ProximityRadio>,
    sightings: Arc<Sightings>,
}

impl HostRadio {
    pub(crate) fn new(radio: Arc<dyn ProximityRadio>, sightings: Arc<Sightings>) -> Self {
        HostRadio { radio, sightings }
    }
}

fn engine_error(e: RadioError) -> multidriver_routing::Error {
    match e {
        RadioError::Off => multidriver_routing::Error::RadioOff,
        other => multidriver_routing::Error::Driver {
            driver: "proximity",
            message: other.to_string(),
        },
    }
}

impl engine_radio::ProximityRadio for HostRadio {
    fn advertise(&mut self, token: Token) -> Result<(), multidriver_routing::Error> {
        self.radio
            .advertise(token.bytes().to_vec())
            .map_err(engine_error)
    }

    fn stop_advertising(&mut self) {
        self.radio.stop_advertising();
    }

    fn start_scan(&mut self) -> Result<(), multidriver_routing::Error> {
        self.radio.start_scan().map_err(engine_error)
    }

    fn stop_scan(&mut self) {
        self.radio.stop_scan();
    }

    fn poll_sighting(&mut self) -> Option<Sighting> {
        lock(&self.sightings.queue).pop_front()
    }
}

#[derive(Debug, Default)]
struct LinkState {
    inbound: VecDeque<Vec<u8>>,
    buffered: usize,
    /// The host closed it (or never managed to open it).
    closed: bool,
    reader: Option<Waker>,
}

#[derive(Debug, Default)]
struct LinksInner {
    links: HashMap<u64, LinkState>,
    /// Inbound links not yet handed to the swarm: (link, from).
    accepts: VecDeque<(u64, u64)>,
    listening: bool,
    listener: Option<Waker>,
}

/// Every open link's inbound bytes, shared by the node's `radio_*`
/// methods (which fill them) and the transport (which reads them).
#[derive(Debug, Default)]
pub(crate) struct LinkTable {
    inner: Mutex<LinksInner>,
}

impl LinkTable {
    /// The host accepted a link from `from`.
    pub(crate) fn opened(&self, link: u64, from: u64) -> Result<(), MobileError> {
        let refuse = |reason: &str| MobileError::Link {
            link,
            reason: reason.to_owned(),
        };
        let mut inner = lock(&self.inner);
        if !inner.listening {
            return Err(refuse("the node does not listen for links"));
        }
        if inner.links.contains_key(&link) {
            return Err(refuse("this link id is in use"));
        }
        if inner.links.len() >= MAX_LINKS {
            return Err(refuse(&format!("{MAX_LINKS} links are open, the most")));
        }
        if inner.accepts.len() >= MAX_PENDING_ACCEPTS {
            return Err(refuse(&format!(
                "{MAX_PENDING_ACCEPTS} links wait to be accepted, the most"
            )));
        }
        inner.links.insert(link, LinkState::default());
        inner.accepts.push_back((link, from));
        if let Some(w) = inner.listener.take() {
            w.wake();
        }
        Ok(())
    }

    /// Bytes arrived on a link.
    pub(crate) fn data(&self, link: u64, data: Vec<u8>) -> Result<(), MobileError> {
        let mut inner = lock(&self.inner);
        let Some(state) = inner.links.get_mut(&link) else {
            return Err(MobileError::Link {
                link,
                reason: "no such link is open".to_owned(),
            });
        };
        if state.buffered + data.len() > MAX_LINK_BUFFER {
            return Err(MobileError::Link {
                link,
                reason: format!(
                    "{} bytes wait to be read, the most is {MAX_LINK_BUFFER}: send these later",
                    state.buffered
                ),
            });
        }
        if data.is_empty() {
            return Ok(());
        }
        state.buffered += data.len();
        state.inbound.push_back(data);
        if let Some(w) = state.reader.take() {
            w.wake();
        }
        Ok(())
    }

    /// The host's link closed (or failed to open). Unknown ids are
    /// ignored: the node may have closed it first.
    pub(crate) fn closed(&self, link: u64) {
        let mut inner = lock(&self.inner);
        if let Some(state) = inner.links.get_mut(&link) {
            state.closed = true;
            if let Some(w) = state.reader.take() {
                w.wake();
            }
        }
    }

    fn insert_outbound(&self, link: u64) -> Result<(), String> {
        let mut inner = lock(&self.inner);
        if inner.links.contains_key(&link) {
            return Err(format!("the host returned link id {link}, which is in use"));
        }
        if inner.links.len() >= MAX_LINKS {
            return Err(format!("{MAX_LINKS} links are open, the most"));
        }
        inner.links.insert(link, LinkState::default());
        Ok(())
    }

    fn remove(&self, link: u64) {
        lock(&self.inner).links.remove(&link);
    }

    pub(crate) fn open_links(&self) -> usize {
        lock(&self.inner).links.len()
    }
}

/// One of the host's links as a byte stream.
pub(crate) struct HostLink {
    id: u64,
    table: Arc<LinkTable>,
    radio: Arc<dyn ProximityRadio>,
    /// The rest of a chunk partly read.
    partial: Vec<u8>,
    done: bool,
}

impl std::fmt::Debug for HostLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLink").field("id", &self.id).finish()
    }
}

impl HostLink {
    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.table.remove(self.id);
            self.radio.close_link(self.id);
        }
    }
}

impl AsyncRead for HostLink {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.partial.is_empty() {
            let mut inner = lock(&this.table.inner);
            let Some(state) = inner.links.get_mut(&this.id) else {
                return Poll::Ready(Ok(0));
            };
            match state.inbound.pop_front() {
                Some(chunk) => {
                    state.buffered -= chunk.len();
                    this.partial = chunk;
                }
                None if state.closed => return Poll::Ready(Ok(0)),
                None => {
                    state.reader = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            }
        }
        let n = buf.len().min(this.partial.len());
        buf[..n].copy_from_slice(&this.partial[..n]);
        this.partial.drain(..n);
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for HostLink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let closed = lock(&this.table.inner)
            .links
            .get(&this.id)
            .is_none_or(|s| s.closed);
        if closed || this.done {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        Poll::Ready(
            this.radio
                .send(this.id, buf.to_vec())
                .map(|()| buf.len())
                .map_err(io::Error::other),
        )
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().finish();
        Poll::Ready(Ok(()))
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        self.finish();
    }
}

/// A libp2p transport over the host's links: listens on `/memory/<own
/// address>` (or `/memory/0`), dials `/memory/<address>`.
pub(crate) struct HostLinks {
    radio: Arc<dyn ProximityRadio>,
    table: Arc<LinkTable>,
    own: u64,
    listener: Option<ListenerId>,
    /// At most one `NewAddress` and one `ListenerClosed` wait here.
    events: VecDeque<TransportEvent<Ready<Result<HostLink, io::Error>>, io::Error>>,
    waker: Option<Waker>,
}

impl HostLinks {
    pub(crate) fn new(radio: Arc<dyn ProximityRadio>, table: Arc<LinkTable>) -> Self {
        let own = radio.local_address();
        HostLinks {
            radio,
            table,
            own,
            listener: None,
            events: VecDeque::new(),
            waker: None,
        }
    }

    fn link(&self, id: u64) -> HostLink {
        HostLink {
            id,
            table: self.table.clone(),
            radio: self.radio.clone(),
            partial: Vec::new(),
            done: false,
        }
    }
}

impl Transport for HostLinks {
    type Output = HostLink;
    type Error = io::Error;
    type ListenerUpgrade = Ready<Result<HostLink, io::Error>>;
    type Dial = Ready<Result<HostLink, io::Error>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        let Some(address) = ble::station_of(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        if address != 0 && address != self.own {
            return Err(TransportError::Other(io::Error::other(format!(
                "cannot listen on link address {address}: the radio's is {}",
                self.own
            ))));
        }
        if self.listener.is_some() {
            return Err(TransportError::Other(io::Error::other(
                "already listening for links",
            )));
        }
        self.listener = Some(id);
        lock(&self.table.inner).listening = true;
        self.events.push_back(TransportEvent::NewAddress {
            listener_id: id,
            listen_addr: ble::address(self.own),
        });
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        if self.listener != Some(id) {
            return false;
        }
        self.listener = None;
        lock(&self.table.inner).listening = false;
        self.events
            .retain(|e| !matches!(e, TransportEvent::NewAddress { .. }));
        self.events.push_back(TransportEvent::ListenerClosed {
            listener_id: id,
            reason: Ok(()),
        });
        if let Some(w) = self.waker.take() {
            w.wake();
        }
        true
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let Some(to) = ble::station_of(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        if to == 0 {
            return Err(TransportError::Other(io::Error::other(
                "/memory/0 names no device",
            )));
        }
        let outcome = self
            .radio
            .open_link(to)
            .map_err(io::Error::other)
            .and_then(|id| {
                if let Err(reason) = self.table.insert_outbound(id) {
                    self.radio.close_link(id);
                    return Err(io::Error::other(reason));
                }
                Ok(self.link(id))
            });
        Ok(future::ready(outcome))
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        let this = self.get_mut();
        if let Some(e) = this.events.pop_front() {
            return Poll::Ready(e);
        }
        if let Some(listener_id) = this.listener {
            let accepted = {
                let mut inner = lock(&this.table.inner);
                let next = inner.accepts.pop_front();
                if next.is_none() {
                    inner.listener = Some(cx.waker().clone());
                }
                next
            };
            if let Some((id, from)) = accepted {
                return Poll::Ready(TransportEvent::Incoming {
                    listener_id,
                    upgrade: future::ready(Ok(this.link(id))),
                    local_addr: ble::address(this.own),
                    send_back_addr: ble::address(from),
                });
            }
        }
        this.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// The time the driver's sightings are stamped with: since the node
/// started.
pub(crate) fn stamp(started: Instant) -> Timestamp {
    Timestamp::from_duration(started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_table_refuses_what_it_cannot_hold_and_keeps_what_it_took() {
        let table = LinkTable::default();
        assert!(table.opened(1, 9).is_err(), "not listening yet");
        lock(&table.inner).listening = true;
        table.opened(1, 9).unwrap();
        assert!(table.opened(1, 9).is_err(), "the id is in use");
        let chunk = vec![7u8; MAX_LINK_BUFFER / 4];
        for _ in 0..4 {
            table.data(1, chunk.clone()).unwrap();
        }
        let full = table.data(1, vec![1]).unwrap_err();
        assert!(full.to_string().contains("send these later"), "{full}");
        assert!(table.data(2, vec![1]).is_err(), "an unknown link");
        // What was taken is all there, in order.
        let inner = lock(&table.inner);
        let state = &inner.links[&1];
        assert_eq!(state.buffered, MAX_LINK_BUFFER);
        assert_eq!(state.inbound.len(), 4);
        drop(inner);
        for id in 2..(MAX_PENDING_ACCEPTS as u64 + 1) {
            table.opened(id, 9).unwrap();
        }
        assert!(
            table.opened(100, 9).is_err(),
            "{MAX_PENDING_ACCEPTS} links wait to be accepted"
        );
    }

    #[test]
    fn sightings_must_be_tokens_and_the_queue_keeps_the_newest() {
        let s = Sightings::default();
        let at = Timestamp::ZERO;
        assert!(s.push(&[0; 5], 1, -50, at).is_err());
        for i in 0..MAX_SIGHTINGS as u64 {
            assert!(!s.push(&[0; TOKEN_LEN], i, -50, at).unwrap());
        }
        assert!(
            s.push(&[0; TOKEN_LEN], 999, -50, at).unwrap(),
            "the oldest dropped"
        );
        let q = lock(&s.queue);
        assert_eq!(q.len(), MAX_SIGHTINGS);
        assert_eq!(q.front().unwrap().from, 1);
        assert_eq!(q.back().unwrap().from, 999);
    }
}
