//! The field rules of enrollments and enrollment groups (ids, hubs, allocation, initial twin,
//! free-form nesting, X.509 references, TPM registration ids), applied by the typed
//! conversions in [`super::enrollment`] that every way into DPS goes through (fixtures, the
//! service API, the library), so all of them accept and reject the same things. Errors carry
//! a JSON path relative to the enrollment object.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use sha2::{Digest, Sha512};

use super::model::AllocationPolicy;
use crate::auth::keys::SymmetricKey;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub path: String,
    pub reason: String,
}

impl Invalid {
    pub(crate) fn new(path: impl Into<String>, reason: impl Into<String>) -> Invalid {
        Invalid {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// What an enrollment may refer to: linked hubs and the DPS certificate store.
pub struct Links<'a> {
    pub hub_exists: &'a dyn Fn(&str) -> bool,
    pub ca_exists: &'a dyn Fn(&str) -> bool,
}

/// The twin devices are created with must be one the hub accepts (tags, desired properties,
/// key rules, depth and sizes).
pub(crate) fn initial_twin(initial: Option<&Value>) -> Result<(), Invalid> {
    match initial {
        None | Some(Value::Null) => Ok(()),
        Some(twin) => crate::hub::twin::validate_initial_twin(twin)
            .map_err(|e| Invalid::new("initialTwin", e.message)),
    }
}

/// Deepest nesting of objects and arrays in the free-form JSON DPS accepts: an enrollment's
/// unknown fields (kept and returned), webhook definitions and TPM blobs, and a device's
/// registration `payload`. They are otherwise unchecked; the bound keeps everything accepted
/// storable (the store takes 100).
pub(crate) const MAX_FREE_FORM_DEPTH: usize = 32;

/// Whether `value` nests objects and arrays at most `max` deep (iteratively: no recursion on
/// input).
pub(crate) fn nesting_within(value: &Value, max: usize) -> bool {
    let mut stack = vec![(value, 0usize)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match value {
            Value::Object(map) => Box::new(map.values()),
            Value::Array(items) => Box::new(items.iter()),
            _ => continue,
        };
        if depth + 1 > max {
            return false;
        }
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    true
}

/// Registration and group ids (protocol.md §4): 1–128 ASCII alphanumerics and `- . _ :`,
/// ending in an alphanumeric or `-` (so `.` and `..` are not ids). A valid registration id is
/// also a valid device id, which groups rely on: their devices are named after it.
pub(crate) fn registration_id(path: &str, id: &str) -> Result<(), Invalid> {
    at(path, registration_id_problem(id))
}

/// Why `id` is not a valid registration id, or `None` when it is.
pub(crate) fn registration_id_problem(id: &str) -> Option<String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':'))
        && id
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-');
    (!ok).then(|| {
        format!(
            "'{}' is not a valid id (1-128 characters: letters, digits, - . _ :, ending in a letter, digit or -)",
            id.escape_debug()
        )
    })
}

/// Registration ids of TPM enrollments: Azure documents them as lower-case alphanumerics and
/// `-`, up to 128 characters (the SDKs derive them from the EK in lower-case base32).
pub(crate) fn tpm_registration_id(path: &str, id: &str) -> Result<(), Invalid> {
    at(path, tpm_registration_id_problem(id))
}

/// Why `id` is not a valid registration id for a TPM enrollment, or `None` when it is.
pub(crate) fn tpm_registration_id_problem(id: &str) -> Option<String> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (!ok).then(|| {
        format!(
            "'{}' is not a valid registration id for a TPM enrollment (1-128 characters: lower-case letters, digits and -)",
            id.escape_debug()
        )
    })
}

/// IoT Hub device ids: the hub's own rule ([`crate::hub::registry::validate_device_id`]).
pub(crate) fn device_id(path: &str, id: &str) -> Result<(), Invalid> {
    at(path, crate::hub::registry::device_id_problem(id))
}

/// `problem`, if any, as an error at `path`.
fn at(path: &str, problem: Option<String>) -> Result<(), Invalid> {
    match problem {
        None => Ok(()),
        Some(problem) => Err(Invalid::new(path, problem)),
    }
}

/// A base64 symmetric key of 16–64 bytes.
pub(crate) fn symmetric_key(path: &str, key: &str) -> Result<SymmetricKey, Invalid> {
    SymmetricKey::from_base64(key)
        .map_err(|e| Invalid::new(path, format!("invalid symmetric key: {e}")))
}

/// `static` names exactly one hub; `custom` needs a webhook definition.
pub(crate) fn allocation(
    policy: Option<AllocationPolicy>,
    single: &Option<String>,
    list: &Option<Vec<String>>,
    custom: &Option<serde_json::Value>,
) -> Result<(), Invalid> {
    match policy {
        Some(AllocationPolicy::Static) => {
            let listed = list.as_ref().map_or(0, Vec::len);
            if listed == 1 || (listed == 0 && single.is_some()) {
                Ok(())
            } else {
                Err(Invalid::new(
                    "iotHubs",
                    "static allocation needs exactly one hub in iotHubs",
                ))
            }
        }
        Some(AllocationPolicy::Custom) => {
            let has_url = custom
                .as_ref()
                .and_then(|d| d.get("webhookUrl"))
                .and_then(|u| u.as_str())
                .is_some_and(|u| !u.is_empty());
            if has_url {
                Ok(())
            } else {
                Err(Invalid::new(
                    "customAllocationDefinition.webhookUrl",
                    "custom allocation needs a webhook URL",
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Every hub named is a linked hub. A path is rendered only for the hub refused: this runs
/// for every enrollment of a fixture.
pub(crate) fn hub_refs(
    single: &Option<String>,
    list: &Option<Vec<String>>,
    hub_exists: &dyn Fn(&str) -> bool,
) -> Result<(), Invalid> {
    let refused =
        |path: String, host: &str| Invalid::new(path, format!("hub '{host}' is not a linked hub"));
    if let Some(host) = single
        && !hub_exists(host)
    {
        return Err(refused("iotHubHostName".to_owned(), host));
    }
    for (i, host) in list.iter().flatten().enumerate() {
        if !hub_exists(host) {
            return Err(refused(format!("iotHubs[{i}]"), host));
        }
    }
    Ok(())
}

/// 64 bytes derived from the enrollment's identity: stable across runs, unique per slot.
pub(crate) fn deterministic_key(kind: &str, id: &str, slot: &str) -> String {
    let digest = Sha512::digest(format!("iotemu fixture key\n{kind}\n{id}\n{slot}").as_bytes());
    BASE64.encode(digest)
}

/// 64 random bytes from the OS generator (through uuid's v4, already a dependency).
pub(crate) fn random_key() -> String {
    let bytes: Vec<u8> = (0..4)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .collect();
    BASE64.encode(bytes)
}
