//! The lookup the TPM registration flow starts from: for an id scope and a registration id,
//! the individual TPM enrollment with its parsed endorsement and storage root keys. The flow
//! itself (challenge, SAS verification) is built on this; it never reads wire JSON.

use super::Dps;
use super::enrollment_attestation::{Attestation, TpmKeys};
use crate::auth::AuthError;

/// An individual enrollment with TPM attestation, as the TPM registration flow needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmEnrollment {
    /// The enrollment's registration id, as enrolled (lookups ignore case).
    pub registration_id: String,
    /// The hub device id to create; `None` means the registration id.
    pub device_id: Option<String>,
    /// `provisioningStatus` is `enabled`. A disabled enrollment still authenticates its
    /// device; registration then answers `disabled`, as for the other mechanisms.
    pub enabled: bool,
    /// The endorsement key the device's TPM must hold, and the optional storage root key.
    pub keys: TpmKeys,
}

impl Dps {
    /// The TPM individual enrollment for `registration_id` in this instance. Errors say why
    /// there is none, as the other attestation decisions do: an invalid registration id, an
    /// unknown id scope, no enrollment for the id (groups never take TPM attestation), or an
    /// enrollment of another mechanism.
    pub fn tpm_enrollment(
        &self,
        id_scope: &str,
        registration_id: &str,
    ) -> Result<TpmEnrollment, AuthError> {
        if let Some(problem) = super::validate::registration_id_problem(registration_id) {
            return Err(AuthError::InvalidRegistrationId(problem));
        }
        if !id_scope.eq_ignore_ascii_case(self.id_scope()) {
            return Err(AuthError::UnknownIdScope(id_scope.to_owned()));
        }
        let enrollment = self
            .individual(registration_id)
            .ok_or_else(|| AuthError::UnknownRegistration(registration_id.to_owned()))?;
        let enabled = enrollment.core.enabled();
        match enrollment.core.attestation {
            Attestation::Tpm(keys) => Ok(TpmEnrollment {
                registration_id: enrollment.registration_id,
                device_id: enrollment.device_id,
                enabled,
                keys: *keys,
            }),
            other => Err(AuthError::WrongCredentialType {
                expected: super::attestation::attestation_name(other.kind()),
            }),
        }
    }
}
