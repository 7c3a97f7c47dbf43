//! The hub's device registry as the service API manages it (protocol.md §9.1, §9.2, §9.4):
//! create, read, list, update and delete device identities, with ETags guarding writes.
//! Disabling or deleting a device also ends its live connection, because IoT Hub stops
//! serving an identity as soon as it is no longer allowed to connect.

use std::time::SystemTime;

use dashmap::mapref::entry::Entry;
use serde::Deserialize;
use serde_json::Value;

use super::device::{Device, DeviceAuthentication, DeviceStatus};
use super::error::HubError;
use super::event_hubs::notifications::Lifecycle;
use super::twin::Twin;
use super::{Hub, IdentityRef, new_generation_id};
use crate::auth::keys::SymmetricKey;
use crate::etag;
use crate::pending::Pending;

/// Azure caps `GET /devices?top=` at 1000 devices.
pub const MAX_LIST_DEVICES: usize = 1000;

/// Device ids are at most 128 characters (iot-hub-devguide-identity-registry.md).
pub const MAX_DEVICE_ID_CHARS: usize = 128;

/// What a caller asks the registry to store: the writable part of the device JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceSpec {
    pub device_id: String,
    pub status: DeviceStatus,
    pub authentication: AuthenticationSpec,
}

/// Requested credentials; SAS keys left out are generated when stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthenticationSpec {
    Sas {
        primary: Option<SymmetricKey>,
        secondary: Option<SymmetricKey>,
    },
    SelfSigned {
        primary_thumbprint: Option<String>,
        secondary_thumbprint: Option<String>,
    },
    CertificateAuthority,
}

/// The device JSON as callers send it; unknown and read-only fields are ignored, as Azure does.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceBody {
    device_id: Option<String>,
    status: Option<String>,
    authentication: Option<AuthenticationBody>,
    capabilities: Option<CapabilitiesBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuthenticationBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    symmetric_key: Option<SymmetricKeyBody>,
    x509_thumbprint: Option<ThumbprintBody>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SymmetricKeyBody {
    primary_key: Option<String>,
    secondary_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ThumbprintBody {
    primary_thumbprint: Option<String>,
    secondary_thumbprint: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CapabilitiesBody {
    iot_edge: Option<bool>,
}

impl DeviceSpec {
    /// Reads the device JSON sent for `path_id`; the body's `deviceId`, when present, must
    /// name the same device, because the path is what the caller's If-Match referred to.
    pub fn from_json(path_id: &str, body: &[u8]) -> Result<DeviceSpec, HubError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let body: DeviceBody = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            HubError::argument_invalid(format!("invalid device at '{}': {}", e.path(), e.inner()))
        })?;
        // One JSON value and nothing after it: `{} {}` is not a device.
        de.end().map_err(|e| {
            HubError::argument_invalid(format!("unexpected data after the device JSON: {e}"))
        })?;
        let device_id = match body.device_id {
            Some(id) if id != path_id => {
                return Err(HubError::argument_invalid(format!(
                    "the body's deviceId '{id}' does not match the path's '{path_id}'"
                )));
            }
            _ => path_id.to_owned(),
        };
        let status = match body
            .status
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("enabled") => DeviceStatus::Enabled,
            Some("disabled") => DeviceStatus::Disabled,
            Some(other) => {
                return Err(HubError::argument_invalid(format!(
                    "status '{other}' is neither 'enabled' nor 'disabled'"
                )));
            }
        };
        if body.capabilities.and_then(|c| c.iot_edge).unwrap_or(false) {
            // Accepting it would report an edge device that iotemu cannot behave like.
            return Err(HubError::not_implemented(
                "IoT Edge devices (capabilities.iotEdge)",
            ));
        }
        let authentication = authentication_spec(body.authentication)?;
        Ok(DeviceSpec {
            device_id,
            status,
            authentication,
        })
    }
}

