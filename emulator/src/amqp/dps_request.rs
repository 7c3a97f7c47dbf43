//! DPS request and response messages over AMQP (spec/amqp.md §6.2): what a registration
//! client sends on its sender link to `{idScope}/registrations/{registrationId}` and what
//! DPS answers on the client's receiver link on the same address.
//!
//! | request (application properties) | body | answer |
//! |---|---|---|
//! | `iotdps-operation-type` = `iotdps-register` (Node adds `iotdps-forceRegistration`) | Data: `DeviceRegistration` JSON | `RegistrationOperationStatus` (202 `assigning`) |
//! | `iotdps-operation-type` = `iotdps-get-operationstatus`, `iotdps-operation-id` | AmqpValue `""` (Node) or Data (C) | `RegistrationOperationStatus` (`assigning`, then `assigned`/`disabled`/`failed`) |
//! | `iotdps-operation-type` = `iotdps-get-registration` | – | `DeviceRegistrationState` |
//!
//! An answer is a message whose body is **one Data section** with the same JSON the HTTPS
//! and MQTT paths send (Node reads `JSON.parse(msg.body.content)`), whose `correlation-id`
//! is the request's `correlation-id` with its AMQP type kept (Node matches on it; without
//! one, the request's `message-id`), with application properties `iotdps-status` (the
//! HTTP-style status, int) and, while assigning, `retry-after` (seconds).
//!
//! A request DPS refuses is not answered with a message (the Node client would read an error
//! body as a status and fail on it) but **rejected** with the AMQP condition the clients
//! translate (spec/amqp.md §7, [`rejection`]): Node treats `amqp:internal-error` and
//! `com.microsoft:device-container-throttled` as "still registering" and reads `retry-after`
//! from the error's info map, and fails the registration on anything else.

use bytes::Bytes;
use fe2o3_amqp::types::definitions::{Error, Fields};
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Body, Data, Message, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Value};

use super::conditions;
use super::message::{AnyMessage, app_property, body_bytes};
use crate::dps::error::DpsError;

pub(crate) const OPERATION_TYPE: &str = "iotdps-operation-type";
pub(crate) const OPERATION_ID: &str = "iotdps-operation-id";
pub(crate) const STATUS: &str = "iotdps-status";
pub(crate) const RETRY_AFTER: &str = "retry-after";
pub(crate) const REGISTER: &str = "iotdps-register";
pub(crate) const GET_OPERATION_STATUS: &str = "iotdps-get-operationstatus";
pub(crate) const GET_REGISTRATION: &str = "iotdps-get-registration";

/// The Node client's throttling condition, which it retries (spec/amqp.md §7).
pub(crate) const THROTTLED: &str = super::conditions::DEVICE_CONTAINER_THROTTLED;
pub(crate) const PRECONDITION_FAILED: &str = "com.microsoft:precondition-failed";

/// What a request asks DPS to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DpsOperation {
    /// Start a registration with this `DeviceRegistration` body.
    Register { body: Bytes },
    /// Where operation `operation_id` stands.
    OperationStatus { operation_id: String },
    /// The device's current registration record.
    GetRegistration,
}

impl DpsOperation {
    /// Reads a request. Errors are DPS's `400` (a request no DPS could serve).
    pub(crate) fn parse(message: &AnyMessage) -> Result<DpsOperation, DpsError> {
        let Some(kind) = app_property(message, OPERATION_TYPE) else {
            return Err(DpsError::bad_request(format!(
                "the request has no '{OPERATION_TYPE}' application property"
            )));
        };
        match kind.as_str() {
            REGISTER => {
                let body = body_bytes(&message.body).ok_or_else(|| {
                    DpsError::bad_request(
                        "the register request body must be a Data section or a string",
                    )
                })?;
                Ok(DpsOperation::Register { body })
            }
            GET_OPERATION_STATUS => match app_property(message, OPERATION_ID) {
                Some(id) if !id.is_empty() => {
                    Ok(DpsOperation::OperationStatus { operation_id: id })
                }
                _ => Err(DpsError::bad_request(format!(
                    "'{GET_OPERATION_STATUS}' needs the '{OPERATION_ID}' application property"
                ))),
            },
            GET_REGISTRATION => Ok(DpsOperation::GetRegistration),
            other => Err(DpsError::bad_request(format!(
                "unknown {OPERATION_TYPE} '{}'",
                other.escape_debug()
            ))),
        }
    }
}

