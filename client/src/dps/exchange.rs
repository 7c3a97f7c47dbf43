//! The DPS conversation on an already connected MQTT session: subscribe to responses, send
//! the register request, then poll or retry as each response says until a final answer.
//!
//! Every request gets a fresh UUID `$rid`, and only the response carrying that `$rid` is
//! taken as its answer; a late answer to an earlier (retried) request is ignored.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::error::ProvisioningError;
use super::model::{RegisterRequest, RegistrationResult};
use super::outcome::{Step, interpret};
use super::topic::{RESPONSE_FILTER, ResponseTopic, poll_topic, register_topic};
use crate::mqtt::{Connection, IncomingPublish};

/// The request to send next.
enum Request {
    Register,
    Poll { operation_id: String },
}

/// Runs the registration until DPS gives a final answer. The caller bounds the total time.
pub(crate) async fn register(
    connection: &Connection,
    responses: &mut mpsc::Receiver<IncomingPublish>,
    registration_id: &str,
    payload: Option<&serde_json::Value>,
) -> Result<RegistrationResult, ProvisioningError> {
    connection.subscribe(RESPONSE_FILTER.to_owned()).await?;
    let register_body = serde_json::to_vec(&RegisterRequest {
        registration_id,
        payload,
    })
    .map_err(|e| ProvisioningError::Protocol(format!("cannot encode register body: {e}")))?;
    let register_body = Bytes::from(register_body);

    let mut request = Request::Register;
    loop {
        let rid = Uuid::new_v4().to_string();
        let (topic, body) = match &request {
            Request::Register => (register_topic(&rid), register_body.clone()),
            // The SDKs send a single space; DPS ignores the body of a status query.
            Request::Poll { operation_id } => (poll_topic(&rid, operation_id), Bytes::new()),
        };
        connection.publish(topic, body).await?;
        let (status, retry_after, body) = await_response(responses, &rid).await?;
        tracing::debug!(status, ?retry_after, "DPS response");
        match interpret(status, retry_after.as_deref(), &body)? {
            Step::Assigned(result) => return Ok(*result),
            Step::Poll {
                operation_id,
                after,
            } => {
                wait(after).await;
                request = Request::Poll { operation_id };
            }
            Step::Retry { after } => wait(after).await,
        }
    }
}

/// Waits for the response whose `$rid` is `rid`; returns its status, `retry-after` and body.
async fn await_response(
    responses: &mut mpsc::Receiver<IncomingPublish>,
    rid: &str,
) -> Result<(u16, Option<String>, Bytes), ProvisioningError> {
    loop {
        let message = responses
            .recv()
            .await
            .ok_or(ProvisioningError::Disconnected)?;
        let Some(topic) = ResponseTopic::parse(&message.topic) else {
            tracing::debug!(topic = %message.topic, "ignoring publish that is not a DPS response");
            continue;
        };
        if topic.rid() != Some(rid) {
            tracing::debug!(topic = %message.topic, "ignoring response to another request");
            continue;
        }
        let retry_after = topic.retry_after().map(str::to_owned);
        return Ok((topic.status, retry_after, message.payload));
    }
}

