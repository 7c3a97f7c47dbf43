//! Symmetric keys: validated base64 key material, and the device keys DPS derives for
//! members of a symmetric-key enrollment group (protocol.md §1.5). [`GroupKeyDeriver`] keeps a
//! group key's HMAC state keyed once, because a first registration through a group derives a
//! key from every candidate group's key.

use super::group_hmac::KeyedHmac;
use super::sas::hmac_sha256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Azure accepts symmetric keys of 16 to 64 bytes (concepts-symmetric-key-attestation.md).
pub(crate) const MIN_KEY_BYTES: usize = 16;
pub(crate) const MAX_KEY_BYTES: usize = 64;

/// A decoded symmetric key that came in as valid base64 of an accepted length.
#[derive(Clone, PartialEq, Eq)]
pub struct SymmetricKey {
    bytes: Vec<u8>,
}

/// Stored (durable state) as its base64 text, and checked again when read back.
impl serde::Serialize for SymmetricKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> serde::Deserialize<'de> for SymmetricKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        SymmetricKey::from_base64(&text).map_err(|e| serde::de::Error::custom(e.to_string()))
    }
}

impl std::fmt::Debug for SymmetricKey {
    // Keys never end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SymmetricKey({} bytes)", self.bytes.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not valid base64")]
    NotBase64,
    #[error("decodes to {0} bytes; keys must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes")]
    BadLength(usize),
}

impl SymmetricKey {
    pub fn from_base64(text: &str) -> Result<SymmetricKey, KeyError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| KeyError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&bytes.len()) {
            return Err(KeyError::BadLength(bytes.len()));
        }
        Ok(SymmetricKey { bytes })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.bytes)
    }

    /// The key a device in this enrollment group signs with:
    /// `base64(HMAC-SHA256(group key, registrationId))`.
    pub fn derive_device_key(&self, registration_id: &str) -> SymmetricKey {
        SymmetricKey {
            bytes: hmac_sha256(&self.bytes, registration_id.as_bytes()).to_vec(),
        }
    }
}

/// A group key with its HMAC-SHA256 state already keyed (the ipad and opad blocks hashed):
/// deriving a device key starts from those states instead of hashing the key again, two
/// SHA-256 blocks fewer per derivation (see [`super::group_hmac`]).
#[derive(Clone, Debug)]
pub(crate) struct GroupKeyDeriver {
    keyed: KeyedHmac,
}

impl GroupKeyDeriver {
    pub(crate) fn new(group_key: &SymmetricKey) -> GroupKeyDeriver {
        GroupKeyDeriver {
            keyed: KeyedHmac::new(&group_key.bytes),
        }
    }

    /// The raw device key, as [`SymmetricKey::derive_device_key`] computes it.
    #[cfg(test)]
    pub(crate) fn derive(&self, registration_id: &str) -> [u8; 32] {
        self.keyed.mac_bytes(registration_id.as_bytes())
    }

    /// The keyed states, for [`super::group_hmac::DerivedSignatureCheck`].
    pub(crate) fn keyed(&self) -> &KeyedHmac {
        &self.keyed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyed_deriver_agrees_with_derive_device_key() {
        for group in [
            "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
            "MDEyMzQ1Njc4OWFiY2RlZg==",
        ] {
            let group = SymmetricKey::from_base64(group).unwrap();
            let deriver = GroupKeyDeriver::new(&group);
            for id in [
                "a",
                "sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6",
                &"x".repeat(128),
            ] {
                assert_eq!(
                    deriver.derive(id).as_slice(),
                    group.derive_device_key(id).as_bytes()
                );
            }
        }
    }

    #[test]
    fn derives_the_documented_device_keys() {
        // concepts-symmetric-key-attestation.md
        let group = SymmetricKey::from_base64(
            "8isrFI1sGsIlvvFSSFRiMfCNzv21fjbE/+ah/lSh3lF8e2YG1Te7w1KpZhJFFXJrqYKi9yegxkqIChbqOS9Egw==",
        )
        .unwrap();
        assert_eq!(
            group
                .derive_device_key("sn-007-888-abc-mac-a1-b2-c3-d4-e5-f6")
                .to_base64(),
            "Jsm0lyGpjaVYVP2g3FnmnmG9dI/9qU24wNoykUmermc="
        );
        // how-to-use-custom-allocation-policies.md
        let group = SymmetricKey::from_base64(
            "oiK77Oy7rBw8YB6IS6ukRChAw+Yq6GC61RMrPLSTiOOtdI+XDu0LmLuNm11p+qv2I+adqGUdZHm46zXAQdZoOA==",
        )
        .unwrap();
        assert_eq!(
            group
                .derive_device_key("breakroom499-contoso-tstrsd-007")
                .to_base64(),
            "JC8F96eayuQwwz+PkE7IzjH2lIAjCUnAa61tDigBnSs="
        );
    }

    #[test]
    fn rejects_bad_key_material() {
        assert_eq!(SymmetricKey::from_base64("***"), Err(KeyError::NotBase64));
        assert_eq!(
            SymmetricKey::from_base64("c2hvcnQ="),
            Err(KeyError::BadLength(5))
        );
        assert!(SymmetricKey::from_base64(&BASE64.encode([7u8; 65])).is_err());
        assert!(SymmetricKey::from_base64(&BASE64.encode([7u8; 64])).is_ok());
    }
}
