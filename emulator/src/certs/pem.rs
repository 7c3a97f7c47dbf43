//! Reading certificates and keys as users have them on disk, and writing PEM. Errors name the
//! file and, for the key formats ring cannot read, the openssl command that converts them:
//! keys from `certGen.sh` are password-protected and keys from `openssl ecparam`/`genrsa` are
//! SEC1/PKCS#1, while rcgen on ring reads only unencrypted PKCS#8.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rcgen::KeyPair;
use rustls_pki_types::pem::{Error as PemError, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::CertError;

/// The openssl command that rewrites a key as unencrypted PKCS#8, for error messages.
const TO_PKCS8: &str = "openssl pkcs8 -topk8 -nocrypt -in KEY.pem -out KEY.pkcs8.pem";

/// Every certificate in a PEM file, in order; at least one.
pub(crate) fn certificates(
    text: &[u8],
    input: &str,
) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let chain = CertificateDer::pem_slice_iter(text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(input, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(bad(
            input,
            "no certificate found (expected a PEM file with -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    Ok(chain)
}

/// The first certificate in a file that is PEM or raw DER (the portal's `.cer` downloads).
pub(crate) fn first_certificate(
    bytes: &[u8],
    input: &str,
) -> Result<CertificateDer<'static>, CertError> {
    let der = if bytes.starts_with(&[0x30]) {
        CertificateDer::from(bytes.to_vec())
    } else {
        let mut chain = certificates(bytes, input)?;
        chain.swap_remove(0)
    };
    // Thumbprints of something that is not a certificate would look plausible and match
    // nothing; refuse instead.
    X509Certificate::from_der(&der)
        .map_err(|e| bad(input, format!("not a valid X.509 certificate: {e}")))?;
    Ok(der)
}

/// The private key in a PEM file, as rcgen can sign with it.
pub(crate) fn private_key(text: &[u8], input: &str) -> Result<KeyPair, CertError> {
    let key = match PrivateKeyDer::from_pem_slice(text) {
        Ok(key) => key,
        Err(PemError::NoItemsFound) if contains(text, b"ENCRYPTED") => {
            return Err(bad(
                input,
                format!("the key is password-protected; decrypt it first: {TO_PKCS8}"),
            ));
        }
        Err(PemError::NoItemsFound) => {
            return Err(bad(
                input,
                "no private key found (expected -----BEGIN PRIVATE KEY-----)".into(),
            ));
        }
        Err(e) => return Err(bad(input, format!("bad PEM: {e}"))),
    };
    let PrivateKeyDer::Pkcs8(_) = &key else {
        return Err(bad(
            input,
            format!("the key is not PKCS#8 (BEGIN PRIVATE KEY); convert it: {TO_PKCS8}"),
        ));
    };
    KeyPair::try_from(&key).map_err(|e| {
        bad(
            input,
            format!("unusable private key ({e}); ECDSA P-256/P-384, Ed25519 and RSA keys work"),
        )
    })
}

/// One certificate as PEM with 64-column lines, as OpenSSL writes it.
pub(crate) fn encode_certificate(der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    // Base64 output is ASCII, so splitting bytes never splits a character.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn bad(input: &str, reason: String) -> CertError {
    CertError::BadInput {
        input: input.to_owned(),
        reason,
    }
}
