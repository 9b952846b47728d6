//! The app on the phone, shared by every stack: its protocol, numbered
//! messages, resends and acknowledgements.

use std::collections::HashMap;
use std::time::Instant;

use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::ConnectionId;
use libp2p::{PeerId, StreamProtocol};

use super::{Path, Shared, lock};

/// The app's protocol: a message number, acknowledged with the same number.
const APP: StreamProtocol = StreamProtocol::new("/multidriver-switch/1");

pub(super) fn app_behaviour() -> request_response::json::Behaviour<u64, u64> {
    request_response::json::Behaviour::new(
        [(APP, ProtocolSupport::Full)],
        request_response::Config::default(),
    )
}

/// The app's side shared by both phones: numbered messages, resends,
/// acknowledgements.
pub(super) struct App {
    peer: PeerId,
    next: u64,
    /// Request id → message number, for requests in flight.
    in_flight: HashMap<request_response::OutboundRequestId, u64>,
    /// Connection → path.
    pub(super) paths: HashMap<ConnectionId, Option<Path>>,
    pub(super) log: Shared,
}

impl App {
    pub(super) fn new(peer: PeerId, log: Shared) -> App {
        App {
            peer,
            next: 0,
            in_flight: HashMap::new(),
            paths: HashMap::new(),
            log,
        }
    }

    pub(super) fn send_new(&mut self, app: &mut request_response::json::Behaviour<u64, u64>) {
        let n = self.next;
        self.next += 1;
        lock(&self.log).messages.insert(n, false);
        let id = app.send_request(&self.peer, n);
        self.in_flight.insert(id, n);
    }

    /// Numbers a new message without sending it: there is no connection,
    /// and it goes with [`resend_all`](Self::resend_all) on the next one
    /// (sparse traffic, [`Traffic`](super::Traffic)).
    pub(super) fn queue_new(&mut self) {
        let n = self.next;
        self.next += 1;
        lock(&self.log).messages.insert(n, false);
    }

    /// Sends every unacknowledged message again.
    pub(super) fn resend_all(&mut self, app: &mut request_response::json::Behaviour<u64, u64>) {
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

    pub(super) fn on_app_event(
        &mut self,
        event: &request_response::Event<u64, u64>,
        app: &mut request_response::json::Behaviour<u64, u64>,
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
                let path = self.paths.get(connection_id).copied().flatten();
                let mut log = lock(&self.log);
                if let Some(acked) = log.messages.get_mut(response) {
                    *acked = true;
                }
                log.acks.push((Instant::now(), path));
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
