//! Shared helpers for the end-to-end tests: starting an emulator on ephemeral ports, and a
//! raw MQTT-over-TLS client for assertions at the wire level (exact CONNACK codes, forced
//! disconnects, topics) that a well-behaved SDK would never let us make.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::BytesMut;
use iotemu::Emulator;
use iotemu::internals::mqtt::codec::{self, ConnAck, Connect, ConnectReturnCode, Packet};
use rumqttc::mqttbytes::v4::Login;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub use iotemu::internals::auth::build_token;

pub mod amqp;
pub mod log_capture;

/// The quickstart document's enrollment.
pub const QUICKSTART_REGISTRATION_ID: &str = "symm-key-python-device-008";
/// The quickstart fixture's DPS id scope.
pub const QUICKSTART_SCOPE: &str = "0ne00000A0A";
pub const QUICKSTART_DEVICE_ID: &str = "python-device-008";
pub const QUICKSTART_KEY: &str =
    "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";
pub const QUICKSTART_GROUP_KEY: &str =
    "/VX4hnlv5HUMoLa5FBff/tGKwZFUM0XlQMp/v7oWXGolrvmEuIrRnsx6k9Gi3drdCbAyfmt+aq8zsQJ6lg3D3g==";

/// An emulator serving the quickstart fixture plus `extra` fixture JSON, on free ports,
/// answering polls without waiting (`retry-after=0`) so tests stay fast.
pub async fn start_emulator(extra: Option<&str>) -> Emulator {
    let mut builder = Emulator::builder().quickstart_fixture().retry_after(0);
    if let Some(json) = extra {
        builder = builder.fixture_json("test fixture", json);
    }
    builder.start().await.expect("emulator starts")
}

/// Like [`start_emulator`], with `fixture` supplying the DPS section and the quickstart
/// fixture's hubs and enrollments (minus its DPS section) added.
pub async fn start_emulator_with_dps(fixture: &str) -> Emulator {
    let mut quickstart: serde_json::Value =
        serde_json::from_str(iotemu::internals::fixtures::QUICKSTART_JSON)
            .expect("quickstart JSON");
    quickstart.as_object_mut().expect("object").remove("dps");
    Emulator::builder()
        .fixture_json("quickstart without dps", &quickstart.to_string())
        .fixture_json("test fixture", fixture)
        .retry_after(0)
        .start()
        .await
        .expect("emulator starts")
}

pub fn seconds_from_now(secs: i64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now + secs) as u64
}

pub fn decode_key(key_b64: &str) -> Vec<u8> {
    BASE64.decode(key_b64).expect("test keys are base64")
}

/// A DPS registration token, signed like the Python SDK signs it.
pub fn dps_token(id_scope: &str, registration_id: &str, key_b64: &str, expiry: u64) -> String {
    build_token(
        &format!("{id_scope}/registrations/{registration_id}"),
        &decode_key(key_b64),
        None,
        expiry,
    )
}

/// A hub device token.
pub fn device_token(hub: &str, device_id: &str, key_b64: &str, expiry: u64) -> String {
    build_token(
        &format!("{hub}/devices/{device_id}"),
        &decode_key(key_b64),
        None,
        expiry,
    )
}

pub fn dps_username(id_scope: &str, registration_id: &str) -> String {
    format!(
        "{id_scope}/registrations/{registration_id}/api-version=2019-03-31&ClientVersion=iotemu-tests"
    )
}

pub fn hub_username(hub: &str, device_id: &str) -> String {
    format!("{hub}/{device_id}/?api-version=2021-04-12&DeviceClientType=iotemu-tests")
}

/// A certificate chain (leaf first) and its private key.
pub type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// TLS to `port` on 127.0.0.1 trusting only the emulator's CA, server name `localhost`.
pub async fn tls_connect(
    emulator: &Emulator,
    port: u16,
    identity: Option<ClientIdentity>,
    alpn: Vec<Vec<u8>>,
) -> TlsStream<TcpStream> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(emulator.ca_pem().as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA accepted");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn;
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("TCP connect");
    let name = ServerName::try_from("localhost").expect("server name");
    TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake")
}

/// An HTTPS response, read to the end.
#[derive(Debug)]
pub struct HttpsResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpsResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// One HTTP/1.1 request over TLS to the emulator's HTTPS port (`Connection: close`).
pub async fn https_request(
    emulator: &Emulator,
    identity: Option<ClientIdentity>,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpsResponse {
    let port = emulator.https_port().expect("HTTPS is served");
    let mut stream = tls_connect(emulator, port, identity, vec![b"http/1.1".to_vec()]).await;
    let mut head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body).await.expect("write body");
    stream.flush().await.expect("flush");
    let mut raw = Vec::new();
    // A close_notify-less close after the body is fine for a test client.
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    HttpsResponse {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 4 + size..];
    }
    out
}

