//! The per-connection half of the [`Behaviour`](super::Behaviour): probes
//! on the engine's request, answers the remote's probes, and keeps the
//! connection open while the engine holds it.
//!
//! Probes are the libp2p ping exchange (the ping spec: the dialer sends 32
//! random bytes and the listener echoes them on the same stream) under our
//! own name, [`PROBE_PROTOCOL`]. An outbound probe offers ours first and
//! falls back to `/ipfs/ping/1.0.0` ([`PING_PROTOCOL`]), so a multidriver
//! node measures RTT to any libp2p peer that runs ping. Inbound it answers
//! ours, and ping's unless the app's own `ping::Behaviour` does
//! ([`ProbeListen`]); a stock ping answered here holds nothing open. Unlike
//! libp2p-ping's handler it never probes on its own timer: the engine
//! batches cellular keep-alives and runs the liveness heartbeat, and sends
//! [`In::Probe`] when a probe is due.
//!
//! Keep-alive: a connection is held open only while our engine holds it
//! ([`In::KeepAlive`]) or while a remote *engine* probes it on our protocol
//! (it holds it; closing it on our idle timeout would break the remote's
//! chosen route). Every other connection follows the swarm's idle timeout.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, Either};
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt};
use futures_timer::Delay;
use libp2p::Multiaddr;
use libp2p::core::UpgradeInfo;
use libp2p::core::upgrade::{InboundUpgrade, OutboundUpgrade};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
    ProtocolsChange,
};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, Stream, StreamProtocol, StreamUpgradeError,
    SubstreamProtocol,
};

/// Our probe protocol: the libp2p ping exchange (specs `ping/ping.md`)
/// under our own name, so that answering it never collides with a stock
/// `ping::Behaviour` in the same swarm, and a probe on it says "the
/// remote's engine holds this connection".
pub const PROBE_PROTOCOL: StreamProtocol = StreamProtocol::new("/multidriver/probe/1.0.0");

/// The libp2p ping protocol (specs `ping/ping.md`): what outbound probes
/// fall back to for a peer that does not speak [`PROBE_PROTOCOL`].
pub const PING_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/ping/1.0.0");

/// An outbound probe stream: ours if the remote speaks it, else ping's
/// (multistream-select proposes them in this order).
#[derive(Debug, Clone, Copy)]
pub struct ProbeUpgrade;

impl UpgradeInfo for ProbeUpgrade {
    type Info = StreamProtocol;
    type InfoIter = [StreamProtocol; 2];

    fn protocol_info(&self) -> Self::InfoIter {
        [PROBE_PROTOCOL, PING_PROTOCOL]
    }
}

/// What the handler answers: our probes, and `/ipfs/ping/1.0.0` too unless
/// the app's own `ping::Behaviour` answers it (see
/// [`Config::with_ping_answers`](super::Config::with_ping_answers)).
/// The negotiated protocol comes with the stream: only ours holds the
/// connection open.
#[derive(Debug, Clone, Copy)]
pub struct ProbeListen {
    /// Answer `/ipfs/ping/1.0.0` as well.
    pub ping: bool,
}

impl UpgradeInfo for ProbeListen {
    type Info = StreamProtocol;
    type InfoIter = std::iter::Take<std::array::IntoIter<StreamProtocol, 2>>;

    fn protocol_info(&self) -> Self::InfoIter {
        [PROBE_PROTOCOL, PING_PROTOCOL]
            .into_iter()
            .take(if self.ping { 2 } else { 1 })
    }
}

impl InboundUpgrade<Stream> for ProbeListen {
    type Output = (Stream, StreamProtocol);
    type Error = std::convert::Infallible;
    type Future = futures::future::Ready<Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, stream: Stream, protocol: StreamProtocol) -> Self::Future {
        futures::future::ready(Ok((stream, protocol)))
    }
}

impl OutboundUpgrade<Stream> for ProbeUpgrade {
    type Output = Stream;
    type Error = std::convert::Infallible;
    type Future = futures::future::Ready<Result<Stream, Self::Error>>;

