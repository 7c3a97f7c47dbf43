//! Soak benchmark (issue #12 item 9; not part of CI): the release `iotemu` binary with
//! `--data-dir`, driven by thousands of devices over MQTT/TLS for minutes — connecting,
//! sending telemetry, dropping or disconnecting, and reconnecting with a freshly signed SAS
//! token — while the emulator process's RSS and open file descriptors are sampled from
//! `/proc`. Prints start/settled/peak/end RSS and fds, connect→CONNACK and PUBLISH→PUBACK
//! latencies (p50/p99), and whether the RSS at the end is within ±10 % of where it settled.
//! Asserts nothing: a leak shows up as numbers, not as a failed build.
//!
//! ```text
//! cargo bench -p iotemu --bench soak          # 10,000 devices for 10 minutes
//! SOAK_SECS=120 SOAK_DEVICES=2000 cargo bench -p iotemu --bench soak
//! ```
//!
//! Knobs (environment): `SOAK_SECS` (600), `SOAK_DEVICES` (10000), `SOAK_RAMP_SECS` (60:
//! connections start evenly over this), `SOAK_TELEMETRY_SECS` (30: one message per device per
//! period), `SOAK_TOKEN_SECS` (180: token lifetime; a device reconnects with a new token after
//! 60–90 % of it), `SOAK_SAMPLE_SECS` (5), `IOTEMU_BIN` (default: the binary Cargo built with
//! this bench).
//!
//! The generator talks only to 127.0.0.1, runs on one thread (the emulator gets the other
//! core), and bounds every loop by the deadline and every network wait by a timeout.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use iotemu::internals::auth::{build_token, hmac_base64};
use iotemu::internals::mqtt::codec::{
    self, Connect, ConnectReturnCode, Packet, Publish, QoS, Subscribe,
};
use rumqttc::mqttbytes::v4::Login;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, sleep_until, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The quickstart fixture's `iothubowner` key: device creation goes through the hub REST API.
const HUB_OWNER_KEY: &str = "m3KXjFJcrlf/7AzVtsFylbokniqdr2n96hQepP6P/GU=";
/// Device keys are HMAC(master, device id), like a DPS group's derived keys.
const MASTER_KEY: &[u8] = b"iotemu soak benchmark master key";
const HUB: &str = "localhost";
/// Every network wait gives up after this.
const IO_TIMEOUT: Duration = Duration::from_secs(15);

struct Config {
    secs: u64,
    devices: usize,
    ramp_secs: u64,
    telemetry_secs: u64,
    token_secs: u64,
    sample_secs: u64,
    binary: PathBuf,
}

impl Config {
    fn from_env() -> Config {
        let number = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Config {
            secs: number("SOAK_SECS", 600).max(10),
            devices: number("SOAK_DEVICES", 10_000).clamp(1, 15_000) as usize,
            ramp_secs: number("SOAK_RAMP_SECS", 60).max(1),
            telemetry_secs: number("SOAK_TELEMETRY_SECS", 30).max(1),
            token_secs: number("SOAK_TOKEN_SECS", 180).max(10),
            sample_secs: number("SOAK_SAMPLE_SECS", 5).max(1),
            binary: std::env::var_os("IOTEMU_BIN")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_iotemu"))),
        }
    }
}

fn main() {
    let config = Config::from_env();
    let fd_limit = raise_descriptor_limit();
    println!(
        "soak: {} devices for {} s (ramp {} s, telemetry every {} s, tokens for {} s), fd limit {fd_limit}",
        config.devices, config.secs, config.ramp_secs, config.telemetry_secs, config.token_secs
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(config));
}

/// Soft `RLIMIT_NOFILE` raised to the hard limit (10,000 client sockets need it).
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only access the struct passed by pointer, on this frame.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

// ---------------------------------------------------------------------------------------
// The emulator process
// ---------------------------------------------------------------------------------------

struct EmulatorProcess {
    child: Child,
    mqtt: SocketAddr,
    https: SocketAddr,
    ca_pem: Vec<u8>,
    stderr_path: PathBuf,
}

