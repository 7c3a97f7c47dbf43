//! One MQTT-over-TLS connection to the server under test: TCP (no Nagle), a TLS handshake that
//! verifies the server against the CA given on the command line, then MQTT packets written from
//! an output buffer (so a window of PUBLISHes goes out in one write) and read into a buffer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::mqtt::{self, Packet};

/// Where and how to reach the server: its address, the name its certificate carries and a TLS
/// client that trusts its CA.
#[derive(Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub server_name: ServerName<'static>,
    pub tls: TlsConnector,
}

impl Endpoint {
    /// An endpoint trusting the CA certificates in the PEM file `ca_path`.
    pub fn new(addr: SocketAddr, host: &str, ca_path: &str) -> Result<Endpoint, String> {
        let mut roots = RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_path)
            .map_err(|e| format!("reading the CA file {ca_path}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("a certificate in {ca_path}: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("a certificate in {ca_path}: {e}"))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| format!("server name {host:?}: {e}"))?;
        Ok(Endpoint {
            addr,
            server_name,
            tls: TlsConnector::from(Arc::new(config)),
        })
    }
}

/// An open TLS connection with MQTT framing.
pub struct Connection {
    stream: TlsStream<TcpStream>,
    read: BytesMut,
    /// Packets to send on the next [`Connection::flush`].
    pub out: BytesMut,
}

impl Connection {
    /// TCP connect and TLS handshake.
    pub async fn open(endpoint: &Endpoint) -> io::Result<Connection> {
        let tcp = TcpStream::connect(endpoint.addr).await?;
        tcp.set_nodelay(true)?;
        let stream = endpoint
            .tls
            .connect(endpoint.server_name.clone(), tcp)
            .await?;
        Ok(Connection {
            stream,
            read: BytesMut::with_capacity(4096),
            out: BytesMut::with_capacity(1024),
        })
    }

    /// Writes everything queued in `out`.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// A packet already received and buffered, without touching the socket: lets a sender
    /// take every acknowledgement one read brought before it writes again, so a window refill
    /// is one TLS record and one write however the server split its acknowledgements.
    pub fn buffered(&mut self) -> io::Result<Option<Packet>> {
        mqtt::decode(&mut self.read).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The next packet from the server; end of stream and bad framing are errors.
    pub async fn next(&mut self) -> io::Result<Packet> {
        loop {
            match mqtt::decode(&mut self.read) {
                Ok(Some(packet)) => return Ok(packet),
                Ok(None) => {}
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
            }
            if self.stream.read_buf(&mut self.read).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Sends the queued CONNECT and waits for an accepting CONNACK.
    pub async fn expect_connack(&mut self) -> io::Result<()> {
        self.flush().await?;
        match self.next().await? {
            Packet::ConnAck { code: 0, .. } => Ok(()),
            Packet::ConnAck { code, .. } => Err(io::Error::other(format!(
                "CONNACK refused the connection with code {code}"
            ))),
            other => Err(io::Error::other(format!("expected CONNACK, got {other:?}"))),
        }
    }

    /// DISCONNECT and a TLS close_notify; errors do not matter any more at this point.
    pub async fn close(mut self) {
        mqtt::disconnect(&mut self.out);
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}