    fn upgrade_outbound(self, stream: Stream, _: StreamProtocol) -> Self::Future {
        futures::future::ready(Ok(stream))
    }
}

/// Payload size of one ping, from the libp2p ping spec.
const PAYLOAD: usize = 32;

/// How long a remote engine's probe keeps the connection open on our side
/// (the remote engine probes the connections it holds at least every
/// keep-alive interval of its profile, 120 s at most in the presets; one that
/// probes less often, or not at all, loses the hold and our idle timeout may
/// close the connection, which its engine then redials): the
/// longest probe interval of the preset profiles (120 s in the background)
/// with room for one missed probe. Our choice.
const REMOTE_HOLD: Duration = Duration::from_secs(300);

/// Most handler events waiting for the behaviour: one probe answer and one
/// failure are all that can be pending, the rest is dropped (the engine's
/// liveness timeout covers a dropped failure).
const MAX_PENDING: usize = 4;

/// Circuit relay v2's hop protocol (libp2p-relay 0.22 `HOP_PROTOCOL_NAME`;
/// the circuit relay v2 spec).
const RELAY_HOP_PROTOCOL: StreamProtocol = StreamProtocol::new("/libp2p/circuit/relay/0.2.0/hop");

/// The rendezvous protocol (libp2p-rendezvous 0.18 `PROTOCOL_IDENT`; the
/// rendezvous spec).
const RENDEZVOUS_PROTOCOL: StreamProtocol = StreamProtocol::new("/rendezvous/1.0.0");

/// What the behaviour tells a connection's handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    /// Send one probe now (while one is in flight, one more follows it).
    Probe,
    /// Whether the engine holds this connection: if so it stays open even
    /// when idle (and, on becoming held, it is probed once at once so the
    /// remote's handler holds it too); if not, the swarm's idle timeout and
    /// the other protocols decide.
    KeepAlive(bool),
}

/// What a connection's handler tells the behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A probe was answered after this round trip.
    Rtt(Duration),
    /// The remote speaks neither our probe protocol nor ping; no RTT will
    /// come.
    Unsupported,
    /// A probe failed (stream error, wrong echo, or no answer within the
    /// handler's timeout).
    Failed(String),
    /// The remote, dialled at this address, is a rendezvous point that also
    /// serves circuit relay v2 (identify listed both protocols): a relay
    /// this node may reserve on. Reported once per connection.
    RelayServer(Multiaddr),
}

enum Outbound {
    /// No stream yet (or the last one failed).
    None,
    /// A stream is being negotiated for a probe.
    Opening,
    /// A stream waits for the next probe.
    Idle(Stream),
    /// A probe is in flight; `reused` when on a stream an earlier probe
    /// used (the remote may have dropped it while idle).
    Busy {
        fut: BoxFuture<'static, Result<(Stream, Duration), String>>,
        reused: bool,
    },
}

/// The connection handler.
pub struct Handler {
    keep_alive: bool,
    timeout: Duration,
    probe_wanted: bool,
    unsupported: bool,
    outbound: Outbound,
    /// The remote's probe or ping being answered; `true` when it came on
    /// our protocol (the remote's engine holds the connection).
    inbound: Option<(BoxFuture<'static, io::Result<Stream>>, bool)>,
    /// Whether `/ipfs/ping/1.0.0` is answered here.
    answer_ping: bool,
    /// Until when the remote is taken to hold the connection: it answered
    /// with a probe of its own recently.
    remote_holds_until: Option<Instant>,
    /// Wakes the connection when that hold ends, so that the swarm looks
    /// at its keep-alive again.
    hold_timer: Option<Delay>,
    pending: VecDeque<Out>,
    /// The address we dialled the remote at (outbound connections only),
    /// and which of the relay server's protocols it listed so far.
    dialled: Option<Multiaddr>,
    remote_serves: (bool, bool),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("keep_alive", &self.keep_alive)
            .field("probe_wanted", &self.probe_wanted)
            .field("unsupported", &self.unsupported)
            .finish_non_exhaustive()
    }
}

