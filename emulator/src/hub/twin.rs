//! Device twins (iot-hub-devguide-device-twins.md; protocol.md §5.6, §9.3): tags, desired
//! and reported properties, each section with its own `$version`, changed by JSON merge
//! patches in which `null` deletes. The key and size rules are Azure's.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::error::HubError;
use crate::timefmt::utc_timestamp;

/// Each of desired and reported may hold 32 KB; tags 8 KB.
pub const MAX_SECTION_BYTES: usize = 32 * 1024;
pub const MAX_TAGS_BYTES: usize = 8 * 1024;
const MAX_DEPTH: usize = 10;
const MAX_KEY_BYTES: usize = 1024;
const MAX_STRING_BYTES: usize = 4 * 1024;

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
}

impl Twin {
    /// A new twin from an enrollment's `initialTwin` (`{"tags", "properties": {"desired"}}`).
    pub fn from_initial(initial: Option<&Value>) -> Twin {
        let object = |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
        let now = SystemTime::now();
        Twin {
            tags: object(initial.and_then(|t| t.get("tags"))),
            desired: object(initial.and_then(|t| t.pointer("/properties/desired"))),
            desired_version: 1,
            desired_updated: now,
            reported: Map::new(),
            reported_version: 1,
            reported_updated: now,
            version: 1,
            etag: new_etag(),
        }
    }

    /// The twin's data as an `initialTwin`, for carrying it to another hub.
    pub fn as_initial(&self) -> Value {
        json!({ "tags": self.tags, "properties": { "desired": self.desired } })
    }

    /// What a device GETs: only the properties, each with `$version`.
    pub fn device_view(&self) -> Value {
        json!({
            "desired": with_version(&self.desired, self.desired_version),
            "reported": with_version(&self.reported, self.reported_version),
        })
    }

    /// The service API's twin JSON.
    pub fn service_view(&self, device_id: &str, status: &str, connected: bool) -> Value {
        let section = |props: &Map<String, Value>, version: u64, updated: SystemTime| {
            let mut out = with_version(props, version);
            out["$metadata"] = json!({ "$lastUpdated": utc_timestamp(updated) });
            out
        };
        json!({
            "deviceId": device_id,
            "etag": self.etag,
            "deviceEtag": self.etag,
            "version": self.version,
            "status": status,
            "connectionState": if connected { "Connected" } else { "Disconnected" },
            "authenticationType": "sas",
            "tags": self.tags,
            "properties": {
                "desired": section(&self.desired, self.desired_version, self.desired_updated),
                "reported": section(&self.reported, self.reported_version, self.reported_updated),
            },
        })
    }

    /// A device's reported-properties patch; returns the new reported `$version`.
    pub fn patch_reported(&mut self, patch: &Value) -> Result<u64, HubError> {
        let patch = patch_object(patch, "reported properties")?;
        let mut next = self.reported.clone();
        merge(&mut next, patch);
        check_section(&next, MAX_SECTION_BYTES, "reported properties")?;
        self.reported = next;
        self.reported_version += 1;
        self.reported_updated = SystemTime::now();
        self.touch();
        Ok(self.reported_version)
    }

    /// A service desired-properties patch; returns what devices are sent (`$version` included).
    pub fn patch_desired(&mut self, patch: &Value) -> Result<Value, HubError> {
        let patch = patch_object(patch, "desired properties")?;
        let mut next = self.desired.clone();
        merge(&mut next, patch);
        check_section(&next, MAX_SECTION_BYTES, "desired properties")?;
        self.desired = next;
        self.desired_version += 1;
        self.desired_updated = SystemTime::now();
        self.touch();
        Ok(with_version(patch, self.desired_version))
    }

    /// A service tags patch.
    pub fn patch_tags(&mut self, patch: &Value) -> Result<(), HubError> {
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
        self.etag = new_etag();
    }
}

/// Applies a JSON merge patch: objects merge, `null` deletes, anything else replaces.
pub fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
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

/// Keys: no `.`, `$`, space or control characters, ≤ 1 KB; strings ≤ 4 KB; depth ≤ 10.
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
                "'{key}' is not a valid twin property name"
            )));
        }
        match value {
            Value::Object(inner) => check_keys(inner, depth + 1, what)?,
            Value::String(s) if s.len() > MAX_STRING_BYTES => {
                return Err(HubError::argument_invalid(format!(
                    "the value of '{key}' is over 4 KB"
                )));
            }
            _ => {}
        }
    }
    Ok(())
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

fn new_etag() -> String {
    let n = uuid::Uuid::new_v4().as_u128() as u64;
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, n.to_be_bytes())
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
