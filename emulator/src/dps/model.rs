//! The DPS service API's JSON models (protocol.md §7.2), used verbatim by fixtures so that
//! enrollments fetched from a real DPS can be pasted in and replayed. Fields this emulator
//! does not interpret yet are kept in `extra` so nothing a user supplied is lost.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualEnrollment {
    pub registration_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub attestation: AttestationMechanism,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hub_host_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hubs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_twin: Option<Value>,
    #[serde(default)]
    pub provisioning_status: ProvisioningStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Read-only: the device's current registration, filled in when the service API reads the
    /// enrollment; never stored with it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "read_only"
    )]
    pub registration_state: Option<DeviceRegistrationState>,
    /// Read-only, set by DPS when the enrollment is first written.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "read_only"
    )]
    pub created_date_time_utc: Option<String>,
    /// Read-only, set by DPS on every write.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "read_only"
    )]
    pub last_updated_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_policy: Option<AllocationPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprovision_policy: Option<ReprovisionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_allocation_definition: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Constructors for the Rust API (`emulator.dps().create_or_update_enrollment(…)`); every
/// other field can be set on the result.
impl IndividualEnrollment {
    /// An enabled enrollment with `attestation` and nothing else set.
    pub fn new(registration_id: &str, attestation: AttestationMechanism) -> IndividualEnrollment {
        IndividualEnrollment {
            registration_id: registration_id.to_owned(),
            device_id: None,
            attestation,
            iot_hub_host_name: None,
            iot_hubs: None,
            initial_twin: None,
            provisioning_status: ProvisioningStatus::Enabled,
            etag: None,
            registration_state: None,
            created_date_time_utc: None,
            last_updated_date_time_utc: None,
            allocation_policy: None,
            reprovision_policy: None,
            custom_allocation_definition: None,
            extra: Map::new(),
        }
    }

    /// A symmetric-key enrollment; keys left `None` are generated when it is stored.
    pub fn symmetric_key(
        registration_id: &str,
        primary_key: Option<&str>,
        secondary_key: Option<&str>,
    ) -> IndividualEnrollment {
        let attestation = AttestationMechanism::symmetric_key(primary_key, secondary_key);
        IndividualEnrollment::new(registration_id, attestation)
    }

    /// A TPM enrollment: the device's endorsement key and, optionally, its storage root key,
    /// each base64 of its `TPM2B_PUBLIC`. The registration id must be lower-case letters,
    /// digits and `-` (what the SDKs derive from the EK:
    /// [`registration_id_from_ek`](crate::auth::tpm::registration_id_from_ek)).
    pub fn tpm(
        registration_id: &str,
        endorsement_key: &str,
        storage_root_key: Option<&str>,
    ) -> IndividualEnrollment {
        let attestation = AttestationMechanism::tpm(endorsement_key, storage_root_key);
        IndividualEnrollment::new(registration_id, attestation)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentGroup {
    pub enrollment_group_id: String,
    pub attestation: AttestationMechanism,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hub_host_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hubs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_twin: Option<Value>,
    #[serde(default)]
    pub provisioning_status: ProvisioningStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Read-only, like [`IndividualEnrollment::created_date_time_utc`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "read_only"
    )]
    pub created_date_time_utc: Option<String>,
    /// Read-only, like [`IndividualEnrollment::last_updated_date_time_utc`].
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "read_only"
    )]
    pub last_updated_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_policy: Option<AllocationPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprovision_policy: Option<ReprovisionPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_allocation_definition: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EnrollmentGroup {
    /// An enabled group with `attestation` and nothing else set, for the Rust API.
    pub fn new(enrollment_group_id: &str, attestation: AttestationMechanism) -> EnrollmentGroup {
        EnrollmentGroup {
            enrollment_group_id: enrollment_group_id.to_owned(),
            attestation,
            iot_hub_host_name: None,
            iot_hubs: None,
            initial_twin: None,
            provisioning_status: ProvisioningStatus::Enabled,
            etag: None,
            created_date_time_utc: None,
            last_updated_date_time_utc: None,
            allocation_policy: None,
            reprovision_policy: None,
            custom_allocation_definition: None,
            extra: Map::new(),
        }
    }
}

/// Read-only fields are ignored on every write, so a body (a fixture exported from a real DPS,
/// or an enrollment a client read and sends back) is never rejected over their shape: a value
/// that does not fit the type is dropped instead.
fn read_only<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(serde_json::from_value(value).ok())
}

/// How DPS picks a hub (how-to-use-allocation-policies.md). The docs' CLI spelling
/// `geolatency` is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AllocationPolicy {
    #[serde(rename = "hashed")]
    Hashed,
    #[serde(rename = "geoLatency", alias = "geolatency", alias = "GeoLatency")]
    GeoLatency,
    #[serde(rename = "static")]
    Static,
    #[serde(rename = "custom")]
    Custom,
}

