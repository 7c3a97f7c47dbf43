//! The attestation decision: which enrollment a registering device's credential proves.
//! An individual enrollment for the registration id decides alone; otherwise symmetric-key
//! groups are tried (the device's previous group first) or, for X.509, the groups found from
//! the chain in the documented order, the first whose CA validates the chain winning.
//! Transports parse their wire format (MQTT username, HTTP path) and call
//! [`Dps::authenticate_registration`]; the [`RegistrationIdentity`] it returns can only be
//! built here, so an unverified device cannot reach registration. The credential building
//! blocks (SAS tokens, keys, X.509 helpers) come from [`crate::auth`].

use std::sync::Arc;
use std::time::SystemTime;

use rustls_pki_types::CertificateDer;

use super::enrollment_attestation::Attestation;
use super::enrollment_x509::X509Trust;
use super::model::AttestationType;
use super::tpm_challenge::TpmDevice;
use super::{Dps, EnrollmentRef};
use crate::auth::keys::SymmetricKey;
use crate::auth::sas::{SasError, SasToken};
use crate::auth::x509::{self, CertificateInfo};
use crate::auth::{AuthError, Credential};

/// A device proven to DPS: its registration id and the enrollment that vouched for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationIdentity {
    registration_id: String,
    enrollment: EnrollmentRef,
    expires_at: Option<SystemTime>,
    x509: Option<Arc<X509Registration>>,
    tpm: Option<Arc<TpmDevice>>,
}

/// How an X.509 device proved itself to DPS: what assignment and the registration state need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Registration {
    /// The device's leaf certificate.
    pub certificate: CertificateInfo,
    /// The enrollment's CA the chain was validated against (absent for a device certificate
    /// matched directly).
    pub signing_certificate: Option<CertificateInfo>,
    /// DER of that CA: the hub trusts it for the device it creates.
    pub anchors: Vec<Vec<u8>>,
}

impl RegistrationIdentity {
    pub fn registration_id(&self) -> &str {
        &self.registration_id
    }
    pub fn enrollment(&self) -> &EnrollmentRef {
        &self.enrollment
    }
    /// When the credential stops being valid; connections are closed then.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }
    /// The same identity with its credential expiring `by` later (`crate::clock`: kept in the
    /// credential clock's frame).
    pub(crate) fn shifted(mut self, by: std::time::Duration) -> RegistrationIdentity {
        self.expires_at = self.expires_at.map(|at| at.checked_add(by).unwrap_or(at));
        self
    }
    /// Present when the device authenticated with a certificate.
    pub fn x509(&self) -> Option<&X509Registration> {
        self.x509.as_deref()
    }
    /// Present when the device proved its TPM (signed with the key of its challenge).
    pub fn tpm(&self) -> Option<&Arc<TpmDevice>> {
        self.tpm.as_ref()
    }
}

/// DPS tokens carry `skn=registration` (Node, C) or no `skn` at all (Python).
const DPS_KEY_NAME: &str = "registration";

impl Dps {
    /// Authenticates a device registering with this DPS instance.
    pub fn authenticate_registration(
        &self,
        id_scope: &str,
        registration_id: &str,
        credential: Credential<'_>,
        now: SystemTime,
    ) -> Result<RegistrationIdentity, AuthError> {
        authenticate_registration(self, id_scope, registration_id, credential, now)
    }
}

fn authenticate_registration(
    dps: &Dps,
    id_scope: &str,
    registration_id: &str,
    credential: Credential<'_>,
    now: SystemTime,
) -> Result<RegistrationIdentity, AuthError> {
    if let Some(problem) = super::validate::registration_id_problem(registration_id) {
        return Err(AuthError::InvalidRegistrationId(problem));
    }
    if !id_scope.eq_ignore_ascii_case(dps.id_scope()) {
        return Err(AuthError::UnknownIdScope(id_scope.to_owned()));
    }
    match credential {
        Credential::Sas(token) => {
            registration_by_token(dps, registration_id, &SasToken::parse(token)?, now)
        }
        Credential::ClientCertificates(chain) => {
            registration_by_certificate(dps, registration_id, chain, now)
        }
        Credential::None => Err(AuthError::MissingCredential),
    }
}

