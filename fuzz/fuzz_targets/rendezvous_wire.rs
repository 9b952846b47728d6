//! The rendezvous wire format: any bytes either decode into a message or
//! are refused; a decoded message encodes and decodes to itself, within
//! the codec's size limit; cookies parse or are refused, and round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multidriver_rendezvous::protocol::{Cookie, Message};
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = Message::decode(data) {
        let bytes = message.encode_to_vec();
        let again = Message::decode(bytes.as_slice()).expect("an encoded message decodes");
        assert_eq!(again, message);
    }
    if let Ok(message) = Message::decode_length_delimited(data) {
        let _ = message.encoded_len();
    }
    if let Some(cookie) = Cookie::from_bytes(data) {
        assert_eq!(Cookie::from_bytes(&cookie.to_bytes()), Some(cookie));
    }
});
