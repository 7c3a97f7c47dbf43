//! Verifying the SAS token a TPM device signs with the identity key it imported: proof that
//! the device's TPM opened the challenge, hence owns the enrolled EK.
//!
//! The token is an ordinary DPS token (HMAC-SHA256 over `sr` exactly as sent, `\n`, `se`;
//! `skn=registration`) keyed with the bytes the server put in the blob, so the shared SAS
//! rules of [`crate::auth::sas`] apply unchanged.

use std::time::SystemTime;

use crate::auth::sas::{SasError, SasToken};

/// The key name DPS tokens carry; absent is accepted as for symmetric-key devices.
const KEY_NAME: &str = "registration";

/// Checks that `token` is signed with `key` (the identity key of the challenge) for
/// `{id_scope}/registrations/{registration_id}` and not expired; returns its expiry.
pub fn verify_token(
    token: &str,
    id_scope: &str,
    registration_id: &str,
    key: &[u8],
    now: SystemTime,
) -> Result<SystemTime, SasError> {
    let token = SasToken::parse(token)?;
    if let Some(name) = &token.key_name
        && !name.eq_ignore_ascii_case(KEY_NAME)
    {
        return Err(SasError::WrongKeyName(name.clone()));
    }
    token.check_scope(&format!("{id_scope}/registrations/{registration_id}"), now)?;
    if !token.signed_with(key) {
        return Err(SasError::BadSignature);
    }
    Ok(token.expires_at())
}
