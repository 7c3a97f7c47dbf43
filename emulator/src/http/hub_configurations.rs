//! IoT Hub service API, automatic device configurations (iot-hub-automatic-device-management.md;
//! azure-iot-hub's `IoTHubConfigurationManager`, azure-iothub's `Registry.addConfiguration` …):
//!
//! * `PUT /configurations/{id}` (optional `If-Match`) → `200` Configuration: creates, or
//!   updates the target condition, priority, labels and metric queries of an existing one
//!   (read-only fields in the body — times, metrics results, ETag — are ignored, as clients
//!   send back what they read);
//! * `GET /configurations/{id}` → `200`; `GET /configurations[/]?top=N` → `200 [Configuration]`;
//! * `DELETE /configurations/{id}` (optional `If-Match`) → `204`;
//! * `POST /configurations/testQueries` with `{targetCondition, customMetricQueries}` → `200
//!   {targetConditionError, customMetricQueryErrors}`;
//! * `POST /devices/{id}/applyConfigurationContent` with `{modulesContent}` → `204`.
//!
//! Writes need RegistryWrite, reads RegistryRead. The rules are the hub's
//! (`hub::configurations`).

use std::collections::BTreeMap;

use hyper::Method;
use serde_json::{Map, Value, json};

use super::hub_service::{REGISTRY_READ, REGISTRY_WRITE, Rights, ServiceGroup};
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::error::HubError;
use crate::hub::query as twin_query;
use crate::hub::{ConfigurationSpec, Hub};
use crate::query as query_string;

