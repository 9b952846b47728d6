//! The [`Node`]: a libp2p swarm running multidriver on its own tokio
//! runtime, driven by host calls and reporting to a host listener.
//!
//! Threads: the runtime's two workers (`multidriver-rt`) run the swarm;
//! one more thread (`multidriver-events`) hands events to the host's
//! listener one at a time, in order, so a slow listener never stalls the
//! swarm. Host calls only queue work for the swarm task (bounded) and
//! return; [`Node::stop`] ends all three threads.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, SwarmBuilder};
use multidriver::core::{MAX_NAMESPACE_LEN, ProfileMap};
use multidriver::routing::ProximityConfig;
use multidriver::scoring::{Components, PowerState, Profile};
use multidriver::transports::connectivity::{ConnectivityHint, NetworkId};
use multidriver::{Discovery, DiscoveryConfig, Event, RouteMemory, SwitchReason};
use multidriver_routing::ble;
use tokio::sync::{mpsc, oneshot};

mod task;

use task::Task;

use crate::error::MobileError;
use crate::radio::{self, HostLinks, HostRadio, LinkTable, ProximityRadio, Sightings};
use crate::types::{AppLifecycle, BatteryInfo, NetworkInfo, NodeConfig, NodeEvent, RouteInfo};

/// The trial protocol [`Node::send`] speaks: one message per request, an
/// empty answer as the acknowledgement.
pub const MESSAGE_PROTOCOL: &str = "/multidriver-mobile/message/1";
/// The largest message [`Node::send`] takes. Our choice: the trial
/// protocol encodes bytes as JSON numbers (up to 4 bytes each), which
/// keeps 64 KiB under libp2p's 1 MiB request limit.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Most messages waiting for their acknowledgement (the one in flight to
/// each peer and those queued behind it); beyond it a message fails at
/// once with [`NodeEvent::MessageFailed`]. Our choice.
const MAX_MESSAGES_IN_FLIGHT: usize = 256;
/// Most listen addresses [`Node::listen_addrs`] reports (the rest are
/// still listened on). Our choice.
const MAX_LISTEN_ADDRS: usize = 64;
/// Most networks with a pending time-to-live from
/// [`Node::network_losing`]; the engine tracks at most 16 interfaces.
const MAX_LOSING: usize = 16;
/// Worker threads of the node's runtime. Our choice: a phone app's
/// networking needs little CPU, and fewer threads cost less memory.
const WORKER_THREADS: usize = 2;
/// How long [`Node::stop`] waits for the runtime's tasks to end.
const STOP_WAIT: Duration = Duration::from_secs(2);
/// The swarm closes connections no behaviour keeps after this long: the
/// stack's default (`multidriver::StackConfig`).
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Receives the node's events, on the node's own event thread, one at a
/// time and in order. Return promptly: events queue up behind a slow
/// listener (up to `NodeConfig::max_pending_events`).
#[uniffi::export(with_foreign)]
pub trait NodeListener: Send + Sync {
    /// One event.
    fn on_event(&self, event: NodeEvent);
}

#[derive(NetworkBehaviour)]
struct Mobile {
    multidriver: multidriver::Behaviour<Discovery>,
    messages: request_response::json::Behaviour<Vec<u8>, ()>,
}

/// What a host call asks of the swarm task.
enum Call {
    Advertise(String),
    Subscribe(String),
    Discover(String),
    Connect(PeerId),
    Disconnect(PeerId),
    Send {
        peer: PeerId,
        data: Vec<u8>,
        id: u64,
    },
    Hint(ConnectivityHint),
    Losing {
        network: NetworkId,
        ttl: Option<Duration>,
    },
    Lifecycle(AppLifecycle),
    Battery(BatteryInfo),
    Import(Box<RouteMemory>),
    Export(oneshot::Sender<Vec<u8>>),
}

/// What the host can read without waiting for the swarm task.
#[derive(Debug, Default)]
struct Shared {
    routes: HashMap<PeerId, RouteInfo>,
    listening: Vec<String>,
    profile: String,
}

struct Running {
    runtime: tokio::runtime::Runtime,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    events: std::thread::JoinHandle<()>,
}

