//! The request/response node pattern of AMQP management and CBS (spec/amqp.md §2, §4.3):
//! a client attaches a *sender* link to a node (our [`Receiver`]) for requests and a
//! *receiver* link on the same node (our [`Sender`]) for responses. Each request is answered
//! on the paired response link with
//!
//! * `correlation-id` = the request's `message-id` **with the same AMQP type** (uamqp-c only
//!   reads a ulong, pyamqp sends a uuid, Node a string),
//! * application properties `status-code` (AMQP `int`; Node compares `!== 200`) and
//!   `status-description` (string), plus whatever the handler adds.
//!
//! Pairing: the response link whose name (core-amqp) or target address (Node `$management`)
//! equals the request's `reply-to`; otherwise the latest response link the same session
//! opened on the node (Node's IoT clients send `reply-to: cbs` on a `$cbs` link). A request
//! that arrives before its response link is attached waits for it a little.
//!
//! A node is a [`RequestHandler`]; [`serve`] runs either side of it on an accepted link.
//! `$cbs` ([`super::cbs`]) is one; the Event Hubs `$management` node is another.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fe2o3_amqp::acceptor::LinkEndpoint;
use fe2o3_amqp::link::{Receiver, RecvError, Sender};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use tokio::sync::{Notify, mpsc};

use super::conditions;
use super::link::{LinkSlot, close_with_error};
use super::message::{AnyMessage, app_property};
use super::session::SessionContext;

/// How long a request waits for its response link to be attached.
const REPLY_LINK_WAIT: Duration = Duration::from_secs(5);
/// Responses queued per response link before requests wait.
const REPLY_QUEUE: usize = 64;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A request as received on a node.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub message: AnyMessage,
}

impl Request {
    /// Application property `operation` (`put-token`, `READ`, …).
    pub(crate) fn operation(&self) -> Option<String> {
        self.property("operation")
    }

    /// An application property as text.
    pub(crate) fn property(&self, name: &str) -> Option<String> {
        app_property(&self.message, name)
    }

    pub(crate) fn message_id(&self) -> Option<&MessageId> {
        self.message.properties.as_ref()?.message_id.as_ref()
    }
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status_code: i32,
    pub status_description: String,
    /// Extra application properties.
    pub properties: Vec<(String, SimpleValue)>,
    pub body: Body<Value>,
}

impl Response {
    /// A response with `status_code` and no body (an AmqpValue null, so the message still
    /// has the body section AMQP requires).
    pub(crate) fn status(status_code: i32, description: impl Into<String>) -> Response {
        Response {
            status_code,
            status_description: description.into(),
            properties: Vec::new(),
            body: Body::Value(AmqpValue(Value::Null)),
        }
    }

    /// 200 with `value` as an AmqpValue body.
    pub(crate) fn ok_value(value: Value) -> Response {
        Response {
            body: Body::Value(AmqpValue(value)),
            ..Response::status(200, "OK")
        }
    }

    /// The response message for a request whose id was `request_id`.
    pub(crate) fn into_message(self, request_id: Option<MessageId>) -> AnyMessage {
        let mut properties = ApplicationProperties::builder()
            .insert("status-code", SimpleValue::Int(self.status_code))
            .insert(
                "status-description",
                SimpleValue::String(self.status_description),
            )
            .build();
        for (name, value) in self.properties {
            properties.0.insert(name, value);
        }
        Message::builder()
            .properties(Properties {
                correlation_id: request_id,
                ..Default::default()
            })
            .application_properties(properties)
            .body(self.body)
            .build()
    }
}

/// A node's behaviour: one response per request.
pub(crate) trait RequestHandler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        request: Request,
        session: &'a Arc<SessionContext>,
    ) -> BoxFuture<'a, Response>;
}

/// The response links a session has open on request/response nodes.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplyLinks {
    inner: Arc<ReplyLinksInner>,
}

#[derive(Debug, Default)]
struct ReplyLinksInner {
    links: Mutex<Vec<ReplyLink>>,
    attached: Notify,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct ReplyLink {
    id: u64,
    /// Lower-case node path (`/$cbs`).
    node: String,
    name: String,
    target_address: Option<String>,
    tx: mpsc::Sender<AnyMessage>,
}

impl ReplyLinks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ReplyLink>> {
        self.inner.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(
        &self,
        node: &str,
        name: &str,
        target_address: Option<String>,
    ) -> (u64, mpsc::Receiver<AnyMessage>) {
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        let id = self.inner.next_id.fetch_add(1, Ordering::SeqCst);
        self.lock().push(ReplyLink {
            id,
            node: node.to_ascii_lowercase(),
            name: name.to_owned(),
            target_address,
            tx,
        });
        self.inner.attached.notify_waiters();
        (id, rx)
    }

