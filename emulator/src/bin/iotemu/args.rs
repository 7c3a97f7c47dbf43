//! The command line: the server's flags at the top level (each also an `IOTEMU_*`
//! environment variable) and the subcommands (`certs`, `healthcheck`, `fixtures`).

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use iotemu::HttpLimits;
use iotemu::MaxConnections;
use iotemu::internals::certs_cli::CertsCommand;

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
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    #[command(flatten)]
    pub(crate) serve: Args,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
pub(crate) enum FixturesCommand {
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
pub(crate) enum LogFormat {
    Text,
    Json,
}

// The server flags, at the top level when no subcommand is given.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// MQTT over TLS port (0 = pick a free port and print it).
    #[arg(long, env = "IOTEMU_MQTT_PORT", default_value_t = 8883)]
    pub(crate) mqtt_port: u16,

    /// AMQP over TLS port for the service SDKs and Event Hubs clients (0 = pick a free port
    /// and print it).
    #[arg(long, env = "IOTEMU_AMQP_PORT", default_value_t = 5671)]
    pub(crate) amqp_port: u16,

    /// HTTPS port for the DPS REST APIs (0 = pick a free port). Default 443, served only if
    /// it can be bound (root or CAP_NET_BIND_SERVICE); given explicitly, failure is fatal.
    #[arg(long, env = "IOTEMU_HTTPS_PORT")]
    pub(crate) https_port: Option<u16>,

    /// Addresses to listen on (repeatable or comma-separated). Default: 127.0.0.1 and ::1.
    /// Use 0.0.0.0 to accept connections from other machines or containers.
    #[arg(long, env = "IOTEMU_BIND", value_delimiter = ',')]
    pub(crate) bind: Vec<IpAddr>,

    /// Fixture files with the DPS instance, hubs and enrollments (repeatable or
    /// comma-separated). Without any, the built-in quickstart fixture is served.
    #[arg(long, env = "IOTEMU_FIXTURES", value_delimiter = ',')]
    pub(crate) fixtures: Vec<PathBuf>,

    /// Write the emulator's CA certificate (PEM) to this file, for clients to trust.
    #[arg(long, env = "IOTEMU_CA_OUT")]
    pub(crate) ca_out: Option<PathBuf>,

    /// Once every listener is up, write the bound ports, control URL and connection strings
    /// there as JSON (for test harnesses starting iotemu on free ports).
    #[arg(long, env = "IOTEMU_READY_FILE", value_name = "FILE")]
    pub(crate) ready_file: Option<PathBuf>,

    /// Extra host names or IP addresses for the server certificate (repeatable).
    #[arg(long, env = "IOTEMU_HOSTNAME", value_delimiter = ',')]
    pub(crate) hostname: Vec<String>,

    /// Plain-HTTP control port on 127.0.0.1 (/health, /ca.pem, /telemetry…); 0 = free port.
    #[arg(long, env = "IOTEMU_CONTROL_PORT", default_value_t = 9180)]
    pub(crate) control_port: u16,

    /// Address of the control port. Use 0.0.0.0 in a container so a published control port
    /// is reachable; beyond loopback the portal and every route but /health and /ca.pem need
    /// the control token (plain HTTP: only on networks you control).
    #[arg(long, env = "IOTEMU_CONTROL_BIND", default_value = "127.0.0.1")]
    pub(crate) control_bind: IpAddr,

    /// Token the control port requires for the portal and every route but /health and
    /// /ca.pem. Without it a control port bound beyond loopback generates one and prints it.
    #[arg(long, env = "IOTEMU_CONTROL_TOKEN", hide_env_values = true)]
    pub(crate) control_token: Option<String>,

    /// `retry-after` seconds DPS sends while a registration is assigning.
    #[arg(long, env = "IOTEMU_RETRY_AFTER", default_value_t = 1)]
    pub(crate) retry_after: u32,

    /// Milliseconds a registration stays `assigning` before a poll can complete it.
    #[arg(long, env = "IOTEMU_ASSIGNMENT_DELAY_MS", default_value_t = 0)]
    pub(crate) assignment_delay_ms: u64,

