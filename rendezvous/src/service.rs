//! The rendezvous point's logic: a request in, an answer out, over the
//! [`Store`]. No clock, no sockets: the caller passes `now` in Unix seconds.

use libp2p::PeerId;

use crate::Error;
use crate::config::Limits;
use crate::protocol::{
    self, Cookie, DiscoverResponse, Inbound, Message, MessageType, Register, ResponseStatus,
};
use crate::store::{Caps, Registered, Store};

/// Bytes kept free in a discover answer for its cookie, status and framing.
const PAGE_OVERHEAD: usize = 1024;

/// Bytes one registration takes in a discover answer, at most: the
/// namespace and record with their tags and length prefixes, the TTL, and
/// the entry's own tag and length (protobuf: 1-byte tags, varints of at
/// most 10 bytes).
fn entry_len(namespace: usize, record: usize) -> usize {
    let inner = (1 + 10 + namespace) + (1 + 10 + record) + (1 + 10);
    1 + 10 + inner
}

/// What one request came to, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A registration: its status.
    Register(ResponseStatus),
    /// An unregistration: whether one was dropped.
    Unregister(bool),
    /// A discovery: its status and how many registrations were returned.
    Discover(ResponseStatus, usize),
    /// A message that is not a request (a response type, or no type); it
    /// gets no answer.
    NotARequest,
}

impl Outcome {
    /// The request kind, for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Outcome::Register(_) => "register",
            Outcome::Unregister(_) => "unregister",
            Outcome::Discover(..) => "discover",
            Outcome::NotARequest => "invalid",
        }
    }

    /// The status, for metric labels.
    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Register(s) | Outcome::Discover(s, _) => s.as_str(),
            Outcome::Unregister(true) => "ok",
            Outcome::Unregister(false) => "not_registered",
            Outcome::NotARequest => "not_a_request",
        }
    }
}

/// The point's state: its limits and its store.
#[derive(Debug)]
pub struct Service {
    limits: Limits,
    store: Store,
}

/// A refusal: the status and the text sent with it.
type Refusal = (ResponseStatus, String);

impl Service {
    /// A service over `store`; fails if the limits contradict each other.
    pub fn new(limits: Limits, store: Store) -> Result<Service, Error> {
        limits.validate()?;
        Ok(Service { limits, store })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Opens a batch of requests committed together ([`Store::begin`]):
    /// answers to requests handled inside it must wait for
    /// [`Service::commit`] to succeed.
    pub fn begin(&mut self) -> Result<(), Error> {
        self.store.begin()
    }

    /// Commits the open batch ([`Store::commit`]); on failure none of its
    /// writes happened and its answers must not be sent.
    pub fn commit(&mut self) -> Result<(), Error> {
        self.store.commit()
    }

    /// Deletes expired registrations; how many.
    pub fn sweep(&mut self, now: u64) -> Result<u64, Error> {
        self.store.sweep(now)
    }

    /// Answers one request from `from`. `None`: no answer is due (an
    /// unregistration, or a message that is not a request).
    /// A request read by [`protocol::ServerCodec`] carries its record
    /// already checked; a plain [`Message`] has it checked here.
    pub fn handle(
        &mut self,
        from: &PeerId,
        request: impl Into<Inbound>,
        now: u64,
    ) -> (Option<Message>, Outcome) {
        let Inbound {
            message: request,
            record: checked,
        } = request.into();
        let kind = request.r#type.and_then(|t| MessageType::try_from(t).ok());
        match (kind, request) {
            (
                Some(MessageType::Register),
                Message {
                    register: Some(register),
                    ..
                },
            ) => {
                let (status, text, ttl) = match self.register(from, register, checked, now) {
                    Ok(ttl) => (ResponseStatus::Ok, String::new(), Some(ttl)),
                    Err((status, text)) => (status, text, None),
                };
                (
                    Some(protocol::register_response(status, text, ttl)),
                    Outcome::Register(status),
                )
            }
            (Some(MessageType::Register), _) => {
                let status = ResponseStatus::InvalidNamespace;
                (
                    Some(protocol::register_response(
                        status,
                        "REGISTER without a register body".into(),
                        None,
                    )),
                    Outcome::Register(status),
                )
            }
            (
                Some(MessageType::Unregister),
                Message {
                    unregister: Some(u),
                    ..
                },
            ) => {
                let own = u.id.as_deref().is_none_or(|id| id == from.to_bytes());
                let dropped = match (own, u.ns.as_deref().map(std::str::from_utf8)) {
                    (true, Some(Ok(ns))) => match self.store.unregister(from, ns) {
                        Ok(dropped) => dropped,
                        Err(e) => {
                            tracing::error!(target: "multidriver_rendezvous", "unregister: {e}");
                            false
                        }
                    },
                    _ => false,
                };
                (None, Outcome::Unregister(dropped))
            }
            (
                Some(MessageType::Discover),
                Message {
                    discover: Some(d), ..
                },
            ) => match self.discover(&d, now) {
                Ok(page) => {
                    let n = page.registrations.len();
                    (
                        Some(Message {
                            r#type: Some(MessageType::DiscoverResponse as i32),
                            discover_response: Some(page),
                            ..Message::default()
                        }),
                        Outcome::Discover(ResponseStatus::Ok, n),
                    )
                }
                Err((status, text)) => (
                    Some(protocol::discover_error(status, text)),
                    Outcome::Discover(status, 0),
                ),
            },
            (Some(MessageType::Discover), _) => {
                let status = ResponseStatus::InvalidNamespace;
                (
                    Some(protocol::discover_error(
                        status,
                        "DISCOVER without a discover body".into(),
                    )),
                    Outcome::Discover(status, 0),
                )
            }
            _ => (None, Outcome::NotARequest),
        }
    }

    fn namespace(&self, ns: Option<&[u8]>) -> Result<String, Refusal> {
        let invalid = |why: String| (ResponseStatus::InvalidNamespace, why);
        let bytes = ns.ok_or_else(|| invalid("no namespace".into()))?;
        if bytes.is_empty() {
            return Err(invalid("empty namespace".into()));
        }
        if bytes.len() > self.limits.max_namespace_len {
            return Err(invalid(format!(
                "namespace of {} bytes is over the {}-byte limit",
                bytes.len(),
                self.limits.max_namespace_len
            )));
        }
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| invalid("namespace is not UTF-8".into()))
    }

