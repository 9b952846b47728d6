//! Real multidriver swarms for the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use libp2p::futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use multidriver::behaviour::{Behaviour, Config};
use multidriver_routing::{Discovery, DiscoveryConfig};
use multidriver_transports::stack::{Dns, StackConfig, build_swarm};
use tokio::time::timeout;

/// A swarm running multidriver.
pub type Node = Swarm<Behaviour<Discovery>>;

/// A node with `drivers` and the engine configured by `config`.
pub fn node_with(key: Keypair, drivers: DiscoveryConfig, config: Config) -> Node {
    let discovery = Discovery::new(&key, drivers).expect("drivers start");
    let behaviour =
        Behaviour::new(key.public().to_peer_id(), config, discovery).expect("engine builds");
    let stack = StackConfig::default().with_dns(Dns::Disabled);
    build_swarm(key, &stack, |_| behaviour).expect("stack builds")
}

/// A node with `drivers` and the default engine.
pub fn node(drivers: DiscoveryConfig) -> Node {
    node_with(Keypair::generate_ed25519(), drivers, Config::default())
}

/// Listens on `on`; returns the address once the swarm reports it.
pub async fn listen(s: &mut Node, on: &str) -> Multiaddr {
    s.listen_on(on.parse().unwrap()).unwrap();
    timeout(Duration::from_secs(5), async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = s.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .expect("listening within 5 s")
}

/// Runs a swarm in the background until the task is aborted.
pub fn spawn(mut s: Node) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            s.select_next_some().await;
        }
    })
}
