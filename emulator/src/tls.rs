//! TLS for every listener: an emulator CA (generated at start, or restored from the data
//! directory so clients keep trusting it), a server certificate signed by it for every name
//! clients dial, and one rustls `ServerConfig` (ring, TLS 1.2 + 1.3 — the
//! Python SDK only speaks 1.2).
//!
//! Client certificates are *requested but optional*, and any chain is accepted during the
//! handshake: SAS devices send none, and X.509 trust is decided per enrollment after the
//! handshake from the raw chain (mqtt-front.md §4). The handshake still proves the client
//! holds the private key of the leaf it sent.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName as TlsName, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};

/// A new ECDSA P-256 CA valid until 2049.
fn new_ca() -> Result<CaMaterial, TlsError> {
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name("iotemu Emulator Root CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = date_time_ymd(2024, 1, 1);
    ca_params.not_after = date_time_ymd(2049, 12, 31);
    let key = KeyPair::generate()?;
    let ca = CertifiedIssuer::self_signed(ca_params, key)?;
    Ok(CaMaterial {
        cert_pem: ca.pem(),
        key_pem: ca.key().serialize_pem(),
    })
}

/// Names every server certificate carries besides the configured hosts.
const ALWAYS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration failed: {0}")]
    Config(#[from] rustls::Error),
    #[error("'{0}' cannot be put in a certificate")]
    BadName(String),
    #[error("the stored emulator CA is unusable: {0}")]
    StoredCa(String),
}

/// The emulator CA's certificate and private key (PKCS#8), PEM.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct CaMaterial {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for CaMaterial {
    // The key never ends up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaMaterial").finish_non_exhaustive()
    }
}

/// The emulator's CA and the server configuration built on it.
pub(crate) struct EmulatorTls {
    ca: CaMaterial,
    ca_pem: String,
    server_names: Vec<String>,
    server_config: Arc<ServerConfig>,
    https_config: Arc<ServerConfig>,
}

impl EmulatorTls {
    /// Generates an ECDSA P-256 server certificate covering `hostnames`, signed by `ca` (a CA
    /// restored from durable state) when given, so clients that trust it keep working, or by
    /// a fresh CA otherwise; the server certificate is always new.
    pub(crate) fn with_ca(
        hostnames: &[String],
        ca: Option<&CaMaterial>,
    ) -> Result<EmulatorTls, TlsError> {
        let material = match ca {
            Some(ca) => ca.clone(),
            None => new_ca()?,
        };
        let ca_key = KeyPair::from_pem(&material.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&material.cert_pem, ca_key)?;
        let ca_der = CertificateDer::from_pem_slice(material.cert_pem.as_bytes())
            .map_err(|e| TlsError::StoredCa(e.to_string()))?;

        let mut server_names: Vec<String> = Vec::new();
        for host in ALWAYS
            .iter()
            .map(|s| s.to_string())
            .chain(hostnames.iter().cloned())
        {
            let host = host.to_ascii_lowercase();
            if !server_names.contains(&host) {
                server_names.push(host);
            }
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = name("iotemu server");
        params.subject_alt_names = server_names
            .iter()
            .map(|n| san(n))
            .collect::<Result<_, _>>()?;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2049, 12, 31);
        let server_key = KeyPair::generate()?;
        let server_cert = params.signed_by(&server_key, &issuer)?;

        let provider = Arc::new(prefer_sha256_suites(
            rustls::crypto::ring::default_provider(),
        ));
        let verifier = AnyClientCertificate {
            algorithms: provider.signature_verification_algorithms,
        };
        let chain = vec![server_cert.der().clone(), ca_der];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let mut server_config = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_single_cert(chain, key)?;
        // The server picks among the suites a client offers (all clients offer AES-128-GCM
        // with SHA-256; TLS 1.3 makes it mandatory): SHA-384's key schedule runs without
        // hardware help in ring, about a tenth of a registration's CPU.
        server_config.ignore_client_order = true;
        // No TLS 1.3 session tickets: each handshake would derive, encrypt, store and send two
        // (an extra write) for a resumption no device or SDK here uses — a reconnecting
        // client does a full handshake, as it does after iotemu restarts anyway. TLS 1.2
        // session ids (the Python SDK) are still cached and resumable.
        server_config.send_tls13_tickets = 0;

        // Same certificate and verifier; HTTPS also offers ALPN http/1.1.
        let mut https_config = server_config.clone();
        https_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(EmulatorTls {
            ca_pem: material.cert_pem.clone(),
            ca: material,
            server_names,
            server_config: Arc::new(server_config),
            https_config: Arc::new(https_config),
        })
    }

