//! Direct methods over AMQP (spec/amqp.md §5.2, §5.5): a link pair on
//! `/devices/{id}/methods/devicebound` (modules: `/devices/{id}/modules/{mid}/methods/devicebound`).
//!
//! Wire format:
//! * request, hub → device on the device's receiver: application property
//!   `IoThub-methodname` = the method name, `properties.correlation-id` = the request id (a
//!   string), Data body = the JSON payload;
//! * response, device → hub on the device's sender: the same `correlation-id` (Node sends a
//!   UUID-shaped id as an AMQP `uuid`, anything else as a string, so it is compared as text),
//!   application property `IoThub-status` (an `int`), Data body = the JSON answer.
//!
//! Which request id belongs to which waiting caller is the hub's
//! [`MethodCorrelation`](crate::hub::methods::MethodCorrelation), kept per identity on the
//! channel so both links of the pair share it. A call that arrives while the device has no
//! request link attached is refused at once (404103, device not online), as over MQTT
//! without the subscription.

use std::sync::Arc;

use fe2o3_amqp::acceptor::LinkEndpoint;
use fe2o3_amqp::link::{Receiver, Sender};
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Data, Message, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Value};
use tokio::sync::mpsc;

use super::device::{DeviceChannel, close_link};
use super::link::{self, LinkSlot};
use super::message::{AnyMessage, app_property, body_bytes, message_id_string};
use crate::hub::methods::{MethodCall, MethodRequest, MethodResponse};

/// Method calls queued for one request link.
const CALL_QUEUE: usize = 64;
const METHOD_NAME: &str = "IoThub-methodname";
const STATUS: &str = "IoThub-status";

/// Our sender: passes each method call to the device.
pub(crate) async fn serve_requests(
    mut sender: Sender,
    channel: Arc<DeviceChannel>,
    slot: LinkSlot,
) {
    let link = sender.name().to_owned();
    let (tx, mut calls) = mpsc::channel::<MethodCall>(CALL_QUEUE);
    channel.route_methods(tx);
    tracing::debug!(%link, device = %channel.identity.connection_key(), "AMQP method request link attached");
    loop {
        tokio::select! {
            call = calls.recv() => {
                let Some(call) = call else { break };
                let request = channel.methods().start(call);
                let request_id = request.request_id.clone();
                // Sent without waiting for the device's disposition: the answer comes on the
                // response link, and a slow settlement must not hold up the next call.
                if let Err(e) = sender.send_batchable(request_message(&request)).await {
                    tracing::debug!(%link, error = %e, "AMQP method request could not be sent");
                    channel.methods().refuse(&request_id);
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
    // Calls that reached this link but not the device learn the device is not reachable.
    calls.close();
    while let Ok(call) = calls.try_recv() {
        call.refuse();
    }
    drop(slot);
}

/// Our receiver: the device's answers, handed to the caller waiting under their request id.
pub(crate) async fn serve_responses(
    mut receiver: Receiver,
    channel: Arc<DeviceChannel>,
    slot: LinkSlot,
) {
    let link = receiver.name().to_owned();
    loop {
        tokio::select! {
            delivery = receiver.recv::<Body<Value>>() => {
                let delivery = match link::delivered(delivery, &link, "method response", "message") {
                    Ok(delivery) => delivery,
                    Err(ended) => {
                        ended.close(receiver).await;
                        break;
                    }
                };
                let (info, message) = delivery.into_parts();
                match read_response(&message) {
                    Some((request_id, response)) => {
                        if !channel.methods().answer(&request_id, response) {
                            tracing::info!(%link, %request_id, "AMQP method response to no pending request dropped");
                        }
                    }
                    None => tracing::info!(%link, "AMQP method response without a correlation-id dropped"),
                }
                if let Err(e) = receiver.accept(info).await {
                    tracing::debug!(%link, error = %e, "AMQP method response disposition failed");
                    break;
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

/// The request message for `request`.
pub(crate) fn request_message(request: &MethodRequest) -> AnyMessage {
    let body = serde_json::to_vec(&request.payload).unwrap_or_else(|_| b"null".to_vec());
    Message::builder()
        .properties(Properties {
            correlation_id: Some(MessageId::String(request.request_id.clone())),
            ..Default::default()
        })
        .application_properties(
            ApplicationProperties::builder()
                .insert(METHOD_NAME, SimpleValue::String(request.name.clone()))
                .build(),
        )
        .body(Body::Data(vec![Data(Binary::from(body))].into()))
        .build()
}

/// The request id and answer a response message carries; `None` without a correlation-id.
/// A missing or non-numeric status is 500, as over MQTT.
pub(crate) fn read_response(message: &AnyMessage) -> Option<(String, MethodResponse)> {
    let request_id = message
        .properties
        .as_ref()?
        .correlation_id
        .as_ref()
        .map(message_id_string)?;
    let status = app_property(message, STATUS).unwrap_or_default();
    let body = body_bytes(&message.body).unwrap_or_default();
    Some((request_id, MethodResponse::from_device(&status, &body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::primitives::Uuid;

    #[test]
    fn requests_carry_the_name_id_and_json_payload() {
        let request = MethodRequest {
            request_id: "1f".into(),
            name: "reboot".into(),
            payload: serde_json::json!({"delay": 2}),
        };
        let message = request_message(&request);
        assert_eq!(
            app_property(&message, METHOD_NAME).as_deref(),
            Some("reboot")
        );
        assert_eq!(
            message.properties.as_ref().unwrap().correlation_id,
            Some(MessageId::String("1f".into()))
        );
        assert_eq!(
            body_bytes(&message.body).unwrap().as_ref(),
            br#"{"delay":2}"#
        );
    }

    #[test]
    fn responses_are_read_whatever_the_id_type() {
        let id = uuid::Uuid::new_v4();
        let message: AnyMessage = Message::builder()
            .properties(Properties {
                correlation_id: Some(MessageId::Uuid(Uuid::from(*id.as_bytes()))),
                ..Default::default()
            })
            .application_properties(
                ApplicationProperties::builder()
                    .insert(STATUS, SimpleValue::Int(201))
                    .build(),
            )
            .body(Body::Data(
                vec![Data(Binary::from(br#"{"ok":true}"#.to_vec()))].into(),
            ))
            .build();
        let (request_id, response) = read_response(&message).unwrap();
        assert_eq!(request_id, id.to_string());
        assert_eq!(response.status, 201);
        assert_eq!(response.payload, serde_json::json!({"ok": true}));
        let anonymous: AnyMessage = Message::builder().body(Body::Empty).build();
        assert!(read_response(&anonymous).is_none());
    }
}
