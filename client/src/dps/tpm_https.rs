//! DPS registration of a TPM device over HTTPS (spec/protocol.md §3.3), the one transport on
//! which both Azure and iotemu offer TPM attestation:
//!
//! ```text
//! PUT /{idScope}/registrations/{id}/register   {registrationId, tpm:{endorsementKey, storageRootKey}}
//!   ◄── 401 {authenticationKey, keyName}        → the TPM imports the key
//! PUT …/register  Authorization: SAS signed in the TPM (skn=registration)
//!   ◄── 202 {operationId}                        → GET …/operations/{operationId} until done
//!   ◄── 200 {status: assigned, registrationState: {…, tpm: {authenticationKey}}}
//!                                                 → the TPM imports the hub key
//! ```
//!
//! One short HTTP/1.1 request per connection (`Connection: close`), like the SDKs' simplest
//! path; the registration id is the one the SDKs derive from the EK.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::ProvisioningError;
use super::model::{OperationStatus, RegistrationResult};
use crate::tls::{Trust, client_config, connect};
use crate::tpm::{SharedTpm, Tpm, TpmError, registration_id, sas_token};

/// The api-version the Node SDK's HTTP transport sends.
const API_VERSION: &str = "2019-03-31";
/// How long the registration token lives (the SDKs use one hour).
const TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Largest response body read; DPS answers are a few KB.
const MAX_RESPONSE: u64 = 1 << 20;
/// Longest `retry-after` honoured between polls.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Registers a TPM device with DPS over HTTPS.
///
/// ```no_run
/// # use std::sync::Arc;
/// # use iotemu_device::{DeviceClient, Tpm, TpmProvisioning, Trust};
/// # async fn run(tpm: Arc<dyn Tpm>) -> Result<(), Box<dyn std::error::Error>> {
/// let ca = Trust::CaPem(std::fs::read_to_string("iotemu-ca.pem")?);
/// let registration = TpmProvisioning::new("localhost", "0ne00000A0A", tpm.clone())
///     .trust(ca.clone())
///     .register()
///     .await?;
/// let device = DeviceClient::from_tpm_registration(&registration, tpm)
///     .trust(ca)
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TpmProvisioning {
    host: String,
    id_scope: String,
    tpm: SharedTpm,
    trust: Trust,
    port: u16,
    timeout: Duration,
}

/// One HTTP answer.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Vec<u8>,
}

impl TpmProvisioning {
    pub fn new(
        provisioning_host: impl Into<String>,
        id_scope: impl Into<String>,
        tpm: Arc<dyn Tpm>,
    ) -> Self {
        Self {
            host: provisioning_host.into(),
            id_scope: id_scope.into(),
            tpm: SharedTpm(tpm),
            trust: Trust::default(),
            port: 443,
            timeout: Duration::from_secs(60),
        }
    }

    /// Which CAs to trust for the DPS certificate (default: system roots).
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    /// The HTTPS port (443 by default, like Azure).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Limit for the whole registration, polls included (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs the challenge, the registration and the polls; on `assigned` the hub key is in
    /// the TPM, ready for [`DeviceClient::from_tpm_registration`](crate::DeviceClient::from_tpm_registration).
    pub async fn register(&self) -> Result<RegistrationResult, ProvisioningError> {
        tokio::time::timeout(self.timeout, self.run())
            .await
            .map_err(|_| ProvisioningError::Timeout)?
    }

    async fn run(&self) -> Result<RegistrationResult, ProvisioningError> {
        let tpm = self.tpm.0.as_ref();
        let endorsement_key = tpm.endorsement_key().map_err(tpm_failed)?;
        let storage_root_key = tpm.storage_root_key().map_err(tpm_failed)?;
        let registration_id = registration_id(&endorsement_key);
        let body = json!({
            "registrationId": registration_id,
            "tpm": {
                "endorsementKey": BASE64.encode(&endorsement_key),
                "storageRootKey": BASE64.encode(&storage_root_key),
            },
        })
        .to_string();
        let base = format!("/{}/registrations/{registration_id}", self.id_scope);
        let register = format!("{base}/register?api-version={API_VERSION}");

        let challenge = self
            .request("PUT", &register, None, body.as_bytes())
            .await?;
        if challenge.status != 401 {
            return Err(unexpected(&challenge, "a 401 TPM challenge"));
        }
        let blob = json_of(&challenge.body)?
            .get("authenticationKey")
            .and_then(Value::as_str)
            .and_then(|key| BASE64.decode(key).ok())
            .ok_or_else(|| ProvisioningError::Service {
                status: 401,
                body: String::from_utf8_lossy(&challenge.body).into_owned(),
            })?;
        tpm.import_identity_key(&blob).map_err(tpm_failed)?;
        let token = sas_token(
            tpm,
            &format!("{}/registrations/{registration_id}", self.id_scope),
            Some("registration"),
            SystemTime::now() + TOKEN_TTL,
        )
        .map_err(tpm_failed)?;

        let mut answer = self
            .request("PUT", &register, Some(&token), body.as_bytes())
            .await?;
        loop {
            if !(200..300).contains(&answer.status) {
                return Err(unexpected(&answer, "202 or 200"));
            }
            let raw = json_of(&answer.body)?;
            let operation: OperationStatus = serde_json::from_value(raw.clone())
                .map_err(|e| ProvisioningError::Protocol(format!("operation status: {e}")))?;
            match operation.status.as_str() {
                "assigning" | "unassigned" => {
                    let wait =
                        Duration::from_secs(answer.retry_after.unwrap_or(1)).min(MAX_POLL_INTERVAL);
                    tokio::time::sleep(wait).await;
                    let poll = format!(
                        "{base}/operations/{}?api-version={API_VERSION}",
                        operation.operation_id
                    );
                    answer = self.request("GET", &poll, Some(&token), b"").await?;
                }
                "assigned" => return self.assigned(operation, &raw),
                other => {
                    let state = operation.registration_state.unwrap_or_default();
                    return Err(ProvisioningError::Registration {
                        status: other.to_owned(),
                        error_code: state.error_code,
                        error_message: state.error_message,
                    });
                }
            }
        }
    }

