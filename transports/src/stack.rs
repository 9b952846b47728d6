//! The libp2p 0.57 transport stack multidriver routes over.
//!
//! [`build_swarm`] assembles it with `SwarmBuilder`: TCP + Noise + yamux,
//! QUIC (quinn, feature `quic`, on by default), WebRTC-direct
//! (libp2p-webrtc, feature `webrtc`, off by default;
//! `/udp/…/webrtc-direct/certhash/…` addresses; a node dials WebRTC-direct
//! only after listening on a `webrtc-direct` address, since libp2p-webrtc
//! dials through its listener's UDP socket), and DNS through hickory-resolver with an **explicit**
//! resolver configuration. The system configuration (`/etc/resolv.conf`)
//! cannot be read on Android and iOS, where `with_dns()` fails; choose a
//! public resolver or pass your own ([`Dns`]).
//!
//! QUIC's own keep-alives and idle timeout are set so that they stay out of
//! the engine's way: the engine probes connections itself
//! (`Config::liveness` in the `multidriver` crate, and batched cellular
//! keep-alives that would be defeated by a 5 s QUIC keep-alive). The swarm's
//! idle-connection timeout stays short (libp2p's 10 s): the engine's
//! `Behaviour` keeps the connections it holds open whatever the timeout,
//! and every other connection (a DHT lookup's, say) closes when idle.
//!
//! **rustls**: `build_swarm` never installs a process-wide rustls
//! `CryptoProvider`. With the `webrtc` feature the build has two crypto
//! back-ends (ring for WebRTC's DTLS, aws-lc-rs for quinn) and rustls cannot
//! pick a default on its own, so the app installs one before building the
//! swarm, e.g. `rustls::crypto::ring::default_provider().install_default()`;
//! without one `build_swarm` fails with [`Error::Stack`] naming
//! `webrtc-direct`.
//!
//! ```no_run
//! use multidriver_transports::stack::{StackConfig, build_swarm};
//! use libp2p::{identity::Keypair, swarm::dummy};
//!
//! # async fn run() -> Result<(), multidriver_transports::Error> {
//! let swarm = build_swarm(Keypair::generate_ed25519(), &StackConfig::default(), |_| dummy::Behaviour)?;
//! # let _ = swarm;
//! # Ok(()) }
//! ```

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{Swarm, SwarmBuilder, noise, tcp, yamux};

use crate::Error;

/// Which DNS resolver the stack uses.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Dns {
    /// No DNS: `/dns*` addresses fail to dial.
    Disabled,
    /// Cloudflare's public resolver (1.1.1.1), over UDP/TCP.
    #[default]
    Cloudflare,
    /// Google's public resolver (8.8.8.8).
    Google,
    /// Quad9's public resolver (9.9.9.9).
    Quad9,
    /// Your own configuration (e.g. the resolvers Android's `LinkProperties`
    /// or iOS's `nw_resolver_config` report for the active network).
    Custom(libp2p::dns::ResolverConfig),
}

/// How the stack is built.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub(crate) dns: Dns,
    pub(crate) quic_max_idle: Duration,
    pub(crate) quic_keep_alive: Duration,
    pub(crate) idle_connection_timeout: Duration,
}

/// Read access to every setting; each says what happens at its bound.
impl StackConfig {
    /// The DNS resolver. Default: Cloudflare.
    pub fn dns(&self) -> &Dns {
        &self.dns
    }

    /// Builder: sets [`dns`](Self::dns).
    pub fn with_dns(mut self, dns: Dns) -> Self {
        self.dns = dns;
        self
    }

    /// QUIC's idle timeout. Default 300 s (our choice: above the longest
    /// keep-alive interval of the preset profiles, 120 s, with room for a
    /// probe; libp2p-quic's own default is 10 s).
    pub fn quic_max_idle(&self) -> Duration {
        self.quic_max_idle
    }

    /// Builder: sets [`quic_max_idle`](Self::quic_max_idle).
    pub fn with_quic_max_idle(mut self, quic_max_idle: Duration) -> Self {
        self.quic_max_idle = quic_max_idle;
        self
    }

    /// QUIC's own keep-alive interval. Default 300 s, i.e. effectively off:
    /// the engine's probes keep wanted connections busy, and a 5 s QUIC
    /// keep-alive (libp2p-quic's default) would hold a cellular radio up.
    pub fn quic_keep_alive(&self) -> Duration {
        self.quic_keep_alive
    }

    /// Builder: sets [`quic_keep_alive`](Self::quic_keep_alive).
    pub fn with_quic_keep_alive(mut self, quic_keep_alive: Duration) -> Self {
        self.quic_keep_alive = quic_keep_alive;
        self
    }

    /// How long the swarm keeps a connection without streams. Default
    /// 10 s, libp2p-swarm's own default (`Config::with_idle_connection_timeout`):
    /// the engine keeps the connections it holds alive regardless, so this
    /// closes only the others (a DHT lookup's, a discovery dial's).
    pub fn idle_connection_timeout(&self) -> Duration {
        self.idle_connection_timeout
    }