impl Handler {
    pub(crate) fn new(keep_alive: bool, timeout: Duration, answer_ping: bool) -> Self {
        Handler {
            keep_alive,
            timeout,
            // A connection our engine dialled is held from the start: one
            // probe at once tells the remote (see `In::KeepAlive`).
            probe_wanted: keep_alive,
            unsupported: false,
            outbound: Outbound::None,
            inbound: None,
            answer_ping,
            remote_holds_until: None,
            hold_timer: None,
            pending: VecDeque::new(),
            dialled: None,
            remote_serves: (false, false),
        }
    }

    /// The address this outbound connection was dialled at: if the remote
    /// turns out to be a rendezvous point that relays, it is reported
    /// ([`Out::RelayServer`]).
    pub(crate) fn with_dialled(mut self, addr: &Multiaddr) -> Self {
        self.dialled = Some(addr.clone());
        self
    }

    /// Identify told us (more of) the remote's protocols.
    fn remote_protocols(&mut self, added: impl Iterator<Item = StreamProtocol>) {
        if self.dialled.is_none() {
            return;
        }
        for p in added {
            if p == RELAY_HOP_PROTOCOL {
                self.remote_serves.0 = true;
            } else if p == RENDEZVOUS_PROTOCOL {
                self.remote_serves.1 = true;
            }
        }
        if self.remote_serves == (true, true)
            && let Some(addr) = self.dialled.take()
        {
            self.report(Out::RelayServer(addr));
        }
    }

    fn report(&mut self, out: Out) {
        if self.pending.len() < MAX_PENDING {
            self.pending.push_back(out);
        }
    }
}

fn payload() -> [u8; PAYLOAD] {
    // Randomness from the standard library's hasher keys: each
    // `RandomState` is seeded afresh, which is all a ping needs.
    let mut bytes = [0u8; PAYLOAD];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let word = RandomState::new().hash_one(i);
        chunk.copy_from_slice(&word.to_le_bytes()[..chunk.len()]);
    }
    bytes
}

async fn probe(mut stream: Stream, timeout: Duration) -> Result<(Stream, Duration), String> {
    let exchange = async move {
        let sent = payload();
        let start = Instant::now();
        stream.write_all(&sent).await?;
        stream.flush().await?;
        let mut echo = [0u8; PAYLOAD];
        stream.read_exact(&mut echo).await?;
        if echo != sent {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the ping echo differs from what was sent",
            ));
        }
        Ok((stream, start.elapsed()))
    };
    futures::pin_mut!(exchange);
    match futures::future::select(exchange, Delay::new(timeout)).await {
        Either::Left((Ok(done), _)) => Ok(done),
        Either::Left((Err(e), _)) => Err(e.to_string()),
        Either::Right(((), _)) => Err(format!("no ping answer within {timeout:?}")),
    }
}

async fn answer(mut stream: Stream) -> io::Result<Stream> {
    let mut buf = [0u8; PAYLOAD];
    stream.read_exact(&mut buf).await?;
    stream.write_all(&buf).await?;
    stream.flush().await?;
    Ok(stream)
}

