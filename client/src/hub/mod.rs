//! IoT Hub device connection over MQTT (spec/protocol.md §5): connect with a SAS token or an
//! X.509 certificate and send device-to-cloud telemetry.
//!
//! * [`client`] — [`DeviceClient`] and its builder.
//! * [`message`] — [`Message`], a telemetry message with system and application properties.
//! * [`property_bag`] — the telemetry topic with its percent-encoded property bag.
//! * [`error`] — [`DeviceError`].

mod client;
mod error;
mod message;
mod property_bag;

pub use client::{DeviceClient, DeviceClientBuilder};
pub use error::DeviceError;
pub use message::Message;
