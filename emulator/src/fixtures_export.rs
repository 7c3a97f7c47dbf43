//! `iotemu fixtures export`: reads every individual enrollment and enrollment group from a DPS
//! service endpoint — a real DPS instance or another iotemu — through the DPS service REST API
//! (protocol.md §7.1: `POST /enrollments/query` and `/enrollmentGroups/query`, paged with
//! `x-ms-max-item-count` / `x-ms-continuation`) and turns them into a fixture that
//! `iotemu --fixtures FILE` loads to the same enrollments.
//!
//! What the service API cannot tell is filled in, and documented in docs/fixtures.md:
//!
//! * the ID scope (only the management plane knows it): `--id-scope`, else the quickstart's;
//! * linked hubs: one hub section per host name the enrollments name, with iotemu's
//!   well-known hub policies (the hubs' real keys are not readable through DPS);
//! * symmetric keys a query leaves out are read from `…/attestationmechanism`; keys still
//!   missing stay missing, and the loader then derives them from the enrollment id, which will
//!   not match the real devices' keys (the export reports each one).
//!
//! Read-only fields (`registrationState`, `etag`, timestamps) are dropped: they describe the
//! source instance, not the enrollment.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::auth::sas::build_token;
use crate::dps::model::{AttestationMechanism, EnrollmentGroup, IndividualEnrollment};
use crate::fixtures::{self, DpsSection, Fixture, FixtureSet, FixtureSource, HubSection};

/// The api-version sent: the DPS service API's stable version (service.json 2021-10-01).
pub const API_VERSION: &str = "2021-10-01";
/// Items asked for per page; the service may send fewer and a continuation token.
const PAGE_SIZE: usize = 100;
/// Pages read per collection before giving up on a service that never stops paging.
const MAX_PAGES: usize = 100_000;
/// How long one HTTPS request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the SAS token signed for the export stays valid.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Fields of an enrollment that describe the source instance rather than the enrollment.
const READ_ONLY_FIELDS: [&str; 4] = [
    "registrationState",
    "etag",
    "createdDateTimeUtc",
    "lastUpdatedDateTimeUtc",
];

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("invalid connection string: {0}")]
    ConnectionString(String),
    #[error("cannot use the CA file: {0}")]
    Trust(String),
    #[error("cannot reach {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("{request} answered {status}: {body}")]
    Service {
        request: String,
        status: u16,
        body: String,
    },
    #[error("{request}: {reason}")]
    Response { request: String, reason: String },
}

/// A DPS service connection string: `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…`.
/// `HostName` may end in `:port` to reach an emulator on another port than 443.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConnection {
    pub host: String,
    pub port: u16,
    pub key_name: String,
    key: Vec<u8>,
}

impl ServiceConnection {
    pub fn parse(text: &str) -> Result<ServiceConnection, ExportError> {
        let bad = |reason: &str| ExportError::ConnectionString(reason.to_owned());
        let mut host = None;
        let mut key_name = None;
        let mut key = None;
        for part in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            // Base64 keys end in '=', so split at the first '=' only.
            let (name, value) = part
                .split_once('=')
                .ok_or_else(|| bad(&format!("'{part}' is not Name=value")))?;
            match name.trim().to_ascii_lowercase().as_str() {
                "hostname" => host = Some(value.trim().to_owned()),
                "sharedaccesskeyname" => key_name = Some(value.trim().to_owned()),
                "sharedaccesskey" => key = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        let host = host.ok_or_else(|| bad("HostName is missing"))?;
        let key_name = key_name.ok_or_else(|| bad("SharedAccessKeyName is missing"))?;
        let key = key.ok_or_else(|| bad("SharedAccessKey is missing"))?;
        let key = BASE64
            .decode(&key)
            .map_err(|_| bad("SharedAccessKey is not base64"))?;
        let (host, port) = match host.rsplit_once(':') {
            Some((name, port)) if !name.contains(':') || name.starts_with('[') => {
                let port = port
                    .parse()
                    .map_err(|_| bad(&format!("'{port}' in HostName is not a port")))?;
                (name.trim_matches(['[', ']']).to_owned(), port)
            }
            _ => (host, 443),
        };
        if host.is_empty() {
            return Err(bad("HostName is empty"));
        }
        Ok(ServiceConnection {
            host,
            port,
            key_name,
            key,
        })
    }

    fn token(&self) -> String {
        let expiry = (SystemTime::now() + TOKEN_LIFETIME)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        build_token(&self.host, &self.key, Some(&self.key_name), expiry)
    }

    fn endpoint(&self) -> String {
        format!("https://{}:{}", self.host, self.port)
    }
}

/// Which CAs the export trusts: the system roots plus, optionally, a PEM file's certificates
/// (iotemu serves its CA at `GET /ca.pem` on the control port).
pub fn trust(extra_ca_pem: Option<&str>) -> Result<RootCertStore, ExportError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(pem) = extra_ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| ExportError::Trust(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| ExportError::Trust(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(ExportError::Trust("no PEM certificate in it".into()));
        }
    }
    if roots.is_empty() {
        return Err(ExportError::Trust(
            "no system CA certificates were found; pass --ca-file".into(),
        ));
    }
    Ok(roots)
}

