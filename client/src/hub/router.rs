//! Routes the hub's publishes to whoever is waiting for them, by topic: twin responses to the
//! request with the same `$rid`, desired patches to the [`DesiredUpdates`](super::DesiredUpdates) receiver, method
//! requests to the installed handler.
//!
//! It runs as one task per [`DeviceClient`](super::DeviceClient), fed by the MQTT session's
//! channel of (already acknowledged) publishes. It never awaits the application: a method
//! handler runs in its own task and a full desired queue drops the patch, because a stalled
//! router would also stall the twin responses every other caller is waiting for. The task
//! ends when the session does; it then fails the waiting twin requests and ends the desired
//! stream, so nothing waits forever on a dead connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use super::error::DeviceError;
use super::method::{MethodHandler, MethodRequest, MethodResponse};
use super::topic::{HubTopic, method_response_topic};
use super::twin::DesiredPatch;
use crate::mqtt::{IncomingPublish, WeakConnection};

/// A twin response as it arrived.
#[derive(Debug)]
pub(crate) struct TwinReply {
    pub status: u16,
    /// The topic's `$version` (the new reported version after a PATCH).
    pub version: Option<u64>,
    pub body: Bytes,
}

/// State shared between the client's methods and the router task.
#[derive(Default)]
pub(crate) struct Routes {
    twin: Mutex<TwinWaiters>,
    desired: Mutex<Option<mpsc::Sender<DesiredPatch>>>,
    method: Mutex<Option<Arc<MethodHandler>>>,
}

#[derive(Default)]
struct TwinWaiters {
    /// Set when the router has stopped; later requests fail at once instead of hanging.
    closed: bool,
    by_rid: HashMap<String, oneshot::Sender<TwinReply>>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("pending_twin_requests", &lock(&self.twin).by_rid.len())
            .field("desired", &lock(&self.desired).is_some())
            .field("method_handler", &lock(&self.method).is_some())
            .finish()
    }
}

/// A poisoned lock only means some thread panicked mid-update of plain maps and options,
/// which leaves them consistent; carry on rather than spread the panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Routes {
    /// Registers interest in the response to `rid`. Must happen before the request is
    /// published, or a fast answer would find nobody waiting.
    pub(crate) fn expect_twin_reply(
        self: &Arc<Self>,
        rid: String,
    ) -> Result<TwinWaiter, DeviceError> {
        let (sender, receiver) = oneshot::channel();
        let mut twin = lock(&self.twin);
        if twin.closed {
            return Err(DeviceError::Disconnected);
        }
        twin.by_rid.insert(rid.clone(), sender);
        Ok(TwinWaiter {
            routes: self.clone(),
            rid,
            receiver,
        })
    }

    /// Sends future desired patches to a new receiver (ending the previous one's stream).
    pub(crate) fn set_desired(&self, sender: mpsc::Sender<DesiredPatch>) {
        *lock(&self.desired) = Some(sender);
    }

    /// Replaces the direct-method handler.
    pub(crate) fn set_method_handler(&self, handler: Arc<MethodHandler>) {
        *lock(&self.method) = Some(handler);
    }

    fn close(&self) {
        let mut twin = lock(&self.twin);
        twin.closed = true;
        // Dropping the senders wakes every waiter with "disconnected".
        twin.by_rid.clear();
        drop(twin);
        lock(&self.desired).take();
    }
}

/// The pending answer to one twin request; dropping it (a cancelled caller) forgets the rid.
pub(crate) struct TwinWaiter {
    routes: Arc<Routes>,
    rid: String,
    receiver: oneshot::Receiver<TwinReply>,
}

impl TwinWaiter {
    pub(crate) async fn reply(mut self) -> Result<TwinReply, DeviceError> {
        (&mut self.receiver)
            .await
            .map_err(|_| DeviceError::Disconnected)
    }
}

impl Drop for TwinWaiter {
    fn drop(&mut self) {
        lock(&self.routes.twin).by_rid.remove(&self.rid);
    }
}

