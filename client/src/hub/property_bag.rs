//! The telemetry topic `devices/{deviceId}/messages/events/{property bag}` — for a module
//! `devices/{deviceId}/modules/{moduleId}/messages/events/{property bag}` (spec/protocol.md
//! §5.3–§5.4).
//!
//! The bag is `key=value` pairs joined by `&`, each key and value percent-encoded so that
//! only unreserved characters stay literal — the `$` of system properties becomes `%24`
//! (`%24.mid=…`) exactly as every official SDK sends it, and a space becomes `%20`.

use super::message::Message;
use crate::encode::encode;

/// Full topic for a telemetry message; `base` is `devices/{deviceId}` or
/// `devices/{deviceId}/modules/{moduleId}`.
pub(crate) fn telemetry_topic(base: &str, message: &Message) -> String {
    format!(
        "{base}/messages/events/{}",
        encode_bag(message.wire_properties())
    )
}

/// `k1=v1&k2=v2` with keys and values percent-encoded.
pub(crate) fn encode_bag<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::decode;
    use proptest::prelude::*;

    #[test]
    fn no_properties_leaves_trailing_slash() {
        assert_eq!(
            telemetry_topic("devices/dev-1", &Message::new("x")),
            "devices/dev-1/messages/events/"
        );
    }

    #[test]
    fn matches_live_python_encoding() {
        // spec/protocol.md §5.4, captured from azure-iot-device 2.14.0.
        let m = Message::new("x")
            .message_id("mid 1/x")
            .content_type("application/json")
            .content_encoding("utf-8")
            .property("a b", "c&d=e")
            .property("trigger", "yes");
        assert_eq!(
            telemetry_topic("devices/dev-1", &m),
            "devices/dev-1/messages/events/%24.mid=mid%201%2Fx&%24.ct=application%2Fjson&%24.ce=utf-8&a%20b=c%26d%3De&trigger=yes"
        );
    }

    #[test]
    fn system_properties_in_fixed_order_before_application_ones() {
        let m = Message::new("x")
            .property("z", "1")
            .output_name("out")
            .content_encoding("ce")
            .content_type("ct")
            .user_id("uid")
            .correlation_id("cid")
            .message_id("mid");
        assert_eq!(
            telemetry_topic("devices/d", &m),
            "devices/d/messages/events/%24.mid=mid&%24.cid=cid&%24.uid=uid&%24.ct=ct&%24.ce=ce&%24.on=out&z=1"
        );
    }

    #[test]
    fn module_outputs_name_their_output() {
        let m = Message::new("x").output_name("alerts").property("k", "v");
        assert_eq!(
            telemetry_topic("devices/d/modules/m", &m),
            "devices/d/modules/m/messages/events/%24.on=alerts&k=v"
        );
    }

    proptest! {
        /// Splitting on `&` and `=` then decoding gives back exactly the pairs, whatever they
        /// contain; and the bag never contains a `/`, `+`, `#` or space that would change the
        /// topic's meaning.
        #[test]
        fn bag_round_trips(pairs in proptest::collection::vec((any::<String>(), any::<String>()), 0..6)) {
            let bag = encode_bag(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            prop_assert!(!bag.contains(['/', '+', '#', ' ', '$', '?']));
            let decoded: Vec<(String, String)> = if bag.is_empty() {
                Vec::new()
            } else {
                bag.split('&')
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').unwrap();
                        (decode(k), decode(v))
                    })
                    .collect()
            };
            prop_assert_eq!(decoded, pairs);
        }
    }
}
