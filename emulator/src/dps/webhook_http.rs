//! The custom-allocation webhook over HTTP (protocol.md §8): one POST per attempt with
//! hyper's HTTP/1.1 client, in a task of its own, retried on 429 and 5xx. DPS sees it only as
//! an [`AllocationWebhook`]; the outcome table is in [`super::custom_allocation`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use super::custom_allocation::{
    AllocationWebhook, DecisionSlot, FAILED, UNAUTHORIZED, WebhookDecision, WebhookFailure,
    decided, parse_decision,
};

/// Attempts for a webhook that answers 429 or 5xx (DPS retries 10 times over minutes; an
/// emulator keeps tests fast).
const ATTEMPTS: u32 = 3;
const RETRY_DELAY: Duration = Duration::from_millis(300);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook over HTTP/1.1 (TCP, or TLS with the system roots), one task per call.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct HttpWebhook;

impl AllocationWebhook for HttpWebhook {
    /// Without a tokio runtime (a plain unit test) the allocation fails at once.
    fn start(&self, url: String, body: Value) -> DecisionSlot {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return decided(Err((
                FAILED,
                "Custom allocation needs a running emulator.".into(),
            )));
        };
        let slot: DecisionSlot = Arc::new(Mutex::new(None));
        let task_slot = slot.clone();
        runtime.spawn(async move {
            let outcome = decide(&url, &body).await;
            if let Ok(mut decided) = task_slot.lock() {
                *decided = Some(outcome);
            }
        });
        slot
    }
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
