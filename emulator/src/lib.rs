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
//! * [`auth`] — credentials: SAS tokens, keys, X.509 helpers, policies; a leaf that imports
//!   no other module of the crate (`emulator/tests/architecture.rs` keeps the module graph
//!   acyclic);
//! * domain — [`dps`] (enrollments, registration state machine) and [`hub`] (registry,
//!   device authentication, telemetry): the rules, and the verified identities only they
//!   can construct;
//! * [`store`] — the state that survives a restart (`--data-dir`); the domains keep their
//!   working state in memory.
//!
//! [`shutdown`] is the signal every listener and session watches so that
//! [`Emulator::shutdown`] can stop accepting, end the sessions and then close the store.
//!
//! Start one in a test with [`Emulator::builder`].

pub mod amqp;
pub mod auth;
pub(crate) mod certificates;
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
pub(crate) mod timefmt;
pub(crate) mod tls;

// The library surface: the emulator, the handles it gives out and the types they return.
// Modules stay reachable for the tests and the fuzz harness while their own visibility pass
// is pending (issue #13); new library users should name these.
pub use amqp::AmqpLimits;
pub use auth::keys::SymmetricKey;
pub use certificates::{CaCertificate, CertificateError, CertificateStore};
pub use dps::Dps;
pub use emulator::{
    DEFAULT_SHUTDOWN_TIMEOUT, Emulator, EmulatorBuilder, HttpsPort, MaxConnections, StartError,
    Starting,
};
pub use http::HttpLimits;
pub use hub::device::{Device, DeviceAuthentication, DeviceStatus};
pub use hub::error::HubError;
pub use hub::module::{Module, ModuleSpec};
pub use hub::registry::{AuthenticationSpec, DeviceSpec};
pub use hub::telemetry::{IncomingMessage, MessageSource, TelemetryMessage};
pub use hub::twin::Twin;
pub use hub::{DeviceIdentity, Hub, Hubs, IdentityRef};
pub use mqtt::MqttLimits;
pub use pending::{Pending, WaitStored};
pub use store::{FileStore, MemoryStore, Store};
pub use tls::TlsError;
