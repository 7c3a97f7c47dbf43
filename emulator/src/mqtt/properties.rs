//! The telemetry property bag at the end of a D2C topic (protocol.md §5.4):
//! `%24.mid=…&%24.ct=…&custom=value`. Every SDK percent-encodes the `$`, the docs show it
//! raw; both decode to `$.xx` system properties. Everything else is an application property.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::hub::c2d::{C2dMessage, QueuedC2d};
use crate::hub::telemetry::SystemProperties;
use crate::query;

/// Splits a property bag into system and application properties.
pub fn parse_property_bag(
    bag: &str,
) -> Result<(SystemProperties, BTreeMap<String, String>), String> {
    let pairs = query::pairs(bag).map_err(|_| "property bag is not valid UTF-8".to_owned())?;
    let mut system = SystemProperties::default();
    let mut application = BTreeMap::new();
    for (key, value) in pairs {
        let value = value.unwrap_or_default();
        let Some(name) = key.strip_prefix("$.") else {
            application.insert(key, value);
            continue;
        };
        let slot = match name {
            "mid" => &mut system.message_id,
            "cid" => &mut system.correlation_id,
            "uid" => &mut system.user_id,
            "ct" => &mut system.content_type,
            "ce" => &mut system.content_encoding,
            "to" => &mut system.to,
            "exp" => &mut system.absolute_expiry_time,
            "on" => &mut system.output_name,
            "ifid" => &mut system.interface_id,
            "ctime" => &mut system.creation_time,
            "sub" => &mut system.component,
            // Diagnostics ($.diagid, $.diagctx) and unknown system properties are not stored.
            _ => continue,
        };
        *slot = Some(value);
    }
    Ok((system, application))
}

/// Everything but unreserved characters is escaped — including `/`, which Python and Node
/// split the topic on (protocol.md §5.5).
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The C2D topic's property bag: system properties as `%24.xx`, `iothub-ack`, then the
/// application properties.
pub(crate) fn encode_c2d_property_bag(device_id: &str, queued: &QueuedC2d) -> String {
    let to = format!("/devices/{device_id}/messages/deviceBound");
    encode_property_bag(&queued.id, &queued.message, &to)
}

/// The property bag of a message to a device or module: system properties, then the
/// application properties, every key and value percent-encoded.
pub(crate) fn encode_property_bag(message_id: &str, m: &C2dMessage, to: &str) -> String {
    let to = to.to_owned();
    let message_id = message_id.to_owned();
    let expiry = m.expiry.map(crate::timefmt::utc_timestamp);
    let system = [
        ("%24.mid", Some(&message_id)),
        ("%24.cid", m.correlation_id.as_ref()),
        ("%24.uid", m.user_id.as_ref()),
        ("%24.ct", m.content_type.as_ref()),
        ("%24.ce", m.content_encoding.as_ref()),
        ("%24.exp", expiry.as_ref()),
        ("%24.to", Some(&to)),
        ("iothub-ack", m.ack.as_ref()),
    ];
    let mut parts: Vec<String> = system
        .into_iter()
        .filter_map(|(key, value)| {
            value.map(|v| format!("{key}={}", utf8_percent_encode(v, VALUE)))
        })
        .collect();
    parts.extend(m.properties.iter().map(|(k, v)| {
        format!(
            "{}={}",
            utf8_percent_encode(k, VALUE),
            utf8_percent_encode(v, VALUE)
        )
    }));
    parts.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_what_python_sends() {
        // Captured from azure-iot-device 2.14.0 (protocol.md §5.4).
        let bag = "%24.mid=mid%201%2Fx&%24.ct=application%2Fjson&%24.ce=utf-8&a%20b=c%26d%3De&trigger=yes";
        let (system, app) = parse_property_bag(bag).unwrap();
        assert_eq!(system.message_id.as_deref(), Some("mid 1/x"));
        assert_eq!(system.content_type.as_deref(), Some("application/json"));
        assert_eq!(system.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(app.get("a b").map(String::as_str), Some("c&d=e"));
        assert_eq!(app.get("trigger").map(String::as_str), Some("yes"));
    }

    #[test]
    fn c2d_bags_encode_slashes_and_round_trip() {
        let mut message = crate::hub::c2d::C2dMessage::new("hi");
        message.correlation_id = Some("c/1".into());
        message.properties.insert("path".into(), "a/b c".into());
        let queued = crate::hub::c2d::QueuedC2d {
            id: "m 1".into(),
            message,
            enqueued: std::time::SystemTime::now(),
            in_flight: false,
            delivery_count: 0,
            lock: None,
        };
        let bag = encode_c2d_property_bag("dev-1", &queued);
        assert!(!bag.contains('/'), "{bag}");
        let (system, app) = parse_property_bag(&bag).unwrap();
        assert_eq!(system.message_id.as_deref(), Some("m 1"));
        assert_eq!(system.correlation_id.as_deref(), Some("c/1"));
        assert_eq!(
            system.to.as_deref(),
            Some("/devices/dev-1/messages/deviceBound")
        );
        assert_eq!(app.get("path").map(String::as_str), Some("a/b c"));
    }

    #[test]
    fn raw_dollar_keys_and_bare_keys_work_too() {
        let (system, app) = parse_property_bag("$.cid=7&flag&$.diagid=x").unwrap();
        assert_eq!(system.correlation_id.as_deref(), Some("7"));
        assert_eq!(app.get("flag").map(String::as_str), Some(""));
        assert_eq!(app.len(), 1);
    }

    proptest! {
        #[test]
        fn encoded_application_properties_round_trip(
            props in proptest::collection::btree_map("[ -~]{1,12}", "[ -~]{0,20}", 0..6)
        ) {
            let props: BTreeMap<String, String> =
                props.into_iter().filter(|(k, _)| !k.starts_with("$.")).collect();
            let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
            let bag = props.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&");
            let (_, app) = parse_property_bag(&bag).unwrap();
            prop_assert_eq!(app, props);
        }
    }
}