    fn unregister(&self, id: u64) {
        self.lock().retain(|l| l.id != id);
    }

    fn find(&self, node: &str, reply_to: Option<&str>) -> Option<mpsc::Sender<AnyMessage>> {
        let links = self.lock();
        if let Some(reply_to) = reply_to
            && let Some(link) = links
                .iter()
                .rev()
                .find(|l| l.name == reply_to || l.target_address.as_deref() == Some(reply_to))
        {
            return Some(link.tx.clone());
        }
        let node = node.to_ascii_lowercase();
        links
            .iter()
            .rev()
            .find(|l| l.node == node)
            .map(|l| l.tx.clone())
    }

    /// The response link for a request, waiting up to [`REPLY_LINK_WAIT`] for it to attach.
    pub(super) async fn wait_for(
        &self,
        node: &str,
        reply_to: Option<&str>,
    ) -> Option<mpsc::Sender<AnyMessage>> {
        let deadline = tokio::time::Instant::now() + REPLY_LINK_WAIT;
        loop {
            let attached = self.inner.attached.notified();
            tokio::pin!(attached);
            attached.as_mut().enable();
            if let Some(tx) = self.find(node, reply_to) {
                return Some(tx);
            }
            if tokio::time::timeout_at(deadline, attached).await.is_err() {
                return None;
            }
        }
    }
}

/// Serves one side of a request/response node on an accepted link: requests on our
/// receiver, responses on our sender. `node` is the node's path (`/$cbs`). Returns when
/// the link or the connection ends.
pub(crate) async fn serve(
    link: LinkEndpoint,
    node: String,
    handler: Arc<dyn RequestHandler>,
    session: Arc<SessionContext>,
    slot: LinkSlot,
) {
    match link {
        LinkEndpoint::Receiver(receiver) => serve_requests(receiver, node, handler, session).await,
        LinkEndpoint::Sender(sender) => serve_responses(sender, node, session).await,
    }
    drop(slot);
}

async fn serve_requests(
    mut receiver: Receiver,
    node: String,
    handler: Arc<dyn RequestHandler>,
    session: Arc<SessionContext>,
) {
    let link_name = receiver.name().to_owned();
    loop {
        let delivery = match receiver.recv::<Body<Value>>().await {
            Ok(delivery) => delivery,
            Err(RecvError::MessageDecode(e)) => {
                tracing::info!(link = %link_name, error = ?e, "AMQP request could not be decoded");
                let error =
                    conditions::error(conditions::DECODE_ERROR, "the request could not be decoded");
                close_with_error(
                    fe2o3_amqp::acceptor::LinkEndpoint::Receiver(receiver),
                    error,
                )
                .await;
                return;
            }
            Err(e) => {
                tracing::debug!(link = %link_name, error = %e, "AMQP request link ended");
                return;
            }
        };
        let (info, message) = delivery.into_parts();
        // The hub settles a request as accepted, then answers on the response link.
        if let Err(e) = receiver.accept(info).await {
            tracing::debug!(link = %link_name, error = %e, "AMQP request could not be settled");
            return;
        }
        let reply_to = message.properties.as_ref().and_then(|p| p.reply_to.clone());
        let request = Request { message };
        let request_id = request.message_id().cloned();
        let response = handler.handle(request, &session).await;
        let reply = response.into_message(request_id);
        match session.replies.wait_for(&node, reply_to.as_deref()).await {
            Some(tx) => {
                if tx.send(reply).await.is_err() {
                    tracing::info!(link = %link_name, node = %node, "AMQP response link went away before the response");
                }
            }
            None => {
                tracing::info!(link = %link_name, node = %node, reply_to = ?reply_to, "AMQP request has no response link; response dropped");
            }
        }
    }
}

/// Sends the responses queued for `node` on `sender` until it detaches (also the answer
/// link of a DPS registration, [`super::dps_link`]).
pub(super) async fn serve_responses(
    mut sender: Sender,
    node: String,
    session: Arc<SessionContext>,
) {
    let target_address = sender.target().as_ref().and_then(|t| t.address.clone());
    let (id, mut responses) = session
        .replies
        .register(&node, sender.name(), target_address);
    loop {
        tokio::select! {
            response = responses.recv() => {
                let Some(response) = response else { break };
                // The outcome does not matter (clients accept responses); not waiting for
                // it keeps one slow client from holding up later responses.
                match sender.send_batchable(response).await {
                    Ok(_outcome) => {}
                    Err(e) => {
                        tracing::debug!(node = %node, error = %e, "AMQP response could not be sent");
                        break;
                    }
                }
            }
            _ = sender.on_detach() => break,
        }
    }
    session.replies.unregister(id);
}
