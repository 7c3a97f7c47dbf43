//! A test PKI for X.509 attestation: the offline equivalent of the Azure IoT C SDK's
//! `tools/CACertificates/certGen.sh`, which Azure's X.509 quickstarts use to make a root CA,
//! an intermediate CA, device certificates, and the proof-of-possession certificate that turns
//! an uploaded CA into a *verified* one.
//!
//! ```
//! use iotemu::certs;
//!
//! # fn main() -> Result<(), certs::CertError> {
//! let root = certs::root_ca("Test Root CA", 3650)?;
//! let intermediate = certs::issue_intermediate(&root.to_ca()?, "Test Intermediate CA", 3650, 0)?;
//! let device = certs::issue_device(&intermediate.to_ca()?, "device-01", 365)?;
//!
//! // What the device presents in its TLS handshake: leaf, intermediate, root. DPS only trusts
//! // what the device sends between its leaf and a verified CA (protocol.md §4).
//! assert_eq!(device.full_chain_der().len(), 3);
//!
//! // Proof of possession for a verification code shown by DPS or the hub.
//! let proof = certs::verification_certificate(&root.to_ca()?, "4A2B19C8D7E6F5A4")?;
//! let (_sha1, sha256) = certs::thumbprints(&device.der);
//! # let _ = (proof, sha256);
//! # Ok(())
//! # }
//! ```
//!
//! Every key is ECDSA P-256 stored as PKCS#8 PEM (`BEGIN PRIVATE KEY`): ring, our only crypto
//! provider, cannot generate RSA keys, and every TLS stack the official SDKs use accepts P-256.
//! A CA made elsewhere (openssl, `certGen.sh`) can still sign here if its key is unencrypted
//! PKCS#8 — ring can *sign* with RSA, it just cannot make RSA keys.
//!
//! Certificates are built to pass rustls-webpki, which the emulator uses to judge device chains
//! and which is stricter than OpenSSL: CAs carry `CA:TRUE` and keyCertSign, leaves are not CAs
//! and carry the clientAuth EKU, every serial is random.
//!
//! The `iotemu certs` subcommand (`cli.rs`) is a thin layer that writes these to files.

pub(crate) mod cli;
mod emulator_verify;
mod pem;

pub use emulator_verify::{EmulatorTarget, VerifyOutcome, verify_with_emulator};

