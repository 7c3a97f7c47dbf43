//! The `authenticationKey` blob DPS sends a TPM device: in the 401 challenge (the key the
//! device then signs its registration SAS with) and in `registrationState.tpm` once assigned
//! (the device's hub key). Both SDKs read six marshalled parts in this order (spec/tpm.md Q3):
//!
//! 1. `TPM2B_ID_OBJECT` and 2. `TPM2B_ENCRYPTED_SECRET` — the inner key, via ActivateCredential
//!    against the EK for the SRK's name;
//! 3. `TPM2B_PRIVATE` and 4. `TPM2B_ENCRYPTED_SECRET` — the identity key duplicated to the SRK;
//! 5. `TPM2B_PUBLIC` — the identity key's public area;
//! 6. `TPM2B_DATA` `encUriData` — empty: the SDKs only log it, and what the real DPS puts there
//!    is not documented (docs/differences.md).

use rsa::rand_core::CryptoRngCore;

use super::TpmError;
use super::credential::make_credential;
use super::duplicate::{InnerKey, duplicate};
use super::identity_key::IdentityKey;
use super::protector::Protector;
use super::public::PublicArea;
use super::wire::{Reader, put_tpm2b};

/// The random values one blob is made from. Fresh for every blob; explicit so tests can
/// replay a blob a TPM accepted.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BlobSecrets {
    pub inner_key: InnerKey,
    pub credential_seed: [u8; 32],
    pub key_seed_value: [u8; 32],
    pub duplicate_seed: [u8; 32],
}

impl std::fmt::Debug for BlobSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobSecrets(..)")
    }
}

impl BlobSecrets {
    pub(crate) fn random(rng: &mut impl CryptoRngCore) -> BlobSecrets {
        let mut secrets = BlobSecrets {
            inner_key: [0; 16],
            credential_seed: [0; 32],
            key_seed_value: [0; 32],
            duplicate_seed: [0; 32],
        };
        rng.fill_bytes(&mut secrets.inner_key);
        rng.fill_bytes(&mut secrets.credential_seed);
        rng.fill_bytes(&mut secrets.key_seed_value);
        rng.fill_bytes(&mut secrets.duplicate_seed);
        secrets
    }
}

/// Builds the blob that makes the TPM owning `ek` and `srk` import `key` as an HMAC key.
/// Returns the raw bytes; the wire carries them base64-encoded.
pub(crate) fn build_authentication_key(
    ek: &PublicArea,
    srk: &PublicArea,
    key: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, TpmError> {
    let secrets = BlobSecrets::random(rng);
    build_with_secrets(ek, srk, key, &secrets, rng)
}

/// [`build_authentication_key`] with the random values given; `rng` only feeds RSA-OAEP.
pub(crate) fn build_with_secrets(
    ek: &PublicArea,
    srk: &PublicArea,
    key: &[u8],
    secrets: &BlobSecrets,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, TpmError> {
    let ek = Protector::new(ek, "EK")?;
    let srk = Protector::new(srk, "SRK")?;
    let identity = IdentityKey::new(key, &secrets.key_seed_value)?;
    // ActivateCredential's activate handle is the SRK, so the credential names the SRK.
    let credential = make_credential(
        &ek,
        &srk.name,
        &secrets.inner_key,
        &secrets.credential_seed,
        rng,
    )?;
    let duplicate = duplicate(
        &srk,
        &identity,
        &secrets.inner_key,
        &secrets.duplicate_seed,
        rng,
    )?;
    AuthenticationKeyParts {
        id_object: credential.id_object,
        encrypted_secret: credential.encrypted_secret,
        private: duplicate.private,
        encrypted_seed: duplicate.encrypted_seed,
        public: identity.public.to_tpm2b()?,
        enc_uri_data: Vec::new(),
    }
    .to_bytes()
}

/// The six parts, each kept marshalled (with its size) except `enc_uri_data`'s content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuthenticationKeyParts {
    pub id_object: Vec<u8>,
    pub encrypted_secret: Vec<u8>,
    pub private: Vec<u8>,
    pub encrypted_seed: Vec<u8>,
    pub public: Vec<u8>,
    /// The content of the trailing `TPM2B_DATA`.
    pub enc_uri_data: Vec<u8>,
}

impl AuthenticationKeyParts {
    /// Splits a blob. Bytes after the sixth part are refused: iotemu never writes them.
    pub(crate) fn parse(blob: &[u8]) -> Result<AuthenticationKeyParts, TpmError> {
        let mut r = Reader::new(blob, "authenticationKey");
        let mut marshalled = || -> Result<Vec<u8>, TpmError> {
            let before = r.remaining();
            let content = r.tpm2b()?;
            Ok(before
                .get(..content.len().saturating_add(2))
                .unwrap_or_default()
                .to_vec())
        };
        let id_object = marshalled()?;
        let encrypted_secret = marshalled()?;
        let private = marshalled()?;
        let encrypted_seed = marshalled()?;
        let public = marshalled()?;
        let enc_uri_data = r.tpm2b()?.to_vec();
        r.finish()?;
        Ok(AuthenticationKeyParts {
            id_object,
            encrypted_secret,
            private,
            encrypted_seed,
            public,
            enc_uri_data,
        })
    }

    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>, TpmError> {
        let mut out = Vec::new();
        for part in [
            &self.id_object,
            &self.encrypted_secret,
            &self.private,
            &self.encrypted_seed,
            &self.public,
        ] {
            out.extend_from_slice(part);
        }
        put_tpm2b(&mut out, &self.enc_uri_data, "encUriData")?;
        Ok(out)
    }
}
