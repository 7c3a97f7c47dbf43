//! Fixture loading (emulator/src/fixtures.rs) from bytes: one document parsed with its JSON
//! path errors, then validated and merged with the quickstart fixture as the emulator does at
//! startup.
#![no_main]

use iotemu::internals::fixtures::{self, FixtureSet, FixtureSource};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = fixtures::parse("fuzz.json", json) {
        let _ = error.to_string();
        return;
    }
    let alone = FixtureSource::Inline {
        name: "fuzz.json".into(),
        json: json.into(),
    };
    if let Err(error) = FixtureSet::load(std::slice::from_ref(&alone)) {
        let _ = error.to_string();
    }
    let _ = FixtureSet::load(&[FixtureSource::quickstart(), alone]);
});
