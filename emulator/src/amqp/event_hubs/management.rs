//! The Event Hubs `$management` node (spec/amqp.md §4.3): `READ` of
//! `com.microsoft:eventhub` (name, creation time, partition ids) and
//! `com.microsoft:partition` (the partition's sequence numbers, last offset and time), each
//! answered with an AmqpValue map whose keys and AMQP types are the ones the clients decode.
//!
//! Authorisation: a CBS token on the connection whose audience covers
//! `{host}/{entity}/$management` (Python puts `sb://{host}/{entity}`, Node
//! `…/{entity}/$management`), or a valid `security_token` application property for
//! `{host}/{entity}`; the policy must grant `ServiceConnect`. Otherwise 401.

use std::sync::Arc;
use std::time::SystemTime;

use fe2o3_amqp::types::primitives::{OrderedMap, Value};

use super::authorise;
use crate::amqp::message::timestamp;
use crate::amqp::request_response::{BoxFuture, Request, RequestHandler, Response};
use crate::amqp::session::SessionContext;
use crate::auth::authenticate_service_token;
use crate::hub::Hub;
use crate::hub::event_hubs::{EventHubs, READ_RIGHT};

pub(crate) const EVENT_HUB_TYPE: &str = "com.microsoft:eventhub";
pub(crate) const PARTITION_TYPE: &str = "com.microsoft:partition";

/// The `$management` node.
pub(crate) struct Management;

impl RequestHandler for Management {
    fn handle<'a>(
        &'a self,
        request: Request,
        session: &'a Arc<SessionContext>,
    ) -> BoxFuture<'a, Response> {
        Box::pin(async move { read(&request, session, SystemTime::now()) })
    }
}

fn read(request: &Request, session: &SessionContext, now: SystemTime) -> Response {
    let operation = request.operation().unwrap_or_default();
    if !operation.eq_ignore_ascii_case("READ") {
        return Response::status(
            400,
            format!("unsupported $management operation '{operation}'; only READ is served"),
        );
    }
    let kind = request.property("type").unwrap_or_default();
    let Some(entity) = request.property("name") else {
        return Response::status(400, "the request names no entity ('name')");
    };
    let hubs = &session.connection.amqp.hubs;
    let hint = session.connection.auth.peer().server_name.clone();
    let Some(hub) = hubs.by_event_hub(&entity, hint.as_deref()) else {
        return Response::status(
            404,
            format!("The messaging entity '{entity}' could not be found."),
        );
    };
    if let Err(reason) = allowed(request, session, hub, now) {
        tracing::info!(%entity, %reason, "Event Hubs $management request refused");
        return Response::status(401, format!("Unauthorized: {reason}"));
    }
    let endpoint = hub.event_hubs();
    if kind.eq_ignore_ascii_case(EVENT_HUB_TYPE) {
        return event_hub_properties(endpoint);
    }
    if kind.eq_ignore_ascii_case(PARTITION_TYPE) {
        let partition = request.property("partition").unwrap_or_default();
        return partition_properties(endpoint, &entity, &partition);
    }
    Response::status(
        400,
        format!("unsupported type '{kind}'; use {EVENT_HUB_TYPE} or {PARTITION_TYPE}"),
    )
}

/// READ of `com.microsoft:eventhub`: name, creation time and partition ids.
fn event_hub_properties(endpoint: &EventHubs) -> Response {
    let properties = endpoint.properties();
    let ids = properties
        .partition_ids
        .into_iter()
        .map(Value::String)
        .collect::<Vec<_>>();
    Response::ok_value(map([
        ("name", Value::String(properties.name)),
        ("type", Value::String(EVENT_HUB_TYPE.into())),
        (
            "created_at",
            Value::Timestamp(timestamp(properties.created_at)),
        ),
        (
            "partition_count",
            Value::Int(ids.len().try_into().unwrap_or(i32::MAX)),
        ),
        ("partition_ids", Value::Array(ids.into())),
    ]))
}

/// READ of `com.microsoft:partition`: the partition's sequence numbers, offset and time.
fn partition_properties(endpoint: &EventHubs, entity: &str, partition: &str) -> Response {
    let Some(props) = endpoint.partition_properties(partition) else {
        return Response::status(
            404,
            format!("The partition '{partition}' does not exist in '{entity}'."),
        );
    };
    Response::ok_value(map([
        ("name", Value::String(endpoint.path().to_owned())),
        ("type", Value::String(PARTITION_TYPE.into())),
        ("partition", Value::String(props.id)),
        (
            "begin_sequence_number",
            Value::Long(props.begin_sequence_number),
        ),
        (
            "last_enqueued_sequence_number",
            Value::Long(props.last_enqueued_sequence_number),
        ),
        (
            "last_enqueued_offset",
            Value::String(props.last_enqueued_offset),
        ),
        (
            "last_enqueued_time_utc",
            Value::Timestamp(timestamp(props.last_enqueued_time)),
        ),
        ("is_partition_empty", Value::Bool(props.is_empty)),
    ]))
}

/// A CBS grant on the connection, or the request's own `security_token`.
fn allowed(
    request: &Request,
    session: &SessionContext,
    hub: &Hub,
    now: SystemTime,
) -> Result<(), String> {
    let entity = hub.event_hubs().path().to_ascii_lowercase();
    let host = hub.host_name();
    // The connection's grants are kept in the credential clock's frame; a token in the request
    // is validated by the wall clock, as every presented credential is (`crate::clock`).
    let by_connection = authorise(
        session,
        hub,
        &format!("{host}/{entity}/$management"),
        session.connection.auth.now(),
    );
    let Err(connection_refusal) = by_connection else {
        return Ok(());
    };
    let Some(token) = request.property("security_token") else {
        return Err(connection_refusal);
    };
    let grant =
        authenticate_service_token(hub.policies(), host, &token, now).map_err(|e| e.to_string())?;
    if !grant.covers(&format!("{host}/{entity}")) {
        return Err(format!(
            "the security_token does not cover '{host}/{entity}'"
        ));
    }
    if !grant.grants(READ_RIGHT) {
        return Err(format!(
            "policy '{}' does not grant {READ_RIGHT}",
            grant.policy()
        ));
    }
    Ok(())
}

/// An AmqpValue map with string keys.
fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    let mut map = OrderedMap::new();
    for (key, value) in entries {
        map.insert(Value::String(key.to_owned()), value);
    }
    Value::Map(map)
}
