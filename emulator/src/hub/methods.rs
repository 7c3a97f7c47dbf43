//! Direct methods (iot-hub-devguide-direct-methods.md; protocol.md §5.7): the service calls a
//! method on a connected device and waits for its answer. The request travels through the
//! device's connection; the session answers through a oneshot when the device publishes on
//! `$iothub/methods/res/{status}/?$rid=…`.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;

use super::connections::Outbound;
use super::error::HubError;
use super::{Hub, IdentityRef};

/// Request and response payloads may each be 128 KB.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// What the device answered.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodResponse {
    pub status: i32,
    pub payload: Value,
}

/// Why a connection could not take a method call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MethodRefusal {
    /// The device has no subscription to `$iothub/methods/POST/#`.
    NotSubscribed,
}

/// A method call handed to the device's connection.
#[derive(Debug)]
pub struct MethodCall {
    pub name: String,
    pub payload: Value,
    pub reply: oneshot::Sender<Result<MethodResponse, MethodRefusal>>,
}

impl Hub {
    /// Invokes `name` on `device_id` (see [`Hub::invoke_method_on`]).
    pub async fn invoke_method(
        &self,
        device_id: &str,
        name: &str,
        payload: Value,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<MethodResponse, HubError> {
        let who = IdentityRef::device(device_id);
        self.invoke_method_on(who, name, payload, response_timeout, connect_timeout)
            .await
    }

    /// Invokes `name` on a device or module: waits up to `connect_timeout` for it to be
    /// connected (404103 otherwise), then up to `response_timeout` for its answer (504101).
    pub async fn invoke_method_on(
        &self,
        who: IdentityRef<'_>,
        name: &str,
        payload: Value,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<MethodResponse, HubError> {
        if self.device(who.device_id).is_none() {
            return Err(HubError::device_not_found(who.device_id));
        }
        if let Some(module_id) = who.module_id
            && self.module(who.device_id, module_id).is_none()
        {
            return Err(HubError::module_not_found(who.device_id, module_id));
        }
        let connection = who.connection_key();
        let size = serde_json::to_vec(&payload)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > MAX_PAYLOAD_BYTES {
            return Err(HubError::message_too_large(size, MAX_PAYLOAD_BYTES));
        }
        let deadline = tokio::time::Instant::now() + connect_timeout;
        while !self.connections().is_connected(&connection) {
            if tokio::time::Instant::now() >= deadline {
                return Err(HubError::device_not_online(&connection));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (reply, answer) = oneshot::channel();
        let call = MethodCall {
            name: name.to_owned(),
            payload,
            reply,
        };
        if !self.connections().send(&connection, Outbound::Method(call)) {
            return Err(HubError::device_not_online(&connection));
        }
        match tokio::time::timeout(response_timeout, answer).await {
            Ok(Ok(Ok(response))) => Ok(response),
            Ok(Ok(Err(MethodRefusal::NotSubscribed))) | Ok(Err(_)) => {
                Err(HubError::device_not_online(&connection))
            }
            Err(_) => Err(HubError::gateway_timeout(&connection)),
        }
    }
}
