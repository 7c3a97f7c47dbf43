//! Device twins (iot-hub-devguide-device-twins.md; protocol.md §5.6, §9.3): tags, desired
//! and reported properties, each section with its own `$version`, changed by JSON merge
//! patches in which `null` deletes. The key and size rules are Azure's. What a device asks of
//! its own twin over any transport is [`requests`]; per-property `$metadata` is [`metadata`];
//! the key order the JSON is written in is [`order`].

pub(crate) mod digital;
pub(crate) mod metadata;
pub(crate) mod order;
pub(crate) mod requests;

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use self::metadata::{Metadata, Stamp};
use super::error::HubError;
use crate::etag;
use crate::timefmt::utc_timestamp;

/// Each of desired and reported may hold 32 KB; tags 8 KB.
pub(crate) const MAX_SECTION_BYTES: usize = 32 * 1024;
pub(crate) const MAX_TAGS_BYTES: usize = 8 * 1024;
const MAX_DEPTH: usize = 10;
const MAX_KEY_BYTES: usize = 1024;
const MAX_STRING_BYTES: usize = 4 * 1024;
/// Integers must be exact in an IEEE double with room to spare: ±2^52 (protocol.md §9.3).
const MAX_INTEGER: u64 = 4_503_599_627_370_496;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Twin {
    pub tags: Map<String, Value>,
    pub desired: Map<String, Value>,
    pub desired_version: u64,
    pub desired_updated: SystemTime,
    pub reported: Map<String, Value>,
    pub reported_version: u64,
    pub reported_updated: SystemTime,
    /// Changes with every update, for the service API's `version`.
    pub version: u64,
    pub etag: String,
    /// When and at which version each desired property last changed (saved twins from
    /// before it was kept load with none: every property then shows the section's stamp).
    #[serde(default)]
    pub desired_metadata: Metadata,
    /// When each reported property last changed.
    #[serde(default)]
    pub reported_metadata: Metadata,
    /// The IoT Plug and Play model the device or module announced (`model-id` at connect,
    /// `modelId` in its DPS registration), shown as the twin's `modelId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

impl Twin {
    /// A new twin from an enrollment's `initialTwin` (`{"tags", "properties": {"desired"}}`).
    pub(crate) fn from_initial(initial: Option<&Value>) -> Twin {
        let object = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
        let now = SystemTime::now();
        let desired = object(initial.and_then(|t| t.pointer("/properties/desired")));
        let mut desired_metadata = Metadata::default();
        desired_metadata.record(
            &desired,
            &Stamp {
                updated: utc_timestamp(now),
                version: Some(1),
            },
        );
        Twin {
            tags: object(initial.and_then(|t| t.get("tags"))),
            desired,
            desired_version: 1,
            desired_updated: now,
            reported: Map::new(),
            reported_version: 1,
            reported_updated: now,
            version: 1,
            etag: etag::twin(),
            desired_metadata,
            reported_metadata: Metadata::default(),
            model_id: None,
        }
    }

    /// The stamp of the desired section's last change.
    fn desired_stamp(&self) -> Stamp {
        Stamp {
            updated: utc_timestamp(self.desired_updated),
            version: Some(self.desired_version),
        }
    }

    /// The stamp of the reported section's last change (Azure keeps no version there).
    fn reported_stamp(&self) -> Stamp {
        Stamp {
            updated: utc_timestamp(self.reported_updated),
            version: None,
        }
    }

    /// The desired section's `$metadata`, as the service view shows it.
    pub(crate) fn desired_metadata_view(&self) -> Value {
        self.desired_metadata
            .view(&self.desired, &self.desired_stamp())
    }

    /// The reported section's `$metadata`, as the service view shows it.
    pub(crate) fn reported_metadata_view(&self) -> Value {
        self.reported_metadata
            .view(&self.reported, &self.reported_stamp())
    }

    /// Records the model a device announced; `false` when it was already the one stored.
    pub fn set_model_id(&mut self, model_id: &str) -> bool {
        if self.model_id.as_deref() == Some(model_id) {
            return false;
        }
        self.model_id = Some(model_id.to_owned());
        self.touch();
        true
    }

    /// The twin's data as an `initialTwin`, for carrying it to another hub.
    pub(crate) fn as_initial(&self) -> Value {
        json!({ "tags": self.tags, "properties": { "desired": self.desired } })
    }

    /// What a device GETs: only the properties, each with `$version` (and no `$metadata`, as
    /// IoT Hub answers a device). Write it with [`order::TwinJson`].
    pub(crate) fn device_view(&self) -> Value {
        json!({
            "desired": with_version(&self.desired, self.desired_version),
            "reported": with_version(&self.reported, self.reported_version),
        })
    }

    /// The service API's twin JSON: each section with its per-property `$metadata` and its
    /// `$version` (write it with [`order::TwinJson`] to put both last, as IoT Hub does).
    pub(crate) fn service_view(&self, device_id: &str, status: &str, connected: bool) -> Value {
        let section = |props: &Map<String, Value>, version: u64, meta: &Metadata, stamp: Stamp| {
            let mut out = with_version(props, version);
            out["$metadata"] = meta.view(props, &stamp);
            out
        };
        json!({
            "deviceId": device_id,
            "modelId": self.model_id.as_deref().unwrap_or_default(),
            "etag": self.etag,
            "deviceEtag": self.etag,
            "version": self.version,
            "status": status,
            "connectionState": if connected { "Connected" } else { "Disconnected" },
            "authenticationType": "sas",
            "tags": self.tags,
            "properties": {
                "desired": section(
                    &self.desired,
                    self.desired_version,
                    &self.desired_metadata,
                    self.desired_stamp(),
                ),
                "reported": section(
                    &self.reported,
                    self.reported_version,
                    &self.reported_metadata,
                    self.reported_stamp(),
                ),
            },
        })
    }

    /// A device's reported-properties patch; returns the new reported `$version`.
    pub(crate) fn patch_reported(&mut self, patch: &Value) -> Result<u64, HubError> {
        let patch = patch_object(patch, "reported properties")?;
        let mut next = self.reported.clone();
        merge(&mut next, patch);
        check_section(&next, MAX_SECTION_BYTES, "reported properties")?;
        self.reported = next;
        self.reported_version += 1;
        self.reported_updated = SystemTime::now();
        let stamp = self.reported_stamp();
        self.reported_metadata.record(patch, &stamp);
        self.touch();
        Ok(self.reported_version)
    }

    /// A service desired-properties patch; returns what devices are sent (`$version` included).
    pub(crate) fn patch_desired(&mut self, patch: &Value) -> Result<Value, HubError> {
        let patch = patch_object(patch, "desired properties")?;
        let mut next = self.desired.clone();
        merge(&mut next, patch);
        check_section(&next, MAX_SECTION_BYTES, "desired properties")?;
        self.desired = next;
        self.desired_version += 1;
        self.desired_updated = SystemTime::now();
        let stamp = self.desired_stamp();
        self.desired_metadata.record(patch, &stamp);
        self.touch();
        Ok(with_version(patch, self.desired_version))
    }

    /// A service tags patch.
    pub(crate) fn patch_tags(&mut self, patch: &Value) -> Result<(), HubError> {
        let patch = patch_object(patch, "tags")?;
        let mut next = self.tags.clone();
        merge(&mut next, patch);
        check_section(&next, MAX_TAGS_BYTES, "tags")?;
        self.tags = next;
        self.touch();
        Ok(())
    }

    fn touch(&mut self) {
        self.version += 1;
        self.etag = etag::twin();
    }
}

/// The longest model id kept; DTMIs are far shorter (DTDL allows 2048 characters).
const MAX_MODEL_ID_CHARS: usize = 2048;

/// Whether `id` is shaped like a DTMI, the only model ids kept: `dtmi:` then letters,
/// digits, `_`, `:` and `;` (the version).
pub(crate) fn is_model_id(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("dtmi:") else {
        return false;
    };
    !rest.is_empty()
        && id.chars().count() <= MAX_MODEL_ID_CHARS
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | ';'))
}

