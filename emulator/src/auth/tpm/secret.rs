//! Encrypting a seed to an RSA storage key (Part 1 §11.4.4 and Annex B.10.3): RSA-OAEP with the
//! protector's name algorithm (SHA-256 here) for both the label hash and MGF1, and a label
//! that says what the seed is for, terminating NUL included. The TPM refuses a seed encrypted
//! under the wrong label, so the label is a type, not a string.

use rsa::Oaep;
use rsa::rand_core::CryptoRngCore;
use sha2::Sha256;

use super::TpmError;
use super::protector::Protector;
use super::wire::tpm2b;

/// Why a seed is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeedUse {
    /// MakeCredential / ActivateCredential.
    Identity,
    /// Duplicate / Import.
    Duplicate,
}

impl SeedUse {
    fn label(self) -> &'static str {
        match self {
            SeedUse::Identity => "IDENTITY\0",
            SeedUse::Duplicate => "DUPLICATE\0",
        }
    }
}

/// `TPM2B_ENCRYPTED_SECRET`: `seed` RSA-OAEP-encrypted to `protector`.
pub(crate) fn encrypt_seed(
    protector: &Protector,
    seed_use: SeedUse,
    seed: &[u8],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>, TpmError> {
    let encrypted = protector
        .key
        .encrypt(
            rng,
            Oaep::new_with_label::<Sha256, _>(seed_use.label()),
            seed,
        )
        .map_err(|e| TpmError::Encryption(e.to_string()))?;
    tpm2b(&encrypted, "TPM2B_ENCRYPTED_SECRET")
}
