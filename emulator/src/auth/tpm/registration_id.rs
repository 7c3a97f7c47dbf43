//! The registration id a TPM device computes from its EK when none is configured: lower-case
//! RFC 4648 base32, without padding, of SHA-256 over the EK's `TPM2B_PUBLIC` (size included).
//! The Node and C SDKs agree on it (spec/tpm.md Q3), and it is what an enrollment made from an
//! EK alone is keyed by.

use sha2::{Digest, Sha256};

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The SDKs' registration id for the EK marshalled as `ek_tpm2b`.
pub fn registration_id_from_ek(ek_tpm2b: &[u8]) -> String {
    base32_lower(&Sha256::digest(ek_tpm2b))
}

fn base32_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol(buffer >> bits));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(symbol(buffer << (5 - bits)));
    }
    out
}

fn symbol(index: u32) -> char {
    ALPHABET
        .get((index & 31) as usize)
        .copied()
        .map_or('a', char::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_matches_rfc4648_vectors_in_lower_case_without_padding() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32_lower(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn a_registration_id_is_52_lower_case_characters() {
        let id = registration_id_from_ek(b"any bytes");
        assert_eq!(id.len(), 52);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c))
        );
    }
}