/// How a raw receive ended without a packet.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvEnd {
    Closed,
    TimedOut,
}

/// MQTT over TLS with nothing in between: send packets, read packets.
pub struct RawClient {
    stream: TlsStream<TcpStream>,
    buf: BytesMut,
}

impl RawClient {
    /// TLS to the emulator's MQTT port, trusting only its CA, server name `localhost`.
    pub async fn connect(emulator: &Emulator) -> RawClient {
        RawClient::connect_as(emulator, None).await
    }

    /// Like [`RawClient::connect`], presenting `chain` (leaf first) with `key` in the handshake.
    pub async fn connect_with_certificate(
        emulator: &Emulator,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> RawClient {
        RawClient::connect_as(emulator, Some((chain, key))).await
    }

    async fn connect_as(emulator: &Emulator, identity: Option<ClientIdentity>) -> RawClient {
        let stream = tls_connect(emulator, emulator.mqtt_port(), identity, Vec::new()).await;
        RawClient {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, packet: Packet) {
        let mut wire = BytesMut::new();
        codec::encode(&packet, &mut wire).expect("encode");
        self.stream.write_all(&wire).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// Writes raw bytes (for malformed input tests). Errors are ignored: the server may
    /// already have closed.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
        let _ = self.stream.flush().await;
    }

    /// The next packet, or why none came within `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Packet, RecvEnd> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(packet) =
                codec::decode(&mut self.buf, usize::MAX).expect("server sent a valid packet")
            {
                return Ok(packet);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(RecvEnd::TimedOut),
                Ok(Ok(0)) | Ok(Err(_)) => return Err(RecvEnd::Closed),
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Reads until the server closes the connection; panics if it stays open.
    pub async fn expect_closed(&mut self) {
        loop {
            match self.recv(Duration::from_secs(5)).await {
                Err(RecvEnd::Closed) => return,
                Err(RecvEnd::TimedOut) => panic!("server did not close the connection"),
                Ok(_) => continue,
            }
        }
    }
}

/// A scripted HTTP webhook on 127.0.0.1: answers each request with the next `(status, body)`
/// (the last one repeats) and records every request body.
pub struct Webhook {
    pub url: String,
    pub requests: Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl Webhook {
    pub async fn start(answers: Vec<(u16, String)>) -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://127.0.0.1:{}/api/allocate?code=abc",
            listener.local_addr().unwrap().port()
        );
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        tokio::spawn(async move {
            let mut served = 0usize;
            while let Ok((mut tcp, _)) = listener.accept().await {
                let mut raw = Vec::new();
                let mut chunk = [0u8; 4096];
                let body_start = loop {
                    let n = tcp.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    raw.extend_from_slice(&chunk[..n]);
                    if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some(at + 4);
                    }
                };
                let Some(body_start) = body_start else {
                    continue;
                };
                let head = String::from_utf8_lossy(&raw[..body_start]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while raw.len() < body_start + length {
                    let n = tcp.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    raw.extend_from_slice(&chunk[..n]);
                }
                let body =
                    serde_json::from_slice(&raw[body_start..]).unwrap_or(serde_json::Value::Null);
                seen.lock().unwrap().push(body);
                let (status, answer) = answers[served.min(answers.len() - 1)].clone();
                served += 1;
                let response = format!(
                    "HTTP/1.1 {status} Status\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = tcp.write_all(response.as_bytes()).await;
                let _ = tcp.shutdown().await;
            }
        });
        Webhook { url, requests }
    }
}

/// MQTT over WebSocket (wss, `/$iothub/websocket`) to the emulator's HTTPS port, with the
/// WebSocket framing in the test's hands: each [`WsClient::send`] is one binary frame, and
/// [`WsClient::send_frames`] can split or pack packets at will.
pub struct WsClient {
    ws: tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>,
    buf: BytesMut,
}

/// The WebSocket handshake over TLS to the HTTPS port: `Ok` once upgraded, `Err(status)`
/// when the emulator answers with a plain HTTP status instead. `subprotocols` is sent as
/// `Sec-WebSocket-Protocol` when given.
pub async fn wss_handshake(
    emulator: &Emulator,
    identity: Option<ClientIdentity>,
    path_and_query: &str,
    subprotocols: Option<&str>,
) -> Result<tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>, u16> {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let port = emulator.https_port().expect("HTTPS is served");
    let tls = tls_connect(emulator, port, identity, vec![b"http/1.1".to_vec()]).await;
    let mut request = format!("wss://localhost:{port}{path_and_query}")
        .into_client_request()
        .expect("request");
    if let Some(protocols) = subprotocols {
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            protocols.parse().expect("header value"),
        );
    }
    match tokio_tungstenite::client_async(request, tls).await {
        Ok((ws, response)) => {
            // The echo must be one of the offered tokens exactly as written (Node's `ws`).
            let echoed = response
                .headers()
                .get("sec-websocket-protocol")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let offered: Vec<&str> = subprotocols
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .collect();
            assert!(
                echoed.as_deref().is_some_and(|e| offered.contains(&e)),
                "echoed {echoed:?}, offered {offered:?}"
            );
            Ok(ws)
        }
        Err(Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("WebSocket handshake failed: {e}"),
    }
}

impl WsClient {
    /// wss to `/$iothub/websocket` offering `mqtt`, trusting only the emulator's CA.
    pub async fn connect(emulator: &Emulator) -> WsClient {
        WsClient::connect_as(emulator, None, "/$iothub/websocket").await
    }

    /// Like [`WsClient::connect`] on `path_and_query`, presenting `identity` in the TLS
    /// handshake when given.
    pub async fn connect_as(
        emulator: &Emulator,
        identity: Option<ClientIdentity>,
        path_and_query: &str,
    ) -> WsClient {
        let ws = wss_handshake(emulator, identity, path_and_query, Some("mqtt"))
            .await
            .expect("upgraded to WebSocket");
        WsClient {
            ws,
            buf: BytesMut::new(),
        }
    }

    /// Sends `packet` as one binary frame.
    pub async fn send(&mut self, packet: Packet) {
        let mut wire = BytesMut::new();
        codec::encode(&packet, &mut wire).expect("encode");
        self.send_frames(&[&wire]).await;
    }

    /// Sends each slice as its own binary frame.
    pub async fn send_frames(&mut self, frames: &[&[u8]]) {
        use futures_util::SinkExt as _;
        use tokio_tungstenite::tungstenite::Message;
        for frame in frames {
            self.ws
                .send(Message::Binary(bytes::Bytes::copy_from_slice(frame)))
                .await
                .expect("send frame");
        }
    }

    /// Sends any WebSocket message (ping, text, close) as is.
    pub async fn send_message(&mut self, message: tokio_tungstenite::tungstenite::Message) {
        use futures_util::SinkExt as _;
        let _ = self.ws.send(message).await;
    }

    /// The next WebSocket message that is not binary (e.g. a pong), buffering binary data.
    pub async fn recv_control(
        &mut self,
        timeout: Duration,
    ) -> Result<tokio_tungstenite::tungstenite::Message, RecvEnd> {
        use futures_util::StreamExt as _;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(RecvEnd::TimedOut),
                Ok(None) | Ok(Some(Err(_))) => return Err(RecvEnd::Closed),
                Ok(Some(Ok(Message::Binary(data)))) => self.buf.extend_from_slice(&data),
                Ok(Some(Ok(other))) => return Ok(other),
            }
        }
    }

    /// The next MQTT packet (whatever frames carried it), or why none came within `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Packet, RecvEnd> {
        use futures_util::StreamExt as _;
        use tokio_tungstenite::tungstenite::Message;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(packet) =
                codec::decode(&mut self.buf, usize::MAX).expect("server sent a valid packet")
            {
                return Ok(packet);
            }
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(RecvEnd::TimedOut),
                Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                    return Err(RecvEnd::Closed);
                }
                Ok(Some(Ok(Message::Binary(data)))) => self.buf.extend_from_slice(&data),
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// Raw MQTT over any transport (TLS or WebSocket): the two primitives, and the exchanges the
/// tests run on top of them.
#[allow(async_fn_in_trait)]
pub trait MqttPeer {
    async fn send_packet(&mut self, packet: Packet);
    async fn recv_packet(&mut self, timeout: Duration) -> Result<Packet, RecvEnd>;