/// DPS SAS: an individual enrollment for the id decides alone (its keys, or for TPM the key
/// its challenge issued); otherwise the symmetric-key groups are tried.
fn registration_by_token(
    dps: &Dps,
    registration_id: &str,
    token: &SasToken,
    now: SystemTime,
) -> Result<RegistrationIdentity, AuthError> {
    if let Some(name) = &token.key_name
        && !name.eq_ignore_ascii_case(DPS_KEY_NAME)
    {
        return Err(SasError::WrongKeyName(name.clone()).into());
    }
    token.check_scope(
        &format!("{}/registrations/{registration_id}", dps.id_scope()),
        now,
    )?;
    let identity = |enrollment| RegistrationIdentity {
        registration_id: registration_id.to_owned(),
        enrollment,
        expires_at: Some(token.expires_at()),
        x509: None,
        tpm: None,
    };

    // An individual enrollment for this id decides alone; groups are not consulted.
    if let Some(enrollment) = dps.individual(registration_id) {
        return match &enrollment.core.attestation {
            Attestation::SymmetricKey(keys) => {
                verify_any(token, keys.keys().into_iter())?;
                Ok(identity(EnrollmentRef::Individual(
                    enrollment.registration_id,
                )))
            }
            Attestation::X509(_) => Err(AuthError::WrongCredentialType { expected: "X.509" }),
            Attestation::Tpm(keys) => {
                let enrolled = keys.endorsement_key().public();
                let device = dps
                    .tpm_challenges()
                    .verify(registration_id, token, enrolled)?;
                Ok(RegistrationIdentity {
                    tpm: Some(device),
                    ..identity(EnrollmentRef::Individual(enrollment.registration_id))
                })
            }
            other => Err(AuthError::AttestationNotSupported(attestation_name(
                other.kind(),
            ))),
        };
    }

    // Nothing in a token names its group, so the symmetric-key groups are tried (the
    // group this device verified against last time first); the signature is decoded once.
    let signature = token.signature_check();
    match dps.symmetric_key_group_for(registration_id, signature.as_ref()) {
        None => Err(AuthError::UnknownRegistration(registration_id.to_owned())),
        Some(None) => Err(SasError::BadSignature.into()),
        Some(Some(group_id)) => Ok(identity(EnrollmentRef::Group(group_id))),
    }
}

/// DPS X.509: the leaf's CN must be the registration id; an individual enrollment decides
/// alone; otherwise the groups found from the chain are tried in the documented order and the
/// first whose CA the chain validates against wins.
fn registration_by_certificate(
    dps: &Dps,
    registration_id: &str,
    chain: &[CertificateDer<'static>],
    now: SystemTime,
) -> Result<RegistrationIdentity, AuthError> {
    let leaf_der = chain.first().ok_or(AuthError::MissingCredential)?;
    let leaf = x509::inspect(leaf_der).map_err(|e| AuthError::Certificate(e.to_string()))?;
    let cn = leaf.subject_common_name.clone().unwrap_or_default();
    if !cn.eq_ignore_ascii_case(registration_id) {
        return Err(AuthError::Certificate(format!(
            "subject CN '{cn}' is not the registration id '{registration_id}'"
        )));
    }
    if !leaf.is_valid_at(now) {
        return Err(AuthError::Certificate(
            "the certificate is expired or not yet valid".into(),
        ));
    }
    let identity = |enrollment, matched: CaMatch| RegistrationIdentity {
        registration_id: registration_id.to_owned(),
        enrollment,
        expires_at: Some(leaf.not_after),
        x509: Some(Arc::new(X509Registration {
            certificate: leaf.clone(),
            signing_certificate: matched.signing_certificate,
            anchors: matched.anchors,
        })),
        tpm: None,
    };

    if let Some(enrollment) = dps.individual(registration_id) {
        let Attestation::X509(attestation) = &enrollment.core.attestation else {
            return Err(AuthError::WrongCredentialType {
                expected: attestation_name(enrollment.core.attestation.kind()),
            });
        };
        let matched = individual_certificate_match(dps, attestation, &leaf, chain, now)?;
        return Ok(identity(
            EnrollmentRef::Individual(enrollment.registration_id),
            matched,
        ));
    }

    let infos = chain
        .iter()
        .map(|der| x509::inspect(der))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AuthError::Certificate(e.to_string()))?;
    let mut first_failure = None;
    for group in dps.x509_groups_for_chain(&infos) {
        let Some(attestation) = group.core.attestation.x509() else {
            continue;
        };
        match chain_to_enrollment_ca(dps, attestation, chain, now) {
            Ok(matched) => {
                return Ok(identity(
                    EnrollmentRef::Group(group.enrollment_group_id),
                    matched,
                ));
            }
            Err(reason) => {
                first_failure
                    .get_or_insert(format!("group '{}': {reason}", group.enrollment_group_id));
            }
        }
    }
    Err(match first_failure {
        Some(reason) => AuthError::Certificate(reason),
        None => AuthError::UnknownRegistration(registration_id.to_owned()),
    })
}

