//! X.509 attestation of an enrollment, parsed once: the device's own certificates reduced to
//! the thumbprints that identify them, the signing (CA) certificates decoded and inspected,
//! and the names of referenced CA certificates in the DPS store. Registration matches chains
//! against these without decoding PEM again; [`X509Trust::to_wire`] returns the
//! `X509Attestation` exactly as it was given.

use super::model::{X509Attestation, X509CertificateWithInfo};
use super::validate::{Invalid, Links};
use crate::auth::x509::{self, CertificateInfo};

/// What an X.509 enrollment trusts.
#[derive(Debug, Clone, PartialEq)]
pub struct X509Trust {
    given: X509Attestation,
    /// The device's own certificates (individual enrollments), primary then secondary.
    client_certificates: Vec<DeviceCertificate>,
    /// CA certificates given in the enrollment.
    signing_certificates: Vec<SigningCertificate>,
    /// Names of CA certificates in the DPS certificate store, with their slot.
    ca_references: Vec<(&'static str, String)>,
}

/// A device certificate an individual enrollment names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCertificate {
    /// `primary` or `secondary`.
    pub slot: &'static str,
    /// Normalised hex thumbprints: SHA-1 then SHA-256 of the certificate, or whatever its
    /// `info` carries (exports from a real DPS may hold only that).
    pub thumbprints: Vec<String>,
}

/// A CA certificate an enrollment carries itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningCertificate {
    pub der: Vec<u8>,
    /// `None` when the DER decodes but cannot be inspected; such a CA still validates chains
    /// but is never a verified one.
    pub info: Option<CertificateInfo>,
}

impl TryFrom<&X509Attestation> for X509Trust {
    type Error = Invalid;

    /// Certificates must decode (a device certificate may instead carry thumbprints in
    /// `info`), and at least one certificate or CA reference must be given.
    fn try_from(given: &X509Attestation) -> Result<X509Trust, Invalid> {
        let base = "attestation.x509";
        let mut client_certificates = Vec::new();
        for (slot, cert) in given.client_certificates.iter().flat_map(|c| c.slots()) {
            let path = format!("{base}.clientCertificates.{slot}.certificate");
            let thumbprints = match &cert.certificate {
                Some(text) => {
                    let (sha1, sha256) = x509::thumbprints(&decode(&path, text)?);
                    vec![sha1, sha256]
                }
                None => info_thumbprints(cert),
            };
            if thumbprints.is_empty() {
                return Err(Invalid::new(path, CERTIFICATE_REQUIRED));
            }
            client_certificates.push(DeviceCertificate { slot, thumbprints });
        }
        let mut signing_certificates = Vec::new();
        for (slot, cert) in given.signing_certificates.iter().flat_map(|c| c.slots()) {
            let path = format!("{base}.signingCertificates.{slot}.certificate");
            let text = cert
                .certificate
                .as_deref()
                .ok_or_else(|| Invalid::new(path.clone(), CERTIFICATE_REQUIRED))?;
            let der = decode(&path, text)?;
            let info = x509::inspect(&der).ok();
            signing_certificates.push(SigningCertificate { der, info });
        }
        let ca_references: Vec<(&'static str, String)> = given
            .ca_references
            .iter()
            .flat_map(|r| r.names())
            .map(|(slot, name)| (slot, name.clone()))
            .collect();
        if client_certificates.is_empty()
            && signing_certificates.is_empty()
            && ca_references.is_empty()
        {
            return Err(Invalid::new(
                base,
                "needs clientCertificates, signingCertificates or caReferences",
            ));
        }
        Ok(X509Trust {
            given: given.clone(),
            client_certificates,
            signing_certificates,
            ca_references,
        })
    }
}

const CERTIFICATE_REQUIRED: &str = "a certificate (PEM or base64 DER) is required";

fn decode(path: &str, text: &str) -> Result<Vec<u8>, Invalid> {
    x509::decode_certificate(text).map_err(|e| Invalid::new(path, e.to_string()))
}

fn info_thumbprints(cert: &X509CertificateWithInfo) -> Vec<String> {
    ["sha1Thumbprint", "sha256Thumbprint"]
        .into_iter()
        .filter_map(|key| cert.info.as_ref()?.get(key)?.as_str())
        .map(x509::normalize_thumbprint)
        .filter(|t| !t.is_empty())
        .collect()
}

impl X509Trust {
    /// The `X509Attestation` as it was given.
    pub fn to_wire(&self) -> X509Attestation {
        self.given.clone()
    }

    pub fn client_certificates(&self) -> &[DeviceCertificate] {
        &self.client_certificates
    }

    /// The device certificate in `slot` (`primary`, `secondary`).
    pub fn client_certificate(&self, slot: &str) -> Option<&DeviceCertificate> {
        self.client_certificates.iter().find(|c| c.slot == slot)
    }

    pub fn signing_certificates(&self) -> &[SigningCertificate] {
        &self.signing_certificates
    }

    /// Names of referenced CA certificates in the DPS store.
    pub fn ca_references(&self) -> impl Iterator<Item = &str> {
        self.ca_references.iter().map(|(_, name)| name.as_str())
    }

    /// Every referenced CA certificate is in the DPS certificate store.
    pub fn check_links(&self, links: &Links<'_>) -> Result<(), Invalid> {
        for (slot, name) in &self.ca_references {
            if !(links.ca_exists)(name) {
                return Err(Invalid::new(
                    format!("attestation.x509.caReferences.{slot}"),
                    format!("no certificate named '{name}' in the DPS certificate store"),
                ));
            }
        }
        Ok(())
    }
}
