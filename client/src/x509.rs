//! [`X509Identity`]: a device certificate chain and its private key, presented as the TLS
//! client certificate when a device authenticates with X.509 instead of a SAS token.
//!
//! With X.509 the credential lives entirely in the TLS handshake: the CONNECT packet keeps its
//! username and carries no password (spec/protocol.md §2.2, §5.2). DPS takes the registration
//! id from the leaf's subject CN (§4), which is why the identity can report it.
//!
//! Everything is checked when the identity is made — the PEM parses, the key is one rustls can
//! sign with and matches the leaf — so a bad file fails here, not in the middle of a handshake.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::tls::TlsError;

/// A device's X.509 credential: certificate chain (leaf first, then any intermediates up to —
/// but usually not including — the root) and the leaf's private key.
///
/// Cloning is cheap; the key is shared, not copied. `Debug` never shows the key.
#[derive(Clone)]
pub struct X509Identity {
    chain: Vec<CertificateDer<'static>>,
    /// `PrivateKeyDer` is deliberately not `Clone`; sharing it keeps the builders `Clone`.
    key: Arc<PrivateKeyDer<'static>>,
    common_name: Option<String>,
}

impl X509Identity {
    /// Reads the chain from `cert_chain_pem` (one or more `CERTIFICATE` blocks, leaf first) and
    /// the key from `key_pem` (the first `PRIVATE KEY`, `EC PRIVATE KEY` or
    /// `RSA PRIVATE KEY` block, i.e. PKCS#8, SEC1 or PKCS#1).
    ///
    /// Fails with [`TlsError::InvalidIdentity`] if either PEM is unusable or the key does not
    /// belong to the leaf certificate.
    pub fn from_pem(cert_chain_pem: &str, key_pem: &str) -> Result<X509Identity, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| invalid(format!("certificate chain PEM: {e}")))?;
        let Some(leaf) = chain.first() else {
            return Err(invalid("no CERTIFICATE block in the certificate chain PEM"));
        };
        let common_name = leaf_common_name(leaf)?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| invalid(format!("private key PEM: {e}")))?;
        // Loading the pair the way the handshake will catches an unsupported key type and a
        // key from another certificate now, with a clear message.
        let provider = rustls::crypto::ring::default_provider();
        CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider).map_err(|e| {
            invalid(format!(
                "private key unusable with the leaf certificate: {e}"
            ))
        })?;
        Ok(X509Identity {
            chain,
            key: Arc::new(key),
            common_name,
        })
    }

    /// Like [`from_pem`](Self::from_pem), reading the two PEM files. Chain and key may be the
    /// same file.
    pub fn from_files(
        cert_chain_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<X509Identity, TlsError> {
        let chain = read(cert_chain_path.as_ref())?;
        let key = read(key_path.as_ref())?;
        Self::from_pem(&chain, &key)
    }

    /// The leaf certificate's subject common name (the first CN if there are several), or
    /// `None` if it has none or it is not a plain string type. DPS requires it to equal the
    /// registration id; for a CA-signed device IoT Hub requires it to equal the device id.
    pub fn common_name(&self) -> Option<String> {
        self.common_name.clone()
    }

    /// The chain as presented in the handshake, leaf first.
    pub(crate) fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }
}

impl fmt::Debug for X509Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Identity")
            .field("common_name", &self.common_name)
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn invalid(reason: impl Into<String>) -> TlsError {
    TlsError::InvalidIdentity(reason.into())
}

fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::ReadFile {
        path: path.to_owned(),
        source,
    })
}

/// Only the subject CN is needed, but the leaf must parse as a certificate to find it; one that
/// does not would fail every handshake anyway.
fn leaf_common_name(leaf: &CertificateDer<'_>) -> Result<Option<String>, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| invalid(format!("leaf certificate: {e}")))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(common_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{device_identity, device_pems};

    #[test]
    fn reads_chain_key_and_common_name() {
        let pems = device_pems("dev-x509");
        let identity = X509Identity::from_pem(&pems.chain, &pems.key).unwrap();
        assert_eq!(identity.common_name().as_deref(), Some("dev-x509"));
        // Leaf first, then the intermediate.
        assert_eq!(identity.chain().len(), 2);
        assert_eq!(identity.chain(), pems.chain_der.as_slice());
        let debug = format!("{identity:?}");
        assert!(debug.contains("dev-x509"));
        assert!(!debug.contains("PRIVATE"));
    }

    #[test]
    fn sec1_and_pkcs1_keys() {
        let ec = X509Identity::from_pem(
            include_str!("../testdata/device-ec.pem"),
            include_str!("../testdata/device-ec.sec1.key.pem"),
        )
        .unwrap();
        assert_eq!(ec.common_name().as_deref(), Some("dev-ec-sec1"));
        assert!(matches!(ec.key(), PrivateKeyDer::Sec1(_)));
        let rsa = X509Identity::from_pem(
            include_str!("../testdata/device-rsa.pem"),
            include_str!("../testdata/device-rsa.pkcs1.key.pem"),
        )
        .unwrap();
        assert_eq!(rsa.common_name().as_deref(), Some("dev-rsa-pkcs1"));
        assert!(matches!(rsa.key(), PrivateKeyDer::Pkcs1(_)));
    }

    #[test]
    fn from_files_reads_both() {
        let pems = device_pems("dev-files");
        let dir = std::env::temp_dir().join(format!("iotemu-device-x509-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("chain.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &pems.chain).unwrap();
        std::fs::write(&key, &pems.key).unwrap();
        let identity = X509Identity::from_files(&cert, &key).unwrap();
        assert_eq!(identity.common_name().as_deref(), Some("dev-files"));
        // One file holding both, key first, as some tools write it.
        let both = dir.join("both.pem");
        std::fs::write(&both, format!("{}{}", pems.key, pems.chain)).unwrap();
        let identity = X509Identity::from_files(&both, &both).unwrap();
        assert_eq!(identity.chain(), pems.chain_der.as_slice());
        assert!(matches!(
            X509Identity::from_files(dir.join("missing.pem"), &key),
            Err(TlsError::ReadFile { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_unusable_input() {
        let pems = device_pems("dev-1");
        let other = device_pems("dev-2");
        for (chain, key) in [
            ("", pems.key.as_str()),
            ("not a pem", pems.key.as_str()),
            (pems.chain.as_str(), ""),
            (pems.chain.as_str(), pems.chain.as_str()),
            // A well-formed key that belongs to another certificate.
            (pems.chain.as_str(), other.key.as_str()),
        ] {
            assert!(
                matches!(
                    X509Identity::from_pem(chain, key),
                    Err(TlsError::InvalidIdentity(_))
                ),
                "accepted chain {chain:.20?} with key {key:.20?}"
            );
        }
        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            X509Identity::from_pem(broken, &pems.key),
            Err(TlsError::InvalidIdentity(_))
        ));
    }

    #[test]
    fn no_common_name() {
        assert_eq!(device_identity("").common_name(), None);
    }
}