/// What an export produced: the fixture, and what it could not carry over faithfully.
#[derive(Debug, Clone)]
pub struct Export {
    pub fixture: Fixture,
    /// Human-readable notes, e.g. enrollments whose keys the service did not return.
    pub warnings: Vec<String>,
}

impl Export {
    /// The fixture as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(&self.fixture).unwrap_or_default();
        text.push('\n');
        text
    }

    /// Loads the fixture as `iotemu --fixtures` would, so problems surface at export time.
    pub fn check(&self) -> Result<FixtureSet, fixtures::FixtureError> {
        FixtureSet::load(&[FixtureSource::Inline {
            name: "exported fixture".into(),
            json: self.to_json(),
        }])
    }
}

/// Reads every enrollment and group from `connection` and builds the fixture.
pub async fn export(
    connection: &ServiceConnection,
    roots: RootCertStore,
    id_scope: Option<&str>,
) -> Result<Export, ExportError> {
    let mut client = ServiceClient::connect(connection, roots).await?;
    let mut warnings = Vec::new();

    let mut enrollments = Vec::new();
    for mut item in client.query_all("enrollments").await? {
        strip_read_only(&mut item);
        let id = item["registrationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        client
            .complete_keys(&mut item, "enrollments", &id, &mut warnings)
            .await?;
        let enrollment: IndividualEnrollment =
            serde_json::from_value(item).map_err(|e| ExportError::Response {
                request: format!("enrollment '{id}'"),
                reason: format!("not an IndividualEnrollment: {e}"),
            })?;
        enrollments.push(enrollment);
    }
    let mut groups = Vec::new();
    for mut item in client.query_all("enrollmentGroups").await? {
        strip_read_only(&mut item);
        let id = item["enrollmentGroupId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        client
            .complete_keys(&mut item, "enrollmentGroups", &id, &mut warnings)
            .await?;
        let group: EnrollmentGroup =
            serde_json::from_value(item).map_err(|e| ExportError::Response {
                request: format!("enrollment group '{id}'"),
                reason: format!("not an EnrollmentGroup: {e}"),
            })?;
        groups.push(group);
    }
    for (kind, id) in enrollments
        .iter()
        .filter(|e| uses_ca_references(&e.attestation))
        .map(|e| ("enrollment", &e.registration_id))
        .chain(
            groups
                .iter()
                .filter(|g| uses_ca_references(&g.attestation))
                .map(|g| ("enrollment group", &g.enrollment_group_id)),
        )
    {
        warnings.push(format!(
            "{kind} '{id}' refers to DPS CA certificates by name; add them under dps.certificates \
             (the DPS service API does not return certificates)"
        ));
    }

    let fixture = build_fixture(connection, id_scope, enrollments, groups);
    Ok(Export { fixture, warnings })
}

fn uses_ca_references(attestation: &AttestationMechanism) -> bool {
    attestation
        .x509
        .as_ref()
        .is_some_and(|x| x.ca_references.is_some())
}

fn strip_read_only(item: &mut Value) {
    if let Some(object) = item.as_object_mut() {
        for field in READ_ONLY_FIELDS {
            object.remove(field);
        }
    }
}

/// The fixture around the enrollments: the DPS instance named by the connection string and
/// one hub per host name the enrollments refer to (the quickstart's hub when none does).
fn build_fixture(
    connection: &ServiceConnection,
    id_scope: Option<&str>,
    enrollments: Vec<IndividualEnrollment>,
    groups: Vec<EnrollmentGroup>,
) -> Fixture {
    let quickstart =
        fixtures::parse(fixtures::QUICKSTART_NAME, fixtures::QUICKSTART_JSON).unwrap_or_default();
    let quickstart_dps = quickstart.dps.clone();
    let dps = DpsSection {
        id_scope: id_scope
            .map(str::to_owned)
            .or_else(|| quickstart_dps.as_ref().map(|d| d.id_scope.clone()))
            .unwrap_or_default(),
        host_name: connection.host.clone(),
        shared_access_policies: quickstart_dps
            .map(|d| d.shared_access_policies)
            .unwrap_or_default(),
        certificates: Vec::new(),
        allocation_policy: None,
        location: None,
    };
    let mut hub_names: Vec<String> = Vec::new();
    let named = enrollments
        .iter()
        .flat_map(|e| hub_refs(&e.iot_hub_host_name, &e.iot_hubs))
        .chain(
            groups
                .iter()
                .flat_map(|g| hub_refs(&g.iot_hub_host_name, &g.iot_hubs)),
        );
    for name in named {
        if !hub_names.iter().any(|h| h.eq_ignore_ascii_case(&name)) {
            hub_names.push(name);
        }
    }
    let template = quickstart.hubs.first().cloned();
    let hubs: Vec<HubSection> = if hub_names.is_empty() {
        quickstart.hubs
    } else {
        hub_names
            .into_iter()
            .filter_map(|host_name| {
                template.clone().map(|t| HubSection {
                    host_name,
                    certificates: Vec::new(),
                    ..t
                })
            })
            .collect()
    };
    Fixture {
        schema: None,
        dps: Some(dps),
        hubs,
        enrollments,
        enrollment_groups: groups,
    }
}

fn hub_refs(single: &Option<String>, list: &Option<Vec<String>>) -> Vec<String> {
    single
        .iter()
        .chain(list.iter().flatten())
        .filter(|h| !h.is_empty())
        .cloned()
        .collect()
}

/// Copies the symmetric keys of an `AttestationMechanism` into `enrollment` where it has none.
fn fill_missing_keys(enrollment: &mut Value, mechanism: &Value) {
    let Some(attestation) = enrollment
        .get_mut("attestation")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let slot = attestation
        .entry("symmetricKey")
        .or_insert_with(|| json!({}));
    if slot.is_null() {
        *slot = json!({});
    }
    let Some(keys) = slot.as_object_mut() else {
        return;
    };
    for name in ["primaryKey", "secondaryKey"] {
        let found = mechanism
            .pointer(&format!("/symmetricKey/{name}"))
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty());
        let present = keys
            .get(name)
            .and_then(Value::as_str)
            .is_some_and(|k| !k.is_empty());
        if let (Some(found), false) = (found, present) {
            keys.insert(name.to_owned(), Value::String(found.to_owned()));
        }
    }
    // Empty or null keys would not load; left out, the loader derives them.
    keys.retain(|_, key| key.as_str().is_some_and(|k| !k.is_empty()));
}

/// One HTTP/1.1 connection over TLS to the DPS service endpoint.
struct ServiceClient<'c> {
    connection: &'c ServiceConnection,
    sender: SendRequest<Full<Bytes>>,
    roots: Arc<rustls::ClientConfig>,
}

