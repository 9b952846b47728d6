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
//!   or a stock rust-libp2p swarm (at its defaults, or tuned as a careful
//!   app would tune it); recovery time, lost messages, cellular radio use.
//! - [`nat`] (Linux): the NAT harness: two phones behind real NATs
//!   (nftables masquerade, cone or symmetric) find each other at a
//!   rendezvous point that relays, connect through it and hole-punch to a
//!   direct connection where the NATs allow it, with multidriver or a stock
//!   rust-libp2p relay + DCUtR app; time to the first (relayed) and the
//!   direct connection, share of time direct, lost messages. Needs root
//!   and `nft`; [`netns::nat_available`] says whether it works here.
//! - [`idle`] (Linux): the idle harness: the switch harness's phone on
//!   cellular only, its app sending a message rarely (one a minute by
//!   default) for a long run, with each stack; the cellular radio's
//!   wake-ups and modelled energy over the whole run, messages delivered.
//! - [`radio`]: a meter of a cellular path's radio wake-ups and modelled
//!   energy, fed by the relays of [`delay_proxy`].
//!
//! A test that needs something this machine lacks (root for namespaces)
//! calls [`require_or_skip`]: it is skipped with the reason printed, except
//! under CI (`CI=true`), where it fails, so a CI run can never pass by
//! skipping.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use multidriver_tests::delay_proxy::DelayProxy;
//! use multidriver_tests::netns::{self, Netns, VethPair};
//!
//! if let Err(reason) = netns::available() {
//!     // Fails under CI; elsewhere prints "skipped: …".
//!     multidriver_tests::require_or_skip(&reason);
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
pub mod idle;
#[cfg(target_os = "linux")]
pub mod nat;
#[cfg(target_os = "linux")]
pub mod netns;
pub mod radio;
#[cfg(target_os = "linux")]
pub mod switch;

/// Whether this run is a CI run: the environment variable `CI` is `true`
/// (or `1`), as GitHub Actions, GitLab CI and most CI services set it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// A test cannot run here because of `reason` (no root, no `ip`, …): under
/// CI ([`in_ci`]) this panics with the reason, so the test fails instead of
/// passing without running; elsewhere it prints `skipped: <reason>` and the
/// caller returns.
///
/// # Panics
///
/// Under CI, always.
pub fn require_or_skip(reason: &str) {
    assert!(
        !in_ci(),
        "CI=true, and this test cannot run here: {reason} (CI must run it as root)"
    );
    eprintln!("skipped: {reason}");
}

/// [`require_or_skip`] on a check's result: `true` (skip) if it failed and
/// this is not CI, `false` if it passed.
///
/// # Panics
///
/// Under CI, when the check failed.
pub fn skipped(check: Result<(), String>) -> bool {
    match check {
        Ok(()) => false,
        Err(reason) => {
            require_or_skip(&reason);
            true
        }
    }
}
