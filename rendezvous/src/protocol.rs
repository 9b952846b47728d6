//! The rendezvous wire format: the libp2p rendezvous protocol's protobuf
//! messages, its cookie convention, and a request-response codec.
//!
//! Messages follow the spec's `rpc.proto`
//! (<https://github.com/libp2p/specs/blob/master/rendezvous/README.md#protobuf>).
//! Namespaces are decoded as bytes, not strings, so a namespace that is not
//! UTF-8 is answered with `E_INVALID_NAMESPACE` instead of failing the whole
//! message.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use prost::Message as _;

/// The protocol id, from the spec.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/rendezvous/1.0.0");

/// Largest message read or written: 1 MiB, the limit stock rust-libp2p
/// clients decode with (libp2p-rendezvous 0.18, `codec.rs`,
/// `MAX_MESSAGE_LEN_BYTES`). A discover page is cut to fit under it.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// A rendezvous message, one per stream in each direction.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// Which of the optional bodies is set ([`MessageType`]).
    #[prost(enumeration = "MessageType", optional, tag = "1")]
    pub r#type: Option<i32>,
    /// A registration request.
    #[prost(message, optional, tag = "2")]
    pub register: Option<Register>,
    /// The answer to a registration.
    #[prost(message, optional, tag = "3")]
    pub register_response: Option<RegisterResponse>,
    /// A request to drop a registration.
    #[prost(message, optional, tag = "4")]
    pub unregister: Option<Unregister>,
    /// A discovery request.
    #[prost(message, optional, tag = "5")]
    pub discover: Option<Discover>,
    /// The answer to a discovery request.
    #[prost(message, optional, tag = "6")]
    pub discover_response: Option<DiscoverResponse>,
}

/// `REGISTER`, and each registration in a discover answer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Register {
    /// The namespace (UTF-8 on the wire when valid).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub ns: Option<Vec<u8>>,
    /// A signed envelope holding a peer record.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub signed_peer_record: Option<Vec<u8>>,
    /// Seconds the registration lives.
    #[prost(uint64, optional, tag = "3")]
    pub ttl: Option<u64>,
}

/// `REGISTER_RESPONSE`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RegisterResponse {
    /// [`ResponseStatus`].
    #[prost(enumeration = "ResponseStatus", optional, tag = "1")]
    pub status: Option<i32>,
    /// Why, for people.
    #[prost(string, optional, tag = "2")]
    pub status_text: Option<String>,
    /// The TTL granted, in seconds.
    #[prost(uint64, optional, tag = "3")]
    pub ttl: Option<u64>,
}

/// `UNREGISTER`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Unregister {
    /// The namespace.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub ns: Option<Vec<u8>>,
    /// The peer id's bytes (optional; must be the sender's when given).
    #[prost(bytes = "vec", optional, tag = "2")]
    pub id: Option<Vec<u8>>,
}

/// `DISCOVER`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Discover {
    /// The namespace; absent means every namespace.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub ns: Option<Vec<u8>>,
    /// At most this many registrations.
    #[prost(uint64, optional, tag = "2")]
    pub limit: Option<u64>,
    /// Where the previous page ended.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub cookie: Option<Vec<u8>>,
}

/// `DISCOVER_RESPONSE`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DiscoverResponse {
    /// The page of registrations.
    #[prost(message, repeated, tag = "1")]
    pub registrations: Vec<Register>,
    /// Where this page ended; send it back for the next one.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub cookie: Option<Vec<u8>>,
    /// [`ResponseStatus`].
    #[prost(enumeration = "ResponseStatus", optional, tag = "3")]
    pub status: Option<i32>,
    /// Why, for people.
    #[prost(string, optional, tag = "4")]
    pub status_text: Option<String>,
}

/// The message types of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// `REGISTER`.
    Register = 0,
    /// `REGISTER_RESPONSE`.
    RegisterResponse = 1,
    /// `UNREGISTER`.
    Unregister = 2,
    /// `DISCOVER`.
    Discover = 3,
    /// `DISCOVER_RESPONSE`.
    DiscoverResponse = 4,
}

