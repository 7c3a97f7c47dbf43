//! Device identities in a hub's registry (protocol.md §9.2): id, authentication, status and
//! the initial twin DPS provisioned it with.

use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use super::twin::Twin;
use crate::auth::keys::SymmetricKey;
use crate::timefmt::utc_timestamp;

/// How a device proves its identity to the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    CertificateAuthority { provisioning_anchors: Vec<Vec<u8>> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DeviceStatus {
    Enabled,
    Disabled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub device_id: String,
    pub authentication: DeviceAuthentication,
    pub status: DeviceStatus,
    pub generation_id: String,
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
        match &self.authentication {
            DeviceAuthentication::Sas { primary, secondary } => vec![primary, secondary],
            _ => Vec::new(),
        }
    }

    /// The device in the service API's JSON shape (keys included, as the service API returns).
    pub fn to_json(&self, connected: bool) -> Value {
        let authentication = match &self.authentication {
            DeviceAuthentication::Sas { primary, secondary } => serde_json::json!({
                "type": "sas",
                "symmetricKey": { "primaryKey": primary.to_base64(), "secondaryKey": secondary.to_base64() },
                "x509Thumbprint": { "primaryThumbprint": null, "secondaryThumbprint": null },
            }),
            DeviceAuthentication::SelfSigned {
                primary_thumbprint,
                secondary_thumbprint,
            } => serde_json::json!({
                "type": "selfSigned",
                "symmetricKey": { "primaryKey": null, "secondaryKey": null },
                "x509Thumbprint": { "primaryThumbprint": primary_thumbprint, "secondaryThumbprint": secondary_thumbprint },
            }),
            DeviceAuthentication::CertificateAuthority { .. } => serde_json::json!({
                "type": "certificateAuthority",
                "symmetricKey": { "primaryKey": null, "secondaryKey": null },
                "x509Thumbprint": { "primaryThumbprint": null, "secondaryThumbprint": null },
            }),
        };
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
