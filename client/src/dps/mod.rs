//! Device Provisioning Service (DPS) registration over MQTT (spec/protocol.md §2).
//!
//! * [`client`] — [`ProvisioningClient`] and its builder: credentials (symmetric key or
//!   X.509), TLS, CONNECT fields.
//! * [`exchange`] — the request/response loop on an open connection (register, poll, retry).
//! * [`outcome`] — what one response means (done, poll, retry, error).
//! * [`topic`] — request topics and the response-topic parser.
//! * [`model`] — JSON bodies.
//! * [`error`] — [`ProvisioningError`].
//! * [`tpm_https`] — [`TpmProvisioning`]: TPM attestation, over HTTPS (the one transport with it).

mod client;
mod error;
mod exchange;
mod model;
mod outcome;
mod topic;
mod tpm_https;

pub use client::{ProvisioningClient, ProvisioningClientBuilder};
pub use error::ProvisioningError;
pub use model::{RegistrationResult, RegistrationState};
pub use tpm_https::TpmProvisioning;
