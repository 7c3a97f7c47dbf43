//! `iotemu-device`: an async device client for Azure IoT Hub Device Provisioning Service (DPS)
//! and Azure IoT Hub over MQTT 3.1.1 + TLS, with symmetric-key (SAS) or X.509 authentication.
//!
//! It talks to real Azure (port 8883, system root certificates) and to the `iotemu` emulator
//! (its CA via [`Trust::CaPem`], any port).
//!
//! ```no_run
//! use iotemu_device::{DeviceClient, Message, ProvisioningClient, Trust};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let key = "sbDDeEzRuEuGKag+kQKV+T1QGakRtHpsERLP0yPjwR93TrpEgEh/Y07CXstfha6dhIPWvdD1nRxK5T0KGKA+nQ==";
//! let ca_pem = std::fs::read_to_string("iotemu-ca.pem")?;
//! let registration = ProvisioningClient::builder("localhost", "0ne00000A0A", "symm-key-python-device-008")
//!     .symmetric_key(key)
//!     .trust(Trust::CaPem(ca_pem.clone()))
//!     .build()?
//!     .register()
//!     .await?;
//! let device = DeviceClient::from_registration(&registration, key)
//!     .trust(Trust::CaPem(ca_pem))
//!     .connect()
//!     .await?;
//! device
//!     .send_telemetry(Message::new(r#"{"temperature":21.5}"#).content_type("application/json"))
//!     .await?;
//! device.disconnect().await?;
//! # Ok(())
//! # }
//! ```
//!
//! With X.509 the device presents its certificate chain in the TLS handshake and sends no
//! password; DPS requires the leaf's subject CN to equal the registration id:
//!
//! ```no_run
//! use iotemu_device::{DeviceClient, Message, ProvisioningClient, Trust, X509Identity};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Leaf first, then intermediates; the key may be PKCS#8, SEC1 or PKCS#1 PEM.
//! let identity = X509Identity::from_files("device-chain.pem", "device.key.pem")?;
//! let ca = Trust::CaPem(std::fs::read_to_string("iotemu-ca.pem")?);
//! let registration = ProvisioningClient::builder("localhost", "0ne00000A0A", "my-x509-device")
//!     .x509(identity.clone())
//!     .trust(ca.clone())
//!     .build()?
//!     .register()
//!     .await?;
//! let device = DeviceClient::from_registration_x509(&registration, identity)
//!     .trust(ca)
//!     .connect()
//!     .await?;
//! device.send_telemetry(Message::new("hello")).await?;
//! device.disconnect().await?;
//! # Ok(())
//! # }
//! ```
//!
//! The same connection carries the device twin and direct methods; each subscribes to its
//! topic on first use:
//!
//! ```no_run
//! use iotemu_device::{DeviceClient, MethodRequest, MethodResponse};
//! use serde_json::json;
//!
//! # async fn run(device: DeviceClient) -> Result<(), Box<dyn std::error::Error>> {
//! let mut updates = device.desired_updates().await?; // subscribe before the GET
//! let twin = device.get_twin().await?; // desired + reported, each with "$version"
//! let version = device.update_reported(json!({"firmware": "1.2"})).await?;
//! device
//!     .on_method(|request: MethodRequest| async move {
//!         MethodResponse::new(200, json!({"called": request.name}))
//!     })
//!     .await?;
//! while let Some(patch) = updates.next().await {
//!     if Some(patch.version) > twin.desired_version() {
//!         println!("desired v{}: {} (reported is at v{version})", patch.version, patch.patch);
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Layout: SAS tokens and derived keys ([`generate_sas_token`], [`derive_device_key`]), TLS
//! trust and client certificates ([`Trust`], [`X509Identity`]), one shared MQTT connection (our
//! own, on the `rumqttc` v4 packet codec), and the DPS and hub clients on top (the hub client
//! routes the hub's twin and method publishes by topic in a per-connection task).

mod credential;
mod dps;
mod encode;
mod hub;
mod mqtt;
mod sas;
mod tls;
mod transport;
mod websocket;
mod x509;

#[cfg(test)]
mod test_support;

pub use dps::{
    ProvisioningClient, ProvisioningClientBuilder, ProvisioningError, RegistrationResult,
    RegistrationState,
};
pub use hub::{
    ConnectionState, DesiredPatch, DesiredUpdates, DeviceClient, DeviceClientBuilder, DeviceError,
    DisconnectReason, Message, MethodRequest, MethodResponse, ModuleClient, ModuleClientBuilder,
    ReceivedMessage, ReceivedMessages, ReconnectPolicy, Twin,
};
pub use sas::{SasError, derive_device_key, generate_sas_token};
pub use tls::{TlsError, Trust};
pub use transport::Transport;
pub use x509::X509Identity;

/// What we call ourselves in `ClientVersion` (DPS) and `DeviceClientType` (hub).
pub const USER_AGENT: &str = concat!("iotemu-device/", env!("CARGO_PKG_VERSION"));
