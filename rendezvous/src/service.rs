//! The rendezvous point's logic: a request in, an answer out, over a
//! [`Backend`]. No clock, no sockets: the caller passes `now` in Unix
//! seconds.
//!
//! A request is first [planned](Service::plan): checked, and either
//! answered at once (a malformed request) or turned into an [`Op`] for
//! the store. The server runs the ops of a batch together
//! ([`Backend::run`]) and [answers](Service::answer) each from what its op
//! came to. [`Service::handle`] does the three steps for one request.

use libp2p::PeerId;

use crate::Error;
use crate::backend::{AnswerBudget, Backend, Done, Op, PAGE_OVERHEAD, Page};
use crate::config::Limits;
use crate::protocol::{
    self, Cookie, DiscoverResponse, Inbound, Message, MessageType, Register, ResponseStatus,
};
use crate::store::{Caps, Registered};

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
    store: Box<dyn Backend>,
}

/// What a request came to before the store: an answer now, or an op whose
/// answer waits for the batch.
#[derive(Debug)]
pub enum Plan {
    /// Answered without the store (a malformed or refused request).
    Answer(Option<Message>, Outcome),
    /// To run in the store; [`Service::answer`] turns its result into the
    /// answer.
    Store(Op, Ask),
}

/// What [`Service::answer`] needs to know of the request behind an op.
#[derive(Debug, Clone)]
pub enum Ask {
    /// A registration with this TTL.
    Register {
        /// Seconds.
        ttl: u64,
        /// The limits it was counted against.
        caps: Caps,
    },
    /// An unregistration.
    Unregister,
    /// A discovery.
    Discover {
        /// Its namespace, for the cookie.
        namespace: Option<String>,
        /// The cookie's position.
        after: u64,
    },
}

/// A refusal: the status and the text sent with it.
type Refusal = (ResponseStatus, String);

