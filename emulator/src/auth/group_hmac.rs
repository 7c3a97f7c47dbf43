//! HMAC-SHA256 on raw SHA-256 states, for the one loop where it is the whole cost: a first
//! registration through a symmetric-key enrollment group tries every group until one's derived
//! device key verifies the token (nothing in a token names its group).
//!
//! Per candidate group that is `HMAC(HMAC(groupKey, registrationId), message)`, seven SHA-256
//! blocks that nothing can share across candidates (each derived key is different). What can
//! be done once is done once: a group's key is hashed into its ipad/opad states when the group
//! snapshot is built ([`KeyedHmac`]), and per registration the registration id and the token's
//! message are padded into their final blocks and the signature decoded into words
//! ([`DerivedSignatureCheck`]). A candidate is then exactly seven block compressions on stack
//! arrays — no allocation, no buffering, no hasher objects — which is what brings the
//! per-group cost down. Agreement with the `hmac` crate is tested below.

use sha2::compress256;
use sha2::digest::generic_array::GenericArray;
use sha2::digest::generic_array::typenum::U64;

type Block = GenericArray<u8, U64>;

/// SHA-256's initial state (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

const IPAD: u8 = 0x36;
const OPAD: u8 = 0x5c;

/// An HMAC-SHA256 key with its ipad and opad blocks already hashed (RFC 2104).
#[derive(Clone)]
pub(crate) struct KeyedHmac {
    inner: [u32; 8],
    outer: [u32; 8],
}

impl std::fmt::Debug for KeyedHmac {
    // Key material never ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHmac")
    }
}