/// The id an answer carries as `correlation-id`: the request's `correlation-id`, else its
/// `message-id` (the AMQP request/response convention), with the AMQP type kept.
pub(crate) fn correlation_of(message: &AnyMessage) -> Option<MessageId> {
    let properties = message.properties.as_ref()?;
    properties
        .correlation_id
        .clone()
        .or_else(|| properties.message_id.clone())
}

/// An answer: `json` as one Data section, `iotdps-status` and, when given, `retry-after`.
pub(crate) fn answer(
    correlation: Option<MessageId>,
    status: u16,
    retry_after: Option<u32>,
    json: Vec<u8>,
) -> AnyMessage {
    let mut properties =
        ApplicationProperties::builder().insert(STATUS, SimpleValue::Int(i32::from(status)));
    if let Some(seconds) = retry_after {
        // A string, as it is on MQTT (a topic parameter) and HTTPS (a header); both SDKs
        // that read it accept a string (C parses int or string, Node calls `Number()`).
        properties = properties.insert(RETRY_AFTER, SimpleValue::String(seconds.to_string()));
    }
    Message::builder()
        .properties(Properties {
            correlation_id: correlation,
            content_type: Some(Symbol::from("application/json")),
            content_encoding: Some(Symbol::from("utf-8")),
            ..Default::default()
        })
        .application_properties(properties.build())
        .body(Body::Data(vec![Data(Binary::from(json))].into()))
        .build()
}

/// The condition a DPS error is rejected with.
pub(crate) fn rejection_condition(error: &DpsError) -> &'static str {
    match error.status() {
        400 => conditions::ARGUMENT_ERROR,
        401 => conditions::UNAUTHORIZED,
        403 => conditions::NOT_ALLOWED,
        404 => conditions::NOT_FOUND,
        412 => PRECONDITION_FAILED,
        413 => conditions::MESSAGE_SIZE_EXCEEDED,
        429 => THROTTLED,
        _ => conditions::INTERNAL_ERROR,
    }
}

/// The rejection for a DPS error: its condition, the 6-digit code and message as the
/// description, and an info map with `status-code` (the code) and, when DPS asks for one,
/// `retry-after`.
pub(crate) fn rejection(error: &DpsError) -> Error {
    let mut info = Fields::new();
    info.insert(Symbol::from("status-code"), Value::Uint(error.code()));
    if let Some(seconds) = error.retry_after() {
        info.insert(
            Symbol::from(RETRY_AFTER),
            Value::String(seconds.to_string()),
        );
    }
    Error::new(
        conditions::condition(rejection_condition(error)),
        Some(error.to_string()),
        Some(info),
    )
}

#[cfg(test)]
mod tests {
    use fe2o3_amqp::types::messaging::AmqpValue;

    use super::*;
    use crate::amqp::conditions::symbol_of;

    fn request(properties: &[(&str, &str)], body: Body<Value>) -> AnyMessage {
        let mut app = ApplicationProperties::builder();
        for (name, value) in properties {
            app = app.insert(*name, SimpleValue::String((*value).to_owned()));
        }
        Message::builder()
            .properties(Properties {
                correlation_id: Some(MessageId::String("c-1".into())),
                message_id: Some(MessageId::Ulong(7)),
                ..Default::default()
            })
            .application_properties(app.build())
            .body(body)
            .build()
    }

    fn data(bytes: &[u8]) -> Body<Value> {
        Body::Data(vec![Data(Binary::from(bytes.to_vec()))].into())
    }

