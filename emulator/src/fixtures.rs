//! Fixture files: the DPS instance, its linked hubs and its enrollments, in the DPS service
//! API's own JSON (protocol.md §7.2) plus a small top-level object for the instance.
//!
//! ```json
//! { "dps": { "idScope", "hostName", "sharedAccessPolicies": [ { "keyName", "primaryKey", "secondaryKey", "rights" } ] },
//!   "hubs": [ { "hostName", "sharedAccessPolicies": [...] } ],
//!   "enrollments": [ IndividualEnrollment ], "enrollmentGroups": [ EnrollmentGroup ] }
//! ```
//!
//! Several files merge: at most one may carry `dps`; hubs and enrollments add up, duplicates
//! are errors. A file without `dps`/`hubs` gets those of the built-in quickstart fixture.
//! Every error names the file, the JSON path and the reason, and stops startup.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::auth::keys::KeyError;
use crate::auth::policy::SharedAccessPolicy;
use crate::dps::model::{AllocationPolicy, EnrollmentGroup, IndividualEnrollment};
use crate::dps::validate::{self, MissingKeys};
use crate::hub::event_hubs::route::Routes;
pub use crate::hub::event_hubs::route::{RouteEntry, RoutingSection};
use crate::hub::event_hubs::{self, EventHubsConfig};

/// The built-in quickstart fixture, used when no fixture is given. Included through
/// emulator/fixtures/quickstart.json, a symlink to the workspace's fixtures/quickstart.json, so
/// that the published crate (`cargo package`) carries it.
pub const QUICKSTART_JSON: &str = include_str!("../fixtures/quickstart.json");
pub const QUICKSTART_NAME: &str = "built-in quickstart fixture";

/// Where a fixture comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FixtureSource {
    File(PathBuf),
    Inline { name: String, json: String },
}

impl FixtureSource {
    pub fn quickstart() -> FixtureSource {
        FixtureSource::Inline {
            name: QUICKSTART_NAME.to_owned(),
            json: QUICKSTART_JSON.to_owned(),
        }
    }

    fn name(&self) -> String {
        match self {
            FixtureSource::File(path) => path.display().to_string(),
            FixtureSource::Inline { name, .. } => name.clone(),
        }
    }
}

/// One fixture document, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fixture {
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "$schema")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dps: Option<DpsSection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hubs: Vec<HubSection>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enrollments: Vec<IndividualEnrollment>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enrollment_groups: Vec<EnrollmentGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DpsSection {
    pub id_scope: String,
    pub host_name: String,
    #[serde(default)]
    pub shared_access_policies: Vec<AccessPolicy>,
    /// CA certificates uploaded to the instance (for X.509 `caReferences` and chain checks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateEntry>,
    /// The instance's default allocation policy (`hashed` unless given; never `custom`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation_policy: Option<AllocationPolicy>,
    /// Where the instance "is", for emulated `geoLatency` allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HubSection {
    pub host_name: String,
    #[serde(default)]
    pub shared_access_policies: Vec<AccessPolicy>,
    /// CA certificates uploaded to the hub (for `certificateAuthority` devices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateEntry>,
    /// Weight for `hashed` allocation, 1–1000 (default 1).
    #[serde(default = "default_weight")]
    pub allocation_weight: u32,
    /// Whether allocation may pick this hub when an enrollment lists none (default true).
    #[serde(default = "default_true")]
    pub apply_allocation_policy: bool,
    /// Where the hub "is", for emulated `geoLatency` allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The built-in Event Hubs-compatible endpoint (`events`): name, partitions, consumer groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_hub_endpoint: Option<EventHubEndpointSection>,
    /// Message routing in Azure's shape; only routes to the built-in `events` endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingSection>,
}

/// A hub's built-in Event Hubs-compatible endpoint (Azure: `eventHubEndpoints.events`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EventHubEndpointSection {
    /// The Event Hub name (`EntityPath`); default: the hub's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// 2–128; default `--partitions` (4, as Azure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition_count: Option<u32>,
    /// Consumer groups besides `$Default`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consumer_groups: Vec<String>,
}

