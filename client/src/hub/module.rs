//! [`ModuleClient`]: a module identity of a device (`{deviceId}/{moduleId}`) on IoT Hub —
//! the same connection machinery as [`DeviceClient`](crate::DeviceClient), with the module's
//! CONNECT fields (spec/protocol.md §5.2, §1.4), telemetry on
//! `devices/{d}/modules/{m}/messages/events/`, outputs (`$.on`), input messages on
//! `devices/{d}/modules/{m}/inputs/#`, and the module twin and direct methods on the same
//! `$iothub/…` topics a device uses. Modules receive no C2D messages.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::connector::{Identity, Settings, hub_connection_setters};
use super::error::DeviceError;
use super::message::Message;
use super::method::{MethodHandler, MethodRequest, MethodResponse};
use super::received::ReceivedMessages;
use super::reconnect::ReconnectPolicy;
use super::state::ConnectionState;
use super::supervisor::{self, Supervised};
use super::twin::{DesiredUpdates, Twin};
use crate::tls::Trust;
use crate::transport::Transport;
use crate::x509::X509Identity;

/// Builder for [`ModuleClient`]; start with [`ModuleClient::builder`]. The options mean
/// what they mean on [`DeviceClientBuilder`](crate::DeviceClientBuilder).
#[derive(Debug, Clone)]
pub struct ModuleClientBuilder {
    settings: Settings,
    device_id: String,
    module_id: String,
}

impl ModuleClientBuilder {
    hub_connection_setters!();

    /// Connects to the hub as the module; the first attempt's error is returned as is.
    pub async fn connect(self) -> Result<ModuleClient, DeviceError> {
        let identity = Identity::module(&self.device_id, &self.module_id);
        let connector = Arc::new(self.settings.connector(identity)?);
        let opened = connector.open().await?;
        let identity = connector.identity().clone();
        Ok(ModuleClient {
            inner: supervisor::spawn(identity, opened, Some(connector), self.settings.reconnect),
        })
    }
}

/// A connected module. Like [`DeviceClient`](crate::DeviceClient): `&self` operations,
/// reconnects and SAS renewal in the background, and dropping it disconnects.
#[derive(Debug)]
pub struct ModuleClient {
    inner: Supervised,
}

impl ModuleClient {
    /// Starts a builder for module `module_id` of device `device_id` on hub `hostname`.
    pub fn builder(
        hostname: impl Into<String>,
        device_id: impl Into<String>,
        module_id: impl Into<String>,
    ) -> ModuleClientBuilder {
        ModuleClientBuilder {
            settings: Settings::new(hostname.into()),
            device_id: device_id.into(),
            module_id: module_id.into(),
        }
    }

    /// The device this module belongs to.
    pub fn device_id(&self) -> &str {
        &self.inner.core.identity.device_id
    }

    /// The module id.
    pub fn module_id(&self) -> &str {
        self.inner
            .core
            .identity
            .module_id
            .as_deref()
            .unwrap_or_default()
    }

    /// Sends telemetry from the module (`devices/{d}/modules/{m}/messages/events/…`); with
    /// the same acknowledgement and resend rules as
    /// [`DeviceClient::send_telemetry`](crate::DeviceClient::send_telemetry).
    pub async fn send_telemetry(&self, message: Message) -> Result<(), DeviceError> {
        self.inner.core.send_telemetry(message).await
    }

    /// Sends `message` to output `output_name` (`$.on`), for message routes or IoT Edge
    /// routing to pick up.
    pub async fn send_output(
        &self,
        output_name: impl Into<String>,
        message: Message,
    ) -> Result<(), DeviceError> {
        self.inner
            .core
            .send_telemetry(message.output_name(output_name))
            .await
    }

    /// Fetches the module twin (desired and reported properties, each with `"$version"`).
    pub async fn get_twin(&self) -> Result<Twin, DeviceError> {
        self.inner.core.get_twin().await
    }

    /// Merge-patches the module twin's reported properties; returns the new `$version`.
    pub async fn update_reported(&self, patch: Value) -> Result<u64, DeviceError> {
        self.inner.core.update_reported(patch).await
    }

    /// Desired-property changes of the module twin, ordered by `$version` and re-synced
    /// after reconnects (see [`DesiredUpdates`]).
    pub async fn desired_updates(&self) -> Result<DesiredUpdates, DeviceError> {
        self.inner.core.desired_updates().await
    }

    /// Answers direct methods invoked on the module with `handler`.
    pub async fn on_method<F, Fut>(&self, handler: F) -> Result<(), DeviceError>
    where
        F: Fn(MethodRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = MethodResponse> + Send + 'static,
    {
        let handler: Arc<MethodHandler> = Arc::new(move |request| Box::pin(handler(request)));
        self.inner.core.on_method(handler).await
    }

    /// Subscribes to the module's input messages (`devices/{d}/modules/{m}/inputs/#`); each
    /// carries its [`input_name`](crate::ReceivedMessage::input_name) and must be
    /// [`complete`](crate::ReceivedMessage::complete)d, as C2D messages are.
    pub async fn input_messages(&self) -> Result<ReceivedMessages, DeviceError> {
        self.inner.core.received_messages().await
    }

    /// The connection state as a watch channel.
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.inner.connection_state()
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.inner.core.is_connected()
    }

    /// Resolves when the client has stopped for good.
    pub async fn closed(&self) {
        self.inner.closed().await;
    }

    /// Sends DISCONNECT and stops.
    pub async fn disconnect(self) -> Result<(), DeviceError> {
        self.inner.disconnect().await;
        Ok(())
    }
}
