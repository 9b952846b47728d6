//! Route snapshots (`MDRM`): any bytes either decode or are refused with an
//! error; a decoded snapshot encodes to bytes that decode to it again, and
//! imports into an engine without breaking the engine's bounds; what the
//! engine then exports decodes as well.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multidriver_core::{Config, Engine, RouteMemory};
use multidriver_scoring::Timestamp;

fuzz_target!(|data: &[u8]| {
    let Ok(memory) = RouteMemory::from_bytes(data) else {
        return;
    };
    let bytes = memory.to_bytes();
    let again = RouteMemory::from_bytes(&bytes).expect("an encoded snapshot decodes");
    assert_eq!(again, memory);

    let config = Config::default();
    let mut engine = Engine::new(config.clone()).expect("the default config is valid");
    let now = Timestamp::from_millis(3_600_000);
    let Ok(_report) = engine.import_memory(&memory, now) else {
        return;
    };
    assert!(engine.peer_count() <= config.max_peers());
    let exported = engine.export_memory(now);
    RouteMemory::from_bytes(&exported.to_bytes()).expect("an exported snapshot decodes");
});
