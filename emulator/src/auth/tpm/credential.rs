//! MakeCredential done by the server (Part 1 §24, Part 3 §12.6): wraps a small secret so that
//! only the TPM holding the EK's private key can recover it, and only for the object named
//! `object_name` (ActivateCredential checks that name against its activate handle).
//!
//! * `encSecret` = RSA-OAEP(EK, seed, "IDENTITY")
//! * `encIdentity` = AES-CFB(KDFa(seed, "STORAGE", name, ∅), `TPM2B(credential)`)
//! * `integrityHMAC` = HMAC(KDFa(seed, "INTEGRITY", ∅, ∅, 256), encIdentity || name)
//! * `TPM2B_ID_OBJECT` = `TPM2B(TPM2B(integrityHMAC) || encIdentity)`

use hmac::{Hmac, Mac};
use rsa::rand_core::CryptoRngCore;
use sha2::Sha256;

use super::TpmError;
use super::kdf::{Label, kdfa_sha256};
use super::name::Name;
use super::protector::Protector;
use super::secret::{SeedUse, encrypt_seed};
use super::symmetric::cfb_encrypt;
use super::wire::{put_tpm2b, tpm2b};

/// Largest credential: a `TPM2B_DIGEST` holds at most one SHA-512 digest.
pub(crate) const MAX_CREDENTIAL: usize = 64;

/// What ActivateCredential takes: `credentialBlob` and `secret`, both marshalled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CredentialBlob {
    /// `TPM2B_ID_OBJECT`.
    pub id_object: Vec<u8>,
    /// `TPM2B_ENCRYPTED_SECRET`.
    pub encrypted_secret: Vec<u8>,
}

/// Wraps `credential` to `ek` for the object `object_name` using the 32-byte `seed`.
pub(crate) fn make_credential(
    ek: &Protector,
    object_name: &Name,
    credential: &[u8],
    seed: &[u8; 32],
    rng: &mut impl CryptoRngCore,
) -> Result<CredentialBlob, TpmError> {
    if credential.is_empty() || credential.len() > MAX_CREDENTIAL {
        return Err(TpmError::TooLarge {
            what: "credential (1 to 64 bytes)",
            len: credential.len(),
            max: MAX_CREDENTIAL,
        });
    }
    let encrypted_secret = encrypt_seed(ek, SeedUse::Identity, seed, rng)?;
    let storage_key = kdfa_sha256(
        seed,
        Label::Storage,
        object_name.as_bytes(),
        &[],
        ek.symmetric_key_bytes,
    );
    let mut enc_identity = tpm2b(credential, "credential")?;
    cfb_encrypt(&storage_key, &mut enc_identity)?;
    let integrity = integrity_hmac(seed, &enc_identity, object_name);

    let mut id_object = Vec::with_capacity(2 + 32 + enc_identity.len());
    put_tpm2b(&mut id_object, &integrity, "integrityHMAC")?;
    id_object.extend_from_slice(&enc_identity);
    Ok(CredentialBlob {
        id_object: tpm2b(&id_object, "TPM2B_ID_OBJECT")?,
        encrypted_secret,
    })
}

/// The outer HMAC shared by credentials and duplicates:
/// `HMAC(KDFa(seed, "INTEGRITY", ∅, ∅, 256), encrypted || name)`.
pub(super) fn integrity_hmac(seed: &[u8], encrypted: &[u8], name: &Name) -> [u8; 32] {
    let hmac_key = kdfa_sha256(seed, Label::Integrity, &[], &[], 32);
    let mut mac = Hmac::<Sha256>::new_from_slice(&hmac_key).expect("HMAC accepts any key length");
    mac.update(encrypted);
    mac.update(name.as_bytes());
    mac.finalize().into_bytes().into()
}