impl HubSection {
    /// The Event Hub name this hub gets: `eventHubEndpoint.path`, else the hub's name.
    pub fn entity_path(&self) -> String {
        self.event_hub_endpoint
            .as_ref()
            .and_then(|e| e.path.clone())
            .unwrap_or_else(|| event_hubs::hub_name(&self.host_name))
    }

    /// This hub's Event Hubs endpoint settings, `default_partitions` where it names none. The
    /// fixture was validated when loaded; an invalid routing section falls back to the defaults.
    pub fn event_hubs_config(&self, default_partitions: u32, retention: usize) -> EventHubsConfig {
        let endpoint = self.event_hub_endpoint.clone().unwrap_or_default();
        EventHubsConfig {
            path: self.entity_path(),
            partition_count: endpoint.partition_count.unwrap_or(default_partitions),
            consumer_groups: endpoint.consumer_groups,
            routes: self
                .routing
                .as_ref()
                .and_then(|r| Routes::from_fixture(r).ok())
                .unwrap_or_default(),
            retention,
        }
    }
}

fn default_weight() -> u32 {
    1
}

fn default_true() -> bool {
    true
}

/// A CA certificate as uploaded: `isVerified` is the "verify on upload" option; unverified
/// certificates authenticate nobody until proof of possession.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateEntry {
    pub name: String,
    pub certificate: String,
    #[serde(default)]
    pub is_verified: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessPolicy {
    pub key_name: String,
    pub primary_key: String,
    #[serde(default)]
    pub secondary_key: Option<String>,
    /// Azure writes rights as one comma-separated string; a list is accepted too.
    #[serde(default)]
    pub rights: Rights,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Rights {
    Text(String),
    List(Vec<String>),
}

impl Default for Rights {
    fn default() -> Self {
        Rights::List(Vec::new())
    }
}

impl Rights {
    pub fn names(&self) -> Vec<String> {
        match self {
            Rights::Text(text) => text
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            Rights::List(list) => list.clone(),
        }
    }
}

impl AccessPolicy {
    /// The credential-layer policy this fixture entry describes (keys decoded).
    pub fn to_shared_access_policy(&self) -> Result<SharedAccessPolicy, KeyError> {
        SharedAccessPolicy::from_base64(
            &self.key_name,
            &self.primary_key,
            self.secondary_key.as_deref(),
            self.rights.names(),
        )
    }
}

/// A fixture problem: which file, where in it, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixtureError {
    pub file: String,
    pub path: String,
    pub reason: String,
}

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.reason)
        }
    }
}

impl std::error::Error for FixtureError {}

/// The merged, validated content of every fixture: what the emulator starts with.
#[derive(Debug, Clone, PartialEq)]
pub struct FixtureSet {
    pub dps: DpsSection,
    pub hubs: Vec<HubSection>,
    pub enrollments: Vec<IndividualEnrollment>,
    pub enrollment_groups: Vec<EnrollmentGroup>,
}

impl FixtureSet {
    /// Reads, validates and merges `sources`; no sources means the quickstart fixture.
    pub fn load(sources: &[FixtureSource]) -> Result<FixtureSet, FixtureError> {
        let quickstart = [FixtureSource::quickstart()];
        let sources = if sources.is_empty() {
            &quickstart[..]
        } else {
            sources
        };
        let mut parsed = Vec::with_capacity(sources.len());
        for source in sources {
            parsed.push((source.name(), read_source(source)?));
        }
        merge(parsed)
    }
}

/// Parses one fixture document, reporting the JSON path of any shape error.
pub fn parse(file: &str, json: &str) -> Result<Fixture, FixtureError> {
    let mut de = serde_json::Deserializer::from_str(json);
    let fixture = serde_path_to_error::deserialize(&mut de).map_err(|err| FixtureError {
        file: file.to_owned(),
        path: err.path().to_string().trim_start_matches('.').to_owned(),
        reason: err.inner().to_string(),
    })?;
    // A second document after the first is a mistake, not something to ignore.
    de.end().map_err(|err| FixtureError {
        file: file.to_owned(),
        path: String::new(),
        reason: format!("unexpected data after the fixture: {err}"),
    })?;
    Ok(fixture)
}

