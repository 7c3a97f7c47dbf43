//! IoT Hub device connection over MQTT (spec/protocol.md §5): connect with a SAS token or an
//! X.509 certificate, send device-to-cloud telemetry, use the device twin and answer direct
//! methods.
//!
//! * [`client`] — [`DeviceClient`] and its builder.
//! * [`message`] — [`Message`], a telemetry message with system and application properties.
//! * [`property_bag`] — the telemetry topic with its percent-encoded property bag.
//! * [`twin`] — [`Twin`], [`DesiredPatch`] and the [`DesiredUpdates`] stream.
//! * [`method`] — [`MethodRequest`] and [`MethodResponse`] of direct methods.
//! * [`topic`] — twin and method topics: filters, request topics, parsing what arrives.
//! * [`router`] — the task that dispatches the hub's publishes by topic.
//! * [`error`] — [`DeviceError`].

mod client;
mod error;
mod message;
mod method;
mod property_bag;
mod router;
mod topic;
mod twin;

pub use client::{DeviceClient, DeviceClientBuilder};
pub use error::DeviceError;
pub use message::Message;
pub use method::{MethodRequest, MethodResponse};
pub use twin::{DesiredPatch, DesiredUpdates, Twin};
