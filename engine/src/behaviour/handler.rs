//! The per-connection half of the [`Behaviour`](super::Behaviour): probes
//! on the engine's request, answers the remote's probes, and keeps the
//! connection open while the engine holds it.
//!
//! Probes speak `/ipfs/ping/1.0.0` (the libp2p ping spec: the dialer sends
//! 32 random bytes and the listener echoes them on the same stream), so a
//! multidriver node measures RTT to any libp2p peer that runs ping, and
//! answers theirs. Unlike libp2p-ping's handler it never probes on its own
//! timer: the engine batches cellular keep-alives and runs the liveness
//! heartbeat, and sends [`In::Probe`] when a probe is due.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, Either};
use futures::{AsyncReadExt, AsyncWriteExt, FutureExt};
use futures_timer::Delay;
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, Stream, StreamProtocol, StreamUpgradeError,
    SubstreamProtocol,
};

/// The libp2p ping protocol (specs `ping/ping.md`).
pub const PROBE_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/ping/1.0.0");

/// Payload size of one ping, from the libp2p ping spec.
const PAYLOAD: usize = 32;

/// How long a remote's probe keeps the connection open on our side: the
/// longest probe interval of the preset profiles (120 s in the background)
/// with room for one missed probe. Our choice.
const REMOTE_HOLD: Duration = Duration::from_secs(300);

/// Most handler events waiting for the behaviour: one probe answer and one
/// failure are all that can be pending, the rest is dropped (the engine's
/// liveness timeout covers a dropped failure).
const MAX_PENDING: usize = 4;

/// What the behaviour tells a connection's handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum In {
    /// Send one probe now (while one is in flight, one more follows it).
    Probe,
    /// Whether the engine holds this connection: if so it stays open even
    /// when idle; if not, the swarm's idle timeout and the other protocols
    /// decide.
    KeepAlive(bool),
}

/// What a connection's handler tells the behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Out {
    /// A probe was answered after this round trip.
    Rtt(Duration),
    /// The remote does not speak the ping protocol; no RTT will come.
    Unsupported,
    /// A probe failed (stream error, wrong echo, or no answer within the
    /// handler's timeout).
    Failed(String),
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
    inbound: Option<BoxFuture<'static, io::Result<Stream>>>,
    /// Until when the remote is taken to hold the connection: it answered
    /// with a probe of its own recently.
    remote_holds_until: Option<Instant>,
    pending: VecDeque<Out>,
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
    pub(crate) fn new(keep_alive: bool, timeout: Duration) -> Self {
        Handler {
            keep_alive,
            timeout,
            probe_wanted: false,
            unsupported: false,
            outbound: Outbound::None,
            inbound: None,
            remote_holds_until: None,
            pending: VecDeque::new(),
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
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(PROBE_PROTOCOL), ())
    }

    fn connection_keep_alive(&self) -> bool {
        // Ours, or the remote's engine holds it (it probes it): closing it
        // on our idle timeout would break the remote's chosen route.
        self.keep_alive || self.remote_holds_until.is_some_and(|t| Instant::now() < t)
    }

    fn on_behaviour_event(&mut self, event: In) {
        match event {
            In::Probe => self.probe_wanted = !self.unsupported,
            In::KeepAlive(keep) => self.keep_alive = keep,
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        // Answer pings until the stream has nothing more: a re-armed answer
        // is polled at once, so that its stream's waker is registered (QUIC
        // wakes only the stream, not the connection).
        while let Some(fut) = self.inbound.as_mut() {
            match fut.poll_unpin(cx) {
                Poll::Pending => break,
                Poll::Ready(Ok(stream)) => {
                    self.remote_holds_until = Some(Instant::now() + REMOTE_HOLD);
                    self.inbound = Some(answer(stream).boxed());
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
                        protocol: SubstreamProtocol::new(ReadyUpgrade::new(PROBE_PROTOCOL), ()),
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
                protocol: mut stream,
                ..
            }) => {
                // Probes alone never hold a connection open.
                stream.ignore_for_keep_alive();
                self.inbound = Some(answer(stream).boxed());
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
