//! `--data-dir` under `kill -9` (issue #7 item 1): the `iotemu` binary is killed at a random
//! moment while clients create devices over the hub REST API; after a restart on the same
//! directory every creation that was acknowledged (HTTP 200) is there, and the emulator CA is
//! the one clients already trust.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use support::FREE_PORTS;

/// The quickstart fixture's `iothubowner` key for hub `localhost`.
const OWNER_KEY: &str = "m3KXjFJcrlf/7AzVtsFylbokniqdr2n96hQepP6P/GU=";

struct Running {
    child: Child,
    https_port: u16,
    control_port: u16,
}

fn port_of(line: &str) -> u16 {
    let first = line.split([',', ' ']).find(|s| s.contains(':')).unwrap();
    first
        .trim_start_matches("http://")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn start(dir: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_iotemu"))
        .args(FREE_PORTS)
        .args(["--data-dir"])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("iotemu starts");
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut https_port, mut control_port) = (None, None);
    for line in stdout.lines() {
        let line = line.unwrap();
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("HTTPS (REST):") {
            https_port = Some(port_of(rest.trim()));
        }
        if let Some(rest) = line.strip_prefix("Control (HTTP):") {
            control_port = Some(port_of(rest.trim()));
        }
        if line == "iotemu ready" {
            break;
        }
    }
    Running {
        child,
        https_port: https_port.expect("banner names the HTTPS port"),
        control_port: control_port.expect("banner names the control port"),
    }
}

async fn ca_pem(control_port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", control_port))
        .await
        .unwrap();
    stream
        .write_all(b"GET /ca.pem HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    raw.split_once("\r\n\r\n").unwrap().1.to_owned()
}

fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// One request on a fresh TLS connection; the status code, or `None` when the emulator died
/// before answering.
async fn call(tls: &TlsConnector, port: u16, method: &str, device_id: &str) -> Option<u16> {
    use base64::Engine as _;
    let key = base64::engine::general_purpose::STANDARD
        .decode(OWNER_KEY)
        .unwrap();
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token =
        iotemu::internals::auth::build_token("localhost", &key, Some("iothubowner"), expiry);
    let body = if method == "PUT" {
        format!(r#"{{"deviceId":"{device_id}"}}"#)
    } else {
        String::new()
    };
    let request = format!(
        "{method} /devices/{device_id}?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let mut stream = tls
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .ok()?;
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let head = String::from_utf8_lossy(&raw);
    head.lines()
        .next()?
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
}

/// A pseudo-random number from the clock, enough to vary the kill moment between runs.
fn jitter(max: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos % max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9_at_any_moment() {
    let dir = tempfile::tempdir().unwrap();
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut ca: Option<String> = None;
    for round in 0..4 {
        let mut running = start(dir.path());
        let pem = ca_pem(running.control_port).await;
        match &ca {
            None => ca = Some(pem.clone()),
            Some(first) => assert_eq!(&pem, first, "round {round}: the CA changed"),
        }
        let tls = connector(&pem);

        // Everything acknowledged in earlier rounds is there.
        let known = acknowledged.lock().unwrap().clone();
        for id in &known {
            assert_eq!(
                call(&tls, running.https_port, "GET", id).await,
                Some(200),
                "round {round}: acknowledged device {id} is missing after kill -9"
            );
        }

        // Four writers create devices until the process is killed under them.
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let (tls, port, acknowledged) =
                    (tls.clone(), running.https_port, acknowledged.clone());
                tokio::spawn(async move {
                    for i in 0.. {
                        let id = format!("kill-{round}-{writer}-{i}");
                        match call(&tls, port, "PUT", &id).await {
                            Some(200) => acknowledged.lock().unwrap().push(id),
                            Some(other) => panic!("{id}: unexpected status {other}"),
                            None => return,
                        }
                    }
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + jitter(400))).await;
        running.child.kill().expect("SIGKILL");
        running.child.wait().unwrap();
        for writer in writers {
            writer.await.unwrap();
        }
    }
    let total = acknowledged.lock().unwrap().len();
    assert!(total > 0, "the writers got some devices acknowledged");
    eprintln!("{total} device creations acknowledged across 4 kill -9 rounds");

    // A last start sees every acknowledged device of every round.
    let mut running = start(dir.path());
    let tls = connector(&ca_pem(running.control_port).await);
    let all = acknowledged.lock().unwrap().clone();
    for id in all {
        assert_eq!(
            call(&tls, running.https_port, "GET", &id).await,
            Some(200),
            "{id}"
        );
    }
    running.child.kill().unwrap();
    running.child.wait().unwrap();
}
