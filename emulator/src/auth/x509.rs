//! X.509 facts used for device authentication: decoding certificates as users paste them
//! (PEM, or base64 DER as the 2018 service SDK asks), thumbprints as Azure writes them
//! (upper-case hex SHA-1 / SHA-256 of the DER), subject CN, validity, and chain validation
//! with rustls-webpki against explicit anchors using only the certificates a device sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    #[error("not a certificate: {0}")]
    Malformed(String),
    #[error("certificate chain rejected: {0}")]
    Chain(String),
}

/// What the rules need to know about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    pub subject_common_name: Option<String>,
    pub sha1_thumbprint: String,
    pub sha256_thumbprint: String,
    pub serial_number: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    pub is_ca: bool,
}

impl CertificateInfo {
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// DPS's `X509CertificateInfo` JSON.
    pub fn to_dps_json(&self) -> serde_json::Value {
        serde_json::json!({
            "subjectName": self.subject,
            "sha1Thumbprint": self.sha1_thumbprint,
            "sha256Thumbprint": self.sha256_thumbprint,
            "issuerName": self.issuer,
            "notBeforeUtc": crate::timefmt::utc_timestamp(self.not_before),
            "notAfterUtc": crate::timefmt::utc_timestamp(self.not_after),
            "serialNumber": self.serial_number,
            "version": 3,
        })
    }
}

/// Parses DER into the facts above.
pub fn inspect(der: &[u8]) -> Result<CertificateInfo, X509Error> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| X509Error::Malformed(e.to_string()))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let (sha1_thumbprint, sha256_thumbprint) = thumbprints(der);
    Ok(CertificateInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        subject_common_name: common_name,
        sha1_thumbprint,
        sha256_thumbprint,
        serial_number: cert
            .raw_serial_as_string()
            .replace(':', "")
            .to_ascii_uppercase(),
        not_before: to_system_time(cert.validity().not_before.timestamp()),
        not_after: to_system_time(cert.validity().not_after.timestamp()),
        is_ca: cert.is_ca(),
    })
}

/// The DER of the first certificate in `text`: PEM, or base64 of DER.
pub fn decode_certificate(text: &str) -> Result<Vec<u8>, X509Error> {
    let trimmed = text.trim();
    let der = if trimmed.starts_with("-----BEGIN") {
        CertificateDer::from_pem_slice(trimmed.as_bytes())
            .map_err(|e| X509Error::Malformed(format!("bad PEM: {e}")))?
            .to_vec()
    } else {
        let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
        BASE64
            .decode(compact)
            .map_err(|_| X509Error::Malformed("neither PEM nor base64 DER".into()))?
    };
    inspect(&der)?;
    Ok(der)
}

/// Every certificate in a PEM bundle, in order.
pub fn decode_pem_chain(text: &str) -> Result<Vec<CertificateDer<'static>>, X509Error> {
    CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| X509Error::Malformed(format!("bad PEM: {e}")))
}

/// `(SHA-1, SHA-256)` of the DER, upper-case hex as the portal and service API show them.
pub fn thumbprints(der: &[u8]) -> (String, String) {
    (
        hex_upper(&Sha1::digest(der)),
        hex_upper(&Sha256::digest(der)),
    )
}

/// Normalises a user-supplied thumbprint (`aa:bb…`, spaces, any case) for comparison.
pub fn normalize_thumbprint(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Validates `chain[0]` (the leaf) up to one of `anchors`, with `chain[1..]` as the only
/// intermediates: a device must send what lies between its certificate and the anchor.
pub fn validate_chain(
    chain: &[CertificateDer<'_>],
    anchors: &[Vec<u8>],
    now: SystemTime,
) -> Result<(), X509Error> {
    let leaf = chain
        .first()
        .ok_or_else(|| X509Error::Chain("no certificate presented".into()))?;
    let anchor_ders: Vec<CertificateDer<'_>> = anchors
        .iter()
        .map(|a| CertificateDer::from(a.as_slice()))
        .collect();
    let trust_anchors = anchor_ders
        .iter()
        .map(|der| webpki::anchor_from_trusted_cert(der).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| X509Error::Chain(format!("unusable anchor: {e}")))?;
    if trust_anchors.is_empty() {
        return Err(X509Error::Chain("no trusted CA to validate against".into()));
    }
    let end_entity = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| X509Error::Chain(format!("leaf certificate: {e}")))?;
    let time = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    let algorithms = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    end_entity
        .verify_for_usage(
            algorithms,
            &trust_anchors,
            &chain[1..],
            time,
            webpki::KeyUsage::client_auth(),
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| X509Error::Chain(e.to_string()))
}

/// True when `cert` carries a valid signature by the key of `issuer`: proof that whoever made
/// `cert` holds the issuer's private key (CA verification codes).
pub fn signed_by(cert: &[u8], issuer: &[u8]) -> bool {
    let (Ok((_, cert)), Ok((_, issuer))) = (
        X509Certificate::from_der(cert),
        X509Certificate::from_der(issuer),
    ) else {
        return false;
    };
    cert.verify_signature(Some(issuer.public_key())).is_ok()
}

/// Certificate times come from the peer; one `SystemTime` cannot hold saturates to the epoch
/// (an already-expired or not-yet-valid certificate is then refused by the chain check anyway).
fn to_system_time(unix: i64) -> SystemTime {
    let offset = Duration::from_secs(unix.unsigned_abs());
    let time = if unix >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    time.unwrap_or(UNIX_EPOCH)
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
