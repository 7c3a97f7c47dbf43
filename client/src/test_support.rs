//! Test-only fake MQTT server: the far end of an in-memory duplex pipe (or a TLS stream),
//! speaking the same v4 codec, so connection, DPS and hub logic can be tested without a
//! network or the emulator.

use bytes::BytesMut;
use std::sync::Arc;

use rumqttc::mqttbytes::v4::{ConnAck, Connect, ConnectReturnCode, Packet, PubAck, Publish};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

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
/// [`TEST_CA`]. Returns the port and a function accepting one connection.
pub(crate) async fn tls_listener() -> (u16, TlsTestListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let certs = CertificateDer::pem_slice_iter(include_bytes!("../testdata/server.pem"))
        .collect::<Result<Vec<_>, _>>()
        .expect("server cert");
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("../testdata/server.key.pem"))
        .expect("server key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
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
    /// Accepts one TCP connection and runs the TLS handshake.
    pub(crate) async fn accept(&self) -> std::io::Result<FakeServer<TlsStream<TcpStream>>> {
        let (tcp, _) = self.listener.accept().await?;
        let tls = self.acceptor.accept(tcp).await?;
        Ok(FakeServer::new(tls))
    }
}

pub(crate) fn options() -> ConnectOptions {
    ConnectOptions {
        client_id: "dev".into(),
        username: "user".into(),
        password: "pass".into(),
        clean_session: true,
        keep_alive: std::time::Duration::from_secs(60),
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
        loop {
            match Packet::read(&mut self.rbuf, 1 << 20) {
                Ok(packet) => return Some(packet),
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