/// What happens when an assigned device registers again (concepts-device-reprovision.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReprovisionPolicy {
    #[serde(default = "yes")]
    pub update_hub_assignment: bool,
    #[serde(default = "yes")]
    pub migrate_device_data: bool,
}

impl Default for ReprovisionPolicy {
    fn default() -> Self {
        ReprovisionPolicy {
            update_hub_assignment: true,
            migrate_device_data: true,
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProvisioningStatus {
    #[default]
    Enabled,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttestationType {
    #[serde(rename = "symmetricKey")]
    SymmetricKey,
    #[serde(rename = "x509")]
    X509,
    #[serde(rename = "tpm")]
    Tpm,
    #[serde(rename = "none")]
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestationMechanism {
    #[serde(rename = "type")]
    pub kind: AttestationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symmetric_key: Option<SymmetricKeyAttestation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<X509Attestation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmAttestation>,
}

/// `TpmAttestation`: the device TPM's endorsement key and, optionally, its storage root key,
/// each a base64 `TPM2B_PUBLIC`. The endorsement key is required; it is optional here so that
/// its absence is reported with the enrollment's JSON path instead of as a parse error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TpmAttestation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endorsement_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_root_key: Option<String>,
}

impl AttestationMechanism {
    /// Symmetric keys; keys left `None` are generated when the enrollment is stored.
    pub fn symmetric_key(primary_key: Option<&str>, secondary_key: Option<&str>) -> Self {
        AttestationMechanism {
            kind: AttestationType::SymmetricKey,
            symmetric_key: Some(SymmetricKeyAttestation {
                primary_key: primary_key.map(str::to_owned),
                secondary_key: secondary_key.map(str::to_owned),
            }),
            x509: None,
            tpm: None,
        }
    }

    /// A TPM's endorsement key and, optionally, storage root key (base64 `TPM2B_PUBLIC`s).
    pub fn tpm(endorsement_key: &str, storage_root_key: Option<&str>) -> Self {
        AttestationMechanism {
            kind: AttestationType::Tpm,
            symmetric_key: None,
            x509: None,
            tpm: Some(TpmAttestation {
                endorsement_key: Some(endorsement_key.to_owned()),
                storage_root_key: storage_root_key.map(str::to_owned),
            }),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SymmetricKeyAttestation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary_key: Option<String>,
}

/// `X509Attestation`: the device's own certificates, CA certificates the device chains to,
/// or names of CA certificates in the DPS certificate store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Attestation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificates: Option<X509Certificates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificates: Option<X509Certificates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_references: Option<X509CaReferences>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct X509Certificates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<X509CertificateWithInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<X509CertificateWithInfo>,
}

impl X509Certificates {
    pub fn slots(&self) -> impl Iterator<Item = (&'static str, &X509CertificateWithInfo)> {
        [("primary", &self.primary), ("secondary", &self.secondary)]
            .into_iter()
            .filter_map(|(slot, c)| c.as_ref().map(|c| (slot, c)))
    }
}

/// A certificate (PEM or base64 DER) and/or its `info`; exports from a real DPS may carry only
/// the info, whose thumbprints still identify the certificate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct X509CertificateWithInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct X509CaReferences {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<String>,
}

impl X509CaReferences {
    pub fn names(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [("primary", &self.primary), ("secondary", &self.secondary)]
            .into_iter()
            .filter_map(|(slot, c)| c.as_ref().map(|c| (slot, c)))
    }
}

/// `status` of a registration operation and of a registration record (device.json
/// `EnrollmentStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RegistrationStatus {
    Unassigned,
    Assigning,
    Assigned,
    Failed,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Substatus {
    InitialAssignment,
    DeviceDataMigrated,
    DeviceDataReset,
    ReprovisionedToInitialAssignment,
}

/// `DeviceRegistrationState` / `DeviceRegistrationResult`: what DPS knows about one device's
/// latest registration. Sent to devices inside operation results and kept as the record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRegistrationState {
    pub registration_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_hub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub status: RegistrationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<Substatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// `{}` for an individual symmetric-key enrollment, `{"enrollmentGroupId": …}` for a group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symmetric_key: Option<Value>,
    /// `{certificateInfo, enrollmentGroupId?, signingCertificateInfo?}` for X.509 devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<Value>,
    /// `{authenticationKey}` for an assigned TPM device: its hub key, wrapped for its TPM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<Value>,
}

/// `RegistrationOperationStatus`: the body of every register/poll response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationOperationStatus {
    pub operation_id: String,
    pub status: RegistrationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_state: Option<DeviceRegistrationState>,
}

/// `DeviceRegistration`: the body a device sends with `register`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeviceRegistration {
    #[serde(default)]
    pub registration_id: Option<String>,
    #[serde(default)]
    pub payload: Option<Value>,
    #[serde(default)]
    pub tpm: Option<Value>,
}
