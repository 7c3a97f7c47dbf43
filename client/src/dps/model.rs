//! JSON bodies of DPS responses (spec/protocol.md §2.5, `RegistrationOperationStatus` and
//! `DeviceRegistrationResult` in the DPS device swagger).
//!
//! Field names are camelCase on the wire; unknown fields (`symmetricKey`, `tpm`, `trackingId`,
//! …) are ignored so that newer service versions do not break us. `x509` is kept, as raw JSON,
//! because it tells an X.509 device which enrollment group and certificate DPS matched.

use serde::{Deserialize, Serialize};

/// The outcome of a successful registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationResult {
    /// Opaque id of the registration operation.
    pub operation_id: String,
    /// `assigned` for a successful registration.
    pub status: String,
    /// Where the device was assigned and under which id.
    pub registration_state: RegistrationState,
}

/// The device registration record (`registrationState`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationState {
    #[serde(default)]
    pub registration_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Host name of the IoT hub the device was assigned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_hub: Option<String>,
    /// e.g. `initialAssignment`, `deviceDataMigrated`, `deviceDataReset`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Payload returned by a custom allocation webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// Azure's 6-digit error code when the registration failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The X.509 attestation details (`certificateInfo`, `enrollmentGroupId`,
    /// `signingCertificateInfo`), as sent; `{}` for an individual enrollment. Kept as JSON
    /// because its shape varies between service versions and nothing here interprets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<serde_json::Value>,
}

/// A 2xx response body; `registrationState` is absent in the first `assigning` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OperationStatus {
    #[serde(default)]
    pub operation_id: String,
    pub status: String,
    #[serde(default)]
    pub registration_state: Option<RegistrationState>,
}

/// The register request body. `payload` is omitted when unset, as Node and the C SDKs do.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RegisterRequest<'a> {
    pub registration_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<&'a serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_assigned_body_ignoring_unknown_fields() {
        let body = r#"{"operationId":"4.d0a671905ea5b2c8.e7173b7b-0e54-4aa0-9d20-aeb1b89e6c7d","status":"assigned","registrationState":{"x509":{},"registrationId":"paho-sample-device1","createdDateTimeUtc":"2020-04-10T03:11:13.0276997Z","assignedHub":"contoso.azure-devices.net","deviceId":"paho-sample-device1","status":"assigned","substatus":"initialAssignment","lastUpdatedDateTimeUtc":"2020-04-10T03:11:13.2096201Z","etag":"IjYxMDA4ZDQ2LTAwMDAtMDEwMC0wMDAwLTVlOGZlM2QxMDAwMCI="}}"#;
        let status: OperationStatus = serde_json::from_str(body).unwrap();
        assert_eq!(status.status, "assigned");
        let state = status.registration_state.unwrap();
        assert_eq!(
            state.assigned_hub.as_deref(),
            Some("contoso.azure-devices.net")
        );
        assert_eq!(state.device_id.as_deref(), Some("paho-sample-device1"));
        assert_eq!(state.substatus.as_deref(), Some("initialAssignment"));
        assert_eq!(state.payload, None);
        assert_eq!(state.x509, Some(serde_json::json!({})));
    }

    #[test]
    fn x509_details_are_kept_and_symmetric_key_state_has_none() {
        let body = r#"{"registrationId":"dev-1","x509":{"enrollmentGroupId":"g","certificateInfo":{"subjectName":"CN=dev-1"}},"status":"assigned"}"#;
        let state: RegistrationState = serde_json::from_str(body).unwrap();
        assert_eq!(state.x509.unwrap()["enrollmentGroupId"], "g");
        let body = r#"{"registrationId":"dev-1","symmetricKey":{"enrollmentGroupId":"g"}}"#;
        let state: RegistrationState = serde_json::from_str(body).unwrap();
        assert_eq!(state.x509, None);
        assert!(!serde_json::to_string(&state).unwrap().contains("x509"));
    }

    #[test]
    fn register_body_omits_unset_payload() {
        let body = serde_json::to_string(&RegisterRequest {
            registration_id: "dev-1",
            payload: None,
        })
        .unwrap();
        assert_eq!(body, r#"{"registrationId":"dev-1"}"#);
        let payload = serde_json::json!({"modelId": "dtmi:x;1"});
        let body = serde_json::to_string(&RegisterRequest {
            registration_id: "dev-1",
            payload: Some(&payload),
        })
        .unwrap();
        assert_eq!(
            body,
            r#"{"registrationId":"dev-1","payload":{"modelId":"dtmi:x;1"}}"#
        );
    }
}
