//! A TPM, as far as DPS TPM attestation needs one: the [`Tpm`] trait, and SAS tokens signed
//! inside it.
//!
//! The device sends its endorsement key (EK) and storage root key (SRK); DPS answers with an
//! `authenticationKey` blob that only the TPM holding that EK can open (ActivateCredential, then
//! Import of an HMAC key under the SRK); the device signs its SAS tokens with the imported key,
//! first for DPS, then — after importing the hub key DPS sends once assigned — for the hub.
//! The client never sees a key: it only asks the TPM to import blobs and to sign.
//!
//! Implement [`Tpm`] over your TPM stack (a TSS, `/dev/tpmrm0`); the tests implement it in
//! software. Registration: [`TpmProvisioning`](crate::TpmProvisioning); the hub:
//! [`DeviceClientBuilder::tpm`](crate::DeviceClientBuilder::tpm).

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};

use crate::encode::encode;

/// The four TPM operations the DPS TPM flow uses. Calls may block (a TPM is slow); the clients
/// make them from async code, so keep them short or back them with a dedicated thread.
pub trait Tpm: Send + Sync {
    /// The endorsement key's public area, marshalled as a `TPM2B_PUBLIC`.
    fn endorsement_key(&self) -> Result<Vec<u8>, TpmError>;

    /// The storage root key's public area, marshalled as a `TPM2B_PUBLIC`.
    fn storage_root_key(&self) -> Result<Vec<u8>, TpmError>;

    /// Opens an `authenticationKey` blob (ActivateCredential with the EK, Import under the SRK)
    /// and makes the key in it the identity key, replacing the previous one (the SDKs persist
    /// it at handle 0x81000100).
    fn import_identity_key(&self, authentication_key: &[u8]) -> Result<(), TpmError>;

    /// HMAC-SHA256 of `data` with the identity key.
    fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>, TpmError>;
}

/// A TPM operation failed; the text is the TPM stack's reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("TPM: {0}")]
pub struct TpmError(pub String);

/// A shared TPM, as the builders keep it (its `Debug` shows nothing of the TPM).
#[derive(Clone)]
pub(crate) struct SharedTpm(pub(crate) Arc<dyn Tpm>);

impl fmt::Debug for SharedTpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tpm(..)")
    }
}

/// The registration id the Azure SDKs derive from an EK: SHA-256 of the `TPM2B_PUBLIC`, in
/// lower-case base32 without padding.
pub fn registration_id(endorsement_key: &[u8]) -> String {
    base32_lower(&Sha256::digest(endorsement_key))
}

fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A SAS token for `resource_uri` signed inside `tpm` with its identity key; `key_name` is
/// `registration` for DPS and absent for the hub.
pub(crate) fn sas_token(
    tpm: &dyn Tpm,
    resource_uri: &str,
    key_name: Option<&str>,
    expiry: SystemTime,
) -> Result<String, TpmError> {
    let se = expiry
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TpmError("the expiry is before the Unix epoch".into()))?
        .as_secs();
    let sr = encode(resource_uri);
    let signature = tpm.sign_with_identity(format!("{sr}\n{se}").as_bytes())?;
    let sig = encode(&BASE64.encode(signature));
    let mut token = format!("SharedAccessSignature sr={sr}&sig={sig}&se={se}");
    if let Some(name) = key_name {
        token.push_str("&skn=");
        token.push_str(&encode(name));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc_4648_in_lower_case_without_padding() {
        // RFC 4648 §10 vectors, lower-cased, padding removed.
        for (input, expected) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32_lower(input.as_bytes()), expected, "{input}");
        }
        assert_eq!(registration_id(b"ek").len(), 52);
    }

    /// Signs with a fixed key, like a TPM holding it would.
    struct FixedKey;

    impl Tpm for FixedKey {
        fn endorsement_key(&self) -> Result<Vec<u8>, TpmError> {
            Err(TpmError("none".into()))
        }
        fn storage_root_key(&self) -> Result<Vec<u8>, TpmError> {
            Err(TpmError("none".into()))
        }
        fn import_identity_key(&self, _: &[u8]) -> Result<(), TpmError> {
            Ok(())
        }
        fn sign_with_identity(&self, data: &[u8]) -> Result<Vec<u8>, TpmError> {
            use hmac::Mac;
            let mut mac =
                hmac::Hmac::<Sha256>::new_from_slice(b"0123456789abcdef0123456789abcdef").unwrap();
            mac.update(data);
            Ok(mac.finalize().into_bytes().to_vec())
        }
    }

    #[test]
    fn a_tpm_signed_token_is_the_token_of_the_same_key() {
        let expiry = UNIX_EPOCH + std::time::Duration::from_secs(1_893_456_000);
        let key = BASE64.encode(b"0123456789abcdef0123456789abcdef");
        let by_tpm = sas_token(
            &FixedKey,
            "0ne00000A0A/registrations/dev",
            Some("registration"),
            expiry,
        )
        .unwrap();
        let by_key = crate::sas::generate_sas_token(
            "0ne00000A0A/registrations/dev",
            &key,
            Some("registration"),
            expiry,
        )
        .unwrap();
        assert_eq!(by_tpm, by_key);
    }
}
