//! `iotemu certs verify --emulator URL`: the whole proof-of-possession round trip against a
//! running emulator, through its control port — upload the CA certificate unless it is there
//! already, ask for a verification code, sign a certificate whose CN is that code with the
//! CA's key ([`super::verification_certificate`]), send it back, and report the result.
//!
//! It speaks the control port's certificate routes (`/api/certificates…`, or
//! `/api/hubs/{hub}/certificates…` for a hub), the ones the portal uses; the emulator applies
//! them with the same certificate store as its ARM-shaped HTTPS routes. The control port is
//! plain HTTP, so only `http://` URLs are taken; when it requires a token, it is sent as
//! `Authorization: Bearer`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};

use super::{Ca, CertError};

/// How long one request may take, connection included: the control port answers at once.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply read: a certificate list of a few hundred entries.
const MAX_REPLY_BYTES: usize = 4 * 1024 * 1024;

/// Where to verify: the control port, its token, and which instance's certificates.
#[derive(Debug, Clone)]
pub struct EmulatorTarget {
    /// `http://host:port` of the control port (a trailing `/` is fine).
    pub url: String,
    /// The control token, when the control port requires one.
    pub token: Option<String>,
    /// A hub's host name; `None` for the DPS instance.
    pub hub: Option<String>,
}

/// What the round trip did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOutcome {
    /// False when the certificate was already uploaded under the name.
    pub uploaded: bool,
    /// The code the proof carried; `None` when the certificate was verified already.
    pub verification_code: Option<String>,
    /// The certificate's SHA-256 thumbprint, as the emulator reports it.
    pub sha256_thumbprint: String,
}

/// Uploads `ca`'s certificate as `name` unless it is there, then proves possession of its key;
/// `Ok` once the emulator reports it verified. A different certificate already uploaded under
/// `name` is an error, not replaced: replacing a CA would unverify it for devices using it.
pub async fn verify_with_emulator(
    target: &EmulatorTarget,
    name: &str,
    ca: &Ca,
) -> Result<VerifyOutcome, CertError> {
    if name.is_empty() {
        return Err(CertError::InvalidArgument {
            what: "certificate name",
            value: String::new(),
            reason: "it cannot be empty".into(),
        });
    }
    let client = ControlClient::new(target)?;
    let base = match &target.hub {
        Some(hub) => format!("/api/hubs/{}/certificates", encode(hub)),
        None => "/api/certificates".to_owned(),
    };
    let one = format!("{base}/{}", encode(name));
    let (_, sha256) = super::thumbprints(ca.cert_der());

    let listed = client.call("GET", &base, None).await?;
    let existing = listed.as_array().into_iter().flatten().find(|c| {
        c["name"]
            .as_str()
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
    });
    let uploaded = match existing {
        Some(certificate) => {
            let properties = &certificate["properties"];
            let theirs = properties["sha256Thumbprint"].as_str().unwrap_or_default();
            if !theirs.eq_ignore_ascii_case(&sha256) {
                return Err(client.error(format!(
                    "a different certificate is uploaded as '{name}' (SHA-256 {theirs}); delete it or pick another --name"
                )));
            }
            if properties["isVerified"].as_bool() == Some(true) {
                return Ok(VerifyOutcome {
                    uploaded: false,
                    verification_code: None,
                    sha256_thumbprint: sha256,
                });
            }
            false
        }
        None => {
            let pem = super::pem_certificate(ca.cert_der());
            client
                .call("PUT", &one, Some(json!({ "certificate": pem })))
                .await?;
            true
        }
    };

    let code_reply = client
        .call("POST", &format!("{one}/verificationCode"), Some(json!({})))
        .await?;
    let Some(code) = code_reply["verificationCode"].as_str().map(str::to_owned) else {
        return Err(client.error("the reply to verificationCode carries no code".into()));
    };
    let proof = super::verification_certificate(ca, &code)?;
    let verified = client
        .call(
            "POST",
            &format!("{one}/verify"),
            Some(json!({ "certificate": proof.cert_pem })),
        )
        .await?;
    if verified["properties"]["isVerified"].as_bool() != Some(true) {
        return Err(client.error(format!(
            "the emulator accepted the proof but does not report '{name}' verified"
        )));
    }
    Ok(VerifyOutcome {
        uploaded,
        verification_code: Some(code),
        sha256_thumbprint: sha256,
    })
}

fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, NON_ALPHANUMERIC).to_string()
}

/// One request per connection to the control port.
struct ControlClient<'t> {
    url: &'t str,
    authority: String,
    token: Option<&'t str>,
}

impl<'t> ControlClient<'t> {
    fn new(target: &'t EmulatorTarget) -> Result<ControlClient<'t>, CertError> {
        let url = target.url.as_str();
        let bad = |reason: &str| CertError::InvalidArgument {
            what: "--emulator URL",
            value: url.to_owned(),
            reason: reason.into(),
        };
        let Some(rest) = url.strip_prefix("http://") else {
            return Err(bad(
                "give the control port's plain-HTTP URL, e.g. http://127.0.0.1:9180 (the banner prints it)",
            ));
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(bad("expected http://host:port with nothing after it"));
        }
        Ok(ControlClient {
            url,
            authority: authority.to_owned(),
            token: target.token.as_deref().filter(|t| !t.is_empty()),
        })
    }

    fn error(&self, reason: String) -> CertError {
        CertError::Emulator {
            url: self.url.to_owned(),
            reason,
        }
    }

    /// `method path` with a JSON body; the reply's JSON on 2xx, else the emulator's message.
    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CertError> {
        let exchange = self.exchange(method, path, body);
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                self.error(format!(
                    "{method} {path}: no reply within {REQUEST_TIMEOUT:?}"
                ))
            })??;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let message = value["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        let hint = if status == 401 {
            " (the control port wants its token: --control-token or IOTEMU_CONTROL_TOKEN)"
        } else {
            ""
        };
        Err(self.error(format!("{method} {path}: {status} {message}{hint}")))
    }

    async fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Bytes), CertError> {
        let io = |e: &dyn std::fmt::Display| self.error(format!("{method} {path}: {e}"));
        let tcp = tokio::net::TcpStream::connect(self.authority.as_str())
            .await
            .map_err(|e| io(&format!("cannot connect ({e}); is the emulator running?")))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| io(&e))?;
        let driver = tokio::spawn(connection);
        let bytes = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.authority.as_str())
            .header("content-type", "application/json")
            // The control port's guard against cross-site writes (control/api.rs).
            .header("x-iotemu-portal", "1");
        if let Some(token) = self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(bytes)).map_err(|e| io(&e))?;
        let response = sender.send_request(request).await.map_err(|e| io(&e))?;
        let status = response.status().as_u16();
        let collected = http_body_util::Limited::new(response.into_body(), MAX_REPLY_BYTES)
            .collect()
            .await
            .map_err(|e| io(&e))?
            .to_bytes();
        driver.abort();
        Ok((status, collected))
    }
}
