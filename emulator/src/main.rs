//! `iotemu`: runs the emulator until SIGINT/SIGTERM. Every flag is also an `IOTEMU_*`
//! environment variable. Defaults are Azure's ports, because the official SDKs hard-code them.
//!
//! `iotemu certs …` instead makes test X.509 certificates ([`iotemu::certs`]) and exits. The
//! server keeps its flags at the top level (no `serve` subcommand), so every existing command
//! line, Dockerfile and `IOTEMU_*` setup keeps working.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use iotemu::certs::cli::CertsCommand;
use iotemu::http::HttpLimits;
use iotemu::mqtt::MqttLimits;
use iotemu::{Emulator, MaxConnections};
use tracing_subscriber::EnvFilter;

mod ready_file;

/// Local emulator of Azure IoT Hub Device Provisioning Service and Azure IoT Hub.
///
/// Without a command, runs the emulator with the options below.
#[derive(Debug, Parser)]
#[command(
    name = "iotemu",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make test X.509 certificates: CAs, devices, CA verification, thumbprints.
    ///
    /// The offline equivalent of the Azure IoT SDK's certGen.sh, for the X.509 quickstarts:
    /// ECDSA P-256 keys, PKCS#8 PEM files, chains that DPS and IoT Hub accept.
    #[command(subcommand)]
    Certs(CertsCommand),

    /// Exit 0 when the emulator on this machine reports healthy (GET /health on the control
    /// port), 1 otherwise — for container HEALTHCHECKs.
    Healthcheck {
        /// The emulator's control port.
        #[arg(long, env = "IOTEMU_CONTROL_PORT", default_value_t = 9180)]
        control_port: u16,
    },

    /// Work with fixture files.
    #[command(subcommand)]
    Fixtures(FixturesCommand),
}