/// The response statuses of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseStatus {
    /// `OK`.
    Ok = 0,
    /// `E_INVALID_NAMESPACE`: missing, empty, too long or not UTF-8.
    InvalidNamespace = 100,
    /// `E_INVALID_SIGNED_PEER_RECORD`: missing, too large, or not a valid
    /// signed peer record.
    InvalidSignedPeerRecord = 101,
    /// `E_INVALID_TTL`: outside the point's TTL bounds.
    InvalidTtl = 102,
    /// `E_INVALID_COOKIE`: malformed, for another namespace, or never
    /// issued by this point.
    InvalidCookie = 103,
    /// `E_NOT_AUTHORIZED`: the record is not the sender's own.
    NotAuthorized = 200,
    /// `E_INTERNAL_ERROR`: the store failed.
    InternalError = 300,
    /// `E_UNAVAILABLE`: a registration limit is reached.
    Unavailable = 400,
}

impl ResponseStatus {
    /// A short name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::Ok => "ok",
            ResponseStatus::InvalidNamespace => "invalid_namespace",
            ResponseStatus::InvalidSignedPeerRecord => "invalid_signed_peer_record",
            ResponseStatus::InvalidTtl => "invalid_ttl",
            ResponseStatus::InvalidCookie => "invalid_cookie",
            ResponseStatus::NotAuthorized => "not_authorized",
            ResponseStatus::InternalError => "internal_error",
            ResponseStatus::Unavailable => "unavailable",
        }
    }
}

/// A discover cookie: where a page ended.
///
/// On the wire it is the 8-byte big-endian id followed by the namespace's
/// UTF-8 bytes (none for every namespace): the layout stock rust-libp2p
/// clients parse every cookie with (libp2p-rendezvous 0.18, `codec.rs`,
/// `Cookie::from_wire_encoding`), so ours must keep it. Our id is the
/// sequence number of the last registration the page held, so a cookie
/// stays valid across restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// The last sequence number seen.
    pub position: u64,
    /// The namespace the cookie belongs to; `None` for every namespace.
    pub namespace: Option<String>,
}

impl Cookie {
    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = self.position.to_be_bytes().to_vec();
        if let Some(ns) = &self.namespace {
            bytes.extend_from_slice(ns.as_bytes());
        }
        bytes
    }

    /// Parses the wire form; `None` when it is malformed.
    pub fn from_bytes(bytes: &[u8]) -> Option<Cookie> {
        let (id, ns) = bytes.split_first_chunk::<8>()?;
        let namespace = if ns.is_empty() {
            None
        } else {
            Some(std::str::from_utf8(ns).ok()?.to_owned())
        };
        Some(Cookie {
            position: u64::from_be_bytes(*id),
            namespace,
        })
    }
}

/// The request-response codec: one length-prefixed (unsigned varint)
/// protobuf message per direction. Answers are at most
/// [`MAX_MESSAGE_BYTES`]; requests at most the codec's own limit (the
/// point sets it from its record limit), and a larger request is dropped
/// unread.
#[derive(Debug, Clone, Copy)]
pub struct Codec {
    max_request: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Codec {
            max_request: MAX_MESSAGE_BYTES,
        }
    }
}

impl Codec {
    /// A codec that reads requests of at most `bytes` (capped at
    /// [`MAX_MESSAGE_BYTES`]).
    pub fn with_max_request(bytes: usize) -> Codec {
        Codec {
            max_request: bytes.min(MAX_MESSAGE_BYTES),
        }
    }
}

/// Reads one unsigned-varint length prefix (at most 10 bytes).
async fn read_length<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<usize> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let mut byte = [0u8];
        io.read_exact(&mut byte).await?;
        value |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            return usize::try_from(value)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "length overflows"));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "length prefix longer than 10 bytes",
    ))
}

async fn read_message<T: AsyncRead + Unpin>(io: &mut T, max: usize) -> io::Result<Message> {
    let len = read_length(io).await?;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("message of {len} bytes is over the {max}-byte limit"),
        ));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Message::decode(buf.as_slice()).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes `message`, length-prefixed. It is encoded first and dropped