/// An individual X.509 enrollment: the device's own certificate (by thumbprint), else a
/// chain to one of the enrollment's CAs.
fn individual_certificate_match(
    dps: &Dps,
    attestation: &X509Trust,
    leaf: &CertificateInfo,
    chain: &[CertificateDer<'static>],
    now: SystemTime,
) -> Result<CaMatch, AuthError> {
    if attestation
        .client_certificates()
        .iter()
        .flat_map(|c| &c.thumbprints)
        .any(|t| *t == leaf.sha1_thumbprint || *t == leaf.sha256_thumbprint)
    {
        return Ok(CaMatch {
            signing_certificate: None,
            anchors: Vec::new(),
        });
    }
    chain_to_enrollment_ca(dps, attestation, chain, now).map_err(AuthError::Certificate)
}

/// The enrollment CA a chain validated against.
struct CaMatch {
    signing_certificate: Option<CertificateInfo>,
    anchors: Vec<Vec<u8>>,
}

/// Validates `chain` against the enrollment's CAs (signing certificates and referenced store
/// certificates). The CA must be verified itself, or the chain the device sent must also reach
/// a verified certificate of the DPS store.
fn chain_to_enrollment_ca(
    dps: &Dps,
    attestation: &X509Trust,
    chain: &[CertificateDer<'static>],
    now: SystemTime,
) -> Result<CaMatch, String> {
    let store = dps.certificates();
    let mut cas: Vec<(Vec<u8>, bool)> = Vec::new();
    for cert in attestation.signing_certificates() {
        let verified = cert
            .info
            .as_ref()
            .is_some_and(|i| store.is_verified_thumbprint(&i.sha256_thumbprint));
        cas.push((cert.der.clone(), verified));
    }
    for name in attestation.ca_references() {
        match store.get(name) {
            Some(ca) if ca.is_verified => cas.push((ca.der, true)),
            Some(_) => return Err(format!("CA certificate '{name}' is not verified")),
            None => return Err(format!("no CA certificate named '{name}'")),
        }
    }
    if cas.is_empty() {
        return Err("the enrollment has no CA certificate to validate against".into());
    }
    let mut last_error = String::new();
    for (der, verified) in cas {
        match x509::validate_chain(chain, std::slice::from_ref(&der), now) {
            Ok(()) => {
                if !verified {
                    x509::validate_chain(chain, &store.verified_anchors(), now).map_err(|e| {
                        format!("the enrollment's CA is not verified and the chain sent does not reach a verified CA ({e})")
                    })?;
                }
                return Ok(CaMatch {
                    signing_certificate: x509::inspect(&der).ok(),
                    anchors: vec![der],
                });
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(last_error)
}

fn verify_any<'k>(
    token: &SasToken,
    mut keys: impl Iterator<Item = &'k SymmetricKey>,
) -> Result<(), AuthError> {
    if keys.any(|k| token.signed_with(k.as_bytes())) {
        Ok(())
    } else {
        Err(SasError::BadSignature.into())
    }
}

pub(crate) fn attestation_name(kind: AttestationType) -> &'static str {
    match kind {
        AttestationType::SymmetricKey => "symmetric key",
        AttestationType::X509 => "X.509",
        AttestationType::Tpm => "TPM",
        AttestationType::None => "'none'",
    }
}
