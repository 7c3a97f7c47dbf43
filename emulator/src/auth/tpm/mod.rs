//! TPM attestation building blocks (spec/tpm.md): what DPS needs to challenge a TPM device
//! without a TPM of its own.
//!
//! A device proves it owns an enrolled endorsement key (EK) by importing a key the server
//! wrapped for that EK and its storage root key (SRK), then signing SAS tokens with it. The
//! server side is pure computation — RSA-OAEP, AES-CFB, HMAC-SHA256 and KDFa from RustCrypto
//! crates, randomness passed in — and lives here, one concept per file:
//!
//! * [`wire`] — `TPM2B` marshalling with checked lengths;
//! * [`public`] — `TPM2B_PUBLIC` parsing (the device's EK and SRK) and writing (identity key);
//! * [`name`] — object names; [`registration_id`] — the SDKs' id derived from the EK;
//! * [`kdf`] — KDFa; [`symmetric`] — AES-CFB; [`secret`] — RSA-OAEP seeds with their labels;
//! * [`protector`] — checks that an EK/SRK is a storage key secrets can be wrapped to;
//! * [`credential`] — MakeCredential; [`identity_key`] and [`duplicate`] — the HMAC key and
//!   its import wrapping; [`authentication_key`] — the blob the device receives;
//! * [`token`] — verifying the SAS the device signs with the imported key;
//! * [`software`] — the device side in software (activate, import, HMAC), for tests.
//!
//! Which enrollment an EK matches and when a challenge is sent are DPS decisions (`dps`).
//! The unit tests replay blobs that Debian's `swtpm` accepted (testdata/README.md).

pub mod alg;
pub mod authentication_key;
pub mod credential;
pub mod duplicate;
mod error;
pub mod identity_key;
pub mod kdf;
pub mod name;
pub mod protector;
pub mod public;
pub mod registration_id;
pub mod secret;
pub mod software;
pub mod symmetric;
pub mod token;
pub mod wire;

#[cfg(test)]
mod tests;

pub use authentication_key::{AuthenticationKeyParts, build_authentication_key};
pub use error::TpmError;
pub use public::PublicArea;
pub use registration_id::registration_id_from_ek;

/// The `keyName` of the 401 challenge body; the C SDK requires the field, and this is the
/// value Azure's service SDK models default to.
pub const CHALLENGE_KEY_NAME: &str = "registration";

/// The persistent handle both SDKs evict the imported identity key to.
pub const IDENTITY_KEY_HANDLE: u32 = 0x8100_0100;