/// The router task: runs until the session's publish channel closes.
pub(crate) async fn run(
    routes: Arc<Routes>,
    mut incoming: mpsc::Receiver<IncomingPublish>,
    connection: WeakConnection,
) {
    while let Some(publish) = incoming.recv().await {
        route(&routes, publish, &connection);
    }
    routes.close();
}

fn route(routes: &Routes, publish: IncomingPublish, connection: &WeakConnection) {
    let Some(topic) = HubTopic::parse(&publish.topic) else {
        // E.g. C2D from an earlier session: it was acknowledged, and nobody here wants it.
        tracing::debug!(topic = %publish.topic, "dropping unexpected publish");
        return;
    };
    match topic {
        HubTopic::TwinResponse {
            status,
            rid,
            version,
        } => {
            let waiter = lock(&routes.twin).by_rid.remove(&rid);
            match waiter {
                Some(waiter) => {
                    let _ = waiter.send(TwinReply {
                        status,
                        version,
                        body: publish.payload,
                    });
                }
                None => tracing::debug!(%rid, status, "twin response for no pending request"),
            }
        }
        HubTopic::DesiredPatch { version } => deliver_desired(routes, version, &publish.payload),
        HubTopic::MethodRequest { name, rid } => {
            let handler = lock(&routes.method).clone();
            match handler {
                Some(handler) => {
                    tokio::spawn(answer_method(
                        handler,
                        name,
                        rid,
                        publish.payload,
                        connection.clone(),
                    ));
                }
                // Only possible if the hub sends requests we never subscribed to.
                None => tracing::warn!(%name, "method request without a handler; ignored"),
            }
        }
    }
}

fn deliver_desired(routes: &Routes, topic_version: Option<u64>, body: &[u8]) {
    let patch: Value = match serde_json::from_slice(body) {
        Ok(patch) => patch,
        Err(error) => {
            tracing::warn!(%error, "desired patch is not JSON; dropped");
            return;
        }
    };
    // The spec has `$version` in both places; prefer the topic, fall back to the body.
    let Some(version) = topic_version.or_else(|| patch.get("$version").and_then(Value::as_u64))
    else {
        tracing::warn!("desired patch without $version; dropped");
        return;
    };
    let sender = lock(&routes.desired).clone();
    let Some(sender) = sender else {
        tracing::debug!(version, "desired patch with nobody listening; dropped");
        return;
    };
    match sender.try_send(DesiredPatch { version, patch }) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(version, "desired updates are not being read; patch dropped");
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            tracing::debug!(version, "desired updates receiver dropped; patch dropped");
        }
    }
}

/// Runs the handler and publishes its answer on `$iothub/methods/res/{status}/?$rid={rid}`.
async fn answer_method(
    handler: Arc<MethodHandler>,
    name: String,
    rid: String,
    body: Bytes,
    connection: WeakConnection,
) {
    let response = match parse_method_payload(&body) {
        Ok(payload) => handler(MethodRequest { name, payload }).await,
        // The hub only forwards JSON, so this is a broken sender; say so instead of guessing.
        Err(error) => MethodResponse::new(
            400,
            serde_json::json!({ "message": format!("request payload is not JSON: {error}") }),
        ),
    };
    // Serialising a `Value` cannot fail (its keys are strings); keep a valid body regardless.
    let payload = serde_json::to_vec(&response.payload).unwrap_or_else(|_| b"null".to_vec());
    // The client may have been dropped while the handler ran; then there is no one to answer.
    let Some(connection) = connection.upgrade() else {
        return;
    };
    let topic = method_response_topic(response.status, &rid);
    if let Err(error) = connection.publish(topic, Bytes::from(payload)).await {
        tracing::warn!(%error, %rid, "could not send the method response");
    }
}

/// An empty body means "no payload" (the Python SDK reads it as `null`).
fn parse_method_payload(body: &[u8]) -> Result<Value, serde_json::Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body)
}
