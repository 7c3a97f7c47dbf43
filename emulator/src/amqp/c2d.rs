//! `/messages/devicebound` — the service sends cloud-to-device messages (spec/amqp.md §3).
//!
//! Our receiver link grants credit at once and keeps it topped up. Each message names its
//! device in `properties.to` (`/devices/{id}/messages/devicebound`) and enters the device's
//! queue through [`Hub::send_c2d`], whose pending result is awaited until the message is
//! stored (durably with `--data-dir`); only then is the delivery `accepted`. Failures are `rejected` with the condition
//! the clients translate (§3.2, §7): unknown device `amqp:not-found`, 50 pending
//! `amqp:resource-limit-exceeded`, over 64 KB `amqp:link:message-size-exceeded`, a missing
//! or malformed `to` `com.microsoft:argument-error`, a failed save `amqp:internal-error`.

use std::collections::BTreeMap;
use std::sync::Arc;

use fe2o3_amqp::acceptor::LinkEndpoint;
use fe2o3_amqp::link::Receiver;
use fe2o3_amqp::types::definitions::Error;
use fe2o3_amqp::types::messaging::Body;
use fe2o3_amqp::types::primitives::Value;
use percent_encoding::percent_decode_str;

use super::conditions::{self, ARGUMENT_ERROR};
use super::connection_auth::{ConnectionAuth, ServiceAccess};
use super::link::{self, LinkSlot, close_with_error};
use super::message::{AnyMessage, body_bytes, message_id_string, simple_value_string, system_time};
use super::session::SessionContext;
use crate::hub::Hub;
use crate::hub::c2d::C2dMessage;
use crate::hub::error::HubError;

/// The right a service needs to send C2D messages and read feedback.
pub(crate) const SERVICE_CONNECT: &str = "ServiceConnect";
/// The application property that asks for delivery feedback.
const ACK_PROPERTY: &str = "iothub-ack";

/// Resolves once the connection holds no live ServiceConnect grant for the policy `hint`
/// names: the token that authorised a service link expired and was not renewed.
pub(super) async fn service_connect_expired(auth: Arc<ConnectionAuth>, hint: Option<String>) {
    auth.until_expired(move |auth, now| {
        auth.service_access(hint.as_deref(), SERVICE_CONNECT, None, now)
            .ok()
            .map(|a| a.expires_at)
    })
    .await;
}

/// Receives C2D messages on `receiver` until the link, the connection or the authorising
/// token ends.
pub(crate) async fn serve(
    mut receiver: Receiver,
    hub: Arc<Hub>,
    access: ServiceAccess,
    hint: Option<String>,
    session: Arc<SessionContext>,
    slot: LinkSlot,
) {
    let link = receiver.name().to_owned();
    let expired = service_connect_expired(session.connection.auth.clone(), hint);
    tokio::pin!(expired);
    tracing::debug!(%link, hub = hub.host_name(), policy = %access.policy, "AMQP C2D link attached");
    loop {
        tokio::select! {
            delivery = receiver.recv::<Body<Value>>() => {
                let delivery = match link::delivered(delivery, &link, "C2D message", "message") {
                    Ok(delivery) => delivery,
                    Err(ended) => {
                        ended.close(receiver).await;
                        break;
                    }
                };
                let (info, message) = delivery.into_parts();
                let outcome = match enqueue(&hub, message).await {
                    Ok((device_id, id)) => {
                        tracing::debug!(%link, device = %device_id, message_id = %id, "C2D message queued over AMQP");
                        receiver.accept(info).await
                    }
                    Err(error) => {
                        tracing::info!(%link, condition = %conditions::symbol_of(&error.condition), description = error.description.as_deref().unwrap_or_default(), "C2D message rejected");
                        receiver.reject(info, error).await
                    }
                };
                if let Err(e) = outcome {
                    tracing::debug!(%link, error = %e, "AMQP C2D disposition failed");
                    break;
                }
            }
            _ = &mut expired => {
                let error = conditions::error(conditions::UNAUTHORIZED, "the token that authorised this link has expired");
                close_with_error(LinkEndpoint::Receiver(receiver), error).await;
                break;
            }
        }
    }
    drop(slot);
}

/// Converts and queues one message; returns the device and the message id.
async fn enqueue(hub: &Arc<Hub>, message: AnyMessage) -> Result<(String, String), Error> {
    let (device_id, c2d) = to_c2d(message)?;
    // `accepted` only once the message is durable; awaited without blocking a worker.
    let queued = match hub.send_c2d(&device_id, c2d) {
        Ok(pending) => pending.durable().await.map_err(HubError::from),
        Err(e) => Err(e),
    };
    queued
        .map(|id| (device_id, id))
        .map_err(|e| conditions::hub_error(&e))
}

/// The device id a `to` of `/devices/{id}/messages/devicebound` names.
pub(crate) fn device_from_to(to: &str) -> Option<String> {
    let path = to.split_once("://").map_or(to, |(_, rest)| {
        rest.split_once('/').map_or("", |(_, path)| path)
    });
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segments.as_slice() {
        [devices, id, messages, tail]
            if devices.eq_ignore_ascii_case("devices")
                && messages.eq_ignore_ascii_case("messages")
                && tail.eq_ignore_ascii_case("devicebound") =>
        {
            percent_decode_str(id)
                .decode_utf8()
                .ok()
                .map(|id| id.into_owned())
                .filter(|id| !id.is_empty())
        }
        _ => None,
    }
}

