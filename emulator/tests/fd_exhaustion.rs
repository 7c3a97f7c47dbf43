//! The `iotemu` binary out of file descriptors (issue #12, item 7): run under a low
//! `RLIMIT_NOFILE` and flooded with connections until `accept` fails with EMFILE, it backs
//! off instead of spinning (measured as the CPU time it uses meanwhile), serves again once
//! the flood is gone, exits 0 on SIGTERM, and never panics.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use support::FREE_PORTS;

/// Descriptors the emulator may have: enough to start, few enough to run out of quickly.
const NOFILE: u32 = 128;

struct Running {
    child: Child,
    stderr: Arc<Mutex<String>>,
    mqtt: u16,
    https: u16,
    control: u16,
}

impl Running {
    fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (up to 30 s) until the log contains `needle`.
    fn wait_for_log(&self, needle: &str) {
        for _ in 0..300 {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the log never said {needle:?}:\n{}", self.log());
    }

    /// User plus system CPU time of the emulator so far, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after the command name (which may hold spaces) in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }
}

fn port_of(line: &str) -> u16 {
    let first = line.split([',', ' ']).find(|w| w.contains(':')).unwrap();
    first.rsplit(':').next().unwrap().parse().unwrap()
}

fn start() -> Running {
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={NOFILE}:{NOFILE}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_iotemu"))
        .args(FREE_PORTS)
        .args([
            "--bind",
            "127.0.0.1",
            // Accepted flood connections keep their descriptors for the whole test.
            "--tls-handshake-timeout-secs",
            "120",
        ])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("prlimit runs iotemu");
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut pipe = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn({
        let stderr = stderr.clone();
        move || {
            let mut line = String::new();
            while pipe.read_line(&mut line).unwrap_or(0) > 0 {
                stderr.lock().unwrap().push_str(&line);
                line.clear();
            }
        }
    });
    let (mut mqtt, mut https, mut control) = (0, 0, 0);
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("MQTT over TLS:") {
            mqtt = port_of(rest);
        } else if let Some(rest) = line.strip_prefix("HTTPS (REST):") {
            https = port_of(rest);
        } else if let Some(rest) = line.strip_prefix("Control (HTTP):") {
            control = port_of(rest.trim().trim_start_matches("http://"));
        } else if line == "iotemu ready" {
            break;
        }
    }
    if mqtt == 0 || https == 0 || control == 0 {
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(200));
        panic!(
            "the banner did not name the ports; stderr:\n{}",
            stderr.lock().unwrap()
        );
    }
    Running {
        child,
        stderr,
        mqtt,
        https,
        control,
    }
}

/// `GET path` on the control port; the whole answer, or `None` when it could not be had.
fn control_get(port: u16, path: &str) -> Option<String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// A TLS client trusting only `ca_pem`.
fn tls_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// One HTTPS request without credentials; the status line, or `None` when not served.
fn https_status(port: u16, config: &Arc<rustls::ClientConfig>) -> Option<String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let name = "localhost".try_into().ok()?;
    let connection = rustls::ClientConnection::new(config.clone(), name).ok()?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(
        b"GET /devices?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .ok()?;
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).to_string();
    answer.lines().next().map(str::to_owned)
}

/// Whether a TLS handshake on `port` completes.
fn tls_handshake(port: u16, config: &Arc<rustls::ClientConfig>) -> bool {
    let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut connection) =
        rustls::ClientConnection::new(config.clone(), "localhost".try_into().unwrap())
    else {
        return false;
    };
    while connection.is_handshaking() {
        if connection.complete_io(&mut tcp).is_err() {
            return false;
        }
    }
    true
}

#[test]
fn out_of_descriptors_it_backs_off_recovers_and_exits_cleanly() {
    let mut emulator = start();
    let ca = control_get(emulator.control, "/ca.pem").expect("CA served");
    let ca = &ca[ca.find("-----BEGIN").expect("a PEM body")..];
    let config = tls_config(ca);
    assert_eq!(
        https_status(emulator.https, &config).as_deref(),
        Some("HTTP/1.1 401 Unauthorized")
    );

    // Connections until accepting them has run the emulator out of descriptors (the rest
    // wait in the kernel's backlog).
    let https_addr = ([127, 0, 0, 1], emulator.https).into();
    let mut flood = Vec::new();
    while !emulator.log().contains("accept failed; backing off") {
        assert!(
            flood.len() < 4 * NOFILE as usize,
            "no accept failure after {} connections:\n{}",
            flood.len(),
            emulator.log()
        );
        if let Ok(tcp) = TcpStream::connect_timeout(&https_addr, Duration::from_secs(1)) {
            flood.push(tcp);
        }
    }

    // Still out of descriptors for this whole window: backing off costs little CPU, where
    // retrying accept in a loop would take a whole core.
    let window = Duration::from_secs(2);
    let before = emulator.cpu_ticks();
    std::thread::sleep(window);
    let used = emulator.cpu_ticks() - before;
    let ticks_per_second = 100; // USER_HZ on Linux
    let window_ticks = window.as_secs() * ticks_per_second;
    eprintln!("CPU while out of descriptors: {used} of {window_ticks} ticks");
    assert!(
        used * 4 < window_ticks,
        "the emulator used {used} of {window_ticks} ticks while out of descriptors"
    );

    // The flood goes; every listener serves again. (Accept may have failed with the
    // backlog already empty, so a new connection is what shows the recovery.)
    drop(flood);
    let mut served = None;
    for _ in 0..100 {
        served = https_status(emulator.https, &config);
        if served.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(served.as_deref(), Some("HTTP/1.1 401 Unauthorized"));
    emulator.wait_for_log("accepting again after a burst of accept failures");
    assert!(tls_handshake(emulator.mqtt, &config), "MQTT serves TLS");
    let health = control_get(emulator.control, "/health").expect("control serves");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let stopped = Command::new("kill")
        .args(["-TERM", &emulator.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = emulator.child.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    // The reader thread sees the pipe close once the process is gone.
    std::thread::sleep(Duration::from_millis(200));
    let log = emulator.log();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}
