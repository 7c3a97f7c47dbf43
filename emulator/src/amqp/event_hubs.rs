//! The built-in Event Hubs-compatible endpoint over AMQP (spec/amqp.md §4): where backends
//! read the hub's telemetry with `azure-eventhub` / `@azure/event-hubs`. Every attach whose
//! address is Event Hubs-shaped arrives in [`on_attach`]:
//!
//! * `$management` and `{entity}/$management` — the management request/response node
//!   ([`management`]) on the generic node of [`super::request_response`];
//! * `{entity}/ConsumerGroups/{cg}/Partitions/{p}` (with or without `amqps://host/`) —
//!   partition receivers ([`consumer`]);
//! * `/messages/events…` on the IoT Hub host — the IoT Hub connection-string path, answered
//!   with an `amqp:link:redirect` detach ([`redirect`]).
//!
//! The domain — partitions, positions, epochs, routes — is [`crate::hub::event_hubs`]; this
//! module only maps it to links and messages. Authorisation: the connection's service grants
//! (CBS `put-token`, SASL `PLAIN`) must cover the entity path the link names
//! (`{host}/{entity}/consumergroups/{cg}/partitions/{p}` for receivers) with a policy that
//! grants `ServiceConnect`; otherwise `amqp:unauthorized-access`.

pub(crate) mod address;
pub(crate) mod consumer;
pub(crate) mod event_message;
pub(crate) mod management;
pub(crate) mod redirect;

use std::sync::Arc;
use std::time::SystemTime;

use fe2o3_amqp::acceptor::{LinkAcceptor, LinkEndpoint, ListenerSessionHandle};
use fe2o3_amqp::types::definitions::{Error, Role};
use fe2o3_amqp::types::performatives::Attach;

use super::address::Address;
use super::conditions::{self, ARGUMENT_ERROR, NOT_ALLOWED, NOT_FOUND, UNAUTHORIZED};
use super::connection_auth::ServiceAccess;
use super::link::{self, Acceptor, LinkSlot};
use super::request_response;
use super::session::SessionContext;
use crate::hub::Hub;
use crate::hub::event_hubs::position::EventPosition;
use crate::hub::event_hubs::{Consumer, READ_RIGHT};
use address::EventHubsAddress;
use consumer::ConsumerLink;

/// The management node's path as the request/response node keys it.
pub(crate) const MANAGEMENT_NODE: &str = "/$management";

/// Handles one Event Hubs-shaped attach: answers it (`link::accept` / `link::refuse`) and
/// spawns the link's task, which keeps `slot` for as long as the link lives.
pub(crate) async fn on_attach(
    attach: Attach,
    address: Address,
    session: &mut ListenerSessionHandle,
    ctx: &Arc<SessionContext>,
    slot: LinkSlot,
) {
    let acceptor = link::acceptor(ctx.connection.amqp.limits.max_message_size);
    let Some(parsed) = EventHubsAddress::parse(&address) else {
        let error = conditions::error(NOT_FOUND, format!("no node at '{}'", address.raw));
        link::refuse(attach, session, &acceptor, error).await;
        return;
    };
    match parsed {
        EventHubsAddress::Management { .. } => {
            if let Some(link) = link::accept(attach, session, &acceptor).await {
                tokio::spawn(request_response::serve(
                    link,
                    MANAGEMENT_NODE.to_owned(),
                    Arc::new(management::Management),
                    ctx.clone(),
                    slot,
                ));
            }
        }
        EventHubsAddress::IotHubEvents { rest } => {
            redirect::redirect(attach, &address, &rest, session, ctx, &acceptor).await;
        }
        EventHubsAddress::Producer { entity } => {
            let error = conditions::error(
                NOT_ALLOWED,
                format!(
                    "'{entity}' is IoT Hub's built-in endpoint: devices send through the hub, backends only read"
                ),
            );
            link::refuse(attach, session, &acceptor, error).await;
        }
        EventHubsAddress::Consumer {
            entity,
            consumer_group,
            partition,
        } => {
            attach_consumer(
                attach,
                &address,
                (entity, consumer_group, partition),
                session,
                ctx,
                slot,
            )
            .await;
        }
    }
}

/// May this connection use `resource` (`{host}/{path}`, lower-case) of `hub`?
pub(crate) fn authorise(
    session: &SessionContext,
    hub: &Hub,
    resource: &str,
    now: SystemTime,
) -> Result<ServiceAccess, String> {
    session
        .connection
        .auth
        .service_access(Some(hub.host_name()), READ_RIGHT, Some(resource), now)
        .map_err(|refusal| refusal.0)
}

