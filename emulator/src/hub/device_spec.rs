//! The device JSON of the registry API, parsed once at the boundary (protocol.md §9.2): what a
//! caller may write about a device ([`DeviceSpec`]: id, status, authentication), and the
//! device id rule every way into a hub shares, DPS assignments included.

use serde::Deserialize;

use super::device::{DeviceAuthentication, DeviceStatus};
use super::error::HubError;
use crate::auth::keys::SymmetricKey;

/// Device ids are at most 128 characters (iot-hub-devguide-identity-registry.md).
pub(crate) const MAX_DEVICE_ID_CHARS: usize = 128;

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
pub(crate) fn validate_device_id(device_id: &str) -> Result<(), HubError> {
    match device_id_problem(device_id) {
        None => Ok(()),
        Some(problem) => Err(HubError::argument_invalid(problem)),
    }
}

/// Why `device_id` is not a valid device id, or `None` when it is.
pub(crate) fn device_id_problem(device_id: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
