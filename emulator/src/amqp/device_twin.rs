//! Device twins over AMQP (spec/amqp.md §5.2, §5.6): a link pair on `/devices/{id}/twin`
//! (modules: `/devices/{id}/modules/{mid}/twin`), both sent pre-settled by Node.
//!
//! Wire format:
//! * request, device → hub on the device's sender: message annotations `operation`
//!   (`GET`, `PATCH`, `PUT`, `DELETE`) and `resource` (`/properties/reported` for PATCH,
//!   `/notifications/twin/properties/desired` for PUT = subscribe and DELETE = unsubscribe),
//!   `properties.correlation-id` (a string in Node), Data body (the JSON patch for PATCH,
//!   `" "` otherwise);
//! * response, hub → device on the device's receiver: the request's `correlation-id`, message
//!   annotation `status` (`int`: 200 with the twin for GET, 204 for a stored PATCH, 200 for
//!   PUT/DELETE, the hub's status on error) and, after a PATCH, `version` (`long`); the body
//!   is a Data section: `{"desired":…,"reported":…}` for GET, `{"errorCode","message"}` for
//!   an error, empty otherwise;
//! * desired-property patch, hub → device on the same receiver once subscribed: no
//!   `correlation-id`, Data body = the patch with its `$version`, as over MQTT.
//!
//! The twin rules are the hub's ([`crate::hub::twin::requests`]), the same as MQTT's; a PATCH
//! is answered only once it is durable.

use std::sync::Arc;

use fe2o3_amqp::acceptor::LinkEndpoint;
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::{
    Body, Data, Message, MessageAnnotations, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, Value};
use tokio::sync::mpsc;

use super::device::{DeviceChannel, close_link};
use super::link::{self, LinkSlot};
use super::message::{AnyMessage, body_bytes};
use crate::faults::{FaultAction, FaultHit, FaultOperation};
use crate::hub::error::HubError;
use crate::hub::twin::requests::{TwinRequest, TwinResponse};

/// Responses and patches queued for one response link.
const REPLY_QUEUE: usize = 64;
const DESIRED_RESOURCE: &str = "/notifications/twin/properties/desired";
const REPORTED_RESOURCE: &str = "/properties/reported";

/// Our receiver: the device's twin requests, each answered on the response link.
pub(crate) async fn serve_requests(
    mut receiver: Receiver,
    channel: Arc<DeviceChannel>,
    slot: LinkSlot,
) {
    let link = receiver.name().to_owned();
    tracing::debug!(%link, device = %channel.identity.connection_key(), "AMQP twin request link attached");
    loop {
        tokio::select! {
            delivery = receiver.recv::<Body<Value>>() => {
                let delivery = match link::delivered(delivery, &link, "twin request", "message") {
                    Ok(delivery) => delivery,
                    Err(ended) => {
                        ended.close(receiver).await;
                        break;
                    }
                };
                let (info, message) = delivery.into_parts();
                if let Err(e) = receiver.accept(info).await {
                    tracing::debug!(%link, error = %e, "AMQP twin request disposition failed");
                    break;
                }
                let correlation_id = message.properties.as_ref().and_then(|p| p.correlation_id.clone());
                // An injected fault (docs/faults.md) on a twin GET or reported patch acts before
                // the request is done (refuse, drop, stall: nothing stored) or after it was done
                // and answered (delay, drop).
                let fault = fault_operation(&message)
                    .and_then(|operation| channel.hub.fault(operation, channel.identity.device_id()));
                let reply = match &fault {
                    Some(FaultHit { action: FaultAction::Refuse(refusal), id }) => {
                        tracing::info!(%link, fault = %id, "twin request refused by an iotemu fault");
                        TwinReply::error(&HubError::from_fault(*refusal, id))
                    }
                    Some(FaultHit { action: FaultAction::Drop { after_ack: false }, id }) => {
                        channel.drop_by_fault(id);
                        continue;
                    }
                    // Accepted, never done nor answered; the link goes on.
                    Some(FaultHit { action: FaultAction::Stall, .. }) => continue,
                    _ => answer(&channel, &message).await,
                };
                if let Some(FaultHit { action: FaultAction::Delay(delay), .. }) = &fault {
                    // Done (a patch is stored), its answer held back; the link reads nothing
                    // else meanwhile, as a slow service would. A close ends the loop.
                    let _ = channel.hold(*delay).await;
                }
                match channel.twin_replies().await {
                    Some(tx) => {
                        if tx.send(reply.into_message(correlation_id)).await.is_err() {
                            tracing::info!(%link, "AMQP twin response link went away before the response");
                        }
                    }
                    None => tracing::info!(%link, "AMQP twin request has no response link; response dropped"),
                }
                if let Some(FaultHit { action: FaultAction::Drop { after_ack: true }, id }) = fault {
                    channel.drop_by_fault(&id);
                }
            }
            reason = channel.closed() => {
                close_link(LinkEndpoint::Receiver(receiver), reason).await;
                break;
            }
        }
    }
    drop(slot);
}

