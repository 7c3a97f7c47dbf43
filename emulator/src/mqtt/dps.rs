//! DPS over MQTT (protocol.md §2): a registration client publishes
//!
//! - `$dps/registrations/PUT/iotdps-register/?$rid={rid}` with the registration request body
//!   (`{"registrationId", "payload"?}`), and
//! - `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}` to poll,
//!
//! and hears back on `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={s}]` (202
//! while assigning, 200 with the registration state, or an error body). `$rid` comes first:
//! the Python SDK drops anything before it (protocol.md §2.5). A poll that finishes an
//! assignment is answered only once the assignment is durable.

use bytes::Bytes;

use super::outbox::Outbox;
use crate::dps::Dps;
use crate::dps::attestation::RegistrationIdentity;
use crate::dps::error::DpsError;
use crate::dps::registration::RegistrationReply;

/// `iotdps-register`: starts (or restarts) the registration of `who`.
pub(super) fn register(
    dps: &Dps,
    who: &RegistrationIdentity,
    rid: &str,
    body: &[u8],
    ack: Option<u16>,
    out: &mut Outbox,
) {
    let reply = dps.register(who, body);
    out.ack(ack);
    respond(out, rid, reply);
}

/// `iotdps-get-operationstatus`: where `operation_id` stands.
pub(super) async fn poll(
    dps: &Dps,
    who: &RegistrationIdentity,
    rid: &str,
    operation_id: &str,
    ack: Option<u16>,
    out: &mut Outbox,
) {
    let reply = match dps.operation_status(who, operation_id) {
        Ok(pending) => pending.durable().await.map_err(DpsError::from),
        Err(e) => Err(e),
    };
    out.ack(ack);
    respond(out, rid, reply);
}

/// `$dps/registrations/res/{status}/?$rid=…[&retry-after=…]`.
fn respond(out: &mut Outbox, rid: &str, reply: Result<RegistrationReply, DpsError>) {
    let (status, retry_after, body) = match reply {
        Ok(r) => (
            r.status,
            r.retry_after,
            serde_json::to_vec(&r.body).unwrap_or_default(),
        ),
        Err(e) => {
            tracing::info!(client = %out.client, error = %e, "DPS request failed");
            (
                e.status(),
                e.retry_after(),
                e.to_json().to_string().into_bytes(),
            )
        }
    };
    let mut topic = format!("$dps/registrations/res/{status}/?$rid={rid}");
    if let Some(seconds) = retry_after {
        topic.push_str(&format!("&retry-after={seconds}"));
    }
    out.deliver(topic, Bytes::from(body));
}

#[cfg(test)]
mod tests {
    use crate::mqtt::codec::QoS;
    use crate::mqtt::test_support::{REGISTRATION_ID, World};

    #[tokio::test]
    async fn register_then_poll_until_assigned() {
        let world = World::start().await;
        let (mut client, ack) = world.registration().await;
        assert_eq!(ack.code, crate::mqtt::codec::ConnectReturnCode::Success);
        client
            .subscribe("$dps/registrations/res/#", QoS::AtLeastOnce)
            .await;
        let body = format!(r#"{{"registrationId":"{REGISTRATION_ID}"}}"#);
        let register = "$dps/registrations/PUT/iotdps-register/?$rid=1";
        client.publish(register, QoS::AtMostOnce, 0, body).await;
        let accepted = client.recv_publish().await;
        assert_eq!(
            accepted.topic,
            "$dps/registrations/res/202/?$rid=1&retry-after=0"
        );
        let status: serde_json::Value = serde_json::from_slice(&accepted.payload).unwrap();
        let operation = status["operationId"].as_str().unwrap().to_owned();
        loop {
            let poll = format!(
                "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId={operation}"
            );
            client.publish(&poll, QoS::AtMostOnce, 0, "").await;
            let reply = client.recv_publish().await;
            if reply
                .topic
                .starts_with("$dps/registrations/res/200/?$rid=2")
            {
                let status: serde_json::Value = serde_json::from_slice(&reply.payload).unwrap();
                assert_eq!(status["status"], "assigned");
                break;
            }
            assert!(
                reply
                    .topic
                    .starts_with("$dps/registrations/res/202/?$rid=2"),
                "{}",
                reply.topic
            );
            tokio::task::yield_now().await;
        }
        client.disconnect().await;
    }

    #[tokio::test]
    async fn an_unknown_operation_is_an_error_reply() {
        let world = World::start().await;
        let (mut client, _) = world.registration().await;
        client
            .subscribe("$dps/registrations/res/#", QoS::AtMostOnce)
            .await;
        let poll = "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=3&operationId=nope";
        client.publish(poll, QoS::AtMostOnce, 0, "").await;
        let reply = client.recv_publish().await;
        assert!(
            reply
                .topic
                .starts_with("$dps/registrations/res/404/?$rid=3"),
            "{}",
            reply.topic
        );
        client.disconnect().await;
    }
}
