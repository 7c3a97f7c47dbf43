//! Running the emulator (no subcommand): the builder from the flags, start with the control
//! port first, the banner, then wait for SIGTERM/SIGINT and shut down.

use std::time::Duration;

use iotemu::HttpLimits;
use iotemu::MqttLimits;
use iotemu::{Emulator, EmulatorBuilder, MaxConnections};

use crate::args::Args;
use crate::banner::print_banner;
use crate::descriptors::check_descriptor_budget;
use crate::ready_file;
use crate::signals::ShutdownSignals;

/// Runs the emulator until SIGTERM/SIGINT; `Err` is the message to exit with.
pub(crate) async fn run(args: Args) -> Result<(), String> {
    check_descriptor_budget(&args);
    let builder = builder(&args);
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

/// The emulator the flags describe.
fn builder(args: &Args) -> EmulatorBuilder {
    let mut builder = Emulator::builder()
        .mqtt_port(args.mqtt_port)
        .amqp_port(args.amqp_port)
        .control_port(args.control_port)
        .control_bind(args.control_bind)
        .control_token(args.control_token.clone())
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
    if let Some(dir) = &args.data_dir {
        builder = builder.data_dir(dir);
    }
    if let Some(throttles) = args.azure_throttles {
        builder = builder.azure_throttles(throttles);
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
    builder
}
