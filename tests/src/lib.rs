//! Cross-crate integration tests for multidriver (in `tests/tests/`) and the
//! utilities they share.
//!
//! The tests check what the repository ships beside the code (the profile
//! files under `profiles/` and the example route sets under
//! `examples/routes/`) and, with the utilities here, run real sockets
//! across network conditions:
//!
//! - [`netns`] (Linux): real network namespaces joined by veth pairs, with
//!   links, addresses and routes that tests change, and threads that run
//!   inside a namespace. Needs root; [`netns::available`] says whether it
//!   works here.
//! - [`delay_proxy`]: TCP and UDP relays that add a fixed one-way delay or
//!   cut the path, since the kernel's `netem` is not available.
//! - [`switch`] (Linux): the network-switch harness: a phone with Wi-Fi and
//!   cellular loses Wi-Fi while its app talks to a peer, with multidriver
//!   or a stock rust-libp2p swarm; recovery time and lost messages.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use multidriver_tests::delay_proxy::DelayProxy;
//! use multidriver_tests::netns::{self, Netns, VethPair};
//!
//! if let Err(reason) = netns::available() {
//!     eprintln!("skipped: {reason}");
//!     return Ok(());
//! }
//! let a = Netns::create("doc")?;
//! let b = Netns::create("doc")?;
//! let _veth = VethPair::connect(&a, "va", "10.77.1.1/24", &b, "vb", "10.77.1.2/24")?;
//!
//! // A server inside `a`, 80 ms away each way through a delay proxy that
//! // also runs inside `a`.
//! let server = a.run_async(|| async {
//!     let listener = tokio::net::TcpListener::bind("10.77.1.1:4001").await?;
//!     let _proxy = DelayProxy::start(
//!         "10.77.1.1:4000".parse().unwrap(),
//!         "10.77.1.1:4001".parse().unwrap(),
//!         Duration::from_millis(80),
//!     )
//!     .await?;
//!     let (_stream, _) = listener.accept().await?;
//!     Ok::<_, std::io::Error>(())
//! })?;
//! // A client inside `b` dials 10.77.1.1:4000 across the veth ...
//! # drop(server);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```

pub mod delay_proxy;
#[cfg(target_os = "linux")]
pub mod netns;
#[cfg(target_os = "linux")]
pub mod switch;
