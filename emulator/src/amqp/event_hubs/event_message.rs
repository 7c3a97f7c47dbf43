//! One stored event as the AMQP message an Event Hubs consumer receives (spec/amqp.md §4.5):
//!
//! | section | key | AMQP type |
//! |---|---|---|
//! | message annotations | `x-opt-sequence-number` | long |
//! | | `x-opt-offset` | **string** (Python decodes it as UTF-8) |
//! | | `x-opt-enqueued-time`, `iothub-enqueuedtime` | timestamp |
//! | | `iothub-connection-device-id`, `-module-id`, `-auth-method`, `-auth-generation-id`, `iothub-message-source` | string |
//! | | `iothub-outputname`, `iothub-interface-id`, `iothub-creation-time-utc`, `dt-subject` | string, when the device set them |
//! | properties | `message-id`, `correlation-id` (string), `user-id` (binary), `content-type`, `content-encoding` (symbol), `to` | as the device sent them |
//! | application properties | the device's own properties | string |
//! | body | one Data section | the payload bytes |
//!
//! With the runtime-metric capability, delivery annotations carry the partition's last
//! enqueued event (`last_enqueued_sequence_number`, `last_enqueued_offset`,
//! `last_enqueued_time_utc`, `runtime_info_retrieval_time_utc`).

use std::time::SystemTime;

use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Data, DeliveryAnnotations, Message, MessageAnnotations, MessageId,
    Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Value};

use crate::amqp::message::{AnyMessage, timestamp};
use crate::hub::event_hubs::partition::{PartitionEvent, PartitionProperties};

/// The annotation keys the Event Hubs clients read.
pub(crate) const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
pub(crate) const OFFSET: &str = "x-opt-offset";
pub(crate) const ENQUEUED_TIME: &str = "x-opt-enqueued-time";

/// The message for `event`; `runtime` adds the runtime-metric delivery annotations.
pub(crate) fn event_message(
    event: &PartitionEvent,
    runtime: Option<&PartitionProperties>,
) -> AnyMessage {
    let message = &event.message;
    let system = &message.system;
    let mut annotations = MessageAnnotations::builder()
        .insert(
            Symbol::from(SEQUENCE_NUMBER),
            Value::Long(event.sequence_number),
        )
        .insert(Symbol::from(OFFSET), Value::String(event.offset_text()))
        .insert(
            Symbol::from(ENQUEUED_TIME),
            Value::Timestamp(timestamp(event.enqueued_time)),
        )
        .insert(
            Symbol::from("iothub-connection-device-id"),
            Value::String(message.device_id.to_string()),
        )
        .insert(
            Symbol::from("iothub-enqueuedtime"),
            Value::Timestamp(timestamp(message.enqueued_time)),
        )
        .insert(
            Symbol::from("iothub-message-source"),
            Value::String(message.source.as_str().to_owned()),
        );
    let optional = [
        ("iothub-connection-module-id", message.module_id.as_deref()),
        (
            "iothub-connection-auth-method",
            message.auth.as_ref().map(|a| a.method),
        ),
        (
            "iothub-connection-auth-generation-id",
            message.auth.as_ref().map(|a| &*a.generation_id),
        ),
        ("iothub-outputname", system.output_name.as_deref()),
        ("iothub-interface-id", system.interface_id.as_deref()),
        ("iothub-creation-time-utc", system.creation_time.as_deref()),
        ("dt-subject", system.component.as_deref()),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            annotations = annotations.insert(Symbol::from(key), Value::String(value.to_owned()));
        }
    }
    let properties = Properties {
        message_id: system.message_id.clone().map(MessageId::String),
        correlation_id: system.correlation_id.clone().map(MessageId::String),
        user_id: system
            .user_id
            .as_ref()
            .map(|u| Binary::from(u.as_bytes().to_vec())),
        content_type: system.content_type.as_deref().map(Symbol::from),
        content_encoding: system.content_encoding.as_deref().map(Symbol::from),
        to: system.to.clone(),
        ..Properties::default()
    };
    let mut application = ApplicationProperties::builder();
    for (key, value) in &message.properties {
        application = application.insert(key.clone(), SimpleValue::String(value.clone()));
    }
    let builder = Message::builder()
        .message_annotations(annotations.build())
        .properties(properties)
        .application_properties(application.build())
        .body(Body::Data(
            vec![Data(Binary::from(message.body.to_vec()))].into(),
        ));
    match runtime {
        Some(last) => builder
            .delivery_annotations(runtime_annotations(last, SystemTime::now()))
            .build(),
        None => builder.build(),
    }
}

