//! multidriver as one field of an app's existing swarm, beside stock
//! Kademlia, ping, identify, request-response and gossipsub, over real TCP
//! and QUIC on loopback:
//!
//! - every protocol has one handler (our probes do not take ping's);
//! - the app's own Kademlia feeds the engine (bring your own driver);
//! - a DHT connection the engine does not hold closes at the swarm's idle
//!   timeout even while the remote pings it every second, and the
//!   connection the engine holds stays open;
//! - events name the swarm's own `ConnectionId`, and request-response
//!   traffic goes over the connection the engine chose, before and after a
//!   switch.

use std::collections::HashSet;
use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::handler::UpgradeInfoSend;
use libp2p::swarm::{ConnectionHandler, ConnectionId, NetworkBehaviour, Swarm, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, gossipsub, identify, kad, ping, request_response};
use multidriver::transports::stack::Dns;
use multidriver::{Behaviour, Config, Discovery, DiscoveryConfig, Event, StackConfig, build_swarm};
use tokio::time::{Instant, timeout_at};

/// The swarm's idle timeout in this test: short, so that closing is seen
/// quickly; the engine's held connection must outlive several of it.
const IDLE: Duration = Duration::from_secs(2);

const RR: StreamProtocol = StreamProtocol::new("/app/echo/1.0.0");

/// The app: multidriver beside the stock behaviours it already ran.
#[derive(NetworkBehaviour)]
struct App {
    multidriver: Behaviour<Discovery>,
    kad: kad::Behaviour<kad::store::MemoryStore>,
    ping: ping::Behaviour,
    identify: identify::Behaviour,
    rr: request_response::json::Behaviour<String, String>,
    gossipsub: gossipsub::Behaviour,
}

impl App {
    fn new(key: &Keypair) -> App {
        let local = key.public().to_peer_id();
        // No Kademlia inside multidriver: the app's own feeds the engine.
        let drivers = Discovery::new(key, DiscoveryConfig::default()).expect("no drivers to start");
        let mut kad = kad::Behaviour::new(local, kad::store::MemoryStore::new(local));
        kad.set_mode(Some(kad::Mode::Server));
        App {
            // The app runs libp2p's ping: it alone answers `/ipfs/ping/1.0.0`.
            multidriver: Behaviour::new(local, Config::default().with_ping_answers(false), drivers)
                .expect("engine"),
            kad,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(1))),
            identify: identify::Behaviour::new(identify::Config::new(
                "/app/1.0.0".into(),
                key.public(),
            )),
            rr: request_response::json::Behaviour::new(
                [(RR, request_response::ProtocolSupport::Full)],
                request_response::Config::default(),
            ),
            gossipsub: gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossipsub::Config::default(),
            )
            .expect("gossipsub config"),
        }
    }
}

/// A stock libp2p node: a Kademlia server that pings every second.
#[derive(NetworkBehaviour)]
struct Stock {
    kad: kad::Behaviour<kad::store::MemoryStore>,
    ping: ping::Behaviour,
    identify: identify::Behaviour,
}

fn stack() -> StackConfig {
    StackConfig::default()
        .with_dns(Dns::Disabled)
        .with_idle_connection_timeout(IDLE)
}

fn app() -> Swarm<App> {
    let key = Keypair::generate_ed25519();
    build_swarm(key, &stack(), App::new).expect("stack")
}

fn stock() -> Swarm<Stock> {
    stock_with(&stack())
}

fn stock_with(stack: &StackConfig) -> Swarm<Stock> {
    build_swarm(Keypair::generate_ed25519(), stack, |key| {
        let local = key.public().to_peer_id();
        let mut kad = kad::Behaviour::new(local, kad::store::MemoryStore::new(local));
        kad.set_mode(Some(kad::Mode::Server));
        Stock {
            kad,
            ping: ping::Behaviour::new(ping::Config::new().with_interval(Duration::from_secs(1))),
            identify: identify::Behaviour::new(identify::Config::new(
                "/stock/1.0.0".into(),
                key.public(),
            )),
        }
    })
    .expect("stack")
}

async fn listen<B: NetworkBehaviour>(s: &mut Swarm<B>, on: &str) -> Multiaddr {
    s.listen_on(on.parse().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match timeout_at(deadline, s.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => return address,
            Ok(_) => {}
            Err(_) => panic!("no listen address on {on} within 5 s"),
        }
    }
}

