//! One AMQP session: waits for the client's attaches and routes each, by address
//! ([`super::address`]), to the node that serves it; every link then runs in its own task.
//!
//! Authorisation happens here, before a link is answered: the IoT Hub service nodes need a
//! service grant with `ServiceConnect` on the connection (from SASL `PLAIN` or a CBS
//! `put-token`); without one the link is attached and at once detached with
//! `amqp:unauthorized-access` (the real hub's exact reply is unknown, docs/differences.md).
//! `$cbs` needs nothing. Event Hubs addresses go to [`super::event_hubs::on_attach`], which
//! checks its own audiences; device addresses to [`super::device::on_attach`], which needs a
//! device grant for that identity (or its TLS client certificate).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use fe2o3_amqp::acceptor::{LinkEndpoint, ListenerSessionHandle};
use fe2o3_amqp::types::definitions::Role;
use fe2o3_amqp::types::performatives::Attach;

use super::AmqpContext;
use super::address::{Address, Node, attach_address};
use super::c2d::{self, SERVICE_CONNECT};
use super::cbs::{self, Cbs};
use super::conditions::{self, NOT_ALLOWED, NOT_FOUND, UNAUTHORIZED};
use super::connection_auth::{ConnectionAuth, ServiceAccess};
use super::device::{self, DeviceChannels};
use super::dps_link;
use super::event_hubs;
use super::feedback::{self, FeedbackKind};
use super::link::{self, Acceptor, LinkSlot};
use super::request_response::{self, ReplyLinks};
use crate::hub::Hub;

/// What every session and link of one connection shares.
pub(crate) struct ConnectionContext {
    pub amqp: Arc<AmqpContext>,
    pub auth: Arc<ConnectionAuth>,
    /// Links attached on this connection (bounded by `AmqpLimits::max_links_per_connection`).
    pub links: Arc<AtomicUsize>,
    /// The device identities whose links this connection carries.
    pub devices: DeviceChannels,
}

/// What the links of one session share.
pub(crate) struct SessionContext {
    pub connection: Arc<ConnectionContext>,
    /// Response links of request/response nodes opened on this session.
    pub replies: ReplyLinks,
}

/// Serves the session until the client ends it or the connection goes.
pub(crate) async fn run_session(mut session: ListenerSessionHandle, ctx: Arc<SessionContext>) {
    let acceptor = link::acceptor(ctx.connection.amqp.limits.max_message_size);
    while let Some(attach) = session.next_incoming_attach().await {
        dispatch(attach, &mut session, &ctx, &acceptor).await;
    }
}

async fn dispatch(
    attach: Attach,
    session: &mut ListenerSessionHandle,
    ctx: &Arc<SessionContext>,
    acceptor: &Acceptor,
) {
    let Some(address) = attach_address(&attach) else {
        let error = conditions::error(NOT_FOUND, "the attach names no address");
        link::refuse(attach, session, acceptor, error).await;
        return;
    };
    let limits = ctx.connection.amqp.limits;
    let Some(slot) = LinkSlot::take(&ctx.connection.links, limits.max_links_per_connection) else {
        let error = conditions::error(
            conditions::RESOURCE_LIMIT_EXCEEDED,
            format!(
                "a connection may have at most {} links",
                limits.max_links_per_connection
            ),
        );
        link::refuse(attach, session, acceptor, error).await;
        return;
    };
    let node = address.node();
    tracing::debug!(link = %attach.name, address = %address.raw, ?node, role = ?attach.role, "AMQP attach");
    match node {
        Node::Cbs => {
            if let Some(link) = link::accept(attach, session, acceptor).await {
                tokio::spawn(request_response::serve(
                    link,
                    cbs::NODE.to_owned(),
                    Arc::new(Cbs),
                    ctx.clone(),
                    slot,
                ));
            }
        }
        Node::C2dSend => attach_c2d_send(attach, &address, session, ctx, acceptor, slot).await,
        Node::Feedback => {
            let kind = FeedbackKind::Feedback;
            attach_feedback(attach, &address, kind, session, ctx, acceptor, slot).await;
        }
        Node::FileNotifications => {
            let kind = FeedbackKind::FileNotifications;
            attach_feedback(attach, &address, kind, session, ctx, acceptor, slot).await;
        }
        Node::EventHubs => event_hubs::on_attach(attach, address, session, ctx, slot).await,
        Node::DpsRegistration => {
            dps_link::on_attach(attach, &address, session, ctx, acceptor, slot).await;
        }
        Node::Device => device::on_attach(attach, &address, session, ctx, acceptor, slot).await,
        Node::Unknown => {
            let error = conditions::error(NOT_FOUND, format!("no node at '{}'", address.raw));
            link::refuse(attach, session, acceptor, error).await;
        }
    }
}

