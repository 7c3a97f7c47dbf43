//! Custom allocation (concepts-custom-allocation.md, protocol.md §8): DPS POSTs the
//! enrollment (keys removed), the device's runtime context and the eligible hubs to the
//! enrollment's webhook, and assigns the hub it answers, with its initial twin and payload.
//!
//! The call runs in its own task, started by `register`; polls answer `assigning` until the
//! decision is in. Outcomes follow the documented table: 200 with a hub → assigned; 200
//! without one → 400208; 401 → 400209; 429 and 5xx are retried a few times, then, like any
//! other status or a network failure, → 400207.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// What the webhook decided.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookDecision {
    pub hub: String,
    pub initial_twin: Option<Value>,
    pub payload: Option<Value>,
}

/// A failed allocation: `registrationState.errorCode` and message.
pub type WebhookFailure = (u32, String);

/// Where the task leaves its result for the operation to pick up.
pub type DecisionSlot = Arc<Mutex<Option<Result<WebhookDecision, WebhookFailure>>>>;

pub const FAILED: u32 = 400207;
pub const NO_HUB: u32 = 400208;
pub const UNAUTHORIZED: u32 = 400209;

/// Attempts for a webhook that answers 429 or 5xx (DPS retries 10 times over minutes; an
/// emulator keeps tests fast).
const ATTEMPTS: u32 = 3;
const RETRY_DELAY: Duration = Duration::from_millis(300);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The `AllocationRequest` body.
pub fn request_body(
    enrollment_field: &str,
    enrollment: Value,
    runtime_context: Value,
    linked_hubs: &[String],
) -> Value {
    json!({
        enrollment_field: enrollment,
        "deviceRuntimeContext": runtime_context,
        "linkedHubs": linked_hubs,
    })
}

/// Starts the webhook call; the slot fills when it is decided. Without a tokio runtime
/// (a plain unit test) the allocation fails at once.
pub fn start(url: String, body: Value) -> DecisionSlot {
    let slot: DecisionSlot = Arc::new(Mutex::new(None));
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            let task_slot = slot.clone();
            runtime.spawn(async move {
                let outcome = decide(&url, &body).await;
                if let Ok(mut decided) = task_slot.lock() {
                    *decided = Some(outcome);
                }
            });
        }
        Err(_) => {
            if let Ok(mut decided) = slot.lock() {
                *decided = Some(Err((
                    FAILED,
                    "Custom allocation needs a running emulator.".into(),
                )));
            }
        }
    }
    slot
}

async fn decide(url: &str, body: &Value) -> Result<WebhookDecision, WebhookFailure> {
    let payload = Bytes::from(body.to_string());
    let mut last_status = 0;
    for attempt in 1..=ATTEMPTS {
        let (status, response) =
            match tokio::time::timeout(REQUEST_TIMEOUT, post_json(url, payload.clone())).await {
                Ok(Ok(answer)) => answer,
                Ok(Err(reason)) => {
                    tracing::warn!(%url, %reason, "custom allocation webhook unreachable");
                    return Err((FAILED, format!("Custom allocation failed: {reason}")));
                }
                Err(_) => {
                    return Err((
                        FAILED,
                        "Custom allocation failed: the webhook timed out".into(),
                    ));
                }
            };
        tracing::info!(%url, status, attempt, "custom allocation webhook answered");
        match status {
            200 => return parse_decision(&response),
            401 => {
                return Err((
                    UNAUTHORIZED,
                    "Custom allocation failed: the webhook answered 401".into(),
                ));
            }
            s if s == 429 || s >= 500 => {
                last_status = s;
                if attempt < ATTEMPTS {
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
            s => {
                return Err((
                    FAILED,
                    format!("Custom allocation failed with status code: {s}"),
                ));
            }
        }
    }
    Err((
        FAILED,
        format!("Custom allocation failed with status code: {last_status}"),
    ))
}

/// `AllocationResponse`: `iotHubHostName` (any case, as the docs spell it both ways),
/// optional `initialTwin` and `payload`.
fn parse_decision(body: &[u8]) -> Result<WebhookDecision, WebhookFailure> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        (
            FAILED,
            format!("Custom allocation failed: the webhook's answer is not JSON ({e})"),
        )
    })?;
    let field = |name: &str| {
        value.as_object().and_then(|o| {
            o.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        })
    };
    let hub = field("iotHubHostName")
        .and_then(|h| h.as_str().map(str::to_owned))
        .filter(|h| !h.is_empty())
        .ok_or_else(|| {
            (
                NO_HUB,
                "Custom allocation failed: the webhook named no IoT hub".into(),
            )
        })?;
    Ok(WebhookDecision {
        hub,
        initial_twin: field("initialTwin").filter(|t| !t.is_null()),
        payload: field("payload").filter(|p| !p.is_null()),
    })
}

/// One HTTP/1.1 POST over TCP or TLS (system roots), returning status and body.
async fn post_json(url: &str, body: Bytes) -> Result<(u16, Bytes), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("invalid webhook URL: {e}"))?;
    let host = uri.host().ok_or("webhook URL has no host")?.to_owned();
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("webhook URL must be http:// or https://".into()),
    };
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let tcp = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let request = Request::post(path)
        .header(hyper::header::HOST, authority(&host, port, https))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    if https {
        let tls = tls_connect(&host, tcp).await?;
        send(TokioIo::new(tls), request).await
    } else {
        send(TokioIo::new(tcp), request).await
    }
}

async fn send<S>(io: S, request: Request<Full<Bytes>>) -> Result<(u16, Bytes), String>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

async fn tls_connect(
    host: &str,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name =
        rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| e.to_string())?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS to the webhook failed: {e}"))
}

fn authority(host: &str, port: u16, https: bool) -> String {
    match (https, port) {
        (true, 443) | (false, 80) => host.to_owned(),
        _ => format!("{host}:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_documented_table() {
        let ok = parse_decision(br#"{"iotHubHostName":"hub-a","payload":{"x":1}}"#).unwrap();
        assert_eq!(ok.hub, "hub-a");
        assert_eq!(ok.payload, Some(json!({"x":1})));
        // The table's spelling works too.
        assert_eq!(
            parse_decision(br#"{"iotHubHostname":"hub-b"}"#)
                .unwrap()
                .hub,
            "hub-b"
        );
        assert_eq!(
            parse_decision(br#"{"iotHubHostName":""}"#).unwrap_err().0,
            NO_HUB
        );
        assert_eq!(parse_decision(br#"{}"#).unwrap_err().0, NO_HUB);
        assert_eq!(parse_decision(b"nope").unwrap_err().0, FAILED);
    }
}