/// A multidriver node: discovery drivers, route scoring and switching,
/// and a trial message protocol, in a libp2p swarm on its own threads.
///
/// Every method returns promptly: it checks its arguments, queues the work
/// for the node's task and returns; what follows arrives as
/// [`NodeEvent`]s. A refused call changed nothing.
#[derive(uniffi::Object)]
pub struct Node {
    peer: PeerId,
    identity: Vec<u8>,
    calls: mpsc::Sender<Call>,
    capacity: u64,
    shared: Arc<Mutex<Shared>>,
    links: Arc<LinkTable>,
    sightings: Arc<Sightings>,
    started: Instant,
    next_message: AtomicU64,
    running: Mutex<Option<Running>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn parse_peer(field: &str, peer: &str) -> Result<PeerId, MobileError> {
    peer.parse()
        .map_err(|e| MobileError::invalid(field, peer, format!("not a peer id ({e})")))
}

fn parse_addr(field: &str, addr: &str) -> Result<Multiaddr, MobileError> {
    addr.parse()
        .map_err(|e| MobileError::invalid(field, addr, format!("not a multiaddr ({e})")))
}

fn check_namespace(namespace: &str) -> Result<(), MobileError> {
    if namespace.is_empty() || namespace.len() > MAX_NAMESPACE_LEN {
        return Err(MobileError::invalid(
            "namespace",
            namespace,
            format!("a namespace is 1 to {MAX_NAMESPACE_LEN} bytes"),
        ));
    }
    Ok(())
}

/// A profile preset's name, or a profile file's TOML.
fn parse_profile(text: &str) -> Result<Profile, MobileError> {
    let text = text.trim();
    if text.contains('\n') || text.contains('=') {
        Profile::from_toml_str(text).map_err(|e| MobileError::invalid("profile", text, e))
    } else {
        Profile::preset(text).map_err(|e| MobileError::invalid("profile", text, e))
    }
}

/// The parts of a [`NodeConfig`] the swarm needs, checked.
struct Checked {
    key: Keypair,
    listen: Vec<Multiaddr>,
    rendezvous: Vec<(PeerId, Multiaddr)>,
    profile: Profile,
    memory: Option<RouteMemory>,
}

fn check(config: &NodeConfig) -> Result<Checked, MobileError> {
    let key = match &config.identity {
        Some(bytes) => Keypair::from_protobuf_encoding(bytes).map_err(|e| {
            MobileError::invalid(
                "identity",
                &format!("{} bytes", bytes.len()),
                format!("not a keypair from Node.identity() ({e})"),
            )
        })?,
        None => Keypair::generate_ed25519(),
    };
    let listen = config
        .listen_addrs
        .iter()
        .map(|a| parse_addr("listen_addrs", a))
        .collect::<Result<Vec<_>, _>>()?;
    let rendezvous = config
        .rendezvous_points
        .iter()
        .map(|a| {
            let mut addr = parse_addr("rendezvous_points", a)?;
            match addr.pop() {
                Some(Protocol::P2p(peer)) => Ok((peer, addr)),
                _ => Err(MobileError::invalid(
                    "rendezvous_points",
                    a,
                    "a rendezvous point's address ends with /p2p/<its peer id>",
                )),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let profile = parse_profile(&config.profile)?;
    let memory = config
        .route_memory
        .as_deref()
        .map(|bytes| {
            RouteMemory::from_bytes(bytes).map_err(|e| {
                MobileError::invalid(
                    "route_memory",
                    &format!("{} bytes", bytes.len()),
                    format!("not route memory from Node.export_memory() ({e})"),
                )
            })
        })
        .transpose()?;
    for (field, value) in [
        ("max_pending_events", config.max_pending_events),
        ("max_pending_calls", config.max_pending_calls),
    ] {
        if value == 0 {
            return Err(MobileError::invalid(field, "0", "must be at least 1"));
        }
    }
    Ok(Checked {
        key,
        listen,
        rendezvous,
        profile,
        memory,
    })
}

/// Events to the host's listener: bounded, and a count of what the bound
/// dropped, told in a warning as soon as there is room.
struct Events {
    tx: SyncSender<NodeEvent>,
    dropped: u64,
}

impl Events {
    fn emit(&mut self, event: NodeEvent) {
        if self.dropped > 0 {
            let warning = NodeEvent::Warning {
                text: format!(
                    "{} events were dropped: the listener was too slow (max_pending_events)",
                    self.dropped
                ),
            };
            match self.tx.try_send(warning) {
                Ok(()) => self.dropped = 0,
                Err(_) => {
                    self.dropped += 1;
                    return;
                }
            }
        }
        match self.tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped += 1,
            // The event thread is gone: the node is stopping.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn warn(&mut self, text: String) {
        tracing::warn!("{text}");
        self.emit(NodeEvent::Warning { text });
    }
}

fn explain(c: &Components) -> String {
    format!(
        "cost {:.1} ms: latency {:.1}, energy {:.1}, reliability {:.1}, provenance {:.1}",
        c.total_ms(),
        c.latency_ms,
        c.energy_ms,
        c.reliability_ms,
        c.provenance_ms
    )
}

#[uniffi::export]
impl Node {
    /// Starts a node: builds its swarm (TCP, QUIC, and the host's radio
    /// links when `radio` is given), starts its discovery drivers,
    /// listens, imports the route memory, and begins reporting to
    /// `listener`.
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] naming the config field that is wrong;
    /// [`MobileError::Start`] naming the part that could not start (a
    /// listen address already in use, say). Nothing keeps running then.
    #[uniffi::constructor(default(radio = None))]
    pub fn start(
        config: NodeConfig,
        listener: Arc<dyn NodeListener>,
        radio: Option<Arc<dyn ProximityRadio>>,
    ) -> Result<Arc<Self>, MobileError> {
        let checked = check(&config)?;
        let peer = checked.key.public().to_peer_id();
        let identity = checked
            .key
            .to_protobuf_encoding()
            .map_err(|e| MobileError::start("identity", e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("multidriver-rt")
            .enable_all()
            .build()
            .map_err(|e| MobileError::start("runtime", e))?;
        let links = Arc::new(LinkTable::default());
        let sightings = Arc::new(Sightings::default());
        let started = Instant::now();
        let mut swarm = {
            let _inside = runtime.enter();
            build(&checked, &config, radio.as_ref(), &links, &sightings)?
        };
        {
            let _inside = runtime.enter();
            for addr in &checked.listen {
                swarm
                    .listen_on(addr.clone())
                    .map_err(|e| MobileError::start(&format!("listen on {addr}"), e))?;
            }
            if radio.is_some() {
                swarm
                    .listen_on(ble::address(0))
                    .map_err(|e| MobileError::start("listen on the radio's links", e))?;
            }
        }
        let profile = swarm
            .behaviour()
            .multidriver
            .engine()
            .profile()
            .name
            .clone();
        let shared = Arc::new(Mutex::new(Shared {
            profile,
            ..Shared::default()
        }));
        let (event_tx, event_rx) = sync_channel::<NodeEvent>(config.max_pending_events as usize);
        let mut events = Events {
            tx: event_tx,
            dropped: 0,
        };
        if let Some(memory) = &checked.memory {
            import(&mut swarm, memory, &mut events);
        }
        let events_thread = std::thread::Builder::new()
            .name("multidriver-events".to_owned())
            .spawn(move || {
                for event in event_rx {
                    listener.on_event(event);
                }
            })
            .map_err(|e| MobileError::start("event thread", e))?;
        let (calls, calls_rx) = mpsc::channel(config.max_pending_calls as usize);
        let (stop, stop_rx) = oneshot::channel();
        let task = runtime.spawn(
            Task {
                swarm,
                events,
                shared: shared.clone(),
                in_flight: HashMap::new(),
                outbox: HashMap::new(),
                unacknowledged: 0,
                losing: HashMap::new(),
                power: PowerState::MAINS,
            }
            .run(calls_rx, stop_rx),
        );
        Ok(Arc::new(Node {
            peer,
            identity,
            calls,
            capacity: u64::from(config.max_pending_calls),
            shared,
            links,
            sightings,
            started,
            next_message: AtomicU64::new(1),
            running: Mutex::new(Some(Running {
                runtime,
                stop,
                task,
                events: events_thread,
            })),
        }))
    }

    /// Stops the node: closes its connections, ends its threads (waiting
    /// at most 2 s for its tasks), and delivers the events still queued
    /// before the event thread ends. Later calls fail with
    /// [`MobileError::Stopped`]; a second `stop` does nothing.
    pub fn stop(&self) {
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        let Running {
            runtime,
            stop,
            task,
            events,
        } = running;
        let _ = stop.send(());
        let finish = move || {
            let _ = runtime.block_on(async { tokio::time::timeout(STOP_WAIT, task).await });
            runtime.shutdown_timeout(STOP_WAIT);
            // The task owned the events' sender: the event thread drains
            // what is queued and ends.
            if std::thread::current().id() != events.thread().id() {
                let _ = events.join();
            }
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            // Called from inside the runtime (a radio callback, say): a
            // runtime cannot be shut down from its own thread.
            let _ = std::thread::Builder::new()
                .name("multidriver-stop".to_owned())
                .spawn(finish);
        } else {
            finish();
        }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> String {
        self.peer.to_base58()
    }

    /// This node's identity (a protobuf-encoded keypair) for
    /// `NodeConfig::identity` at the next start. Secret: keep it in the
    /// platform's key store.
    pub fn identity(&self) -> Vec<u8> {
        self.identity.clone()
    }

    /// The addresses the node listens on now.
    pub fn listen_addrs(&self) -> Vec<String> {
        lock(&self.shared).listening.clone()
    }

    /// The scoring profile in force now.
    pub fn profile(&self) -> String {
        lock(&self.shared).profile.clone()
    }

    /// Advertises this node under `namespace` through every driver.
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] for an empty or over-long namespace.
    pub fn advertise(&self, namespace: String) -> Result<(), MobileError> {
        check_namespace(&namespace)?;
        self.call(Call::Advertise(namespace))
    }

    /// Looks up `namespace` now and again on the profile's schedule;
    /// peers found arrive as [`NodeEvent::PeerDiscovered`].
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] for an empty or over-long namespace.
    pub fn subscribe(&self, namespace: String) -> Result<(), MobileError> {
        check_namespace(&namespace)?;
        self.call(Call::Subscribe(namespace))
    }

    /// Looks up `namespace` once now, through every driver that can (a
    /// pull-to-refresh); peers found arrive as
    /// [`NodeEvent::PeerDiscovered`] when they are new.
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] for an empty or over-long namespace.
    pub fn discover(&self, namespace: String) -> Result<(), MobileError> {
        check_namespace(&namespace)?;
        self.call(Call::Discover(namespace))
    }

    /// Connects to `peer` through its best route (racing the next ones);
    /// the outcome arrives as [`NodeEvent::RouteSelected`] or
    /// [`NodeEvent::PeerUnreachable`].
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] for a malformed peer id.
    pub fn connect(&self, peer: String) -> Result<(), MobileError> {
        let peer = parse_peer("peer", &peer)?;
        self.call(Call::Connect(peer))
    }

    /// Closes every connection to `peer` and stops keeping it connected.
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] for a malformed peer id.
    pub fn disconnect(&self, peer: String) -> Result<(), MobileError> {
        let peer = parse_peer("peer", &peer)?;
        self.call(Call::Disconnect(peer))
    }

    /// Sends `data` to `peer` on the trial protocol
    /// ([`MESSAGE_PROTOCOL`]), connecting first if needed. Returns the
    /// message's id; [`NodeEvent::MessageDelivered`] or
    /// [`NodeEvent::MessageFailed`] carries it. Messages to one peer go
    /// one at a time, each after the one before it is acknowledged or
    /// failed, so the peer receives them in the order they were sent.
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] for a malformed peer id or data over
    /// [`MAX_MESSAGE`] bytes.
    pub fn send(&self, peer: String, data: Vec<u8>) -> Result<u64, MobileError> {
        let peer = parse_peer("peer", &peer)?;
        if data.len() > MAX_MESSAGE {
            return Err(MobileError::invalid(
                "data",
                &format!("{} bytes", data.len()),
                format!("a message is at most {MAX_MESSAGE} bytes"),
            ));
        }
        let id = self.next_message.fetch_add(1, Ordering::Relaxed);
        self.call(Call::Send { peer, data, id })?;
        Ok(id)
    }

