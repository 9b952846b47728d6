//! The rendezvous point's configuration file: any text either parses or
//! is refused with a message; what parses and validates prints (as
//! `--print-config` does) to a file that reads back to the same config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multidriver_rendezvous::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml(text) else {
        return;
    };
    if config.validate().is_err() {
        return;
    }
    let printed = toml::to_string(&config).expect("a valid config prints");
    let again = Config::from_toml(&printed).expect("a printed config reads back");
    assert_eq!(again, config);
});
