//! The connectivity watcher's changes driving the engine core: a host hint
//! that Wi-Fi is lost moves a connected peer to its cellular route at once.

use multidriver_core::Config;
use multidriver_scoring::Source;

// The engine core's fake-clock harness, shared with its scenario tests.
#[path = "../../engine/core/tests/common/mod.rs"]
mod common;
use common::*;

#[test]
fn the_connectivity_watcher_drives_a_failover() {
    use multidriver_transports::connectivity::{
        ConnectivityHint, HostTransport, NetworkId, NetworkState, Watcher, WatcherConfig,
    };
    let mut h = Harness::new(Config::default());
    let mut watcher = Watcher::new(WatcherConfig::default());
    let mut hint = |h: &mut Harness, hint| {
        let change = watcher.handle_hint(hint).unwrap().expect("a change");
        h.change(change);
    };
    let validated = |transport| NetworkState {
        transport,
        validated: true,
        ..NetworkState::default()
    };
    let (wifi, lte) = (NetworkId(10), NetworkId(11));
    hint(
        &mut h,
        ConnectivityHint::Available {
            network: wifi,
            state: validated(HostTransport::Wifi),
        },
    );
    hint(
        &mut h,
        ConnectivityHint::Available {
            network: lte,
            state: NetworkState {
                metered: true,
                ..validated(HostTransport::Cellular(
                    multidriver_scoring::CellularGeneration::G4,
                ))
            },
        },
    );
    // The watcher numbered Wi-Fi 1 and LTE 2, the harness's WIFI and CELL.
    let p = peer(1);
    h.discover(p, LAN, WIFI, Source::Mdns);
    h.discover(p, PUBLIC_QUIC, CELL, Source::Rendezvous);
    h.connect(p);
    h.at(ms(10));
    h.succeed(h.dial_to(LAN));
    hint(&mut h, ConnectivityHint::Lost { network: wifi });
    let (at, _, addr, interface) = h.dials().last().cloned().unwrap();
    assert_eq!((at, addr.as_str(), interface), (h.now, PUBLIC_QUIC, CELL));
}
