//! An enrollment's attestation mechanism, parsed: what a device must prove to register through
//! the enrollment. The service API's `AttestationMechanism` ([`model::AttestationMechanism`])
//! is a `type` next to three optional objects, so it can say `tpm` while carrying symmetric
//! keys; [`Attestation`] holds exactly the data of its kind, already decoded (keys as bytes,
//! TPM public areas as structures), and is made only by [`TryFrom`] from the wire form, which
//! refuses what DPS refuses. [`Attestation::to_wire`] gives the wire form back, every string as
//! the client sent it, so a read returns what was written.
//!
//! The registration flows consume it: symmetric keys sign SAS tokens, X.509 certificates and
//! CA references validate chains, and the TPM keys ([`TpmKeys`]) are what a TPM challenge is
//! wrapped to.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::enrollment_x509::X509Trust;
use super::model::{self, AttestationMechanism, AttestationType};
use super::validate::{Invalid, random_key};
use crate::auth::keys::SymmetricKey;
use crate::auth::tpm::PublicArea;
use crate::auth::tpm::protector::Protector;
use crate::auth::tpm::registration_id_from_ek;

/// The RSA size of the endorsement and storage root keys DPS accepts (the TCG default EK
/// template every TPM SDK uses).
pub(crate) const TPM_RSA_KEY_BITS: u16 = 2048;

/// Longest base64 text accepted for a TPM public area: a 2048-bit RSA `TPM2B_PUBLIC` is about
/// 420 characters; the bound only keeps absurd input from being decoded.
const MAX_TPM_KEY_TEXT: usize = 4096;

/// What a device must prove to register through an enrollment.
#[derive(Debug, Clone, PartialEq)]
pub enum Attestation {
    /// A SAS token signed with one of the keys (for a group: with the key derived from it).
    SymmetricKey(SymmetricKeys),
    /// A certificate chain: the device's own certificate, or one issued by the enrollment's
    /// signing certificates or referenced CA certificates. Boxed, like `Tpm`: both are several
    /// times the size of the symmetric keys most enrollments hold, and every enrollment would
    /// be as large as the largest variant (100,000 of them are moved and stored at start).
    X509(Box<X509Trust>),
    /// A TPM holding the endorsement key (individual enrollments only).
    Tpm(Box<TpmKeys>),
    /// `type: "none"`: stored and returned, but no device can register through it.
    None,
}

/// The two keys of a symmetric-key enrollment, decoded, each with the text it was given as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymmetricKeys {
    pub primary: EnrollmentKey,
    pub secondary: EnrollmentKey,
}

/// One symmetric key of an enrollment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentKey {
    given: String,
    key: SymmetricKey,
}

/// The keys of a TPM enrollment: the endorsement key (EK) the device's TPM holds and,
/// optionally, its storage root key (SRK).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmKeys {
    endorsement_key: TpmKey,
    storage_root_key: Option<TpmKey>,
}

/// A TPM key's public area: `TPM2B_PUBLIC` bytes (as base64 on the wire), parsed and checked
/// to be an RSA-2048 storage key a secret can be wrapped to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmKey {
    given: String,
    tpm2b: Vec<u8>,
    public: PublicArea,
}

impl Attestation {
    /// Which mechanism this is, as the wire's `type` says it.
    pub fn kind(&self) -> AttestationType {
        match self {
            Attestation::SymmetricKey(_) => AttestationType::SymmetricKey,
            Attestation::X509(_) => AttestationType::X509,
            Attestation::Tpm(_) => AttestationType::Tpm,
            Attestation::None => AttestationType::None,
        }
    }

    pub fn symmetric_keys(&self) -> Option<&SymmetricKeys> {
        match self {
            Attestation::SymmetricKey(keys) => Some(keys),
            _ => None,
        }
    }

    pub fn x509(&self) -> Option<&X509Trust> {
        match self {
            Attestation::X509(x509) => Some(x509),
            _ => None,
        }
    }

