//! Credentials: the building blocks that prove who a caller is — SAS tokens ([`sas`]), keys
//! ([`keys`]), X.509 helpers ([`x509`]), shared access policies ([`policy`]) and service
//! tokens — plus [`Credential`] (what a connection presented) and [`AuthError`].
//!
//! Transports never decide trust. They parse their wire format (MQTT username, HTTP path),
//! then ask the domain: DPS attests a registration (`crate::dps::attestation`), a hub
//! authenticates its devices (`crate::hub::authentication`). The identities returned can only
//! be built by the domain that decided, so an unverified identity cannot reach it.

pub(crate) mod blob_sas;
mod group_hmac;
pub(crate) mod keys;
pub(crate) mod policy;
pub(crate) mod sas;
mod service;
pub(crate) mod tpm;
pub mod x509;

pub(crate) use service::{
    ServiceGrant, authenticate_service, authenticate_service_token, split_resource,
};

use sas::SasError;

/// What a client presented.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// A SAS token (MQTT password, HTTP `Authorization`).
    Sas(&'a str),
    /// The DER chain the client sent during the TLS handshake, leaf first.
    ClientCertificates(&'a [rustls_pki_types::CertificateDer<'static>]),
    None,
}

/// Why authentication failed. Devices only learn "not authorized" (or "disabled"); the
/// reason is for the emulator's log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("unknown id scope '{0}'")]
    UnknownIdScope(String),
    #[error("no enrollment matches registration id '{0}'")]
    UnknownRegistration(String),
    #[error("unknown hub '{0}'")]
    UnknownHub(String),
    #[error("device '{0}' is not registered in the hub")]
    UnknownDevice(String),
    #[error("device '{0}' is disabled")]
    DeviceDisabled(String),
    #[error("policy '{0}' does not exist or does not grant {1}")]
    PolicyNotAllowed(String, &'static str),
    #[error("{0}")]
    Token(#[from] SasError),
    #[error("{0} attestation is not supported yet")]
    AttestationNotSupported(&'static str),
    #[error("no credential presented")]
    MissingCredential,
    /// A TPM device whose EK, SRK or enrollment cannot be challenged.
    #[error("TPM attestation refused: {0}")]
    TpmRefused(String),
    /// A token from a TPM device that was sent no challenge (or whose key was forgotten).
    #[error("no TPM challenge was issued to this registration id")]
    TpmNotChallenged,
    #[error("certificate refused: {0}")]
    Certificate(String),
    #[error("the enrollment or device expects {expected} authentication")]
    WrongCredentialType { expected: &'static str },
    /// Not an authentication failure but a request no enrollment could ever match; checked
    /// before anything else so that no credential work is done for it.
    #[error("{0}")]
    InvalidRegistrationId(String),
}

impl AuthError {
    /// Azure's 6-digit code for the failure.
    pub fn code(&self) -> u32 {
        match self {
            AuthError::DeviceDisabled(_) => 403012,
            AuthError::InvalidRegistrationId(_) => 400004,
            _ => 401002,
        }
    }
}
