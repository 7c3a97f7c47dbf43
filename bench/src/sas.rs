//! Shared access signatures as Azure devices compute them (HMAC-SHA256 over the URL-encoded
//! resource URI, a newline and the expiry; the key is the base64-decoded device key) and the
//! group-derived device key of DPS symmetric-key enrollment groups (HMAC of the registration
//! id under the group key). Written from Microsoft's public documentation, not from iotemu.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sha2::Sha256;

/// What JavaScript's `encodeURIComponent` leaves alone, as the Azure SDKs encode `sr` and `sig`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

fn hmac_b64(key: &[u8], message: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Decodes a base64 key, or says which one is broken.
pub fn decode_key(key_b64: &str) -> Result<Vec<u8>, String> {
    STANDARD
        .decode(key_b64)
        .map_err(|e| format!("key {key_b64:?} is not base64: {e}"))
}

/// The device key of `registration_id` in a symmetric-key enrollment group with `group_key`.
pub fn derive_device_key(group_key: &[u8], registration_id: &str) -> String {
    hmac_b64(group_key, registration_id.as_bytes())
}

/// `SharedAccessSignature sr=…&sig=…&se=…[&skn=…]` for `resource` signed with `key`.
pub fn token(resource: &str, key: &[u8], key_name: Option<&str>, expiry: u64) -> String {
    let sr = utf8_percent_encode(resource, COMPONENT).to_string();
    let sig = hmac_b64(key, format!("{sr}\n{expiry}").as_bytes());
    let sig = utf8_percent_encode(&sig, COMPONENT);
    let mut token = format!("SharedAccessSignature sr={sr}&sig={sig}&se={expiry}");
    if let Some(name) = key_name {
        token.push_str("&skn=");
        token.push_str(name);
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_key_is_the_hmac_of_the_registration_id() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let derived = derive_device_key(b"Jefe", "what do ya want for nothing?");
        assert_eq!(
            STANDARD.decode(derived).unwrap(),
            [
                0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95,
                0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9,
                0x64, 0xec, 0x38, 0x43
            ]
        );
    }

    #[test]
    fn token_encodes_the_resource_and_signs_the_encoded_form() {
        let key = b"k";
        let t = token(
            "0ne1/registrations/dev-1",
            key,
            Some("registration"),
            1700000000,
        );
        let expected_sig = hmac_b64(key, b"0ne1%2Fregistrations%2Fdev-1\n1700000000");
        let expected_sig = utf8_percent_encode(&expected_sig, COMPONENT).to_string();
        assert_eq!(
            t,
            format!(
                "SharedAccessSignature sr=0ne1%2Fregistrations%2Fdev-1&sig={expected_sig}&se=1700000000&skn=registration"
            )
        );
        assert!(!token("h/devices/d", key, None, 1).contains("skn"));
    }

    #[test]
    fn broken_base64_keys_are_reported() {
        assert!(decode_key("not base64!").is_err());
        assert_eq!(decode_key("AAEC").unwrap(), vec![0, 1, 2]);
    }
}