fn runtime_annotations(last: &PartitionProperties, now: SystemTime) -> DeliveryAnnotations {
    DeliveryAnnotations::builder()
        .insert(
            Symbol::from("last_enqueued_sequence_number"),
            Value::Long(last.last_enqueued_sequence_number),
        )
        .insert(
            Symbol::from("last_enqueued_offset"),
            Value::String(last.last_enqueued_offset.clone()),
        )
        .insert(
            Symbol::from("last_enqueued_time_utc"),
            Value::Timestamp(timestamp(last.last_enqueued_time)),
        )
        .insert(
            Symbol::from("runtime_info_retrieval_time_utc"),
            Value::Timestamp(timestamp(now)),
        )
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::event_hubs::partition::Partition;
    use crate::hub::telemetry::{SenderAuth, SystemProperties, TelemetryMessage};
    use fe2o3_amqp::types::messaging::annotations::OwnedKey;
    use std::sync::Arc;

    fn annotation<'a>(message: &'a AnyMessage, key: &str) -> Option<&'a Value> {
        message
            .message_annotations
            .as_ref()?
            .0
            .get(&OwnedKey::Symbol(Symbol::from(key)))
    }

    #[test]
    fn types_are_the_ones_the_clients_decode() {
        let partition = Partition::new(0, 10);
        partition.append(Arc::new(TelemetryMessage::for_tests("d", "first")));
        let stored = TelemetryMessage {
            module_id: Some("m".into()),
            system: SystemProperties {
                message_id: Some("mid".into()),
                correlation_id: Some("cid".into()),
                content_type: Some("application/json".into()),
                content_encoding: Some("utf-8".into()),
                ..SystemProperties::default()
            }
            .into(),
            properties: [("alert".to_owned(), "yes".to_owned())].into(),
            auth: Some(SenderAuth {
                method: "{}",
                generation_id: "123".into(),
            }),
            ..TelemetryMessage::for_tests("d", "{\"t\":1}")
        };
        let event = partition.append(Arc::new(stored));
        let message = event_message(&event, Some(&partition.properties()));
        assert_eq!(annotation(&message, SEQUENCE_NUMBER), Some(&Value::Long(1)));
        assert_eq!(
            annotation(&message, OFFSET),
            Some(&Value::String(event.offset.to_string()))
        );
        assert!(matches!(
            annotation(&message, ENQUEUED_TIME),
            Some(Value::Timestamp(_))
        ));
        assert!(matches!(
            annotation(&message, "iothub-enqueuedtime"),
            Some(Value::Timestamp(_))
        ));
        for (key, value) in [
            ("iothub-connection-device-id", "d"),
            ("iothub-connection-module-id", "m"),
            ("iothub-connection-auth-generation-id", "123"),
            ("iothub-message-source", "Telemetry"),
        ] {
            assert_eq!(
                annotation(&message, key),
                Some(&Value::String(value.into())),
                "{key}"
            );
        }
        let properties = message.properties.as_ref().unwrap();
        assert_eq!(properties.message_id, Some(MessageId::String("mid".into())));
        assert_eq!(
            properties.content_type,
            Some(Symbol::from("application/json"))
        );
        assert_eq!(
            message
                .application_properties
                .as_ref()
                .unwrap()
                .0
                .get("alert"),
            Some(&SimpleValue::String("yes".into()))
        );
        let runtime = message.delivery_annotations.as_ref().unwrap();
        assert_eq!(
            runtime
                .0
                .get(&OwnedKey::Symbol(Symbol::from("last_enqueued_offset"))),
            Some(&Value::String(event.offset.to_string()))
        );
        match &message.body {
            Body::Data(batch) => {
                let bytes: Vec<u8> = batch.iter().flat_map(|d| d.0.to_vec()).collect();
                assert_eq!(bytes, b"{\"t\":1}");
            }
            other => panic!("body {other:?}"),
        }
    }
}
