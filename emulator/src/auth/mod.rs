//! Authentication: turns the credential a connection presents into a verified identity.
//!
//! Transports never decide trust. They parse their wire format (MQTT username, HTTP path),
//! then call [`authenticate_registration`] or [`authenticate_device`]. The identities returned
//! can only be built here, so an unverified identity cannot reach the DPS or hub domain.

pub mod keys;
pub mod policy;
pub mod sas;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::dps::model::AttestationType;
use crate::dps::{Dps, EnrollmentRef};
use crate::hub::Hubs;
use crate::hub::device::DeviceStatus;
use keys::SymmetricKey;
use sas::{SasError, SasToken};

/// What a client presented.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A SAS token (MQTT password, HTTP `Authorization`).
    Sas(&'a str),
    /// The DER chain the client sent during the TLS handshake, leaf first.
    ClientCertificates(&'a [rustls_pki_types::CertificateDer<'static>]),
    None,
}

/// A device proven to DPS: its registration id and the enrollment that vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationIdentity {
    registration_id: String,
    enrollment: EnrollmentRef,
    expires_at: Option<SystemTime>,
}

impl RegistrationIdentity {
    pub fn registration_id(&self) -> &str {
        &self.registration_id
    }
    pub fn enrollment(&self) -> &EnrollmentRef {
        &self.enrollment
    }
    /// When the credential stops being valid; connections are closed then.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
}

/// A device (or module) proven to a hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    hub: String,
    device_id: String,
    module_id: Option<String>,
    expires_at: Option<SystemTime>,
}

impl DeviceIdentity {
    pub fn hub(&self) -> &str {
        &self.hub
    }
    pub fn device_id(&self) -> &str {
        &self.device_id
    }
    pub fn module_id(&self) -> Option<&str> {
        self.module_id.as_deref()
    }
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
    /// `device` or `device/module`: the key for "one connection per identity".
    pub fn connection_key(&self) -> String {
        match &self.module_id {
            Some(m) => format!("{}/{m}", self.device_id),
            None => self.device_id.clone(),
        }
    }
}

