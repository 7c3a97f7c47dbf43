//! `/messages/serviceBound/feedback` and `/messages/serviceBound/filenotifications` — what
//! the hub sends back to the service (spec/amqp.md §3.1, §3.3).
//!
//! Feedback: each batch the hub's feedback queue hands out ([`Hub::receive_feedback`], locked
//! under a token) goes out as one unsettled message — Data body = the JSON array of records,
//! `content-type: application/vnd.microsoft.iothub.feedback.json`, `user-id` = the hub name,
//! message annotation `iothub-enqueuedtime` (a real hub's feedback shows it, and the .NET SDK
//! reads it).
//! The client's outcome settles the batch: `accepted` completes it, `released`/`modified`
//! abandon it (it is read again), `rejected` completes it (dead-lettered, as Azure does with a
//! rejected feedback message). Sending waits for the client's link credit; a batch taken
//! while waiting is returned to the queue if the link ends first.
//!
//! File notifications: each notification of a completed upload ([`Hub::receive_file_notification`])
//! goes out the same way, one per message — Data body = the JSON object Azure documents,
//! `content-type: application/json`, `user-id` = the hub name, with `iothub-enqueuedtime`
//! — and is settled the same way (spec/amqp.md §3.3).

use std::sync::Arc;
use std::time::Duration;

use fe2o3_amqp::acceptor::LinkEndpoint;
use fe2o3_amqp::link::Sender;
use fe2o3_amqp::types::messaging::{
    Body, Data, Message, MessageAnnotations, MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, Symbol, Value};

use super::c2d::service_connect_expired;
use super::conditions;
use super::connection_auth::ServiceAccess;
use super::link::{LinkSlot, close_with_error};
use super::message::timestamp;
use super::session::SessionContext;
use crate::hub::FileNotification;
use crate::hub::Hub;
use crate::hub::feedback::FeedbackBatch;

pub(crate) const FEEDBACK_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.feedback.json";

/// Feedback locks that run out are not signalled; look again this often.
const RECHECK: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FeedbackKind {
    Feedback,
    FileNotifications,
}

/// Serves a service receiver link until it, the connection or its token ends.
pub(crate) async fn serve(
    mut sender: Sender,
    kind: FeedbackKind,
    hub: Arc<Hub>,
    access: ServiceAccess,
    hint: Option<String>,
    session: Arc<SessionContext>,
    slot: LinkSlot,
) {
    let link = sender.name().to_owned();
    let expired = service_connect_expired(session.connection.auth.clone(), hint);
    tokio::pin!(expired);
    tracing::debug!(%link, ?kind, hub = hub.host_name(), policy = %access.policy, "AMQP service receiver attached");
    loop {
        let readable = hub.feedback_readable().notified();
        tokio::pin!(readable);
        readable.as_mut().enable();
        let file_readable = hub.file_notifications_readable().notified();
        tokio::pin!(file_readable);
        file_readable.as_mut().enable();
        let now = hub.clock().now();
        let delivery = match kind {
            FeedbackKind::Feedback => hub.receive_feedback(now).map(|batch| {
                let message = feedback_message(&hub, &batch);
                (message, batch.lock_token)
            }),
            FeedbackKind::FileNotifications => hub.receive_file_notification(now).map(|n| {
                let message = file_notification_message(&hub, &n);
                (message, n.lock_token)
            }),
        };
        let Some((message, lock)) = delivery else {
            tokio::select! {
                _ = &mut readable => continue,
                _ = &mut file_readable => continue,
                _ = tokio::time::sleep(RECHECK) => continue,
                _ = sender.on_detach() => break,
                _ = &mut expired => {
                    expire(sender).await;
                    break;
                }
            }
        };
        let complete = |lock: &str, now| match kind {
            FeedbackKind::Feedback => hub.complete_feedback(lock, now),
            FeedbackKind::FileNotifications => hub.complete_file_notification(lock, now),
        };
        let abandon = |lock: &str, now| match kind {
            FeedbackKind::Feedback => hub.abandon_feedback(lock, now),
            FeedbackKind::FileNotifications => hub.abandon_file_notification(lock, now),
        };
        tokio::select! {
            outcome = sender.send(message) => {
                let now = hub.clock().now();
                let settled = match outcome {
                    Ok(Outcome::Accepted(_)) | Ok(Outcome::Rejected(_)) => complete(&lock, now),
                    Ok(Outcome::Released(_)) | Ok(Outcome::Modified(_)) => abandon(&lock, now),
                    #[allow(unreachable_patterns)]
                    Ok(_) => abandon(&lock, now),
                    Err(e) => {
                        tracing::debug!(%link, ?kind, error = %e, "AMQP delivery failed; the message is returned");
                        let _ = abandon(&lock, now);
                        break;
                    }
                };
                if let Err(e) = settled {
                    tracing::info!(%link, ?kind, error = %e, "message settled after its lock ended");
                }
            }
            _ = &mut expired => {
                let _ = abandon(&lock, hub.clock().now());
                expire(sender).await;
                break;
            }
        }
    }
    drop(slot);
}

async fn expire(sender: Sender) {
    let error = conditions::error(
        conditions::UNAUTHORIZED,
        "the token that authorised this link has expired",
    );
    close_with_error(LinkEndpoint::Sender(sender), error).await;
}

/// The hub's name: the first label of its host (`myhub` of `myhub.azure-devices.net`).
pub(crate) fn hub_name(hub: &Hub) -> &str {
    hub.host_name().split('.').next().unwrap_or(hub.host_name())
}

/// One file-upload notification as the AMQP message the service reads.
pub(crate) fn file_notification_message(
    hub: &Hub,
    notification: &FileNotification,
) -> Message<Body<Value>> {
    let body = serde_json::to_vec(&notification.body()).unwrap_or_default();
    Message::builder()
        .properties(Properties {
            message_id: Some(MessageId::String(notification.message_id.clone())),
            user_id: Some(Binary::from(hub_name(hub).as_bytes().to_vec())),
            content_type: Some("application/json".into()),
            creation_time: Some(timestamp(notification.enqueued)),
            ..Default::default()
        })
        .message_annotations(
            MessageAnnotations::builder()
                .insert(
                    Symbol::from("iothub-enqueuedtime"),
                    Value::Timestamp(timestamp(notification.enqueued)),
                )
                .build(),
        )
        .body(Body::Data(vec![Data(Binary::from(body))].into()))
        .build()
}

/// One feedback batch as the AMQP message the service reads.
pub(crate) fn feedback_message(hub: &Hub, batch: &FeedbackBatch) -> Message<Body<Value>> {
    let body = serde_json::to_vec(&batch.body()).unwrap_or_else(|_| b"[]".to_vec());
    Message::builder()
        .properties(Properties {
            message_id: Some(MessageId::String(batch.message_id.clone())),
            user_id: Some(Binary::from(hub_name(hub).as_bytes().to_vec())),
            content_type: Some(FEEDBACK_CONTENT_TYPE.into()),
            creation_time: Some(timestamp(batch.enqueued)),
            ..Default::default()
        })
        // The .NET service SDK reads the batch's time from this annotation.
        .message_annotations(
            MessageAnnotations::builder()
                .insert(
                    Symbol::from("iothub-enqueuedtime"),
                    Value::Timestamp(timestamp(batch.enqueued)),
                )
                .build(),
        )
        .body(Body::Data(vec![Data(Binary::from(body))].into()))
        .build()
}
