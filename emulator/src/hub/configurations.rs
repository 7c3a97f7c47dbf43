//! Automatic device configurations (iot-hub-automatic-device-management.md): desired
//! properties that the hub writes into every device twin a target condition selects, the
//! highest-priority configuration winning each twin path, with metrics counting the twins.
//!
//! A configuration's `content.deviceContent` maps twin paths under `properties.desired`
//! (`"properties.desired.chiller-water": {…}`, or down to a leaf) to values. For each device the
//! hub takes the configurations whose `targetCondition` (a twin query condition, `*` for all)
//! matches, highest `priority` first and the newest first on a tie, and gives each path to
//! the first that sets it (or a path above or below it). A configuration that got at least one
//! path is `Applied` for the device (`configurations.[[id]].status` in queries), one that got
//! none `Targeted`. What a configuration wrote and no longer owns — the twin left its target,
//! the configuration was deleted, a higher priority took the path — is removed from the twin
//! (set to null), and the next configuration's value takes its place.
//!
//! The hub evaluates all twins in one task ([`Hub::run_configurations`]) right after a
//! configuration is created, updated or deleted and after any twin changes (a tag moving a
//! device into a target), and every five minutes on the emulator's clock, as Azure does, which
//! also catches devices just created. Metrics are counted when a configuration is read.
//!
//! Content is fixed at creation, as on Azure: an update changes the target condition,
//! priority, labels and metric queries only. IoT Edge deployments (`modulesContent`) and module
//! configurations (`moduleContent`) are refused; `applyConfigurationContent` sets module twins
//! directly (`Hub::apply_configuration_content`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Hub;
use super::error::HubError;
use super::query::{self as twin_query, Projection, Query};
use crate::pending::Pending;
use crate::shutdown::ShutdownSignal;
use crate::timefmt::utc_timestamp;

/// Azure's limit on configurations per standard hub.
pub(crate) const MAX_CONFIGURATIONS: usize = 100;

/// Azure's limit on custom metrics per configuration.
pub(crate) const MAX_CUSTOM_METRICS: usize = 5;

/// How often every configuration is evaluated again without a change (Azure: five minutes).
pub(crate) const EVALUATION_INTERVAL: Duration = Duration::from_secs(300);

/// Azure's limit on an id: 128 characters.
const MAX_ID: usize = 128;

/// What a create or update asks for, parsed from the request by the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigurationSpec {
    pub id: String,
    pub schema_version: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `deviceContent`: twin path (`properties.desired…`) → value.
    pub device_content: Map<String, Value>,
    pub target_condition: String,
    pub priority: i32,
    pub metric_queries: BTreeMap<String, String>,
}

/// A stored configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Configuration {
    pub id: String,
    pub schema_version: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub device_content: Map<String, Value>,
    pub target_condition: String,
    pub priority: i32,
    pub metric_queries: BTreeMap<String, String>,
    pub created: SystemTime,
    pub last_updated: SystemTime,
    /// Counts writes; the ETag is its base64, as Azure's `"MQ=="` for the first.
    pub version: u64,
}

impl Configuration {
    pub fn etag(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.version.to_string())
    }

    /// The system metric queries Azure shows (and iotemu counts).
    fn system_queries(&self) -> BTreeMap<&'static str, String> {
        let targeted = if self.target_condition.trim().is_empty() {
            String::new()
        } else {
            format!(
                "select deviceId from devices where {}",
                self.target_condition
            )
        };
        BTreeMap::from([
            ("targetedCount", targeted),
            (
                "appliedCount",
                format!(
                    "select deviceId from devices where configurations.[[{}]].status = 'Applied'",
                    self.id
                ),
            ),
        ])
    }
}

/// A configuration's id: 1–128 lower-case letters, digits and `-+%_*!'` (Azure's rule).
fn check_id(id: &str) -> Result<(), HubError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-+%_*!'".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(HubError::argument_invalid(format!(
            "The configuration id '{}' is invalid: 1-128 lower-case letters, digits and -+%_*!'",
            id.escape_default()
        )))
    }
}

