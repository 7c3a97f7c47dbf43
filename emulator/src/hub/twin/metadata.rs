//! Per-property twin metadata (iot-hub-devguide-device-twins.md, "Twin metadata"): IoT Hub
//! keeps, for every property at every level of `desired` and `reported`, when it last changed
//! — `$lastUpdated` — and, for desired properties, the section `$version` that changed it —
//! `$lastUpdatedVersion`. The service view shows it as each section's `$metadata`, a tree
//! mirroring the properties.
//!
//! The tree is recorded as patches are applied (a `null` drops a property's node, an object
//! refreshes its node and recurses, anything else replaces the node) and shown against the
//! current properties, so a property whose node is missing — twins saved before metadata was
//! kept — shows its parent's stamp.

use serde_json::{Map, Value, json};

const LAST_UPDATED: &str = "$lastUpdated";
const LAST_UPDATED_VERSION: &str = "$lastUpdatedVersion";

/// When a change happened, and (desired only) at which section version.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    pub updated: String,
    pub version: Option<u64>,
}

impl Stamp {
    fn node(&self) -> Map<String, Value> {
        let mut node = Map::new();
        node.insert(LAST_UPDATED.into(), json!(self.updated));
        if let Some(version) = self.version {
            node.insert(LAST_UPDATED_VERSION.into(), json!(version));
        }
        node
    }

    fn write_into(&self, node: &mut Map<String, Value>) {
        node.insert(LAST_UPDATED.into(), json!(self.updated));
        match self.version {
            Some(version) => node.insert(LAST_UPDATED_VERSION.into(), json!(version)),
            None => node.remove(LAST_UPDATED_VERSION),
        };
    }

    /// The stamp a stored node holds, or `fallback`'s for a node that is missing or partial.
    fn of(node: Option<&Map<String, Value>>, fallback: &Stamp) -> Stamp {
        let updated = node
            .and_then(|n| n.get(LAST_UPDATED))
            .and_then(Value::as_str)
            .map_or_else(|| fallback.updated.clone(), str::to_owned);
        let version = fallback.version.map(|fallback| {
            node.and_then(|n| n.get(LAST_UPDATED_VERSION))
                .and_then(Value::as_u64)
                .unwrap_or(fallback)
        });
        Stamp { updated, version }
    }
}

/// The metadata of one twin section: a node per property (the section's own stamp is the
/// twin's `*_updated` / `*_version`).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// Records the merge `patch` (already applied to the properties) as changed at `stamp`.
    pub fn record(&mut self, patch: &Map<String, Value>, stamp: &Stamp) {
        record(&mut self.0, patch, stamp);
    }

    /// The section's `$metadata` for `properties`, the section itself stamped `section`.
    pub fn view(&self, properties: &Map<String, Value>, section: &Stamp) -> Value {
        Value::Object(view(properties, Some(&self.0), section))
    }
}

fn record(nodes: &mut Map<String, Value>, patch: &Map<String, Value>, stamp: &Stamp) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                nodes.remove(key);
            }
            Value::Object(inner) => {
                let slot = nodes
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(node) = slot {
                    stamp.write_into(node);
                    record(node, inner, stamp);
                }
            }
            _ => {
                nodes.insert(key.clone(), Value::Object(stamp.node()));
            }
        }
    }
}

fn view(
    properties: &Map<String, Value>,
    nodes: Option<&Map<String, Value>>,
    stamp: &Stamp,
) -> Map<String, Value> {
    let mut out = stamp.node();
    for (key, value) in properties {
        let node = nodes.and_then(|n| n.get(key)).and_then(Value::as_object);
        let own = Stamp::of(node, stamp);
        let shown = match value {
            Value::Object(inner) => view(inner, node, &own),
            _ => own.node(),
        };
        out.insert(key.clone(), Value::Object(shown));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(updated: &str, version: Option<u64>) -> Stamp {
        Stamp {
            updated: updated.into(),
            version,
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn each_property_keeps_the_stamp_of_its_last_change() {
        let mut meta = Metadata::default();
        meta.record(
            &object(json!({"a": 1, "o": {"x": 1, "y": 2}})),
            &stamp("t2", Some(2)),
        );
        meta.record(&object(json!({"o": {"y": 3}})), &stamp("t3", Some(3)));
        let properties = object(json!({"a": 1, "o": {"x": 1, "y": 3}}));
        assert_eq!(
            meta.view(&properties, &stamp("t3", Some(3))),
            json!({
                "$lastUpdated": "t3", "$lastUpdatedVersion": 3,
                "a": {"$lastUpdated": "t2", "$lastUpdatedVersion": 2},
                "o": {
                    "$lastUpdated": "t3", "$lastUpdatedVersion": 3,
                    "x": {"$lastUpdated": "t2", "$lastUpdatedVersion": 2},
                    "y": {"$lastUpdated": "t3", "$lastUpdatedVersion": 3},
                },
            })
        );
    }

    #[test]
    fn reported_metadata_has_no_version_and_deleted_properties_go() {
        let mut meta = Metadata::default();
        meta.record(&object(json!({"a": {"b": 1}, "c": 2})), &stamp("t1", None));
        meta.record(
            &object(json!({"a": null, "c": {"d": 1}})),
            &stamp("t2", None),
        );
        let properties = object(json!({"c": {"d": 1}}));
        assert_eq!(
            meta.view(&properties, &stamp("t2", None)),
            json!({
                "$lastUpdated": "t2",
                "c": {"$lastUpdated": "t2", "d": {"$lastUpdated": "t2"}},
            })
        );
    }

    #[test]
    fn properties_without_a_node_show_their_parents_stamp() {
        let meta = Metadata::default();
        let properties = object(json!({"a": {"b": 1}}));
        assert_eq!(
            meta.view(&properties, &stamp("t0", Some(1))),
            json!({
                "$lastUpdated": "t0", "$lastUpdatedVersion": 1,
                "a": {"$lastUpdated": "t0", "$lastUpdatedVersion": 1,
                      "b": {"$lastUpdated": "t0", "$lastUpdatedVersion": 1}},
            })
        );
    }
}
