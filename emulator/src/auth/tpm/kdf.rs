//! KDFa (TPM 2.0 Part 1 §11.4.10.2) with HMAC-SHA256: the counter-mode KDF of SP 800-108 that
//! turns a seed into the symmetric key ("STORAGE") and HMAC key ("INTEGRITY") of a wrapped
//! secret.
//!
//! Each block is `HMAC(key, u32 i || label || 0x00 || contextU || contextV || u32 bits)`, for
//! `i` from 1, concatenated and cut to `bits`. Callers only ask for whole bytes.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The labels this module derives with; the TPM appends the terminating NUL itself, as here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Label {
    /// The symmetric key that encrypts a credential or a duplicate.
    Storage,
    /// The HMAC key of the outer integrity check.
    Integrity,
}

impl Label {
    fn bytes(self) -> &'static [u8] {
        match self {
            Label::Storage => b"STORAGE\0",
            Label::Integrity => b"INTEGRITY\0",
        }
    }
}

/// `bytes` bytes of KDFa-SHA256(key, label, context_u, context_v).
pub(crate) fn kdfa_sha256(
    key: &[u8],
    label: Label,
    context_u: &[u8],
    context_v: &[u8],
    bytes: u16,
) -> Vec<u8> {
    let wanted = usize::from(bytes);
    let bits = u32::from(bytes) * 8;
    let mut out = Vec::with_capacity(wanted + 32);
    let mut counter: u32 = 0;
    while out.len() < wanted {
        counter += 1;
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
        mac.update(&counter.to_be_bytes());
        mac.update(label.bytes());
        mac.update(context_u);
        mac.update(context_v);
        mac.update(&bits.to_be_bytes());
        out.extend_from_slice(&mac.finalize().into_bytes());
    }
    out.truncate(wanted);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_block_is_the_hmac_of_the_documented_input() {
        let key = [7u8; 32];
        let mut mac = HmacSha256::new_from_slice(&key).unwrap();
        mac.update(&[0, 0, 0, 1]);
        mac.update(b"STORAGE\0");
        mac.update(b"ctx-u");
        mac.update(&[0, 0, 0, 128]);
        let expected = mac.finalize().into_bytes();
        let derived = kdfa_sha256(&key, Label::Storage, b"ctx-u", &[], 16);
        assert_eq!(derived, expected[..16]);
    }

    #[test]
    fn longer_outputs_continue_the_counter_and_zero_is_empty() {
        let key = [1u8; 32];
        let long = kdfa_sha256(&key, Label::Integrity, &[], &[], 48);
        assert_eq!(long.len(), 48);
        // The bit count is part of every block, so a 48-byte key does not start like a
        // 32-byte one.
        assert_ne!(
            long[..32],
            kdfa_sha256(&key, Label::Integrity, &[], &[], 32)[..]
        );
        assert!(kdfa_sha256(&key, Label::Storage, &[], &[], 0).is_empty());
    }
}
