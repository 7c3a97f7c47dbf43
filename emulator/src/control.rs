//! The control port: plain HTTP on loopback for people and non-Rust tests.
//!
//! | route | answer |
//! |---|---|
//! | `GET /health` | 503 `{"status":"starting"}` until every listener is up, then 200 `{"status":"healthy", …}` |
//! | `GET /ca.pem` | the emulator CA certificate |
//! | `GET /telemetry?deviceId=&hub=` | stored telemetry, oldest first |
//! | `GET /telemetry/stream?deviceId=&hub=&replay=true` | server-sent events, one per message |
//! | `GET /registrations[/{id}]` | DPS registration records |
//! | `GET /devices[/{id}]?hub=` | hub device identities |
//! | `GET /eventhubs?hub=` | each hub's Event Hubs-compatible endpoint: name, connection string, partitions |
//! | `GET /enrollments`, `GET /enrollmentGroups` | DPS enrollments (keys included) |
//! | `POST /c2d?deviceId=…` | queue a cloud-to-device message (body = message) |
//! | `POST /input?deviceId=…&moduleId=…&input=…` | send a message to a module's input |
//!
//! The control port is bound before anything else, so a supervisor polling `/health` sees
//! "starting" (503) instead of a refused connection; every route answers 503 until
//! [`Readiness::set_ready`] is called, after the MQTT and HTTPS listeners are bound.
//!
//! Like every listener it has its own connection limit (`net.rs`); a request head must
//! arrive within 30 s of the connection becoming idle, a body within 30 s. On shutdown the request in flight
//! finishes and telemetry streams end.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use std::collections::HashMap;

use futures_util::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::emulator::EmulatorState;
use crate::hub::Hub;
use crate::hub::c2d::C2dMessage;
use crate::hub::error::HubError;
use crate::net::{ConnectionLimit, spawn_accept_loop};
use crate::query;
use crate::shutdown::ShutdownSignal;
use crate::timefmt::utc_timestamp;

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// Whether the emulator has finished starting: empty until every listener is bound, then the
/// state the routes read. Set once; clones share it.
#[derive(Clone, Default)]
pub(crate) struct Readiness(Arc<OnceLock<Arc<EmulatorState>>>);

impl Readiness {
    /// Marks the emulator ready; from now on `/health` answers 200.
    pub(crate) fn set_ready(&self, state: Arc<EmulatorState>) {
        let _ = self.0.set(state);
    }

    fn state(&self) -> Option<&Arc<EmulatorState>> {
        self.0.get()
    }
}

/// How long the control port waits for a request head, counted from when the connection
/// became idle (it bounds slow heads and idle keep-alive connections alike), and for a body.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) fn spawn(
    listener: TcpListener,
    readiness: Readiness,
    limit: ConnectionLimit,
    shutdown: ShutdownSignal,
) -> JoinHandle<()> {
    let signal = shutdown.clone();
    spawn_accept_loop(
        listener,
        "control",
        limit,
        shutdown,
        move |tcp, remote, _slot| serve_connection(tcp, remote, readiness.clone(), signal.clone()),
    )
}

/// One control connection, until the client closes, the header timeout, or shutdown (which
/// lets the request in flight finish and ends telemetry streams).
async fn serve_connection(
    tcp: TcpStream,
    remote: SocketAddr,
    readiness: Readiness,
    mut shutdown: ShutdownSignal,
) {
    let signal = shutdown.clone();
    let service = service_fn(move |req| {
        let readiness = readiness.clone();
        let signal = signal.clone();
        async move {
            let reply = match readiness.state() {
                None => starting(&req),
                Some(state) if req.method() == Method::POST => post(state, req).await,
                Some(state) => route(state, req, signal),
            };
            Ok::<_, Infallible>(reply)
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "control connection ended with an error");
            }
            return;
        }
        _ = shutdown.recv() => connection.as_mut().graceful_shutdown(),
    }
    let _ = connection.await;
}

/// 503 while starting: `/health` says `starting`, other routes that nothing is served yet.
fn starting(req: &Request<Incoming>) -> Reply {
    let body = if req.uri().path().trim_matches('/') == "health" {
        json!({ "status": "starting" })
    } else {
        json!({ "message": "iotemu is starting; retry when GET /health answers 200" })
    };
    json_reply(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// `POST /c2d?deviceId=…[&hub=…][&messageId=…][&correlationId=…][&contentType=…]
/// [&contentEncoding=…][&ack=…][&expirySeconds=…][&prop.<name>=<value>…]` with the body as the
/// message: queues a cloud-to-device message (the service SDKs send C2D over AMQP, which
/// iotemu does not serve yet). 201 `{"messageId"}`, or the hub's error.
async fn post(state: &EmulatorState, req: Request<Incoming>) -> Reply {
    use http_body_util::{BodyExt, Limited};
    let path = req.uri().path().trim_matches('/').to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    if path != "c2d" && path != "input" {
        return json_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"message": "POST is only for /c2d and /input"}),
        );
    }
    let Some(device_id) = query::value(&query, "deviceId") else {
        return json_reply(
            StatusCode::BAD_REQUEST,
            json!({"message": "deviceId is required"}),
        );
    };
    let hubs = match hub_for(state, &query) {
        Ok(hubs) => hubs,
        Err(message) => return not_found(&message),
    };
    let Some(hub) = hubs.into_iter().find(|h| h.device(&device_id).is_some()) else {
        return not_found(&format!("no device '{device_id}'"));
    };
    let read = tokio::time::timeout(
        HEADER_TIMEOUT,
        Limited::new(req.into_body(), 128 * 1024).collect(),
    );
    let body = match read.await {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(e)) => {
            return json_reply(StatusCode::BAD_REQUEST, json!({"message": e.to_string()}));
        }
        Err(_) => {
            return json_reply(
                StatusCode::REQUEST_TIMEOUT,
                json!({"message": "the body did not arrive within 30 s"}),
            );
        }
    };
    let message = message_from_query(&query, body);
    let sent = if path == "c2d" {
        // 201 only once the message is durable; a store failure is a 500.
        match hub.send_c2d(&device_id, message) {
            Ok(pending) => pending.durable().await.map_err(HubError::from),
            Err(e) => Err(e),
        }
    } else {
        let (Some(module_id), Some(input)) = (
            query::value(&query, "moduleId"),
            query::value(&query, "input"),
        ) else {
            return json_reply(
                StatusCode::BAD_REQUEST,
                json!({"message": "moduleId and input are required"}),
            );
        };
        hub.send_module_input(&device_id, &module_id, &input, message)
            .await
    };
    match sent {
        Ok(message_id) => json_reply(StatusCode::CREATED, json!({ "messageId": message_id })),
        Err(e) => json_reply(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            json!({ "errorCode": e.code, "message": e.message }),
        ),
    }
}