    pub fn tpm(&self) -> Option<&TpmKeys> {
        match self {
            Attestation::Tpm(tpm) => Some(tpm),
            _ => None,
        }
    }

    /// The service API's `AttestationMechanism`, every string as it was given.
    pub fn to_wire(&self) -> AttestationMechanism {
        let mut wire = AttestationMechanism {
            kind: self.kind(),
            symmetric_key: None,
            x509: None,
            tpm: None,
        };
        match self {
            Attestation::SymmetricKey(keys) => {
                wire.symmetric_key = Some(model::SymmetricKeyAttestation {
                    primary_key: Some(keys.primary.given.clone()),
                    secondary_key: Some(keys.secondary.given.clone()),
                })
            }
            Attestation::X509(x509) => wire.x509 = Some(x509.to_wire()),
            Attestation::Tpm(tpm) => {
                wire.tpm = Some(model::TpmAttestation {
                    endorsement_key: Some(tpm.endorsement_key.given.clone()),
                    storage_root_key: tpm.storage_root_key.as_ref().map(|k| k.given.clone()),
                })
            }
            Attestation::None => {}
        }
        wire
    }
}

/// Parses the wire form. Symmetric keys left out are generated (64 random bytes, as the
/// service API's PUT does); fixtures fill theirs deterministically before this. Symmetric keys
/// are moved in, not copied. Errors carry the JSON path relative to the enrollment object.
impl TryFrom<AttestationMechanism> for Attestation {
    type Error = Invalid;

    fn try_from(wire: AttestationMechanism) -> Result<Attestation, Invalid> {
        Ok(match wire.kind {
            AttestationType::SymmetricKey => {
                let keys = wire.symmetric_key.unwrap_or_default();
                Attestation::SymmetricKey(SymmetricKeys {
                    primary: EnrollmentKey::parse_or_generate(
                        "attestation.symmetricKey.primaryKey",
                        keys.primary_key,
                    )?,
                    secondary: EnrollmentKey::parse_or_generate(
                        "attestation.symmetricKey.secondaryKey",
                        keys.secondary_key,
                    )?,
                })
            }
            AttestationType::X509 => {
                let x509 = wire.x509.as_ref().ok_or_else(|| {
                    Invalid::new("attestation.x509", "required when type is x509")
                })?;
                Attestation::X509(Box::new(X509Trust::try_from(x509)?))
            }
            AttestationType::Tpm => {
                let tpm = wire
                    .tpm
                    .as_ref()
                    .ok_or_else(|| Invalid::new("attestation.tpm", "required when type is tpm"))?;
                Attestation::Tpm(Box::new(TpmKeys::try_from(tpm)?))
            }
            AttestationType::None => Attestation::None,
        })
    }
}

impl TryFrom<&AttestationMechanism> for Attestation {
    type Error = Invalid;

    fn try_from(wire: &AttestationMechanism) -> Result<Attestation, Invalid> {
        Attestation::try_from(wire.clone())
    }
}

impl SymmetricKeys {
    /// Both keys, primary first.
    pub fn keys(&self) -> [&SymmetricKey; 2] {
        [self.primary.key(), self.secondary.key()]
    }
}

impl EnrollmentKey {
    /// A base64 key of 16–64 bytes.
    pub fn parse(path: &str, given: &str) -> Result<EnrollmentKey, Invalid> {
        EnrollmentKey::parse_owned(path, given.to_owned())
    }

    /// [`EnrollmentKey::parse`], keeping the text it is given.
    fn parse_owned(path: &str, given: String) -> Result<EnrollmentKey, Invalid> {
        let key = SymmetricKey::from_base64(&given)
            .map_err(|e| Invalid::new(path, format!("invalid symmetric key: {e}")))?;
        Ok(EnrollmentKey { given, key })
    }

    fn parse_or_generate(path: &str, given: Option<String>) -> Result<EnrollmentKey, Invalid> {
        EnrollmentKey::parse_owned(path, given.unwrap_or_else(random_key))
    }

