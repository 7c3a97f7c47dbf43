//! The control port (plain HTTP on loopback): the live telemetry stream (server-sent events,
//! issue #6 item 8) and queuing cloud-to-device messages for non-Rust tests.

use std::time::Duration;

use bytes::Bytes;
use iotemu::IncomingMessage;
use iotemu::SymmetricKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn emulator() -> iotemu::Emulator {
    let emulator = iotemu::Emulator::builder()
        .control_port(0)
        .start()
        .await
        .unwrap();
    let key = SymmetricKey::from_base64(iotemu_e2e::QUICKSTART_KEY).unwrap();
    emulator
        .default_hub()
        .provision_device("ctl-dev", key.clone(), key, None);
    emulator
}

async fn open(emulator: &iotemu::Emulator, request: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(emulator.control_addr().unwrap())
        .await
        .unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    tcp
}

/// Reads until `needle` has been seen (or panics after 5 s); returns everything read.
async fn read_until(tcp: &mut TcpStream, seen: &mut String, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 4096];
    while !seen.contains(needle) {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .expect("in time")
            .unwrap();
        assert!(n > 0, "stream closed before '{needle}': {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

fn message(body: &'static str) -> IncomingMessage {
    IncomingMessage {
        body: Bytes::from_static(body.as_bytes()),
        ..Default::default()
    }
}

#[tokio::test]
async fn telemetry_stream_replays_then_follows_one_device() {
    let emulator = emulator().await;
    let hub = emulator.default_hub();
    let log = hub.telemetry();
    log.append("localhost", "ctl-dev", None, message("before"));
    let mut tcp = open(
        &emulator,
        "GET /telemetry/stream?deviceId=ctl-dev&replay=true HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    let mut seen = String::new();
    read_until(&mut tcp, &mut seen, "iotemu telemetry stream").await;
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    read_until(&mut tcp, &mut seen, "\"body\":\"before\"").await;
    log.append("localhost", "someone-else", None, message("not ours"));
    log.append("localhost", "ctl-dev", None, message("live"));
    read_until(&mut tcp, &mut seen, "\"body\":\"live\"").await;
    assert!(!seen.contains("not ours"));
    assert_eq!(
        seen.matches("\"body\":\"before\"").count(),
        1,
        "replayed once, not again live"
    );
}

#[tokio::test]
async fn c2d_can_be_queued_over_the_control_port() {
    let emulator = emulator().await;
    let body = "hello";
    let request = format!(
        "POST /c2d?deviceId=ctl-dev&messageId=m-1&prop.room=a%2Fb HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = open(&emulator, &request).await;
    let mut seen = String::new();
    read_until(&mut tcp, &mut seen, "m-1").await;
    assert!(seen.starts_with("HTTP/1.1 201"), "{seen}");
    let pending = emulator.default_hub().c2d_pending("ctl-dev");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0]
            .message
            .properties
            .get("room")
            .map(String::as_str),
        Some("a/b")
    );
    assert_eq!(&pending[0].message.body[..], b"hello");

    let mut tcp = open(&emulator, "POST /c2d?deviceId=ghost HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").await;
    let mut seen = String::new();
    read_until(&mut tcp, &mut seen, "HTTP/1.1").await;
    read_until(&mut tcp, &mut seen, "ghost").await;
    assert!(seen.starts_with("HTTP/1.1 404"), "{seen}");

    let mut tcp = open(
        &emulator,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let mut seen = String::new();
    read_until(&mut tcp, &mut seen, "healthy").await;
    assert!(seen.starts_with("HTTP/1.1 200"));
}
