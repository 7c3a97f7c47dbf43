//! The identity key: the HMAC key the server picks and the device imports into its TPM, which
//! then signs every SAS token with it (at 0x81000100 for both SDKs).
//!
//! A KEYEDHASH object whose attributes are iotemu's choice, since what the real DPS sets is not
//! documented (docs/differences.md): `userWithAuth | noDA | sign`. `sign` makes it an HMAC key;
//! `noDA` avoids ms-tpm-20-ref answering the first HMAC with `TPM_RC_RETRY` (spec/tpm.md Q3);
//! `fixedTPM` and `fixedParent` stay clear because an imported object cannot have them. Its
//! scheme is HMAC-SHA256 with an empty auth value and no policy.

use sha2::{Digest, Sha256};

use super::TpmError;
use super::alg::{self, attr};
use super::public::{KeyedHashParameters, PublicArea};
use super::wire::{put_tpm2b, tpm2b};

/// The identity key's `objectAttributes`.
pub(crate) const ATTRIBUTES: u32 = attr::USER_WITH_AUTH | attr::NO_DA | attr::SIGN;
/// Largest HMAC key accepted: one SHA-256 block; longer keys are hashed by HMAC, and TPMs refuse
/// them as keyed-hash sensitive data.
pub(crate) const MAX_KEY: usize = 64;

/// The public area and marshalled `TPM2B_SENSITIVE` of an identity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdentityKey {
    pub public: PublicArea,
    /// `TPM2B_SENSITIVE`: `TPM2B(type || TPM2B(authValue) || TPM2B(seedValue) || TPM2B(key))`.
    pub sensitive: Vec<u8>,
}

impl IdentityKey {
    /// `key` is the HMAC key (1 to 64 bytes); `seed_value` the 32 random bytes that make the
    /// public `unique` field (`SHA256(seedValue || key)`) reveal nothing about the key.
    pub(crate) fn new(key: &[u8], seed_value: &[u8; 32]) -> Result<IdentityKey, TpmError> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(TpmError::TooLarge {
                what: "identity key (1 to 64 bytes)",
                len: key.len(),
                max: MAX_KEY,
            });
        }
        let mut unique = Sha256::new();
        unique.update(seed_value);
        unique.update(key);
        let public = PublicArea::keyed_hash(
            alg::SHA256,
            ATTRIBUTES,
            KeyedHashParameters {
                scheme: (alg::HMAC, alg::SHA256),
                kdf: alg::NULL,
                unique: unique.finalize().to_vec(),
            },
        )?;

        let mut sensitive = Vec::with_capacity(2 + 2 + 2 + 32 + 2 + key.len());
        sensitive.extend_from_slice(&alg::KEYEDHASH.to_be_bytes());
        put_tpm2b(&mut sensitive, &[], "authValue")?;
        put_tpm2b(&mut sensitive, seed_value, "seedValue")?;
        put_tpm2b(&mut sensitive, key, "sensitive")?;
        Ok(IdentityKey {
            public,
            sensitive: tpm2b(&sensitive, "TPM2B_SENSITIVE")?,
        })
    }
}
