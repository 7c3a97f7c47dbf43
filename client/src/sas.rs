//! Shared access signature (SAS) tokens and derived device keys (spec/protocol.md §1).
//!
//! A token is `SharedAccessSignature sr=<sr>&sig=<sig>&se=<expiry>[&skn=<name>]`, where the
//! signature is HMAC-SHA256, keyed with the base64-decoded key, over `<sr> + "\n" + <se>`. The
//! service verifies over the `sr` *exactly as it appears in the token*, so we sign the encoded
//! string we are about to place there, never the raw resource URI.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::encode::encode;

type HmacSha256 = Hmac<Sha256>;

/// Why a key could not be used to sign.
#[derive(Debug, thiserror::Error)]
pub enum SasError {
    /// The key is not valid standard base64.
    #[error("key is not valid base64: {0}")]
    InvalidBase64(#[from] base64::DecodeError),
    /// The key decoded to zero bytes, which would sign with no secret at all.
    #[error("key is empty")]
    EmptyKey,
    /// The expiry lies before 1970-01-01, which `se` cannot express.
    #[error("expiry is before the Unix epoch")]
    ExpiryBeforeEpoch,
}

/// Builds a SAS token for `resource_uri` (e.g. `myhub.azure-devices.net/devices/dev1` or
/// `0ne00000A0A/registrations/dev1`) that expires at `expiry`.
///
/// `key_b64` is the base64 key; `key_name` becomes `skn` when given (DPS uses `registration`,
/// device keys on the hub use none).
pub fn generate_sas_token(
    resource_uri: &str,
    key_b64: &str,
    key_name: Option<&str>,
    expiry: SystemTime,
) -> Result<String, SasError> {
    let key = decode_key(key_b64)?;
    let se = expiry
        .duration_since(UNIX_EPOCH)
        .map_err(|_| SasError::ExpiryBeforeEpoch)?
        .as_secs();
    let sr = encode(resource_uri);
    let signature = sign(&key, format!("{sr}\n{se}").as_bytes());
    let sig = encode(&signature);
    let mut token = format!("SharedAccessSignature sr={sr}&sig={sig}&se={se}");
    if let Some(name) = key_name {
        token.push_str("&skn=");
        token.push_str(&encode(name));
    }
    Ok(token)
}

/// Derives a device's key from a symmetric-key enrollment group key (spec/protocol.md §1.5):
/// `base64(HMAC-SHA256(base64decode(group_key), registration_id))`.
pub fn derive_device_key(group_key_b64: &str, registration_id: &str) -> Result<String, SasError> {
    let key = decode_key(group_key_b64)?;
    Ok(sign(&key, registration_id.as_bytes()))
}

/// Decodes a base64 key, rejecting the empty key.
pub(crate) fn decode_key(key_b64: &str) -> Result<Vec<u8>, SasError> {
    let key = BASE64.decode(key_b64.trim())?;
    if key.is_empty() {
        return Err(SasError::EmptyKey);
    }
    Ok(key)
}

/// Base64 of HMAC-SHA256(key, message).
fn sign(key: &[u8], message: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; fall back defensively anyway
    // rather than panic.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return String::new();
    };
    mac.update(message);
    BASE64.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::decode;
    use proptest::prelude::*;
    use std::time::Duration;

    /// Splits a token into its fields, asserting the documented prefix.
    fn fields(token: &str) -> Vec<(String, String)> {
        let rest = token
            .strip_prefix("SharedAccessSignature ")
            .expect("token prefix");
        rest.split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("key=value");
                (k.to_owned(), v.to_owned())
            })
            .collect()
    }

    fn field<'a>(f: &'a [(String, String)], name: &str) -> &'a str {
        &f.iter().find(|(k, _)| k == name).expect(name).1
    }

    #[test]
    fn derived_key_vector_from_symmetric_key_attestation_doc() {
        let key = derive_device_key(
            "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
            "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6",
        )
        .unwrap();
        assert_eq!(key, "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc=");
    }

    #[test]
    fn derived_key_vector_from_custom_allocation_doc() {
        let key = derive_device_key(
            "oiK77Oy7rBw8YB6IS6ukRChAw+Yq6GC61RMrPLSTiOOtdI+XDu0LmLuNm11p+qv2I+adqGUdZHm46zXAQdZoOA==",
            "breakroom499-contoso-tstrsd-007",
        )
        .unwrap();
        assert_eq!(key, "JC8F96eayuQwwz+PkE7IzjH2lIAjCUnAa61tDigBnSs=");
    }

    #[test]
    fn token_layout_and_encoding() {
        let expiry = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let token = generate_sas_token(
            "0ne00000A0A/registrations/dev 1",
            "c2VjcmV0",
            Some("registration"),
            expiry,
        )
        .unwrap();
        let f = fields(&token);
        let names: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["sr", "sig", "se", "skn"]);
        assert_eq!(field(&f, "sr"), "0ne00000A0A%2Fregistrations%2Fdev%201");
        assert_eq!(field(&f, "se"), "1700000000");
        assert_eq!(field(&f, "skn"), "registration");
        // The signature is base64, so only `+ / =` need escaping, and they must be escaped.
        assert!(!field(&f, "sig").contains(['+', '/', '=']));
    }

    #[test]
    fn known_signature() {
        // Independently computed with Python:
        // base64(hmac.new(b64decode("c2VjcmV0"), b"myhub.example%2Fdevices%2Fd1\n1700000000", sha256))
        let token = generate_sas_token(
            "myhub.example/devices/d1",
            "c2VjcmV0",
            None,
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        assert_eq!(
            token,
            "SharedAccessSignature sr=myhub.example%2Fdevices%2Fd1&sig=f2qNdRGVhI%2FR7jOMPYtA2engCVVvfdkEUW4Rrq%2FCNf8%3D&se=1700000000"
        );
    }

    #[test]
    fn rejects_bad_keys_and_expiry() {
        let later = SystemTime::now() + Duration::from_secs(60);
        assert!(matches!(
            generate_sas_token("x", "not base64!", None, later),
            Err(SasError::InvalidBase64(_))
        ));
        assert!(matches!(
            generate_sas_token("x", "", None, later),
            Err(SasError::EmptyKey)
        ));
        assert!(matches!(
            generate_sas_token("x", "c2VjcmV0", None, UNIX_EPOCH - Duration::from_secs(1)),
            Err(SasError::ExpiryBeforeEpoch)
        ));
        assert!(derive_device_key("%%%", "reg").is_err());
    }

    proptest! {
        /// Whatever the resource and key, a verifier that signs the `sr` it received and
        /// decodes `sig` gets a match, and the decoded `sr` is the original resource.
        #[test]
        fn round_trip(resource in any::<String>(), key in proptest::collection::vec(any::<u8>(), 1..64), secs in 0u64..4_000_000_000) {
            let key_b64 = BASE64.encode(&key);
            let token = generate_sas_token(&resource, &key_b64, None, UNIX_EPOCH + Duration::from_secs(secs)).unwrap();
            let f = fields(&token);
            let sr = field(&f, "sr");
            let se = field(&f, "se");
            prop_assert_eq!(decode(sr), resource);
            prop_assert_eq!(se, secs.to_string());
            let mut mac = HmacSha256::new_from_slice(&key).unwrap();
            mac.update(format!("{sr}\n{se}").as_bytes());
            let expected = BASE64.encode(mac.finalize().into_bytes());
            prop_assert_eq!(decode(field(&f, "sig")), expected);
        }
    }
}
