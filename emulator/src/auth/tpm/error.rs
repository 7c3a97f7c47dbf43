//! The one error type of the TPM building blocks.
//!
//! Everything here reads bytes a device sent (its EK and SRK public areas) or bytes a TPM
//! produced, so every length is checked and every malformed input ends as a [`TpmError`] the
//! caller maps to Azure's 400/401 codes; nothing panics.

/// Why a TPM structure was refused or an operation could not be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TpmError {
    #[error("{what}: {needed} bytes needed, {available} left")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("{what}: {count} unexpected trailing bytes")]
    TrailingBytes { what: &'static str, count: usize },
    #[error("{what}: {len} bytes is more than the {max} allowed")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what}: unsupported algorithm 0x{alg:04x}")]
    UnsupportedAlgorithm { what: &'static str, alg: u16 },
    #[error("{what}: {reason}")]
    Unsuitable {
        what: &'static str,
        reason: &'static str,
    },
    #[error("RSA key refused: {0}")]
    RsaKey(String),
    #[error("RSA-OAEP encryption failed: {0}")]
    Encryption(String),
    #[error("not valid base64")]
    Base64,
}
