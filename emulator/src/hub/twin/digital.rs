//! The IoT Plug and Play view of a twin — the Digital Twins API of IoT Hub
//! (`/digitaltwins/{id}`; concepts-digital-twin.md, iot-plug-and-play conventions) — built
//! from the device twin rather than stored apart:
//!
//! - a *component* is a top-level twin property whose object carries the marker
//!   `"__t": "c"` (in desired or reported properties), as the PnP convention writes it;
//! - a property's value is its reported value; a writable property the device acknowledged
//!   as `{"value", "ac", "av", "ad"}` shows `value`, with `ackCode`, `ackVersion` and
//!   `ackDescription` in its `$metadata` next to the `desiredValue` / `desiredVersion` the
//!   service asked for and its `lastUpdateTime`;
//! - the twin's model id is `$metadata.$model`.
//!
//! A JSON Patch on the digital twin (`add`, `replace`, `remove`) becomes a desired-properties
//! merge patch; writes to a component carry the marker. A command is a direct method named
//! `command`, or `component*command` for a component's command.

use serde_json::{Map, Value, json};

use super::Twin;
use crate::hub::error::HubError;

/// The PnP convention's component marker: `"__t": "c"`.
const MARKER_KEY: &str = "__t";
const MARKER_VALUE: &str = "c";

/// The most operations one PATCH may carry (chosen; see docs/differences.md).
const MAX_PATCH_OPERATIONS: usize = 100;

/// The direct method a Digital Twins command is delivered as.
pub(crate) fn command_method_name(component: Option<&str>, command: &str) -> String {
    match component {
        Some(component) => format!("{component}*{command}"),
        None => command.to_owned(),
    }
}

fn is_component(value: Option<&Value>) -> bool {
    value
        .and_then(|v| v.get(MARKER_KEY))
        .and_then(Value::as_str)
        == Some(MARKER_VALUE)
}

/// `GET /digitaltwins/{id}`: the twin as IoT Plug and Play shows it.
pub(crate) fn view(device_id: &str, twin: &Twin) -> Value {
    let desired_meta = twin.desired_metadata_view();
    let reported_meta = twin.reported_metadata_view();
    let mut root = Map::new();
    let mut root_meta = Map::new();
    if let Some(model) = &twin.model_id {
        root_meta.insert("$model".into(), json!(model));
    }
    let mut names: Vec<&String> = twin.reported.keys().chain(twin.desired.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let (desired, reported) = (twin.desired.get(name), twin.reported.get(name));
        if is_component(desired) || is_component(reported) {
            let empty = Map::new();
            let component = properties(
                desired.and_then(Value::as_object).unwrap_or(&empty),
                reported.and_then(Value::as_object).unwrap_or(&empty),
                &desired_meta[name],
                &reported_meta[name],
            );
            root.insert(name.clone(), component);
            continue;
        }
        let (value, meta) = property(desired, reported, &desired_meta[name], &reported_meta[name]);
        if let Some(value) = value {
            root.insert(name.clone(), value);
        }
        root_meta.insert(name.clone(), meta);
    }
    let mut out = Map::new();
    out.insert("$dtId".into(), json!(device_id));
    out.extend(root);
    out.insert("$metadata".into(), Value::Object(root_meta));
    Value::Object(out)
}

/// A component: its properties and their `$metadata`.
fn properties(
    desired: &Map<String, Value>,
    reported: &Map<String, Value>,
    desired_meta: &Value,
    reported_meta: &Value,
) -> Value {
    let mut out = Map::new();
    let mut meta = Map::new();
    let mut names: Vec<&String> = reported.keys().chain(desired.keys()).collect();
    names.sort();
    names.dedup();
    for name in names.into_iter().filter(|n| *n != MARKER_KEY) {
        let (value, property_meta) = property(
            desired.get(name),
            reported.get(name),
            &desired_meta[name],
            &reported_meta[name],
        );
        if let Some(value) = value {
            out.insert(name.clone(), value);
        }
        meta.insert(name.clone(), property_meta);
    }
    out.insert("$metadata".into(), Value::Object(meta));
    Value::Object(out)
}

