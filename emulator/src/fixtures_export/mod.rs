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

mod client;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::auth::sas::build_token;
use crate::dps::model::{AttestationMechanism, EnrollmentGroup, IndividualEnrollment};
use crate::fixtures::{self, DpsSection, Fixture, FixtureSet, FixtureSource, HubSection};
use client::ServiceClient;

/// The api-version sent: the DPS service API's stable version (service.json 2021-10-01).
pub(crate) const API_VERSION: &str = "2021-10-01";
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
        faults: Vec::new(),
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
