//! The RSA storage key a secret is wrapped to: the EK for MakeCredential, the SRK for the
//! duplicate. Checks that the device's public area is a key the TPM will use that way, so a
//! wrong key fails here with a reason instead of as a silent failure inside the device.
//!
//! Requirements (Part 1 §24, the EK/SRK templates in spec/tpm.md): RSA, `restricted` and
//! `decrypt` set, `sign` clear, SHA-256 name algorithm, and an AES-CFB symmetric definition
//! (its key size sets the size of the derived "STORAGE" key).

use rsa::RsaPublicKey;

use super::TpmError;
use super::alg::{self, attr};
use super::name::Name;
use super::public::PublicArea;

/// A checked storage key and what wrapping to it needs.
#[derive(Debug, Clone)]
pub struct Protector {
    pub key: RsaPublicKey,
    pub name: Name,
    /// 16 for AES-128, 32 for AES-256.
    pub symmetric_key_bytes: u16,
}

impl Protector {
    /// `role` names the key in errors ("EK", "SRK").
    pub fn new(public: &PublicArea, role: &'static str) -> Result<Protector, TpmError> {
        let unsuitable = |reason| TpmError::Unsuitable { what: role, reason };
        let rsa = public.rsa().ok_or(unsuitable("not an RSA key"))?;
        if !public.has(attr::RESTRICTED | attr::DECRYPT) || public.has(attr::SIGN) {
            return Err(unsuitable(
                "not a storage key (restricted and decrypt, not sign)",
            ));
        }
        let symmetric = rsa.symmetric.ok_or(unsuitable("no symmetric algorithm"))?;
        if symmetric.algorithm != alg::AES || symmetric.mode != alg::CFB {
            return Err(unsuitable("its symmetric algorithm is not AES-CFB"));
        }
        let symmetric_key_bytes = match symmetric.key_bits {
            128 => 16,
            256 => 32,
            _ => return Err(unsuitable("its AES key is not 128 or 256 bits")),
        };
        Ok(Protector {
            key: public.rsa_public_key()?,
            name: public.name()?,
            symmetric_key_bytes,
        })
    }
}
