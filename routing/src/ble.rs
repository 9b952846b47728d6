//! A BLE-style stream transport for libp2p over the in-process radio
//! medium ([`Ether`]): [`BleTransport`] dials and accepts the ether's data
//! [`Link`]s, so real libp2p swarms talk over links with BLE's latency,
//! rate and range.
//!
//! **Addresses.** multidriver uses `/memory/<station>` addresses for the
//! BLE-style links of the in-process radio, where `<station>` is the
//! radio's number in its ether ([`InProcessRadio::station`], from 1 up).
//! `/memory/0` names no station; listening on it means "my station", as
//! with libp2p's `MemoryTransport`, where port 0 means "any". A swarm that
//! also runs libp2p's `MemoryTransport` would compete for these addresses;
//! use one or the other.
//!
//! [`BleTransport`] yields raw links; [`upgraded`] adds multistream-select,
//! Noise and yamux, ready for `SwarmBuilder::with_other_transport`:
//!
//! ```no_run
//! use libp2p::{SwarmBuilder, identity::Keypair, ping};
//! use multidriver_routing::ble::{self, BleTransport};
//! use multidriver_routing::proximity::{Ether, EtherConfig};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let ether = Ether::new(EtherConfig::default());
//! let radio = ether.radio([0.0, 0.0])?;
//! let transport = BleTransport::new(&radio);
//! let mut swarm = SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
//!     .with_tokio()
//!     .with_other_transport(|key| ble::upgraded(transport, key))?
//!     .with_behaviour(|_| ping::Behaviour::default())?
//!     .build();
//! swarm.listen_on(ble::address(radio.station()))?;
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{
    Boxed, DialOpts, ListenerId, Transport, TransportError, TransportEvent,
};
use libp2p::core::upgrade::Version;
use libp2p::futures::future::{self, BoxFuture, Ready};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, noise, yamux};

use crate::Error;
use crate::proximity::{Ether, InProcessRadio, Link, LinkListener};

/// Most `ListenerClosed` events waiting for the swarm to poll the
/// transport (only `listen_on`/`remove_listener` loops without a poll
/// between reach it); at the bound the oldest is dropped. Our choice.
const MAX_CLOSED: usize = 16;

/// How long the Noise and yamux upgrade of a link may take: 10 s, the
/// connection timeout libp2p's `SwarmBuilder` puts on its whole transport
/// (libp2p `builder/phase/swarm.rs`, `DEFAULT_CONNECTION_TIMEOUT`); here
/// also where the transport is used without the builder.
const UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The `/memory/<station>` address of a station.
pub fn address(station: u64) -> Multiaddr {
    Multiaddr::empty().with(Protocol::Memory(station))
}

/// The station a `/memory/<station>` address names (a trailing `/p2p/…`
/// is allowed), if it is one.
pub fn station_of(addr: &Multiaddr) -> Option<u64> {
    let mut parts = addr.iter();
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Protocol::Memory(station)), None | Some(Protocol::P2p(_)), None) => Some(station),
        _ => None,
    }
}

/// A libp2p [`Transport`] over the data links of an [`Ether`], for one
/// station; see the [module docs](self).
///
/// - `listen_on(/memory/N)`: `N` must be the transport's own station, or
///   0; one listener at a time. Reports `NewAddress` with
///   `/memory/<own station>`, then each accepted link as `Incoming` (its
///   `send_back_addr` is the dialer's `/memory/<station>`).
/// - `dial(/memory/M)`: opens a link to station `M` when the dial future
///   is first polled; it fails if `M` does not listen, is out of range or
///   off, or this radio is off ([`Ether::connect`]'s errors).
/// - Other addresses: `MultiaddrNotSupported`.
pub struct BleTransport {
    ether: Ether,
    station: u64,
    listener: Option<(ListenerId, LinkListener)>,
    /// Events due. Bounded: `listen_on` adds one (`NewAddress`) only when
    /// no listener exists, and `remove_listener` withdraws that one if it is
    /// still here before adding its `ListenerClosed`, so at most one
    /// `NewAddress` and [`MAX_CLOSED`] `ListenerClosed` wait.
    events: VecDeque<TransportEvent<Ready<Result<Link, Error>>, Error>>,
    waker: Option<Waker>,
}

