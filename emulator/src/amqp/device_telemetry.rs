//! Device-to-cloud telemetry over AMQP (spec/amqp.md §5.2, §5.3): the device's sender on
//! `/devices/{id}/messages/events` (a module's on `/devices/{id}/modules/{mid}/messages/events`).
//!
//! Wire format: `properties` carry `message-id`, `correlation-id` (any AMQP id type),
//! `user-id`, `content-type`, `content-encoding`, `absolute-expiry-time`; application
//! properties are the message's properties, except `iothub-outputname` (a module output) and
//! the system ones a client may put there; message annotations may carry
//! `iothub-interface-id`, `dt-subject` and `iothub-creation-time-utc`. The body is Data
//! sections (an AmqpValue string or binary is taken too).
//!
//! A delivery with message format `0x80013700` is a batch (`sendEventBatch`): each Data
//! section is one encoded message, and the batch is stored all or nothing.
//!
//! Each message enters the hub through [`Hub::accept_telemetry`](crate::hub::Hub), the same
//! intake MQTT uses; the delivery is `accepted` only once the hub stored it, and `rejected`
//! with the condition of the hub's refusal otherwise (too large:
//! `amqp:link:message-size-exceeded`, device disabled or gone: `amqp:not-found` …).

use std::collections::BTreeMap;
use std::sync::Arc;

use fe2o3_amqp::acceptor::LinkEndpoint;
use fe2o3_amqp::link::Receiver;
use fe2o3_amqp::types::definitions::Error;
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::message::__private::Deserializable;
use fe2o3_amqp::types::primitives::Value;

use super::conditions::{self, ARGUMENT_ERROR};
use super::device::{DeviceChannel, close_link};
use super::link::{self, LinkSlot};
use super::message::{AnyMessage, body_bytes, message_id_string, simple_value_string, system_time};
use crate::faults::{FaultAction, FaultHit, FaultOperation, Refusal};
use crate::hub::error::HubError;
use crate::hub::telemetry::{IncomingMessage, SystemProperties};

/// The message format of a batch, whose Data sections are encoded messages (Azure's
/// `0x80013700`, what Node's `sendEventBatch` sends).
const BATCH_FORMAT: u32 = 0x8001_3700;