async fn wait(after: Duration) {
    if !after.is_zero() {
        tokio::time::sleep(after).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{FakeServer, connected};
    use rumqttc::mqttbytes::QoS;
    use rumqttc::mqttbytes::v4::{Packet, Publish, SubAck, SubscribeReasonCode};
    use serde_json::json;
    use std::time::Instant;

    const ASSIGNED: &str = r#"{"operationId":"4.op.1","status":"assigned","registrationState":{"registrationId":"reg-1","deviceId":"dev-1","assignedHub":"hub.example","status":"assigned","substatus":"initialAssignment","etag":"e"}}"#;

    async fn accept_subscription(server: &mut FakeServer) {
        let Some(Packet::Subscribe(sub)) = server.read().await else {
            panic!("expected SUBSCRIBE first");
        };
        assert_eq!(sub.filters.len(), 1);
        assert_eq!(sub.filters[0].path, "$dps/registrations/res/#");
        assert_eq!(sub.filters[0].qos, QoS::AtLeastOnce);
        let granted = vec![SubscribeReasonCode::Success(QoS::AtLeastOnce)];
        server
            .write(Packet::SubAck(SubAck::new(sub.pkid, granted)))
            .await;
    }

    /// Answers `request` on `$dps/registrations/res/{status}/?$rid=…` with `body`.
    async fn answer(server: &mut FakeServer, request: &Publish, status: &str, body: &str) {
        let rid = rid_of(&request.topic);
        server
            .publish(
                &format!("$dps/registrations/res/{status}/?$rid={rid}"),
                body,
            )
            .await;
    }

    /// `$rid` of a request topic.
    fn rid_of(topic: &str) -> String {
        let query = topic.split_once('?').expect("query").1;
        let rid = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("$rid="))
            .expect("$rid");
        crate::encode::decode(rid)
    }

    #[tokio::test]
    async fn register_poll_assigned() {
        let (connection, mut responses, mut server) = connected().await;
        let payload = json!({"modelId": "dtmi:x;1"});
        let client = register(&connection, &mut responses, "reg-1", Some(&payload));
        let serve = async {
            accept_subscription(&mut server).await;
            let request = server.next_publish_acked().await;
            assert!(
                request
                    .topic
                    .starts_with("$dps/registrations/PUT/iotdps-register/?$rid=")
            );
            let body: serde_json::Value = serde_json::from_slice(&request.payload).unwrap();
            assert_eq!(
                body,
                json!({"registrationId": "reg-1", "payload": {"modelId": "dtmi:x;1"}})
            );
            let rid = rid_of(&request.topic);
            // `$rid` deliberately not first.
            server
                .publish(
                    &format!("$dps/registrations/res/202/?retry-after=0&$rid={rid}"),
                    r#"{"operationId":"4.op.1","status":"assigning"}"#,
                )
                .await;

            let poll = server.next_publish_acked().await;
            let poll_rid = rid_of(&poll.topic);
            assert_ne!(poll_rid, rid, "each request needs a fresh $rid");
            assert_eq!(
                poll.topic,
                format!(
                    "$dps/registrations/GET/iotdps-get-operationstatus/?$rid={poll_rid}&operationId=4.op.1"
                )
            );
            // A stray answer to the old request id must be ignored.
            server
                .publish(
                    &format!("$dps/registrations/res/200/?$rid={rid}"),
                    r#"{"operationId":"x","status":"failed"}"#,
                )
                .await;
            server
                .publish(
                    &format!("$dps/registrations/res/200/?$rid={poll_rid}"),
                    ASSIGNED,
                )
                .await;
            server
        };
        let (result, _server) = tokio::join!(client, serve);
        let result = result.unwrap();
        assert_eq!(result.status, "assigned");
        assert_eq!(result.operation_id, "4.op.1");
        assert_eq!(
            result.registration_state.device_id.as_deref(),
            Some("dev-1")
        );
        assert_eq!(
            result.registration_state.assigned_hub.as_deref(),
            Some("hub.example")
        );
    }

    #[tokio::test]
    async fn register_body_without_payload() {
        let (connection, mut responses, mut server) = connected().await;
        let client = register(&connection, &mut responses, "reg-1", None);
        let serve = async {
            accept_subscription(&mut server).await;
            let request = server.next_publish_acked().await;
            assert_eq!(&request.payload[..], br#"{"registrationId":"reg-1"}"#);
            answer(&mut server, &request, "200", ASSIGNED).await;
            server
        };
        let (result, _server) = tokio::join!(client, serve);
        result.unwrap();
    }

    #[tokio::test]
    async fn throttled_request_is_retried() {
        let (connection, mut responses, mut server) = connected().await;
        let client = register(&connection, &mut responses, "reg-1", None);
        let serve = async {
            accept_subscription(&mut server).await;
            let first = server.next_publish_acked().await;
            let rid = rid_of(&first.topic);
            server
                .publish(
                    &format!("$dps/registrations/res/429/?$rid={rid}&retry-after=0"),
                    r#"{"errorCode":429001,"message":"throttled"}"#,
                )
                .await;
            let again = server.next_publish_acked().await;
            assert!(
                again.topic.contains("iotdps-register"),
                "the same request is retried"
            );
            answer(&mut server, &again, "200", ASSIGNED).await;
            server
        };
        let (result, _server) = tokio::join!(client, serve);
        result.unwrap();
    }

    #[tokio::test]
    async fn missing_retry_after_waits_two_seconds() {
        let (connection, mut responses, mut server) = connected().await;
        let client = register(&connection, &mut responses, "reg-1", None);
        let serve = async {
            accept_subscription(&mut server).await;
            let first = server.next_publish_acked().await;
            let rid = rid_of(&first.topic);
            let answered = Instant::now();
            server
                .publish(&format!("$dps/registrations/res/503/?$rid={rid}"), "")
                .await;
            let again = server.next_publish_acked().await;
            let waited = answered.elapsed();
            assert!(
                waited >= Duration::from_millis(1900),
                "retried after {waited:?}"
            );
            answer(&mut server, &again, "200", ASSIGNED).await;
            server
        };
        let (result, _server) = tokio::join!(client, serve);
        result.unwrap();
    }

    #[tokio::test]
    async fn client_error_status_is_a_service_error() {
        let (connection, mut responses, mut server) = connected().await;
        let client = register(&connection, &mut responses, "reg-1", None);
        let serve = async {
            accept_subscription(&mut server).await;
            let request = server.next_publish_acked().await;
            let rid = rid_of(&request.topic);
            server
                .publish(
                    &format!("$dps/registrations/res/401/?$rid={rid}"),
                    r#"{"errorCode":401002,"message":"Unauthorized"}"#,
                )
                .await;
            server
        };
        let (result, _server) = tokio::join!(client, serve);
        match result {
            Err(ProvisioningError::Service { status: 401, body }) => {
                assert!(body.contains("401002"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn disabled_is_a_registration_error() {
        let (connection, mut responses, mut server) = connected().await;
        let client = register(&connection, &mut responses, "reg-1", None);
        let serve = async {
            accept_subscription(&mut server).await;
            let request = server.next_publish_acked().await;
            let rid = rid_of(&request.topic);
            server
                .publish(
                    &format!("$dps/registrations/res/200/?$rid={rid}"),
                    r#"{"operationId":"op","status":"disabled","registrationState":{"registrationId":"reg-1","status":"disabled"}}"#,
                )
                .await;
            server
        };
        let (result, _server) = tokio::join!(client, serve);
        assert!(matches!(
            result,
            Err(ProvisioningError::Registration { status, .. }) if status == "disabled"
        ));
    }

    #[tokio::test]
    async fn server_closing_mid_registration_is_disconnected() {
        let (connection, mut responses, mut server) = connected().await;
        let client = register(&connection, &mut responses, "reg-1", None);
        let serve = async {
            accept_subscription(&mut server).await;
            server.next_publish_acked().await;
            server.close().await;
        };
        let (result, ()) = tokio::join!(client, serve);
        assert!(matches!(result, Err(ProvisioningError::Disconnected)));
    }
}
