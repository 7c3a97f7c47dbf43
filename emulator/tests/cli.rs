//! The `iotemu` binary as a user runs it: startup banner and readiness, `healthcheck`,
//! `fixtures validate`, JSON logs, and a clear failure when a port is taken.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::FREE_PORTS;

fn iotemu() -> Command {
    Command::new(env!("CARGO_BIN_EXE_iotemu"))
}

/// Starts the emulator on free ports; returns it with its control port once ready.
fn start(extra: &[&str]) -> (Child, u16) {
    let mut child = iotemu()
        .args(FREE_PORTS)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("iotemu starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut control = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("Control (HTTP):") {
            let addr = rest.trim().trim_start_matches("http://");
            let port = addr
                .split_whitespace()
                .next()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap();
            control = Some(port.parse().unwrap());
        }
        if line == "iotemu ready" {
            break;
        }
    }
    (child, control.expect("banner names the control port"))
}

#[test]
fn healthcheck_follows_the_running_emulator() {
    let (mut child, port) = start(&[]);
    let healthy = iotemu()
        .args(["healthcheck", "--control-port", &port.to_string()])
        .output()
        .unwrap();
    assert!(healthy.status.success(), "{healthy:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let gone = iotemu()
        .args(["healthcheck", "--control-port", &port.to_string()])
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(1));
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (mut child, _) = start(&["--log-format", "json"]);
    // SIGTERM: the emulator shuts down gracefully and logs it.
    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|v| v["fields"]["message"] == "shutting down" && v["level"] == "INFO"),
        "{stderr}"
    );
}

#[test]
fn fixtures_validate_reports_path_and_reason() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let good = iotemu()
        .args(["fixtures", "validate"])
        .arg(root.join("fixtures/quickstart.json"))
        .output()
        .unwrap();
    assert!(good.status.success());
    assert!(String::from_utf8_lossy(&good.stdout).contains("1 enrollment(s)"));
    let dir = std::env::temp_dir().join(format!("iotemu-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"enrollments":[{"registrationId":"x","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"!!"}}}]}"#).unwrap();
    let out = iotemu()
        .args(["fixtures", "validate"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("enrollments[0].attestation.symmetricKey.primaryKey")
    );
}

#[test]
fn fixture_faults_are_counted_by_validate_and_a_bad_one_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("iotemu-cli-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("throttle.json");
    std::fs::write(
        &good,
        r#"{"faults":[{"operation":"dps.register","action":{"refuse":{"status":429,"retryAfter":1}},"count":1}]}"#,
    )
    .unwrap();
    let out = iotemu()
        .args(["fixtures", "validate"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(", 1 fault rule(s)"));

    let bad = dir.join("bad-faults.json");
    std::fs::write(
        &bad,
        r#"{"faults":[{"operation":"dps.register","action":{"refuse":{"status":418}}}]}"#,
    )
    .unwrap();
    let out = iotemu()
        .args(FREE_PORTS)
        .arg("--fixtures")
        .arg(&bad)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("bad-faults.json: faults[0]: invalid fault rule: refuse.status 418"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_taken_port_fails_with_the_fix_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = iotemu()
        .args([
            "--mqtt-port",
            &port,
            "--amqp-port",
            "0",
            "--bind",
            "127.0.0.1",
            "--https-port",
            "0",
            "--control-port",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let message = String::from_utf8_lossy(&out.stderr);
    assert!(
        message.contains("Another process is using port"),
        "{message}"
    );
    assert!(message.contains("0 picks a free one"), "{message}");
}

/// GET /health on `ip`:`port`; Some(status line) when something answered.
fn health_status(ip: &str, port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let addr = format!("{ip}:{port}").parse().unwrap();
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).ok()?;
    answer.lines().next().map(str::to_owned)
}

#[test]
fn the_control_port_is_loopback_only_unless_control_bind_says_otherwise() {
    // 127.0.0.2 is a loopback address on Linux that a 127.0.0.1 listener does not accept,
    // but a 0.0.0.0 listener does: it stands in for "another machine" here.
    let (mut loopback, port) = start(&[]);
    assert_eq!(
        health_status("127.0.0.1", port).as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    assert_eq!(health_status("127.0.0.2", port), None);
    loopback.kill().unwrap();
    loopback.wait().unwrap();

    let (mut all, port) = start(&["--control-bind", "0.0.0.0"]);
    assert_eq!(
        health_status("127.0.0.2", port).as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    let healthy = iotemu()
        .args(["healthcheck", "--control-port", &port.to_string()])
        .output()
        .unwrap();
    assert!(healthy.status.success(), "{healthy:?}");
    all.kill().unwrap();
    all.wait().unwrap();
}
