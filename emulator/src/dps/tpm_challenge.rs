//! DPS TPM attestation as a domain operation, free of any transport (docs/tpm.md,
//! spec/tpm.md Q3). HTTPS (a 401 body) and AMQP (SASL `TPM` frames) only carry its bytes:
//!
//! 1. [`Dps::tpm_challenge`] — a device of a TPM enrollment sends its EK and SRK; if the EK is
//!    the enrolled one, a fresh identity key is chosen, wrapped so only that TPM can import it
//!    (the `authenticationKey` blob) and kept here for the registration id.
//! 2. The device signs an ordinary DPS SAS token with the imported key;
//!    [`Dps::authenticate_registration`] checks it against the kept key ([`TpmChallenges::verify`])
//!    and the identity it returns carries the device's [`TpmDevice`].
//! 3. On assignment, [`assigned_state`] wraps the device's hub key the same way for
//!    `registrationState.tpm.authenticationKey`.
//!
//! Keys live in memory only: after a restart a device simply receives a new challenge, which
//! the SDKs ask for on every registration anyway.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use dashmap::DashMap;
use serde_json::{Value, json};

use super::Dps;
use super::error::DpsError;
use crate::auth::AuthError;
use crate::auth::keys::SymmetricKey;
use crate::auth::sas::{SasError, SasToken};
use crate::auth::tpm::protector::Protector;
use crate::auth::tpm::{CHALLENGE_KEY_NAME, PublicArea, TpmError, build_authentication_key};
use crate::hub::device::DeviceAuthentication;

/// Bytes of the identity key a challenge makes the device import (an HMAC-SHA256 key; the
/// SDKs sign with whatever length they get, 32 is what a SHA-256 HMAC key needs).
const IDENTITY_KEY_BYTES: usize = 32;

/// The `message` of the 401 challenge body; the SDKs only log it.
pub(crate) const CHALLENGE_MESSAGE: &str =
    "The device must activate the authentication key in its TPM and sign a SAS token with it.";

/// The public keys a TPM device presented: its endorsement key (identity) and storage root
/// key (the parent its keys are imported under), both checked to be keys a secret can be
/// wrapped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmDevice {
    endorsement_key: PublicArea,
    storage_root_key: PublicArea,
}

impl TpmDevice {
    /// From the marshalled `TPM2B_PUBLIC`s (what `tpm.endorsementKey` / `tpm.storageRootKey`
    /// carry base64-encoded, and what AMQP's SASL frames carry raw).
    pub fn from_tpm2b(
        endorsement_key: &[u8],
        storage_root_key: &[u8],
    ) -> Result<TpmDevice, TpmError> {
        let endorsement_key = PublicArea::from_tpm2b(endorsement_key)?;
        let storage_root_key = PublicArea::from_tpm2b(storage_root_key)?;
        Protector::new(&endorsement_key, "EK")?;
        Protector::new(&storage_root_key, "SRK")?;
        Ok(TpmDevice {
            endorsement_key,
            storage_root_key,
        })
    }

    /// From the register body's `tpm` object: `{"endorsementKey": b64, "storageRootKey": b64}`.
    pub fn from_registration_json(tpm: &Value) -> Result<TpmDevice, TpmError> {
        let field = |name: &str| -> Result<Vec<u8>, TpmError> {
            let text = tpm
                .get(name)
                .and_then(Value::as_str)
                .ok_or(TpmError::Unsuitable {
                    what: "tpm",
                    reason: "endorsementKey and storageRootKey must be base64 strings",
                })?;
            BASE64.decode(text.trim()).map_err(|_| TpmError::Base64)
        };
        TpmDevice::from_tpm2b(&field("endorsementKey")?, &field("storageRootKey")?)
    }

    pub fn endorsement_key(&self) -> &PublicArea {
        &self.endorsement_key
    }

    pub fn storage_root_key(&self) -> &PublicArea {
        &self.storage_root_key
    }

    /// Whether `enrolled` (an enrollment's EK, base64 `TPM2B_PUBLIC`) is this device's EK.
    /// Compared as public areas, so a differently padded base64 text still matches.
    pub fn has_endorsement_key(&self, enrolled: &PublicArea) -> bool {
        enrolled.tpmt_bytes() == self.endorsement_key.tpmt_bytes()
    }

    /// The `authenticationKey` blob that makes this device's TPM import `key`.
    pub fn wrap(&self, key: &[u8]) -> Result<Vec<u8>, TpmError> {
        build_authentication_key(
            &self.endorsement_key,
            &self.storage_root_key,
            key,
            &mut rand_core::OsRng,
        )
    }
}

/// What the device receives in answer to its EK and SRK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmChallenge {
    /// The raw `authenticationKey` blob (base64 on HTTPS, raw bytes in AMQP SASL frames).
    pub authentication_key: Vec<u8>,
    /// `keyName` of the HTTPS body (the C SDK requires it).
    pub key_name: &'static str,
}