impl ConnectionHandler for Handler {
    type FromBehaviour = In;
    type ToBehaviour = Out;
    type InboundProtocol = ProbeListen;
    type OutboundProtocol = ProbeUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(
            ProbeListen {
                ping: self.answer_ping,
            },
            (),
        )
    }

    fn connection_keep_alive(&self) -> bool {
        // Ours, or the remote's engine holds it (it probes it on our
        // protocol): closing it on our idle timeout would break the
        // remote's chosen route. Stock pings cannot reach this handler.
        self.keep_alive || self.remote_holds_until.is_some_and(|t| Instant::now() < t)
    }

    fn on_behaviour_event(&mut self, event: In) {
        match event {
            In::Probe => self.probe_wanted = !self.unsupported,
            In::KeepAlive(keep) => {
                // Newly held: one probe at once tells the remote's handler
                // that our engine holds the connection, before the remote's
                // idle timeout can close it (and measures the path).
                if keep && !self.keep_alive && !self.unsupported {
                    self.probe_wanted = true;
                }
                self.keep_alive = keep;
            }
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        // Answer pings until the stream has nothing more: a re-armed answer
        // is polled at once, so that its stream's waker is registered (QUIC
        // wakes only the stream, not the connection).
        if let Some(timer) = self.hold_timer.as_mut()
            && timer.poll_unpin(cx).is_ready()
        {
            self.hold_timer = None;
        }
        while let Some((fut, ours)) = self.inbound.as_mut() {
            let ours = *ours;
            match fut.poll_unpin(cx) {
                Poll::Pending => break,
                Poll::Ready(Ok(stream)) => {
                    // Only the remote's engine holds a connection; a stock
                    // ping answered here keeps nothing alive.
                    if ours {
                        self.remote_holds_until = Some(Instant::now() + REMOTE_HOLD);
                        self.hold_timer = Some(Delay::new(REMOTE_HOLD));
                    }
                    self.inbound = Some((answer(stream).boxed(), ours));
                }
                Poll::Ready(Err(e)) => {
                    tracing::trace!(error = %e, "inbound probe stream ended");
                    self.inbound = None;
                }
            }
        }
        loop {
            if let Some(out) = self.pending.pop_front() {
                return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(out));
            }
            match std::mem::replace(&mut self.outbound, Outbound::None) {
                Outbound::Busy { mut fut, reused } => match fut.poll_unpin(cx) {
                    Poll::Pending => {
                        self.outbound = Outbound::Busy { fut, reused };
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok((stream, rtt))) => {
                        self.outbound = Outbound::Idle(stream);
                        self.report(Out::Rtt(rtt));
                    }
                    // An idle stream the remote dropped: retry once on a
                    // fresh stream before calling the probe failed.
                    Poll::Ready(Err(_)) if reused => self.probe_wanted = true,
                    Poll::Ready(Err(e)) => self.report(Out::Failed(e)),
                },
                Outbound::Idle(stream) if self.probe_wanted => {
                    self.probe_wanted = false;
                    self.outbound = Outbound::Busy {
                        fut: probe(stream, self.timeout).boxed(),
                        reused: true,
                    };
                }
                Outbound::None if self.probe_wanted => {
                    self.outbound = Outbound::Opening;
                    return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                        protocol: SubstreamProtocol::new(ProbeUpgrade, ()),
                    });
                }
                other => {
                    self.outbound = other;
                    return Poll::Pending;
                }
            }
        }
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<'_, Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (mut stream, protocol),
                ..
            }) => {
                // The stream itself never holds the connection open; an
                // answered probe of ours does, for REMOTE_HOLD.
                stream.ignore_for_keep_alive();
                self.inbound = Some((answer(stream).boxed(), protocol == PROBE_PROTOCOL));
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: mut stream,
                ..
            }) => {
                stream.ignore_for_keep_alive();
                self.probe_wanted = false;
                self.outbound = Outbound::Busy {
                    fut: probe(stream, self.timeout).boxed(),
                    reused: false,
                };
            }
            ConnectionEvent::RemoteProtocolsChange(ProtocolsChange::Added(added)) => {
                self.remote_protocols(added.cloned());
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => {
                self.outbound = Outbound::None;
                match error {
                    StreamUpgradeError::NegotiationFailed => {
                        self.unsupported = true;
                        self.probe_wanted = false;
                        self.report(Out::Unsupported);
                    }
                    StreamUpgradeError::Timeout => {
                        self.report(Out::Failed("ping negotiation timed out".into()));
                    }
                    StreamUpgradeError::Io(e) => self.report(Out::Failed(e.to_string())),
                    StreamUpgradeError::Apply(never) => match never {},
                }
            }
            _ => {}
        }
    }
}