impl EmulatorProcess {
    fn start(binary: &Path, dir: &Path) -> EmulatorProcess {
        let data_dir = dir.join("data");
        let ca_path = dir.join("ca.pem");
        let stderr_path = dir.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr log file");
        let mut child = Command::new(binary)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--ca-out")
            .arg(&ca_path)
            .args([
                "--bind",
                "127.0.0.1",
                "--mqtt-port",
                "0",
                "--https-port",
                "0",
            ])
            .args(["--control-port", "0"])
            // Connection churn logs a few lines per session at INFO; warnings are enough here.
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("stdout piped");
        let mut lines = BufReader::new(stdout);
        let (mut mqtt, mut https) = (None, None);
        let mut line = String::new();
        loop {
            line.clear();
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => panic!(
                    "iotemu exited before it was ready; see {}",
                    stderr_path.display()
                ),
                Ok(_) => {}
            }
            let address = |label: &str| {
                line.trim()
                    .strip_prefix(label)
                    .and_then(|rest| rest.split(',').next())
                    .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            };
            mqtt = mqtt.or(address("MQTT over TLS:"));
            https = https.or(address("HTTPS (REST):"));
            if line.trim() == "iotemu ready" {
                break;
            }
        }
        // Keep draining stdout so the emulator never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = lines.read_to_end(&mut sink);
        });
        EmulatorProcess {
            child,
            mqtt: mqtt.expect("MQTT address in the banner"),
            https: https.expect("HTTPS address in the banner"),
            ca_pem: std::fs::read(&ca_path).expect("CA written by --ca-out"),
            stderr_path,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then up to 30 s for a clean exit (SIGKILL after that).
    fn stop(mut self) -> (String, String) {
        // SAFETY: kill(2) with our own child's pid and a signal number has no memory effects.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status.to_string(),
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break "killed after 30 s".to_owned();
                }
            }
        };
        let stderr = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        (status, stderr)
    }
}

/// `(VmRSS KiB, VmHWM KiB, open fds)` of `pid`.
fn sample_process(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((field("VmRSS:")?, field("VmHWM:")?, fds))
}

/// CPU seconds (user + system) `pid` has used, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// Total bytes of the files under `dir` (the data directory's log and snapshots).
fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => directory_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

// ---------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct Stats {
    connects: AtomicU64,
    connected: AtomicU64,
    published: AtomicU64,
    /// Sessions that ended on an error: refused, timed out, or closed by the server.
    errors: AtomicU64,
    connect_latency_us: Mutex<Vec<u32>>,
    publish_latency_us: Mutex<Vec<u32>>,
    first_errors: Mutex<Vec<String>>,
}

impl Stats {
    fn record(list: &Mutex<Vec<u32>>, elapsed: Duration) {
        if let Ok(mut l) = list.lock() {
            l.push(elapsed.as_micros().min(u128::from(u32::MAX)) as u32);
        }
    }

    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut first) = self.first_errors.lock()
            && first.len() < 10
        {
            first.push(what);
        }
    }
}

/// What every device task shares.
struct Load {
    mqtt: SocketAddr,
    tls: TlsConnector,
    started: Instant,
    deadline: Instant,
    devices: usize,
    ramp: Duration,
    telemetry: Duration,
    token_secs: u64,
    stats: Stats,
}

fn device_id(n: usize) -> String {
    format!("soak-{n:05}")
}

