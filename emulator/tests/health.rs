//! `/health` on the control port while the emulator starts: 503 `starting` as soon as the
//! control port is up, 200 once every listener is bound, and `iotemu healthcheck` exiting 0
//! only on the 200. The two start phases are driven by hand, so the transition is observed
//! deterministically rather than raced.

use std::net::SocketAddr;
use std::process::Command;

use iotemu::Emulator;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET path` on the control port: status and JSON body.
async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let mut tcp = TcpStream::connect(addr)
        .await
        .expect("control port accepts");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = text.split_once("\r\n\r\n").map_or(Value::Null, |(_, b)| {
        serde_json::from_str(b).unwrap_or(Value::Null)
    });
    (status, body)
}

/// Runs `iotemu healthcheck` against `port` off the runtime's threads, as a container would.
async fn healthcheck(port: u16) -> bool {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_iotemu"))
            .args(["healthcheck", "--control-port", &port.to_string()])
            .env_remove("IOTEMU_CONTROL_PORT")
            .output()
            .expect("iotemu runs")
            .status
            .success()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_503_while_starting_and_200_once_every_listener_is_bound() {
    let starting = Emulator::builder()
        .control_port(0)
        .start_control_first()
        .await
        .expect("the control port binds");
    let control = starting.control_addr().expect("a control port");

    let (status, body) = get(control, "/health").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "starting");
    let (status, body) = get(control, "/ca.pem").await;
    assert_eq!(status, 503, "nothing but 503 while starting");
    assert!(body["message"].as_str().unwrap_or("").contains("starting"));
    assert!(
        !healthcheck(control.port()).await,
        "healthcheck fails on 503"
    );

    let emulator = starting.finish().await.expect("the emulator starts");
    assert_eq!(
        emulator.control_addr(),
        Some(control),
        "the same control port"
    );
    let (status, body) = get(control, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["idScope"], emulator.id_scope());
    assert!(
        healthcheck(control.port()).await,
        "healthcheck passes on 200"
    );
}

#[tokio::test]
async fn a_failed_start_reports_the_error_after_the_control_port_was_up() {
    let starting = Emulator::builder()
        .control_port(0)
        .fixture_json("broken", r#"{"enrolments": []}"#)
        .start_control_first()
        .await
        .expect("the control port binds before fixtures are read");
    let control = starting.control_addr().expect("a control port");
    assert_eq!(get(control, "/health").await.0, 503);
    let error = starting
        .finish()
        .await
        .err()
        .expect("the fixture is invalid");
    assert!(error.to_string().contains("enrolments"), "{error}");
}

#[tokio::test]
async fn without_a_control_port_both_phases_still_start_the_emulator() {
    let starting = Emulator::builder().start_control_first().await.unwrap();
    assert_eq!(starting.control_addr(), None);
    let emulator = starting.finish().await.unwrap();
    assert!(emulator.mqtt_port() > 0);
    assert_eq!(emulator.control_addr(), None);
}