    /// Sends CONNECT and returns the CONNACK code.
    async fn mqtt_connect(
        &mut self,
        client_id: &str,
        username: &str,
        password: &str,
    ) -> ConnectReturnCode {
        let mut connect = Connect::new(client_id);
        connect.keep_alive = 60;
        connect.clean_session = true;
        connect.login = Some(Login::new(username, password));
        self.send_packet(Packet::Connect(connect)).await;
        match self.recv_packet(Duration::from_secs(5)).await {
            Ok(Packet::ConnAck(ConnAck { code, .. })) => code,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// CONNECT as the quickstart enrollment's DPS client (SAS valid ten minutes); asserts
    /// CONNACK 0.
    async fn connect_quickstart_dps(&mut self, emulator: &Emulator) {
        let password = dps_token(
            emulator.id_scope(),
            QUICKSTART_REGISTRATION_ID,
            QUICKSTART_KEY,
            seconds_from_now(600),
        );
        let username = dps_username(emulator.id_scope(), QUICKSTART_REGISTRATION_ID);
        let code = self
            .mqtt_connect(QUICKSTART_REGISTRATION_ID, &username, &password)
            .await;
        assert_eq!(code, ConnectReturnCode::Success);
    }

    /// Runs a whole DPS registration on an already connected client (subscribe, register,
    /// poll until done) and returns the final `RegistrationOperationStatus` JSON.
    async fn register(&mut self, registration_id: &str) -> serde_json::Value {
        use iotemu::internals::mqtt::codec::{PubAck, Publish, QoS};
        use rumqttc::mqttbytes::v4::Subscribe;
        let mut subscribe = Subscribe::new("$dps/registrations/res/#", QoS::AtLeastOnce);
        subscribe.pkid = 1;
        self.send_packet(Packet::Subscribe(subscribe)).await;
        let mut body = format!(r#"{{"registrationId":"{registration_id}"}}"#).into_bytes();
        let mut topic = "$dps/registrations/PUT/iotdps-register/?$rid=1".to_owned();
        for attempt in 2u16..50 {
            self.send_packet(Packet::Publish(Publish::new(
                &topic,
                QoS::AtMostOnce,
                body.clone(),
            )))
            .await;
            let response = loop {
                match self
                    .recv_packet(Duration::from_secs(5))
                    .await
                    .expect("DPS answers")
                {
                    Packet::Publish(p) => {
                        self.send_packet(Packet::PubAck(PubAck::new(p.pkid))).await;
                        break p;
                    }
                    _ => continue,
                }
            };
            let status: serde_json::Value =
                serde_json::from_slice(&response.payload).expect("JSON");
            if status["status"] != "assigning" {
                return status;
            }
            let operation = status["operationId"].as_str().expect("operationId");
            topic = format!(
                "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={attempt}&operationId={operation}"
            );
            body = b" ".to_vec();
        }
        panic!("registration did not complete");
    }
}

impl MqttPeer for RawClient {
    async fn send_packet(&mut self, packet: Packet) {
        self.send(packet).await
    }
    async fn recv_packet(&mut self, timeout: Duration) -> Result<Packet, RecvEnd> {
        self.recv(timeout).await
    }
}

impl MqttPeer for WsClient {
    async fn send_packet(&mut self, packet: Packet) {
        self.send(packet).await
    }
    async fn recv_packet(&mut self, timeout: Duration) -> Result<Packet, RecvEnd> {
        self.recv(timeout).await
    }
}

/// The well-known `iothubowner` key of the quickstart fixture (fixtures/quickstart.json).
pub const HUB_OWNER_KEY: &str = "m3KXjFJcrlf/7AzVtsFylbokniqdr2n96hQepP6P/GU=";

/// A token for the quickstart hub's (`localhost`) shared access policy `policy`, signed with
/// its base64 `key_b64`, valid ten minutes.
pub fn hub_policy_token(policy: &str, key_b64: &str) -> String {
    build_token(
        "localhost",
        &decode_key(key_b64),
        Some(policy),
        seconds_from_now(600),
    )
}

/// The quickstart fixture's `provisioningserviceowner` key (DPS service API).
pub const DPS_OWNER_KEY: &str = "9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA=";
/// The DPS service API version the SDKs send.
pub const DPS_API: &str = "api-version=2021-10-01";

/// A DPS service REST call (enrollments, groups, registrations) signed with
/// `provisioningserviceowner`, JSON body (none when `body` is null), [`DPS_API`] appended.
pub async fn dps_rest(
    emulator: &Emulator,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> HttpsResponse {
    let token = build_token(
        "localhost",
        &decode_key(DPS_OWNER_KEY),
        Some("provisioningserviceowner"),
        seconds_from_now(600),
    );
    json_rest(emulator, &token, method, path, DPS_API, &[], body).await
}

/// A service REST call with `authorization`, a JSON body (none when `body` is null) and
/// `api_version` (`api-version=…`) appended to the path's query.
async fn json_rest(
    emulator: &Emulator,
    authorization: &str,
    method: &str,
    path: &str,
    api_version: &str,
    extra_headers: &[(&str, &str)],
    body: serde_json::Value,
) -> HttpsResponse {
    let mut headers = vec![
        ("Authorization", authorization),
        ("Content-Type", "application/json"),
    ];
    headers.extend_from_slice(extra_headers);
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let separator = if path.contains('?') { '&' } else { '?' };
    https_request(
        emulator,
        None,
        method,
        &format!("{path}{separator}{api_version}"),
        &headers,
        &body,
    )
    .await
}

/// A hub service REST call (registry, twins) signed with `iothubowner`, JSON body (none when
/// `body` is null), `api-version=2021-04-12` appended.
pub async fn hub_rest(
    emulator: &Emulator,
    method: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: serde_json::Value,
) -> HttpsResponse {
    let owner = ("iothubowner", HUB_OWNER_KEY);
    hub_rest_as(emulator, owner, method, path, extra_headers, body).await
}

/// [`hub_rest`] signed with the shared access policy `policy` and its base64 key.
pub async fn hub_rest_as(
    emulator: &Emulator,
    (policy, key_b64): (&str, &str),
    method: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: serde_json::Value,
) -> HttpsResponse {
    let auth = hub_policy_token(policy, key_b64);
    json_rest(
        emulator,
        &auth,
        method,
        path,
        "api-version=2021-04-12",
        extra_headers,
        body,
    )
    .await
}

/// Provisions `device_id` on the default hub with the quickstart key (and `initial` twin),
/// connects it over MQTT and subscribes it to each of `filters` (one SUBSCRIBE each, its
/// SUBACK awaited).
pub async fn connected_hub_device(
    emulator: &Emulator,
    device_id: &str,
    initial: Option<serde_json::Value>,
    filters: &[&str],
) -> RawClient {
    use iotemu::internals::mqtt::codec::QoS;
    use rumqttc::mqttbytes::v4::Subscribe;
    let key = iotemu::SymmetricKey::from_base64(QUICKSTART_KEY).expect("the quickstart key");
    emulator
        .default_hub()
        .provision_device(device_id, key.clone(), key, initial);
    let mut client = RawClient::connect(emulator).await;
    let token = device_token(
        "localhost",
        device_id,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    assert_eq!(
        client
            .mqtt_connect(device_id, &hub_username("localhost", device_id), &token)
            .await,
        ConnectReturnCode::Success
    );
    for (pkid, filter) in (1u16..).zip(filters) {
        let mut subscribe = Subscribe::new(*filter, QoS::AtLeastOnce);
        subscribe.pkid = pkid;
        client.send(Packet::Subscribe(subscribe)).await;
        assert!(matches!(
            client.recv(Duration::from_secs(5)).await,
            Ok(Packet::SubAck(_))
        ));
    }
    client
}

/// Registers `device_id` on the default hub with the quickstart key (and `initial` twin) and
/// returns a device client builder for it that trusts the emulator; callers add options and
/// connect.
pub fn quickstart_device(
    emulator: &Emulator,
    device_id: &str,
    initial: Option<serde_json::Value>,
) -> iotemu_device::DeviceClientBuilder {
    let key = iotemu::SymmetricKey::from_base64(QUICKSTART_KEY).expect("the quickstart key");
    emulator
        .default_hub()
        .provision_device(device_id, key.clone(), key, initial);
    iotemu_device::DeviceClient::builder("localhost", device_id)
        .symmetric_key(QUICKSTART_KEY)
        .trust(iotemu_device::Trust::CaPem(emulator.ca_pem().to_owned()))
        .port(emulator.mqtt_port())
}

/// A DPS registration client over raw MQTT for the quickstart registration (scope
/// `0ne00000A0A`), subscribed to the response topic.
pub async fn dps_mqtt_registration(emulator: &Emulator) -> RawClient {
    let mut client = RawClient::connect(emulator).await;
    let token = dps_token(
        QUICKSTART_SCOPE,
        QUICKSTART_REGISTRATION_ID,
        QUICKSTART_KEY,
        seconds_from_now(600),
    );
    let code = client
        .mqtt_connect(
            QUICKSTART_REGISTRATION_ID,
            &dps_username(QUICKSTART_SCOPE, QUICKSTART_REGISTRATION_ID),
            &token,
        )
        .await;
    assert_eq!(code, ConnectReturnCode::Success);
    let mut subscribe =
        rumqttc::mqttbytes::v4::Subscribe::new("$dps/registrations/res/#", codec::QoS::AtMostOnce);
    subscribe.pkid = 1;
    client.send(Packet::Subscribe(subscribe)).await;
    match client.recv(Duration::from_secs(5)).await {
        Ok(Packet::SubAck(_)) => {}
        other => panic!("expected SUBACK, got {other:?}"),
    }
    client
}

/// A DPS client over raw MQTT that has asked to register the quickstart registration, and
/// the operation id to poll ([`dps_poll_topic`]).
pub async fn dps_mqtt_registration_started(emulator: &Emulator) -> (RawClient, String) {
    let mut client = dps_mqtt_registration(emulator).await;
    let body = format!(r#"{{"registrationId":"{QUICKSTART_REGISTRATION_ID}"}}"#);
    let (_, started) = request_response(
        &mut client,
        "$dps/registrations/PUT/iotdps-register/?$rid=1",
        body.as_bytes(),
    )
    .await;
    let operation = started["operationId"].as_str().expect("operationId");
    (client, operation.to_owned())
}

/// The MQTT topic that polls DPS operation `operation` as request `rid`.
pub fn dps_poll_topic(rid: u32, operation: &str) -> String {
    format!("$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={operation}")
}

/// Publishes at QoS 0 and returns the response's topic and JSON body (DPS answers, and the
/// hub's twin responses alike).
pub async fn request_response(
    client: &mut RawClient,
    topic: &str,
    body: &[u8],
) -> (String, serde_json::Value) {
    client
        .send(Packet::Publish(codec::Publish::new(
            topic,
            codec::QoS::AtMostOnce,
            body.to_vec(),
        )))
        .await;
    match client.recv(Duration::from_secs(5)).await {
        Ok(Packet::Publish(p)) => (
            p.topic.clone(),
            serde_json::from_slice(&p.payload).unwrap_or_default(),
        ),
        other => panic!("expected a response, got {other:?}"),
    }
}

/// One request to the control port; the status and the JSON body (`Null` when empty).
pub async fn control_call(
    emulator: &Emulator,
    method: &str,
    path: &str,
    headers: &[&str],
    body: &str,
) -> (u16, serde_json::Value) {
    let mut tcp = TcpStream::connect(emulator.control_addr().expect("control port"))
        .await
        .expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    tcp.write_all(head.as_bytes()).await.expect("write");
    tcp.write_all(body.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut raw))
        .await
        .expect("in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or_default();
    (status, json)
}

/// `future`, or a panic naming `what` when it takes longer than ten seconds (a guard against
/// a hang, not a timing assertion).
pub async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), future)
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
}

/// Creates SAS module `module_id` of `device_id` on the default hub (and the SAS device, when
/// it does not exist yet) through the Rust API; returns the module's primary key (base64).
pub fn create_sas_module(emulator: &Emulator, device_id: &str, module_id: &str) -> String {
    use iotemu::{AuthenticationSpec, DeviceSpec, DeviceStatus, ModuleSpec, WaitStored};
    let hub = emulator.default_hub();
    if hub.device(device_id).is_none() {
        hub.create_device(DeviceSpec {
            device_id: device_id.to_owned(),
            status: DeviceStatus::Enabled,
            authentication: AuthenticationSpec::Sas {
                primary: None,
                secondary: None,
            },
        })
        .wait_stored()
        .expect("the device is created");
    }
    let spec = ModuleSpec::from_json(device_id, module_id, b"{}").expect("an empty module body");
    let module = hub
        .create_module(spec)
        .wait_stored()
        .expect("the module is created");
    module.sas_keys()[0].to_base64()
}

/// The quickstart emulator on the data directory `dir` (polls answered without waiting, as
/// [`start_emulator`]), waiting while a previous emulator's sessions still hold the
/// directory's lock (they end right after its shutdown).
pub async fn start_on_data_dir(dir: &std::path::Path) -> Emulator {
    let mut last = None;
    for _ in 0..100 {
        match Emulator::builder()
            .quickstart_fixture()
            .retry_after(0)
            .data_dir(dir)
            .start()
            .await
        {
            Ok(emulator) => return emulator,
            Err(e) => {
                last = Some(e.to_string());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    panic!("emulator did not start on {}: {last:?}", dir.display());
}