fn device_key(device_id: &str) -> String {
    hmac_base64(MASTER_KEY, device_id.as_bytes())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A tiny deterministic generator for jitter (xorshift64*).
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Jitter {
        Jitter(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    /// Uniform in `[0, 1)`.
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    fn scale(&mut self, d: Duration, low: f64, high: f64) -> Duration {
        d.mul_f64(low + (high - low) * self.next())
    }
}

/// One device for the whole run: connect, send, reconnect with a new token, until the end.
async fn run_device(n: usize, load: Arc<Load>) {
    let id = device_id(n);
    let key = device_key(&id);
    let mut jitter = Jitter::new(n as u64 + 1);
    let start = load.started + load.ramp.mul_f64(n as f64 / load.devices as f64);
    sleep_until(start).await;
    let mut session_number = 0u64;
    while Instant::now() < load.deadline {
        session_number += 1;
        let lifetime = Duration::from_secs(load.token_secs);
        let until = (Instant::now() + jitter.scale(lifetime, 0.6, 0.9)).min(load.deadline);
        // One session in four ends by dropping the socket, like a lost network.
        let abrupt = session_number.is_multiple_of(4);
        if let Err(e) = session(&id, &key, &load, until, abrupt, &mut jitter).await {
            load.stats.error(format!("{id}: {e}"));
            // Back off before retrying, as SDKs do.
            let pause = jitter.scale(Duration::from_secs(5), 0.2, 1.0);
            sleep_until((Instant::now() + pause).min(load.deadline)).await;
        }
    }
}

/// Counts a device as connected while alive.
struct ConnectedGuard<'a>(&'a AtomicU64);

impl Drop for ConnectedGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Mqtt {
    stream: TlsStream<TcpStream>,
    rbuf: BytesMut,
}

impl Mqtt {
    async fn send(&mut self, packet: &Packet) -> Result<(), String> {
        let mut wire = BytesMut::new();
        codec::encode(packet, &mut wire).map_err(|e| e.to_string())?;
        timeout(IO_TIMEOUT, async {
            self.stream.write_all(&wire).await?;
            self.stream.flush().await
        })
        .await
        .map_err(|_| "write timed out".to_owned())?
        .map_err(|e| format!("write: {e}"))
    }

    async fn recv(&mut self) -> Result<Packet, String> {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(packet) =
                codec::decode(&mut self.rbuf, usize::MAX).map_err(|e| e.to_string())?
            {
                return Ok(packet);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.rbuf)).await {
                Err(_) => return Err("no reply in time".into()),
                Ok(Ok(0)) => return Err("closed by the server".into()),
                Ok(Err(e)) => return Err(format!("read: {e}")),
                Ok(Ok(_)) => {}
            }
        }
    }
}

async fn session(
    id: &str,
    key: &str,
    load: &Load,
    until: Instant,
    abrupt: bool,
    jitter: &mut Jitter,
) -> Result<(), String> {
    let began = Instant::now();
    let tcp = timeout(IO_TIMEOUT, TcpStream::connect(load.mqtt))
        .await
        .map_err(|_| "TCP connect timed out".to_owned())?
        .map_err(|e| format!("TCP connect: {e}"))?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let stream = timeout(IO_TIMEOUT, load.tls.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| format!("TLS: {e}"))?;
    let mut mqtt = Mqtt {
        stream,
        rbuf: BytesMut::with_capacity(256),
    };
    let token = build_token(
        &format!("{HUB}/devices/{id}"),
        &base64_decode(key)?,
        None,
        unix_now() + load.token_secs,
    );
    let mut connect = Connect::new(id);
    // Telemetry is the traffic that keeps the session alive.
    connect.keep_alive = (load.telemetry.as_secs() * 2).clamp(60, 1_000) as u16;
    // Like the SDKs: a persistent session, C2D subscription kept by the hub.
    connect.clean_session = false;
    connect.login = Some(Login::new(
        format!("{HUB}/{id}/?api-version=2021-04-12&DeviceClientType=iotemu-soak"),
        token,
    ));
    mqtt.send(&Packet::Connect(connect)).await?;
    match mqtt.recv().await? {
        Packet::ConnAck(ack) if ack.code == ConnectReturnCode::Success => {}
        other => return Err(format!("expected CONNACK 0, got {other:?}")),
    }
    Stats::record(&load.stats.connect_latency_us, began.elapsed());
    load.stats.connects.fetch_add(1, Ordering::Relaxed);
    load.stats.connected.fetch_add(1, Ordering::Relaxed);
    let _connected = ConnectedGuard(&load.stats.connected);

    let mut subscribe = Subscribe::new(
        format!("devices/{id}/messages/devicebound/#"),
        QoS::AtLeastOnce,
    );
    subscribe.pkid = 1;
    mqtt.send(&Packet::Subscribe(subscribe)).await?;
    match mqtt.recv().await? {
        Packet::SubAck(_) => {}
        other => return Err(format!("expected SUBACK, got {other:?}")),
    }

    let mut pkid: u16 = 1;
    let mut next = Instant::now() + jitter.scale(load.telemetry, 0.0, 1.0);
    while next < until {
        sleep_until(next).await;
        pkid = pkid.wrapping_add(1).max(2);
        let body = format!(r#"{{"device":"{id}","temperature":21.5,"n":{pkid}}}"#);
        let mut publish = Publish::new(
            format!("devices/{id}/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8"),
            QoS::AtLeastOnce,
            body,
        );
        publish.pkid = pkid;
        let sent = Instant::now();
        mqtt.send(&Packet::Publish(publish)).await?;
        loop {
            match mqtt.recv().await? {
                Packet::PubAck(ack) if ack.pkid == pkid => break,
                // Nothing else is expected; anything the hub pushes is simply skipped.
                _ => continue,
            }
        }
        Stats::record(&load.stats.publish_latency_us, sent.elapsed());
        load.stats.published.fetch_add(1, Ordering::Relaxed);
        next += jitter.scale(load.telemetry, 0.9, 1.1);
    }
    sleep_until(until).await;
    if !abrupt {
        mqtt.send(&Packet::Disconnect).await?;
        let _ = timeout(Duration::from_secs(2), mqtt.stream.shutdown()).await;
    }
    Ok(())
}

fn base64_decode(b64: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| e.to_string())
}