pub(super) enum Operation<'p> {
    Put(&'p str),
    Get(&'p str),
    List,
    Delete(&'p str),
    TestQueries,
    Apply(&'p str),
}

/// The configuration routes.
pub(super) struct Configurations;

impl ServiceGroup for Configurations {
    type Operation<'p> = Operation<'p>;

    fn parse<'p>(
        method: &Method,
        fixed: &[&str],
        segments: &[&'p str],
    ) -> Option<(Rights, Operation<'p>)> {
        let id = || segments.get(1).copied().unwrap_or_default();
        match (method, fixed) {
            (&Method::POST, ["configurations", "testqueries"]) => {
                Some((REGISTRY_READ, Operation::TestQueries))
            }
            (&Method::GET, ["configurations"]) => Some((REGISTRY_READ, Operation::List)),
            (&Method::GET, ["configurations", _]) => Some((REGISTRY_READ, Operation::Get(id()))),
            (&Method::PUT, ["configurations", _]) => Some((REGISTRY_WRITE, Operation::Put(id()))),
            (&Method::DELETE, ["configurations", _]) => {
                Some((REGISTRY_WRITE, Operation::Delete(id())))
            }
            (&Method::POST, ["devices", _, "applyconfigurationcontent"]) => {
                Some((REGISTRY_WRITE, Operation::Apply(id())))
            }
            _ => None,
        }
    }

    async fn apply<'a>(
        hub: &'a Hub,
        req: &'a Request<'a>,
        operation: Operation<'a>,
    ) -> Result<Reply, HubError> {
        match operation {
            Operation::Put(id) => {
                let spec = configuration_spec(id, &req.body)?;
                let now = hub.clock().now();
                let stored = hub
                    .put_configuration(spec, req.if_match(), now)?
                    .durable()
                    .await?;
                Ok(reply::json(200, &hub.configuration_response(&stored)))
            }
            Operation::Get(id) => {
                let configuration = hub.configuration(id)?;
                Ok(reply::json(
                    200,
                    &hub.configuration_response(&configuration),
                ))
            }
            Operation::List => {
                let top = query_string::value(&req.query, "top").and_then(|t| t.parse().ok());
                let all: Vec<Value> = hub
                    .configurations(top)
                    .iter()
                    .map(|c| hub.configuration_response(c))
                    .collect();
                Ok(reply::json(200, &all))
            }
            Operation::Delete(id) => {
                hub.delete_configuration(id, req.if_match())?
                    .durable()
                    .await?;
                Ok(reply::empty(204))
            }
            Operation::TestQueries => test_queries(&req.body),
            Operation::Apply(device_id) => {
                let body = json_body(&req.body)?;
                let modules = body
                    .get("modulesContent")
                    .and_then(Value::as_object)
                    .ok_or_else(|| {
                        HubError::argument_invalid("modulesContent is required (IoT Edge modules)")
                    })?;
                hub.apply_configuration_content(device_id, modules).await?;
                Ok(reply::empty(204))
            }
        }
    }
}

fn json_body(body: &[u8]) -> Result<Value, HubError> {
    serde_json::from_slice(body)
        .map_err(|e| HubError::argument_invalid(format!("The body is not valid JSON: {e}")))
}

/// The configuration a `PUT` body describes; what only the hub sets is ignored.
fn configuration_spec(path_id: &str, body: &[u8]) -> Result<ConfigurationSpec, HubError> {
    let body = json_body(body)?;
    let bad = |why: String| HubError::argument_invalid(why);
    if let Some(body_id) = body.get("id").and_then(Value::as_str)
        && body_id != path_id
    {
        return Err(bad(format!(
            "The id in the body ('{body_id}') is not the one in the path ('{path_id}')"
        )));
    }
    let content = body.get("content").cloned().unwrap_or(Value::Null);
    let non_empty = |name: &str| {
        content
            .get(name)
            .and_then(Value::as_object)
            .is_some_and(|o| !o.is_empty())
    };
    if non_empty("modulesContent") || non_empty("moduleContent") {
        return Err(HubError::not_implemented(
            "IoT Edge deployments (modulesContent) and module configurations (moduleContent)",
        ));
    }
    let device_content: Map<String, Value> = match content.get("deviceContent") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(bad("content.deviceContent must be an object".into())),
    };
    let strings =
        |value: Option<&Value>, what: &str| -> Result<BTreeMap<String, String>, HubError> {
            match value {
                None | Some(Value::Null) => Ok(BTreeMap::new()),
                Some(Value::Object(map)) => map
                    .iter()
                    .map(|(k, v)| match v.as_str() {
                        Some(v) => Ok((k.clone(), v.to_owned())),
                        None => Err(bad(format!("{what}.{k} must be a string"))),
                    })
                    .collect(),
                Some(_) => Err(bad(format!("{what} must be an object of strings"))),
            }
        };
    let priority = match body.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_i64()
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| bad("priority must be a 32-bit integer".into()))?,
    };
    Ok(ConfigurationSpec {
        id: path_id.to_owned(),
        schema_version: body
            .get("schemaVersion")
            .and_then(Value::as_str)
            .map(str::to_owned),
        labels: strings(body.get("labels"), "labels")?,
        device_content,
        target_condition: body
            .get("targetCondition")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        priority,
        metric_queries: strings(body.pointer("/metrics/queries"), "metrics.queries")?,
    })
}

/// `POST /configurations/testQueries`: each query's parse error, empty when it parses.
fn test_queries(body: &[u8]) -> Result<Reply, HubError> {
    let body = json_body(body)?;
    let error = |text: &str| {
        twin_query::parse(text)
            .err()
            .map_or(String::new(), |e| e.message)
    };
    let target = body
        .get("targetCondition")
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or_default();
    let target_error = match target {
        "" | "*" => String::new(),
        condition => error(&format!("SELECT * FROM devices WHERE {condition}")),
    };
    let mut metric_errors = Map::new();
    if let Some(queries) = body.get("customMetricQueries").and_then(Value::as_object) {
        for (name, query) in queries {
            let message = query.as_str().map_or("not a string".to_owned(), error);
            metric_errors.insert(name.clone(), json!(message));
        }
    }
    Ok(reply::json(
        200,
        &json!({ "targetConditionError": target_error, "customMetricQueryErrors": metric_errors }),
    ))
}