impl<'c> ServiceClient<'c> {
    async fn connect(
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
    async fn query_all(&mut self, collection: &str) -> Result<Vec<Value>, ExportError> {
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
    async fn complete_keys(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_parse_with_and_without_a_port() {
        let plain = ServiceConnection::parse(
            "HostName=my-dps.azure-devices-provisioning.net;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=AAAA",
        )
        .unwrap();
        assert_eq!(plain.host, "my-dps.azure-devices-provisioning.net");
        assert_eq!(plain.port, 443);
        assert_eq!(plain.key_name, "provisioningserviceowner");
        assert_eq!(plain.key, vec![0, 0, 0]);
        let local = ServiceConnection::parse(
            " sharedaccesskey=9v222dNTjDaRlypsKaNmfRb+fM+lb6iI4vJsVu9VHBA= ; HostName=localhost:8443;SharedAccessKeyName=p ",
        )
        .unwrap();
        assert_eq!((local.host.as_str(), local.port), ("localhost", 8443));
        assert_eq!(local.key.len(), 32);
        let v6 =
            ServiceConnection::parse("HostName=[::1]:9;SharedAccessKeyName=p;SharedAccessKey=AA==")
                .unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 9));
    }

    #[test]
    fn bad_connection_strings_say_what_is_wrong() {
        for (text, expected) in [
            (
                "SharedAccessKeyName=p;SharedAccessKey=AA==",
                "HostName is missing",
            ),
            (
                "HostName=h;SharedAccessKey=AA==",
                "SharedAccessKeyName is missing",
            ),
            (
                "HostName=h;SharedAccessKeyName=p",
                "SharedAccessKey is missing",
            ),
            (
                "HostName=h;SharedAccessKeyName=p;SharedAccessKey=!!",
                "not base64",
            ),
            (
                "HostName=h:port;SharedAccessKeyName=p;SharedAccessKey=AA==",
                "not a port",
            ),
            (
                "HostName;SharedAccessKeyName=p;SharedAccessKey=AA==",
                "not Name=value",
            ),
        ] {
            let error = ServiceConnection::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn the_fixture_names_every_referenced_hub_once_with_well_known_policies() {
        let connection = ServiceConnection::parse(
            "HostName=my-dps.example;SharedAccessKeyName=p;SharedAccessKey=AA==",
        )
        .unwrap();
        let enrollment: IndividualEnrollment = serde_json::from_value(json!({
            "registrationId": "e1",
            "attestation": {"type": "symmetricKey"},
            "iotHubs": ["hub-a.example", "hub-b.example"],
        }))
        .unwrap();
        let group: EnrollmentGroup = serde_json::from_value(json!({
            "enrollmentGroupId": "g1",
            "attestation": {"type": "symmetricKey"},
            "iotHubHostName": "HUB-A.example",
            "iotHubs": ["hub-c.example"],
        }))
        .unwrap();
        let fixture = build_fixture(&connection, Some("0neABC"), vec![enrollment], vec![group]);
        let dps = fixture.dps.as_ref().unwrap();
        assert_eq!(dps.host_name, "my-dps.example");
        assert_eq!(dps.id_scope, "0neABC");
        assert_eq!(
            dps.shared_access_policies[0].key_name,
            "provisioningserviceowner"
        );
        let hubs: Vec<&str> = fixture.hubs.iter().map(|h| h.host_name.as_str()).collect();
        assert_eq!(hubs, ["hub-a.example", "hub-b.example", "hub-c.example"]);
        assert!(
            fixture
                .hubs
                .iter()
                .all(|h| h.shared_access_policies[0].key_name == "iothubowner")
        );
        let none = build_fixture(&connection, None, Vec::new(), Vec::new());
        assert_eq!(none.dps.unwrap().id_scope, "0ne00000A0A");
        assert_eq!(none.hubs[0].host_name, "localhost");
    }

    #[test]
    fn read_only_fields_are_dropped() {
        let mut item = json!({
            "registrationId": "e1",
            "etag": "\"x\"",
            "registrationState": {"status": "assigned"},
            "createdDateTimeUtc": "2024-01-01T00:00:00Z",
            "lastUpdatedDateTimeUtc": "2024-01-01T00:00:00Z",
            "capabilities": {"iotEdge": false},
        });
        strip_read_only(&mut item);
        assert_eq!(
            item,
            json!({"registrationId": "e1", "capabilities": {"iotEdge": false}})
        );
    }

    #[test]
    fn keys_missing_from_a_query_are_taken_from_the_attestation_mechanism() {
        let mechanism = json!({"type": "symmetricKey", "symmetricKey": {
            "primaryKey": "cHJpbWFyeS1wcmltYXJ5LWtleQ==", "secondaryKey": "c2Vjb25kYXJ5LWtleS1zZWNvbmQ="}});
        let mut absent = json!({"registrationId": "a", "attestation": {"type": "symmetricKey"}});
        fill_missing_keys(&mut absent, &mechanism);
        assert_eq!(
            absent["attestation"]["symmetricKey"],
            mechanism["symmetricKey"]
        );
        let mut nulls = json!({"attestation": {"type": "symmetricKey", "symmetricKey": null}});
        fill_missing_keys(&mut nulls, &mechanism);
        assert_eq!(
            nulls["attestation"]["symmetricKey"],
            mechanism["symmetricKey"]
        );
        // A key the query did return is kept, even if the mechanism differs.
        let mut partial = json!({"attestation": {"type": "symmetricKey",
            "symmetricKey": {"primaryKey": "a2VwdC1wcmltYXJ5LWtleS0xMg==", "secondaryKey": ""}}});
        fill_missing_keys(&mut partial, &mechanism);
        assert_eq!(
            partial["attestation"]["symmetricKey"],
            json!({"primaryKey": "a2VwdC1wcmltYXJ5LWtleS0xMg==", "secondaryKey": "c2Vjb25kYXJ5LWtleS1zZWNvbmQ="})
        );
        // Without keys anywhere, empty ones are dropped for the loader to derive.
        let mut none =
            json!({"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": ""}}});
        fill_missing_keys(&mut none, &json!({"type": "symmetricKey"}));
        assert_eq!(none["attestation"]["symmetricKey"], json!({}));
    }

    #[test]
    fn an_extra_ca_file_must_hold_a_certificate() {
        assert!(matches!(
            trust(Some("no pem here")),
            Err(ExportError::Trust(_))
        ));
    }
}
