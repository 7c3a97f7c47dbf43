//! An object's name (Part 1 §16): `nameAlg || H_nameAlg(TPMT_PUBLIC)`.
//!
//! The name binds every secret the server wraps to one exact object: the credential to the
//! SRK (ActivateCredential's activate handle), the duplicate to the identity key. Only SHA-256
//! names are made; the SDKs' EK and SRK templates use SHA-256, and a digest the server cannot
//! compute must be refused rather than guessed.

use sha2::{Digest, Sha256};

use super::TpmError;
use super::alg;
use super::public::PublicArea;

/// A SHA-256 name: the algorithm id then the 32-byte digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name([u8; 34]);

impl Name {
    /// The name of `public`, which must use SHA-256 as its name algorithm.
    pub fn of(public: &PublicArea) -> Result<Name, TpmError> {
        if public.name_alg != alg::SHA256 {
            return Err(TpmError::UnsupportedAlgorithm {
                what: "nameAlg (SHA-256 is supported)",
                alg: public.name_alg,
            });
        }
        let mut name = [0u8; 34];
        let (id, digest) = name.split_at_mut(2);
        id.copy_from_slice(&alg::SHA256.to_be_bytes());
        digest.copy_from_slice(&Sha256::digest(public.tpmt_bytes()));
        Ok(Name(name))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}
