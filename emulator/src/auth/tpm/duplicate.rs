//! Duplicating the identity key to the device's SRK (Part 1 §23.3.2), as TPM2_Import expects
//! it with both wrappers:
//!
//! * inner: `encSens` = AES-128-CFB(innerKey, `TPM2B(SHA256(sensitive || name)) || sensitive`).
//!   The inner key reaches the TPM only through ActivateCredential, so only the TPM that owns the
//!   EK can open it — this is what binds the imported key to the enrolled EK.
//! * outer: `dup` = AES-CFB(KDFa(seed, "STORAGE", name, ∅), encSens), HMAC'd with
//!   KDFa(seed, "INTEGRITY"); `seed` goes to the SRK with RSA-OAEP label "DUPLICATE".
//!
//! The result is the `TPM2B_PRIVATE` and the `TPM2B_ENCRYPTED_SECRET` (inSymSeed) of Import.

use rsa::rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};

use super::TpmError;
use super::credential::integrity_hmac;
use super::identity_key::IdentityKey;
use super::kdf::{Label, kdfa_sha256};
use super::protector::Protector;
use super::secret::{SeedUse, encrypt_seed};
use super::symmetric::cfb_encrypt;
use super::wire::{put_tpm2b, tpm2b};

/// The inner wrapper's key: AES-128, because the C SDK imports with a hard-coded
/// `{AES, 128, CFB}` (spec/tpm.md Q3).
pub(crate) type InnerKey = [u8; 16];

/// What TPM2_Import takes besides the public area and the inner key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Duplicate {
    /// `TPM2B_PRIVATE` (`duplicate`).
    pub private: Vec<u8>,
    /// `TPM2B_ENCRYPTED_SECRET` (`inSymSeed`).
    pub encrypted_seed: Vec<u8>,
}

/// Wraps `key` for import under `srk`.
pub(crate) fn duplicate(
    srk: &Protector,
    key: &IdentityKey,
    inner_key: &InnerKey,
    seed: &[u8; 32],
    rng: &mut impl CryptoRngCore,
) -> Result<Duplicate, TpmError> {
    let name = key.public.name()?;

    let mut integrity = Sha256::new();
    integrity.update(&key.sensitive);
    integrity.update(name.as_bytes());
    let mut enc_sensitive = tpm2b(&integrity.finalize(), "innerIntegrity")?;
    enc_sensitive.extend_from_slice(&key.sensitive);
    cfb_encrypt(inner_key, &mut enc_sensitive)?;

    let encrypted_seed = encrypt_seed(srk, SeedUse::Duplicate, seed, rng)?;
    let storage_key = kdfa_sha256(
        seed,
        Label::Storage,
        name.as_bytes(),
        &[],
        srk.symmetric_key_bytes,
    );
    let mut dup = enc_sensitive;
    cfb_encrypt(&storage_key, &mut dup)?;
    let outer = integrity_hmac(seed, &dup, &name);

    let mut private = Vec::with_capacity(2 + 32 + dup.len());
    put_tpm2b(&mut private, &outer, "outerHMAC")?;
    private.extend_from_slice(&dup);
    Ok(Duplicate {
        private: tpm2b(&private, "TPM2B_PRIVATE")?,
        encrypted_seed,
    })
}