/// Applies a JSON merge patch: objects merge, `null` deletes, anything else replaces.
pub(crate) fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(existing) = slot {
                    merge(existing, inner);
                    if existing.is_empty() && inner.is_empty() {
                        // `{}` in a patch keeps an (empty) object, as a merge patch does.
                    }
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

fn with_version(props: &Map<String, Value>, version: u64) -> Value {
    let mut out = props.clone();
    out.insert("$version".into(), json!(version));
    Value::Object(out)
}

fn patch_object<'a>(patch: &'a Value, what: &str) -> Result<&'a Map<String, Value>, HubError> {
    let object = patch.as_object().ok_or_else(|| {
        HubError::argument_invalid(format!("a {what} patch must be a JSON object"))
    })?;
    check_keys(object, 1, what)?;
    Ok(object)
}

/// Checks a service twin update or replacement (`PATCH`/`PUT /twins/{id}`) before anything
/// is changed: the body is an object, `tags`, `properties` and `properties.desired` are
/// objects when present (`properties.reported` too, though the service cannot write it), and
/// the sections follow the key, value and depth rules. Other members (`deviceId`, `etag`, …,
/// as SDKs send a whole twin back) are ignored.
pub(crate) fn validate_service_update(body: &Value) -> Result<(), HubError> {
    let body = body
        .as_object()
        .ok_or_else(|| HubError::argument_invalid("the twin must be a JSON object"))?;
    if let Some(tags) = body.get("tags") {
        check_keys(section_object(tags, "tags")?, 1, "tags")?;
    }
    if let Some(properties) = body.get("properties") {
        let properties = section_object(properties, "properties")?;
        if let Some(desired) = properties.get("desired") {
            let desired = section_object(desired, "properties.desired")?;
            check_keys(desired, 1, "desired properties")?;
        }
        if let Some(reported) = properties.get("reported") {
            section_object(reported, "properties.reported")?;
        }
    }
    Ok(())
}

