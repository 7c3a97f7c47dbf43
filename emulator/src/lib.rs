//! # iotemu
//!
//! A local emulator of **Azure IoT Hub Device Provisioning Service (DPS)** and **Azure IoT
//! Hub** that speaks the real protocols with real security, so device code — the official
//! Azure SDKs unmodified, or `iotemu-device` — runs its provisioning-to-telemetry flow offline.
//!
//! Layers, each knowing only the one below it:
//!
//! * transports — [`mqtt`] (MQTT 3.1.1 over TLS) and [`control`] (plain HTTP on loopback):
//!   wire formats only;
//! * [`auth`] — SAS verification; produces identities only it can construct;
//! * domain — [`dps`] (enrollments, registration state machine) and [`hub`] (registry,
//!   telemetry): the rules;
//! * [`store`] — the state that survives a restart (`--data-dir`); the domains keep their
//!   working state in memory.
//!
//! [`shutdown`] is the signal every listener and session watches so that
//! [`Emulator::shutdown`] can stop accepting, end the sessions and then close the store.
//!
//! Start one in a test with [`Emulator::builder`].

pub mod amqp;
pub mod auth;
pub mod certificates;
pub mod certs;
pub mod control;
pub mod dps;
mod emulator;
mod etag;
pub mod fixtures;
pub mod fixtures_export;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod hub;
pub mod mqtt;
mod net;
pub mod pending;
mod persistence;
mod query;
mod serde_b64;
pub mod shutdown;
pub mod store;
pub mod timefmt;
pub mod tls;

pub use emulator::{
    DEFAULT_SHUTDOWN_TIMEOUT, Emulator, EmulatorBuilder, HttpsPort, MaxConnections, StartError,
    Starting,
};
