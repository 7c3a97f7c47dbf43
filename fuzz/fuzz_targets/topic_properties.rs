//! Topic, username and property-bag parsing (emulator/src/mqtt/topic.rs, properties.rs,
//! routes.rs, username.rs, and the `key=value&…` parser they share) on arbitrary text. The
//! first line is a filter and the rest a topic, so matching sees pairs of both.
#![no_main]

use iotemu::internals::fuzzing::{query_pairs, query_value};
use iotemu::internals::mqtt::parse_property_bag;
use iotemu::internals::mqtt::username;
use iotemu::internals::mqtt::{classify_publish, may_subscribe};
use iotemu::internals::mqtt::{filter_matches, split_query, valid_filter};
use iotemu_fuzz::PRINCIPALS;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (filter, topic) = text.split_once('\n').unwrap_or((text, text));
    if valid_filter(filter) {
        let _ = filter_matches(filter, topic);
    }
    if !topic.contains(['+', '#']) && valid_filter(topic) {
        assert!(
            filter_matches(topic, topic),
            "a literal topic matches itself as a filter"
        );
    }
    let (path, query) = split_query(topic);
    let _ = query_pairs(query);
    let _ = query_value(query, "$rid");
    let _ = parse_property_bag(query);
    let _ = parse_property_bag(path);
    for principal in PRINCIPALS {
        let _ = classify_publish(principal, topic);
        let _ = may_subscribe(principal, filter);
    }
    if let Some(target) = username::parse(text) {
        let _ = target.expected_client_id();
    }
});
