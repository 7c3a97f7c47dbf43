//! Hostile HTTPS clients (issue #12, items 3 and 7): slow heads, slow bodies, idle
//! connections, huge bodies with and without credentials, malformed requests, and a flood of
//! idle sockets. Each case checks the exact reply (or that the connection is closed), that a
//! well-behaved client is served afterwards, and that nothing panicked.

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use iotemu::HttpLimits;
use iotemu::{Emulator, MaxConnections};
use iotemu_e2e::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Panics anywhere in this test process (emulator tasks included), counted by a panic hook
/// that still prints them as usual.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Short limits so that every timeout fires within a test; the rest as by default.
fn short_limits() -> HttpLimits {
    HttpLimits {
        handshake_timeout: Duration::from_secs(5),
        header_timeout: Duration::from_millis(400),
        body_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(600),
        max_body_bytes: 4096,
    }
}

async fn start(limits: HttpLimits, max: MaxConnections) -> Emulator {
    count_panics();
    Emulator::builder()
        .quickstart_fixture()
        .retry_after(0)
        .control_port(0)
        .https_limits(limits)
        .max_connections(max)
        .start()
        .await
        .expect("emulator starts")
}

/// A service token for the quickstart hub (`iothubowner`).
fn owner_token() -> String {
    build_token(
        "localhost",
        &decode_key(HUB_OWNER_KEY),
        Some("iothubowner"),
        seconds_from_now(600),
    )
}

async fn https(emulator: &Emulator) -> TlsStream<TcpStream> {
    let port = emulator.https_port().expect("HTTPS is served");
    tls_connect(emulator, port, None, vec![b"http/1.1".to_vec()]).await
}

/// One response off a kept-alive connection: status, lower-cased head, body (by
/// Content-Length). `None` when the connection closed first.
async fn read_response(stream: &mut TlsStream<TcpStream>) -> Option<(u16, String, Vec<u8>)> {
    let mut raw = Vec::new();
    let head_end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("a response or a close within 10 s")
            .unwrap_or(0);
        if n == 0 {
            return None;
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().expect("content-length"))
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((status, head, body))
}

