//! SAS token parsing and verification (emulator/src/auth/sas.rs) on arbitrary text: parse,
//! expiry, resource decoding, scope checks against several resources and instants, signature
//! checks; and a token the module builds over the parsed fields must verify.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use iotemu::internals::auth::{SasToken, build_token, resource_covers};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let resources = [
        "localhost/devices/d1",
        "0ne00000A0A/registrations/r1",
        "localhost",
    ];
    let instants = [
        UNIX_EPOCH,
        SystemTime::now(),
        UNIX_EPOCH + Duration::from_secs(u32::MAX.into()),
    ];
    if let Ok(token) = SasToken::parse(text) {
        let _ = token.expires_at();
        let resource = token.resource();
        for expected in resources {
            for now in instants {
                let _ = token.check_scope(expected, now);
                let _ = token.verify(expected, &[KEY, b""], now);
            }
        }
        let _ = token.signed_with(KEY);
        if let Ok(resource) = resource {
            for expected in resources {
                let _ = resource_covers(&resource, expected);
            }
        }
    }
    // The text as a resource: a token built for it must parse and verify.
    if !text.is_empty() && text.len() < 512 {
        let expiry = 4_000_000_000;
        let built = build_token(text, KEY, Some("policy"), expiry);
        let token = SasToken::parse(&built).expect("a token build_token made parses");
        assert!(token.signed_with(KEY), "a token build_token made verifies");
        let _ = token.resource();
    }
});
