//! The control port's `GET` routes: health, the CA certificate, retained telemetry, DPS
//! registrations and enrollments, hub devices, the Event Hubs-compatible endpoints.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::reply::{Reply, hub_for, json_reply, not_found};
use super::state::EmulatorState;
use super::stream::telemetry_stream;
use crate::hub::Hub;
use crate::query;
use crate::shutdown::ShutdownSignal;
use crate::timefmt::utc_timestamp;

pub(super) fn route(
    state: &EmulatorState,
    req: Request<Incoming>,
    shutdown: ShutdownSignal,
) -> Reply {
    if req.method() != Method::GET {
        return json_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "only GET is supported"}),
        );
    }
    let query = req.uri().query().unwrap_or("");
    let path: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    match path.as_slice() {
        ["health"] => health(state),
        ["eventhubs"] => for_hubs(state, query, |hubs| {
            let endpoints = hubs
                .iter()
                .map(|h| event_hubs_json(h, amqp_port(state)))
                .collect();
            json_reply(StatusCode::OK, Value::Array(endpoints))
        }),
        ["ca.pem"] => Response::builder()
            .header(CONTENT_TYPE, "application/x-pem-file")
            .body(Full::new(Bytes::from(state.tls.ca_pem().to_owned())).boxed())
            .unwrap_or_default(),
        ["telemetry", "stream"] => {
            for_hubs(state, query, |hubs| telemetry_stream(hubs, query, shutdown))
        }
        ["telemetry"] => for_hubs(state, query, |hubs| telemetry(hubs, query)),
        ["registrations"] => json_reply(StatusCode::OK, json!(state.dps.registrations())),
        ["registrations", id] => match state.dps.registration(id) {
            Some(record) => json_reply(StatusCode::OK, json!(record)),
            None => not_found(&format!("no registration record for '{id}'")),
        },
        ["enrollments"] => json_reply(StatusCode::OK, json!(state.dps.enrollments())),
        ["enrollmentGroups"] => json_reply(StatusCode::OK, json!(state.dps.enrollment_groups())),
        ["devices"] => for_hubs(state, query, |hubs| {
            let devices = hubs.iter().flat_map(|h| device_list(h)).collect();
            json_reply(StatusCode::OK, Value::Array(devices))
        }),
        ["devices", id] => for_hubs(state, query, |hubs| device(hubs, id)),
        _ => not_found(
            "unknown route; see /health, /ca.pem, /telemetry, /eventhubs, /registrations, /devices, /enrollments",
        ),
    }
}

/// `reply` for the hubs `?hub=` picks, or 404 when it names none.
fn for_hubs(
    state: &EmulatorState,
    query: &str,
    reply: impl FnOnce(&[&Arc<Hub>]) -> Reply,
) -> Reply {
    match hub_for(state, query) {
        Ok(hubs) => reply(&hubs),
        Err(message) => not_found(&message),
    }
}

/// `GET /health` once started: where MQTT and AMQP listen, and the ID scope.
fn health(state: &EmulatorState) -> Reply {
    json_reply(
        StatusCode::OK,
        json!({
            "status": "healthy",
            "mqtt": state.mqtt_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "amqp": state.amqp_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "idScope": state.dps.id_scope(),
        }),
    )
}

/// `GET /telemetry?deviceId=`: the retained telemetry, oldest first.
fn telemetry(hubs: &[&Arc<Hub>], query: &str) -> Reply {
    let device = query::value(query, "deviceId");
    let messages: Vec<Value> = hubs
        .iter()
        .flat_map(|h| h.telemetry().messages(device.as_deref()))
        .map(|m| m.to_json())
        .collect();
    json_reply(StatusCode::OK, Value::Array(messages))
}

/// `GET /devices/{id}`: the first hub that has the device.
fn device(hubs: &[&Arc<Hub>], id: &str) -> Reply {
    hubs.iter()
        .find_map(|h| {
            h.device(id)
                .map(|d| d.to_json(h.connections().is_connected(id)))
        })
        .map(|d| json_reply(StatusCode::OK, d))
        .unwrap_or_else(|| not_found(&format!("no device '{id}'")))
}

/// The AMQP port the Event Hubs connection strings name.
fn amqp_port(state: &EmulatorState) -> Option<u16> {
    state.amqp_addrs.first().map(|a| a.port())
}

/// A hub's built-in endpoint as `GET /eventhubs` shows it.
fn event_hubs_json(hub: &Hub, amqp_port: Option<u16>) -> Value {
    let endpoint = hub.event_hubs();
    let partitions: Vec<Value> = endpoint
        .partitions()
        .iter()
        .map(|p| {
            let props = p.properties();
            json!({
                "partitionId": props.id,
                "beginSequenceNumber": props.begin_sequence_number,
                "lastEnqueuedSequenceNumber": props.last_enqueued_sequence_number,
                "lastEnqueuedOffset": props.last_enqueued_offset,
                "lastEnqueuedTimeUtc": utc_timestamp(props.last_enqueued_time),
                "isEmpty": props.is_empty,
            })
        })
        .collect();
    json!({
        "hub": hub.host_name(),
        "hubName": hub.name(),
        "entityPath": endpoint.path(),
        "connectionString": hub.event_hubs_connection_string(amqp_port),
        "consumerGroups": endpoint.consumer_groups(),
        "routes": endpoint.routes().sources(),
        "partitions": partitions,
    })
}

fn device_list(hub: &Hub) -> Vec<Value> {
    hub.devices()
        .iter()
        .map(|d| d.to_json(hub.connections().is_connected(&d.device_id)))
        .collect()
}