/// Why authentication failed. Devices only learn "not authorized" (or "disabled"); the
/// reason is for the emulator's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unknown id scope '{0}'")]
    UnknownIdScope(String),
    #[error("no enrollment matches registration id '{0}'")]
    UnknownRegistration(String),
    #[error("unknown hub '{0}'")]
    UnknownHub(String),
    #[error("device '{0}' is not registered in the hub")]
    UnknownDevice(String),
    #[error("device '{0}' is disabled")]
    DeviceDisabled(String),
    #[error("policy '{0}' does not exist or does not grant {1}")]
    PolicyNotAllowed(String, &'static str),
    #[error("{0}")]
    Token(#[from] SasError),
    #[error("{0} attestation is not supported yet")]
    AttestationNotSupported(&'static str),
    #[error("no credential presented")]
    MissingCredential,
}

impl AuthError {
    /// Azure's 6-digit code for the failure.
    pub fn code(&self) -> u32 {
        match self {
            AuthError::DeviceDisabled(_) => 403012,
            _ => 401002,
        }
    }
}

/// DPS tokens carry `skn=registration` (Node, C) or no `skn` at all (Python).
const DPS_KEY_NAME: &str = "registration";

/// Authenticates a device registering with DPS.
pub fn authenticate_registration(
    dps: &Dps,
    id_scope: &str,
    registration_id: &str,
    credential: Credential<'_>,
    now: SystemTime,
) -> Result<RegistrationIdentity, AuthError> {
    if !id_scope.eq_ignore_ascii_case(dps.id_scope()) {
        return Err(AuthError::UnknownIdScope(id_scope.to_owned()));
    }
    let token = match credential {
        Credential::Sas(token) => SasToken::parse(token)?,
        Credential::ClientCertificates(_) => {
            return Err(AuthError::AttestationNotSupported("X.509"));
        }
        Credential::None => return Err(AuthError::MissingCredential),
    };
    if let Some(name) = &token.key_name
        && !name.eq_ignore_ascii_case(DPS_KEY_NAME)
    {
        return Err(SasError::WrongKeyName(name.clone()).into());
    }
    token.check_scope(
        &format!("{}/registrations/{registration_id}", dps.id_scope()),
        now,
    )?;
    let identity = |enrollment| RegistrationIdentity {
        registration_id: registration_id.to_owned(),
        enrollment,
        expires_at: Some(expiry_time(&token)),
    };

    // An individual enrollment for this id decides alone; groups are not consulted.
    if let Some(enrollment) = dps.individual_enrollment(registration_id) {
        return match enrollment.attestation.kind {
            AttestationType::SymmetricKey => {
                let keys = enrollment_keys(enrollment.attestation.symmetric_key.as_ref());
                verify_any(&token, keys.iter())?;
                Ok(identity(EnrollmentRef::Individual(
                    enrollment.registration_id,
                )))
            }
            other => Err(AuthError::AttestationNotSupported(attestation_name(other))),
        };
    }

    // Nothing in a token names its group, so every symmetric-key group is tried (the group
    // this device registered through last time first).
    let mut any_group = false;
    for group in dps.symmetric_key_groups_for(registration_id) {
        any_group = true;
        let derived: Vec<SymmetricKey> = enrollment_keys(group.attestation.symmetric_key.as_ref())
            .iter()
            .map(|k| k.derive_device_key(registration_id))
            .collect();
        if verify_any(&token, derived.iter()).is_ok() {
            return Ok(identity(EnrollmentRef::Group(group.enrollment_group_id)));
        }
    }
    if any_group {
        Err(SasError::BadSignature.into())
    } else {
        Err(AuthError::UnknownRegistration(registration_id.to_owned()))
    }
}

/// Authenticates a device (or module) connecting to a hub.
pub fn authenticate_device(
    hubs: &Hubs,
    hub_host: &str,
    device_id: &str,
    module_id: Option<&str>,
    credential: Credential<'_>,
    now: SystemTime,
) -> Result<DeviceIdentity, AuthError> {
    let hub = hubs
        .get(hub_host)
        .ok_or_else(|| AuthError::UnknownHub(hub_host.to_owned()))?;
    if module_id.is_some() {
        // Module identities arrive with the hub feature work; none exist yet.
        return Err(AuthError::UnknownDevice(format!(
            "{device_id}/{}",
            module_id.unwrap_or_default()
        )));
    }
    let device = hub
        .device(device_id)
        .ok_or_else(|| AuthError::UnknownDevice(device_id.to_owned()))?;
    let token = match credential {
        Credential::Sas(token) => SasToken::parse(token)?,
        Credential::ClientCertificates(_) => {
            return Err(AuthError::AttestationNotSupported("X.509"));
        }
        Credential::None => return Err(AuthError::MissingCredential),
    };
    token.check_scope(&format!("{}/devices/{device_id}", hub.host_name()), now)?;
    match &token.key_name {
        Some(policy_name) => {
            let policy = hub
                .policy(policy_name)
                .filter(|p| p.grants("DeviceConnect"))
                .ok_or_else(|| AuthError::PolicyNotAllowed(policy_name.clone(), "DeviceConnect"))?;
            if !policy.keys().iter().any(|k| token.signed_with(k)) {
                return Err(SasError::BadSignature.into());
            }
        }
        None => verify_any(&token, device.sas_keys().into_iter())?,
    }
    if device.status == DeviceStatus::Disabled {
        return Err(AuthError::DeviceDisabled(device_id.to_owned()));
    }
    Ok(DeviceIdentity {
        hub: hub.host_name().to_owned(),
        device_id: device_id.to_owned(),
        module_id: None,
        expires_at: Some(expiry_time(&token)),
    })
}

fn verify_any<'k>(
    token: &SasToken,
    mut keys: impl Iterator<Item = &'k SymmetricKey>,
) -> Result<(), AuthError> {
    if keys.any(|k| token.signed_with(k.as_bytes())) {
        Ok(())
    } else {
        Err(SasError::BadSignature.into())
    }
}

/// Keys of a symmetric-key attestation; fixtures and the service API validated them already.
pub(crate) fn enrollment_keys(
    attestation: Option<&crate::dps::model::SymmetricKeyAttestation>,
) -> Vec<SymmetricKey> {
    attestation
        .into_iter()
        .flat_map(|a| [a.primary_key.as_deref(), a.secondary_key.as_deref()])
        .flatten()
        .filter_map(|k| SymmetricKey::from_base64(k).ok())
        .collect()
}

fn expiry_time(token: &SasToken) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(token.expiry)
}

fn attestation_name(kind: AttestationType) -> &'static str {
    match kind {
        AttestationType::SymmetricKey => "symmetric key",
        AttestationType::X509 => "X.509",
        AttestationType::Tpm => "TPM",
        AttestationType::None => "'none'",
    }
}