impl TpmChallenge {
    /// The HTTPS 401 body: `authenticationKey`, `keyName`, `message` and no `status` (the C
    /// SDK takes a 401 body without `status` as the challenge).
    pub fn to_json(&self) -> Value {
        json!({
            "authenticationKey": BASE64.encode(&self.authentication_key),
            "keyName": self.key_name,
            "message": CHALLENGE_MESSAGE,
        })
    }
}

/// One challenge sent and not yet superseded.
struct Issued {
    key: Vec<u8>,
    device: Arc<TpmDevice>,
}

/// The identity keys challenged devices were given, by lower-cased registration id (one per
/// TPM enrollment at most, so bounded by the enrollments).
#[derive(Default)]
pub(crate) struct TpmChallenges {
    issued: DashMap<String, Issued>,
}

impl TpmChallenges {
    /// Keeps `key` as the one `registration_id` must sign with from now on.
    fn remember(&self, registration_id: &str, key: Vec<u8>, device: Arc<TpmDevice>) {
        self.issued
            .insert(registration_id.to_ascii_lowercase(), Issued { key, device });
    }

    /// Checks `token` (already parsed, scope and expiry checked by the caller) is signed with
    /// the identity key last issued to `registration_id`, for a device whose EK is still the
    /// enrolled one (`enrolled_ek`: the enrollment may have changed since the challenge);
    /// returns that device.
    pub(crate) fn verify(
        &self,
        registration_id: &str,
        token: &SasToken,
        enrolled_ek: &PublicArea,
    ) -> Result<Arc<TpmDevice>, AuthError> {
        let issued = self
            .issued
            .get(&registration_id.to_ascii_lowercase())
            .ok_or(AuthError::TpmNotChallenged)?;
        if !issued.device.has_endorsement_key(enrolled_ek) {
            return Err(AuthError::TpmRefused(
                "the enrollment's endorsement key changed since the challenge".to_owned(),
            ));
        }
        if !token.signed_with(&issued.key) {
            return Err(SasError::BadSignature.into());
        }
        Ok(Arc::clone(&issued.device))
    }
}

impl Dps {
    /// Step 1 of TPM attestation, for any transport: `device` (its EK and SRK) asks to
    /// register as `registration_id`. Refused unless a TPM individual enrollment for that id
    /// ([`Dps::tpm_enrollment`]) has this EK; a disabled one is challenged too, and told at
    /// assignment, as for the other attestations. The key in the returned blob is what the
    /// device's next request must be signed with.
    pub fn tpm_challenge(
        &self,
        id_scope: &str,
        registration_id: &str,
        device: TpmDevice,
    ) -> Result<TpmChallenge, AuthError> {
        let enrollment = self.tpm_enrollment(id_scope, registration_id)?;
        if !device.has_endorsement_key(enrollment.keys.endorsement_key().public()) {
            return Err(AuthError::TpmRefused(
                "the endorsement key is not the enrolled one".to_owned(),
            ));
        }
        let mut key = vec![0u8; IDENTITY_KEY_BYTES];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut key);
        let blob = device
            .wrap(&key)
            .map_err(|e| AuthError::TpmRefused(e.to_string()))?;
        self.tpm_challenges
            .remember(registration_id, key, Arc::new(device));
        tracing::debug!(%registration_id, "TPM challenge issued");
        Ok(TpmChallenge {
            authentication_key: blob,
            key_name: CHALLENGE_KEY_NAME,
        })
    }

    /// Whether `registration_id` is enrolled with TPM attestation in this instance: a
    /// transport may then accept an unauthenticated register request to answer it with a
    /// challenge.
    pub fn is_tpm_registration(&self, id_scope: &str, registration_id: &str) -> bool {
        self.tpm_enrollment(id_scope, registration_id).is_ok()
    }

    /// The challenged identity keys (for [`Dps::authenticate_registration`]).
    pub(crate) fn tpm_challenges(&self) -> &TpmChallenges {
        &self.tpm_challenges
    }
}

/// `registrationState.tpm` of an assigned TPM device: its hub key (the primary key of the
/// device DPS created) wrapped for its TPM, which imports it to sign hub SAS tokens.
pub(crate) fn assigned_state(
    device: &TpmDevice,
    authentication: &DeviceAuthentication,
) -> Result<Value, DpsError> {
    let DeviceAuthentication::Sas { primary, .. } = authentication else {
        return Err(DpsError::internal(
            "a TPM device's hub identity must use SAS keys",
        ));
    };
    let blob = device
        .wrap(primary.as_bytes())
        .map_err(|e| DpsError::internal(format!("wrapping the hub key failed: {e}")))?;
    Ok(json!({ "authenticationKey": BASE64.encode(blob) }))
}

/// Fresh SAS keys for the hub identity of a TPM device (DPS chooses them; the device only
/// ever holds the primary one, inside its TPM).
pub(crate) fn new_hub_keys() -> Result<DeviceAuthentication, DpsError> {
    let key = || {
        let mut bytes = [0u8; IDENTITY_KEY_BYTES];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        SymmetricKey::from_base64(&BASE64.encode(bytes))
            .map_err(|e| DpsError::internal(format!("hub key: {e}")))
    };
    Ok(DeviceAuthentication::Sas {
        primary: key()?,
        secondary: key()?,
    })
}

#[cfg(test)]
mod tests;