fn read_source(source: &FixtureSource) -> Result<Fixture, FixtureError> {
    match source {
        FixtureSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| FixtureError {
                file: path.display().to_string(),
                path: String::new(),
                reason: format!("cannot read file: {e}"),
            })?;
            parse(&path.display().to_string(), &text)
        }
        FixtureSource::Inline { name, json } => parse(name, json),
    }
}

fn merge(parsed: Vec<(String, Fixture)>) -> Result<FixtureSet, FixtureError> {
    let mut dps: Option<(String, DpsSection)> = None;
    let mut hubs: Vec<(String, usize, HubSection)> = Vec::new();
    let mut enrollments = Vec::new();
    let mut groups = Vec::new();
    for (file, fixture) in parsed {
        if let Some(section) = fixture.dps {
            if let Some((first, _)) = &dps {
                return Err(err(
                    &file,
                    "dps",
                    format!("the DPS instance is already defined in {first}"),
                ));
            }
            dps = Some((file.clone(), section));
        }
        hubs.extend(
            fixture
                .hubs
                .into_iter()
                .enumerate()
                .map(|(i, h)| (file.clone(), i, h)),
        );
        enrollments.extend(
            fixture
                .enrollments
                .into_iter()
                .enumerate()
                .map(|(i, e)| (file.clone(), i, e)),
        );
        groups.extend(
            fixture
                .enrollment_groups
                .into_iter()
                .enumerate()
                .map(|(i, g)| (file.clone(), i, g)),
        );
    }

    let defaults = || parse(QUICKSTART_NAME, QUICKSTART_JSON);
    let (dps_file, dps) = match dps {
        Some(found) => found,
        None => {
            let section = defaults()?
                .dps
                .ok_or_else(|| err(QUICKSTART_NAME, "dps", "built-in fixture has no dps".into()))?;
            (QUICKSTART_NAME.to_owned(), section)
        }
    };
    if hubs.is_empty() {
        hubs = defaults()?
            .hubs
            .into_iter()
            .enumerate()
            .map(|(i, h)| (QUICKSTART_NAME.to_owned(), i, h))
            .collect();
    }

    validate_dps(&dps_file, &dps)?;
    let mut hub_names = HashSet::new();
    for (file, i, hub) in &hubs {
        let path = format!("hubs[{i}]");
        validate_host(file, &format!("{path}.hostName"), &hub.host_name)?;
        if !hub_names.insert(hub.host_name.to_ascii_lowercase()) {
            return Err(err(
                file,
                &format!("{path}.hostName"),
                format!("hub '{}' is defined twice", hub.host_name),
            ));
        }
        validate_policies(file, &path, &hub.shared_access_policies)?;
        if !(1..=1000).contains(&hub.allocation_weight) {
            return Err(err(
                file,
                &format!("{path}.allocationWeight"),
                format!("{} is outside 1–1000", hub.allocation_weight),
            ));
        }
        if let Some(endpoint) = &hub.event_hub_endpoint {
            validate_event_hub_endpoint(file, &format!("{path}.eventHubEndpoint"), endpoint)?;
        }
        if let Some(routing) = &hub.routing {
            Routes::from_fixture(routing)
                .map_err(|bad| err(file, &format!("{path}.routing.{}", bad.path), bad.reason))?;
        }
    }
    let mut event_hub_names = HashMap::new();
    for (file, i, hub) in &hubs {
        let name = hub.entity_path();
        if let Some(other) =
            event_hub_names.insert(name.to_ascii_lowercase(), hub.host_name.clone())
        {
            return Err(err(
                file,
                &format!("hubs[{i}].eventHubEndpoint.path"),
                format!(
                    "the Event Hub name '{name}' is also the one of hub '{other}'; give one of them its own eventHubEndpoint.path"
                ),
            ));
        }
    }

    validate_certificates(&dps_file, "dps", &dps.certificates)?;
    for (file, i, hub) in &hubs {
        validate_certificates(file, &format!("hubs[{i}]"), &hub.certificates)?;
    }
    let hub_exists = |host: &str| hub_names.contains(&host.to_ascii_lowercase());
    let ca_exists = |name: &str| {
        dps.certificates
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(name))
    };
    let links = validate::Links {
        hub_exists: &hub_exists,
        ca_exists: &ca_exists,
    };
    let mut seen = HashSet::new();
    let mut out_enrollments = Vec::with_capacity(enrollments.len());
    for (file, i, mut e) in enrollments {
        let base = format!("enrollments[{i}]");
        validate::individual_enrollment(&mut e, &links, MissingKeys::Deterministic)
            .map_err(|bad| at(&file, &base, bad))?;
        if !seen.insert(e.registration_id.to_ascii_lowercase()) {
            return Err(err(
                &file,
                &format!("{base}.registrationId"),
                format!("enrollment '{}' is defined twice", e.registration_id),
            ));
        }
        out_enrollments.push(e);
    }

    let mut seen = HashSet::new();
    let mut out_groups = Vec::with_capacity(groups.len());
    for (file, i, mut g) in groups {
        let base = format!("enrollmentGroups[{i}]");
        validate::enrollment_group(&mut g, &links, MissingKeys::Deterministic)
            .map_err(|bad| at(&file, &base, bad))?;
        if !seen.insert(g.enrollment_group_id.to_ascii_lowercase()) {
            return Err(err(
                &file,
                &format!("{base}.enrollmentGroupId"),
                format!(
                    "enrollment group '{}' is defined twice",
                    g.enrollment_group_id
                ),
            ));
        }
        out_groups.push(g);
    }

    Ok(FixtureSet {
        dps,
        hubs: hubs.into_iter().map(|(_, _, h)| h).collect(),
        enrollments: out_enrollments,
        enrollment_groups: out_groups,
    })
}