/// Our sender: responses and desired-property patches to the device.
pub(crate) async fn serve_responses(
    mut sender: Sender,
    channel: Arc<DeviceChannel>,
    slot: LinkSlot,
) {
    let link = sender.name().to_owned();
    let (tx, mut replies) = mpsc::channel::<AnyMessage>(REPLY_QUEUE);
    channel.route_twin(tx);
    loop {
        tokio::select! {
            // Replies first: one queued before the channel closed (a fault that drops the
            // links after answering) still goes out.
            biased;
            reply = replies.recv() => {
                let Some(reply) = reply else { break };
                // Node's twin receiver asks for pre-settled deliveries; nothing to wait for.
                if let Err(e) = sender.send_batchable(reply).await {
                    tracing::debug!(%link, error = %e, "AMQP twin response could not be sent");
                    break;
                }
            }
            reason = channel.closed() => {
                close_link(LinkEndpoint::Sender(sender), reason).await;
                break;
            }
            _ = sender.on_detach() => break,
        }
    }
    drop(slot);
}

/// A twin answer before it becomes a message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TwinReply {
    pub status: i32,
    pub version: Option<u64>,
    pub body: Vec<u8>,
}

impl TwinReply {
    fn status(status: i32) -> TwinReply {
        TwinReply {
            status,
            version: None,
            body: Vec::new(),
        }
    }

    fn error(e: &HubError) -> TwinReply {
        let body = serde_json::json!({ "errorCode": e.code, "message": e.message });
        TwinReply {
            status: i32::from(e.status()),
            version: None,
            body: body.to_string().into_bytes(),
        }
    }

    pub(crate) fn into_message(self, correlation_id: Option<MessageId>) -> AnyMessage {
        let mut annotations =
            MessageAnnotations::builder().insert("status", Value::Int(self.status));
        if let Some(version) = self.version {
            annotations = annotations.insert(
                "version",
                Value::Long(i64::try_from(version).unwrap_or(i64::MAX)),
            );
        }
        Message::builder()
            .properties(Properties {
                correlation_id,
                ..Default::default()
            })
            .message_annotations(annotations.build())
            .body(Body::Data(vec![Data(Binary::from(self.body))].into()))
            .build()
    }
}

/// The fault operation a twin request is: a GET or a reported-properties PATCH (subscribing
/// to desired patches is not one).
fn fault_operation(message: &AnyMessage) -> Option<FaultOperation> {
    let operation = annotation(message, "operation")?;
    let resource = annotation(message, "resource");
    match operation.to_ascii_uppercase().as_str() {
        "GET" => Some(FaultOperation::HubTwinGet),
        "PATCH"
            if resource
                .as_deref()
                .is_none_or(|r| r.eq_ignore_ascii_case(REPORTED_RESOURCE)) =>
        {
            Some(FaultOperation::HubTwinPatch)
        }
        _ => None,
    }
}

