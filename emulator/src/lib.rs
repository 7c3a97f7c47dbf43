//! # iotemu
//!
//! A local emulator of **Azure IoT Hub Device Provisioning Service (DPS)** and **Azure IoT
//! Hub** that speaks the real protocols with real security, so device code — the official
//! Azure SDKs unmodified, or `iotemu-device` — runs its provisioning-to-telemetry flow offline.
//!
//! Start one in a test with [`Emulator::builder`]: it runs on free ports, gives out the
//! [`Hub`]s and the [`Dps`] it serves (devices, modules, twins, C2D, telemetry, enrollments),
//! the CA certificate its clients must trust and their connection strings, and shuts down
//! when dropped. [`certs`] makes the X.509 test PKI that certificate attestation needs.
//!
//! Those, and the types they take and return (re-exported here), are the library. The
//! layers inside — transports (MQTT, HTTPS, AMQP, control port), credentials, the DPS and hub
//! domains, the store — are private to the crate; docs/architecture.md maps them file by
//! file.

// Every `pub` is either part of the library surface or reachable through it; anything else
// is `pub(crate)` or narrower (docs/architecture.md, "Visibility").
#![warn(unreachable_pub)]

pub(crate) mod amqp;
pub(crate) mod auth;
pub(crate) mod certificates;
pub mod certs;
pub(crate) mod clock;
pub(crate) mod control;
pub(crate) mod dps;
mod emulator;
mod etag;
pub(crate) mod faults;
pub(crate) mod fixtures;
pub(crate) mod fixtures_export;
pub(crate) mod http;
pub(crate) mod hub;
#[doc(hidden)]
pub mod internals;
pub(crate) mod mqtt;
mod net;
pub(crate) mod pending;
mod persistence;
mod query;
mod serde_b64;
pub(crate) mod shutdown;
pub(crate) mod storage;
pub(crate) mod store;
pub(crate) mod timefmt;
pub(crate) mod tls;

// The library surface: the emulator, the handles it gives out and the types they take and
// return. Everything else is `pub(crate)`; the binary, the tests and the fuzz targets reach
// the few internals they need through `internals` (not API).
pub use amqp::AmqpLimits;
pub use auth::keys::SymmetricKey;
pub use certificates::{CaCertificate, CertificateError, CertificateStore};
pub use clock::{Clock, ClockError};
pub use dps::Dps;
pub use dps::model::{
    AttestationMechanism, DeviceRegistrationState, EnrollmentGroup, IndividualEnrollment, Substatus,
};
pub use emulator::{
    DEFAULT_SHUTDOWN_TIMEOUT, Emulator, EmulatorBuilder, HttpsPort, MaxConnections, StartError,
    Starting,
};
pub use faults::{
    AzureThrottles, FaultAction, FaultError, FaultGuard, FaultOperation, FaultRule, FaultStatus,
    Faults, Rate, Refusal, Tier,
};
pub use http::HttpLimits;
pub use hub::c2d::C2dMessage;
pub use hub::device::{Device, DeviceAuthentication, DeviceStatus};
pub use hub::error::HubError;
pub use hub::module::{Module, ModuleSpec};
pub use hub::registry::{AuthenticationSpec, DeviceSpec};
pub use hub::telemetry::{
    IncomingMessage, MessageSource, StoredSystemProperties, SystemProperties, TelemetryMessage,
};
pub use hub::twin::Twin;
pub use hub::{
    Advanced, Configuration, ConfigurationSpec, DeviceIdentity, DeviceJob, DeviceJobStatus,
    FileNotification, FileUploadSettings, Hub, Hubs, IdentityRef, JobAction, JobSpec, JobStatus,
    ScheduledJob, UploadStorage,
};
pub use mqtt::MqttLimits;
pub use pending::{Pending, WaitStored};
pub use storage::{BlobStore, StoredBlob};
pub use store::{
    Commit, FileStore, FileStoreOptions, FileStoreStats, MemoryStore, Op, Store, StoreError,
    StoreSnapshot,
};
pub use tls::TlsError;
