//! `iotemu-loadgen`: the load generator of the benchmark suite (bench/run, docs/benchmarks.md).
//! It speaks MQTT 3.1.1 over TLS with its own framing and none of iotemu's code, so iotemu and
//! mosquitto are measured by the same neutral client. Each measuring mode prints one JSON line
//! (stdout) that `summary` turns into the table of docs/benchmarks.md, and exits non-zero when
//! the run had errors or no operations (bench/run smoke relies on that).

mod cert;
mod connection;
mod device;
mod dps;
mod fixture;
mod mqtt;
mod proc_stats;
mod register;
mod report;
mod sas;
mod sessions;
mod setup;
mod startup;
mod summary;
mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::connection::Endpoint;
use crate::report::{Figures, Labels};

#[derive(Parser)]
#[command(
    version,
    about = "Neutral MQTT/TLS load generator for iotemu and mosquitto"
)]
struct Cli {
    #[command(subcommand)]
    command: Mode,
}

/// What every measuring mode needs: where the server is and how to label the result.
#[derive(Args, Clone)]
struct Target {
    /// `iotemu` (devices are registered through DPS first) or `mosquitto`.
    #[arg(long)]
    server: String,
    /// The server's MQTT/TLS address.
    #[arg(long, default_value = "127.0.0.1:8883")]
    addr: SocketAddr,
    /// The name the server certificate is checked against.
    #[arg(long, default_value = device::HOST)]
    host: String,
    /// PEM file with the CA that signed the server's certificate.
    #[arg(long)]
    ca: String,
    /// The server's process id, for its CPU time and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Case name in the results (e.g. `telemetry 200x100`).
    #[arg(long, default_value = "")]
    case: String,
    /// Repeat number in the results.
    #[arg(long, default_value_t = 1)]
    rep: u32,
    /// Threads of the generator's runtime.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(Subcommand)]
enum Mode {
    /// QoS 1 telemetry from many clients, each with a window of PUBLISHes in flight.
    Telemetry {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 200)]
        clients: usize,
        /// PUBLISHes in flight per client.
        #[arg(long, default_value_t = 100)]
        window: usize,
        /// Payload bytes per message.
        #[arg(long, default_value_t = 256)]
        payload: usize,
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
    },
    /// Holds this many sessions open at once and reports the server's RSS growth per session.
    Connect {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        /// Stop each session after the TLS handshake (no MQTT CONNECT): the TLS layer's share.
        #[arg(long)]
        tls_only: bool,
    },
    /// Full DPS registrations from concurrent workers (iotemu only: mosquitto has no DPS).
    Register {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 50)]
        workers: usize,
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Stop after this many registrations even before --secs.
        #[arg(long)]
        count: Option<u64>,
        /// Key (base64) of the symmetric-key group the devices belong to.
        #[arg(long, default_value = device::QUICKSTART_GROUP_KEY)]
        group_key: String,
        /// Use the group of a generated fixture (`iotemu-loadgen fixture`) with this many
        /// groups: its last one, `bench-group-{N-1}`.
        #[arg(long)]
        bench_groups: Option<usize>,
        /// Register the individual enrollments of a generated fixture with this many
        /// (`bench-ind-{k}`) instead of group devices.
        #[arg(long)]
        individual: Option<u64>,
        /// Registration id prefix of group devices (unique per run: first registrations).
        #[arg(long, default_value = "loadgen-reg")]
        prefix: String,
    },
    /// Time from spawning the iotemu binary to its ready file (every listener up).
    Startup {
        #[arg(long)]
        iotemu: PathBuf,
        #[arg(long)]
        fixtures: Option<PathBuf>,
        #[arg(long, default_value_t = 5)]
        count: u32,
        #[arg(long, default_value = "")]
        case: String,
        #[arg(long, default_value_t = 1)]
        rep: u32,
    },
    /// Writes a fixture with many enrollments and groups (the cost-growth table).
    Fixture {
        /// Fixture whose DPS instance and hubs are kept (fixtures/quickstart.json).
        #[arg(long)]
        base: PathBuf,
        #[arg(long, default_value_t = 0)]
        enrollments: usize,
        #[arg(long, default_value_t = 1)]
        groups: usize,
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes a CA and a localhost server certificate (ca.pem, server.pem, server.key.pem).
    Cert {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Prints the Markdown table of a results file (JSON lines from the measuring modes).
    Summary { results: PathBuf },
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))
}