pub(super) fn authentication_spec(
    body: Option<AuthenticationBody>,
) -> Result<AuthenticationSpec, HubError> {
    let Some(body) = body else {
        return Ok(AuthenticationSpec::Sas {
            primary: None,
            secondary: None,
        });
    };
    match body.kind.as_deref().unwrap_or("sas") {
        "sas" => {
            let keys = body.symmetric_key;
            let key = |text: Option<&String>, slot: &str| {
                text.filter(|t| !t.is_empty())
                    .map(|t| {
                        SymmetricKey::from_base64(t).map_err(|e| {
                            HubError::argument_invalid(format!("symmetricKey.{slot} is {e}"))
                        })
                    })
                    .transpose()
            };
            Ok(AuthenticationSpec::Sas {
                primary: key(
                    keys.as_ref().and_then(|k| k.primary_key.as_ref()),
                    "primaryKey",
                )?,
                secondary: key(
                    keys.as_ref().and_then(|k| k.secondary_key.as_ref()),
                    "secondaryKey",
                )?,
            })
        }
        "selfSigned" => {
            let thumbprints = body.x509_thumbprint;
            let thumbprint = |t: Option<&String>| -> Result<Option<String>, HubError> {
                match t.map(|t| t.trim()).filter(|t| !t.is_empty()) {
                    None => Ok(None),
                    Some(t) if is_thumbprint(t) => Ok(Some(t.to_owned())),
                    Some(t) => Err(HubError::argument_invalid(format!(
                        "'{t}' is not a SHA-1 or SHA-256 thumbprint in hex"
                    ))),
                }
            };
            let primary_thumbprint = thumbprint(
                thumbprints
                    .as_ref()
                    .and_then(|t| t.primary_thumbprint.as_ref()),
            )?;
            let secondary_thumbprint = thumbprint(
                thumbprints
                    .as_ref()
                    .and_then(|t| t.secondary_thumbprint.as_ref()),
            )?;
            if primary_thumbprint.is_none() && secondary_thumbprint.is_none() {
                return Err(HubError::argument_invalid(
                    "a selfSigned device needs x509Thumbprint.primaryThumbprint or secondaryThumbprint",
                ));
            }
            Ok(AuthenticationSpec::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            })
        }
        "certificateAuthority" => Ok(AuthenticationSpec::CertificateAuthority),
        "none" => Err(HubError::not_implemented("authentication type 'none'")),
        other => Err(HubError::argument_invalid(format!(
            "authentication type '{other}' is not one of sas, selfSigned, certificateAuthority, none"
        ))),
    }
}

/// 40 (SHA-1) or 64 (SHA-256) hex digits, colons allowed between bytes as tools print them.
fn is_thumbprint(text: &str) -> bool {
    let hex: Vec<char> = text.chars().filter(|c| *c != ':').collect();
    matches!(hex.len(), 40 | 64) && hex.iter().all(char::is_ascii_hexdigit)
}

impl AuthenticationSpec {
    /// The credentials to store; `current` keeps a device's keys when an update leaves them
    /// out, so a status-only update does not lock the device out.
    pub(super) fn resolve(self, current: Option<&DeviceAuthentication>) -> DeviceAuthentication {
        match self {
            AuthenticationSpec::Sas { primary, secondary } => {
                let (old_primary, old_secondary) = match current {
                    Some(DeviceAuthentication::Sas { primary, secondary }) => {
                        (Some(primary.clone()), Some(secondary.clone()))
                    }
                    _ => (None, None),
                };
                DeviceAuthentication::Sas {
                    primary: primary.or(old_primary).unwrap_or_else(random_key),
                    secondary: secondary.or(old_secondary).unwrap_or_else(random_key),
                }
            }
            AuthenticationSpec::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            } => DeviceAuthentication::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            },
            AuthenticationSpec::CertificateAuthority => match current {
                // Keep the anchors DPS provisioned the device with.
                Some(existing @ DeviceAuthentication::CertificateAuthority { .. }) => {
                    existing.clone()
                }
                _ => DeviceAuthentication::CertificateAuthority {
                    provisioning_anchors: Vec::new(),
                },
            },
        }
    }
}

/// 32 random bytes from the OS generator (through uuid's v4), the size IoT Hub generates.
fn random_key() -> SymmetricKey {
    use base64::Engine as _;
    let bytes: Vec<u8> = (0..2)
        .flat_map(|_| uuid::Uuid::new_v4().into_bytes())
        .collect();
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    // 32 bytes is within the accepted 16–64, so this cannot fail.
    SymmetricKey::from_base64(&text).unwrap_or_else(|_| unreachable!("32-byte key rejected"))
}

