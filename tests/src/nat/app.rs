//! The app on both phones, shared by every stack: phone A sends numbered
//! messages to phone B, B acknowledges each with the same number, and A
//! sends again what is unacknowledged when a request fails and when a new
//! connection to B opens.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId, StreamProtocol};

use super::{Shared, lock};

/// The app's protocol: a message number, acknowledged with the same number.
const APP: StreamProtocol = StreamProtocol::new("/multidriver-nat/1");

/// The app's request-response behaviour.
pub(super) type AppBehaviour = request_response::json::Behaviour<u64, u64>;

pub(super) fn app_behaviour() -> AppBehaviour {
    request_response::json::Behaviour::new(
        [(APP, ProtocolSupport::Full)],
        request_response::Config::default(),
    )
}

/// Whether a connection's remote address goes through a relay.
pub(super) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Answers a request on B: the same number back.
pub(super) fn answer(event: request_response::Event<u64, u64>, app: &mut AppBehaviour) {
    if let request_response::Event::Message {
        message: request_response::Message::Request {
            request, channel, ..
        },
        ..
    } = event
    {
        let _ = app.send_response(channel, request);
    }
}

/// Phone A's side: numbered messages, resends, acknowledgements.
pub(super) struct Sender {
    peer: PeerId,
    next: u64,
    /// Request id → message number, for requests in flight.
    in_flight: HashMap<request_response::OutboundRequestId, u64>,
    /// Connection to B → whether it is direct (not through the relay).
    pub(super) direct: HashMap<ConnectionId, bool>,
    pub(super) log: Shared,
}

impl Sender {
    pub(super) fn new(peer: PeerId, log: Shared) -> Sender {
        Sender {
            peer,
            next: 0,
            in_flight: HashMap::new(),
            direct: HashMap::new(),
            log,
        }
    }

    /// A connection to B opened: remembers its kind and logs it; `true`
    /// if it is the first one.
    pub(super) fn connected(&mut self, connection: ConnectionId, remote: &Multiaddr) -> bool {
        let direct = !is_relayed(remote);
        self.direct.insert(connection, direct);
        let mut log = lock(&self.log);
        let now = Instant::now();
        let first = log.first_connection.is_none();
        if first {
            log.first_connection = Some(now);
        }
        if direct && log.first_direct_connection.is_none() {
            log.first_direct_connection = Some(now);
        }
        log.notes
            .push((now, format!("connected to B over {remote}")));
        first
    }

    /// A connection to B closed; records a circuit closed while a direct
    /// connection was open.
    pub(super) fn closed(&mut self, connection: ConnectionId) {
        let was_direct = self.direct.remove(&connection);
        let direct_open = self.direct.values().any(|d| *d);
        let mut log = lock(&self.log);
        let now = Instant::now();
        if was_direct == Some(false) && direct_open {
            log.circuit_closed_after_direct = true;
        }
        log.notes.push((
            now,
            format!(
                "{} connection to B closed",
                match was_direct {
                    Some(true) => "direct",
                    Some(false) => "relayed",
                    None => "unknown",
                }
            ),
        ));
    }

    pub(super) fn send_new(&mut self, app: &mut AppBehaviour) {
        let n = self.next;
        self.next += 1;
        lock(&self.log).messages.insert(n, false);
        let id = app.send_request(&self.peer, n);
        self.in_flight.insert(id, n);
    }

    /// Sends every unacknowledged message again.
    pub(super) fn resend_all(&mut self, app: &mut AppBehaviour) {
        let pending: Vec<u64> = {
            let log = lock(&self.log);
            log.messages
                .iter()
                .filter(|(_, acked)| !**acked)
                .map(|(n, _)| *n)
                .collect()
        };
        for n in pending {
            let id = app.send_request(&self.peer, n);
            self.in_flight.insert(id, n);
            lock(&self.log).resent += 1;
        }
    }

    pub(super) fn on_event(
        &mut self,
        event: &request_response::Event<u64, u64>,
        app: &mut AppBehaviour,
    ) {
        match event {
            request_response::Event::Message {
                connection_id,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                self.in_flight.remove(request_id);
                let direct = self.direct.get(connection_id).copied().unwrap_or(false);
                let mut log = lock(&self.log);
                if let Some(acked) = log.messages.get_mut(response) {
                    *acked = true;
                }
                log.acks.push((Instant::now(), direct));
            }
            request_response::Event::OutboundFailure { request_id, .. } => {
                if let Some(n) = self.in_flight.remove(request_id) {
                    let acked = lock(&self.log).messages.get(&n).copied().unwrap_or(true);
                    if !acked {
                        let id = app.send_request(&self.peer, n);
                        self.in_flight.insert(id, n);
                        lock(&self.log).resent += 1;
                    }
                }
            }
            _ => {}
        }
    }
}
