//! Graceful shutdown (issue #12, item 8): `Emulator::shutdown` closes every connection —
//! MQTT sessions, HTTPS keep-alive connections, MQTT over WebSocket — and then closes the
//! store, so the data directory can be opened again as soon as it returns; dropping the
//! handle inside a runtime starts the same shutdown without blocking the thread.

use std::path::PathBuf;
use std::time::Duration;

use iotemu::Emulator;
use iotemu_e2e::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("iotemu-shutdown-{}", uuid::Uuid::new_v4()))
}

/// A raw MQTT client past CONNACK (a DPS client of the quickstart enrollment).
async fn connected_mqtt(emulator: &Emulator) -> RawClient {
    let mut client = RawClient::connect(emulator).await;
    client.connect_quickstart_dps(emulator).await;
    client
}

/// An HTTPS connection that has been answered once and is kept alive.
async fn kept_alive_https(
    emulator: &Emulator,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let port = emulator.https_port().unwrap();
    let mut stream = tls_connect(emulator, port, None, vec![b"http/1.1".to_vec()]).await;
    stream
        .write_all(b"GET /devices?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "a reply");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    stream
}

async fn expect_https_closed(stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the HTTPS connection stayed open");
    assert!(rest.is_empty());
}

#[tokio::test]
async fn shutdown_closes_mqtt_https_and_websocket_connections() {
    let emulator = start_emulator(None).await;
    let mut mqtt = connected_mqtt(&emulator).await;
    let mut https = kept_alive_https(&emulator).await;
    let mut ws = WsClient::connect(&emulator).await;
    ws.connect_quickstart_dps(&emulator).await;

    tokio::time::timeout(Duration::from_secs(30), emulator.shutdown())
        .await
        .expect("shutdown finishes");
    mqtt.expect_closed().await;
    expect_https_closed(&mut https).await;
    assert!(matches!(
        ws.recv_packet(Duration::from_secs(5)).await,
        Err(RecvEnd::Closed)
    ));
}

#[tokio::test]
async fn shutdown_ends_control_telemetry_streams() {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .control_port(0)
        .start()
        .await
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(emulator.control_addr().unwrap())
        .await
        .unwrap();
    tcp.write_all(b"GET /telemetry/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("iotemu telemetry stream") {
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the stream started");
        seen.extend_from_slice(&chunk[..n]);
    }
    tokio::time::timeout(Duration::from_secs(30), emulator.shutdown())
        .await
        .expect("shutdown does not wait for the stream's subscriber");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest))
        .await
        .expect("the stream ends")
        .unwrap();
}

#[tokio::test]
async fn a_session_that_does_not_finish_is_closed_after_the_shutdown_timeout() {
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .shutdown_timeout(Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    // TLS done, CONNECT begun but never finished: the session waits for the rest and does
    // not see the signal. (The pause lets the server finish its side of the handshake.)
    let mut silent = RawClient::connect(&emulator).await;
    silent.send_bytes(&[0x10]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(Duration::from_secs(30), emulator.shutdown())
        .await
        .expect("shutdown finishes after its timeout");
    silent.expect_closed().await;
}

#[tokio::test]
async fn after_shutdown_the_data_directory_can_be_opened_at_once() {
    let dir = data_dir();
    let start = || {
        Emulator::builder()
            .quickstart_fixture()
            .retry_after(0)
            .data_dir(&dir)
            .start()
    };
    let first = start().await.expect("first emulator starts");
    // A session in progress does not keep the directory locked past shutdown.
    let _mqtt = connected_mqtt(&first).await;
    let _https = kept_alive_https(&first).await;
    first.shutdown().await;
    let second = start()
        .await
        .expect("the directory is free right after shutdown");
    second.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// A current-thread runtime: were `Drop` to wait for the drain on this thread, it would never
// return.
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_handle_in_a_runtime_does_not_block_and_still_closes_everything() {
    let dir = data_dir();
    let emulator = Emulator::builder()
        .quickstart_fixture()
        .retry_after(0)
        .data_dir(&dir)
        .start()
        .await
        .expect("emulator starts");
    let mut mqtt = connected_mqtt(&emulator).await;
    drop(emulator);
    mqtt.expect_closed().await;
    // The background shutdown closes the store too: the directory becomes free.
    let mut reopened = None;
    for _ in 0..200 {
        match Emulator::builder()
            .quickstart_fixture()
            .data_dir(&dir)
            .start()
            .await
        {
            Ok(emulator) => {
                reopened = Some(emulator);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let reopened = reopened.expect("the data directory is released after the drop");
    reopened.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
