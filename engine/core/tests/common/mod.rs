//! The fake-clock harness the engine's scenario tests share.

#![allow(dead_code)]

use std::time::Duration;

use libp2p_identity::{Keypair, PeerId};
use multiaddr::Multiaddr;
use multidriver_core::{
    CloseReason, Command, Config, ConnectionHandle, Discovered, DriverCaps, DriverId, Engine,
    Event, InterfaceId, NetworkChange, QueryId, QueryOutcome, SwitchReason,
};
use multidriver_scoring::{CellularGeneration, Medium, NetworkConditions, Source, Timestamp};

pub(crate) const WIFI: InterfaceId = InterfaceId(1);
pub(crate) const CELL: InterfaceId = InterfaceId(2);
pub(crate) const LTE: Medium = Medium::Cellular(CellularGeneration::G4);

/// A peer's LAN route, over Wi-Fi.
pub(crate) const LAN: &str = "/ip4/192.168.1.20/udp/4001/quic-v1";
/// The same peer's public QUIC and TCP routes.
pub(crate) const PUBLIC_QUIC: &str = "/ip4/203.0.113.45/udp/4001/quic-v1";
pub(crate) const PUBLIC_TCP: &str = "/ip4/203.0.113.45/tcp/4001";

pub(crate) fn peer(n: u8) -> PeerId {
    PeerId::from_public_key(&Keypair::ed25519_from_bytes([n; 32]).unwrap().public())
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

/// The engine plus a fake clock and everything it said, in order.
pub(crate) struct Harness {
    pub engine: Engine,
    pub now: Timestamp,
    pub commands: Vec<(Timestamp, Command)>,
    pub events: Vec<(Timestamp, Event)>,
}

impl Harness {
    /// A harness whose engine leaves liveness to the adapter
    /// (`Config::liveness = None`): the scripted scenarios answer no probes.
    /// Liveness tests use [`Harness::live`].
    pub(crate) fn new(config: Config) -> Self {
        Self::live(config.with_liveness(None))
    }

    /// A harness with the config as given, probes included.
    pub(crate) fn live(config: Config) -> Self {
        Harness {
            engine: Engine::new(config).unwrap(),
            now: Timestamp::ZERO,
            commands: Vec::new(),
            events: Vec::new(),
        }
    }

    pub(crate) fn drain(&mut self) {
        while let Some(c) = self.engine.poll_command() {
            self.commands.push((self.now, c));
        }
        while let Some(e) = self.engine.poll_event() {
            self.events.push((self.now, e));
        }
    }

    /// Runs timers up to `t` and sets the clock there.
    pub(crate) fn run_until(&mut self, t: Timestamp) {
        while let Some(due) = self.engine.poll_timeout() {
            if due > t {
                break;
            }
            assert!(due >= self.now, "a timer in the past: {due} < {}", self.now);
            self.now = due;
            self.engine.handle_timeout(due);
            self.drain();
        }
        self.now = t;
    }

    pub(crate) fn at(&mut self, t: Duration) -> Timestamp {
        self.run_until(Timestamp::from_duration(t));
        self.now
    }

    pub(crate) fn up(&mut self, interface: InterfaceId, medium: Medium) {
        let conditions = if medium.is_cellular() {
            NetworkConditions {
                metered: true,
                expensive: true,
                constrained: false,
            }
        } else {
            NetworkConditions::default()
        };
        self.engine
            .handle_network_change(
                NetworkChange::Up {
                    interface,
                    medium,
                    conditions,
                    validated: true,
                },
                self.now,
            )
            .unwrap();
        self.drain();
    }

    pub(crate) fn change(&mut self, change: NetworkChange) {
        self.engine.handle_network_change(change, self.now).unwrap();
        self.drain();
    }

    pub(crate) fn discover(
        &mut self,
        peer: PeerId,
        a: &str,
        interface: InterfaceId,
        source: Source,
    ) {
        self.engine
            .handle_discovered(
                Discovered {
                    peer,
                    addr: addr(a),
                    interface,
                    source,
                    signed: false,
                    ttl: Duration::from_secs(3600),
                },
                self.now,
            )
            .unwrap();
        self.drain();
    }

    pub(crate) fn connect(&mut self, peer: PeerId) {
        self.engine.connect(peer, self.now).unwrap();
        self.drain();
    }

    pub(crate) fn succeed(&mut self, c: ConnectionHandle) {
        self.engine.handle_dial_succeeded(c, self.now);
        self.drain();
    }

    pub(crate) fn fail(&mut self, c: ConnectionHandle) {
        self.engine.handle_dial_failed(c, self.now);
        self.drain();
    }

    /// Every dial so far: (when, connection, address, interface).
    pub(crate) fn dials(&self) -> Vec<(Timestamp, ConnectionHandle, String, InterfaceId)> {
        self.commands
            .iter()
            .filter_map(|(t, c)| match c {
                Command::Dial {
                    connection,
                    addr,
                    interface,
                    ..
                } => Some((*t, *connection, addr.to_string(), *interface)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn dial_to(&self, a: &str) -> ConnectionHandle {
        self.dials()
            .into_iter()
            .rev()
            .find(|(_, _, addr, _)| addr == a)
            .unwrap_or_else(|| panic!("no dial to {a}: {:#?}", self.commands))
            .1
    }

    pub(crate) fn closes(&self) -> Vec<(Timestamp, ConnectionHandle, CloseReason)> {
        self.commands
            .iter()
            .filter_map(|(t, c)| match c {
                Command::CloseConnection { connection, reason } => Some((*t, *connection, *reason)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn cancels(&self) -> Vec<ConnectionHandle> {
        self.commands
            .iter()
            .filter_map(|(_, c)| match c {
                Command::CancelDial { connection } => Some(*connection),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn switches(&self) -> Vec<(Timestamp, String, String, SwitchReason)> {
        self.events
            .iter()
            .filter_map(|(t, e)| match e {
                Event::RouteSwitched {
                    from, to, reason, ..
                } => Some((*t, from.to_string(), to.to_string(), *reason)),
                _ => None,
            })
            .collect()
    }
    pub(crate) fn register(&mut self, caps: DriverCaps) -> DriverId {
        let d = self.engine.register_driver(caps, self.now).unwrap();
        self.drain();
        d
    }
    pub(crate) fn adverts_since(&self, from: usize) -> Vec<(Timestamp, QueryId, DriverId)> {
        self.commands[from..]
            .iter()
            .filter_map(|(t, c)| match c {
                Command::Advertise { query, driver, .. } => Some((*t, *query, *driver)),
                _ => None,
            })
            .collect()
    }
    pub(crate) fn discovers_since(&self, from: usize) -> Vec<(QueryId, DriverId)> {
        self.commands[from..]
            .iter()
            .filter_map(|(_, c)| match c {
                Command::Discover { query, driver, .. } => Some((*query, *driver)),
                _ => None,
            })
            .collect()
    }
    pub(crate) fn stops(&self) -> Vec<DriverId> {
        self.commands
            .iter()
            .filter_map(|(_, c)| match c {
                Command::StopAdvertising { driver, .. } => Some(*driver),
                _ => None,
            })
            .collect()
    }
    pub(crate) fn outcome(&mut self, query: QueryId, outcome: QueryOutcome) {
        self.engine.handle_query_outcome(query, outcome, self.now);
        self.drain();
    }
}

/// Connected over Wi-Fi with a 4G route known; returns the Wi-Fi connection.
pub(crate) fn connected_over_wifi(h: &mut Harness, p: PeerId) -> ConnectionHandle {
    h.up(WIFI, Medium::Wifi);
    h.up(CELL, LTE);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, PUBLIC_QUIC, CELL, Source::Rendezvous);
    h.connect(p);
    h.at(ms(10));
    let wifi = h.dial_to(LAN);
    h.succeed(wifi);
    h.engine.handle_rtt_sample(wifi, ms(5), h.now);
    h.drain();
    assert_eq!(h.engine.primary(&p), Some(wifi));
    assert_eq!(h.dials().len(), 1);
    wifi
}

impl Harness {
    /// The app lets the peer go: nothing is left in flight or open.
    pub(crate) fn disconnect_all(&mut self, p: PeerId) {
        self.engine.disconnect(p, self.now);
        self.drain();
        assert_eq!(self.engine.attempts_in_flight(), 0);
        assert_eq!(self.engine.connection_count(), 0);
    }
}