/// Checks an enrollment's `initialTwin` (`{"tags": …, "properties": {"desired": …}}`) by the
/// same rules, sizes included, so that a device is never created with a twin the hub would
/// refuse.
pub(crate) fn validate_initial_twin(initial: &Value) -> Result<(), HubError> {
    validate_service_update(initial)?;
    if let Some(Value::Object(tags)) = initial.get("tags") {
        check_section(tags, MAX_TAGS_BYTES, "tags")?;
    }
    if let Some(Value::Object(desired)) = initial.pointer("/properties/desired") {
        check_section(desired, MAX_SECTION_BYTES, "desired properties")?;
    }
    Ok(())
}

fn section_object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, HubError> {
    value
        .as_object()
        .ok_or_else(|| HubError::argument_invalid(format!("{what} must be a JSON object")))
}

/// Keys: no `.`, `$`, space or control characters, ≤ 1 KB; strings ≤ 4 KB; integers within
/// ±2^52; objects and arrays nest at most 10 deep (the section's own members are level 1).
fn check_keys(object: &Map<String, Value>, depth: usize, what: &str) -> Result<(), HubError> {
    if depth > MAX_DEPTH {
        return Err(HubError::argument_invalid(format!(
            "{what} nest deeper than {MAX_DEPTH} levels"
        )));
    }
    for (key, value) in object {
        let bad = key.is_empty()
            || key.len() > MAX_KEY_BYTES
            || key
                .chars()
                .any(|c| c == '.' || c == '$' || c == ' ' || c.is_control());
        if bad {
            return Err(HubError::argument_invalid(format!(
                "'{}' is not a valid twin property name",
                key.escape_debug()
            )));
        }
        check_value(key, value, depth, what)?;
    }
    Ok(())
}

