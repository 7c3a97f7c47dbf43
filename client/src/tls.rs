//! TLS for both clients: which server certificates to trust ([`Trust`]), which client
//! certificate to present (an optional [`X509Identity`]), and opening a TCP + TLS connection to
//! `host:port`.
//!
//! Uses rustls with the ring provider, TLS 1.2 and 1.3 (the Azure services and iotemu both
//! speak 1.2; 1.3 is preferred when offered). The TLS server name is the host name we connect
//! to, so the certificate must carry that name — iotemu's does for every configured host plus
//! `localhost`, `127.0.0.1` and `::1`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::mqtt::MqttError;
use crate::x509::X509Identity;

/// Which certificate authorities the client trusts for the server's certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Trust {
    /// The operating system's root store (what real Azure needs).
    #[default]
    SystemRoots,
    /// Only the certificates in this PEM text (one or more `CERTIFICATE` blocks), e.g. the CA
    /// that iotemu writes with `--ca-out` or exposes from its handle.
    CaPem(String),
}

/// Why a TLS configuration or handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM given to [`Trust::CaPem`] could not be parsed.
    #[error("invalid CA PEM: {0}")]
    InvalidPem(String),
    /// The PEM (or the system store) held no certificate rustls could use as a trust anchor.
    #[error("no usable CA certificate found")]
    NoCertificates,
    /// The host name is not a valid DNS name or IP address.
    #[error("invalid server name {0:?}")]
    InvalidServerName(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(rustls::Error),
    /// The handshake failed, e.g. the server certificate is not trusted or names another host.
    #[error("TLS handshake failed: {0}")]
    Handshake(rustls::Error),
    /// The certificate chain or private key given to [`X509Identity`] is unusable: bad PEM, no
    /// certificate, no or an unsupported key, or a key that does not belong to the leaf.
    #[error("invalid X.509 identity: {0}")]
    InvalidIdentity(String),
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Builds the rustls client configuration for `trust`, presenting `identity`'s chain when the
/// server asks for a client certificate (the Azure services and iotemu ask every client, and
/// accept an empty answer from SAS devices).
pub(crate) fn client_config(
    trust: &Trust,
    identity: Option<&X509Identity>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let roots = root_store(trust)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Config)?
        .with_root_certificates(roots);
    let config = match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain().to_vec(), identity.key())
            .map_err(TlsError::Config)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn root_store(trust: &Trust) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match trust {
        Trust::SystemRoots => {
            let loaded = rustls_native_certs::load_native_certs();
            for error in &loaded.errors {
                // Some unreadable files in the store are normal; only an empty store is fatal.
                tracing::debug!(%error, "skipping part of the system certificate store");
            }
            roots.add_parsable_certificates(loaded.certs);
        }
        Trust::CaPem(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|e| TlsError::InvalidPem(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| TlsError::InvalidPem(e.to_string()))?;
            }
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoCertificates);
    }
    Ok(roots)
}

/// Opens TCP to `host:port` and completes the TLS handshake with `host` as the server name.
pub(crate) async fn connect(
    host: &str,
    port: u16,
    config: Arc<ClientConfig>,
) -> Result<TlsStream<TcpStream>, MqttError> {
    let server_name = ServerName::try_from(host.to_owned())
        .map_err(|_| TlsError::InvalidServerName(host.to_owned()))?;
    let tcp = TcpStream::connect((host, port)).await?;
    // Small MQTT packets (PUBACK, PINGREQ) should not wait for Nagle.
    tcp.set_nodelay(true)?;
    TlsConnector::from(config)
        .connect(server_name, tcp)
        .await
        .map_err(handshake_error)
}

/// tokio-rustls reports handshake failures as `io::Error` wrapping a `rustls::Error`; unwrap
/// those so callers can tell "untrusted certificate" from "connection reset".
fn handshake_error(error: std::io::Error) -> MqttError {
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match tls {
        Some(tls) => MqttError::Tls(TlsError::Handshake(tls)),
        None => MqttError::Io(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_pem_is_rejected() {
        assert!(matches!(
            client_config(&Trust::CaPem("not a pem".into()), None),
            Err(TlsError::NoCertificates)
        ));
        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            client_config(&Trust::CaPem(broken.into()), None),
            Err(TlsError::InvalidPem(_))
        ));
    }

    #[test]
    fn default_is_system_roots() {
        assert_eq!(Trust::default(), Trust::SystemRoots);
    }
}

