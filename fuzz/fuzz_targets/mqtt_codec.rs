//! MQTT 3.1.1 packet decoding (emulator/src/mqtt/codec.rs) on arbitrary bytes: every packet
//! that decodes (but CONNECT, which the emulator never writes) must encode again and decode
//! to itself, and what the session would do with
//! its strings next — the CONNECT username, a PUBLISH topic with its property bag, SUBSCRIBE
//! filters — must not panic either.
#![no_main]

use bytes::BytesMut;
use iotemu::internals::mqtt::codec::{self, Packet};
use iotemu::internals::mqtt::parse_property_bag;
use iotemu::internals::mqtt::username;
use iotemu::internals::mqtt::{classify_publish, may_subscribe};
use iotemu::internals::mqtt::{split_query, valid_filter};
use iotemu_fuzz::PRINCIPALS;
use libfuzzer_sys::fuzz_target;

const MAX_PACKET: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(packet)) = codec::decode(&mut buf, MAX_PACKET) {
        round_trip(&packet);
        follow(&packet);
    }
});

fn round_trip(packet: &Packet) {
    // rumqttc writes the user-name flag only for a non-empty user name, so a CONNECT with an
    // empty one does not survive encoding; the emulator never encodes a CONNECT.
    if matches!(packet, Packet::Connect(_)) {
        return;
    }
    let mut wire = BytesMut::new();
    if codec::encode(packet, &mut wire).is_err() {
        return;
    }
    let again = codec::decode(&mut wire, usize::MAX)
        .expect("a packet the codec encoded decodes")
        .expect("a packet the codec encoded is complete");
    assert_eq!(&again, packet, "encode then decode changed the packet");
}

fn follow(packet: &Packet) {
    match packet {
        Packet::Connect(connect) => {
            if let Some(target) = connect
                .login
                .as_ref()
                .and_then(|login| username::parse(&login.username))
            {
                let _ = target.expected_client_id();
            }
        }
        Packet::Publish(publish) => {
            for principal in PRINCIPALS {
                if let Some(inbound) = classify_publish(principal, &publish.topic) {
                    let _ = format!("{inbound:?}");
                }
            }
            let (path, query) = split_query(&publish.topic);
            let _ = parse_property_bag(query);
            let _ = parse_property_bag(path.rsplit('/').next().unwrap_or_default());
        }
        Packet::Subscribe(subscribe) => {
            for filter in &subscribe.filters {
                let _ = valid_filter(&filter.path);
                for principal in PRINCIPALS {
                    let _ = may_subscribe(principal, &filter.path);
                }
            }
        }
        _ => {}
    }
}