/// A message whose system properties come from the query (`messageId`, `correlationId`,
/// `contentType`, `contentEncoding`, `ack`, `expirySeconds`) and application properties from
/// `prop.{name}` parameters.
fn message_from_query(query: &str, body: Bytes) -> C2dMessage {
    let mut message = C2dMessage::new(body);
    message.message_id = query::value(query, "messageId");
    message.correlation_id = query::value(query, "correlationId");
    message.content_type = query::value(query, "contentType");
    message.content_encoding = query::value(query, "contentEncoding");
    message.ack = query::value(query, "ack");
    message.expiry = query::value(query, "expirySeconds")
        .and_then(|s| s.parse::<u64>().ok())
        // An expiry the clock cannot represent is as good as none.
        .and_then(|s| std::time::SystemTime::now().checked_add(std::time::Duration::from_secs(s)));
    for (key, value) in query::pairs(query).unwrap_or_default() {
        if let Some(name) = key.strip_prefix("prop.") {
            message
                .properties
                .insert(name.to_owned(), value.unwrap_or_default());
        }
    }
    message
}

fn route(state: &EmulatorState, req: Request<Incoming>, shutdown: ShutdownSignal) -> Reply {
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
                "amqp": state.amqp_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                "idScope": state.dps.id_scope(),
            }),
        ),
        ["eventhubs"] => match hub_for(state, query) {
            Ok(hubs) => json_reply(
                StatusCode::OK,
                Value::Array(
                    hubs.iter()
                        .map(|h| event_hubs_json(h, amqp_port(state)))
                        .collect(),
                ),
            ),
            Err(message) => not_found(&message),
        },
        ["ca.pem"] => Response::builder()
            .header(CONTENT_TYPE, "application/x-pem-file")
            .body(Full::new(Bytes::from(state.tls.ca_pem().to_owned())).boxed())
            .unwrap_or_default(),
        ["telemetry", "stream"] => match hub_for(state, query) {
            Ok(hubs) => telemetry_stream(&hubs, query, shutdown),
            Err(message) => not_found(&message),
        },
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
            "unknown route; see /health, /ca.pem, /telemetry, /eventhubs, /registrations, /devices, /enrollments",
        ),
    }
}

/// `GET /telemetry/stream?deviceId=&hub=&replay=true`: server-sent events, one `data:` line
/// of message JSON per telemetry message, live; `replay=true` first sends what is retained.
/// Subscribing happens before the log is read, so nothing falls between the two.
fn telemetry_stream(hubs: &[&Arc<Hub>], query: &str, mut shutdown: ShutdownSignal) -> Reply {
    let device = query::value(query, "deviceId");
    let replay = query::value(query, "replay").is_some_and(|v| v == "true" || v == "1");
    let live: Vec<_> = hubs.iter().map(|h| h.telemetry().stream()).collect();
    let mut sent: HashMap<String, u64> = HashMap::new();
    let mut backlog = Vec::new();
    if replay {
        for hub in hubs {
            for message in hub.telemetry().messages(device.as_deref()) {
                sent.insert(message.hub.clone(), message.sequence_number);
                backlog.push(message);
            }
        }
    }
    let wanted = device.clone();
    let live = futures_util::stream::select_all(live.into_iter().map(Box::pin)).filter(move |m| {
        let fresh = sent
            .get(&m.hub)
            .is_none_or(|seen| m.sequence_number > *seen);
        let ours = wanted.as_deref().is_none_or(|d| m.device_id == d);
        std::future::ready(fresh && ours)
    });
    // Ends with the emulator, so a subscriber does not hold the shutdown up.
    let live = live.take_until(async move { shutdown.recv().await });
    let events = futures_util::stream::iter(backlog).chain(live).map(|m| {
        Ok::<_, Infallible>(Frame::data(Bytes::from(format!(
            "data: {}\n\n",
            m.to_json()
        ))))
    });
    // A comment first, so clients see the response headers at once.
    let hello = futures_util::stream::once(std::future::ready(Ok::<_, Infallible>(Frame::data(
        Bytes::from_static(b": iotemu telemetry stream\n\n"),
    ))));
    Response::builder()
        .header(CONTENT_TYPE, "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(hello.chain(events))))
        .unwrap_or_default()
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
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap_or_default()
}