use std::fmt;
use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SerialNumber,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Common name of the root CA when none is given.
pub const DEFAULT_ROOT_NAME: &str = "iotemu Test Root CA";
/// Default lifetime of CA certificates: long, because replacing a CA means uploading and
/// verifying it again and re-issuing every device under it.
pub const CA_DAYS: u32 = 3650;
/// Default lifetime of device certificates: re-issuing a leaf is one command.
pub const DEVICE_DAYS: u32 = 365;
/// Lifetime of verification certificates: they only need to outlive the upload.
pub const VERIFICATION_DAYS: u32 = 30;
/// Upper bound on `days`, so that `now + days` stays far from the limits of X.509 dates.
pub const MAX_DAYS: u32 = 36_500;
/// X.509's upper bound on a common name (RFC 5280 `ub-common-name`); it is also why DPS caps
/// registration ids at 64 characters for X.509 attestation, instead of 128.
const MAX_COMMON_NAME: usize = 64;
/// How far back `not_before` is set, so a certificate is valid at once on a machine whose
/// clock is slightly behind the one that made it (containers, CI runners).
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// Why a certificate could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A file or PEM text that is not what it should be; `input` names the file or text.
    #[error("{input}: {reason}")]
    BadInput { input: String, reason: String },
    /// The private key given for a CA is not the key of its certificate.
    #[error(
        "the private key in {key} does not belong to the certificate in {cert} (wrong --ca-key?)"
    )]
    KeyMismatch { cert: String, key: String },
    /// A name, id, code or number that cannot be used.
    #[error("invalid {what} '{value}': {reason}")]
    InvalidArgument {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("{}: {error}", path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// An output file exists and overwriting was not asked for: a CA key that was already
    /// uploaded and verified must not vanish because a command was run twice.
    #[error("{} already exists; pass --force to overwrite it", .0.display())]
    Exists(std::path::PathBuf),
    /// A running emulator refused a step of `certs verify`, or could not be reached.
    #[error("{url}: {reason}")]
    Emulator { url: String, reason: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A certificate made here, with its private key.
pub struct GeneratedCert {
    /// This certificate alone, PEM.
    pub cert_pem: String,
    /// Its private key: ECDSA P-256, PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub key_pem: String,
    /// This certificate, DER.
    pub der: CertificateDer<'static>,
    /// This certificate followed by its issuer's chain, PEM: the file a device loads as its
    /// certificate (Python `X509(cert_file=…)`), or the `--ca` file for signing under a CA.
    /// Equal to `cert_pem` for self-signed certificates.
    pub full_chain_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key_der: PrivatePkcs8KeyDer<'static>,
}

impl GeneratedCert {
    fn new(
        der: CertificateDer<'static>,
        key: &KeyPair,
        issuer_chain: &[CertificateDer<'static>],
    ) -> Self {
        let mut chain = vec![der.clone()];
        chain.extend(issuer_chain.iter().cloned());
        GeneratedCert {
            cert_pem: pem::encode_certificate(&der),
            key_pem: key.serialize_pem(),
            full_chain_pem: chain.iter().map(|c| pem::encode_certificate(c)).collect(),
            der,
            chain,
            key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
        }
    }

    /// This certificate followed by its issuers, DER: what a rustls client sends.
    pub fn full_chain_der(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The private key for a rustls client or server configuration.
    pub fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }

    /// `(SHA-1, SHA-256)` thumbprints of this certificate; see [`thumbprints`].
    pub fn thumbprints(&self) -> (String, String) {
        thumbprints(&self.der)
    }

    /// This certificate as an issuer, to sign certificates under it. Fails for leaves.
    pub fn to_ca(&self) -> Result<Ca, CertError> {
        Ca::from_pem(&self.full_chain_pem, &self.key_pem)
    }
}

impl fmt::Debug for GeneratedCert {
    /// Leaves the private key out, so it cannot end up in logs or test output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedCert")
            .field("cert_pem", &self.cert_pem)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A CA certificate with its private key, able to sign certificates: one made by
/// [`root_ca`]/[`issue_intermediate`] ([`GeneratedCert::to_ca`]) or loaded from PEM files.
pub struct Ca {
    issuer: rcgen::Issuer<'static, KeyPair>,
    /// The CA certificate first, then whatever issuers came with it in its file.
    chain: Vec<CertificateDer<'static>>,
    common_name: String,
    /// BasicConstraints pathLenConstraint: how many CAs may still follow this one.
    path_len: Option<u32>,
}

impl Ca {
    /// Loads a CA from its certificate file and private-key file. The certificate file may be a
    /// full chain (as `*-full-chain.pem`); its first certificate is the CA, and the rest is
    /// appended to the chains of the certificates it issues.
    pub fn from_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<Ca, CertError> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        let cert_text = read(cert_path)?;
        let key_text = read(key_path)?;
        Ca::load(
            &cert_text,
            &cert_path.display().to_string(),
            &key_text,
            &key_path.display().to_string(),
        )
    }

    /// Like [`Ca::from_files`], from PEM text.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, CertError> {
        Ca::load(
            cert_pem.as_bytes(),
            "CA certificate",
            key_pem.as_bytes(),
            "CA key",
        )
    }

    fn load(
        cert_text: &[u8],
        cert_source: &str,
        key_text: &[u8],
        key_source: &str,
    ) -> Result<Ca, CertError> {
        let chain = pem::certificates(cert_text, cert_source)?;
        let bad = |reason: String| CertError::BadInput {
            input: cert_source.to_owned(),
            reason,
        };
        // `certificates` returns at least one certificate.
        let Some(ca_der) = chain.first() else {
            return Err(bad("no certificate found".into()));
        };
        let (_, ca) = X509Certificate::from_der(ca_der)
            .map_err(|e| bad(format!("not a valid X.509 certificate: {e}")))?;
        let common_name = common_name(&ca).unwrap_or_else(|| ca.subject().to_string());
        // Signing with a leaf would "work" and yield chains every verifier rejects; say so now.
        let constraints = ca
            .basic_constraints()
            .map_err(|e| bad(format!("unreadable BasicConstraints: {e}")))?;
        let path_len = match constraints {
            Some(bc) if bc.value.ca => bc.value.path_len_constraint,
            _ => {
                return Err(bad(format!(
                    "'{common_name}' is not a CA certificate (no BasicConstraints CA:TRUE), so it cannot sign certificates"
                )));
            }
        };
        if let Ok(Some(usage)) = ca.key_usage()
            && !usage.value.key_cert_sign()
        {
            return Err(bad(format!(
                "'{common_name}' has a KeyUsage without keyCertSign, so it cannot sign certificates"
            )));
        }

        let key = pem::private_key(key_text, key_source)?;
        // Without this check a wrong key yields certificates whose signatures do not verify,
        // which surfaces much later as a rejected device.
        if key.public_key_raw() != ca.public_key().subject_public_key.data.as_ref() {
            return Err(CertError::KeyMismatch {
                cert: cert_source.to_owned(),
                key: key_source.to_owned(),
            });
        }
        let issuer = rcgen::Issuer::from_ca_cert_der(ca_der, key)
            .map_err(|e| bad(format!("cannot sign with this certificate: {e}")))?;
        Ok(Ca {
            issuer,
            chain,
            common_name,
            path_len,
        })
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The CA certificate followed by the issuers loaded with it, DER.
    pub fn chain_der(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The subject common name of the CA certificate (or its whole subject if it has no CN).
    pub fn common_name(&self) -> &str {
        &self.common_name
    }
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("common_name", &self.common_name)
            .field("chain_len", &self.chain.len())
            .field("path_len", &self.path_len)
            .finish_non_exhaustive()
    }
}

/// A self-signed root CA named `name`, valid for `days`, with no path-length limit.
pub fn root_ca(name: &str, days: u32) -> Result<GeneratedCert, CertError> {
    check_common_name("CA name", name)?;
    let params = ca_params(name, days, BasicConstraints::Unconstrained)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(GeneratedCert::new(cert.der().clone(), &key, &[]))
}

/// An intermediate CA named `name` signed by `issuer`. `path_len` is how many further CAs
/// may sit below it: 0 (certGen.sh's choice) means it signs devices only.
pub fn issue_intermediate(
    issuer: &Ca,
    name: &str,
    days: u32,
    path_len: u8,
) -> Result<GeneratedCert, CertError> {
    check_common_name("CA name", name)?;
    // The issuer's own limit would make the new CA's chains invalid: refuse rather than
    // produce certificates every verifier rejects.
    if let Some(limit) = issuer.path_len
        && u32::from(path_len) >= limit
    {
        let reason = if limit == 0 {
            format!(
                "'{}' has path length 0: it can sign device certificates but not another CA",
                issuer.common_name
            )
        } else {
            format!(
                "'{}' allows {limit} more CA level(s) below it, so the new CA's path length must be below {limit}",
                issuer.common_name
            )
        };
        return Err(CertError::InvalidArgument {
            what: "path length",
            value: path_len.to_string(),
            reason,
        });
    }
    let params = ca_params(name, days, BasicConstraints::Constrained(path_len))?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer.issuer)?;
    Ok(GeneratedCert::new(cert.der().clone(), &key, &issuer.chain))
}

/// A device certificate for DPS group enrollments / CA-signed hub devices: subject
/// CN = `registration_id` (DPS requires the two to be equal), clientAuth, signed by `issuer`.
/// Its `full_chain_pem` is what the device must present.
pub fn issue_device(
    issuer: &Ca,
    registration_id: &str,
    days: u32,
) -> Result<GeneratedCert, CertError> {
    validate_registration_id(registration_id)?;
    let params = leaf_params(registration_id, days)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer.issuer)?;
    Ok(GeneratedCert::new(cert.der().clone(), &key, &issuer.chain))
}

/// A certificate for a CA-signed hub module: subject CN = `{device_id}/{module_id}`, as IoT
/// Hub requires of modules, clientAuth, signed by `issuer`.
pub fn issue_module(
    issuer: &Ca,
    device_id: &str,
    module_id: &str,
    days: u32,
) -> Result<GeneratedCert, CertError> {
    validate_registration_id(device_id)?;
    validate_registration_id(module_id)?;
    let params = leaf_params(&format!("{device_id}/{module_id}"), days)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer.issuer)?;
    Ok(GeneratedCert::new(cert.der().clone(), &key, &issuer.chain))
}

/// A TLS server certificate signed by `issuer` for `names` (DNS names or IP addresses, all in
/// the subject alternative names; the first is also the CN), serverAuth: for a service the
/// SDKs reach next to the emulator, such as Azurite holding file uploads (docs/file-upload.md).
pub fn issue_server(issuer: &Ca, names: &[String], days: u32) -> Result<GeneratedCert, CertError> {
    let first = names.first().ok_or_else(|| CertError::InvalidArgument {
        what: "server name",
        value: String::new(),
        reason: "give at least one DNS name or IP address".into(),
    })?;
    check_common_name("server name", first)?;
    let mut params = base_params(first, days)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    for name in names {
        let san = match name.parse::<std::net::IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => {
                let not_a_name = || CertError::InvalidArgument {
                    what: "server name",
                    value: name.escape_default().to_string(),
                    reason: "not a DNS name (letters, digits, '-', '.') or an IP address".into(),
                };
                let dns = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
                if !dns {
                    return Err(not_a_name());
                }
                rcgen::SanType::DnsName(name.clone().try_into().map_err(|_| not_a_name())?)
            }
        };
        params.subject_alt_names.push(san);
    }
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer.issuer)?;
    Ok(GeneratedCert::new(cert.der().clone(), &key, &issuer.chain))
}