#[cfg(test)]
mod handshake_tests {
    use super::*;
    use crate::test_support::{
        OTHER_CA, TEST_CA, device_identity, device_pems, tls_listener, tls_listener_with,
    };
    use crate::x509::X509Identity;

    #[tokio::test]
    async fn trusts_the_given_ca() {
        let (port, listener) = tls_listener().await;
        let config = client_config(&Trust::CaPem(TEST_CA.into()), None).unwrap();
        let (client, server) = tokio::join!(connect("localhost", port, config), listener.accept());
        client.unwrap();
        server.unwrap();
    }

    #[tokio::test]
    async fn several_certificates_in_one_pem() {
        let (port, listener) = tls_listener().await;
        let bundle = format!("{OTHER_CA}\n{TEST_CA}");
        let config = client_config(&Trust::CaPem(bundle), None).unwrap();
        let (client, _server) = tokio::join!(connect("127.0.0.1", port, config), listener.accept());
        client.unwrap();
    }

    #[tokio::test]
    async fn rejects_a_server_from_another_ca() {
        let (port, listener) = tls_listener().await;
        let config = client_config(&Trust::CaPem(OTHER_CA.into()), None).unwrap();
        let (client, _server) = tokio::join!(connect("localhost", port, config), listener.accept());
        assert!(matches!(
            client,
            Err(MqttError::Tls(TlsError::Handshake(_)))
        ));
    }

    #[tokio::test]
    async fn presents_no_certificate_without_identity() {
        let (port, listener) = tls_listener().await;
        let config = client_config(&Trust::CaPem(TEST_CA.into()), None).unwrap();
        let (client, server) = tokio::join!(connect("localhost", port, config), listener.accept());
        client.unwrap();
        assert!(server.unwrap().peer_certificates().is_empty());
    }

    #[tokio::test]
    async fn presents_the_identity_chain_over_tls12_and_tls13() {
        let pems = device_pems("dev-1");
        let identity = X509Identity::from_pem(&pems.chain, &pems.key).unwrap();
        for (versions, expected) in [
            (
                &[&rustls::version::TLS13][..],
                rustls::ProtocolVersion::TLSv1_3,
            ),
            (
                &[&rustls::version::TLS12][..],
                rustls::ProtocolVersion::TLSv1_2,
            ),
        ] {
            let (port, listener) = tls_listener_with(versions).await;
            let config = client_config(&Trust::CaPem(TEST_CA.into()), Some(&identity)).unwrap();
            let (client, server) =
                tokio::join!(connect("localhost", port, config), listener.accept());
            client.unwrap();
            let server = server.unwrap();
            assert_eq!(server.protocol_version(), Some(expected));
            assert_eq!(server.peer_certificates(), pems.chain_der);
        }
    }

    #[tokio::test]
    async fn sec1_and_pkcs1_identities_complete_the_handshake() {
        // The server checks the CertificateVerify signature, so this proves the key signs.
        for (chain, key) in [
            (
                include_str!("../testdata/device-ec.pem"),
                include_str!("../testdata/device-ec.sec1.key.pem"),
            ),
            (
                include_str!("../testdata/device-rsa.pem"),
                include_str!("../testdata/device-rsa.pkcs1.key.pem"),
            ),
        ] {
            let identity = X509Identity::from_pem(chain, key).unwrap();
            let (port, listener) = tls_listener().await;
            let config = client_config(&Trust::CaPem(TEST_CA.into()), Some(&identity)).unwrap();
            let (client, server) =
                tokio::join!(connect("localhost", port, config), listener.accept());
            client.unwrap();
            assert_eq!(server.unwrap().peer_certificates().len(), 1);
        }
    }

    #[test]
    fn identity_goes_into_the_config() {
        let identity = device_identity("dev-1");
        let config = client_config(&Trust::CaPem(TEST_CA.into()), Some(&identity)).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
    }
}