/// The device query a target condition stands for (`*`: every device; empty: none).
fn target_query(condition: &str) -> Result<Option<Query>, HubError> {
    let text = match condition.trim() {
        "" => return Ok(None),
        "*" => "SELECT * FROM devices".to_owned(),
        condition => format!("SELECT * FROM devices WHERE {condition}"),
    };
    twin_query::parse(&text).map(Some).map_err(|e| {
        HubError::argument_invalid(format!("The targetCondition is invalid: {}", e.message))
    })
}

/// A metric query: `SELECT …` over devices; its result is the number of rows.
fn metric_query(name: &str, text: &str) -> Result<Query, HubError> {
    twin_query::parse(text).map_err(|e| {
        HubError::argument_invalid(format!(
            "The metric query '{name}' is invalid: {}",
            e.message
        ))
    })
}

/// The path under `properties.desired` a content key names, or an error.
fn desired_path(key: &str) -> Result<Vec<String>, HubError> {
    let rest = key
        .strip_prefix("properties.desired")
        .filter(|rest| rest.is_empty() || rest.starts_with('.'))
        .ok_or_else(|| {
            HubError::argument_invalid(format!(
                "deviceContent key '{key}' does not start with properties.desired"
            ))
        })?;
    let path: Vec<String> = rest
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    Ok(path)
}

/// Validates a spec as a create or an update would store it.
fn check_spec(spec: &ConfigurationSpec) -> Result<(), HubError> {
    check_id(&spec.id)?;
    target_query(&spec.target_condition)?;
    if spec.metric_queries.len() > MAX_CUSTOM_METRICS {
        return Err(HubError::argument_invalid(format!(
            "A configuration has at most {MAX_CUSTOM_METRICS} custom metrics"
        )));
    }
    for (name, text) in &spec.metric_queries {
        metric_query(name, text)?;
    }
    for key in spec.device_content.keys() {
        desired_path(key)?;
    }
    Ok(())
}

/// Which configuration owns which desired paths of one device, and what it wrote there:
/// kept (durably with `--data-dir`) so that what a configuration gives up can be removed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct DeviceClaims {
    /// (path under desired, value, configuration id)
    paths: Vec<(Vec<String>, Value, String)>,
    /// Configuration id → `Applied` / `Targeted`.
    status: BTreeMap<String, String>,
}

/// The hub's configurations and what they did to each twin.
#[derive(Default)]
pub(crate) struct ConfigurationList {
    configurations: std::sync::Mutex<Vec<Configuration>>,
    claims: std::sync::Mutex<HashMap<String, DeviceClaims>>,
    changed: tokio::sync::Notify,
}

impl ConfigurationList {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Configuration>> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.configurations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn claims(&self) -> std::sync::MutexGuard<'_, HashMap<String, DeviceClaims>> {
        self.claims.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A twin changed: evaluate again, if there is anything to evaluate.
    pub(crate) fn twin_changed(&self) {
        if !self.lock().is_empty() || !self.claims().is_empty() {
            self.changed.notify_one();
        }
    }

    pub(crate) fn restore(&self, configuration: Configuration) {
        let mut list = self.lock();
        list.retain(|c| c.id != configuration.id);
        list.push(configuration);
        list.sort_by_key(|c| c.created);
        drop(list);
        self.changed.notify_one();
    }

    pub(crate) fn forget(&self, id: &str) {
        self.lock().retain(|c| c.id != id);
    }

    /// Puts back what configurations had written to a device's twin.
    pub(crate) fn restore_claims(&self, device_id: String, claims: Option<DeviceClaims>) {
        match claims {
            Some(claims) => self.claims().insert(device_id, claims),
            None => self.claims().remove(&device_id),
        };
    }
}

