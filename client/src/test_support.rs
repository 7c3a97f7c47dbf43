//! Test-only fake MQTT server: the far end of an in-memory duplex pipe (or a TLS stream),
//! speaking the same v4 codec, so connection, DPS and hub logic can be tested without a
//! network or the emulator.
//!
//! Its TLS listener behaves like iotemu and Azure towards client certificates: it asks every
//! client for one, accepts any (or none), and lets the test inspect the chain it received.
//! X.509 device chains for the tests are made here with rcgen.

use bytes::{Bytes, BytesMut};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Packet, PubAck, Publish};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::X509Identity;
use crate::mqtt::{ConnectOptions, Connection, IncomingPublish};

/// PEM of the CA that signed the test server certificate.
pub(crate) const TEST_CA: &str = include_str!("../testdata/ca.pem");
/// PEM of a CA unrelated to the test server.
pub(crate) const OTHER_CA: &str = include_str!("../testdata/other-ca.pem");

pub(crate) struct FakeServer<S = DuplexStream> {
    stream: S,
    rbuf: BytesMut,
    next_pkid: u16,
}

/// A connected (client stream, fake server) pair.
pub(crate) fn pair() -> (DuplexStream, FakeServer) {
    let (client, server) = tokio::io::duplex(1 << 20);
    (client, FakeServer::new(server))
}

/// A connection already past CONNACK, with its fake server.
pub(crate) async fn connected() -> (Connection, mpsc::Receiver<IncomingPublish>, FakeServer) {
    let (client, mut server) = pair();
    let (result, _) = tokio::join!(Connection::start(client, options()), server.accept());
    let (connection, incoming) = result.expect("connect");
    (connection, incoming, server)
}

/// A TLS listener on 127.0.0.1 with a certificate for `localhost`/`127.0.0.1` from
/// [`TEST_CA`], TLS 1.2 and 1.3, requesting an optional client certificate. Returns the port
/// and a function accepting one connection.
pub(crate) async fn tls_listener() -> (u16, TlsTestListener) {
    tls_listener_with(rustls::DEFAULT_VERSIONS).await
}

/// [`tls_listener`] offering only the given TLS versions.
pub(crate) async fn tls_listener_with(
    versions: &[&'static SupportedProtocolVersion],
) -> (u16, TlsTestListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let certs = CertificateDer::pem_slice_iter(include_bytes!("../testdata/server.pem"))
        .collect::<Result<Vec<_>, _>>()
        .expect("server cert");
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../testdata/server.key.pem"))
        .expect("server key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_client_cert_verifier(Arc::new(AnyClientCert(provider)))
        .with_single_cert(certs, key)
        .expect("server config");
    (
        port,
        TlsTestListener {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        },
    )
}

pub(crate) struct TlsTestListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl TlsTestListener {
    /// Accepts one TCP connection without TLS, e.g. to drop it mid-handshake.
    pub(crate) async fn raw_accept(&self) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
        self.listener.accept().await
    }

    /// Accepts one TCP connection and runs the TLS handshake.
    pub(crate) async fn accept(&self) -> std::io::Result<FakeServer<TlsStream<TcpStream>>> {
        let (tcp, _) = self.listener.accept().await?;
        let tls = self.acceptor.accept(tcp).await?;
        Ok(FakeServer::new(tls))
    }
}

/// Requests a client certificate without requiring one and accepts whatever chain arrives, as
/// the emulator does (chains are judged after the handshake). The handshake signature is still
/// checked, so a client holding the wrong key fails.
#[derive(Debug)]
struct AnyClientCert(Arc<CryptoProvider>);

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl FakeServer<TlsStream<TcpStream>> {
    /// The client certificate chain presented in the handshake (empty if none), leaf first.
    pub(crate) fn peer_certificates(&self) -> Vec<CertificateDer<'static>> {
        self.stream
            .get_ref()
            .1
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default()
    }

    pub(crate) fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.stream.get_ref().1.protocol_version()
    }
}

/// PEMs of a device chain made by [`device_pems`].
pub(crate) struct DevicePems {
    /// Leaf then intermediate, as a device would store it.
    pub chain: String,
    /// The leaf's PKCS#8 key.
    pub key: String,
    /// `chain` in DER, to compare with what a server received.
    pub chain_der: Vec<CertificateDer<'static>>,
}

/// A fresh P-256 chain root → intermediate → leaf with subject `CN={common_name}` (no CN if
/// empty). The root stays out of the chain, as Azure's docs advise.
pub(crate) fn device_pems(common_name: &str) -> DevicePems {
    let root = CertifiedIssuer::self_signed(ca_params("iotemu-device test root"), key_pair())
        .expect("root");
    let intermediate = CertifiedIssuer::signed_by(
        ca_params("iotemu-device test intermediate"),
        key_pair(),
        &root,
    )
    .expect("intermediate");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    if !common_name.is_empty() {
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
    }
    let leaf_key = key_pair();
    let leaf = params.signed_by(&leaf_key, &intermediate).expect("leaf");
    DevicePems {
        chain: format!("{}{}", leaf.pem(), intermediate.pem()),
        key: leaf_key.serialize_pem(),
        chain_der: vec![leaf.der().clone(), intermediate.der().clone()],
    }
}