fn labels(target: &Target) -> Labels {
    Labels {
        case: target.case.clone(),
        server: target.server.clone(),
        rep: target.rep,
    }
}

fn endpoint(target: &Target) -> Result<Endpoint, String> {
    if target.server != "iotemu" && target.server != "mosquitto" {
        return Err(format!(
            "--server {:?}: expected iotemu or mosquitto",
            target.server
        ));
    }
    Endpoint::new(target.addr, &target.host, &target.ca)
}

/// Runs a measuring mode; `Ok(false)` when it measured but had errors.
fn measure(mode: Mode) -> Result<bool, String> {
    let (name, labels, figures): (&str, Labels, Figures) = match mode {
        Mode::Telemetry {
            target,
            clients,
            window,
            payload,
            secs,
        } => {
            let endpoint = endpoint(&target)?;
            let load = telemetry::Load {
                window: window.max(1),
                payload,
                duration: Duration::from_secs_f64(secs.max(0.1)),
            };
            let figures = runtime(target.threads)?.block_on(async {
                let key = sas::decode_key(device::QUICKSTART_GROUP_KEY)?;
                let register = target.server == "iotemu";
                let devices =
                    setup::devices(&endpoint, &key, "loadgen-tel", clients, register).await?;
                telemetry::run(&endpoint, &devices, load, target.server_pid).await
            })?;
            ("telemetry", labels(&target), figures)
        }
        Mode::Connect {
            target,
            sessions,
            tls_only,
        } => {
            let endpoint = endpoint(&target)?;
            let figures = runtime(target.threads)?.block_on(async {
                let key = sas::decode_key(device::QUICKSTART_GROUP_KEY)?;
                let register = target.server == "iotemu" && !tls_only;
                let devices =
                    setup::devices(&endpoint, &key, "loadgen-hold", sessions, register).await?;
                sessions::run(&endpoint, &devices, tls_only, target.server_pid).await
            })?;
            ("connect", labels(&target), figures)
        }
        Mode::Register {
            target,
            workers,
            secs,
            count,
            group_key,
            bench_groups,
            individual,
            prefix,
        } => {
            let endpoint = endpoint(&target)?;
            let enrollment = match (individual, bench_groups) {
                (Some(total), _) => register::Enrollment::Individual { total },
                (None, Some(groups)) => register::Enrollment::Group {
                    key: sas::decode_key(&sas::derive_device_key(
                        device::BENCH_MASTER_KEY,
                        &fixture::last_group(groups),
                    ))?,
                    prefix,
                },
                (None, None) => register::Enrollment::Group {
                    key: sas::decode_key(&group_key)?,
                    prefix,
                },
            };
            let plan = register::Plan {
                workers,
                duration: Duration::from_secs_f64(secs.max(0.1)),
                count,
                enrollment,
            };
            let figures = runtime(target.threads)?.block_on(register::run(
                &endpoint,
                plan,
                target.server_pid,
            ))?;
            ("register", labels(&target), figures)
        }
        Mode::Startup {
            iotemu,
            fixtures,
            count,
            case,
            rep,
        } => {
            let figures = startup::run(&iotemu, fixtures.as_deref(), count, &std::env::temp_dir());
            let labels = Labels {
                case,
                server: "iotemu".into(),
                rep,
            };
            ("startup", labels, figures)
        }
        Mode::Fixture {
            base,
            enrollments,
            groups,
            out,
        } => {
            let text =
                std::fs::read_to_string(&base).map_err(|e| format!("{}: {e}", base.display()))?;
            let base: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", base.display()))?;
            let generated = fixture::generate(base, enrollments, groups)?;
            std::fs::write(&out, generated.to_string())
                .map_err(|e| format!("{}: {e}", out.display()))?;
            return Ok(true);
        }
        Mode::Cert { dir } => {
            cert::write_server_certificate(&dir)?;
            return Ok(true);
        }
        Mode::Summary { results } => {
            let text = std::fs::read_to_string(&results)
                .map_err(|e| format!("{}: {e}", results.display()))?;
            print!("{}", summary::table(&text));
            return Ok(true);
        }
    };
    Ok(report::emit(name, &labels, &figures))
}

fn main() -> ExitCode {
    match measure(Cli::parse().command) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("iotemu-loadgen: the run had errors or no operations");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("iotemu-loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
