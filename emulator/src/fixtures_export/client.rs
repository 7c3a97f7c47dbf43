//! The HTTP/1.1 + TLS client `iotemu fixtures export` reads a DPS service endpoint with: one
//! connection, SAS-signed requests, the paged `query` calls and the per-enrollment
//! `attestationmechanism` reads.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use super::{
    API_VERSION, ExportError, MAX_PAGES, PAGE_SIZE, REQUEST_TIMEOUT, ServiceConnection,
    fill_missing_keys,
};

/// One HTTP/1.1 connection over TLS to the DPS service endpoint.
pub(super) struct ServiceClient<'c> {
    connection: &'c ServiceConnection,
    sender: SendRequest<Full<Bytes>>,
    roots: Arc<rustls::ClientConfig>,
}

impl<'c> ServiceClient<'c> {
    pub(super) async fn connect(
        connection: &'c ServiceConnection,
        roots: RootCertStore,
    ) -> Result<ServiceClient<'c>, ExportError> {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| ExportError::Trust(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let roots = Arc::new(config);
        let sender = open(connection, roots.clone()).await?;
        Ok(ServiceClient {
            connection,
            sender,
            roots,
        })
    }

    /// Every item of `collection` (`enrollments` or `enrollmentGroups`), page by page.
    pub(super) async fn query_all(&mut self, collection: &str) -> Result<Vec<Value>, ExportError> {
        let path = format!("/{collection}/query?api-version={API_VERSION}");
        let mut items = Vec::new();
        let mut continuation: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut headers = vec![("x-ms-max-item-count", PAGE_SIZE.to_string())];
            if let Some(token) = &continuation {
                headers.push(("x-ms-continuation", token.clone()));
            }
            let (page, next) = self
                .call(&path, &headers, json!({ "query": "*" }).to_string())
                .await?;
            let Value::Array(page) = page else {
                return Err(ExportError::Response {
                    request: format!("POST {path}"),
                    reason: "the answer is not a JSON array".into(),
                });
            };
            let empty = page.is_empty();
            items.extend(page);
            // An empty page ends the query too, as the Python service SDK reads it.
            match next.filter(|t| !t.is_empty()) {
                Some(token) if !empty => continuation = Some(token),
                _ => return Ok(items),
            }
        }
        Err(ExportError::Response {
            request: format!("POST {path}"),
            reason: format!("still paging after {MAX_PAGES} pages"),
        })
    }

    /// Fills symmetric keys the query left out from `…/{id}/attestationmechanism`.
    pub(super) async fn complete_keys(
        &mut self,
        item: &mut Value,
        collection: &str,
        id: &str,
        warnings: &mut Vec<String>,
    ) -> Result<(), ExportError> {
        let is_symmetric =
            item.pointer("/attestation/type").and_then(Value::as_str) == Some("symmetricKey");
        let has_keys = |item: &Value| {
            ["primaryKey", "secondaryKey"].iter().all(|k| {
                item.pointer(&format!("/attestation/symmetricKey/{k}"))
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
            })
        };
        if !is_symmetric || has_keys(item) {
            return Ok(());
        }
        let path = format!(
            "/{collection}/{}/attestationmechanism?api-version={API_VERSION}",
            utf8_percent_encode(id, NON_ALPHANUMERIC)
        );
        let (mechanism, _) = self.call(&path, &[], String::new()).await?;
        fill_missing_keys(item, &mechanism);
        if !has_keys(item) {
            warnings.push(format!(
                "{collection}/{id}: the service returned no symmetric keys; the loader will \
                 derive keys from the id, which do not match the devices' real keys"
            ));
        }
        Ok(())
    }

    /// POSTs `body` to `path`; the JSON answer and `x-ms-continuation`. Reconnects once when
    /// the server closed the connection between requests.
    async fn call(
        &mut self,
        path: &str,
        headers: &[(&str, String)],
        body: String,
    ) -> Result<(Value, Option<String>), ExportError> {
        let request_name = format!("POST {path}");
        if self.sender.ready().await.is_err() {
            self.sender = open(self.connection, self.roots.clone()).await?;
        }
        let mut request = Request::post(path)
            .header("host", &self.connection.host)
            .header("authorization", self.connection.token())
            .header("accept", "application/json")
            .header("content-type", "application/json; charset=utf-8")
            .header("user-agent", concat!("iotemu/", env!("CARGO_PKG_VERSION")));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request =
            request
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| ExportError::Response {
                    request: request_name.clone(),
                    reason: e.to_string(),
                })?;
        let failed = |reason: String| ExportError::Response {
            request: request_name.clone(),
            reason,
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, self.sender.send_request(request))
            .await
            .map_err(|_| failed("no answer in time".into()))?
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status().as_u16();
        let continuation = response
            .headers()
            .get("x-ms-continuation")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = tokio::time::timeout(REQUEST_TIMEOUT, response.into_body().collect())
            .await
            .map_err(|_| failed("the body did not arrive in time".into()))?
            .map_err(|e| failed(e.to_string()))?
            .to_bytes();
        if status != 200 {
            return Err(ExportError::Service {
                request: request_name,
                status,
                body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
            });
        }
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| failed(format!("the answer is not JSON: {e}")))?;
        Ok((value, continuation))
    }
}

async fn open(
    connection: &ServiceConnection,
    config: Arc<rustls::ClientConfig>,
) -> Result<SendRequest<Full<Bytes>>, ExportError> {
    let unreachable = |reason: String| ExportError::Connect {
        endpoint: connection.endpoint(),
        reason,
    };
    let tcp = tokio::time::timeout(
        REQUEST_TIMEOUT,
        TcpStream::connect((connection.host.as_str(), connection.port)),
    )
    .await
    .map_err(|_| unreachable("TCP connect timed out".into()))?
    .map_err(|e| unreachable(e.to_string()))?;
    let name = ServerName::try_from(connection.host.clone())
        .map_err(|e| unreachable(format!("'{}' is not a host name: {e}", connection.host)))?;
    let tls = tokio::time::timeout(
        REQUEST_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| unreachable("TLS handshake timed out".into()))?
    .map_err(|e| unreachable(format!("TLS handshake failed: {e}")))?;
    let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| unreachable(format!("HTTP handshake failed: {e}")))?;
    tokio::spawn(async move {
        let _ = driver.await;
    });
    Ok(sender)
}