/// One property's value (absent when the device never reported it) and `$metadata`.
fn property(
    desired: Option<&Value>,
    reported: Option<&Value>,
    desired_meta: &Value,
    reported_meta: &Value,
) -> (Option<Value>, Value) {
    let mut meta = Map::new();
    if let Some(desired) = desired {
        meta.insert("desiredValue".into(), desired.clone());
        if let Some(version) = desired_meta.get("$lastUpdatedVersion") {
            meta.insert("desiredVersion".into(), version.clone());
        }
    }
    let acknowledged = reported
        .and_then(Value::as_object)
        .filter(|r| r.contains_key("value") && r.contains_key("ac") && r.contains_key("av"));
    let value = match acknowledged {
        Some(ack) => {
            meta.insert("ackVersion".into(), ack["av"].clone());
            meta.insert("ackCode".into(), ack["ac"].clone());
            if let Some(description) = ack.get("ad") {
                meta.insert("ackDescription".into(), description.clone());
            }
            ack.get("value").cloned()
        }
        None => reported.cloned(),
    };
    let updated = reported_meta
        .get("$lastUpdated")
        .or_else(|| desired_meta.get("$lastUpdated"));
    if let Some(updated) = updated {
        meta.insert("lastUpdateTime".into(), updated.clone());
    }
    (value, Value::Object(meta))
}

/// `PATCH /digitaltwins/{id}`: a JSON Patch (RFC 6902 `add`, `replace`, `remove`) as the
/// desired-properties merge patch it amounts to. A path of two or more segments writes into
/// a component unless its first segment is a plain (non-component) property of the twin.
pub(crate) fn desired_patch(operations: &Value, twin: &Twin) -> Result<Value, HubError> {
    let operations = operations.as_array().ok_or_else(|| {
        HubError::argument_invalid("a digital twin patch must be a JSON array of operations")
    })?;
    if operations.len() > MAX_PATCH_OPERATIONS {
        return Err(HubError::argument_invalid(format!(
            "a digital twin patch may hold at most {MAX_PATCH_OPERATIONS} operations"
        )));
    }
    let mut patch = Map::new();
    for operation in operations {
        let op = operation.get("op").and_then(Value::as_str);
        let path = operation
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| HubError::argument_invalid("every operation needs a string \"path\""))?;
        let segments = pointer_segments(path)?;
        let value = match op {
            Some("add" | "replace") => operation.get("value").cloned().ok_or_else(|| {
                HubError::argument_invalid(format!("'{op:?}' at '{path}' needs a \"value\""))
            })?,
            Some("remove") => Value::Null,
            other => {
                return Err(HubError::argument_invalid(format!(
                    "unsupported operation {other:?} at '{path}' (add, replace and remove are)"
                )));
            }
        };
        let Some((first, rest)) = segments.split_first() else {
            return Err(HubError::argument_invalid(
                "an operation on the whole digital twin is not supported",
            ));
        };
        let plain = |v: Option<&Value>| v.is_some() && !is_component(v);
        let into_component = if rest.is_empty() {
            // A whole component written at once: an object for a known component.
            value.is_object()
                && (is_component(twin.desired.get(first)) || is_component(twin.reported.get(first)))
        } else {
            !plain(twin.desired.get(first)) && !plain(twin.reported.get(first))
        };
        if !into_component {
            insert_at(&mut patch, &segments, value);
            continue;
        }
        insert_at(
            &mut patch,
            &[first.clone(), MARKER_KEY.to_owned()],
            json!(MARKER_VALUE),
        );
        match value {
            // A whole component: each of its properties.
            Value::Object(members) if rest.is_empty() => {
                for (name, member) in members.into_iter().filter(|(n, _)| n != MARKER_KEY) {
                    insert_at(&mut patch, &[first.clone(), name], member);
                }
            }
            value => insert_at(&mut patch, &segments, value),
        }
    }
    Ok(Value::Object(patch))
}

/// Writes `value` at `path` in a patch being built, making objects on the way (and
/// replacing a value written there before).
fn insert_at(map: &mut Map<String, Value>, path: &[String], value: Value) {
    match path {
        [] => {}
        [last] => {
            map.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let slot = map
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(inner) = slot {
                insert_at(inner, rest, value);
            }
        }
    }
}