/// Device ids: 1–128 ASCII alphanumerics and `- . % _ * ? ! ( ) , : = @ $ '`, and not `.` or
/// `..` (they would name a path segment, not a device, in every REST URL). The one rule for
/// every way an id enters a hub, the DPS assigning devices included.
pub fn validate_device_id(device_id: &str) -> Result<(), HubError> {
    match device_id_problem(device_id) {
        None => Ok(()),
        Some(problem) => Err(HubError::argument_invalid(problem)),
    }
}

/// Why `device_id` is not a valid device id, or `None` when it is.
pub fn device_id_problem(device_id: &str) -> Option<String> {
    const ALLOWED: &str = "-.%_*?!(),:=@$'";
    let length = device_id.chars().count();
    if length == 0 || length > MAX_DEVICE_ID_CHARS {
        return Some(format!(
            "device id must be 1 to {MAX_DEVICE_ID_CHARS} characters, not {length}"
        ));
    }
    if let Some(bad) = device_id
        .chars()
        .find(|c| !c.is_ascii_alphanumeric() && !ALLOWED.contains(*c))
    {
        return Some(format!(
            "device id '{}' contains {bad:?}; allowed are ASCII letters, digits and {ALLOWED}",
            device_id.escape_debug()
        ));
    }
    if device_id == "." || device_id == ".." {
        return Some(format!("'{device_id}' is not a valid device id"));
    }
    None
}