    /// Builder: sets [`idle_connection_timeout`](Self::idle_connection_timeout).
    pub fn with_idle_connection_timeout(mut self, idle_connection_timeout: Duration) -> Self {
        self.idle_connection_timeout = idle_connection_timeout;
        self
    }
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            dns: Dns::default(),
            quic_max_idle: Duration::from_secs(300),
            quic_keep_alive: Duration::from_secs(300),
            idle_connection_timeout: Duration::from_secs(10),
        }
    }
}

fn public(group: &hickory_resolver::config::ServerGroup<'_>) -> libp2p::dns::ResolverConfig {
    libp2p::dns::ResolverConfig::udp_and_tcp(group)
}

/// The transport stack up to its DNS resolver, then `$finish` with the
/// builder bound to `$b` (one expansion per resolver choice: the builder's
/// type differs with and without DNS). Errors return early through `$err`.
macro_rules! with_stack {
    ($keypair:expr, $config:expr, $err:expr, |$b:ident| $finish:expr) => {{
        let config: &StackConfig = $config;
        let stack = $err;
        let idle_ms = u32::try_from(config.quic_max_idle.as_millis()).unwrap_or(u32::MAX);
        let keep_alive = config.quic_keep_alive;
        let builder = SwarmBuilder::with_existing_identity($keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| stack("tcp + noise + yamux")(&e))?;
        #[cfg(feature = "quic")]
        let builder = builder.with_quic_config(|mut c| {
            c.max_idle_timeout = idle_ms;
            c.keep_alive_interval = keep_alive;
            c
        });
        #[cfg(not(feature = "quic"))]
        let _ = (idle_ms, keep_alive);
        // WebRTC's DTLS needs rustls's process-wide provider, which is the
        // app's to choose (see the module docs).
        #[cfg(feature = "webrtc")]
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            return Err(stack("webrtc-direct")(
                &"rustls has no process-wide CryptoProvider: install one before building the \
                  swarm, e.g. rustls::crypto::ring::default_provider().install_default()",
            ));
        }
        #[cfg(feature = "webrtc")]
        let builder = builder
            .with_other_transport(|key| {
                use libp2p::Transport as _;
                // The rng argument is ignored by libp2p-webrtc 0.10 (its
                // `Certificate::generate` docs), which draws its own key.
                let certificate = libp2p_webrtc::tokio::Certificate::generate(&mut rand::rng())?;
                Ok(
                    libp2p_webrtc::tokio::Transport::new(key.clone(), certificate).map(
                        |(peer, connection), _| {
                            (peer, libp2p::core::muxing::StreamMuxerBox::new(connection))
                        },
                    ),
                )
            })
            .map_err(|e| stack("webrtc-direct")(&e))?;
        let resolver = match &config.dns {
            Dns::Disabled => None,
            Dns::Cloudflare => Some(public(&hickory_resolver::config::CLOUDFLARE)),
            Dns::Google => Some(public(&hickory_resolver::config::GOOGLE)),
            Dns::Quad9 => Some(public(&hickory_resolver::config::QUAD9)),
            Dns::Custom(c) => Some(c.clone()),
        };
        match resolver {
            Some(cfg) => {
                let $b = builder.with_dns_config(cfg, libp2p::dns::ResolverOpts::default());
                $finish
            }
            None => {
                let $b = builder;
                $finish
            }
        }
    }};
}

/// The error for a part of the stack that cannot be built.
fn stack_error(part: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Error {
    move |e| Error::Stack {
        part,
        message: e.to_string(),
    }
}

/// Builds a tokio swarm with TCP + Noise + yamux, QUIC (feature `quic`),
/// WebRTC-direct (feature `webrtc`) and DNS, running `behaviour`.
///
/// # Errors
/// [`Error::Stack`] if a part of the stack cannot be built (e.g. the Noise
/// keys cannot be derived from `keypair`), naming the part.
pub fn build_swarm<B: NetworkBehaviour>(
    keypair: Keypair,
    config: &StackConfig,
    behaviour: impl FnOnce(&Keypair) -> B,
) -> Result<Swarm<B>, Error> {
    let idle = config.idle_connection_timeout;
    with_stack!(keypair, config, stack_error, |builder| Ok(builder
        .with_behaviour(|k| behaviour(k))
        .map_err(|e| stack_error("behaviour")(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build()))
}

/// [`build_swarm`] with libp2p's circuit relay v2 client in the transport
/// (feature `relay`): `behaviour` gets the relay client behaviour to put
/// beside its own (and libp2p's `dcutr::Behaviour` for hole punching), so
/// that `/p2p-circuit` routes are dialled and a node behind NAT can listen
/// on its relay (`swarm.listen_on(<relay>/p2p-circuit)`).
///
/// # Errors
/// As [`build_swarm`]; `relay client` names a relay transport that cannot
/// be built.
#[cfg(feature = "relay")]
pub fn build_swarm_with_relay<B: NetworkBehaviour>(
    keypair: Keypair,
    config: &StackConfig,
    behaviour: impl FnOnce(&Keypair, libp2p::relay::client::Behaviour) -> B,
) -> Result<Swarm<B>, Error> {
    let idle = config.idle_connection_timeout;
    with_stack!(keypair, config, stack_error, |builder| Ok(builder
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(|e| stack_error("relay client")(&e))?
        .with_behaviour(|k, relay| behaviour(k, relay))
        .map_err(|e| stack_error("behaviour")(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
        .build()))
}