impl Service {
    /// A service over `store` (a [`Store`](crate::Store), a
    /// [`PgStore`](crate::PgStore)); fails if the limits contradict each
    /// other.
    pub fn new(limits: Limits, store: impl Backend + 'static) -> Result<Service, Error> {
        limits.validate()?;
        Ok(Service {
            limits,
            store: Box::new(store),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The store.
    pub fn store(&self) -> &dyn Backend {
        &*self.store
    }

    /// The store, to run batches and sweeps on.
    pub fn store_mut(&mut self) -> &mut dyn Backend {
        &mut *self.store
    }

    /// Answers one request from `from` at once: [`Service::plan`], the
    /// op alone in its batch, [`Service::answer`]. `None`: no answer is due
    /// (an unregistration, or a message that is not a request).
    ///
    /// It waits for the store on this thread: for a store that answers as
    /// it is called (SQLite); the server runs batches without waiting.
    pub fn handle(
        &mut self,
        from: &PeerId,
        request: impl Into<Inbound>,
        now: u64,
    ) -> (Option<Message>, Outcome) {
        match self.plan(from, request, now) {
            Plan::Answer(answer, outcome) => (answer, outcome),
            Plan::Store(op, ask) => {
                let answers = AnswerBudget::unlimited();
                match futures::executor::block_on(self.store.run(vec![op], now, &answers)) {
                    Ok(mut done) => match done.pop() {
                        Some(done) => self.answer(&ask, Ok(done), now),
                        None => self.answer(&ask, Err(&Error::missing_answer()), now),
                    },
                    Err(e) => self.answer(&ask, Err(&e), now),
                }
            }
        }
    }

    /// Checks one request from `from`: an answer now, or the op to run.
    /// A request read by [`protocol::ServerCodec`] carries its record
    /// already checked; a plain [`Message`] has it checked here.
    pub fn plan(&self, from: &PeerId, request: impl Into<Inbound>, now: u64) -> Plan {
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
            ) => match self.register(from, register, checked, now) {
                Ok((op, ask)) => Plan::Store(op, ask),
                Err((status, text)) => Plan::Answer(
                    Some(protocol::register_response(status, text, None)),
                    Outcome::Register(status),
                ),
            },
            (Some(MessageType::Register), _) => {
                let status = ResponseStatus::InvalidNamespace;
                Plan::Answer(
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
                match (own, u.ns.as_deref().map(std::str::from_utf8)) {
                    (true, Some(Ok(ns))) => Plan::Store(
                        Op::Unregister {
                            peer: *from,
                            namespace: ns.to_owned(),
                        },
                        Ask::Unregister,
                    ),
                    _ => Plan::Answer(None, Outcome::Unregister(false)),
                }
            }
            (
                Some(MessageType::Discover),
                Message {
                    discover: Some(d), ..
                },
            ) => match self.discover(&d) {
                Ok((op, ask)) => Plan::Store(op, ask),
                Err((status, text)) => Plan::Answer(
                    Some(protocol::discover_error(status, text)),
                    Outcome::Discover(status, 0),
                ),
            },
            (Some(MessageType::Discover), _) => {
                let status = ResponseStatus::InvalidNamespace;
                Plan::Answer(
                    Some(protocol::discover_error(
                        status,
                        "DISCOVER without a discover body".into(),
                    )),
                    Outcome::Discover(status, 0),
                )
            }
            _ => Plan::Answer(None, Outcome::NotARequest),
        }
    }

    /// The answer to the request behind `ask`, from what its op came to.
    /// A store that cannot be reached gives `E_UNAVAILABLE` (retry later),
    /// any other store failure `E_INTERNAL_ERROR`; neither confirms
    /// anything.
    pub fn answer(
        &self,
        ask: &Ask,
        done: Result<Done, &Error>,
        now: u64,
    ) -> (Option<Message>, Outcome) {
        let failure = |e: &Error, what: &str| failed_op(e.is_unavailable(), &e.to_string(), what);
        match (ask, done) {
            (Ask::Register { ttl, caps }, done) => {
                let result = match done {
                    Ok(Done::Register(Registered::New | Registered::Refreshed)) => Ok(*ttl),
                    Ok(Done::Register(Registered::PeerLimit)) => Err((
                        ResponseStatus::Unavailable,
                        format!(
                            "this peer holds {} registrations, the per-peer limit",
                            caps.per_peer
                        ),
                    )),
                    Ok(Done::Register(Registered::TotalLimit)) => Err((
                        ResponseStatus::Unavailable,
                        format!("the point holds {} registrations, its limit", caps.total),
                    )),
                    Ok(Done::Failed {
                        unavailable,
                        message,
                    }) => Err(failed_op(unavailable, &message, "register")),
                    Ok(other) => Err(mismatch(&other)),
                    Err(e) => Err(failure(e, "register")),
                };
                let (status, text, ttl) = match result {
                    Ok(ttl) => (ResponseStatus::Ok, String::new(), Some(ttl)),
                    Err((status, text)) => (status, text, None),
                };
                (
                    Some(protocol::register_response(status, text, ttl)),
                    Outcome::Register(status),
                )
            }
            (Ask::Unregister, done) => {
                let dropped = match done {
                    Ok(Done::Unregister(dropped)) => dropped,
                    Ok(Done::Failed {
                        unavailable,
                        message,
                    }) => {
                        failed_op(unavailable, &message, "unregister");
                        false
                    }
                    Ok(other) => {
                        mismatch(&other);
                        false
                    }
                    Err(e) => {
                        failure(e, "unregister");
                        false
                    }
                };
                (None, Outcome::Unregister(dropped))
            }
            (Ask::Discover { namespace, after }, done) => {
                let page = match done {
                    Ok(Done::Discover(page)) => page_answer(page, namespace.clone(), *after, now),
                    Ok(Done::Busy) => Err((
                        ResponseStatus::Unavailable,
                        "busy: too many answers waiting for their clients; retry shortly"
                            .to_owned(),
                    )),
                    Ok(Done::Failed {
                        unavailable,
                        message,
                    }) => Err(failed_op(unavailable, &message, "discover")),
                    Ok(other) => Err(mismatch(&other)),
                    Err(e) => Err(failure(e, "discover")),
                };
                match page {
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
                }
            }
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
        &self,
        from: &PeerId,
        r: Register,
        checked: Option<protocol::RecordCheck>,
        now: u64,
    ) -> Result<(Op, Ask), Refusal> {
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
        Ok((
            Op::Register {
                peer: *from,
                namespace,
                record: bytes,
                expires: now.saturating_add(ttl),
                caps,
            },
            Ask::Register { ttl, caps },
        ))
    }

    fn discover(&self, d: &protocol::Discover) -> Result<(Op, Ask), Refusal> {
        let namespace = match d.ns.as_deref() {
            None => None,
            Some(ns) => Some(self.namespace(Some(ns))?),
        };
        let invalid = |why: &str| (ResponseStatus::InvalidCookie, why.to_owned());
        let after = match d.cookie.as_deref() {
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
                cookie.position
            }
        };
        let limit = d
            .limit
            .unwrap_or(u64::MAX)
            .min(self.limits.max_discover_limit);
        Ok((
            Op::Discover {
                namespace: namespace.clone(),
                after,
                limit,
                // Entries are admitted while they fit under the message
                // limit; the store stops reading rows at the first that
                // does not.
                budget: protocol::MAX_MESSAGE_BYTES - PAGE_OVERHEAD,
            },
            Ask::Discover { namespace, after },
        ))
    }
}

/// A discover answer from the store's page: the cookie of a page that held
/// every match covers everything committed up to the page's snapshot;
/// otherwise it ends at the page's last entry. A cookie past everything
/// committed was not issued by any point of this registry.
fn page_answer(
    page: Page,
    namespace: Option<String>,
    after: u64,
    now: u64,
) -> Result<DiscoverResponse, Refusal> {
    if after > page.last_position {
        return Err((
            ResponseStatus::InvalidCookie,
            "the cookie was not issued by this point".to_owned(),
        ));
    }
    let mut end = page.rows.last().map_or(after, |r| r.position);
    if page.complete {
        end = end.max(page.last_position);
    }
    let registrations = page
        .rows
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

/// The answer to one op that failed on its own (its batch's writes stand).
fn failed_op(unavailable: bool, message: &str, what: &str) -> Refusal {
    tracing::error!(target: "multidriver_rendezvous", "{what}: {message}");
    if unavailable {
        (
            ResponseStatus::Unavailable,
            "the registry is unavailable; retry shortly".to_owned(),
        )
    } else {
        (ResponseStatus::InternalError, "store failure".to_owned())
    }
}

/// A store that answered an op with another op's result: a bug in the
/// backend, answered as an internal error.
fn mismatch(done: &Done) -> Refusal {
    tracing::error!(target: "multidriver_rendezvous", ?done, "the store answered another kind of op");
    (ResponseStatus::InternalError, "store failure".to_owned())
}