/// before the write starts, so while a slow reader holds the write, only
/// the encoded bytes stay in memory, not the message beside them.
async fn write_message<T: AsyncWrite + Unpin>(io: &mut T, message: Message) -> io::Result<()> {
    let bytes = message.encode_length_delimited_to_vec();
    drop(message);
    if bytes.len() > MAX_MESSAGE_BYTES + 10 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "message over the 1 MiB limit",
        ));
    }
    io.write_all(&bytes).await?;
    io.flush().await
}

impl libp2p::request_response::Codec for Codec {
    type Protocol = StreamProtocol;
    type Request = Message;
    type Response = Message;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Message>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Message>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_message(io, MAX_MESSAGE_BYTES).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Message,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, req).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Message,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_message(io, res).await
    }
}

/// Whose a registration's signed peer record is, once checked; or why it
/// is refused (the status and the text sent with it).
pub type RecordCheck = Result<libp2p::PeerId, (ResponseStatus, String)>;

/// Checks a registration's signed peer record: its size against
/// `max_record_bytes`, the envelope, the signature, and the record format
/// (libp2p's own; the spec's Go/JS format only with `accept_spec_records`).
/// Gives the peer the record is signed by.
pub fn check_record(
    bytes: &[u8],
    max_record_bytes: usize,
    accept_spec_records: bool,
) -> RecordCheck {
    use libp2p::core::{PeerRecord, SignedEnvelope};
    let bad_record = |why: String| (ResponseStatus::InvalidSignedPeerRecord, why);
    if bytes.len() > max_record_bytes {
        return Err(bad_record(format!(
            "signed peer record of {} bytes is over the {max_record_bytes}-byte limit",
            bytes.len()
        )));
    }
    let envelope = SignedEnvelope::from_protobuf_encoding(bytes)
        .map_err(|e| bad_record(format!("not a signed envelope: {e}")))?;
    // Rust clients sign in libp2p's own format, Go and JS clients in the
    // spec's (RFC 0002/0003); the bytes are stored and served as received,
    // so the spec's format is accepted only when configured (see
    // `Limits::accept_spec_records`).
    match PeerRecord::from_signed_envelope(envelope.clone()) {
        Ok(record) => Ok(record.peer_id()),
        Err(e) => match PeerRecord::from_signed_envelope_interop(envelope) {
            Ok(record) if accept_spec_records => Ok(record.peer_id()),
            Ok(_) => Err(bad_record(
                "a record in the spec's (Go/JS) format, which this point does not accept: \
                 stock rust-libp2p clients cannot read it"
                    .into(),
            )),
            Err(_) => Err(bad_record(format!("not a valid peer record: {e}"))),
        },
    }
}

/// A request as the point reads it: the message and, for a registration
/// that carries a signed record, that record already checked
/// ([`check_record`]). [`ServerCodec`] checks it while reading the stream,
/// on the connection's own task, so signature checks run on every core
/// instead of in the point's one loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The message.
    pub message: Message,
    /// The registration's record, checked; `None` when not checked yet (or
    /// when there is none).
    pub record: Option<RecordCheck>,
}

impl From<Message> for Inbound {
    fn from(message: Message) -> Inbound {
        Inbound {
            message,
            record: None,
        }
    }
}

/// An answer, encoded (length-prefixed) before it is handed to the
/// connection: what waits for a slow client is these bytes alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer(Vec<u8>);

impl Answer {
    /// Encodes `message`.
    pub fn new(message: &Message) -> Answer {
        Answer(message.encode_length_delimited_to_vec())
    }

