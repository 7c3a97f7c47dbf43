//! DPS MQTT topics (spec/protocol.md §2.3, §2.5): building request topics and parsing the
//! response topic `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]`.
//!
//! The response query is parsed generically — any order, percent-decoded keys and values,
//! unknown keys kept — because SDKs and services disagree on order (azure-sdk-for-c's own test
//! puts `retry-after` before `$rid`) and we must not depend on iotemu's choice.

use crate::encode::{encode, parse_query};

/// The filter we subscribe to before sending any request.
pub(crate) const RESPONSE_FILTER: &str = "$dps/registrations/res/#";

const RESPONSE_PREFIX: &str = "$dps/registrations/res/";

/// Topic of the initial registration request.
pub(crate) fn register_topic(rid: &str) -> String {
    format!(
        "$dps/registrations/PUT/iotdps-register/?$rid={}",
        encode(rid)
    )
}

/// Topic of an operation-status poll.
pub(crate) fn poll_topic(rid: &str, operation_id: &str) -> String {
    format!(
        "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={}&operationId={}",
        encode(rid),
        encode(operation_id)
    )
}

/// A parsed response topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResponseTopic {
    pub status: u16,
    /// Decoded query parameters in the order they appeared.
    pub properties: Vec<(String, String)>,
}

impl ResponseTopic {
    /// Parses a response topic; `None` if `topic` is not one (wrong prefix or status).
    pub(crate) fn parse(topic: &str) -> Option<Self> {
        let rest = topic.strip_prefix(RESPONSE_PREFIX)?;
        let (status, query) = match rest.split_once('?') {
            Some((path, query)) => (path, query),
            None => (rest, ""),
        };
        // The status segment may or may not be followed by the `/` before `?`.
        let status = status.strip_suffix('/').unwrap_or(status);
        let status = status.parse::<u16>().ok()?;
        Some(Self {
            status,
            properties: parse_query(query),
        })
    }

    /// The first value for `key`, if present.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The request id this response answers.
    pub(crate) fn rid(&self) -> Option<&str> {
        self.get("$rid")
    }

    /// The raw `retry-after` value, if present.
    pub(crate) fn retry_after(&self) -> Option<&str> {
        self.get("retry-after")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_topics() {
        assert_eq!(
            register_topic("1a2b"),
            "$dps/registrations/PUT/iotdps-register/?$rid=1a2b"
        );
        assert_eq!(
            poll_topic("r 1", "4.d0a6.e717/x"),
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=r%201&operationId=4.d0a6.e717%2Fx"
        );
    }

    #[test]
    fn parses_documented_form() {
        let t = ResponseTopic::parse("$dps/registrations/res/202/?$rid=1&retry-after=3").unwrap();
        assert_eq!(t.status, 202);
        assert_eq!(t.rid(), Some("1"));
        assert_eq!(t.retry_after(), Some("3"));
    }

    #[test]
    fn rid_need_not_come_first() {
        let t =
            ResponseTopic::parse("$dps/registrations/res/202/?retry-after=120&$rid=abc").unwrap();
        assert_eq!(t.rid(), Some("abc"));
        assert_eq!(t.retry_after(), Some("120"));
    }

    #[test]
    fn tolerates_missing_slash_query_and_encoded_keys() {
        let t = ResponseTopic::parse("$dps/registrations/res/200?%24rid=a%20b").unwrap();
        assert_eq!((t.status, t.rid()), (200, Some("a b")));
        let t = ResponseTopic::parse("$dps/registrations/res/500/").unwrap();
        assert_eq!((t.status, t.rid()), (500, None));
        let t = ResponseTopic::parse("$dps/registrations/res/200/?$rid=1&flag&&x=").unwrap();
        assert_eq!(t.get("flag"), Some(""));
        assert_eq!(t.get("x"), Some(""));
    }

    #[test]
    fn rejects_other_topics() {
        assert_eq!(ResponseTopic::parse("$iothub/twin/res/200/?$rid=1"), None);
        assert_eq!(
            ResponseTopic::parse("$dps/registrations/res/abc/?$rid=1"),
            None
        );
        assert_eq!(ResponseTopic::parse("$dps/registrations/res/"), None);
    }

    fn key() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9$._~ -]{1,12}"
            .prop_filter("reserved keys", |k| k != "$rid" && k != "retry-after")
    }

    proptest! {
        /// Whatever the order of `$rid`, `retry-after` and extra parameters, and whatever
        /// characters the values hold (encoded on the wire), parsing recovers them.
        #[test]
        fn query_parser_recovers_any_order(
            status in 100u16..600,
            rid in any::<String>(),
            retry in proptest::option::of(0u32..100_000),
            extra in proptest::collection::vec((key(), any::<String>()), 0..4),
            seed in any::<u64>(),
        ) {
            let mut params: Vec<(String, String)> = vec![("$rid".into(), rid.clone())];
            if let Some(r) = retry {
                params.push(("retry-after".into(), r.to_string()));
            }
            params.extend(extra.iter().cloned());
            // Deterministic shuffle driven by the seed.
            let n = params.len();
            for i in (1..n).rev() {
                let j = (seed.rotate_left(i as u32) % (i as u64 + 1)) as usize;
                params.swap(i, j);
            }
            let query: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            let topic = format!("$dps/registrations/res/{status}/?{}", query.join("&"));
            let parsed = ResponseTopic::parse(&topic).unwrap();
            prop_assert_eq!(parsed.status, status);
            prop_assert_eq!(parsed.rid(), Some(rid.as_str()));
            prop_assert_eq!(parsed.retry_after().map(str::to_owned), retry.map(|r| r.to_string()));
            prop_assert_eq!(parsed.properties, params);
        }

        /// Arbitrary input never panics.
        #[test]
        fn parser_never_panics(s in any::<String>()) {
            let _ = ResponseTopic::parse(&format!("{RESPONSE_PREFIX}{s}"));
        }
    }
}