    /// The route `peer` is reached through now, with its explanation;
    /// `None` when it is not connected.
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] for a malformed peer id.
    pub fn route(&self, peer: String) -> Result<Option<RouteInfo>, MobileError> {
        let peer = parse_peer("peer", &peer)?;
        Ok(lock(&self.shared).routes.get(&peer).cloned())
    }

    /// Every connected peer's route.
    pub fn routes(&self) -> Vec<RouteInfo> {
        let mut routes: Vec<RouteInfo> = lock(&self.shared).routes.values().cloned().collect();
        routes.sort_by(|a, b| a.peer.cmp(&b.peer));
        routes
    }

    /// What the node learned (routes, RTTs, failures, NAT facts) as a
    /// small versioned snapshot, for `NodeConfig::route_memory` or
    /// [`import_memory`](Self::import_memory) after a restart.
    ///
    /// # Errors
    /// [`MobileError::Stopped`], [`MobileError::Busy`].
    pub async fn export_memory(&self) -> Result<Vec<u8>, MobileError> {
        let (tx, rx) = oneshot::channel();
        self.call(Call::Export(tx))?;
        rx.await.map_err(|_| MobileError::Stopped)
    }

    /// Imports a snapshot from [`export_memory`](Self::export_memory);
    /// [`NodeEvent::MemoryImported`] says what it held.
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] when the bytes are not a snapshot (the
    /// reason names the byte and field).
    pub fn import_memory(&self, memory: Vec<u8>) -> Result<(), MobileError> {
        let memory = RouteMemory::from_bytes(&memory)
            .map_err(|e| MobileError::invalid("memory", &format!("{} bytes", memory.len()), e))?;
        self.call(Call::Import(Box::new(memory)))
    }

    /// A network became available (Android `onAvailable` with its
    /// capabilities; iOS: an interface appeared in the `NWPath`).
    /// `network` is the host's handle for it (Android
    /// `Network.getNetworkHandle()`).
    ///
    /// # Errors
    /// [`MobileError::Stopped`], [`MobileError::Busy`].
    pub fn network_available(&self, network: u64, info: NetworkInfo) -> Result<(), MobileError> {
        self.call(Call::Hint(ConnectivityHint::Available {
            network: NetworkId(network),
            state: info.state(),
        }))
    }

    /// A network's capabilities changed (Android `onCapabilitiesChanged`;
    /// iOS: a path update for the same interface): metered, expensive,
    /// constrained, validated, or the cellular generation.
    ///
    /// # Errors
    /// [`MobileError::Stopped`], [`MobileError::Busy`].
    pub fn network_changed(&self, network: u64, info: NetworkInfo) -> Result<(), MobileError> {
        self.call(Call::Hint(ConnectivityHint::Changed {
            network: NetworkId(network),
            state: info.state(),
        }))
    }

    /// The OS warns that a network is about to go (Android `onLosing` with
    /// its `maxMsToLive`; iOS: the path turned unsatisfied for it). Peers
    /// move to other networks now, make-before-break. If `max_ms_to_live`
    /// passes without `network_lost` or `network_available`, the node
    /// treats the network as lost.
    ///
    /// # Errors
    /// [`MobileError::Stopped`], [`MobileError::Busy`].
    pub fn network_losing(
        &self,
        network: u64,
        max_ms_to_live: Option<u32>,
    ) -> Result<(), MobileError> {
        self.call(Call::Losing {
            network: NetworkId(network),
            ttl: max_ms_to_live.map(|ms| Duration::from_millis(u64::from(ms))),
        })
    }

    /// A network is gone (Android `onLost`; iOS: the interface left the
    /// path). Its routes are dead at once and their peers re-raced.
    ///
    /// # Errors
    /// [`MobileError::Stopped`], [`MobileError::Busy`].
    pub fn network_lost(&self, network: u64) -> Result<(), MobileError> {
        self.call(Call::Hint(ConnectivityHint::Lost {
            network: NetworkId(network),
        }))
    }

    /// The app's lifecycle changed; the profile may change with it
    /// ([`NodeEvent::ProfileChanged`]).
    ///
    /// # Errors
    /// [`MobileError::Stopped`], [`MobileError::Busy`].
    pub fn set_lifecycle(&self, lifecycle: AppLifecycle) -> Result<(), MobileError> {
        self.call(Call::Lifecycle(lifecycle))
    }

    /// The battery changed; the profile may change with it
    /// ([`NodeEvent::ProfileChanged`]).
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] for a level outside `0.0..=1.0`.
    pub fn set_battery(&self, battery: BatteryInfo) -> Result<(), MobileError> {
        if let Some(level) = battery.level
            && !(0.0..=1.0).contains(&level)
        {
            return Err(MobileError::invalid(
                "level",
                &level.to_string(),
                "a battery level is a fraction, 0.0 to 1.0",
            ));
        }
        self.call(Call::Battery(battery))
    }

    /// The host's radio heard an advertisement: `token` (16 bytes) from
    /// the device at link address `from`, at `rssi_dbm`.
    ///
    /// # Errors
    /// [`MobileError::InvalidInput`] for a token that is not 16 bytes.
    pub fn radio_sighting(
        &self,
        token: Vec<u8>,
        from: u64,
        rssi_dbm: i16,
    ) -> Result<(), MobileError> {
        self.running()?;
        let dropped = self
            .sightings
            .push(&token, from, rssi_dbm, radio::stamp(self.started))?;
        if dropped {
            tracing::debug!("proximity sightings queue full: the oldest was dropped");
        }
        Ok(())
    }

    /// The host's radio accepted a link (`link`, its id) from the device
    /// at `from`.
    ///
    /// # Errors
    /// [`MobileError::Link`] when the id is in use, too many links are
    /// open, or the node does not listen on the radio.
    pub fn radio_link_opened(&self, link: u64, from: u64) -> Result<(), MobileError> {
        self.running()?;
        self.links.opened(link, from)
    }

    /// Bytes arrived on a link.
    ///
    /// # Errors
    /// [`MobileError::Link`] for an unknown link, or when the link's
    /// inbound buffer is full: the bytes were not taken, send them again
    /// later.
    pub fn radio_link_data(&self, link: u64, data: Vec<u8>) -> Result<(), MobileError> {
        self.running()?;
        self.links.data(link, data)
    }

    /// A link closed, or failed to open.
    pub fn radio_link_closed(&self, link: u64) {
        self.links.closed(link);
    }

    /// Links open on the host's radio now.
    pub fn radio_links(&self) -> u32 {
        u32::try_from(self.links.open_links()).unwrap_or(u32::MAX)
    }
}