fn tls_connector(ca_pem: &[u8]) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("CA PEM")).expect("CA accepted");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    // Every reconnect pays for a full handshake, as most SDKs' TLS stacks do.
    config.resumption = rustls::client::Resumption::disabled();
    TlsConnector::from(Arc::new(config))
}

// ---------------------------------------------------------------------------------------
// Device creation over the hub REST API
// ---------------------------------------------------------------------------------------

/// Creates devices `from..to` (step `step`) with PUT /devices/{id} on one kept-alive HTTPS
/// connection, reconnecting if the server closes it.
async fn create_devices(
    https: SocketAddr,
    tls: TlsConnector,
    ids: Vec<usize>,
) -> Result<(), String> {
    let auth = build_token(
        HUB,
        &base64_decode(HUB_OWNER_KEY)?,
        Some("iothubowner"),
        unix_now() + 3_600,
    );
    let mut stream: Option<TlsStream<TcpStream>> = None;
    for n in ids {
        let id = device_id(n);
        let key = device_key(&id);
        let body = format!(
            r#"{{"deviceId":"{id}","authentication":{{"type":"sas","symmetricKey":{{"primaryKey":"{key}","secondaryKey":"{key}"}}}}}}"#
        );
        let request = format!(
            "PUT /devices/{id}?api-version=2021-04-12 HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut attempts = 0;
        loop {
            attempts += 1;
            if attempts > 3 {
                return Err(format!("could not create {id}"));
            }
            if stream.is_none() {
                let tcp = timeout(IO_TIMEOUT, TcpStream::connect(https))
                    .await
                    .map_err(|_| "timeout".to_owned())?
                    .map_err(|e| e.to_string())?;
                let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
                stream = Some(
                    timeout(IO_TIMEOUT, tls.connect(name, tcp))
                        .await
                        .map_err(|_| "timeout".to_owned())?
                        .map_err(|e| e.to_string())?,
                );
            }
            let Some(s) = stream.as_mut() else { continue };
            match timeout(IO_TIMEOUT, http_exchange(s, request.as_bytes())).await {
                Ok(Ok(200)) => break,
                Ok(Ok(status)) => return Err(format!("PUT {id}: HTTP {status}")),
                // Closed (idle timeout) or timed out: a new connection, same request.
                _ => stream = None,
            }
        }
    }
    Ok(())
}

/// Sends one request and reads one response (by Content-Length); returns its status.
async fn http_exchange(stream: &mut TlsStream<TcpStream>, request: &[u8]) -> Result<u16, String> {
    stream.write_all(request).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        raw.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let head =
        String::from_utf8_lossy(raw.get(..head_end).unwrap_or_default()).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while raw.len() < head_end + 4 + length {
        let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed mid-body".into());
        }
        raw.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    Ok(status)
}

// ---------------------------------------------------------------------------------------
// The run and its report
// ---------------------------------------------------------------------------------------

struct Sample {
    at: Duration,
    rss_kib: u64,
    fds: u64,
    connected: u64,
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    f64::from(sorted[rank.min(sorted.len() - 1)]) / 1000.0
}

fn latency_line(name: &str, list: &Mutex<Vec<u32>>) -> String {
    let mut values = list.lock().map(|l| l.clone()).unwrap_or_default();
    values.sort_unstable();
    format!(
        "{name}: n={} p50={:.2} ms p99={:.2} ms max={:.2} ms",
        values.len(),
        percentile(&values, 0.50),
        percentile(&values, 0.99),
        percentile(&values, 1.0)
    )
}

fn mean_rss(samples: &[Sample], from: Duration, to: Duration) -> Option<f64> {
    let window: Vec<f64> = samples
        .iter()
        .filter(|s| s.at >= from && s.at <= to)
        .map(|s| s.rss_kib as f64)
        .collect();
    (!window.is_empty()).then(|| window.iter().sum::<f64>() / window.len() as f64)
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

async fn run(config: Config) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let emulator = EmulatorProcess::start(&config.binary, dir.path());
    let pid = emulator.pid();
    let (start_rss, _, start_fds) = sample_process(pid).expect("/proc sample");
    println!(
        "iotemu pid {pid}: MQTT {}, HTTPS {}, data dir {}; start RSS {}, fds {start_fds}",
        emulator.mqtt,
        emulator.https,
        dir.path().join("data").display(),
        mib(start_rss as f64)
    );
    let tls = tls_connector(&emulator.ca_pem);

    // Devices: 8 kept-alive HTTPS connections, interleaved ids.
    let created = std::time::Instant::now();
    let workers = 8;
    let mut creators = Vec::new();
    for w in 0..workers {
        let ids: Vec<usize> = (w..config.devices).step_by(workers).collect();
        creators.push(tokio::spawn(create_devices(
            emulator.https,
            tls.clone(),
            ids,
        )));
    }
    for creator in creators {
        if let Ok(Err(e)) | Err(e) = creator.await.map_err(|e| e.to_string()) {
            let (_, stderr) = emulator.stop();
            panic!("creating devices failed: {e}\n{stderr}");
        }
    }
    let (created_rss, _, created_fds) = sample_process(pid).expect("/proc sample");
    println!(
        "created {} devices over HTTPS in {:.1} s; RSS {}, fds {created_fds}",
        config.devices,
        created.elapsed().as_secs_f64(),
        mib(created_rss as f64)
    );

    let cpu_before = cpu_seconds(pid).unwrap_or(0.0);
    let started = Instant::now();
    let duration = Duration::from_secs(config.secs);
    let load = Arc::new(Load {
        mqtt: emulator.mqtt,
        tls,
        started,
        deadline: started + duration,
        devices: config.devices,
        ramp: Duration::from_secs(config.ramp_secs.min(config.secs)),
        telemetry: Duration::from_secs(config.telemetry_secs),
        token_secs: config.token_secs,
        stats: Stats::default(),
    });
    let mut devices = Vec::with_capacity(config.devices);
    for n in 0..config.devices {
        devices.push(tokio::spawn(run_device(n, load.clone())));
    }

    let mut samples = Vec::new();
    let period = Duration::from_secs(config.sample_secs);
    let mut next_sample = started;
    let mut next_print = started;
    while Instant::now() < load.deadline {
        sleep_until(next_sample).await;
        next_sample += period;
        let Some((rss, _, fds)) = sample_process(pid) else {
            println!("the emulator process is gone");
            break;
        };
        let at = started.elapsed();
        let connected = load.stats.connected.load(Ordering::Relaxed);
        samples.push(Sample {
            at,
            rss_kib: rss,
            fds,
            connected,
        });
        if Instant::now() >= next_print {
            next_print += Duration::from_secs(30);
            println!(
                "t={:>4} s  RSS {:>10}  fds {:>6}  connected {:>6}  connects {:>7}  published {:>8}  errors {}",
                at.as_secs(),
                mib(rss as f64),
                fds,
                connected,
                load.stats.connects.load(Ordering::Relaxed),
                load.stats.published.load(Ordering::Relaxed),
                load.stats.errors.load(Ordering::Relaxed)
            );
        }
    }
    // Every device stops at the deadline; give stragglers a bounded time.
    let drain = tokio::time::Instant::now() + Duration::from_secs(60);
    for device in devices {
        let _ = tokio::time::timeout_at(drain, device).await;
    }
    // Sessions closed without DISCONNECT end when the emulator notices; wait a little.
    sleep(Duration::from_secs(5)).await;
    let (after_rss, hwm, after_fds) = sample_process(pid).unwrap_or_default();
    let cpu_load = cpu_seconds(pid).unwrap_or(0.0) - cpu_before;
    let data_bytes = directory_bytes(&dir.path().join("data"));

    // Settled: a minute-long window after the ramp and the first token renewals; end: the
    // last minute under load. Short runs use the first and last third after the ramp.
    let ramp = Duration::from_secs(config.ramp_secs);
    let (settled_window, end_window) = if config.secs >= config.ramp_secs + 300 {
        (
            (
                ramp + Duration::from_secs(120),
                ramp + Duration::from_secs(180),
            ),
            (duration - Duration::from_secs(60), duration),
        )
    } else {
        let third = duration.saturating_sub(ramp) / 3;
        ((ramp, ramp + third), (duration - third, duration))
    };
    let settled = mean_rss(&samples, settled_window.0, settled_window.1);
    let end = mean_rss(&samples, end_window.0, end_window.1);
    let peak = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let peak_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
    let end_fds = samples.last().map(|s| s.fds).unwrap_or(0);
    let peak_connected = samples.iter().map(|s| s.connected).max().unwrap_or(0);
    let stats = &load.stats;

    println!();
    println!(
        "== soak results ({} devices, {} s)",
        config.devices, config.secs
    );
    println!("RSS start (idle):      {}", mib(start_rss as f64));
    println!("RSS after creating:    {}", mib(created_rss as f64));
    if let Some(settled) = settled {
        println!(
            "RSS settled:           {} (mean over t={}..{} s)",
            mib(settled),
            settled_window.0.as_secs(),
            settled_window.1.as_secs()
        );
    }
    println!(
        "RSS peak (sampled):    {} (VmHWM {})",
        mib(peak as f64),
        mib(hwm as f64)
    );
    if let Some(end) = end {
        println!(
            "RSS end (under load):  {} (mean over t={}..{} s)",
            mib(end),
            end_window.0.as_secs(),
            end_window.1.as_secs()
        );
    }
    println!("RSS after disconnect:  {}", mib(after_rss as f64));
    if let (Some(settled), Some(end)) = (settled, end) {
        let change = (end - settled) / settled * 100.0;
        println!(
            "end vs settled:        {change:+.1} % — {}",
            if change.abs() <= 10.0 {
                "within ±10 %"
            } else {
                "OUTSIDE ±10 %"
            }
        );
    }
    println!(
        "fds: start {start_fds}, after creating {created_fds}, peak {peak_fds}, end {end_fds}, after disconnect {after_fds}"
    );
    println!("peak concurrent connections: {peak_connected}");
    println!(
        "connects {}, telemetry acknowledged {}, sessions ended on an error {}",
        stats.connects.load(Ordering::Relaxed),
        stats.published.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed)
    );
    println!(
        "emulator CPU during the load: {cpu_load:.1} s ({:.0} % of one core); data directory {:.1} MiB",
        cpu_load / duration.as_secs_f64() * 100.0,
        data_bytes as f64 / 1_048_576.0
    );
    println!(
        "{}",
        latency_line("connect→CONNACK (TCP+TLS+MQTT)", &stats.connect_latency_us)
    );
    println!(
        "{}",
        latency_line("PUBLISH→PUBACK", &stats.publish_latency_us)
    );
    if let Ok(first) = stats.first_errors.lock() {
        for e in first.iter() {
            println!("  error: {e}");
        }
    }
    let (status, stderr) = emulator.stop();
    let panics: Vec<&str> = stderr.lines().filter(|l| l.contains("panicked")).collect();
    println!(
        "iotemu exit: {status}; stderr lines {}, lines saying 'panicked': {}",
        stderr.lines().count(),
        panics.len()
    );
    for line in panics.iter().take(5) {
        println!("  {line}");
    }
}