/// A JSON Pointer's segments, unescaped (`~1` is `/`, `~0` is `~`).
fn pointer_segments(path: &str) -> Result<Vec<String>, HubError> {
    let rest = path.strip_prefix('/').ok_or_else(|| {
        HubError::argument_invalid(format!(
            "'{path}' is not a JSON Pointer (it must start with '/')"
        ))
    })?;
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    rest.split('/')
        .map(|segment| {
            if segment.is_empty() {
                return Err(HubError::argument_invalid(format!(
                    "'{path}' has an empty segment"
                )));
            }
            Ok(segment.replace("~1", "/").replace("~0", "~"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twin_with(desired: Value, reported: Value) -> Twin {
        let mut twin = Twin::from_initial(Some(&json!({"properties": {"desired": desired}})));
        twin.patch_reported(&reported).unwrap();
        twin.model_id = Some("dtmi:com:example:TemperatureController;1".into());
        twin
    }

    #[test]
    fn the_view_splits_components_and_unwraps_acknowledged_properties() {
        let twin = twin_with(
            json!({"thermostat1": {"__t": "c", "targetTemperature": 42}, "interval": 5}),
            json!({
                "serialNumber": "SN-1",
                "interval": {"value": 5, "ac": 200, "av": 1, "ad": "ok"},
                "thermostat1": {"__t": "c", "maxTemp": 30, "targetTemperature": {"value": 42, "ac": 200, "av": 1}},
            }),
        );
        let view = view("dev", &twin);
        assert_eq!(view["$dtId"], "dev");
        assert_eq!(
            view["$metadata"]["$model"],
            "dtmi:com:example:TemperatureController;1"
        );
        assert_eq!(view["serialNumber"], "SN-1");
        assert_eq!(view["interval"], 5);
        let interval = &view["$metadata"]["interval"];
        assert_eq!(interval["desiredValue"], 5);
        assert_eq!(interval["desiredVersion"], 1);
        assert_eq!(
            (interval["ackCode"].clone(), interval["ackVersion"].clone()),
            (json!(200), json!(1))
        );
        assert_eq!(interval["ackDescription"], "ok");
        assert!(interval["lastUpdateTime"].is_string());
        let component = &view["thermostat1"];
        assert_eq!(component["maxTemp"], 30);
        assert_eq!(component["targetTemperature"], 42);
        assert!(component.get("__t").is_none());
        assert_eq!(
            component["$metadata"]["targetTemperature"]["desiredValue"],
            42
        );
        assert!(view["$metadata"].get("thermostat1").is_none());
    }

    #[test]
    fn a_property_only_desired_shows_in_metadata_alone() {
        let twin = twin_with(json!({"rate": 2}), json!({}));
        let view = view("dev", &twin);
        assert!(view.get("rate").is_none());
        assert_eq!(view["$metadata"]["rate"]["desiredValue"], 2);
    }

    #[test]
    fn json_patch_becomes_a_desired_merge_patch() {
        let twin = twin_with(json!({"plain": {"a": 1}}), json!({}));
        let ops = json!([
            {"op": "add", "path": "/targetTemperature", "value": 40},
            {"op": "replace", "path": "/thermostat1/targetTemperature", "value": 35},
            {"op": "remove", "path": "/thermostat2/targetTemperature"},
            {"op": "add", "path": "/plain/b", "value": 2},
            {"op": "remove", "path": "/old"},
            {"op": "add", "path": "/a~1b", "value": true},
        ]);
        assert_eq!(
            desired_patch(&ops, &twin).unwrap(),
            json!({
                "targetTemperature": 40,
                "thermostat1": {"__t": "c", "targetTemperature": 35},
                "thermostat2": {"__t": "c", "targetTemperature": null},
                "plain": {"b": 2},
                "old": null,
                "a/b": true,
            })
        );
    }

    #[test]
    fn bad_patches_are_400004() {
        let twin = twin_with(json!({}), json!({}));
        let too_many: Vec<Value> = (0..101)
            .map(|i| json!({"op": "add", "path": format!("/p{i}"), "value": i}))
            .collect();
        for bad in [
            json!({"op": "add"}),
            json!([{"op": "move", "path": "/a", "from": "/b"}]),
            json!([{"op": "add", "path": "/a"}]),
            json!([{"op": "add", "path": "a", "value": 1}]),
            json!([{"op": "add", "path": "/", "value": 1}]),
            json!([{"op": "add", "path": "/a//b", "value": 1}]),
            json!([{"path": "/a", "value": 1}]),
            json!([{"op": "add", "path": 7, "value": 1}]),
            json!(too_many),
        ] {
            assert_eq!(
                desired_patch(&bad, &twin).unwrap_err().code,
                400004,
                "{bad}"
            );
        }
    }

    #[test]
    fn commands_are_methods_named_by_component() {
        assert_eq!(command_method_name(None, "reboot"), "reboot");
        assert_eq!(
            command_method_name(Some("thermostat1"), "getMaxMinReport"),
            "thermostat1*getMaxMinReport"
        );
    }
}