    pub fn key(&self) -> &SymmetricKey {
        &self.key
    }

    /// The base64 text the key was given as.
    pub fn as_given(&self) -> &str {
        &self.given
    }
}

impl TryFrom<&model::TpmAttestation> for TpmKeys {
    type Error = Invalid;

    fn try_from(wire: &model::TpmAttestation) -> Result<TpmKeys, Invalid> {
        let ek_path = "attestation.tpm.endorsementKey";
        let endorsement_key = wire
            .endorsement_key
            .as_deref()
            .ok_or_else(|| Invalid::new(ek_path, "required when type is tpm"))?;
        Ok(TpmKeys {
            endorsement_key: TpmKey::parse(ek_path, "EK", endorsement_key)?,
            storage_root_key: wire
                .storage_root_key
                .as_deref()
                .map(|srk| TpmKey::parse("attestation.tpm.storageRootKey", "SRK", srk))
                .transpose()?,
        })
    }
}

impl TpmKeys {
    /// The endorsement key the device's TPM must hold.
    pub fn endorsement_key(&self) -> &TpmKey {
        &self.endorsement_key
    }

    /// The storage root key, when the enrollment gives one (devices send theirs when they
    /// register).
    pub fn storage_root_key(&self) -> Option<&TpmKey> {
        self.storage_root_key.as_ref()
    }

    /// Whether `sent` (base64 `TPM2B_PUBLIC`, as a registering device sends its EK) is this
    /// enrollment's endorsement key. Compared as bytes, so base64 spelling does not matter.
    pub fn is_endorsement_key(&self, sent: &str) -> bool {
        decode_tpm2b(sent).is_some_and(|bytes| bytes == self.endorsement_key.tpm2b)
    }
}

impl TpmKey {
    /// Parses base64 `TPM2B_PUBLIC` text; `role` ("EK", "SRK") names the key in messages.
    pub fn parse(path: &str, role: &'static str, given: &str) -> Result<TpmKey, Invalid> {
        let invalid = |reason: String| Invalid::new(path, reason);
        let tpm2b = decode_tpm2b(given)
            .ok_or_else(|| invalid("is not base64 of a TPM2B_PUBLIC".to_owned()))?;
        let public = PublicArea::from_tpm2b(&tpm2b)
            .map_err(|e| invalid(format!("is not a TPM2B_PUBLIC: {e}")))?;
        let bits = public.rsa().map(|rsa| rsa.key_bits);
        if bits != Some(TPM_RSA_KEY_BITS) {
            return Err(invalid(format!(
                "the {role} must be an RSA-{TPM_RSA_KEY_BITS} key"
            )));
        }
        Protector::new(&public, role).map_err(|e| invalid(e.to_string()))?;
        Ok(TpmKey {
            given: given.to_owned(),
            tpm2b,
            public,
        })
    }

    /// The base64 text the key was given as.
    pub fn as_given(&self) -> &str {
        &self.given
    }

    /// The marshalled `TPM2B_PUBLIC` (size included).
    pub fn tpm2b(&self) -> &[u8] {
        &self.tpm2b
    }

    /// The parsed public area.
    pub fn public(&self) -> &PublicArea {
        &self.public
    }

    /// The key as a wrapping target (RSA key, name, symmetric key size); parsing checked it
    /// already, so this does not fail for a key made by [`TpmKey::parse`].
    pub fn protector(&self, role: &'static str) -> Result<Protector, crate::auth::tpm::TpmError> {
        Protector::new(&self.public, role)
    }

    /// The registration id the SDKs derive from this key when it is an EK.
    pub fn derived_registration_id(&self) -> String {
        registration_id_from_ek(&self.tpm2b)
    }
}

fn decode_tpm2b(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() > MAX_TPM_KEY_TEXT {
        return None;
    }
    BASE64.decode(text).ok()
}

#[cfg(test)]
mod tests;
