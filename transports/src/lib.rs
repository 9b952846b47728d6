//! Transport and connectivity helpers for multidriver.
//!
//! **Nothing is implemented here yet.** This crate will hold:
//!
//! - helpers that build the libp2p 0.57 transport stack with `SwarmBuilder`:
//!   TCP + Noise + yamux, QUIC, WebRTC-direct, and DNS through
//!   hickory-resolver with an explicit resolver configuration (the system
//!   configuration cannot be read on Android and iOS);
//! - a BLE-style stream transport (low bandwidth, high latency) over the
//!   proximity radio;
//! - medium classification from local interfaces, addresses and host hints;
//! - a connectivity watcher: if-watch interface events plus a
//!   `ConnectivityHint` API mirroring Android's `NetworkCallback` and iOS's
//!   `NWPath`, both feeding the engine's network-change input.
//!
//! Until then, the vocabulary these will produce (`Medium`,
//! `NetworkConditions`) lives in `multidriver-scoring`.