/// The hub's model of an AMQP C2D message.
pub(crate) fn to_c2d(message: AnyMessage) -> Result<(String, C2dMessage), Error> {
    let properties = message.properties.unwrap_or_default();
    let to = properties.to.ok_or_else(|| {
        conditions::error(
            ARGUMENT_ERROR,
            "the message has no 'to'; set it to /devices/{deviceId}/messages/devicebound",
        )
    })?;
    let device_id = device_from_to(&to).ok_or_else(|| {
        conditions::error(
            ARGUMENT_ERROR,
            format!("'to' is '{to}'; expected /devices/{{deviceId}}/messages/devicebound"),
        )
    })?;
    let body = body_bytes(&message.body).ok_or_else(|| {
        conditions::error(
            ARGUMENT_ERROR,
            "the body must be Data sections, or an AmqpValue string or binary",
        )
    })?;
    let mut ack = None;
    let mut app_properties = BTreeMap::new();
    for (name, value) in message
        .application_properties
        .map(|p| p.0)
        .unwrap_or_default()
    {
        let Some(value) = simple_value_string(&value) else {
            continue;
        };
        if name.eq_ignore_ascii_case(ACK_PROPERTY) {
            ack = Some(value);
        } else {
            app_properties.insert(name, value);
        }
    }
    let c2d = C2dMessage {
        message_id: properties.message_id.as_ref().map(message_id_string),
        correlation_id: properties.correlation_id.as_ref().map(message_id_string),
        user_id: properties
            .user_id
            .as_ref()
            .map(|u| String::from_utf8_lossy(u).into_owned()),
        content_type: properties.content_type.map(|s| s.to_string()),
        content_encoding: properties.content_encoding.map(|s| s.to_string()),
        expiry: properties.absolute_expiry_time.as_ref().map(system_time),
        ack,
        properties: app_properties,
        body,
    };
    Ok((device_id, c2d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::messaging::{
        ApplicationProperties, Data, Message, MessageId, Properties,
    };
    use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Timestamp};

    fn message(to: Option<&str>) -> AnyMessage {
        let u = uuid::Uuid::parse_str("6F9619FF-8B86-D011-B42D-00CF4FC964FF").unwrap();
        Message::builder()
            .properties(Properties {
                to: to.map(str::to_owned),
                message_id: Some(MessageId::Uuid(fe2o3_amqp::types::primitives::Uuid::from(
                    *u.as_bytes(),
                ))),
                correlation_id: Some(MessageId::Ulong(7)),
                content_type: Some("application/json".into()),
                content_encoding: Some("utf-8".into()),
                absolute_expiry_time: Some(Timestamp::from_milliseconds(1_700_000_000_000)),
                ..Default::default()
            })
            .application_properties(
                ApplicationProperties::builder()
                    .insert("iothub-ack", SimpleValue::String("full".into()))
                    .insert("color", SimpleValue::String("red".into()))
                    .insert("n", SimpleValue::Int(3))
                    .build(),
            )
            .body(Body::Data(
                vec![Data(Binary::from(b"hello".to_vec()))].into(),
            ))
            .build()
    }

    #[test]
    fn a_service_message_keeps_its_properties() {
        let (device, c2d) = to_c2d(message(Some("/devices/dev%201/messages/devicebound"))).unwrap();
        assert_eq!(device, "dev 1");
        assert_eq!(
            c2d.message_id.as_deref(),
            Some("6f9619ff-8b86-d011-b42d-00cf4fc964ff")
        );
        assert_eq!(c2d.correlation_id.as_deref(), Some("7"));
        assert_eq!(c2d.ack.as_deref(), Some("full"));
        assert_eq!(c2d.properties.get("color").map(String::as_str), Some("red"));
        assert_eq!(c2d.properties.get("n").map(String::as_str), Some("3"));
        assert!(!c2d.properties.contains_key("iothub-ack"));
        assert_eq!(c2d.content_type.as_deref(), Some("application/json"));
        assert_eq!(c2d.content_encoding.as_deref(), Some("utf-8"));
        assert_eq!(&c2d.body[..], b"hello");
        assert!(c2d.expiry.is_some());
    }

    use crate::store::failing::FailingStore;

    #[tokio::test]
    async fn a_failed_save_is_an_internal_error_and_queues_nothing() {
        let persistence = std::sync::Arc::new(crate::persistence::Persistence::new(
            std::sync::Arc::new(FailingStore),
        ));
        let key = crate::auth::keys::SymmetricKey::from_base64(
            "c2VydmljZSBrZXkgZm9yIHRlc3RzIG9ubHkgMTIzNA==",
        )
        .unwrap();
        let hub = Hub::new("hub.example", Vec::new(), 1);
        hub.provision_device("d1", key.clone(), key, None);
        let hub = Arc::new(hub.with_persistence(persistence.clone()));
        persistence.activate();
        let error = enqueue(&hub, message(Some("/devices/d1/messages/devicebound")))
            .await
            .unwrap_err();
        assert_eq!(
            conditions::symbol_of(&error.condition),
            conditions::INTERNAL_ERROR
        );
        assert!(hub.c2d_pending("d1").is_empty(), "nothing queued");
    }

    #[test]
    fn to_is_required_and_must_name_a_device() {
        for to in [
            None,
            Some("/devices/d1/messages/events"),
            Some("d1"),
            Some("/devices//messages/devicebound"),
        ] {
            let e = to_c2d(message(to)).unwrap_err();
            assert_eq!(
                conditions::symbol_of(&e.condition),
                ARGUMENT_ERROR,
                "{to:?}"
            );
        }
        assert_eq!(
            device_from_to("/devices/d1/messages/deviceBound").as_deref(),
            Some("d1")
        );
        assert_eq!(
            device_from_to("amqps://h/devices/d1/messages/devicebound").as_deref(),
            Some("d1")
        );
    }
}
