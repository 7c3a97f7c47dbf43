//! `iotemu`: runs the emulator until SIGINT/SIGTERM. Every flag is also an `IOTEMU_*`
//! environment variable. Defaults are Azure's ports, because the official SDKs hard-code them.
//!
//! `iotemu certs …` instead makes test X.509 certificates ([`iotemu::certs`]) and exits. The
//! server keeps its flags at the top level (no `serve` subcommand), so every existing command
//! line, Dockerfile and `IOTEMU_*` setup keeps working.
//!
//! One module per concern: `args` (the command line), `serve` (running the server),
//! `banner`, `ready_file` (the JSON a test harness waits for), `signals`, `descriptors` (the
//! open-file budget), and one per subcommand
//! (`healthcheck`, `fixtures`; `certs` is the library's [`iotemu::certs::cli`]).

mod args;
mod banner;
mod descriptors;
mod fixtures;
mod healthcheck;
mod ready_file;
mod serve;
mod signals;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use args::{Cli, Command, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Certs(command)) => return certs(command).await,
        Some(Command::Healthcheck { control_port }) => {
            return healthcheck::healthcheck(*control_port).await;
        }
        Some(Command::Fixtures(command)) => return fixtures::run(command).await,
        None => {}
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.serve.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match serve::run(cli.serve).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("iotemu: {message}");
            ExitCode::from(2)
        }
    }
}

/// `iotemu certs …`: makes the certificates and prints what it wrote.
async fn certs(command: &iotemu::internals::certs_cli::CertsCommand) -> ExitCode {
    match iotemu::internals::certs_cli::run(command).await {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("iotemu certs: {e}");
            ExitCode::FAILURE
        }
    }
}