#[derive(Debug, Subcommand)]
enum FixturesCommand {
    /// Check fixture files as the emulator would load them (merged, in order); prints what
    /// they hold, or the file, JSON path and reason of the first problem.
    Validate {
        /// Fixture files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },

    /// Read every enrollment and enrollment group from a DPS service endpoint (a real DPS or
    /// another iotemu) and write them as a fixture file that `iotemu --fixtures` loads.
    Export {
        /// DPS service connection string: HostName=…;SharedAccessKeyName=…;SharedAccessKey=…
        /// (HostName may end in :PORT).
        #[arg(long, env = "IOTEMU_EXPORT_CONNECTION_STRING")]
        connection_string: String,

        /// Write the fixture here instead of to stdout.
        #[arg(long)]
        out: Option<PathBuf>,

        /// Also trust the CA certificates in this PEM file (iotemu serves its CA at
        /// GET /ca.pem on the control port); the system's roots are always trusted.
        #[arg(long)]
        ca_file: Option<PathBuf>,

        /// ID scope for the fixture's DPS section (the service API does not reveal it);
        /// default: the quickstart's 0ne00000A0A.
        #[arg(long)]
        id_scope: Option<String>,
    },
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

// The server flags, at the top level when no subcommand is given.
#[derive(Debug, clap::Args)]
struct Args {
    /// MQTT over TLS port (0 = pick a free port and print it).
    #[arg(long, env = "IOTEMU_MQTT_PORT", default_value_t = 8883)]
    mqtt_port: u16,

    /// AMQP over TLS port for the service SDKs and Event Hubs clients (0 = pick a free port
    /// and print it).
    #[arg(long, env = "IOTEMU_AMQP_PORT", default_value_t = 5671)]
    amqp_port: u16,

    /// HTTPS port for the DPS REST APIs (0 = pick a free port). Default 443, served only if
    /// it can be bound (root or CAP_NET_BIND_SERVICE); given explicitly, failure is fatal.
    #[arg(long, env = "IOTEMU_HTTPS_PORT")]
    https_port: Option<u16>,

    /// Addresses to listen on (repeatable or comma-separated). Default: 127.0.0.1 and ::1.
    /// Use 0.0.0.0 to accept connections from other machines or containers.
    #[arg(long, env = "IOTEMU_BIND", value_delimiter = ',')]
    bind: Vec<IpAddr>,

    /// Fixture files with the DPS instance, hubs and enrollments (repeatable or
    /// comma-separated). Without any, the built-in quickstart fixture is served.
    #[arg(long, env = "IOTEMU_FIXTURES", value_delimiter = ',')]
    fixtures: Vec<PathBuf>,

    /// Write the emulator's CA certificate (PEM) to this file, for clients to trust.
    #[arg(long, env = "IOTEMU_CA_OUT")]
    ca_out: Option<PathBuf>,

    /// Once every listener is up, write the bound ports, control URL and connection strings
    /// there as JSON (for test harnesses starting iotemu on free ports).
    #[arg(long, env = "IOTEMU_READY_FILE", value_name = "FILE")]
    ready_file: Option<PathBuf>,

    /// Extra host names or IP addresses for the server certificate (repeatable).
    #[arg(long, env = "IOTEMU_HOSTNAME", value_delimiter = ',')]
    hostname: Vec<String>,

    /// Plain-HTTP control port on 127.0.0.1 (/health, /ca.pem, /telemetry…); 0 = free port.
    #[arg(long, env = "IOTEMU_CONTROL_PORT", default_value_t = 9180)]
    control_port: u16,

    /// Address of the control port. Use 0.0.0.0 in a container so a published control port
    /// is reachable (it is plain HTTP without authentication: only on networks you control).
    #[arg(long, env = "IOTEMU_CONTROL_BIND", default_value = "127.0.0.1")]
    control_bind: IpAddr,

    /// `retry-after` seconds DPS sends while a registration is assigning.
    #[arg(long, env = "IOTEMU_RETRY_AFTER", default_value_t = 1)]
    retry_after: u32,

    /// Milliseconds a registration stays `assigning` before a poll can complete it.
    #[arg(long, env = "IOTEMU_ASSIGNMENT_DELAY_MS", default_value_t = 0)]
    assignment_delay_ms: u64,

    /// Telemetry messages kept per hub for inspection.
    #[arg(long, env = "IOTEMU_TELEMETRY_RETENTION", default_value_t = 10_000)]
    telemetry_retention: usize,

    /// Partitions of each hub's built-in Event Hubs-compatible endpoint (2–128), unless its
    /// fixture sets eventHubEndpoint.partitionCount.
    #[arg(long, env = "IOTEMU_PARTITIONS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(2..=128))]
    partitions: u32,

    /// Keep state in this directory so it survives restarts (enrollments, registrations,
    /// devices, modules, twins, C2D queues, CA certificates, the emulator CA). Without it,
    /// state is in memory only. Two emulators cannot share one directory.
    #[arg(long, env = "IOTEMU_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Seconds a TLS handshake may take (MQTT and HTTPS).
    #[arg(long, env = "IOTEMU_TLS_HANDSHAKE_TIMEOUT_SECS", default_value_t = HttpLimits::default().handshake_timeout.as_secs())]
    tls_handshake_timeout_secs: u64,

    /// HTTPS: seconds a request head (request line and headers) may take once it has started.
    #[arg(long, env = "IOTEMU_HTTPS_HEADER_TIMEOUT_SECS", default_value_t = HttpLimits::default().header_timeout.as_secs())]
    https_header_timeout_secs: u64,

    /// HTTPS: seconds a request body may take in all (then 408 and the connection is closed).
    #[arg(long, env = "IOTEMU_HTTPS_BODY_TIMEOUT_SECS", default_value_t = HttpLimits::default().body_timeout.as_secs())]
    https_body_timeout_secs: u64,

    /// HTTPS: seconds a connection may stay open with no request in progress.
    #[arg(long, env = "IOTEMU_HTTPS_IDLE_TIMEOUT_SECS", default_value_t = HttpLimits::default().idle_timeout.as_secs())]
    https_idle_timeout_secs: u64,

    /// HTTPS: largest request body in bytes (larger: 413, not read).
    #[arg(long, env = "IOTEMU_HTTPS_MAX_BODY_BYTES", default_value_t = HttpLimits::default().max_body_bytes)]
    https_max_body_bytes: usize,

    /// MQTT connections open at once (over all addresses); more wait until one closes.
    #[arg(long, env = "IOTEMU_MQTT_MAX_CONNECTIONS", default_value_t = MaxConnections::default().mqtt)]
    mqtt_max_connections: usize,

    /// AMQP connections open at once (over all addresses); more wait until one closes.
    /// AMQP over WebSocket counts under the HTTPS limit.
    #[arg(long, env = "IOTEMU_AMQP_MAX_CONNECTIONS", default_value_t = MaxConnections::default().amqp)]
    amqp_max_connections: usize,

    /// HTTPS connections open at once (over all addresses); more wait until one closes.
    #[arg(long, env = "IOTEMU_HTTPS_MAX_CONNECTIONS", default_value_t = MaxConnections::default().https)]
    https_max_connections: usize,

    /// Control-port connections open at once; more wait until one closes.
    #[arg(long, env = "IOTEMU_CONTROL_MAX_CONNECTIONS", default_value_t = MaxConnections::default().control)]
    control_max_connections: usize,

    /// Seconds SIGTERM/SIGINT lets sessions finish before they are closed and the state is
    /// flushed.
    #[arg(long, env = "IOTEMU_SHUTDOWN_TIMEOUT_SECS", default_value_t = iotemu::DEFAULT_SHUTDOWN_TIMEOUT.as_secs())]
    shutdown_timeout_secs: u64,

    /// Log format on stderr: `text`, or `json` (one object per line). Levels via RUST_LOG.
    #[arg(long, env = "IOTEMU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Certs(command)) = &cli.command {
        return match iotemu::certs::cli::run(command) {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("iotemu certs: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match &cli.command {
        Some(Command::Healthcheck { control_port }) => return healthcheck(*control_port).await,
        Some(Command::Fixtures(FixturesCommand::Validate { files })) => return validate(files),
        Some(Command::Fixtures(FixturesCommand::Export {
            connection_string,
            out,
            ca_file,
            id_scope,
        })) => {
            return export(
                connection_string,
                out.as_deref(),
                ca_file.as_deref(),
                id_scope.as_deref(),
            )
            .await;
        }
        _ => {}
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.serve.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(cli.serve).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("iotemu: {message}");
            ExitCode::from(2)
        }
    }
}

/// `GET /health` on the loopback control port, 3 s at most.
async fn healthcheck(control_port: u16) -> ExitCode {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let probe = async {
        let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", control_port))
            .await
            .ok()?;
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).await.ok()?;
        Some(head.starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Some(true)) => {
            println!("healthy");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("iotemu: not healthy (no 200 from http://127.0.0.1:{control_port}/health)");
            ExitCode::FAILURE
        }
    }
}

fn validate(files: &[PathBuf]) -> ExitCode {
    let sources: Vec<_> = files
        .iter()
        .map(|f| iotemu::fixtures::FixtureSource::File(f.clone()))
        .collect();
    match iotemu::fixtures::FixtureSet::load(&sources) {
        Ok(set) => {
            println!(
                "valid: DPS {} (id scope {}), {} hub(s), {} enrollment(s), {} enrollment group(s)",
                set.dps.host_name,
                set.dps.id_scope,
                set.hubs.len(),
                set.enrollments.len(),
                set.enrollment_groups.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("invalid: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `iotemu fixtures export`: exit 0 when the fixture is written and loads as is; 1 when the
/// export failed, or was written but needs editing (the reason is printed).
async fn export(
    connection_string: &str,
    out: Option<&std::path::Path>,
    ca_file: Option<&std::path::Path>,
    id_scope: Option<&str>,
) -> ExitCode {
    use iotemu::fixtures_export::{self, ServiceConnection};
    let result = async {
        let connection = ServiceConnection::parse(connection_string).map_err(|e| e.to_string())?;
        let ca_pem = match ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let roots = fixtures_export::trust(ca_pem.as_deref()).map_err(|e| e.to_string())?;
        let export = fixtures_export::export(&connection, roots, id_scope)
            .await
            .map_err(|e| e.to_string())?;
        match out {
            Some(path) => std::fs::write(path, export.to_json())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
            None => print!("{}", export.to_json()),
        }
        Ok::<_, String>(export)
    }
    .await;
    let export = match result {
        Ok(export) => export,
        Err(message) => {
            eprintln!("iotemu fixtures export: {message}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &export.warnings {
        eprintln!("warning: {warning}");
    }
    let target = out.map_or("stdout".to_owned(), |p| p.display().to_string());
    eprintln!(
        "exported {} enrollment(s) and {} enrollment group(s) to {target}",
        export.fixture.enrollments.len(),
        export.fixture.enrollment_groups.len()
    );
    match export.check() {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iotemu fixtures export: the fixture does not load as is: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut builder = Emulator::builder()
        .mqtt_port(args.mqtt_port)
        .amqp_port(args.amqp_port)
        .control_port(args.control_port)
        .control_bind(args.control_bind)
        .retry_after(args.retry_after)
        .assignment_delay(Duration::from_millis(args.assignment_delay_ms))
        .telemetry_retention(args.telemetry_retention)
        .partitions(args.partitions)
        .mqtt_limits(MqttLimits {
            handshake_timeout: Duration::from_secs(args.tls_handshake_timeout_secs),
            ..MqttLimits::default()
        })
        .https_limits(HttpLimits {
            handshake_timeout: Duration::from_secs(args.tls_handshake_timeout_secs),
            header_timeout: Duration::from_secs(args.https_header_timeout_secs),
            body_timeout: Duration::from_secs(args.https_body_timeout_secs),
            idle_timeout: Duration::from_secs(args.https_idle_timeout_secs),
            max_body_bytes: args.https_max_body_bytes,
        })
        .max_connections(MaxConnections {
            mqtt: args.mqtt_max_connections,
            amqp: args.amqp_max_connections,
            https: args.https_max_connections,
            control: args.control_max_connections,
        })
        .shutdown_timeout(Duration::from_secs(args.shutdown_timeout_secs));
    check_descriptor_budget(&args);
    if let Some(dir) = &args.data_dir {
        builder = builder.data_dir(dir);
    }
    builder = match args.https_port {
        Some(port) => builder.https_port(port),
        None => builder.https_port_if_available(443),
    };
    if !args.bind.is_empty() {
        builder = builder.bind(args.bind.clone());
    }
    for path in &args.fixtures {
        builder = builder.fixture_file(path);
    }
    for name in &args.hostname {
        builder = builder.hostname(name);
    }
    // The control port comes up first and answers 503 on /health until every listener is
    // bound, so a container healthcheck sees "starting" rather than a refused connection.
    let starting = builder
        .start_control_first()
        .await
        .map_err(|e| e.to_string())?;
    let emulator = starting.finish().await.map_err(|e| e.to_string())?;
    if let Some(path) = &args.ca_out {
        std::fs::write(path, emulator.ca_pem())
            .map_err(|e| format!("cannot write the CA certificate to {}: {e}", path.display()))?;
    }
    // Listen before announcing readiness: a SIGTERM sent right after "ready" must shut the
    // emulator down gracefully, not kill it.
    let mut signals = ShutdownSignals::install();
    if let Some(path) = &args.ready_file {
        ready_file::write(
            path,
            &ready_file::describe(&emulator, args.ca_out.as_deref()),
        )?;
    }
    print_banner(&emulator, &args);
    signals.wait().await;
    tracing::info!("shutting down");
    // Sessions get --shutdown-timeout-secs to finish; a second signal stops waiting (what
    // was acknowledged is already on disk, so nothing is lost either way).
    tokio::select! {
        _ = emulator.shutdown() => tracing::info!("stopped"),
        _ = signals.wait() => tracing::warn!("second signal: exiting without waiting for sessions"),
    }
    Ok(())
}

/// Raises the soft limit on open files to the hard limit (as Go's runtime does), then warns
/// when the connection limits add up to more than the descriptors available: a flood of one
/// listener would otherwise take the descriptors the others need.
fn check_descriptor_budget(args: &Args) {
    let Some(available) = raise_descriptor_limit() else {
        return;
    };
    // Listening sockets, the data directory, logs: a few dozen are in use besides clients.
    const RESERVED: u64 = 64;
    let wanted = [
        args.mqtt_max_connections,
        args.amqp_max_connections,
        args.https_max_connections,
        args.control_max_connections,
    ]
    .iter()
    .fold(RESERVED, |sum, n| sum.saturating_add(*n as u64));
    if wanted > available {
        tracing::warn!(
            available,
            wanted,
            "the connection limits (--mqtt-max-connections, --amqp-max-connections, --https-max-connections, --control-max-connections) add up to more open files than this process may have; raise `ulimit -n` or lower them, or a flood on one port can stop the others from accepting"
        );
    }
}

/// The soft `RLIMIT_NOFILE` after raising it to the hard limit; `None` where unknown.
#[cfg(unix)]
fn raise_descriptor_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed by pointer,
    // which lives on this stack frame for the duration of each call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    // rlim_t is u64 on Linux but not on every unix.
    #[allow(clippy::unnecessary_cast)]
    Some(limit.rlim_cur as u64)
}

#[cfg(not(unix))]
fn raise_descriptor_limit() -> Option<u64> {
    None
}

fn print_banner(emulator: &Emulator, args: &Args) {
    let addrs: Vec<String> = emulator
        .mqtt_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    println!(
        "iotemu {} — Azure IoT Hub DPS + IoT Hub emulator",
        env!("CARGO_PKG_VERSION")
    );
    println!("  MQTT over TLS:   {}", addrs.join(", "));
    let amqp: Vec<String> = emulator
        .amqp_addrs()
        .iter()
        .map(|a| a.to_string())
        .collect();
    println!("  AMQP over TLS:   {}", amqp.join(", "));
    match emulator.https_port() {
        Some(_) => {
            let https: Vec<String> = emulator
                .https_addrs()
                .iter()
                .map(|a| a.to_string())
                .collect();
            println!("  HTTPS (REST):    {}", https.join(", "));
        }
        None => println!(
            "  HTTPS (REST):    off — port 443 could not be bound (needs root or CAP_NET_BIND_SERVICE); use --https-port"
        ),
    }
    if let Some(control) = emulator.control_addr() {
        println!(
            "  Control (HTTP):  http://{control}  (/health, /ca.pem, /telemetry, /registrations, /devices)"
        );
    }
    match &args.ca_out {
        Some(path) => println!("  CA certificate:  {}", path.display()),
        None => println!(
            "  CA certificate:  not written (use --ca-out FILE, or GET /ca.pem on the control port)"
        ),
    }
    println!("  Certificate for: {}", emulator.server_names().join(", "));
    println!(
        "  DPS:             host {}, ID scope {}",
        emulator.dps_host(),
        emulator.id_scope()
    );
    if let Some(cs) = emulator.dps_service_connection_string() {
        println!("  DPS service:     {cs}");
    }
    for hub in emulator.hubs().all() {
        if let Some(policy) = hub.policies().first() {
            println!(
                "  Hub:             {} — {}",
                hub.host_name(),
                policy.connection_string(hub.host_name())
            );
        } else {
            println!("  Hub:             {}", hub.host_name());
        }
        if let Some(cs) = hub.event_hubs_connection_string(Some(emulator.amqp_port())) {
            let endpoint = hub.event_hubs();
            println!(
                "  Event Hubs:      {} partitions, routes {} — {cs}",
                endpoint.partitions().len(),
                endpoint.routes().sources().join("+"),
            );
        }
    }
    let dps = emulator.dps();
    println!(
        "  Enrollments:     {} individual, {} group(s)",
        dps.enrollments().len(),
        dps.enrollment_groups().len()
    );
    println!("iotemu ready");
}

/// SIGTERM and SIGINT listeners, registered when created.
struct ShutdownSignals {
    #[cfg(unix)]
    listeners: Vec<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    fn install() -> ShutdownSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listeners = [SignalKind::terminate(), SignalKind::interrupt()]
                .into_iter()
                .filter_map(|kind| signal(kind).ok())
                .collect();
            ShutdownSignals { listeners }
        }
        #[cfg(not(unix))]
        {
            ShutdownSignals {}
        }
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        {
            let listeners = &mut self.listeners;
            if listeners.is_empty() {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            let waits = listeners.iter_mut().map(|l| Box::pin(l.recv()));
            futures_util::future::select_all(waits).await;
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