impl Hub {
    /// `PUT /devices/{id}` without If-Match: a new device, 409001 if the id is taken.
    pub fn create_device(&self, spec: DeviceSpec) -> Result<Pending<'_, Device>, HubError> {
        validate_device_id(&spec.device_id)?;
        match self.devices.entry(spec.device_id.clone()) {
            Entry::Occupied(_) => Err(HubError::device_already_exists(&spec.device_id)),
            Entry::Vacant(vacant) => {
                let device = Device {
                    authentication: spec.authentication.resolve(None),
                    status: spec.status,
                    generation_id: new_generation_id(),
                    etag: etag::identity(),
                    created: SystemTime::now(),
                    twin: Twin::from_initial(None),
                    initial_twin: None,
                    device_id: spec.device_id,
                };
                let pending = self.submit_device(&device.device_id, None, Some(&device))?;
                vacant.insert(device.clone());
                let (id, twin) = (device.device_id.clone(), device.twin.clone());
                Ok(pending
                    .on_stored(move || {
                        self.emit_lifecycle(IdentityRef::device(&id), Lifecycle::Created, &twin)
                    })
                    .map(|()| device))
            }
        }
    }

    /// `PUT /devices/{id}` with If-Match: replaces status and credentials of an existing
    /// device (404001 if absent, 412001 on an ETag mismatch). The twin and generation id
    /// survive. Disabling drops the device's connection.
    pub fn update_device(
        &self,
        device_id: &str,
        spec: DeviceSpec,
        if_match: &str,
    ) -> Result<Pending<'_, Device>, HubError> {
        validate_device_id(device_id)?;
        if spec.device_id != device_id {
            return Err(HubError::argument_invalid(format!(
                "the device is '{}', not '{device_id}'",
                spec.device_id
            )));
        }
        let (updated, pending) = {
            let mut stored = self
                .devices
                .get_mut(device_id)
                .ok_or_else(|| HubError::device_not_found(device_id))?;
            if !etag::matches(if_match, Some(&stored.etag)) {
                return Err(HubError::device_etag_mismatch(device_id));
            }
            let mut device = stored.clone();
            device.authentication = spec.authentication.resolve(Some(&device.authentication));
            device.status = spec.status;
            device.etag = etag::identity();
            let pending = self.submit_device(device_id, Some(stored.clone()), Some(&device))?;
            *stored = device.clone();
            (device, pending)
        };
        if updated.status == DeviceStatus::Disabled {
            self.connections.disconnect(device_id);
            self.disconnect_modules_of(device_id);
        }
        Ok(pending.map(|()| updated))
    }

    /// `GET /devices/{id}`.
    pub fn get_device(&self, device_id: &str) -> Result<Device, HubError> {
        self.device(device_id)
            .ok_or_else(|| HubError::device_not_found(device_id))
    }

    /// `GET /devices?top=N`: up to `top` devices (at most 1000) ordered by id, so paging
    /// callers see a stable order.
    pub fn list_devices(&self, top: Option<usize>) -> Vec<Device> {
        let top = top.unwrap_or(MAX_LIST_DEVICES).min(MAX_LIST_DEVICES);
        let mut devices = self.devices();
        devices.truncate(top);
        devices
    }

    /// `DELETE /devices/{id}` (If-Match defaults to `*`): removes the device with its twin,
    /// its modules and its pending cloud-to-device messages, and drops its connections.
    pub fn delete_device(
        &self,
        device_id: &str,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, ()>, HubError> {
        let if_match = if_match.unwrap_or("*");
        // Read before taking the device's entry: no other map is locked while it is held.
        let modules = self.list_modules(device_id);
        let c2d = self.c2d.get(device_id).map(|q| q.clone());
        let (pending, removed) = match self.devices.entry(device_id.to_owned()) {
            Entry::Vacant(_) => return Err(HubError::device_not_found(device_id)),
            Entry::Occupied(stored) => {
                if !etag::matches(if_match, Some(&stored.get().etag)) {
                    return Err(HubError::device_etag_mismatch(device_id));
                }
                let pending =
                    self.submit_device_removal(stored.get().clone(), modules.clone(), c2d)?;
                (pending, stored.remove())
            }
        };
        self.connections.disconnect(device_id);
        self.remove_modules_of(device_id);
        // A device deleted is gone with its pending cloud-to-device messages.
        self.c2d.remove(device_id);
        self.persistent_c2d.remove(device_id);
        let device_id = device_id.to_owned();
        Ok(pending.on_stored(move || {
            // The device's modules go with it, each reported like a module deletion.
            for module in &modules {
                self.emit_lifecycle(
                    IdentityRef::module(&device_id, &module.module_id),
                    Lifecycle::Deleted,
                    &module.twin,
                );
            }
            self.emit_lifecycle(
                IdentityRef::device(&device_id),
                Lifecycle::Deleted,
                &removed.twin,
            );
        }))
    }

    /// A device in the service API's JSON shape, with its current connection state.
    pub fn device_json(&self, device: &Device) -> Value {
        device.to_json(self.connections.is_connected(&device.device_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pending::WaitStored;
    use std::time::Duration;

    fn hub() -> Hub {
        Hub::new("hub.example", Vec::new(), 10)
    }

    fn sas_spec(id: &str) -> DeviceSpec {
        DeviceSpec {
            device_id: id.to_owned(),
            status: DeviceStatus::Enabled,
            authentication: AuthenticationSpec::Sas {
                primary: None,
                secondary: None,
            },
        }
    }

    #[test]
    fn create_generates_distinct_32_byte_keys_and_refuses_a_second_create() {
        let hub = hub();
        let device = hub.create_device(sas_spec("dev-1")).wait_stored().unwrap();
        let keys = device.sas_keys();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].as_bytes().len(), 32);
        assert_ne!(keys[0], keys[1]);
        let again = hub
            .create_device(sas_spec("dev-1"))
            .wait_stored()
            .unwrap_err();
        assert_eq!((again.code, again.name), (409001, "DeviceAlreadyExists"));
    }

    #[test]
    fn update_checks_the_etag_and_keeps_keys_left_out() {
        let hub = hub();
        let created = hub.create_device(sas_spec("dev-2")).wait_stored().unwrap();
        let mut disable = sas_spec("dev-2");
        disable.status = DeviceStatus::Disabled;
        let stale = hub
            .update_device("dev-2", disable.clone(), "\"stale\"")
            .wait_stored()
            .unwrap_err();
        assert_eq!(stale.code, 412001);
        let updated = hub
            .update_device("dev-2", disable.clone(), &format!("\"{}\"", created.etag))
            .wait_stored()
            .unwrap();
        assert_eq!(updated.status, DeviceStatus::Disabled);
        assert_ne!(updated.etag, created.etag);
        assert_eq!(updated.authentication, created.authentication);
        assert_eq!(updated.generation_id, created.generation_id);
        let missing = hub
            .update_device("nobody", sas_spec("nobody"), "*")
            .wait_stored();
        assert_eq!(missing.unwrap_err().code, 404001);
    }

    #[tokio::test]
    async fn disabling_and_deleting_drop_the_connection() {
        let hub = hub();
        let created = hub.create_device(sas_spec("dev-3")).wait_stored().unwrap();
        let lease = hub.connections().attach("dev-3");
        let mut disable = sas_spec("dev-3");
        disable.status = DeviceStatus::Disabled;
        hub.update_device("dev-3", disable, &created.etag)
            .wait_stored()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), lease.kicked.notified())
            .await
            .expect("disabled device is kicked");
        assert!(!hub.connections().is_connected("dev-3"));

        let lease = hub.connections().attach("dev-3");
        assert_eq!(
            hub.delete_device("dev-3", Some("\"wrong\""))
                .wait_stored()
                .unwrap_err()
                .code,
            412001
        );
        hub.delete_device("dev-3", None).wait_stored().unwrap();
        tokio::time::timeout(Duration::from_secs(1), lease.kicked.notified())
            .await
            .expect("deleted device is kicked");
        assert_eq!(hub.get_device("dev-3").unwrap_err().code, 404001);
        assert_eq!(
            hub.delete_device("dev-3", None)
                .wait_stored()
                .unwrap_err()
                .code,
            404001
        );
    }

    #[test]
    fn list_is_ordered_and_capped() {
        let hub = hub();
        for id in ["c", "a", "b"] {
            hub.create_device(sas_spec(id)).wait_stored().unwrap();
        }
        let ids: Vec<String> = hub
            .list_devices(Some(2))
            .into_iter()
            .map(|d| d.device_id)
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(hub.list_devices(None).len(), 3);
    }

    #[test]
    fn device_ids_follow_azure_rules() {
        for good in ["a", "dev-1.x_y:z=@$'(!)*?,%", &"x".repeat(128)] {
            assert!(validate_device_id(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a b", "é", "a#b", &"x".repeat(129)] {
            assert_eq!(validate_device_id(bad).unwrap_err().code, 400004, "{bad}");
        }
        assert_eq!(
            hub()
                .create_device(sas_spec("a b"))
                .wait_stored()
                .unwrap_err()
                .code,
            400004
        );
    }

    #[test]
    fn parses_the_device_json_the_sdks_send() {
        let sas = DeviceSpec::from_json(
            "dev-1",
            br#"{"deviceId":"dev-1","status":"disabled","authentication":{"type":"sas",
                "symmetricKey":{"primaryKey":"m3KXjFJcrlf/7AzVtsFylbokniqdr2n96hQepP6P/GU=","secondaryKey":null}},
                "capabilities":{"iotEdge":false},"etag":"x","connectionState":"Disconnected"}"#,
        )
        .unwrap();
        assert_eq!(sas.status, DeviceStatus::Disabled);
        assert!(matches!(
            sas.authentication,
            AuthenticationSpec::Sas {
                primary: Some(_),
                secondary: None
            }
        ));
        let x509 = DeviceSpec::from_json(
            "dev-2",
            br#"{"deviceId":"dev-2","authentication":{"type":"selfSigned","x509Thumbprint":
                {"primaryThumbprint":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","secondaryThumbprint":null}}}"#,
        )
        .unwrap();
        assert_eq!(x509.status, DeviceStatus::Enabled);
        assert!(matches!(
            x509.authentication,
            AuthenticationSpec::SelfSigned {
                primary_thumbprint: Some(_),
                secondary_thumbprint: None
            }
        ));
        let ca = DeviceSpec::from_json(
            "dev-3",
            br#"{"deviceId":"dev-3","authentication":{"type":"certificateAuthority"}}"#,
        )
        .unwrap();
        assert_eq!(ca.authentication, AuthenticationSpec::CertificateAuthority);

        for (path, body) in [
            ("dev-4", &br#"{"deviceId":"other"}"#[..]),
            ("dev-4", br#"{"status":"sleepy"}"#),
            (
                "dev-4",
                br#"{"authentication":{"type":"sas","symmetricKey":{"primaryKey":"!!"}}}"#,
            ),
            ("dev-4", br#"{"authentication":{"type":"selfSigned"}}"#),
            ("dev-4", br#"{"authentication":{"type":"tpm"}}"#),
            ("dev-4", b"not json"),
        ] {
            let error = DeviceSpec::from_json(path, body).unwrap_err();
            assert_eq!(error.code, 400004, "{}", String::from_utf8_lossy(body));
        }
    }
}