/// The hub an address's entity belongs to: preferring the host the address or the TLS
/// server name names when several hubs are served.
fn hub_for(ctx: &SessionContext, address: &Address, entity: &str) -> Option<Arc<Hub>> {
    let hint = address
        .host
        .clone()
        .or_else(|| ctx.connection.auth.peer().server_name.clone());
    ctx.connection
        .amqp
        .hubs
        .by_event_hub(entity, hint.as_deref())
        .cloned()
}

async fn attach_consumer(
    attach: Attach,
    address: &Address,
    (entity, consumer_group, partition): (String, String, String),
    session: &mut ListenerSessionHandle,
    ctx: &Arc<SessionContext>,
    slot: LinkSlot,
) {
    let plain = link::acceptor(ctx.connection.amqp.limits.max_message_size);
    let partition_ref = PartitionRef {
        entity: &entity,
        consumer_group: &consumer_group,
        partition: &partition,
    };
    let admitted = match admit_consumer(&attach, address, partition_ref, ctx) {
        Ok(admitted) => admitted,
        Err(error) => {
            link::refuse(attach, session, &plain, error).await;
            return;
        }
    };
    let acceptor: Acceptor = if admitted.runtime_metric {
        LinkAcceptor::builder()
            .max_message_size(ctx.connection.amqp.limits.max_message_size)
            .add_offered_capabilities(consumer::RUNTIME_METRIC)
            .build()
    } else {
        plain
    };
    let Some(LinkEndpoint::Sender(sender)) = link::accept(attach, session, &acceptor).await else {
        return;
    };
    let link = ConsumerLink {
        hub: admitted.hub,
        consumer: admitted.consumer,
        consumer_group,
        partition,
        resource: admitted.resource,
        runtime_metric: admitted.runtime_metric,
    };
    tokio::spawn(consumer::serve(sender, link, ctx.clone(), slot));
}

/// The partition a consumer link names.
#[derive(Clone, Copy)]
struct PartitionRef<'a> {
    entity: &'a str,
    consumer_group: &'a str,
    partition: &'a str,
}

/// What a consumer link that passed every check reads from.
struct AdmittedConsumer {
    hub: Arc<Hub>,
    consumer: Consumer,
    resource: String,
    runtime_metric: bool,
}

/// The checks on a consumer `attach`, in this order: a receiver link, an
/// Event Hub that exists, a token that covers the partition, a readable position filter and
/// epoch, a consumer the partition admits. The error is what the link is refused with.
fn admit_consumer(
    attach: &Attach,
    address: &Address,
    at: PartitionRef<'_>,
    ctx: &SessionContext,
) -> Result<AdmittedConsumer, Error> {
    let refuse = |symbol: &str, text: String| conditions::error(symbol, text);
    if attach.role != Role::Receiver {
        return Err(refuse(
            NOT_ALLOWED,
            format!("'{}' only takes a receiver link", address.path),
        ));
    }
    let Some(hub) = hub_for(ctx, address, at.entity) else {
        return Err(refuse(
            NOT_FOUND,
            format!("The messaging entity '{}' could not be found.", at.entity),
        ));
    };
    let endpoint = hub.event_hubs();
    let resource = format!(
        "{}/{}/consumergroups/{}/partitions/{}",
        hub.host_name(),
        endpoint.path(),
        at.consumer_group,
        at.partition
    )
    .to_ascii_lowercase();
    authorise(ctx, &hub, &resource, ctx.connection.auth.now())
        .map_err(|reason| refuse(UNAUTHORIZED, reason))?;
    let position = match consumer::selector(attach.source.as_deref()) {
        Ok(None) => Ok(EventPosition::Start),
        Ok(Some(text)) => EventPosition::parse(&text).map_err(|e| e.to_string()),
        Err(reason) => Err(reason.to_owned()),
    }
    .map_err(|reason| refuse(ARGUMENT_ERROR, reason))?;
    let epoch =
        consumer::epoch(attach).map_err(|reason| refuse(ARGUMENT_ERROR, reason.to_owned()))?;
    let consumer = endpoint
        .open_consumer(at.consumer_group, at.partition, epoch, position)
        .map_err(|e| {
            refuse(
                e.condition(),
                e.description(endpoint.path(), at.consumer_group, at.partition),
            )
        })?;
    Ok(AdmittedConsumer {
        runtime_metric: consumer::wants_runtime_metric(attach),
        hub,
        consumer,
        resource,
    })
}