impl Hub {
    /// `PUT /configurations/{id}`: creates, or (an existing id) updates the target
    /// condition, priority, labels and metric queries — with `if_match` checked against the
    /// ETag (`*` or none: unconditional). Content cannot change: 400.
    pub fn put_configuration(
        &self,
        spec: ConfigurationSpec,
        if_match: Option<&str>,
        now: SystemTime,
    ) -> Result<Pending<'_, Configuration>, HubError> {
        check_spec(&spec)?;
        let mut list = self.configurations.lock();
        let configuration = match list.iter().position(|c| c.id == spec.id) {
            Some(index) => {
                let current = &list[index];
                if let Some(expected) = if_match
                    && !crate::etag::matches(expected, Some(&current.etag()))
                {
                    return Err(HubError::configuration_etag_mismatch(&spec.id));
                }
                if spec.device_content != current.device_content {
                    return Err(HubError::argument_invalid(format!(
                        "The content of configuration '{}' cannot be changed; create another configuration",
                        spec.id
                    )));
                }
                let updated = Configuration {
                    labels: spec.labels,
                    target_condition: spec.target_condition,
                    priority: spec.priority,
                    metric_queries: spec.metric_queries,
                    schema_version: spec.schema_version.or(current.schema_version.clone()),
                    last_updated: now,
                    version: current.version.saturating_add(1),
                    ..current.clone()
                };
                let commit = self.save_configuration(&updated)?;
                list[index] = updated.clone();
                Pending::new(updated, commit)
            }
            None => {
                if list.len() >= MAX_CONFIGURATIONS {
                    return Err(HubError::too_many_configurations(MAX_CONFIGURATIONS));
                }
                let created = Configuration {
                    id: spec.id,
                    schema_version: spec.schema_version,
                    labels: spec.labels,
                    device_content: spec.device_content,
                    target_condition: spec.target_condition,
                    priority: spec.priority,
                    metric_queries: spec.metric_queries,
                    created: now,
                    last_updated: now,
                    version: 1,
                };
                let commit = self.save_configuration(&created)?;
                list.push(created.clone());
                Pending::new(created, commit)
            }
        };
        drop(list);
        self.configurations.changed.notify_one();
        Ok(configuration)
    }

    /// A configuration by id.
    pub fn configuration(&self, id: &str) -> Result<Configuration, HubError> {
        self.configurations
            .lock()
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .ok_or_else(|| HubError::configuration_not_found(id))
    }

    /// Every configuration, oldest first, at most `top`.
    pub fn configurations(&self, top: Option<usize>) -> Vec<Configuration> {
        let list = self.configurations.lock();
        list.iter()
            .take(top.unwrap_or(usize::MAX))
            .cloned()
            .collect()
    }

    /// `DELETE /configurations/{id}`, with `if_match` checked (`*` or none: unconditional).
    /// The twins it configured are evaluated again: its values go, the next ones come.
    pub fn delete_configuration(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> Result<Pending<'_, ()>, HubError> {
        let mut list = self.configurations.lock();
        let index = list
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| HubError::configuration_not_found(id))?;
        if let Some(expected) = if_match
            && !crate::etag::matches(expected, Some(&list[index].etag()))
        {
            return Err(HubError::configuration_etag_mismatch(id));
        }
        let commit = self.forget_configuration(id)?;
        list.remove(index);
        drop(list);
        self.configurations.changed.notify_one();
        Ok(Pending::new((), commit))
    }

    /// The configuration as the service answers it, with its metrics counted now.
    pub fn configuration_response(&self, configuration: &Configuration) -> Value {
        let documents = self.query_twin_documents();
        let count = |query: &Query| match query.projection {
            Projection::Count { .. } => query
                .run(documents.clone(), None, None)
                .ok()
                .and_then(|page| page.items.first().cloned())
                .and_then(|row| row.as_object().and_then(|o| o.values().next().cloned()))
                .and_then(|n| n.as_u64())
                .unwrap_or(0),
            _ => documents.iter().filter(|d| query.matches(d)).count() as u64,
        };
        let system_queries = configuration.system_queries();
        let mut system_results = Map::new();
        for (name, text) in &system_queries {
            let result = twin_query::parse(text).map_or(0, |q| count(&q));
            system_results.insert((*name).to_owned(), json!(result));
        }
        let mut results = Map::new();
        for (name, text) in &configuration.metric_queries {
            let result = metric_query(name, text).map_or(0, |q| count(&q));
            results.insert(name.clone(), json!(result));
        }
        json!({
            "id": configuration.id,
            "schemaVersion": configuration.schema_version,
            "labels": configuration.labels,
            "content": { "deviceContent": configuration.device_content },
            "targetCondition": configuration.target_condition,
            "createdTimeUtc": utc_timestamp(configuration.created),
            "lastUpdatedTimeUtc": utc_timestamp(configuration.last_updated),
            "priority": configuration.priority,
            "systemMetrics": { "results": system_results, "queries": system_queries },
            "metrics": { "results": results, "queries": configuration.metric_queries },
            "etag": configuration.etag(),
        })
    }

    /// Device twins as queries read them: with `configurations: {id: {status}}` from the
    /// configurations that target each device.
    pub(crate) fn query_twin_documents(&self) -> Vec<Value> {
        let mut documents = self.twin_documents();
        let claims = self.configurations.claims();
        if claims.is_empty() {
            return documents;
        }
        for document in &mut documents {
            let Some(device) = document["deviceId"].as_str().and_then(|id| claims.get(id)) else {
                continue;
            };
            let statuses: Map<String, Value> = device
                .status
                .iter()
                .map(|(id, status)| (id.clone(), json!({ "status": status })))
                .collect();
            document["configurations"] = Value::Object(statuses);
        }
        documents
    }

    /// Evaluates the configurations against every twin whenever something changes, and
    /// every [`EVALUATION_INTERVAL`] on the emulator's clock, until shutdown.
    pub(crate) async fn run_configurations(self: Arc<Self>, mut shutdown: ShutdownSignal) {
        loop {
            let changed = self.configurations.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            self.evaluate_configurations().await;
            tokio::select! {
                () = &mut changed => {}
                () = self.clock.sleep(EVALUATION_INTERVAL) => {}
                () = shutdown.recv() => break,
            }
        }
    }

    /// One evaluation: every device's claims computed again, and the difference written to
    /// its twin as a desired patch.
    pub(crate) async fn evaluate_configurations(&self) {
        let mut configurations = self.configurations.lock().clone();
        if configurations.is_empty() && self.configurations.claims().is_empty() {
            return;
        }
        // Highest priority first; on a tie, the newest.
        configurations.sort_by(|a, b| b.priority.cmp(&a.priority).then(b.created.cmp(&a.created)));
        let targets: Vec<(Option<Query>, &Configuration)> = configurations
            .iter()
            .map(|c| (target_query(&c.target_condition).ok().flatten(), c))
            .collect();
        for twin in self.twin_documents() {
            let Some(device_id) = twin["deviceId"].as_str() else {
                continue;
            };
            let mut claims = DeviceClaims::default();
            for (query, configuration) in &targets {
                if !query.as_ref().is_some_and(|q| q.matches(&twin)) {
                    continue;
                }
                let mut got_any = false;
                for (key, value) in &configuration.device_content {
                    let Ok(path) = desired_path(key) else {
                        continue;
                    };
                    let overlaps = claims
                        .paths
                        .iter()
                        .any(|(taken, _, _)| taken.starts_with(&path) || path.starts_with(taken));
                    if !overlaps {
                        claims
                            .paths
                            .push((path, value.clone(), configuration.id.clone()));
                        got_any = true;
                    }
                }
                let status = if got_any { "Applied" } else { "Targeted" };
                claims
                    .status
                    .insert(configuration.id.clone(), status.to_owned());
            }
            let previous = self
                .configurations
                .claims()
                .get(device_id)
                .cloned()
                .unwrap_or_default();
            if previous == claims {
                continue;
            }
            let patch = desired_patch(&previous, &claims);
            if !patch.is_empty() {
                let body = json!({ "properties": { "desired": Value::Object(patch) } });
                let written = match self.update_twin(device_id, &body, None, false) {
                    Ok(pending) => pending.durable().await.map(drop).map_err(HubError::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = written {
                    tracing::warn!(hub = %self.host_name, device = device_id, error = %e, "a configuration could not be applied to a twin");
                    continue;
                }
            }
            let kept = (!claims.status.is_empty()).then_some(&claims);
            if let Err(e) = self.save_configuration_claims(device_id, kept) {
                tracing::warn!(hub = %self.host_name, device = device_id, error = %e, "what configurations wrote to a twin could not be stored");
            }
            let mut all = self.configurations.claims();
            if claims.status.is_empty() {
                all.remove(device_id);
            } else {
                all.insert(device_id.to_owned(), claims);
            }
        }
        // Devices that are gone keep no claims.
        let devices: std::collections::HashSet<String> =
            self.devices().into_iter().map(|d| d.device_id).collect();
        let gone: Vec<String> = self
            .configurations
            .claims()
            .keys()
            .filter(|id| !devices.contains(*id))
            .cloned()
            .collect();
        for device_id in gone {
            let _ = self.save_configuration_claims(&device_id, None);
            self.configurations.claims().remove(&device_id);
        }
    }

    /// `POST /devices/{id}/applyConfigurationContent` (IoT Edge): each module of
    /// `modulesContent` gets `properties.desired` as its desired properties, replaced whole.
    /// 404 when the device or a module does not exist; nothing changes then.
    pub async fn apply_configuration_content(
        &self,
        device_id: &str,
        modules_content: &Map<String, Value>,
    ) -> Result<(), HubError> {
        if self.device(device_id).is_none() {
            return Err(HubError::device_not_found(device_id));
        }
        let mut updates = Vec::new();
        for (module_id, content) in modules_content {
            if self.module(device_id, module_id).is_none() {
                return Err(HubError::module_not_found(device_id, module_id));
            }
            let desired = content
                .get("properties.desired")
                .cloned()
                .unwrap_or(json!({}));
            if !desired.is_object() {
                return Err(HubError::argument_invalid(format!(
                    "modulesContent.{module_id}[\"properties.desired\"] must be an object"
                )));
            }
            updates.push((module_id, json!({ "properties": { "desired": desired } })));
        }
        for (module_id, body) in updates {
            self.update_twin_of(
                super::IdentityRef::module(device_id, module_id),
                &body,
                None,
                true,
            )?
            .durable()
            .await?;
        }
        Ok(())
    }
}

/// The desired patch that takes a twin from what `previous` claims wrote to what `next`
/// claims: changed and new paths set, paths no longer claimed (nor under one that is) null.
fn desired_patch(previous: &DeviceClaims, next: &DeviceClaims) -> Map<String, Value> {
    let mut patch = Map::new();
    for (path, _, _) in &previous.paths {
        let still = next
            .paths
            .iter()
            .any(|(p, _, _)| path.starts_with(p) || p.starts_with(path));
        if !still {
            set_path(&mut patch, path, Value::Null);
        }
    }
    for (path, value, _) in &next.paths {
        let unchanged = previous
            .paths
            .iter()
            .any(|(p, v, _)| p == path && v == value);
        if !unchanged {
            set_path(&mut patch, path, value.clone());
        }
    }
    patch
}

/// Sets `value` at `path` in a nested patch object (an empty path is the whole of desired,
/// whose object value is merged in).
fn set_path(patch: &mut Map<String, Value>, path: &[String], value: Value) {
    match path.split_first() {
        None => {
            if let Value::Object(fields) = value {
                patch.extend(fields);
            }
        }
        Some((last, [])) => {
            patch.insert(last.clone(), value);
        }
        Some((first, rest)) => {
            let child = patch
                .entry(first.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            if let Value::Object(child) = child {
                set_path(child, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> Vec<String> {
        desired_path(p).unwrap()
    }

    #[test]
    fn ids_content_keys_and_conditions_are_checked() {
        for good in ["c1", "chiller-settings", "a+b%c_d*e!f'g", &"x".repeat(128)] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in ["", "Upper", "a b", "a/b", &"x".repeat(129)] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            path("properties.desired.chiller.temp"),
            vec!["chiller", "temp"]
        );
        assert!(desired_path("properties.reported.x").is_err());
        assert!(desired_path("properties.desiredx").is_err());
        assert!(target_query("").unwrap().is_none());
        assert!(target_query("*").unwrap().is_some());
        assert!(target_query("tags.env = ").is_err());
    }

    #[test]
    fn patches_set_what_is_new_and_null_what_was_given_up() {
        let claims = |items: &[(&str, Value)]| DeviceClaims {
            paths: items
                .iter()
                .map(|(p, v)| (path(p), v.clone(), "c".to_owned()))
                .collect(),
            status: BTreeMap::new(),
        };
        let before = claims(&[
            ("properties.desired.a.b", json!(1)),
            ("properties.desired.x", json!(2)),
        ]);
        let after = claims(&[
            ("properties.desired.a.b", json!(1)),
            ("properties.desired.y", json!(3)),
        ]);
        assert_eq!(
            Value::Object(desired_patch(&before, &after)),
            json!({"x": null, "y": 3})
        );
        // A path taken over by a parent is not nulled: the parent's value replaces it.
        let parent = claims(&[("properties.desired.a", json!({"b": 5}))]);
        assert_eq!(
            Value::Object(desired_patch(&before, &parent)),
            json!({"x": null, "a": {"b": 5}})
        );
    }
}
