//! Scenario files: any text either loads into a scenario within the
//! simulator's bounds or is refused with an error naming a line; never a
//! panic, never arithmetic that wraps (overflow checks are on).
#![no_main]

use libfuzzer_sys::fuzz_target;
use multidriver_sim::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Scenario::from_toml_str(text) {
        Ok(scenario) => {
            // The loader's bounds hold for whatever it accepted.
            assert!(
                u64::from(scenario.node_count()) <= u64::from(multidriver_sim::scenario::MAX_NODES)
            );
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("line "),
                "an error without a line: {message}"
            );
        }
    }
});