fn err(file: &str, path: &str, reason: String) -> FixtureError {
    FixtureError {
        file: file.to_owned(),
        path: path.to_owned(),
        reason,
    }
}

fn validate_dps(file: &str, dps: &DpsSection) -> Result<(), FixtureError> {
    if dps.id_scope.is_empty() || !dps.id_scope.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(err(
            file,
            "dps.idScope",
            "must be a non-empty alphanumeric id scope such as 0ne00000A0A".into(),
        ));
    }
    validate_host(file, "dps.hostName", &dps.host_name)?;
    if dps.allocation_policy == Some(AllocationPolicy::Custom) {
        return Err(err(
            file,
            "dps.allocationPolicy",
            "custom cannot be the instance default; set it on enrollments".into(),
        ));
    }
    validate_policies(file, "dps", &dps.shared_access_policies)
}

fn validate_event_hub_endpoint(
    file: &str,
    base: &str,
    endpoint: &EventHubEndpointSection,
) -> Result<(), FixtureError> {
    if let Some(path) = &endpoint.path
        && !event_hubs::valid_entity_name(path)
    {
        return Err(err(
            file,
            &format!("{base}.path"),
            format!(
                "'{path}' is not a valid Event Hub name (1–256 letters, digits, '.', '-', '_', starting and ending with a letter or digit)"
            ),
        ));
    }
    if let Some(count) = endpoint.partition_count
        && !event_hubs::PARTITION_COUNTS.contains(&count)
    {
        return Err(err(
            file,
            &format!("{base}.partitionCount"),
            format!("{count} is outside 2–128"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, group) in endpoint.consumer_groups.iter().enumerate() {
        if !event_hubs::valid_consumer_group(group) || !seen.insert(group.to_ascii_lowercase()) {
            return Err(err(
                file,
                &format!("{base}.consumerGroups[{i}]"),
                format!(
                    "'{group}' is used twice or is not a valid consumer group name (1–50 letters, digits, '.', '-', '_')"
                ),
            ));
        }
    }
    Ok(())
}

fn validate_host(file: &str, path: &str, host: &str) -> Result<(), FixtureError> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(err(
            file,
            path,
            format!("'{host}' is not a valid host name"),
        ))
    }
}

fn validate_policies(
    file: &str,
    base: &str,
    policies: &[AccessPolicy],
) -> Result<(), FixtureError> {
    for (i, policy) in policies.iter().enumerate() {
        let path = format!("{base}.sharedAccessPolicies[{i}]");
        if policy.key_name.is_empty() {
            return Err(err(
                file,
                &format!("{path}.keyName"),
                "must not be empty".into(),
            ));
        }
        check_key(file, &format!("{path}.primaryKey"), &policy.primary_key)?;
        if let Some(key) = &policy.secondary_key {
            check_key(file, &format!("{path}.secondaryKey"), key)?;
        }
    }
    Ok(())
}

fn validate_certificates(
    file: &str,
    base: &str,
    certificates: &[CertificateEntry],
) -> Result<(), FixtureError> {
    let mut names = HashSet::new();
    for (i, entry) in certificates.iter().enumerate() {
        let path = format!("{base}.certificates[{i}]");
        if entry.name.is_empty() || !names.insert(entry.name.to_ascii_lowercase()) {
            return Err(err(
                file,
                &format!("{path}.name"),
                format!("'{}' is empty or used twice", entry.name),
            ));
        }
        crate::auth::x509::decode_certificate(&entry.certificate)
            .map_err(|e| err(file, &format!("{path}.certificate"), e.to_string()))?;
    }
    Ok(())
}

fn check_key(file: &str, path: &str, key: &str) -> Result<(), FixtureError> {
    validate::symmetric_key(path, key)
        .map(|_| ())
        .map_err(|bad| err(file, &bad.path, bad.reason))
}

fn at(file: &str, base: &str, bad: validate::Invalid) -> FixtureError {
    err(file, &format!("{base}.{}", bad.path), bad.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inline(name: &str, json: &str) -> FixtureSource {
        FixtureSource::Inline {
            name: name.into(),
            json: json.into(),
        }
    }

    #[test]
    fn quickstart_loads_with_the_documented_values() {
        let set = FixtureSet::load(&[]).unwrap();
        assert_eq!(set.dps.id_scope, "0ne00000A0A");
        assert_eq!(set.dps.host_name, "localhost");
        assert_eq!(set.hubs[0].host_name, "localhost");
        let e = &set.enrollments[0];
        assert_eq!(e.registration_id, "symm-key-python-device-008");
        assert_eq!(e.device_id.as_deref(), Some("python-device-008"));
        assert_eq!(
            set.enrollment_groups[0].enrollment_group_id,
            "quickstart-group"
        );
        // Fields the emulator does not interpret (capabilities…) are kept, not dropped.
        assert!(e.extra.contains_key("capabilities"));
        assert!(e.reprovision_policy.is_some_and(|p| p.migrate_device_data));
    }

    #[test]
    fn enrollment_only_file_gets_default_instance_and_merges() {
        let extra = inline(
            "extra.json",
            r#"{"enrollments":[{"registrationId":"dev-2","attestation":{"type":"symmetricKey"}}]}"#,
        );
        let set = FixtureSet::load(&[FixtureSource::quickstart(), extra]).unwrap();
        assert_eq!(set.enrollments.len(), 2);
        let keys = set.enrollments[1]
            .attestation
            .symmetric_key
            .clone()
            .unwrap();
        // Missing keys are generated, deterministically.
        assert_eq!(
            keys.primary_key.unwrap(),
            validate::deterministic_key("enrollment", "dev-2", "primaryKey")
        );
    }

    #[test]
    fn errors_name_file_path_and_reason() {
        let cases = [
            (
                r#"{"enrollments":[{"registrationId":"a","attestation":{"type":"bogus"}}]}"#,
                "enrollments[0].attestation.type",
            ),
            (
                r#"{"enrollments":[{"registrationId":"a","attestation":{"type":"symmetricKey","symmetricKey":{"primaryKey":"!!"}}}]}"#,
                "enrollments[0].attestation.symmetricKey.primaryKey",
            ),
            (
                r#"{"enrollments":[{"registrationId":"bad id","attestation":{"type":"symmetricKey"}}]}"#,
                "enrollments[0].registrationId",
            ),
            (
                r#"{"enrollmentGroups":[{"enrollmentGroupId":"g","iotHubs":["nowhere"],"attestation":{"type":"symmetricKey"}}]}"#,
                "enrollmentGroups[0].iotHubs[0]",
            ),
            (r#"{"enrolments":[]}"#, "enrolments"),
        ];
        for (json, path) in cases {
            let e = FixtureSet::load(&[inline("f.json", json)]).unwrap_err();
            assert_eq!(e.file, "f.json");
            assert_eq!(e.path, path, "{e}");
            assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn event_hub_settings_and_routes_are_checked_with_their_path() {
        let cases = [
            (
                r#"{"hubs":[{"hostName":"h","routing":{"routes":[{"name":"r","source":"DeviceMessages","condition":"$body.x = 1","endpointNames":["events"]}]}}]}"#,
                "hubs[0].routing.routes[0].condition",
            ),
            (
                r#"{"hubs":[{"hostName":"h","eventHubEndpoint":{"partitionCount":129}}]}"#,
                "hubs[0].eventHubEndpoint.partitionCount",
            ),
            (
                r#"{"hubs":[{"hostName":"h","eventHubEndpoint":{"consumerGroups":["a","A"]}}]}"#,
                "hubs[0].eventHubEndpoint.consumerGroups[1]",
            ),
            (
                r#"{"hubs":[{"hostName":"h","eventHubEndpoint":{"path":"-bad"}}]}"#,
                "hubs[0].eventHubEndpoint.path",
            ),
            (
                r#"{"hubs":[{"hostName":"hub.a.example"},{"hostName":"hub.b.example"}]}"#,
                "hubs[1].eventHubEndpoint.path",
            ),
        ];
        for (json, path) in cases {
            let e = FixtureSet::load(&[inline("f.json", json)]).unwrap_err();
            assert_eq!(e.path, path, "{e}");
        }
        let ok = inline(
            "f.json",
            r#"{"hubs":[{"hostName":"hub.a.example"},{"hostName":"hub.b.example","eventHubEndpoint":{"path":"hub-b"}}]}"#,
        );
        assert!(FixtureSet::load(&[ok]).is_ok());
        let quickstart = FixtureSet::load(&[]).unwrap();
        let routes = Routes::from_fixture(quickstart.hubs[0].routing.as_ref().unwrap()).unwrap();
        assert_eq!(
            routes.sources(),
            vec![
                "DeviceMessages",
                "TwinChangeEvents",
                "DeviceLifecycleEvents",
                "DeviceConnectionStateEvents"
            ]
        );
    }

    #[test]
    fn duplicates_across_files_are_rejected() {
        let a = inline("a.json", r#"{"dps":{"idScope":"0ne1","hostName":"h"}}"#);
        let b = inline("b.json", r#"{"dps":{"idScope":"0ne2","hostName":"h"}}"#);
        let e = FixtureSet::load(&[a, b]).unwrap_err();
        assert_eq!((e.file.as_str(), e.path.as_str()), ("b.json", "dps"));
        let again = inline(
            "c.json",
            r#"{"enrollments":[{"registrationId":"SYMM-KEY-PYTHON-DEVICE-008","attestation":{"type":"symmetricKey"}}]}"#,
        );
        let e = FixtureSet::load(&[FixtureSource::quickstart(), again]).unwrap_err();
        assert_eq!(e.path, "enrollments[0].registrationId");
    }
}