/// The server closes the connection (within 10 s) without sending anything more.
async fn expect_closed(stream: &mut TlsStream<TcpStream>) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    assert!(
        rest.is_empty(),
        "unexpected bytes before the close: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// A well-behaved client is served: a registry read over HTTPS, and nothing has panicked.
async fn assert_served_and_no_panic(emulator: &Emulator) {
    let reply = hub_rest(emulator, "GET", "/devices", &[], serde_json::Value::Null).await;
    assert_eq!(
        reply.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
}

#[tokio::test]
async fn a_slow_request_head_is_closed_after_the_header_timeout() {
    let emulator = start(short_limits(), MaxConnections::default()).await;
    let mut stream = https(&emulator).await;
    stream
        .write_all(b"GET /devices?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    // A header line every 100 ms: the connection is never idle, the head never complete.
    let dribble = async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if stream
                .write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            let mut byte = [0u8; 1];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), stream.read(&mut byte)).await
            {
                assert_eq!(n, 0, "no reply to an incomplete head");
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), dribble)
        .await
        .expect("closed while the head was still arriving");
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn a_slow_body_is_answered_408_and_closed() {
    let emulator = start(short_limits(), MaxConnections::default()).await;
    let mut stream = https(&emulator).await;
    let head = format!(
        "PUT /devices/slow-body?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"deviceId\":",
        owner_token()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (status, head, body) = read_response(&mut stream).await.expect("a reply");
    assert_eq!(status, 408);
    assert!(head.contains("iothub-errorcode: requesttimeout"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .starts_with("ErrorCode:RequestTimeout;"),
        "{body}"
    );
    expect_closed(&mut stream).await;
    // Nothing of the half-sent device was created.
    let device = hub_rest(
        &emulator,
        "GET",
        "/devices/slow-body",
        &[],
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(device.status, 404);
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn idle_connections_are_closed_before_and_between_requests() {
    let emulator = start(short_limits(), MaxConnections::default()).await;
    // Never sends a byte after the handshake.
    let mut silent = https(&emulator).await;
    expect_closed(&mut silent).await;

    // One request answered on a kept-alive connection, then nothing.
    let mut kept = https(&emulator).await;
    let request = format!(
        "GET /devices?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\n\r\n",
        owner_token()
    );
    kept.write_all(request.as_bytes()).await.unwrap();
    let (status, head, _) = read_response(&mut kept).await.expect("a reply");
    assert_eq!(status, 200);
    assert!(!head.contains("connection: close"), "{head}");
    expect_closed(&mut kept).await;
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn an_unauthenticated_huge_body_is_refused_401_without_being_read() {
    let emulator = start(short_limits(), MaxConnections::default()).await;
    // The hub service API: a gigabyte announced, no credential, no body sent.
    let mut stream = https(&emulator).await;
    stream
        .write_all(
            b"PUT /devices/huge?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
        )
        .await
        .unwrap();
    let (status, head, body) = read_response(&mut stream).await.expect("a reply");
    assert_eq!(status, 401);
    assert!(
        head.contains("iothub-errorcode: iothubunauthorizedaccess"),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .starts_with("ErrorCode:IotHubUnauthorizedAccess;"),
        "{body}"
    );
    // The body is not waited for: the connection ends here.
    expect_closed(&mut stream).await;

    // A client that waits for `100 Continue` before sending gets the refusal instead.
    let mut stream = https(&emulator).await;
    stream
        .write_all(
            b"POST /devices/huge/messages/events?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 200000\r\n\r\n",
        )
        .await
        .unwrap();
    let (status, head, _) = read_response(&mut stream).await.expect("a reply");
    assert_eq!(status, 401, "{head}");
    expect_closed(&mut stream).await;

    // The DPS device API, with a token signed by the wrong key.
    let mut stream = https(&emulator).await;
    let token = dps_token(
        emulator.id_scope(),
        QUICKSTART_REGISTRATION_ID,
        QUICKSTART_GROUP_KEY,
        seconds_from_now(600),
    );
    let request = format!(
        "PUT /{}/registrations/{QUICKSTART_REGISTRATION_ID}/register?api-version=2021-06-01 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {token}\r\nContent-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n",
        emulator.id_scope()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, head, body) = read_response(&mut stream).await.expect("a reply");
    assert_eq!(status, 401);
    assert!(head.contains("x-ms-error-code: 401002"), "{head}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorCode"], 401002);
    expect_closed(&mut stream).await;
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn an_oversize_authenticated_body_is_answered_413() {
    let emulator = start(short_limits(), MaxConnections::default()).await;
    // Declared: refused before a byte of it is read.
    let mut stream = https(&emulator).await;
    let request = format!(
        "PUT /devices/big?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 4097\r\n\r\n",
        owner_token()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, head, body) = read_response(&mut stream).await.expect("a reply");
    assert_eq!(status, 413);
    assert!(head.contains("iothub-errorcode: messagetoolarge"), "{head}");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["Message"],
        "ErrorCode:MessageTooLarge;Request body size 4097 bytes exceeds the limit of 4096 bytes"
    );
    expect_closed(&mut stream).await;

    // Chunked, so only found while reading: the same answer.
    let mut stream = https(&emulator).await;
    let request = format!(
        "PUT /devices/big?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        owner_token()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let chunk = vec![b' '; 3000];
    for _ in 0..2 {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(&chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    let (status, _, body) = read_response(&mut stream).await.expect("a reply");
    assert_eq!(status, 413);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["Message"],
        "ErrorCode:MessageTooLarge;Request body exceeds the limit of 4096 bytes"
    );

    // DPS routes answer in DPS's shape.
    let mut stream = https(&emulator).await;
    let request = "PUT /enrollments/big?api-version=2021-10-01 HTTP/1.1\r\nHost: localhost\r\nAuthorization: SharedAccessSignature sr=localhost&sig=x&se=1&skn=provisioningserviceowner\r\nContent-Length: 5000\r\n\r\n";
    stream.write_all(request.as_bytes()).await.unwrap();
    let (status, _, _) = read_response(&mut stream).await.expect("a reply");
    // A bad token is refused first: 401, not 413.
    assert_eq!(status, 401);
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn malformed_http_is_answered_400_and_closed() {
    let emulator = start(short_limits(), MaxConnections::default()).await;
    for garbage in [
        &b"NOT HTTP AT ALL\r\n\r\n"[..],
        b"GET /devices HTTP/1.1\r\nHost localhost\r\n\r\n",
        b"GET /devices HTTP/1.1\r\nHost: localhost\r\nContent-Length: -5\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
    ] {
        let mut stream = https(&emulator).await;
        stream.write_all(garbage).await.unwrap();
        let (status, _, _) = read_response(&mut stream).await.expect("a reply");
        assert_eq!(status, 400, "{:?}", String::from_utf8_lossy(garbage));
        expect_closed(&mut stream).await;
    }
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn a_full_https_listener_leaves_mqtt_and_control_serving() {
    let limits = HttpLimits {
        // Long enough that the idle sockets below stay for the whole test.
        handshake_timeout: Duration::from_secs(60),
        ..short_limits()
    };
    let max = MaxConnections {
        https: 8,
        ..MaxConnections::default()
    };
    let emulator = start(limits, max).await;
    let port = emulator.https_port().unwrap();
    // Eight idle sockets take every HTTPS slot; more wait in the backlog.
    let mut idle = Vec::new();
    for _ in 0..12 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    // MQTT still serves: a device connects.
    let mut mqtt = RawClient::connect(&emulator).await;
    mqtt.connect_quickstart_dps(&emulator).await;
    // The control port still serves.
    let control = emulator.control_addr().unwrap();
    let mut tcp = TcpStream::connect(control).await.unwrap();
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""status":"healthy""#), "{answer}");
    // HTTPS itself is full: a new client's handshake is not even started.
    let blocked = tokio::time::timeout(Duration::from_millis(300), https(&emulator)).await;
    assert!(blocked.is_err(), "HTTPS accepted beyond its limit");
    // Once the idle sockets go, HTTPS serves again.
    drop(idle);
    assert_served_and_no_panic(&emulator).await;
}

#[tokio::test]
async fn full_mqtt_and_control_listeners_leave_https_serving() {
    count_panics();
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .control_port(0)
        .mqtt_limits(iotemu::MqttLimits {
            handshake_timeout: Duration::from_secs(60),
            ..Default::default()
        })
        .max_connections(MaxConnections {
            mqtt: 4,
            control: 4,
            ..MaxConnections::default()
        })
        .start()
        .await
        .expect("emulator starts");
    let mut idle = Vec::new();
    for _ in 0..6 {
        idle.push(
            TcpStream::connect(("127.0.0.1", emulator.mqtt_port()))
                .await
                .unwrap(),
        );
        idle.push(
            TcpStream::connect(emulator.control_addr().unwrap())
                .await
                .unwrap(),
        );
    }
    // Both are full: a new MQTT client's handshake is not even started.
    let blocked =
        tokio::time::timeout(Duration::from_millis(300), RawClient::connect(&emulator)).await;
    assert!(blocked.is_err(), "MQTT accepted beyond its limit");
    // HTTPS serves, and so does MQTT over WebSocket, which is an HTTPS connection.
    assert_served_and_no_panic(&emulator).await;
    let mut ws = WsClient::connect(&emulator).await;
    ws.connect_quickstart_dps(&emulator).await;
    drop(idle);
    let _mqtt = RawClient::connect(&emulator).await;
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
}
