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

pub(crate) mod alg;
pub(crate) mod authentication_key;
pub(crate) mod credential;
pub(crate) mod duplicate;
mod error;
pub(crate) mod identity_key;
pub(crate) mod kdf;
pub(crate) mod name;
pub(crate) mod protector;
pub(crate) mod public;
pub(crate) mod registration_id;
pub(crate) mod secret;
pub(crate) mod software;
pub(crate) mod symmetric;
pub(crate) mod wire;

#[cfg(test)]
mod tests;

pub(crate) use authentication_key::build_authentication_key;
pub(crate) use error::TpmError;
pub(crate) use public::PublicArea;
pub use registration_id::registration_id_from_ek;

/// The `keyName` of the 401 challenge body; the C SDK requires the field, and this is the
/// value Azure's service SDK models default to.
pub(crate) const CHALLENGE_KEY_NAME: &str = "registration";