    /// The CA certificate and key, to keep in durable state.
    pub(crate) fn ca_material(&self) -> &CaMaterial {
        &self.ca
    }

    /// The CA certificate clients must trust, PEM.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// DNS names and IP addresses in the server certificate.
    pub(crate) fn server_names(&self) -> &[String] {
        &self.server_names
    }

    /// For MQTT on 8883 (no ALPN).
    pub(crate) fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config.clone()
    }

    /// For HTTPS on 443 (ALPN `http/1.1`).
    pub(crate) fn https_config(&self) -> Arc<ServerConfig> {
        self.https_config.clone()
    }
}

/// ring's suites with the SHA-256 ones first (same suites, same order otherwise), for the
/// server-side preference set above.
fn prefer_sha256_suites(
    mut provider: rustls::crypto::CryptoProvider,
) -> rustls::crypto::CryptoProvider {
    use rustls::SupportedCipherSuite;
    use rustls::crypto::hash::HashAlgorithm;
    provider.cipher_suites.sort_by_key(|suite| {
        let hash = match suite {
            SupportedCipherSuite::Tls12(s) => s.common.hash_provider,
            SupportedCipherSuite::Tls13(s) => s.common.hash_provider,
        };
        hash.algorithm() != HashAlgorithm::SHA256
    });
    provider
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "iotemu");
    dn
}

fn san(host: &str) -> Result<SanType, TlsError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    host.to_owned()
        .try_into()
        .map(SanType::DnsName)
        .map_err(|_| TlsError::BadName(host.to_owned()))
}

/// Requests a client certificate, accepts any chain or none, and still checks the
/// handshake signature so nobody can present a certificate whose key they don't hold.
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[TlsName] {
        // No hints: clients then send whatever certificate they are configured with.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restored_ca_signs_the_new_server_certificate() {
        let first = EmulatorTls::with_ca(&[], None).unwrap();
        let again =
            EmulatorTls::with_ca(&["hub.example".into()], Some(first.ca_material())).unwrap();
        assert_eq!(again.ca_pem(), first.ca_pem());
        assert_eq!(again.ca_material(), first.ca_material());
        assert!(again.server_names().contains(&"hub.example".to_owned()));
        let fresh = EmulatorTls::with_ca(&[], None).unwrap();
        assert_ne!(fresh.ca_pem(), first.ca_pem());

        let broken = CaMaterial {
            cert_pem: first.ca_pem().to_owned(),
            key_pem: "not a key".into(),
        };
        assert!(EmulatorTls::with_ca(&[], Some(&broken)).is_err());
    }

    /// Shuttles records between a client and the server until neither has more to say; also
    /// how many bytes the server sent once its side of the handshake was done (tickets).
    fn handshake(
        tls: &EmulatorTls,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> (rustls::ClientConnection, usize) {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(tls.ca_pem().as_bytes()).unwrap())
            .unwrap();
        // ring's default order: the client prefers AES-256-GCM with SHA-384.
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut client =
            rustls::ClientConnection::new(Arc::new(client_config), "localhost".try_into().unwrap())
                .unwrap();
        let mut server = rustls::ServerConnection::new(tls.server_config()).unwrap();
        let mut after = 0;
        for _ in 0..10 {
            let mut bytes = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut bytes).unwrap();
            }
            let mut reader = bytes.as_slice();
            while !reader.is_empty() {
                server.read_tls(&mut reader).unwrap();
                server.process_new_packets().unwrap();
            }
            let mut bytes = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut bytes).unwrap();
            }
            if !server.is_handshaking() {
                after += bytes.len();
            }
            let mut reader = bytes.as_slice();
            while !reader.is_empty() {
                client.read_tls(&mut reader).unwrap();
                client.process_new_packets().unwrap();
            }
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        (client, after)
    }

    #[test]
    fn the_server_picks_sha256_suites_and_sends_no_tls13_tickets() {
        let tls = EmulatorTls::with_ca(&[], None).unwrap();
        let (client, after) = handshake(&tls, &[&rustls::version::TLS13]);
        assert_eq!(
            client.negotiated_cipher_suite().unwrap().suite(),
            rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
        );
        assert_eq!(
            after, 0,
            "the server sent something (tickets) after its handshake"
        );
        let (client, _) = handshake(&tls, &[&rustls::version::TLS12]);
        assert_eq!(
            client.negotiated_cipher_suite().unwrap().suite(),
            rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        );
    }
}
