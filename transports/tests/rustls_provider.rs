//! `build_swarm` installs no process-wide rustls provider: with WebRTC in
//! the build and none installed it fails and says what to do. Its own test
//! binary, since the provider is process-wide.

#![cfg(feature = "webrtc")]

use libp2p::identity::Keypair;
use libp2p::swarm::dummy;
use multidriver_transports::Error;
use multidriver_transports::stack::{Dns, StackConfig, build_swarm};

#[tokio::test]
async fn without_a_provider_the_stack_refuses_and_names_the_fix() {
    let config = StackConfig::default().with_dns(Dns::Disabled);
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    let err = build_swarm(Keypair::generate_ed25519(), &config, |_| dummy::Behaviour)
        .err()
        .expect("no provider, no WebRTC");
    let Error::Stack { part, message } = &err else {
        panic!("{err}");
    };
    assert_eq!(*part, "webrtc-direct");
    assert!(message.contains("install_default"), "{message}");
    // Nothing was installed behind the app's back.
    assert!(rustls::crypto::CryptoProvider::get_default().is_none());
    rustls::crypto::ring::default_provider()
        .install_default()
        .unwrap();
    assert!(build_swarm(Keypair::generate_ed25519(), &config, |_| dummy::Behaviour).is_ok());
}
