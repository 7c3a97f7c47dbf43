//! The startup banner and the `/health` answer that README.md shows are what the `iotemu`
//! binary really prints: it is started on free ports with `--ca-out iotemu-ca.pem`, and every
//! line of the README's banner block must appear, in order, in the real banner once ports are
//! put back to the defaults the README shows (8883, 5671, 443, 9180).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::FREE_PORTS;

const README: &str = include_str!("../../README.md");

/// Kills the emulator however the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary and returns it with its banner (stdout up to `iotemu ready`).
fn start() -> (Running, tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut command = Command::new(env!("CARGO_BIN_EXE_iotemu"));
    // Every flag has an IOTEMU_* variable; one set around the test would change the banner.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("IOTEMU_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(FREE_PORTS)
        .args(["--ca-out", "iotemu-ca.pem"])
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start iotemu");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut banner = Vec::new();
    while banner
        .last()
        .is_none_or(|line: &String| line != "iotemu ready")
    {
        let line = received
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no complete banner; got {banner:#?}"));
        banner.push(line);
    }
    (running, dir, banner)
}

/// `host:port, host:port` with every port set to `port`; `[::1]` dropped, as it is bound only
/// where the machine has IPv6 loopback.
fn addresses(list: &str, port: u16) -> String {
    list.split(", ")
        .filter(|addr| !addr.starts_with("[::1]"))
        .map(|addr| match addr.rsplit_once(':') {
            Some((host, _)) => format!("{host}:{port}"),
            None => addr.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A banner line with the ports the README shows.
fn normalized(line: &str) -> String {
    for (label, port) in [
        ("  MQTT over TLS:   ", 8883),
        ("  AMQP over TLS:   ", 5671),
        ("  HTTPS (REST):    ", 443),
    ] {
        if let Some(list) = line.strip_prefix(label) {
            return format!("{label}{}", addresses(list, port));
        }
    }
    if let Some(rest) = line.strip_prefix("  Control (HTTP):  http://127.0.0.1:") {
        let after_port = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        return format!("  Control (HTTP):  http://127.0.0.1:9180{after_port}");
    }
    if let Some(rest) = line.strip_prefix("  Portal:          open http://127.0.0.1:") {
        let after_port = rest.trim_start_matches(|c: char| c.is_ascii_digit());
        return format!("  Portal:          open http://127.0.0.1:9180{after_port}");
    }
    line.to_owned()
}

/// The lines of the ```text block that follows `marker` in the README.
fn readme_block_after(marker: &str) -> Vec<&'static str> {
    let after = README
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("README has no {marker:?}"));
    let block = after
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a ```text block");
    block.lines().collect()
}

fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the control port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("response head");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, body.to_owned())
}

#[test]
fn the_readme_shows_the_real_banner_and_health_answer() {
    let (_running, _dir, banner) = start();
    let real: Vec<String> = banner.iter().map(|line| normalized(line)).collect();
    let shown = readme_block_after("printed at startup as connection");
    assert!(shown.len() >= 5, "README banner block: {shown:#?}");
    let mut rest = real.iter();
    for line in &shown {
        let line = normalized(line);
        assert!(
            rest.any(|real| *real == line),
            "README banner line {line:?} is not printed (in this order); the real banner:\n{}",
            real.join("\n")
        );
    }

    let control = banner
        .iter()
        .find_map(|line| line.strip_prefix("  Control (HTTP):  http://127.0.0.1:"))
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|port| port.parse().ok())
        .expect("control port in the banner");
    let (status, body) = get(control, "/health");
    assert_eq!(status, 200);
    let shown = readme_block_after("curl -s http://127.0.0.1:9180/health\n```");
    assert_eq!(
        shown.first(),
        Some(&"$ curl -s http://127.0.0.1:9180/health")
    );
    let health = |text: &str| {
        let mut value: serde_json::Value = serde_json::from_str(text).expect("JSON");
        if let Some(mqtt) = value["mqtt"].as_array() {
            let list: Vec<String> = mqtt
                .iter()
                .filter_map(|a| a.as_str())
                .map(str::to_owned)
                .collect();
            let normalized = addresses(&list.join(", "), 8883);
            value["mqtt"] = normalized.split(", ").collect::<Vec<_>>().into();
        }
        if let Some(amqp) = value["amqp"].as_array() {
            let list: Vec<String> = amqp
                .iter()
                .filter_map(|a| a.as_str())
                .map(str::to_owned)
                .collect();
            let normalized = addresses(&list.join(", "), 5671);
            value["amqp"] = normalized.split(", ").collect::<Vec<_>>().into();
        }
        value
    };
    assert_eq!(health(&body), health(shown[1]), "real /health: {body}");
}
