//! The emulator as a library: build, start on chosen (or ephemeral) ports, inspect, stop.
//!
//! ```no_run
//! # async fn demo() -> Result<(), iotemu::StartError> {
//! let emulator = iotemu::Emulator::builder().start().await?; // quickstart fixture, free ports
//! println!("MQTT on {}, id scope {}", emulator.mqtt_port(), emulator.id_scope());
//! # Ok(()) }
//! ```
//!
//! [`Emulator::shutdown`] stops it and waits: listeners stop accepting, every session is told
//! to finish (MQTT clients are disconnected, HTTP requests in flight complete), sessions that
//! have not finished after the shutdown timeout are dropped, and then the store is flushed and
//! closed (with a data directory, its lock is released when `shutdown` returns). Dropping the
//! handle does the same in a background task without blocking (nothing to wait for then).
//!
//! The module, one step per file:
//!
//! * `builder.rs` — [`EmulatorBuilder`]: the configuration;
//! * `start.rs` — [`EmulatorBuilder::start`] and [`Starting`]: the steps below, in order;
//! * `domain.rs` — build the domain: the store, the hubs, the DPS instance;
//! * `seed.rs` — load the fixtures into the domain;
//! * `restore.rs` — the stored state over the fixtures, the emulator CA, saving switched on;
//! * `listeners.rs` — bind every listener;
//! * `transports.rs` — spawn MQTT, AMQP and HTTPS on the bound listeners;
//! * `handle.rs` — [`Emulator`], the running emulator;
//! * `stop.rs` — stopping it.

use std::net::SocketAddr;

use crate::fixtures::FixtureError;
use crate::tls::TlsError;

mod builder;
mod domain;
mod handle;
mod listeners;
mod restore;
mod seed;
mod start;
mod stop;
mod transports;

pub use builder::{DEFAULT_SHUTDOWN_TIMEOUT, EmulatorBuilder, HttpsPort, MaxConnections};
pub use handle::Emulator;
pub use start::Starting;

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid fixture: {0}")]
    Fixture(#[from] FixtureError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("data directory: {0}")]
    Store(String),
    #[error("cannot listen on {addr} ({what}): {source}. {hint}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
        hint: String,
    },
}