/// [`device_pems`] loaded as an identity.
pub(crate) fn device_identity(common_name: &str) -> X509Identity {
    let pems = device_pems(common_name);
    X509Identity::from_pem(&pems.chain, &pems.key).expect("identity")
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}

fn key_pair() -> KeyPair {
    // rcgen's default is ECDSA P-256, the only kind ring can generate that Azure accepts.
    KeyPair::generate().expect("key pair")
}

pub(crate) fn options() -> ConnectOptions {
    ConnectOptions {
        client_id: "dev".into(),
        username: "user".into(),
        password: Some("pass".into()),
        clean_session: true,
        keep_alive: std::time::Duration::from_secs(60),
        manual_ack_prefixes: vec!["manual/".into()],
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> FakeServer<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self {
            stream,
            rbuf: BytesMut::new(),
            next_pkid: 1,
        }
    }

    /// Next packet from the client; `None` once the client closed the stream.
    pub(crate) async fn read(&mut self) -> Option<Packet> {
        self.read_raw().await.map(|(packet, _)| packet)
    }

    /// Next packet with the exact bytes it arrived as, for checking what the parsed form
    /// cannot show (the codec reads an absent password as an empty one).
    pub(crate) async fn read_raw(&mut self) -> Option<(Packet, Bytes)> {
        loop {
            let before = self.rbuf.clone();
            match Packet::read(&mut self.rbuf, 1 << 20) {
                Ok(packet) => {
                    let consumed = before.len() - self.rbuf.len();
                    return Some((packet, before.freeze().slice(..consumed)));
                }
                Err(CodecError::InsufficientBytes(_)) => {
                    match self.stream.read_buf(&mut self.rbuf).await {
                        Ok(0) | Err(_) => return None,
                        Ok(_) => {}
                    }
                }
                Err(e) => panic!("client sent a malformed packet: {e}"),
            }
        }
    }

    pub(crate) async fn write(&mut self, packet: Packet) {
        let mut buf = BytesMut::new();
        packet.write(&mut buf, 1 << 20).expect("encode");
        self.stream.write_all(&buf).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// Reads CONNECT and answers CONNACK with `code`.
    pub(crate) async fn accept_with(&mut self, code: ConnectReturnCode) -> Connect {
        match self.read().await {
            Some(Packet::Connect(connect)) => {
                self.write(Packet::ConnAck(ConnAck::new(code, false))).await;
                connect
            }
            other => panic!("expected CONNECT, got {other:?}"),
        }
    }

    pub(crate) async fn accept(&mut self) -> Connect {
        self.accept_with(ConnectReturnCode::Success).await
    }

    /// Reads CONNECT, accepts it, and also returns its connect-flags byte (0x80 username,
    /// 0x40 password, 0x02 clean session).
    pub(crate) async fn accept_with_flags(&mut self) -> (Connect, u8) {
        match self.read_raw().await {
            Some((Packet::Connect(connect), raw)) => {
                let flags = connect_flags(&raw);
                self.write(Packet::ConnAck(ConnAck::new(
                    ConnectReturnCode::Success,
                    false,
                )))
                .await;
                (connect, flags)
            }
            other => panic!("expected CONNECT, got {other:?}"),
        }
    }

    /// Next PUBLISH from the client, skipping the PUBACKs it sends for our publishes.
    pub(crate) async fn next_publish(&mut self) -> Publish {
        loop {
            match self.read().await {
                Some(Packet::Publish(publish)) => return publish,
                Some(Packet::PubAck(_)) => {}
                other => panic!("expected PUBLISH, got {other:?}"),
            }
        }
    }

    /// Reads the client's next PUBLISH and acknowledges it.
    pub(crate) async fn next_publish_acked(&mut self) -> Publish {
        let publish = self.next_publish().await;
        self.write(Packet::PubAck(PubAck::new(publish.pkid))).await;
        publish
    }

    /// Publishes to the client at QoS 1.
    pub(crate) async fn publish(&mut self, topic: &str, body: &str) {
        let mut publish = Publish::new(topic, QoS::AtLeastOnce, body.as_bytes().to_vec());
        publish.pkid = self.next_pkid;
        self.next_pkid += 1;
        self.write(Packet::Publish(publish)).await;
    }

    /// Closes the server side.
    pub(crate) async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }
}

impl<S> FakeServer<S> {
    /// Raw access, for writing bytes the codec would refuse to produce.
    pub(crate) fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

/// The connect-flags byte of a raw CONNECT: after the type byte, the 1–4 byte remaining length,
/// the protocol name (`00 04 MQTT`) and the level.
fn connect_flags(raw: &[u8]) -> u8 {
    let length_bytes = raw[1..].iter().position(|b| b & 0x80 == 0).expect("length") + 1;
    raw[1 + length_bytes + 6 + 1]
}