enum Ev {
    A(SwarmEvent<AppEvent>),
    B(SwarmEvent<AppEvent>),
    C(SwarmEvent<StockEvent>),
}

struct Net {
    a: Swarm<App>,
    b: Swarm<App>,
    c: Swarm<Stock>,
    b_id: PeerId,
    /// A's open connections to B, as the swarm reports them.
    a_to_b: HashSet<ConnectionId>,
    /// The connection A's engine last chose for B, from its events.
    chosen: Option<ConnectionId>,
    /// Whether A was ever left without any connection to B.
    a_lost_b: bool,
}

impl Net {
    /// The next event of any node; the app's own Kademlia events feed
    /// A's engine, as an app that brings its own DHT would do.
    async fn next(&mut self) -> Ev {
        let ev = tokio::select! {
            e = self.a.select_next_some() => Ev::A(e),
            e = self.b.select_next_some() => Ev::B(e),
            e = self.c.select_next_some() => Ev::C(e),
        };
        self.observe(&ev);
        ev
    }

    /// What A's swarm and engine said about B; the app's own Kademlia
    /// events feed A's engine, as an app that brings its own DHT does.
    fn observe(&mut self, ev: &Ev) {
        let Ev::A(ev) = ev else { return };
        match ev {
            SwarmEvent::Behaviour(AppEvent::Kad(e)) => {
                for found in multidriver::routing::kad::discovered(e) {
                    self.a
                        .behaviour_mut()
                        .multidriver
                        .handle_driver_event(found);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } if *peer_id == self.b_id => {
                self.a_to_b.insert(*connection_id);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } if *peer_id == self.b_id => {
                self.a_to_b.remove(connection_id);
                self.a_lost_b |= *num_established == 0;
            }
            SwarmEvent::Behaviour(AppEvent::Multidriver(
                Event::RouteSwitched {
                    peer, connection, ..
                }
                | Event::RouteSelected {
                    peer, connection, ..
                },
            )) if *peer == self.b_id => {
                // The engine's event names one of the swarm's connections.
                assert!(self.a_to_b.contains(connection), "{connection:?} is open");
                self.chosen = Some(*connection);
            }
            _ => {}
        }
    }

    /// Whether the engine's chosen connection is A's only one to B.
    fn only_chosen(&self) -> bool {
        self.chosen
            .is_some_and(|c| self.a_to_b.len() == 1 && self.a_to_b.contains(&c))
    }

    /// Runs every node until `f` returns a value, or panics naming `what`
    /// after `limit`.
    async fn until<T>(
        &mut self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut(&mut Net, Ev) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            let Ok(ev) = timeout_at(deadline, self.next()).await else {
                panic!("{what}: not within {limit:?}");
            };
            if let Some(t) = f(self, ev) {
                return t;
            }
        }
    }
}