/// Receives telemetry until the link, the connection or the channel ends.
pub(crate) async fn serve(mut receiver: Receiver, channel: Arc<DeviceChannel>, slot: LinkSlot) {
    let link = receiver.name().to_owned();
    let device = channel.identity.connection_key();
    tracing::debug!(%link, %device, "AMQP telemetry link attached");
    loop {
        tokio::select! {
            delivery = receiver.recv::<Body<Value>>() => {
                let delivery = match link::delivered(delivery, &link, "telemetry", "message") {
                    Ok(delivery) => delivery,
                    Err(ended) => {
                        ended.close(receiver).await;
                        break;
                    }
                };
                let batched = *delivery.message_format() == Some(BATCH_FORMAT);
                let (info, message) = delivery.into_parts();
                // An injected fault (docs/faults.md) acts before the message is stored
                // (refuse, drop, stall) or after it was stored and settled (delay, drop).
                let fault = channel
                    .hub
                    .fault(FaultOperation::HubTelemetry, channel.identity.device_id());
                if let Some(hit) = &fault {
                    match hit.action {
                        FaultAction::Refuse(refusal) => {
                            tracing::info!(%link, %device, fault = %hit.id, "telemetry refused by an iotemu fault");
                            if let Err(e) = receiver.reject(info, fault_error(refusal, &hit.id)).await {
                                tracing::debug!(%link, error = %e, "AMQP telemetry disposition failed");
                                break;
                            }
                            continue;
                        }
                        FaultAction::Drop { after_ack: false } => {
                            channel.drop_by_fault(&hit.id);
                            continue;
                        }
                        // Not stored, never settled; the link goes on.
                        FaultAction::Stall => continue,
                        FaultAction::Delay(_) | FaultAction::Drop { after_ack: true } => {}
                    }
                }
                let stored = if batched {
                    unbatch(message).and_then(|messages| {
                        channel
                            .hub
                            .accept_telemetry_batch(&channel.identity, messages)
                            .map_err(|e| conditions::hub_error(&e))
                    })
                } else {
                    to_incoming(message).and_then(|incoming| {
                        channel
                            .hub
                            .accept_telemetry(&channel.identity, incoming)
                            .map(|_| ())
                            .map_err(|e| conditions::hub_error(&e))
                    })
                };
                let outcome = match stored {
                    Ok(()) => {
                        tracing::debug!(%link, %device, batched, "telemetry stored over AMQP");
                        receiver.accept(info).await
                    }
                    Err(error) => {
                        tracing::info!(%link, %device, condition = %conditions::symbol_of(&error.condition), description = error.description.as_deref().unwrap_or_default(), "telemetry refused");
                        receiver.reject(info, error).await
                    }
                };
                if let Err(e) = outcome {
                    tracing::debug!(%link, error = %e, "AMQP telemetry disposition failed");
                    break;
                }
                match fault {
                    Some(FaultHit { action: FaultAction::Drop { after_ack: true }, id }) => {
                        channel.drop_by_fault(&id);
                    }
                    Some(FaultHit { action: FaultAction::Delay(delay), .. }) => {
                        // The disposition is sent; the next delivery waits (the link reads
                        // nothing meanwhile, as a slow service would). A close ends the loop.
                        let _ = channel.hold(delay).await;
                    }
                    _ => {}
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

/// The AMQP error a refusal fault rejects a message with: a 429 as IoT Hub's throttling
/// condition (`com.microsoft:device-container-throttled`, which the device SDKs treat as
/// retryable) with `retry-after` in its info, the others as the hub error of their status
/// (`conditions::hub_error`).
fn fault_error(refusal: Refusal, fault_id: &str) -> Error {
    conditions::hub_error(&HubError::from_fault(refusal, fault_id))
}

/// The messages of a batch (`sendEventBatch`): each Data section holds one whole encoded
/// AMQP message.
pub(crate) fn unbatch(message: AnyMessage) -> Result<Vec<IncomingMessage>, Error> {
    let Body::Data(sections) = message.body else {
        return Err(conditions::error(
            ARGUMENT_ERROR,
            "a batched message must carry one Data section per message",
        ));
    };
    sections
        .iter()
        .map(|data| {
            let inner: Deserializable<AnyMessage> =
                serde_amqp::from_slice(&data.0).map_err(|e| {
                    conditions::error(
                        conditions::DECODE_ERROR,
                        format!("a message of the batch could not be decoded: {e}"),
                    )
                })?;
            to_incoming(inner.0)
        })
        .collect()
}

/// The hub's model of a device's AMQP message.
pub(crate) fn to_incoming(message: AnyMessage) -> Result<IncomingMessage, Error> {
    let body = body_bytes(&message.body).ok_or_else(|| {
        conditions::error(
            ARGUMENT_ERROR,
            "the body must be Data sections, or an AmqpValue string or binary",
        )
    })?;
    let properties = message.properties.unwrap_or_default();
    let mut system = SystemProperties {
        message_id: properties.message_id.as_ref().map(message_id_string),
        correlation_id: properties.correlation_id.as_ref().map(message_id_string),
        user_id: properties
            .user_id
            .as_ref()
            .map(|u| String::from_utf8_lossy(u).into_owned()),
        content_type: properties.content_type.map(|s| s.to_string()),
        content_encoding: properties.content_encoding.map(|s| s.to_string()),
        absolute_expiry_time: properties
            .absolute_expiry_time
            .as_ref()
            .map(|t| crate::timefmt::utc_timestamp(system_time(t))),
        ..SystemProperties::default()
    };
    for (key, value) in message.message_annotations.map(|a| a.0).unwrap_or_default() {
        let OwnedKey::Symbol(name) = key else {
            continue;
        };
        let Some(value) = value_string(&value) else {
            continue;
        };
        match name.as_str() {
            "iothub-interface-id" => system.interface_id = Some(value),
            "dt-subject" => system.component = Some(value),
            "iothub-creation-time-utc" => system.creation_time = Some(value),
            _ => {}
        }
    }
    let mut app = BTreeMap::new();
    for (name, value) in message
        .application_properties
        .map(|p| p.0)
        .unwrap_or_default()
    {
        let Some(value) = simple_value_string(&value) else {
            continue;
        };
        match name.as_str() {
            "iothub-outputname" => system.output_name = Some(value),
            "iothub-interface-id" => system.interface_id = Some(value),
            "dt-subject" => system.component = Some(value),
            "iothub-creation-time-utc" => system.creation_time = Some(value),
            _ => {
                app.insert(name, value);
            }
        }
    }
    Ok(IncomingMessage {
        body,
        system: system.into(),
        properties: app,
    })
}

/// An annotation value as text (they are strings in practice).
fn value_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Symbol(s) => Some(s.to_string()),
        Value::Timestamp(t) => Some(crate::timefmt::utc_timestamp(system_time(t))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::messaging::{
        ApplicationProperties, Data, Message, MessageAnnotations, MessageId, Properties,
    };
    use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Uuid};

    #[test]
    fn a_node_message_keeps_its_system_and_application_properties() {
        let id = uuid::Uuid::parse_str("6f9619ff-8b86-d011-b42d-00cf4fc964ff").unwrap();
        let message: AnyMessage = Message::builder()
            .properties(Properties {
                message_id: Some(MessageId::Uuid(Uuid::from(*id.as_bytes()))),
                correlation_id: Some(MessageId::String("c-1".into())),
                content_type: Some("application/json".into()),
                content_encoding: Some("utf-8".into()),
                to: Some("/devices/d1/messages/events".into()),
                ..Default::default()
            })
            .message_annotations(
                MessageAnnotations::builder()
                    .insert("dt-subject", Value::String("thermostat1".into()))
                    .insert(7u64, Value::String("ignored".into()))
                    .build(),
            )
            .application_properties(
                ApplicationProperties::builder()
                    .insert("color", SimpleValue::String("red".into()))
                    .insert("n", SimpleValue::Int(3))
                    .insert("iothub-outputname", SimpleValue::String("out1".into()))
                    .build(),
            )
            .body(Body::Data(
                vec![Data(Binary::from(b"{\"t\":1}".to_vec()))].into(),
            ))
            .build();
        let incoming = to_incoming(message).unwrap();
        assert_eq!(
            incoming.system.message_id.as_deref(),
            Some("6f9619ff-8b86-d011-b42d-00cf4fc964ff")
        );
        assert_eq!(incoming.system.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(
            incoming.system.content_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(incoming.system.component.as_deref(), Some("thermostat1"));
        assert_eq!(incoming.system.output_name.as_deref(), Some("out1"));
        assert_eq!(
            incoming.properties.get("color").map(String::as_str),
            Some("red")
        );
        assert_eq!(incoming.properties.get("n").map(String::as_str), Some("3"));
        assert!(!incoming.properties.contains_key("iothub-outputname"));
        assert_eq!(&incoming.body[..], b"{\"t\":1}");
    }

    #[test]
    fn a_batch_is_unpacked_into_its_messages() {
        use fe2o3_amqp::types::messaging::message::__private::Serializable;
        let inner = |id: &str, body: &[u8]| {
            let message: AnyMessage = Message::builder()
                .properties(Properties {
                    message_id: Some(MessageId::String(id.into())),
                    ..Default::default()
                })
                .body(Body::Data(vec![Data(Binary::from(body.to_vec()))].into()))
                .build();
            Data(Binary::from(
                serde_amqp::to_vec(&Serializable(message)).unwrap(),
            ))
        };
        let batch: AnyMessage = Message::builder()
            .body(Body::Data(vec![inner("a", b"1"), inner("b", b"2")].into()))
            .build();
        let messages = unbatch(batch).unwrap();
        let ids: Vec<_> = messages
            .iter()
            .map(|m| m.system.message_id.clone().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(&messages[1].body[..], b"2");
        let garbage: AnyMessage = Message::builder()
            .body(Body::Data(
                vec![Data(Binary::from(vec![0xff, 0x00]))].into(),
            ))
            .build();
        assert!(unbatch(garbage).is_err());
    }

    #[test]
    fn a_structured_body_is_an_argument_error() {
        let message: AnyMessage = Message::builder()
            .body(Body::Sequence(
                vec![fe2o3_amqp::types::messaging::AmqpSequence(vec![
                    Value::Int(1),
                ])]
                .into(),
            ))
            .build();
        let error = to_incoming(message).unwrap_err();
        assert_eq!(conditions::symbol_of(&error.condition), ARGUMENT_ERROR);
    }
}
