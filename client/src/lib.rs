//! `iotemu-device`: an async device client for Azure IoT Hub Device Provisioning Service (DPS)
//! and Azure IoT Hub over MQTT 3.1.1 — on TLS or inside a secure WebSocket — with
//! symmetric-key (SAS) or X.509 authentication, for devices ([`DeviceClient`]) and modules
//! ([`ModuleClient`]). Hub clients reconnect by themselves and renew their SAS tokens.
//!
//! It talks to real Azure (port 8883 or 443, system root certificates) and to the `iotemu`
//! emulator (its CA via [`Trust::CaPem`], any port).
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
//! Cloud-to-device messages are completed explicitly — the PUBACK goes out on
//! [`ReceivedMessage::complete`], so a message the application never finished is delivered
//! again:
//!
//! ```no_run
//! # async fn run(device: iotemu_device::DeviceClient) -> Result<(), Box<dyn std::error::Error>> {
//! let mut messages = device.c2d_messages().await?;
//! while let Some(message) = messages.next().await {
//!     println!("{:?}: {:?}", message.message_id, message.body);
//!     message.complete().await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The connection is kept up in the background: lost connections come back with exponential
//! backoff and jitter ([`ReconnectPolicy`]), subscriptions are restored, unacknowledged
//! telemetry is resent, the desired state is re-synced, and SAS tokens are renewed before
//! they expire. MQTT over WebSocket is one builder option away:
//!
//! ```no_run
//! use std::time::Duration;
//! use iotemu_device::{ConnectionState, DeviceClient, ReconnectPolicy, Transport};
//!
//! # async fn run(key: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let device = DeviceClient::builder("myhub.azure-devices.net", "dev-1")
//!     .symmetric_key(key)
//!     .transport(Transport::MqttWs) // wss://myhub.azure-devices.net:443/$iothub/websocket
//!     .sas_ttl(Duration::from_secs(600))
//!     .reconnect(ReconnectPolicy::default().max_delay(Duration::from_secs(30)))
//!     .connect()
//!     .await?;
//! let mut state = device.connection_state();
//! while state.changed().await.is_ok() {
//!     if let ConnectionState::Closed { reason } = &*state.borrow() {
//!         println!("stopped: {reason}");
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! A module identity connects with [`ModuleClient`], sends to outputs and reads its inputs:
//!
//! ```no_run
//! use iotemu_device::{Message, ModuleClient};
//!
//! # async fn run(module_key: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let module = ModuleClient::builder("myhub.azure-devices.net", "dev-1", "filter")
//!     .symmetric_key(module_key)
//!     .connect()
//!     .await?;
//! module.send_output("alerts", Message::new("too hot")).await?;
//! let mut inputs = module.input_messages().await?;
//! if let Some(input) = inputs.next().await {
//!     println!("{:?}: {:?}", input.input_name, input.body);
//!     input.complete().await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Layout: SAS tokens and derived keys ([`generate_sas_token`], [`derive_device_key`]), TLS
//! trust and client certificates ([`Trust`], [`X509Identity`]), the transports ([`Transport`]:
//! TLS, or TLS plus a WebSocket adapter), one MQTT connection (our own, on the `rumqttc` v4
//! packet codec), and the DPS and hub clients on top. Each hub client runs a supervisor task
//! that routes the hub's publishes by topic and replaces the connection when needed.

mod credential;
mod dps;
mod encode;
mod hub;
mod mqtt;
mod sas;
mod tls;
mod tpm;
mod transport;
mod websocket;
mod x509;

#[cfg(test)]
mod test_support;

pub use dps::{
    ProvisioningClient, ProvisioningClientBuilder, ProvisioningError, RegistrationResult,
    RegistrationState, TpmProvisioning,
};
pub use hub::{
    ConnectionState, DesiredPatch, DesiredUpdates, DeviceClient, DeviceClientBuilder, DeviceError,
    DisconnectReason, Message, MethodRequest, MethodResponse, ModuleClient, ModuleClientBuilder,
    ReceivedMessage, ReceivedMessages, ReconnectPolicy, Twin,
};
pub use sas::{SasError, derive_device_key, generate_sas_token};
pub use tls::{TlsError, Trust};
pub use tpm::{Tpm, TpmError, registration_id as tpm_registration_id};
pub use transport::Transport;
pub use x509::X509Identity;

/// What we call ourselves in `ClientVersion` (DPS) and `DeviceClientType` (hub).
pub const USER_AGENT: &str = concat!("iotemu-device/", env!("CARGO_PKG_VERSION"));
