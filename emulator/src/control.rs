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
//! | `GET,POST /faults`, `GET,DELETE /faults/{id}` | injected DPS faults (`faults.rs`, docs/faults.md) |
//! | `GET /time`, `POST /time/advance` | the emulator's clock, moved ahead by a test (`time.rs`, docs/faults.md) |
//! | `GET /`, `/portal.js`, `/portal.css` | the local portal (`portal.rs`) |
//! | `/api/…` | the portal's JSON API over the DPS and hub domain operations (`api.rs`) |
//!
//! On loopback without `--control-token` every route is open to local callers; bound beyond
//! loopback (or given a token) every route but `GET /health` and `GET /ca.pem` needs the
//! token (`access.rs`).
//!
//! The control port is bound before anything else, so a supervisor polling `/health` sees
//! "starting" (503) instead of a refused connection; every route answers 503 until
//! [`Readiness::set_ready`] is called, after the MQTT and HTTPS listeners are bound.
//!
//! Like every listener it has its own connection limit (`net.rs`); a request head must
//! arrive within 30 s of the connection becoming idle, a body within 30 s. On shutdown the request in flight
//! finishes and telemetry streams end.
//!
//! This file is the listener and the readiness gate; the routes are `inspect.rs` (the `GET`
//! routes), `stream.rs` (`/telemetry/stream`), `send.rs` (`POST /c2d`, `POST /input`) and
//! `reply.rs` (JSON replies, `?hub=`).

mod access;
mod api;
mod api_certificates;
mod api_dps;
mod api_hub;
mod blobs;
mod faults;
mod inspect;
mod paging;
mod portal;
mod reply;
mod send;
mod state;
mod stream;
mod time;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::net::{ConnectionLimit, spawn_accept_loop};
use crate::shutdown::ShutdownSignal;
pub(crate) use access::ControlAccess;
use reply::{Reply, json_reply};
pub(crate) use state::EmulatorState;

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
    access: ControlAccess,
    limit: ConnectionLimit,
    shutdown: ShutdownSignal,
) -> JoinHandle<()> {
    let signal = shutdown.clone();
    let access = Arc::new(access);
    spawn_accept_loop(
        listener,
        "control",
        limit,
        shutdown,
        move |tcp, remote, _slot| {
            serve_connection(
                tcp,
                remote,
                readiness.clone(),
                access.clone(),
                signal.clone(),
            )
        },
    )
}

/// One control connection, until the client closes, the header timeout, or shutdown (which
/// lets the request in flight finish and ends telemetry streams).
async fn serve_connection(
    tcp: TcpStream,
    remote: SocketAddr,
    readiness: Readiness,
    access: Arc<ControlAccess>,
    mut shutdown: ShutdownSignal,
) {
    let signal = shutdown.clone();
    let service = service_fn(move |req| {
        let readiness = readiness.clone();
        let access = access.clone();
        let signal = signal.clone();
        async move { Ok::<_, Infallible>(serve(req, &readiness, &access, signal).await) }
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

/// One request: the access rule first, then the portal, its API or the test routes.
async fn serve(
    req: Request<Incoming>,
    readiness: &Readiness,
    access: &ControlAccess,
    signal: ShutdownSignal,
) -> Reply {
    let path = req.uri().path().trim_matches('/').to_owned();
    let query = req.uri().query().unwrap_or("");
    if !access.admits(req.method(), &path, query, req.headers()) {
        return json_reply(
            StatusCode::UNAUTHORIZED,
            json!({"message": "this control port needs its token: open the portal link iotemu printed at start, or send Authorization: Bearer <token>"}),
        );
    }
    if req.method() == Method::GET
        && let Some(asset) = portal::asset(&path, query)
    {
        return asset;
    }
    match readiness.state() {
        None => starting(&req),
        Some(state) if path == "api" || path.starts_with("api/") => api::route(state, req).await,
        Some(state) if path == "faults" || path.starts_with("faults/") => {
            faults::route(state, req).await
        }
        Some(state) if path == "time" || path.starts_with("time/") => time::route(state, req).await,
        Some(state) if path == "blobs" || path.starts_with("blobs/") => {
            blobs::route(state.hubs.storage(), req.method(), &path)
        }
        Some(state) if req.method() == Method::POST => send::post(state, req).await,
        Some(state) => inspect::route(state, req, signal),
    }
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
