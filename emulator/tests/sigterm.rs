//! SIGTERM on the `iotemu` binary (issue #12, item 8): with a client connected and a data
//! directory, it ends the sessions (dropping one that does not finish within
//! `--shutdown-timeout-secs`), closes the store and exits 0; the directory can be opened by
//! the next emulator at once.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::FREE_PORTS;

/// Starts the binary on free ports with `data_dir`; returns it with its MQTT port once ready.
fn start(data_dir: &std::path::Path) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iotemu"))
        .args(FREE_PORTS)
        .args(["--bind", "127.0.0.1", "--shutdown-timeout-secs", "1"])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("iotemu starts");
    let mut mqtt = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(rest) = line.trim().strip_prefix("MQTT over TLS:") {
            let addr = rest.trim().split(',').next().unwrap();
            mqtt = Some(addr.rsplit(':').next().unwrap().parse().unwrap());
        }
        if line == "iotemu ready" {
            return (child, mqtt.expect("banner names the MQTT port"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    panic!("iotemu did not get ready: {stderr}");
}

fn sigterm(child: &Child) {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[test]
fn sigterm_with_a_client_connected_exits_0_and_frees_the_data_directory() {
    let dir = std::env::temp_dir().join(format!("iotemu-sigterm-{}", std::process::id()));
    let (mut first, mqtt) = start(&dir);
    // A client that never starts its TLS handshake: a session the shutdown has to end.
    let mut idle = TcpStream::connect(("127.0.0.1", mqtt)).unwrap();
    sigterm(&first);
    let status = first.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    // The emulator closed the idle client's connection on its way out.
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    assert!(matches!(idle.read(&mut byte), Ok(0) | Err(_)));
    let mut stderr = String::new();
    first
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("closed the data directory"), "{stderr}");

    // The next emulator opens the same directory straight away.
    let (mut second, _) = start(&dir);
    sigterm(&second);
    assert!(second.wait().unwrap().success());
    let _ = std::fs::remove_dir_all(&dir);
}