    /// Refuse what an IoT hub of this tier (F1, B1, S1, B2, S2, B3, S3) and unit count (S2:4),
    /// and DPS, refuse for going over Azure's throttles: 429 with retry-after. Off by default.
    #[arg(long, env = "IOTEMU_AZURE_THROTTLES", value_name = "TIER[:UNITS]")]
    pub(crate) azure_throttles: Option<iotemu::AzureThrottles>,

    /// Telemetry messages kept per hub for inspection.
    #[arg(long, env = "IOTEMU_TELEMETRY_RETENTION", default_value_t = 10_000)]
    pub(crate) telemetry_retention: usize,

    /// Partitions of each hub's built-in Event Hubs-compatible endpoint (2–128), unless its
    /// fixture sets eventHubEndpoint.partitionCount.
    #[arg(long, env = "IOTEMU_PARTITIONS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(2..=128))]
    pub(crate) partitions: u32,

    /// Keep state in this directory so it survives restarts (enrollments, registrations,
    /// devices, modules, twins, C2D queues, CA certificates, the emulator CA). Without it,
    /// state is in memory only. Two emulators cannot share one directory.
    #[arg(long, env = "IOTEMU_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// Seconds a TLS handshake may take (MQTT and HTTPS).
    #[arg(long, env = "IOTEMU_TLS_HANDSHAKE_TIMEOUT_SECS", default_value_t = HttpLimits::default().handshake_timeout.as_secs())]
    pub(crate) tls_handshake_timeout_secs: u64,

    /// HTTPS: seconds a request head (request line and headers) may take once it has started.
    #[arg(long, env = "IOTEMU_HTTPS_HEADER_TIMEOUT_SECS", default_value_t = HttpLimits::default().header_timeout.as_secs())]
    pub(crate) https_header_timeout_secs: u64,

    /// HTTPS: seconds a request body may take in all (then 408 and the connection is closed).
    #[arg(long, env = "IOTEMU_HTTPS_BODY_TIMEOUT_SECS", default_value_t = HttpLimits::default().body_timeout.as_secs())]
    pub(crate) https_body_timeout_secs: u64,

    /// HTTPS: seconds a connection may stay open with no request in progress.
    #[arg(long, env = "IOTEMU_HTTPS_IDLE_TIMEOUT_SECS", default_value_t = HttpLimits::default().idle_timeout.as_secs())]
    pub(crate) https_idle_timeout_secs: u64,

    /// HTTPS: largest request body in bytes (larger: 413, not read).
    #[arg(long, env = "IOTEMU_HTTPS_MAX_BODY_BYTES", default_value_t = HttpLimits::default().max_body_bytes)]
    pub(crate) https_max_body_bytes: usize,

    /// MQTT connections open at once (over all addresses); more wait until one closes.
    #[arg(long, env = "IOTEMU_MQTT_MAX_CONNECTIONS", default_value_t = MaxConnections::default().mqtt)]
    pub(crate) mqtt_max_connections: usize,

    /// AMQP connections open at once (over all addresses); more wait until one closes.
    /// AMQP over WebSocket counts under the HTTPS limit.
    #[arg(long, env = "IOTEMU_AMQP_MAX_CONNECTIONS", default_value_t = MaxConnections::default().amqp)]
    pub(crate) amqp_max_connections: usize,

    /// HTTPS connections open at once (over all addresses); more wait until one closes.
    #[arg(long, env = "IOTEMU_HTTPS_MAX_CONNECTIONS", default_value_t = MaxConnections::default().https)]
    pub(crate) https_max_connections: usize,

    /// Control-port connections open at once; more wait until one closes.
    #[arg(long, env = "IOTEMU_CONTROL_MAX_CONNECTIONS", default_value_t = MaxConnections::default().control)]
    pub(crate) control_max_connections: usize,

    /// Seconds SIGTERM/SIGINT lets sessions finish before they are closed and the state is
    /// flushed.
    #[arg(long, env = "IOTEMU_SHUTDOWN_TIMEOUT_SECS", default_value_t = iotemu::DEFAULT_SHUTDOWN_TIMEOUT.as_secs())]
    pub(crate) shutdown_timeout_secs: u64,

    /// Log format on stderr: `text`, or `json` (one object per line). Levels via RUST_LOG.
    #[arg(long, env = "IOTEMU_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}