/// `/messages/devicebound`: the service's C2D sender, once its token allows ServiceConnect.
async fn attach_c2d_send(
    attach: Attach,
    address: &Address,
    session: &mut ListenerSessionHandle,
    ctx: &Arc<SessionContext>,
    acceptor: &Acceptor,
    slot: LinkSlot,
) {
    let Some((hub, access, hint)) = authorise(&attach, address, Role::Sender, ctx) else {
        refuse_unauthorised(attach, address, Role::Sender, session, ctx, acceptor).await;
        return;
    };
    if let Some(LinkEndpoint::Receiver(receiver)) = link::accept(attach, session, acceptor).await {
        tokio::spawn(c2d::serve(receiver, hub, access, hint, ctx.clone(), slot));
    }
}

/// `/messages/serviceBound/feedback` and `…/filenotifications`: the service's receivers.
async fn attach_feedback(
    attach: Attach,
    address: &Address,
    kind: FeedbackKind,
    session: &mut ListenerSessionHandle,
    ctx: &Arc<SessionContext>,
    acceptor: &Acceptor,
    slot: LinkSlot,
) {
    let Some((hub, access, hint)) = authorise(&attach, address, Role::Receiver, ctx) else {
        refuse_unauthorised(attach, address, Role::Receiver, session, ctx, acceptor).await;
        return;
    };
    if let Some(LinkEndpoint::Sender(sender)) = link::accept(attach, session, acceptor).await {
        tokio::spawn(feedback::serve(
            sender,
            kind,
            hub,
            access,
            hint,
            ctx.clone(),
            slot,
        ));
    }
}

/// The hub and permission for a service link that the client opens as `client_role`, or
/// `None` when the connection may not (see [`refuse_unauthorised`] for the reply).
fn authorise(
    attach: &Attach,
    address: &Address,
    client_role: Role,
    ctx: &SessionContext,
) -> Option<(Arc<Hub>, ServiceAccess, Option<String>)> {
    if attach.role != client_role {
        return None;
    }
    let hint = service_hint(address, &ctx.connection.auth);
    let access = ctx
        .connection
        .auth
        .service_access(
            hint.as_deref(),
            SERVICE_CONNECT,
            None,
            ctx.connection.auth.now(),
        )
        .ok()?;
    let hub = ctx.connection.amqp.hubs.get(&access.hub)?.clone();
    Some((hub, access, hint))
}

async fn refuse_unauthorised(
    attach: Attach,
    address: &Address,
    client_role: Role,
    session: &mut ListenerSessionHandle,
    ctx: &SessionContext,
    acceptor: &Acceptor,
) {
    let error = if attach.role != client_role {
        let expected = match client_role {
            Role::Sender => "a sender",
            Role::Receiver => "a receiver",
        };
        conditions::error(
            NOT_ALLOWED,
            format!("'{}' only takes {expected} link", address.path),
        )
    } else {
        let hint = service_hint(address, &ctx.connection.auth);
        let reason = match ctx.connection.auth.service_access(
            hint.as_deref(),
            SERVICE_CONNECT,
            None,
            ctx.connection.auth.now(),
        ) {
            Err(refusal) => refusal.0,
            Ok(access) => format!("hub '{}' is not served", access.hub),
        };
        conditions::error(UNAUTHORIZED, reason)
    };
    link::refuse(attach, session, acceptor, error).await;
}

/// The hub a link prefers: the host of a full-URL address, else the TLS server name.
fn service_hint(address: &Address, auth: &ConnectionAuth) -> Option<String> {
    address
        .host
        .clone()
        .or_else(|| auth.peer().server_name.clone())
}