/// A self-signed device certificate (CN = `registration_id`, clientAuth) for individual
/// enrollments and hub `selfSigned` devices, which are matched by thumbprint.
pub fn self_signed_device(registration_id: &str, days: u32) -> Result<GeneratedCert, CertError> {
    validate_registration_id(registration_id)?;
    let params = leaf_params(registration_id, days)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(GeneratedCert::new(cert.der().clone(), &key, &[]))
}

/// Proof of possession of `issuer`'s key: a certificate whose subject CN is the verification
/// `code` DPS or the hub generated for the uploaded CA, signed by that CA's key. Only the
/// signature and the CN matter to the service; the certificate's own key is thrown away.
pub fn verification_certificate(issuer: &Ca, code: &str) -> Result<GeneratedCert, CertError> {
    check_common_name("verification code", code)?;
    let params = leaf_params(code, VERIFICATION_DAYS)?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer.issuer)?;
    Ok(GeneratedCert::new(cert.der().clone(), &key, &issuer.chain))
}

/// `(SHA-1, SHA-256)` of a certificate's DER in upper-case hex without separators, as the
/// Azure portal, CLI and service APIs show thumbprints. The same function the emulator's
/// authentication uses, so what this prints is what enrollments are matched against.
pub fn thumbprints(der: &[u8]) -> (String, String) {
    crate::auth::x509::thumbprints(der)
}

