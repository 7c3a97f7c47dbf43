//! AES in CFB mode with a zero IV: how the TPM encrypts a credential (`encIdentity`) and both
//! wrappers of a duplicate (Part 1 §22.4, §23.3.2.3). A zero IV is safe there because every key
//! is used once: it is derived from a fresh seed, or it is a fresh inner key.

use aes::{Aes128, Aes256};
use cfb_mode::cipher::{AsyncStreamCipher, KeyIvInit};
use cfb_mode::{Decryptor, Encryptor};

use super::TpmError;

const ZERO_IV: [u8; 16] = [0; 16];

/// Encrypts `data` in place with AES-128-CFB or AES-256-CFB, chosen by the key length.
pub(crate) fn cfb_encrypt(key: &[u8], data: &mut [u8]) -> Result<(), TpmError> {
    match key.len() {
        16 => Encryptor::<Aes128>::new_from_slices(key, &ZERO_IV)
            .map_err(|_| bad_key(key))?
            .encrypt(data),
        32 => Encryptor::<Aes256>::new_from_slices(key, &ZERO_IV)
            .map_err(|_| bad_key(key))?
            .encrypt(data),
        _ => return Err(bad_key(key)),
    }
    Ok(())
}

/// Decrypts `data` in place; the inverse of [`cfb_encrypt`].
pub(crate) fn cfb_decrypt(key: &[u8], data: &mut [u8]) -> Result<(), TpmError> {
    match key.len() {
        16 => Decryptor::<Aes128>::new_from_slices(key, &ZERO_IV)
            .map_err(|_| bad_key(key))?
            .decrypt(data),
        32 => Decryptor::<Aes256>::new_from_slices(key, &ZERO_IV)
            .map_err(|_| bad_key(key))?
            .decrypt(data),
        _ => return Err(bad_key(key)),
    }
    Ok(())
}

fn bad_key(key: &[u8]) -> TpmError {
    TpmError::Unsuitable {
        what: "AES-CFB key",
        reason: if key.is_empty() {
            "empty"
        } else {
            "not 16 or 32 bytes"
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfb_round_trips_any_length_and_refuses_odd_keys() {
        for key in [[3u8; 16].as_slice(), [4u8; 32].as_slice()] {
            let plain: Vec<u8> = (0..37).collect();
            let mut data = plain.clone();
            cfb_encrypt(key, &mut data).unwrap();
            assert_ne!(data, plain);
            cfb_decrypt(key, &mut data).unwrap();
            assert_eq!(data, plain);
        }
        assert!(cfb_encrypt(&[0; 24], &mut [0; 4]).is_err());
        assert!(cfb_decrypt(&[], &mut [0; 4]).is_err());
    }
}
