//! Profile and route-set files: any text either loads (and a loaded profile
//! writes back to a file that loads to the same profile, commented or not)
//! or is refused with a line and column; a loaded route set ranks under
//! every preset without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use multidriver_scoring::{Error, Profile, RouteSet};

fn located(e: &Error) {
    match e {
        Error::Toml { line, column, .. } => assert!(*line >= 1 && *column >= 1),
        other => panic!("a file error without a place: {other}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Profile::from_toml_str(text) {
        Ok(profile) => {
            for written in [profile.to_toml_string(), profile.to_documented_toml()] {
                let again = Profile::from_toml_str(&written).expect("a written profile loads");
                assert_eq!(again, profile);
            }
        }
        Err(e) => located(&e),
    }
    match RouteSet::from_toml_str(text) {
        Ok(set) => {
            for profile in Profile::presets() {
                let ranking = set.rank(&profile);
                assert_eq!(ranking.entries().len(), set.routes.len());
            }
        }
        Err(e) => located(&e),
    }
});