/// Checks a DPS registration id for use as a certificate CN: ASCII letters, digits and
/// `- . _ :`, ending in a letter, digit or `-`, at most 64 characters (DPS allows 128, but an
/// X.509 CN holds only 64).
pub fn validate_registration_id(id: &str) -> Result<(), CertError> {
    let invalid = |reason: &str| CertError::InvalidArgument {
        what: "registration id",
        value: id.to_owned(),
        reason: reason.to_owned(),
    };
    if id.is_empty() {
        return Err(invalid("it is empty"));
    }
    if id.len() > MAX_COMMON_NAME {
        return Err(invalid(
            "longer than 64 characters, the most an X.509 common name holds",
        ));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':')))
    {
        return Err(invalid(&format!(
            "'{}' is not allowed; use ASCII letters, digits and - . _ :",
            c.escape_default()
        )));
    }
    if id.ends_with(['.', '_', ':']) {
        return Err(invalid("it must end with a letter, a digit or '-'"));
    }
    Ok(())
}

/// CA names and verification codes become a CN: non-empty, printable, ≤ 64 characters.
fn check_common_name(what: &'static str, value: &str) -> Result<(), CertError> {
    let invalid = |reason: &str| CertError::InvalidArgument {
        what,
        value: value.escape_default().to_string(),
        reason: reason.to_owned(),
    };
    if value.trim().is_empty() {
        return Err(invalid("it is empty"));
    }
    if value.chars().count() > MAX_COMMON_NAME {
        return Err(invalid(
            "longer than 64 characters, the most an X.509 common name holds",
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    Ok(())
}

fn ca_params(
    name: &str,
    days: u32,
    constraints: BasicConstraints,
) -> Result<CertificateParams, CertError> {
    let mut params = base_params(name, days)?;
    params.is_ca = IsCa::Ca(constraints);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn leaf_params(common_name: &str, days: u32) -> Result<CertificateParams, CertError> {
    let mut params = base_params(common_name, days)?;
    // Explicitly not a CA: webpki refuses CA certificates used as end entities.
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}

fn base_params(common_name: &str, days: u32) -> Result<CertificateParams, CertError> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(CertError::InvalidArgument {
            what: "number of days",
            value: days.to_string(),
            reason: format!("must be between 1 and {MAX_DAYS}"),
        });
    }
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    let now = x509_parser::time::ASN1Time::now().to_datetime();
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + Duration::from_secs(u64::from(days) * 86_400);
    params.serial_number = Some(random_serial());
    // Lets OpenSSL-based clients and tools find the issuer by key id, as with certGen.sh.
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// 16 random bytes, positive and without a leading zero byte so the DER integer keeps all 16.
/// rcgen would otherwise derive the serial from the public key; certGen.sh-style PKIs (and
/// RFC 5280) expect serials unique per issuer regardless of key reuse.
fn random_serial() -> SerialNumber {
    let mut bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes[0] = (bytes[0] & 0x3f) | 0x40;
    SerialNumber::from_slice(&bytes)
}

fn common_name(cert: &X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// A DER certificate as PEM text (`BEGIN CERTIFICATE`), as the certificate APIs return it.
pub(crate) fn pem_certificate(der: &[u8]) -> String {
    pem::encode_certificate(der)
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|error| CertError::Io {
        path: path.to_owned(),
        error,
    })
}

#[cfg(test)]
mod tests;