impl Node {
    fn running(&self) -> Result<(), MobileError> {
        if lock(&self.running).is_none() {
            return Err(MobileError::Stopped);
        }
        Ok(())
    }

    fn call(&self, call: Call) -> Result<(), MobileError> {
        self.running()?;
        self.calls.try_send(call).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => MobileError::Busy {
                capacity: self.capacity,
            },
            mpsc::error::TrySendError::Closed(_) => MobileError::Stopped,
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

fn build(
    checked: &Checked,
    config: &NodeConfig,
    radio: Option<&Arc<dyn ProximityRadio>>,
    links: &Arc<LinkTable>,
    sightings: &Arc<Sightings>,
) -> Result<Swarm<Mobile>, MobileError> {
    let key = checked.key.clone();
    let mut drivers = DiscoveryConfig::default();
    if config.mdns {
        drivers = drivers.with_mdns();
    }
    for (peer, addr) in &checked.rendezvous {
        drivers = drivers.with_rendezvous(*peer, addr.clone());
    }
    if let Some(radio) = radio {
        drivers = drivers.with_proximity(ProximityConfig::new(
            Box::new(HostRadio::new(radio.clone(), sightings.clone())),
            ble::address,
        ));
    }
    let discovery =
        Discovery::new(&key, drivers).map_err(|e| MobileError::start("discovery drivers", e))?;
    let map = ProfileMap::default().with_foreground(checked.profile.clone());
    let engine = multidriver::core::Config::default()
        .with_profile(checked.profile.clone())
        .with_profile_map(Some(map));
    let behaviour_config = multidriver::Config::default()
        .with_engine(engine)
        .with_interface_watching(config.watch_os_interfaces);
    let multidriver =
        multidriver::Behaviour::new(key.public().to_peer_id(), behaviour_config, discovery)
            .map_err(|e| MobileError::start("engine", e))?;
    let host_links = radio.map(|r| HostLinks::new(r.clone(), links.clone()));
    let swarm = SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| MobileError::start("tcp", e))?
        .with_quic()
        .with_other_transport(|k| {
            use libp2p::core::transport::OptionalTransport;
            let links = match host_links {
                Some(t) => OptionalTransport::some(t),
                None => OptionalTransport::none(),
            };
            ble::upgraded(links, k)
        })
        .map_err(|e| MobileError::start("radio links", e))?
        .with_behaviour(|_| Mobile {
            multidriver,
            messages: request_response::json::Behaviour::new(
                [(StreamProtocol::new(MESSAGE_PROTOCOL), ProtocolSupport::Full)],
                request_response::Config::default(),
            ),
        })
        .map_err(|e| MobileError::start("behaviour", e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}

fn import(swarm: &mut Swarm<Mobile>, memory: &RouteMemory, events: &mut Events) {
    match swarm.behaviour_mut().multidriver.import_memory(memory) {
        Ok(report) => {
            let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
            events.emit(NodeEvent::MemoryImported {
                peers: n(report.peers),
                routes: n(report.routes),
                waiting: n(report.waiting),
                expired: n(report.expired),
            });
        }
        Err(e) => events.warn(format!("route memory not imported: {e}")),
    }
}