    /// Its encoded size, length prefix included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (never: an answer has at least its prefix).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The point's side of the codec: reads requests (at most `max_request`
/// bytes, with a registration's record checked as it is read) and writes
/// answers. It never sends requests.
#[derive(Debug, Clone, Copy)]
pub struct ServerCodec {
    max_request: usize,
    max_record_bytes: usize,
    accept_spec_records: bool,
}

impl ServerCodec {
    /// A codec reading requests of at most `max_request` bytes (capped at
    /// [`MAX_MESSAGE_BYTES`]) and checking records as [`check_record`]
    /// does with these limits.
    pub fn new(max_request: usize, max_record_bytes: usize, accept_spec_records: bool) -> Self {
        ServerCodec {
            max_request: max_request.min(MAX_MESSAGE_BYTES),
            max_record_bytes,
            accept_spec_records,
        }
    }
}

impl libp2p::request_response::Codec for ServerCodec {
    type Protocol = StreamProtocol;
    type Request = Inbound;
    type Response = Answer;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Inbound>
    where
        T: AsyncRead + Unpin + Send,
    {
        let message = read_message(io, self.max_request).await?;
        let record = match (&message.r#type, &message.register) {
            (
                Some(t),
                Some(Register {
                    signed_peer_record: Some(bytes),
                    ..
                }),
            ) if *t == MessageType::Register as i32 => Some(check_record(
                bytes,
                self.max_record_bytes,
                self.accept_spec_records,
            )),
            _ => None,
        };
        Ok(Inbound { message, record })
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<Answer>
    where
        T: AsyncRead + Unpin + Send,
    {
        Err(io::Error::other("the point sends no requests"))
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Inbound,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Err(io::Error::other("the point sends no requests"))
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Answer,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        if res.0.len() > MAX_MESSAGE_BYTES + 10 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "message over the 1 MiB limit",
            ));
        }
        io.write_all(&res.0).await?;
        io.flush().await
    }
}

/// A `REGISTER_RESPONSE` message.
pub fn register_response(status: ResponseStatus, text: String, ttl: Option<u64>) -> Message {
    Message {
        r#type: Some(MessageType::RegisterResponse as i32),
        register_response: Some(RegisterResponse {
            status: Some(status as i32),
            status_text: (!text.is_empty()).then_some(text),
            ttl,
        }),
        ..Message::default()
    }
}

/// A failed `DISCOVER_RESPONSE` message.
pub fn discover_error(status: ResponseStatus, text: String) -> Message {
    Message {
        r#type: Some(MessageType::DiscoverResponse as i32),
        discover_response: Some(DiscoverResponse {
            registrations: Vec::new(),
            cookie: None,
            status: Some(status as i32),
            status_text: Some(text),
        }),
        ..Message::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_round_trips_in_the_stock_layout() {
        let c = Cookie {
            position: 0x0102_0304_0506_0708,
            namespace: Some("chat".into()),
        };
        let bytes = c.to_bytes();
        assert_eq!(&bytes[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[8..], b"chat");
        assert_eq!(Cookie::from_bytes(&bytes), Some(c));
        let all = Cookie {
            position: 9,
            namespace: None,
        };
        assert_eq!(all.to_bytes().len(), 8);
        assert_eq!(Cookie::from_bytes(&all.to_bytes()), Some(all));
        assert_eq!(Cookie::from_bytes(&[1, 2, 3]), None);
        assert_eq!(Cookie::from_bytes(&[0, 0, 0, 0, 0, 0, 0, 1, 0xff]), None);
    }

    #[test]
    fn codec_round_trips_and_refuses_oversized_lengths() {
        futures::executor::block_on(async {
            let msg = register_response(ResponseStatus::Ok, String::new(), Some(7200));
            let mut buf = Vec::new();
            write_message(&mut buf, msg.clone()).await.unwrap();
            let back = read_message(&mut buf.as_slice(), MAX_MESSAGE_BYTES)
                .await
                .unwrap();
            // The same message over a smaller request limit is refused.
            assert!(read_message(&mut buf.as_slice(), 3).await.is_err());
            assert_eq!(back, msg);

            // A length prefix of 2 MiB is refused before anything is read.
            let mut big = Vec::new();
            prost::encoding::encode_varint(2 * 1024 * 1024, &mut big);
            let err = read_message(&mut big.as_slice(), MAX_MESSAGE_BYTES)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("over the"), "{err}");

            // Garbage is an error, not a panic.
            let garbage = [5u8, 0xff, 0xff, 0xff, 0xff, 0xff];
            assert!(
                read_message(&mut garbage.as_slice(), MAX_MESSAGE_BYTES)
                    .await
                    .is_err()
            );
            let endless = [0xffu8; 11];
            assert!(
                read_message(&mut endless.as_slice(), MAX_MESSAGE_BYTES)
                    .await
                    .is_err()
            );
        });
    }
}