    /// Imports the hub key of an `assigned` answer into the TPM.
    fn assigned(
        &self,
        operation: OperationStatus,
        raw: &Value,
    ) -> Result<RegistrationResult, ProvisioningError> {
        let hub_key = raw
            .pointer("/registrationState/tpm/authenticationKey")
            .and_then(Value::as_str)
            .and_then(|key| BASE64.decode(key).ok())
            .ok_or_else(|| {
                ProvisioningError::Protocol(
                    "assigned without registrationState.tpm.authenticationKey".into(),
                )
            })?;
        self.tpm
            .0
            .import_identity_key(&hub_key)
            .map_err(tpm_failed)?;
        Ok(RegistrationResult {
            operation_id: operation.operation_id,
            status: operation.status,
            registration_state: operation.registration_state.unwrap_or_default(),
        })
    }

    async fn request(
        &self,
        method: &str,
        path_and_query: &str,
        authorization: Option<&str>,
        body: &[u8],
    ) -> Result<Answer, ProvisioningError> {
        let config = client_config(&self.trust, None)?;
        let mut stream = connect(&self.host, self.port, config).await?;
        let mut head = format!(
            "{method} {path_and_query} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\
             Content-Type: application/json; charset=utf-8\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            self.host,
            body.len()
        );
        if let Some(token) = authorization {
            head.push_str(&format!("Authorization: {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        let mut raw = Vec::new();
        let read = (&mut stream).take(MAX_RESPONSE).read_to_end(&mut raw).await;
        // A server may close without TLS close_notify after `Connection: close`; what was
        // read is the answer.
        if let Err(e) = read
            && raw.is_empty()
        {
            return Err(e.into());
        }
        parse_answer(&raw)
    }
}

/// Splits an HTTP/1.1 response into status, `retry-after` and body (chunked or not).
fn parse_answer(raw: &[u8]) -> Result<Answer, ProvisioningError> {
    let bad = |what: &str| ProvisioningError::Protocol(format!("HTTP response: {what}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no complete head"))?;
    let head = String::from_utf8_lossy(raw.get(..split).unwrap_or_default()).into_owned();
    let body = raw.get(split + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| bad("no status line"))?;
    let mut retry_after = None;
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("retry-after") {
                retry_after = value.parse().ok();
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    let body = if chunked {
        dechunk(body).ok_or_else(|| bad("malformed chunked body"))?
    } else {
        body.to_vec()
    };
    Ok(Answer {
        status,
        retry_after,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = String::from_utf8_lossy(data.get(..end)?).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        let start = end.checked_add(2)?;
        out.extend_from_slice(data.get(start..start.checked_add(size)?)?);
        data = data.get(start.checked_add(size)?.checked_add(2)?..)?;
    }
}

fn json_of(body: &[u8]) -> Result<Value, ProvisioningError> {
    serde_json::from_slice(body)
        .map_err(|e| ProvisioningError::Protocol(format!("DPS answered non-JSON: {e}")))
}

fn unexpected(answer: &Answer, wanted: &str) -> ProvisioningError {
    let body = String::from_utf8_lossy(&answer.body).into_owned();
    if (200..300).contains(&answer.status) {
        ProvisioningError::Protocol(format!(
            "DPS answered {} where {wanted} was expected: {body}",
            answer.status
        ))
    } else {
        ProvisioningError::Service {
            status: answer.status,
            body,
        }
    }
}

fn tpm_failed(error: TpmError) -> ProvisioningError {
    ProvisioningError::Tpm(error.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_split_with_or_without_chunking() {
        let plain =
            parse_answer(b"HTTP/1.1 202 Accepted\r\nretry-after: 3\r\ncontent-length: 2\r\n\r\n{}")
                .ok()
                .unwrap();
        assert_eq!((plain.status, plain.retry_after), (202, Some(3)));
        assert_eq!(plain.body, b"{}");
        let chunked = parse_answer(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
        )
        .ok()
        .unwrap();
        assert_eq!(chunked.status, 401);
        assert_eq!(chunked.body, b"{\"a\":1}");
    }

    #[test]
    fn broken_answers_are_protocol_errors_not_panics() {
        for raw in [
            &b""[..],
            b"HTTP/1.1",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab",
        ] {
            assert!(parse_answer(raw).is_err(), "{raw:?}");
        }
    }
}