/// Every protocol an App's connection handler listens on, duplicates kept.
fn listen_protocols(app: &mut App) -> Vec<String> {
    let handler = app
        .handle_established_inbound_connection(
            ConnectionId::new_unchecked(1),
            PeerId::random(),
            &"/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            &"/ip4/127.0.0.1/tcp/2".parse().unwrap(),
        )
        .expect("a handler");
    handler
        .listen_protocol()
        .upgrade()
        .protocol_info()
        .map(|p| AsRef::<str>::as_ref(&p).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_stock_kad_ping_identify_request_response_and_gossipsub() {
    // One handler per protocol: our probes have their own protocol, and
    // ping's belongs to the stock ping behaviour alone (the app said so
    // with `with_ping_answers(false)`).
    let protocols = listen_protocols(&mut App::new(&Keypair::generate_ed25519()));
    let unique: HashSet<&String> = protocols.iter().collect();
    assert_eq!(
        unique.len(),
        protocols.len(),
        "a protocol with two handlers: {protocols:?}"
    );
    for p in [
        "/multidriver/probe/1.0.0",
        "/ipfs/ping/1.0.0",
        "/ipfs/kad/1.0.0",
        "/ipfs/id/1.0.0",
        "/app/echo/1.0.0",
    ] {
        assert!(
            protocols.iter().any(|q| q == p),
            "{p} missing from {protocols:?}"
        );
    }

    let (a, b, c) = (app(), app(), stock());
    let b_id = *b.local_peer_id();
    let mut net = Net {
        a,
        b,
        c,
        b_id,
        a_to_b: HashSet::new(),
        chosen: None,
        a_lost_b: false,
    };
    let b_tcp = listen(&mut net.b, "/ip4/127.0.0.1/tcp/0").await;
    let b_quic = listen(&mut net.b, "/ip4/127.0.0.1/udp/0/quic-v1").await;
    let c_addr = listen(&mut net.c, "/ip4/127.0.0.1/tcp/0").await;
    listen(&mut net.a, "/ip4/127.0.0.1/tcp/0").await;
    let b = b_id;
    let c = *net.c.local_peer_id();
    let a = *net.a.local_peer_id();

    // The engine connects A to B through one of B's two routes; its event
    // names the swarm's connection (checked in `observe`).
    let md = &mut net.a.behaviour_mut().multidriver;
    md.add_route(b, b_tcp, Duration::from_secs(600)).unwrap();
    md.add_route(b, b_quic, Duration::from_secs(600)).unwrap();
    md.connect(b).unwrap();
    net.until(
        "A's engine connects to B",
        Duration::from_secs(10),
        |net, _| net.chosen.map(|_| ()),
    )
    .await;

    // A's own Kademlia looks C up; C's route reaches A's engine through
    // the bring-your-own feed.
    net.a.behaviour_mut().kad.add_address(&c, c_addr);
    net.a
        .behaviour_mut()
        .kad
        .get_closest_peers(PeerId::random());
    net.until(
        "A connects to the DHT node C",
        Duration::from_secs(10),
        |_, ev| match ev {
            Ev::A(SwarmEvent::ConnectionEstablished { peer_id, .. }) if peer_id == c => Some(()),
            _ => None,
        },
    )
    .await;
    assert!(
        net.a.behaviour().multidriver.engine().route_count(&c) > 0,
        "the app's Kademlia fed C's route to the engine"
    );

    // C pings A every second (stock ping, answered by A's stock ping), yet
    // the DHT connection closes at the idle timeout: the engine does not
    // hold it, and pings keep nothing alive.
    let mut c_pinged = false;
    net.until(
        "the DHT connection to C closes",
        IDLE * 10,
        |_, ev| match ev {
            Ev::C(SwarmEvent::Behaviour(StockEvent::Ping(ping::Event {
                peer,
                result: Ok(_),
                ..
            }))) if peer == a => {
                c_pinged = true;
                None
            }
            Ev::A(SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            }) if peer_id == c => Some(()),
            _ => None,
        },
    )
    .await;
    assert!(
        c_pinged,
        "C's stock pings were answered while the connection lived"
    );

    // The connection the engine holds outlives several idle timeouts (the
    // engine may move B to a better route meanwhile, make-before-break).
    let idle_since = Instant::now();
    while idle_since.elapsed() < IDLE * 2 {
        if let Ok(ev) = tokio::time::timeout(IDLE / 4, net.next()).await {
            drop(ev);
        }
    }
    assert!(!net.a_lost_b, "A stayed connected to B");
    assert_eq!(
        net.a.behaviour().multidriver.primary(&b).map(|(c, _)| c),
        net.chosen
    );

    // Request-response goes over the connection the engine chose once it
    // is the only one A has to B (during a make-before-break switch both are
    // open, and request-response spreads requests over them).
    net.until(
        "A has only the chosen connection to B",
        IDLE * 10,
        |net, _| net.only_chosen().then_some(()),
    )
    .await;
    let chosen = net.chosen.unwrap();
    echo(&mut net, "before");
    let carried = net
        .until(
            "an echo before the switch",
            Duration::from_secs(10),
            answered("before"),
        )
        .await;
    assert_eq!(carried, chosen);

    // B drops the connection (the path died); A's engine moves to another
    // connection, and request-response traffic follows it.
    assert!(net.b.disconnect_peer_id(a).is_ok());
    net.until(
        "A's engine replaces the lost connection",
        Duration::from_secs(15),
        |net, _| (net.chosen != Some(chosen) && net.only_chosen()).then_some(()),
    )
    .await;
    let switched = net.chosen.unwrap();
    echo(&mut net, "after");
    let carried = net
        .until(
            "an echo after the switch",
            Duration::from_secs(10),
            answered("after"),
        )
        .await;
    assert_eq!(
        carried, switched,
        "request-response follows the engine's new connection"
    );
}

/// A asks B to echo `text`.
fn echo(net: &mut Net, text: &str) {
    let b = net.b_id;
    net.a.behaviour_mut().rr.send_request(&b, text.to_owned());
}

/// B echoes requests; returns the connection A's echo of `what` came back on.
fn answered(what: &'static str) -> impl FnMut(&mut Net, Ev) -> Option<ConnectionId> {
    move |net, ev| match ev {
        Ev::B(SwarmEvent::Behaviour(AppEvent::Rr(request_response::Event::Message {
            message:
                request_response::Message::Request {
                    request, channel, ..
                },
            ..
        }))) => {
            net.b
                .behaviour_mut()
                .rr
                .send_response(channel, request)
                .unwrap();
            None
        }
        Ev::A(SwarmEvent::Behaviour(AppEvent::Rr(request_response::Event::Message {
            peer,
            connection_id,
            message: request_response::Message::Response { response, .. },
        }))) if peer == net.b_id && response == what => Some(connection_id),
        Ev::A(SwarmEvent::Behaviour(AppEvent::Rr(request_response::Event::OutboundFailure {
            error,
            ..
        }))) => panic!("request failed: {error}"),
        _ => None,
    }
}

/// multidriver alone (no ping of the app's own) beside a peer that runs
/// only stock libp2p: it answers the peer's pings (a stock ping handler
/// that cannot ping stops answering), its probes fall back to
/// `/ipfs/ping/1.0.0`, and the connection it holds stays up while the app
/// talks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_fall_back_to_ping_for_a_stock_peer() {
    let key = Keypair::generate_ed25519();
    let local = key.public().to_peer_id();
    let drivers = Discovery::new(&key, DiscoveryConfig::default()).unwrap();
    let behaviour = Behaviour::new(local, Config::default(), drivers).unwrap();
    let mut a = build_swarm(key, &stack(), |_| behaviour).expect("stack");
    // The stock peer's idle timeout is long: closing is up to A's side.
    let mut c = stock_with(&stack().with_idle_connection_timeout(Duration::from_secs(300)));
    let c_addr = listen(&mut c, "/ip4/127.0.0.1/udp/0/quic-v1").await;
    let c_id = *c.local_peer_id();
    let md = a.behaviour_mut();
    md.add_route(c_id, c_addr.clone(), Duration::from_secs(600))
        .unwrap();
    md.connect(c_id).unwrap();
    let deadline = Instant::now() + IDLE * 5;
    let mut selected = Vec::new();
    let (mut closed, mut c_pinged) = (0, 0);
    let mut used = tokio::time::interval(Duration::from_millis(200));
    loop {
        let ev = tokio::select! {
            ev = a.select_next_some() => ev,
            ev = c.select_next_some() => {
                if let SwarmEvent::Behaviour(StockEvent::Ping(ping::Event { result: Ok(_), .. })) = ev {
                    c_pinged += 1;
                }
                continue;
            }
            // The app talks to C all the time: the engine probes the
            // connection every second (its active heartbeat).
            _ = used.tick() => {
                a.behaviour_mut().mark_used(c_id);
                continue;
            }
            _ = tokio::time::sleep_until(deadline) => break,
        };
        match ev {
            SwarmEvent::Behaviour(
                Event::RouteSelected { connection, .. } | Event::RouteSwitched { connection, .. },
            ) => selected.push(connection),
            SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == c_id => closed += 1,
            _ => {}
        }
    }
    assert_eq!(selected.len(), 1, "one route, kept: {selected:?}");
    assert_eq!(
        closed, 0,
        "the held connection to the stock peer stayed open"
    );
    assert!(
        c_pinged >= 5,
        "the stock peer's pings were answered: {c_pinged}"
    );
    // The probes measured the path over ping (the handshake gives one
    // provisional sample; the rest are pings answered by the stock peer).
    let (_, samples) = a
        .behaviour()
        .engine()
        .route_rtt(&c_id, &c_addr)
        .expect("the route");
    assert!(
        samples >= 3,
        "{samples} RTT samples in 10 s of probes every second"
    );
}
