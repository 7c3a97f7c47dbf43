//! IoT Hub device and module connections over MQTT (spec/protocol.md §5): connect with a SAS
//! token or an X.509 certificate, send telemetry, receive C2D or module input messages, use
//! the twin and answer direct methods — with reconnects and SAS renewal in the background.
//!
//! * [`client`] — [`DeviceClient`] and its builder; [`module`] — [`ModuleClient`].
//! * [`connector`] — identities, the builders' settings, CONNECT fields, SAS renewal timing.
//! * [`supervisor`] — the per-client task: routing, reconnect, renewal, re-subscribing.
//! * [`operations`] — the operations both clients share, retried across reconnects.
//! * [`reconnect`] — [`ReconnectPolicy`] and which failures are retried.
//! * [`state`] — [`ConnectionState`] and [`DisconnectReason`].
//! * [`router`] — dispatching the hub's publishes by topic.
//! * [`message`], [`property_bag`] — outgoing messages and their topic.
//! * [`received`] — [`ReceivedMessage`]: C2D and input messages, completion.
//! * [`twin`], [`method`], [`topic`] — twin and direct-method types and topics.
//! * [`error`] — [`DeviceError`].

mod client;
mod connector;
mod error;
mod message;
mod method;
mod module;
mod operations;
mod property_bag;
mod received;
mod reconnect;
mod router;
mod state;
mod supervisor;
mod topic;
mod twin;

#[cfg(test)]
mod lifecycle_tests;

pub use client::{DeviceClient, DeviceClientBuilder};
pub use error::DeviceError;
pub use message::Message;
pub use method::{MethodRequest, MethodResponse};
pub use module::{ModuleClient, ModuleClientBuilder};
pub use received::{ReceivedMessage, ReceivedMessages};
pub use reconnect::ReconnectPolicy;
pub use state::{ConnectionState, DisconnectReason};
pub use twin::{DesiredPatch, DesiredUpdates, Twin};
