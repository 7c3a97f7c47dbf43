//! The IoT Hub twin query language (emulator/src/hub/query.rs) on arbitrary text: parse, then
//! run what parsed over a few twin documents with paging, and follow the continuation token.
#![no_main]

use std::sync::OnceLock;

use iotemu::internals::hub::query;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

fn documents() -> &'static Vec<Value> {
    static DOCUMENTS: OnceLock<Vec<Value>> = OnceLock::new();
    DOCUMENTS.get_or_init(|| {
        vec![
            json!({"deviceId": "d1", "etag": "AAAA", "status": "enabled", "version": 3,
                "tags": {"location": {"region": "US", "plant": 43}, "floor": 2.5, "on": true},
                "properties": {"desired": {"telemetryConfig": {"sendFrequency": "5m"}, "$version": 2},
                    "reported": {"connectivity": {"type": "cellular"}, "list": [1, 2], "$version": 7}}}),
            json!({"deviceId": "d2", "moduleId": "m1", "status": "disabled",
                "tags": {"location": {"region": "EU"}, "n": null},
                "properties": {"desired": {"$version": 1}, "reported": {"$version": 1}}}),
            json!({"deviceId": "d3", "tags": {}, "properties": {"desired": {}, "reported": {"x": "é"}},
                "capabilities": {"iotEdge": false}}),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = query::parse(text) else {
        return;
    };
    for document in documents() {
        let _ = query.matches(document);
    }
    let mut continuation: Option<String> = None;
    for _ in 0..4 {
        let Ok(page) = query.run(documents().clone(), Some(1), continuation.as_deref()) else {
            return;
        };
        continuation = page.continuation.clone();
        if continuation.is_none() {
            break;
        }
    }
    let _ = query.run(documents().clone(), None, Some(text));
});