impl std::fmt::Debug for BleTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BleTransport")
            .field("station", &self.station)
            .field("listening", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

impl BleTransport {
    /// A transport for `radio`'s station. It does not hold the radio:
    /// dropping the radio breaks the transport's links and closes its
    /// listener.
    pub fn new(radio: &InProcessRadio) -> Self {
        BleTransport {
            ether: radio.ether(),
            station: radio.station(),
            listener: None,
            events: VecDeque::new(),
            waker: None,
        }
    }

    /// The transport's station.
    pub fn station(&self) -> u64 {
        self.station
    }

    fn push(&mut self, event: TransportEvent<Ready<Result<Link, Error>>, Error>) {
        self.events.push_back(event);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

impl Transport for BleTransport {
    type Output = Link;
    type Error = Error;
    type ListenerUpgrade = Ready<Result<Link, Error>>;
    type Dial = BoxFuture<'static, Result<Link, Error>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        let Some(station) = station_of(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        if station != 0 && station != self.station {
            return Err(TransportError::Other(Error::NotOwnStation {
                station,
                own: self.station,
            }));
        }
        if self.listener.is_some() {
            return Err(TransportError::Other(Error::AlreadyListening {
                station: self.station,
            }));
        }
        let listener = self
            .ether
            .listen(self.station)
            .map_err(TransportError::Other)?;
        self.listener = Some((id, listener));
        self.push(TransportEvent::NewAddress {
            listener_id: id,
            listen_addr: address(self.station),
        });
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        if !self.listener.as_ref().is_some_and(|(ours, _)| *ours == id) {
            return false;
        }
        self.listener = None;
        // The swarm expires the listener's addresses on `ListenerClosed`.
        // Announcing an address and closing it before the swarm heard of it
        // is nothing to report but the close.
        self.events.retain(
            |e| !matches!(e, TransportEvent::NewAddress { listener_id, .. } if *listener_id == id),
        );
        if self.events.len() >= MAX_CLOSED {
            self.events.pop_front();
        }
        self.push(TransportEvent::ListenerClosed {
            listener_id: id,
            reason: Ok(()),
        });
        true
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let Some(to) = station_of(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        if to == 0 {
            return Err(TransportError::Other(Error::UnknownStation { station: 0 }));
        }
        let ether = self.ether.clone();
        let from = self.station;
        // Connect on first poll, not now: the swarm may race dials and drop
        // the losers unpolled.
        Ok(Box::pin(async move { ether.connect(from, to) }))
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        let this = self.get_mut();
        if let Some(event) = this.events.pop_front() {
            return Poll::Ready(event);
        }
        if let Some((id, listener)) = &mut this.listener {
            let id = *id;
            match listener.poll_accept(cx) {
                Poll::Ready(Ok(link)) => {
                    let send_back_addr = address(link.remote_station());
                    return Poll::Ready(TransportEvent::Incoming {
                        listener_id: id,
                        upgrade: future::ready(Ok(link)),
                        local_addr: address(this.station),
                        send_back_addr,
                    });
                }
                Poll::Ready(Err(e)) => {
                    this.listener = None;
                    return Poll::Ready(TransportEvent::ListenerClosed {
                        listener_id: id,
                        reason: Err(e),
                    });
                }
                Poll::Pending => {}
            }
        }
        this.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// `transport` upgraded for a swarm: multistream-select
/// ([`Version::V1`]), Noise authentication with `keypair`, and yamux, boxed.
/// Pass it to `SwarmBuilder::with_other_transport` (its error type is the
/// one that builder accepts).
///
/// Any transport of byte streams works the same way: a host's own BLE
/// links (`multidriver-mobile` upgrades its foreign radio's links with
/// this), or an [`OptionalTransport`](libp2p::core::transport::OptionalTransport)
/// of one.
///
/// # Errors
/// Noise cannot derive its keys from `keypair`.
pub fn upgraded<T>(
    transport: T,
    keypair: &Keypair,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>>
where
    T: Transport + Send + Unpin + 'static,
    T::Output: libp2p::futures::AsyncRead + libp2p::futures::AsyncWrite + Unpin + Send + 'static,
    T::Error: Send + Sync + 'static,
    T::Dial: Send + 'static,
    T::ListenerUpgrade: Send + 'static,
{
    Ok(transport
        .upgrade(Version::V1)
        .authenticate(noise::Config::new(keypair)?)
        .multiplex(yamux::Config::default())
        // A peer that accepts a link but never finishes the handshake (a
        // suspended app) must not hold the dial forever.
        .timeout(UPGRADE_TIMEOUT)
        .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
        .boxed())
}

#[cfg(test)]
mod tests {
    use libp2p::futures::task::noop_waker;

    use super::*;
    use crate::proximity::EtherConfig;

    fn next(t: &mut BleTransport) -> Option<TransportEvent<Ready<Result<Link, Error>>, Error>> {
        let waker = noop_waker();
        match Pin::new(t).poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(e) => Some(e),
            Poll::Pending => None,
        }
    }

    #[test]
    fn listeners_announce_accept_and_close() {
        let ether = Ether::new(EtherConfig::default());
        let a = ether.radio([0.0, 0.0]).unwrap();
        let b = ether.radio([1.0, 0.0]).unwrap();
        let mut t = BleTransport::new(&b);
        let id = ListenerId::next();
        t.listen_on(id, "/memory/0".parse().unwrap()).unwrap();
        assert!(matches!(
            t.listen_on(ListenerId::next(), address(2)),
            Err(TransportError::Other(Error::AlreadyListening {
                station: 2
            }))
        ));
        assert!(matches!(
            t.listen_on(ListenerId::next(), "/ip4/1.2.3.4/tcp/1".parse().unwrap()),
            Err(TransportError::MultiaddrNotSupported(_))
        ));
        match next(&mut t) {
            Some(TransportEvent::NewAddress {
                listener_id,
                listen_addr,
            }) => assert_eq!((listener_id, listen_addr), (id, address(2))),
            _ => panic!("expected NewAddress"),
        }
        assert!(next(&mut t).is_none());
        let _dialer = a.connect(2).unwrap();
        match next(&mut t) {
            Some(TransportEvent::Incoming { send_back_addr, .. }) => {
                assert_eq!(send_back_addr, address(1))
            }
            _ => panic!("expected Incoming"),
        }
        assert!(t.remove_listener(id));
        assert!(!t.remove_listener(id));
        assert!(matches!(
            next(&mut t),
            Some(TransportEvent::ListenerClosed { reason: Ok(()), .. })
        ));
        assert_eq!(
            a.connect(2).unwrap_err(),
            Error::NotListening { station: 2 }
        );
        // A listener removed before the swarm heard of it reports only
        // its close.
        let again = ListenerId::next();
        t.listen_on(again, address(2)).unwrap();
        assert!(t.remove_listener(again));
        assert!(matches!(
            next(&mut t),
            Some(TransportEvent::ListenerClosed { listener_id, .. }) if listener_id == again
        ));
        assert!(next(&mut t).is_none());
    }

    #[test]
    fn addresses_name_stations() {
        assert_eq!(address(7).to_string(), "/memory/7");
        assert_eq!(station_of(&address(7)), Some(7));
        let peer = PeerId::random();
        assert_eq!(station_of(&address(7).with(Protocol::P2p(peer))), Some(7));
        assert_eq!(station_of(&"/ip4/1.2.3.4/tcp/1".parse().unwrap()), None);
        assert_eq!(station_of(&"/memory/7/memory/8".parse().unwrap()), None);
    }
}
