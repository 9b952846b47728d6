//! Discovery drivers for multidriver over real libp2p protocols.
//!
//! **Nothing is implemented here yet.** This crate will hold, behind the
//! engine's driver interface, each declaring its capabilities (LAN-only or
//! internet, energy class, typical answer latency, signed records or not):
//!
//! - a DHT driver: libp2p-kad provider records keyed by a hash of the
//!   namespace;
//! - a rendezvous driver: the libp2p-rendezvous client against one or several
//!   rendezvous points, with signed peer records, failing over between them;
//! - an mDNS driver: libp2p-mdns;
//! - a BLE-style proximity driver over a `ProximityRadio` trait the host app
//!   implements, with an in-process implementation for tests and the
//!   simulator;
//! - the rendezvous point server library behind `multidriver rendezvous`.
//!
//! Until then, route scoring is usable through `multidriver-scoring`.
