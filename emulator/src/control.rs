//! The control port: plain HTTP on loopback for people and non-Rust tests.
//!
//! | route | answer |
//! |---|---|
//! | `GET /health` | 200 `{"status":"healthy", …}` once every listener is up |
//! | `GET /ca.pem` | the emulator CA certificate |
//! | `GET /telemetry?deviceId=&hub=` | stored telemetry, oldest first |
//! | `GET /registrations[/{id}]` | DPS registration records |
//! | `GET /devices[/{id}]?hub=` | hub device identities |
//! | `GET /enrollments`, `GET /enrollmentGroups` | DPS enrollments (keys included) |

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::emulator::EmulatorState;
use crate::hub::Hub;
use crate::net::spawn_accept_loop;
use crate::query;

type Reply = Response<Full<Bytes>>;

pub(crate) fn spawn(
    listener: TcpListener,
    state: Arc<EmulatorState>,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    spawn_accept_loop(listener, shutdown, move |tcp, _remote| {
        let state = state.clone();
        async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(&state, req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        }
    })
}

fn route(state: &EmulatorState, req: Request<Incoming>) -> Reply {
    if req.method() != Method::GET {
        return json_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "only GET is supported"}),
        );
    }
    let query = req.uri().query().unwrap_or("");
    let path: Vec<&str> = req.uri().path().trim_matches('/').split('/').collect();
    match path.as_slice() {
        ["health"] => json_reply(
            StatusCode::OK,
            json!({
                "status": "healthy",
                "mqtt": state.mqtt_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "idScope": state.dps.id_scope(),
            }),
        ),
        ["ca.pem"] => Response::builder()
            .header(CONTENT_TYPE, "application/x-pem-file")
            .body(Full::new(Bytes::from(state.tls.ca_pem().to_owned())))
            .unwrap_or_default(),
        ["telemetry"] => match hub_for(state, query) {
            Ok(hubs) => {
                let device = query::value(query, "deviceId");
                let messages: Vec<Value> = hubs
                    .iter()
                    .flat_map(|h| h.telemetry().messages(device.as_deref()))
                    .map(|m| m.to_json())
                    .collect();
                json_reply(StatusCode::OK, Value::Array(messages))
            }
            Err(message) => not_found(&message),
        },
        ["registrations"] => json_reply(StatusCode::OK, json!(state.dps.registrations())),
        ["registrations", id] => match state.dps.registration(id) {
            Some(record) => json_reply(StatusCode::OK, json!(record)),
            None => not_found(&format!("no registration record for '{id}'")),
        },
        ["enrollments"] => json_reply(StatusCode::OK, json!(state.dps.enrollments())),
        ["enrollmentGroups"] => json_reply(StatusCode::OK, json!(state.dps.enrollment_groups())),
        ["devices"] => match hub_for(state, query) {
            Ok(hubs) => json_reply(
                StatusCode::OK,
                Value::Array(hubs.iter().flat_map(|h| device_list(h)).collect()),
            ),
            Err(message) => not_found(&message),
        },
        ["devices", id] => match hub_for(state, query) {
            Ok(hubs) => hubs
                .iter()
                .find_map(|h| {
                    h.device(id)
                        .map(|d| d.to_json(h.connections().is_connected(id)))
                })
                .map(|d| json_reply(StatusCode::OK, d))
                .unwrap_or_else(|| not_found(&format!("no device '{id}'"))),
            Err(message) => not_found(&message),
        },
        _ => not_found(
            "unknown route; see /health, /ca.pem, /telemetry, /registrations, /devices, /enrollments",
        ),
    }
}

fn device_list(hub: &Hub) -> Vec<Value> {
    hub.devices()
        .iter()
        .map(|d| d.to_json(hub.connections().is_connected(&d.device_id)))
        .collect()
}

/// The hub named by `?hub=`, or every hub.
fn hub_for<'s>(state: &'s EmulatorState, query: &str) -> Result<Vec<&'s Arc<Hub>>, String> {
    match query::value(query, "hub") {
        Some(name) => state
            .hubs
            .get(&name)
            .map(|h| vec![h])
            .ok_or_else(|| format!("no hub '{name}'")),
        None => Ok(state.hubs.all().iter().collect()),
    }
}

fn not_found(message: &str) -> Reply {
    json_reply(StatusCode::NOT_FOUND, json!({ "message": message }))
}

fn json_reply(status: StatusCode, body: Value) -> Reply {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}