    /// `checked`: the record as [`protocol::ServerCodec`] already checked
    /// it, if it did.
    fn register(
        &mut self,
        from: &PeerId,
        r: Register,
        checked: Option<protocol::RecordCheck>,
        now: u64,
    ) -> Result<u64, Refusal> {
        let namespace = self.namespace(r.ns.as_deref())?;
        let bytes = r.signed_peer_record.ok_or_else(|| {
            (
                ResponseStatus::InvalidSignedPeerRecord,
                "no signed peer record".to_owned(),
            )
        })?;
        let owner = match checked {
            Some(check) => check?,
            None => protocol::check_record(
                &bytes,
                self.limits.max_record_bytes,
                self.limits.accept_spec_records,
            )?,
        };
        if owner != *from {
            return Err((
                ResponseStatus::NotAuthorized,
                format!("the record is {owner}'s, the request came from {from}"),
            ));
        }
        let ttl = r.ttl.unwrap_or(self.limits.default_ttl);
        if !(self.limits.min_ttl..=self.limits.max_ttl).contains(&ttl) {
            return Err((
                ResponseStatus::InvalidTtl,
                format!(
                    "TTL {ttl} s is outside {}..={} s",
                    self.limits.min_ttl, self.limits.max_ttl
                ),
            ));
        }
        let caps = Caps {
            per_peer: self.limits.max_registrations_per_peer,
            total: self.limits.max_registrations,
        };
        match self
            .store
            .register(from, &namespace, &bytes, now.saturating_add(ttl), now, caps)
        {
            Ok(Registered::New | Registered::Refreshed) => Ok(ttl),
            Ok(Registered::PeerLimit) => Err((
                ResponseStatus::Unavailable,
                format!(
                    "this peer holds {} registrations, the per-peer limit",
                    caps.per_peer
                ),
            )),
            Ok(Registered::TotalLimit) => Err((
                ResponseStatus::Unavailable,
                format!("the point holds {} registrations, its limit", caps.total),
            )),
            Err(e) => {
                tracing::error!(target: "multidriver_rendezvous", "register: {e}");
                Err((ResponseStatus::InternalError, "store failure".into()))
            }
        }
    }

    fn discover(&self, d: &protocol::Discover, now: u64) -> Result<DiscoverResponse, Refusal> {
        let namespace = match d.ns.as_deref() {
            None => None,
            Some(ns) => Some(self.namespace(Some(ns))?),
        };
        let invalid = |why: &str| (ResponseStatus::InvalidCookie, why.to_owned());
        let position = match d.cookie.as_deref() {
            None => 0,
            Some(bytes) => {
                let cookie =
                    Cookie::from_bytes(bytes).ok_or_else(|| invalid("malformed cookie"))?;
                match (&namespace, &cookie.namespace) {
                    (None, Some(_)) => {
                        return Err(invalid("a namespace's cookie in a discover of all"));
                    }
                    (Some(ns), Some(c)) if ns != c => {
                        return Err(invalid("the cookie is another namespace's"));
                    }
                    _ => {}
                }
                if cookie.position > self.store.last_position() {
                    return Err(invalid("the cookie was not issued by this point"));
                }
                cookie.position
            }
        };
        let limit = d
            .limit
            .unwrap_or(u64::MAX)
            .min(self.limits.max_discover_limit);
        // Entries are admitted while they fit under the message limit; the
        // store stops reading rows at the first that does not.
        let mut budget = protocol::MAX_MESSAGE_BYTES - PAGE_OVERHEAD;
        let (rows, complete) = self
            .store
            .discover(namespace.as_deref(), position, limit, now, |row| {
                let size = entry_len(row.namespace.len(), row.record.len());
                let fits = size <= budget;
                if fits {
                    budget -= size;
                }
                fits
            })
            .map_err(|e| {
                tracing::error!(target: "multidriver_rendezvous", "discover: {e}");
                (ResponseStatus::InternalError, "store failure".to_owned())
            })?;
        let mut end = rows.last().map_or(position, |r| r.position);
        // A page that held every match also covers everything up to the
        // last position given; otherwise it ends at its last entry.
        if complete {
            end = end.max(self.store.last_position());
        }
        let registrations = rows
            .into_iter()
            .map(|row| Register {
                ns: Some(row.namespace.into_bytes()),
                signed_peer_record: Some(row.record),
                ttl: Some(row.expires.saturating_sub(now)),
            })
            .collect();
        let cookie = Cookie {
            position: end,
            namespace,
        };
        Ok(DiscoverResponse {
            registrations,
            cookie: Some(cookie.to_bytes()),
            status: Some(ResponseStatus::Ok as i32),
            status_text: None,
        })
    }
}