    #[test]
    fn the_three_operations_parse_with_their_arguments() {
        let register = request(
            &[(OPERATION_TYPE, REGISTER)],
            data(br#"{"registrationId":"d"}"#),
        );
        assert_eq!(
            DpsOperation::parse(&register),
            Ok(DpsOperation::Register {
                body: Bytes::from_static(br#"{"registrationId":"d"}"#)
            })
        );
        let poll = request(
            &[
                (OPERATION_TYPE, GET_OPERATION_STATUS),
                (OPERATION_ID, "op-1"),
            ],
            Body::Value(AmqpValue(Value::String(String::new()))),
        );
        assert_eq!(
            DpsOperation::parse(&poll),
            Ok(DpsOperation::OperationStatus {
                operation_id: "op-1".into()
            })
        );
        let lookup = request(&[(OPERATION_TYPE, GET_REGISTRATION)], Body::Empty);
        assert_eq!(
            DpsOperation::parse(&lookup),
            Ok(DpsOperation::GetRegistration)
        );
    }

    #[test]
    fn unusable_requests_are_bad_requests() {
        for message in [
            request(&[], data(b"{}")),
            request(&[(OPERATION_TYPE, "iotdps-delete")], data(b"{}")),
            request(&[(OPERATION_TYPE, GET_OPERATION_STATUS)], Body::Empty),
            request(
                &[(OPERATION_TYPE, REGISTER)],
                Body::Value(AmqpValue(Value::Int(3))),
            ),
        ] {
            let error = DpsOperation::parse(&message).unwrap_err();
            assert_eq!(error.code(), 400004, "{error}");
            assert_eq!(
                symbol_of(&rejection(&error).condition),
                conditions::ARGUMENT_ERROR
            );
        }
    }

    #[test]
    fn answers_echo_the_correlation_id_and_carry_json_in_one_data_section() {
        let register = request(&[(OPERATION_TYPE, REGISTER)], data(b"{}"));
        let correlation = correlation_of(&register);
        assert_eq!(correlation, Some(MessageId::String("c-1".into())));
        let reply = answer(
            correlation,
            202,
            Some(1),
            br#"{"status":"assigning"}"#.to_vec(),
        );
        assert_eq!(
            reply.properties.as_ref().unwrap().correlation_id,
            Some(MessageId::String("c-1".into()))
        );
        assert_eq!(app_property(&reply, RETRY_AFTER).as_deref(), Some("1"));
        assert_eq!(app_property(&reply, STATUS).as_deref(), Some("202"));
        match &reply.body {
            Body::Data(batch) => {
                assert_eq!(batch.len(), 1);
                assert_eq!(
                    body_bytes(&reply.body).unwrap().as_ref(),
                    br#"{"status":"assigning"}"#
                );
            }
            other => panic!("Data section expected, got {other:?}"),
        }
        let done = answer(None, 200, None, b"{}".to_vec());
        assert_eq!(app_property(&done, RETRY_AFTER), None);
    }

    #[test]
    fn a_request_without_correlation_id_is_answered_with_its_message_id() {
        let mut message = request(&[(OPERATION_TYPE, REGISTER)], data(b"{}"));
        if let Some(p) = message.properties.as_mut() {
            p.correlation_id = None;
        }
        assert_eq!(correlation_of(&message), Some(MessageId::Ulong(7)));
    }

    #[test]
    fn dps_errors_map_to_the_conditions_node_translates() {
        for (error, symbol) in [
            (DpsError::not_found("op"), conditions::NOT_FOUND),
            (DpsError::unauthorized("x"), conditions::UNAUTHORIZED),
            (DpsError::internal("disk"), conditions::INTERNAL_ERROR),
            (
                DpsError::payload_too_large("big"),
                conditions::MESSAGE_SIZE_EXCEEDED,
            ),
        ] {
            let rejected = rejection(&error);
            assert_eq!(symbol_of(&rejected.condition), symbol, "{error}");
            assert!(
                rejected
                    .description
                    .unwrap()
                    .contains(&error.code().to_string())
            );
            assert_eq!(
                rejected.info.unwrap().get(&Symbol::from("status-code")),
                Some(&Value::Uint(error.code()))
            );
        }
    }
}
