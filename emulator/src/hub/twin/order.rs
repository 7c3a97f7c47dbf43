//! Twin JSON in the key order IoT Hub writes it. Inside `desired` and `reported` the
//! properties come first and `$metadata`, then `$version`, last — in GET answers (MQTT and
//! REST), in desired-patch publications and in query results. Parsers that walk the JSON
//! rather than load it, such as the embedded C SDK's (azure-sdk-for-c `az_iot_hub_client_twin`
//! samples), stop reading at `$version` and would never see a property written after it.
//!
//! `serde_json` here keeps object keys sorted (no `preserve_order`), which would put `$`-keys
//! first; rather than change map ordering for the whole workspace, the twin's transports write
//! through [`TwinJson`], which reorders only twin sections.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// Keys that close a twin section, in the order they are written.
const SECTION_TAIL: [&str; 2] = ["$metadata", "$version"];

/// A JSON value written with every twin section (an object holding `$version`) ending in
/// `$metadata` then `$version`; everything else as `serde_json` writes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TwinJson<'a>(pub &'a Value);

impl Serialize for TwinJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(members) => {
                let section = members.contains_key("$version");
                let deferred = |key: &str| section && SECTION_TAIL.contains(&key);
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members.iter().filter(|(key, _)| !deferred(key)) {
                    map.serialize_entry(key, &TwinJson(value))?;
                }
                if section {
                    for key in SECTION_TAIL {
                        if let Some(value) = members.get(key) {
                            map.serialize_entry(key, &TwinJson(value))?;
                        }
                    }
                }
                map.end()
            }
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&TwinJson(item))?;
                }
                seq.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// `value` as twin JSON text.
pub(crate) fn to_string(value: &Value) -> String {
    serde_json::to_string(&TwinJson(value)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sections_end_with_metadata_then_version() {
        let twin = json!({
            "desired": {"b": 1, "$version": 4, "a": {"x": 1}},
            "reported": {"z": true, "$metadata": {"$lastUpdated": "t", "z": {"$lastUpdated": "t"}}, "$version": 2},
        });
        assert_eq!(
            to_string(&twin),
            r#"{"desired":{"a":{"x":1},"b":1,"$version":4},"reported":{"z":true,"$metadata":{"$lastUpdated":"t","z":{"$lastUpdated":"t"}},"$version":2}}"#
        );
    }

    #[test]
    fn objects_without_a_version_and_arrays_keep_serde_order() {
        let value = json!([{"$metadata": 1, "a": 2}, {"b": [{"c": 1, "$version": 1}]}]);
        assert_eq!(
            to_string(&value),
            r#"[{"$metadata":1,"a":2},{"b":[{"c":1,"$version":1}]}]"#
        );
    }

    #[test]
    fn an_empty_section_is_its_version_alone() {
        assert_eq!(to_string(&json!({"$version": 1})), r#"{"$version":1}"#);
    }
}
