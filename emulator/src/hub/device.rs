//! Device identities in a hub's registry (protocol.md §9.2): id, authentication, status and
//! the initial twin DPS provisioned it with.

use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::twin::Twin;
use crate::auth::keys::SymmetricKey;
use crate::timefmt::utc_timestamp;

/// How a device proves its identity to the hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum DeviceAuthentication {
    Sas {
        primary: SymmetricKey,
        secondary: SymmetricKey,
    },
    /// Matched by the thumbprint (SHA-1 or SHA-256, normalised hex) of the presented leaf.
    SelfSigned {
        primary_thumbprint: Option<String>,
        secondary_thumbprint: Option<String>,
    },
    /// A chain to a verified CA of the hub with subject CN = device id. Devices DPS
    /// provisioned through a CA also trust the CA DPS validated them against.
    CertificateAuthority {
        #[serde(with = "crate::serde_b64::list")]
        provisioning_anchors: Vec<Vec<u8>>,
    },
}

impl DeviceAuthentication {
    /// The service API's `authentication` object.
    pub fn to_json(&self) -> Value {
        let (kind, keys, thumbprints) = match self {
            DeviceAuthentication::Sas { primary, secondary } => (
                "sas",
                [Some(primary.to_base64()), Some(secondary.to_base64())],
                [None, None],
            ),
            DeviceAuthentication::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            } => (
                "selfSigned",
                [None, None],
                [primary_thumbprint.clone(), secondary_thumbprint.clone()],
            ),
            DeviceAuthentication::CertificateAuthority { .. } => {
                ("certificateAuthority", [None, None], [None, None])
            }
        };
        let [primary_key, secondary_key] = keys;
        let [primary_thumbprint, secondary_thumbprint] = thumbprints;
        serde_json::json!({
            "type": kind,
            "symmetricKey": { "primaryKey": primary_key, "secondaryKey": secondary_key },
            "x509Thumbprint": { "primaryThumbprint": primary_thumbprint, "secondaryThumbprint": secondary_thumbprint },
        })
    }

    /// The keys SAS tokens may be signed with (none for X.509 identities).
    pub fn sas_keys(&self) -> Vec<&SymmetricKey> {
        match self {
            DeviceAuthentication::Sas { primary, secondary } => vec![primary, secondary],
            _ => Vec::new(),
        }
    }

    /// The twin's `authenticationType`.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            DeviceAuthentication::Sas { .. } => "sas",
            DeviceAuthentication::SelfSigned { .. } => "selfSigned",
            DeviceAuthentication::CertificateAuthority { .. } => "certificateAuthority",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeviceStatus {
    Enabled,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    pub device_id: String,
    pub authentication: DeviceAuthentication,
    pub status: DeviceStatus,
    pub generation_id: Arc<str>,
    pub etag: String,
    pub created: SystemTime,
    /// `initialTwin` from the enrollment (`{"tags":…, "properties":{"desired":…}}`), applied
    /// when the device was created; twins themselves are served by later work.
    pub initial_twin: Option<Value>,
    /// The device twin, seeded from `initial_twin`.
    pub twin: Twin,
}

impl Device {
    /// The keys a device may sign SAS tokens with.
    pub fn sas_keys(&self) -> Vec<&SymmetricKey> {
        self.authentication.sas_keys()
    }

    /// The device in the service API's JSON shape (keys included, as the service API returns).
    pub fn to_json(&self, connected: bool) -> Value {
        let authentication = self.authentication.to_json();
        serde_json::json!({
            "deviceId": self.device_id,
            "generationId": self.generation_id,
            "etag": self.etag,
            "connectionState": if connected { "Connected" } else { "Disconnected" },
            "status": self.status,
            "statusReason": null,
            "createdDateTimeUtc": utc_timestamp(self.created),
            "cloudToDeviceMessageCount": 0,
            "authentication": authentication,
            "capabilities": { "iotEdge": false },
        })
    }
}
