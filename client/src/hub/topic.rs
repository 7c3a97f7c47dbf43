//! Hub twin and direct-method topics (spec/protocol.md §5.3, §5.6, §5.7): the filters we
//! subscribe to, the request topics we publish, and parsing of what the hub sends us.
//!
//! Parsing is lenient where senders disagree: query keys and values are percent-decoded and
//! may come in any order, and the `/` before `?` is optional (Node accepts a method topic
//! without it, so a hub or emulator might send one).

use crate::encode::{encode, parse_query};

/// Twin responses (GET and reported PATCH).
pub(crate) const TWIN_RESPONSE_FILTER: &str = "$iothub/twin/res/#";
/// Desired-property notifications.
pub(crate) const DESIRED_FILTER: &str = "$iothub/twin/PATCH/properties/desired/#";
/// Direct-method requests.
pub(crate) const METHOD_FILTER: &str = "$iothub/methods/POST/#";

const TWIN_RESPONSE_PREFIX: &str = "$iothub/twin/res/";
const DESIRED_PATH: &str = "$iothub/twin/PATCH/properties/desired";
const METHOD_PREFIX: &str = "$iothub/methods/POST/";

/// Topic of a full-twin GET.
pub(crate) fn twin_get_topic(rid: &str) -> String {
    format!("$iothub/twin/GET/?$rid={}", encode(rid))
}

/// Topic of a reported-properties patch.
pub(crate) fn reported_patch_topic(rid: &str) -> String {
    format!(
        "$iothub/twin/PATCH/properties/reported/?$rid={}",
        encode(rid)
    )
}

/// Topic of the answer to a direct method. The status is the device's own integer, so it may
/// be negative or outside HTTP's range.
pub(crate) fn method_response_topic(status: i32, rid: &str) -> String {
    format!("$iothub/methods/res/{status}/?$rid={}", encode(rid))
}

/// A publish from the hub, classified by its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HubTopic {
    /// `$iothub/twin/res/{status}/?$rid={rid}[&$version={v}]`.
    TwinResponse {
        status: u16,
        rid: String,
        version: Option<u64>,
    },
    /// `$iothub/twin/PATCH/properties/desired/?$version={v}`; the body carries `$version` too.
    DesiredPatch { version: Option<u64> },
    /// `$iothub/methods/POST/{name}/?$rid={rid}`.
    MethodRequest { name: String, rid: String },
}

impl HubTopic {
    /// Classifies `topic`; `None` for anything that is not a well-formed twin or method topic
    /// (e.g. C2D, or a twin response without `$rid`, which could never be matched).
    pub(crate) fn parse(topic: &str) -> Option<Self> {
        let (path, query) = topic.split_once('?').unwrap_or((topic, ""));
        // Every form may or may not have the `/` before `?`.
        let path = path.strip_suffix('/').unwrap_or(path);
        let query = parse_query(query);
        let get = |key: &str| {
            query
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let version = || get("$version").and_then(|v| v.parse::<u64>().ok());

        if let Some(status) = path.strip_prefix(TWIN_RESPONSE_PREFIX) {
            return Some(Self::TwinResponse {
                status: status.parse().ok()?,
                rid: get("$rid")?.to_owned(),
                version: version(),
            });
        }
        if path == DESIRED_PATH {
            return Some(Self::DesiredPatch { version: version() });
        }
        if let Some(name) = path.strip_prefix(METHOD_PREFIX) {
            if name.is_empty() || name.contains('/') {
                return None;
            }
            return Some(Self::MethodRequest {
                name: crate::encode::decode(name),
                rid: get("$rid")?.to_owned(),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_topics() {
        assert_eq!(twin_get_topic("1"), "$iothub/twin/GET/?$rid=1");
        assert_eq!(
            reported_patch_topic("a b"),
            "$iothub/twin/PATCH/properties/reported/?$rid=a%20b"
        );
        assert_eq!(
            method_response_topic(-1, "42"),
            "$iothub/methods/res/-1/?$rid=42"
        );
    }

    #[test]
    fn twin_responses() {
        assert_eq!(
            HubTopic::parse("$iothub/twin/res/200/?$rid=7"),
            Some(HubTopic::TwinResponse {
                status: 200,
                rid: "7".into(),
                version: None
            })
        );
        // Any order, percent-encoded keys, no `/` before `?`.
        assert_eq!(
            HubTopic::parse("$iothub/twin/res/204?%24version=3&$rid=r%201"),
            Some(HubTopic::TwinResponse {
                status: 204,
                rid: "r 1".into(),
                version: Some(3)
            })
        );
        assert_eq!(HubTopic::parse("$iothub/twin/res/204/"), None, "no $rid");
        assert_eq!(HubTopic::parse("$iothub/twin/res/abc/?$rid=1"), None);
    }

    #[test]
    fn desired_patches() {
        assert_eq!(
            HubTopic::parse("$iothub/twin/PATCH/properties/desired/?$version=12"),
            Some(HubTopic::DesiredPatch { version: Some(12) })
        );
        assert_eq!(
            HubTopic::parse("$iothub/twin/PATCH/properties/desired?$version=x"),
            Some(HubTopic::DesiredPatch { version: None })
        );
        assert_eq!(
            HubTopic::parse("$iothub/twin/PATCH/properties/reported/?$rid=1"),
            None
        );
    }

    #[test]
    fn method_requests_with_and_without_slash() {
        let expected = Some(HubTopic::MethodRequest {
            name: "reboot".into(),
            rid: "42".into(),
        });
        assert_eq!(
            HubTopic::parse("$iothub/methods/POST/reboot/?$rid=42"),
            expected
        );
        assert_eq!(
            HubTopic::parse("$iothub/methods/POST/reboot?$rid=42"),
            expected
        );
        assert_eq!(
            HubTopic::parse("$iothub/methods/POST/do%20it/?%24rid=a%2Fb"),
            Some(HubTopic::MethodRequest {
                name: "do it".into(),
                rid: "a/b".into(),
            })
        );
        assert_eq!(HubTopic::parse("$iothub/methods/POST/?$rid=1"), None);
        assert_eq!(HubTopic::parse("$iothub/methods/POST/a/b/?$rid=1"), None);
        assert_eq!(HubTopic::parse("$iothub/methods/POST/reboot/"), None);
        assert_eq!(HubTopic::parse("devices/d/messages/devicebound/a=b"), None);
    }

    proptest! {
        #[test]
        fn method_name_and_rid_round_trip(name in "\\PC+", rid in "\\PC+") {
            let topic = format!("$iothub/methods/POST/{}/?$rid={}", encode(&name), encode(&rid));
            prop_assert_eq!(
                HubTopic::parse(&topic),
                Some(HubTopic::MethodRequest { name, rid })
            );
        }

        #[test]
        fn never_panics(topic in "\\PC*") {
            let _ = HubTopic::parse(&topic);
        }
    }
}