/// One value found under `key` at `depth`; containers go one level deeper.
fn check_value(key: &str, value: &Value, depth: usize, what: &str) -> Result<(), HubError> {
    match value {
        Value::Object(inner) => check_keys(inner, depth + 1, what),
        Value::Array(items) => {
            if depth + 1 > MAX_DEPTH {
                return Err(HubError::argument_invalid(format!(
                    "{what} nest deeper than {MAX_DEPTH} levels"
                )));
            }
            items
                .iter()
                .try_for_each(|item| check_value(key, item, depth + 1, what))
        }
        Value::String(s) if s.len() > MAX_STRING_BYTES => Err(HubError::argument_invalid(format!(
            "the value of '{}' is over 4 KB",
            key.escape_debug()
        ))),
        Value::Number(n) => {
            let too_big = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => i.unsigned_abs() > MAX_INTEGER,
                (None, Some(u)) => u > MAX_INTEGER,
                // Non-integers are doubles already.
                (None, None) => false,
            };
            if too_big {
                Err(HubError::argument_invalid(format!(
                    "the value of '{}' is an integer outside ±{MAX_INTEGER}",
                    key.escape_debug()
                )))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

fn check_section(section: &Map<String, Value>, limit: usize, what: &str) -> Result<(), HubError> {
    let size = serde_json::to_vec(section)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > limit {
        return Err(HubError::argument_invalid(format!(
            "{what} would be {size} bytes; the limit is {limit}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_twin_seeds_tags_and_desired_with_versions() {
        let twin = Twin::from_initial(Some(
            &json!({"tags": {"site": "a"}, "properties": {"desired": {"interval": 5}}}),
        ));
        assert_eq!(
            twin.device_view(),
            json!({"desired": {"interval": 5, "$version": 1}, "reported": {"$version": 1}})
        );
        assert_eq!(twin.tags, json!({"site": "a"}).as_object().unwrap().clone());
    }

    #[test]
    fn reported_patches_merge_delete_and_bump_the_version() {
        let mut twin = Twin::from_initial(None);
        assert_eq!(
            twin.patch_reported(&json!({"fw": "1.0", "net": {"ip": "1.2.3.4", "ssid": "x"}}))
                .unwrap(),
            2
        );
        assert_eq!(
            twin.patch_reported(&json!({"net": {"ssid": null}, "fw": null}))
                .unwrap(),
            3
        );
        assert_eq!(
            twin.device_view()["reported"],
            json!({"net": {"ip": "1.2.3.4"}, "$version": 3})
        );
    }

    #[test]
    fn desired_patch_carries_its_version_for_devices() {
        let mut twin = Twin::from_initial(None);
        let sent = twin.patch_desired(&json!({"interval": 10})).unwrap();
        assert_eq!(sent, json!({"interval": 10, "$version": 2}));
        assert_eq!(twin.device_view()["desired"]["$version"], 2);
    }

    #[test]
    fn service_updates_must_be_objects_with_object_sections() {
        for bad in [
            json!(null),
            json!([]),
            json!("x"),
            json!(7),
            json!({"tags": []}),
            json!({"tags": null}),
            json!({"tags": "x"}),
            json!({"properties": 1}),
            json!({"properties": {"desired": [1]}}),
            json!({"properties": {"desired": null}}),
            json!({"properties": {"reported": "x"}}),
            json!({"tags": {"a.b": 1}}),
            json!({"properties": {"desired": {"$x": 1}}}),
        ] {
            assert_eq!(
                validate_service_update(&bad).unwrap_err().code,
                400004,
                "{bad}"
            );
        }
        for good in [
            json!({}),
            json!({"deviceId": "d", "etag": "AAAA", "tags": {"a": 1}}),
            json!({"properties": {"desired": {"x": [1, {"y": 2}]}}}),
        ] {
            validate_service_update(&good).unwrap();
        }
    }

    #[test]
    fn depth_counts_objects_and_arrays_to_ten() {
        let nested = |levels: usize, container: fn(Value) -> Value| {
            let mut value = json!(1);
            for _ in 0..levels {
                value = container(value);
            }
            value
        };
        let object = |v| json!({ "k": v });
        let array = |v| json!([v]);
        // The section's own members are level 1, so 10 levels of containers below the
        // section is the most.
        let mut twin = Twin::from_initial(None);
        twin.patch_reported(&nested(10, object)).unwrap();
        twin.patch_reported(&json!({ "a": nested(9, array) }))
            .unwrap();
        for bad in [nested(11, object), json!({ "a": nested(10, array) })] {
            assert_eq!(twin.patch_reported(&bad).unwrap_err().code, 400004);
        }
        // Keys inside arrays follow the rules too.
        assert!(twin.patch_reported(&json!({"a": [{"b.c": 1}]})).is_err());
    }

    #[test]
    fn integers_stay_within_two_to_the_52() {
        let mut twin = Twin::from_initial(None);
        twin.patch_reported(&json!({"max": 4_503_599_627_370_496u64, "min": -4_503_599_627_370_496i64, "f": 1.5e300}))
            .unwrap();
        for bad in [
            json!({"n": 4_503_599_627_370_497u64}),
            json!({"n": -4_503_599_627_370_497i64}),
            json!({"n": u64::MAX}),
        ] {
            assert!(twin.patch_reported(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn initial_twins_are_checked_like_updates_with_sizes() {
        validate_initial_twin(&json!({"tags": {"a": 1}, "properties": {"desired": {"b": 2}}}))
            .unwrap();
        let big_tags: Map<String, Value> = (0..3)
            .map(|i| (format!("t{i}"), json!("x".repeat(4000))))
            .collect();
        assert!(validate_initial_twin(&json!({ "tags": big_tags })).is_err());
        assert!(validate_initial_twin(&json!({"properties": {"desired": []}})).is_err());
    }

    #[test]
    fn bad_patches_change_nothing() {
        let mut twin = Twin::from_initial(None);
        let before = twin.clone();
        for bad in [
            json!([1, 2]),
            json!({"a.b": 1}),
            json!({"$x": 1}),
            json!({"with space": 1}),
            json!({"big": "x".repeat(5000)}),
            json!({"a":{"b":{"c":{"d":{"e":{"f":{"g":{"h":{"i":{"j":{"k":1}}}}}}}}}}}),
        ] {
            assert_eq!(twin.patch_reported(&bad).unwrap_err().code, 400004, "{bad}");
        }
        let mut big = Map::new();
        for i in 0..20 {
            big.insert(format!("k{i}"), json!("y".repeat(2000)));
        }
        assert!(
            twin.patch_reported(&Value::Object(big)).is_err(),
            "over 32 KB"
        );
        assert_eq!(twin, before);
    }
}