/// The hub's answer to one twin request.
pub(crate) async fn answer(channel: &DeviceChannel, message: &AnyMessage) -> TwinReply {
    let operation = annotation(message, "operation").unwrap_or_default();
    let resource = annotation(message, "resource");
    let hub = &channel.hub;
    let identity = &channel.identity;
    let result = match operation.to_ascii_uppercase().as_str() {
        "GET" => hub.device_twin_request(identity, TwinRequest::Get).await,
        "PATCH"
            if resource
                .as_deref()
                .is_none_or(|r| r.eq_ignore_ascii_case(REPORTED_RESOURCE)) =>
        {
            let body = body_bytes(&message.body).unwrap_or_default();
            hub.device_twin_request(identity, TwinRequest::PatchReported(&body))
                .await
        }
        "PUT" | "DELETE"
            if resource
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(DESIRED_RESOURCE)) =>
        {
            channel.subscribe_desired(operation.eq_ignore_ascii_case("PUT"));
            return TwinReply::status(200);
        }
        _ => Err(HubError::argument_invalid(format!(
            "unsupported twin operation '{operation}' on resource '{}'",
            resource.unwrap_or_default()
        ))),
    };
    match result {
        Ok(TwinResponse::Twin(view)) => TwinReply {
            status: 200,
            version: None,
            body: view.to_string().into_bytes(),
        },
        Ok(TwinResponse::ReportedUpdated { version }) => TwinReply {
            status: 204,
            version: Some(version),
            body: Vec::new(),
        },
        Err(e) => TwinReply::error(&e),
    }
}

/// A desired-properties patch pushed to a subscribed device.
pub(crate) fn desired_patch(version: u64, patch: &serde_json::Value) -> AnyMessage {
    let mut patch = patch.clone();
    if let Some(object) = patch.as_object_mut() {
        object
            .entry("$version")
            .or_insert_with(|| serde_json::Value::from(version));
    }
    Message::builder()
        .properties(Properties::default())
        .body(Body::Data(
            vec![Data(Binary::from(patch.to_string().into_bytes()))].into(),
        ))
        .build()
}

/// A message annotation with a symbol key, as text.
fn annotation(message: &AnyMessage, name: &str) -> Option<String> {
    message
        .message_annotations
        .as_ref()?
        .0
        .iter()
        .find_map(|(key, value)| match (key, value) {
            (OwnedKey::Symbol(k), Value::String(v)) if k.as_str() == name => Some(v.clone()),
            (OwnedKey::Symbol(k), Value::Symbol(v)) if k.as_str() == name => Some(v.to_string()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(message: &AnyMessage) -> Option<Value> {
        message
            .message_annotations
            .as_ref()?
            .0
            .iter()
            .find_map(|(k, v)| match k {
                OwnedKey::Symbol(s) if s.as_str() == "status" => Some(v.clone()),
                _ => None,
            })
    }

    #[test]
    fn replies_carry_the_int_status_and_the_request_correlation_id() {
        let reply = TwinReply {
            status: 204,
            version: Some(3),
            body: Vec::new(),
        };
        let message = reply.into_message(Some(MessageId::String("c-1".into())));
        assert_eq!(status_of(&message), Some(Value::Int(204)));
        assert_eq!(
            message.properties.as_ref().unwrap().correlation_id,
            Some(MessageId::String("c-1".into()))
        );
        assert!(matches!(message.body, Body::Data(_)));
    }

    #[test]
    fn a_desired_patch_has_no_correlation_id_and_its_version() {
        let message = desired_patch(4, &serde_json::json!({"interval": 5}));
        assert!(
            message
                .properties
                .as_ref()
                .unwrap()
                .correlation_id
                .is_none()
        );
        let body: serde_json::Value =
            serde_json::from_slice(&body_bytes(&message.body).unwrap()).unwrap();
        assert_eq!(body, serde_json::json!({"interval": 5, "$version": 4}));
    }
}