impl KeyedHmac {
    pub(crate) fn new(key: &[u8]) -> KeyedHmac {
        // Keys longer than a block are hashed first (RFC 2104); symmetric keys are at most
        // 64 bytes, so this is only for completeness.
        let mut block = [0u8; 64];
        if key.len() > 64 {
            use sha2::Digest as _;
            block[..32].copy_from_slice(&sha2::Sha256::digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        KeyedHmac {
            inner: state_after(&pad_block(&block, IPAD)),
            outer: state_after(&pad_block(&block, OPAD)),
        }
    }

    /// `HMAC(key, message)` for a message prepared with [`tail_blocks`].
    fn mac(&self, message_tail: &[Block]) -> [u32; 8] {
        let mut inner = self.inner;
        compress256(&mut inner, message_tail);
        let mut outer = self.outer;
        compress256(&mut outer, &[digest_block(&inner)]);
        outer
    }

    /// `HMAC(key, message)` as bytes.
    #[cfg(test)]
    pub(crate) fn mac_bytes(&self, message: &[u8]) -> [u8; 32] {
        to_bytes(&self.mac(&tail_blocks(message)))
    }
}

/// A token's signature, prepared for checking it against the device keys that many candidate
/// group keys derive for one registration id.
pub(crate) struct DerivedSignatureCheck {
    id_tail: Vec<Block>,
    message_tail: Vec<Block>,
    /// `None` when the signature is not 32 bytes: no HMAC-SHA256 matches it.
    signature: Option<[u32; 8]>,
}

impl DerivedSignatureCheck {
    /// `message` is what the device signed (`sr` as sent, a newline, `se` as sent), in parts.
    pub(crate) fn new(
        registration_id: &str,
        message: &[&[u8]],
        signature: &[u8],
    ) -> DerivedSignatureCheck {
        let signature = <[u8; 32]>::try_from(signature).ok().map(|bytes| {
            let mut words = [0u32; 8];
            for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(4)) {
                *word = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            }
            words
        });
        DerivedSignatureCheck {
            id_tail: tail_blocks(registration_id.as_bytes()),
            message_tail: tail_blocks(&message.concat()),
            signature,
        }
    }

    /// True when the signature was made with the device key `group` derives for this
    /// registration id (`HMAC(HMAC(group, id), message)`). Compares without an early exit.
    pub(crate) fn signed_by_member_of(&self, group: &KeyedHmac) -> bool {
        let Some(expected) = &self.signature else {
            return false;
        };
        let derived = group.mac(&self.id_tail);
        let mut inner = state_after(&key_block(&derived, IPAD));
        compress256(&mut inner, &self.message_tail);
        let mut outer = IV;
        compress256(
            &mut outer,
            &[key_block(&derived, OPAD), digest_block(&inner)],
        );
        outer
            .iter()
            .zip(expected)
            .fold(0u32, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

/// The state after hashing one block from the initial state.
fn state_after(block: &Block) -> [u32; 8] {
    let mut state = IV;
    compress256(&mut state, std::slice::from_ref(block));
    state
}

fn pad_block(key: &[u8; 64], pad: u8) -> Block {
    let mut block = Block::default();
    for (b, k) in block.iter_mut().zip(key) {
        *b = k ^ pad;
    }
    block
}

/// A 32-byte key (a digest, as words) zero-padded to a block and XORed with `pad`.
fn key_block(key: &[u32; 8], pad: u8) -> Block {
    let mut block = Block::default();
    block.fill(pad);
    let pad_word = u32::from_ne_bytes([pad; 4]);
    for (chunk, word) in block.chunks_exact_mut(4).zip(key) {
        chunk.copy_from_slice(&(word ^ pad_word).to_be_bytes());
    }
    block
}

/// A digest (as words) as the last block of an HMAC's outer hash: it follows one 64-byte block,
/// so the message is 96 bytes long in all.
fn digest_block(digest: &[u32; 8]) -> Block {
    let mut block = Block::default();
    for (chunk, word) in block.chunks_exact_mut(4).zip(digest) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    block[32] = 0x80;
    block[56..].copy_from_slice(&(96u64 * 8).to_be_bytes());
    block
}

/// `message` padded as the rest of a hash whose first 64-byte block is already hashed.
fn tail_blocks(message: &[u8]) -> Vec<Block> {
    let bits = u64::try_from(message.len())
        .unwrap_or(u64::MAX)
        .saturating_add(64)
        .saturating_mul(8);
    let mut bytes = Vec::with_capacity(message.len() + 72);
    bytes.extend_from_slice(message);
    bytes.push(0x80);
    while bytes.len() % 64 != 56 {
        bytes.push(0);
    }
    bytes.extend_from_slice(&bits.to_be_bytes());
    bytes
        .chunks_exact(64)
        .map(Block::clone_from_slice)
        .collect()
}

#[cfg(test)]
fn to_bytes(words: &[u32; 8]) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (chunk, word) in bytes.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    bytes
}

#[cfg(test)]
mod tests {
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    use super::*;

    fn reference(key: &[u8], message: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    #[test]
    fn agrees_with_the_hmac_crate_at_every_padding_boundary() {
        for key_len in [1, 16, 32, 55, 56, 63, 64, 65, 100] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 7 + 1) as u8).collect();
            let keyed = KeyedHmac::new(&key);
            for len in 0..200 {
                let message: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
                assert_eq!(
                    keyed.mac_bytes(&message),
                    reference(&key, &message),
                    "key {key_len} message {len}"
                );
            }
        }
    }

    #[test]
    fn checks_a_derived_signature_exactly() {
        let group = b"0123456789abcdef0123456789abcdef";
        let other = b"fedcba9876543210fedcba9876543210";
        for id in ["a", "bench-grp-12345", &"x".repeat(55), &"y".repeat(128)] {
            let device = reference(group, id.as_bytes());
            for resource in [
                "s",
                "0ne00000000%2Fregistrations%2Fbench-grp-12345",
                &"r".repeat(120),
            ] {
                let message = format!("{resource}\n1999999999");
                let signature = reference(&device, message.as_bytes());
                let parts: [&[u8]; 3] = [resource.as_bytes(), b"\n", b"1999999999"];
                let check = DerivedSignatureCheck::new(id, &parts, &signature);
                assert!(check.signed_by_member_of(&KeyedHmac::new(group)));
                assert!(!check.signed_by_member_of(&KeyedHmac::new(other)));
                let mut flipped = signature;
                flipped[31] ^= 1;
                let check = DerivedSignatureCheck::new(id, &parts, &flipped);
                assert!(!check.signed_by_member_of(&KeyedHmac::new(group)));
                let check = DerivedSignatureCheck::new(id, &parts, &signature[..31]);
                assert!(!check.signed_by_member_of(&KeyedHmac::new(group)));
                let other_id = format!("{id}z");
                let check = DerivedSignatureCheck::new(&other_id, &parts, &signature);
                assert!(!check.signed_by_member_of(&KeyedHmac::new(group)));
            }
        }
    }
}
