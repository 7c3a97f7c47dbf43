//! IoT Hub service API, scheduled jobs (iot-hub-devguide-jobs.md; azure-iot-hub's
//! `IoTHubJobManager`, azure-iothub's `JobClient`):
//!
//! * `PUT /jobs/v2/{id}` with `{jobId, type, queryCondition, startTime,
//!   maxExecutionTimeInSeconds, updateTwin | cloudToDeviceMethod}` → `200` JobResponse
//!   (`queued`). `type` is `scheduleUpdateTwin` or `scheduleDeviceMethod`; `startTime` may be
//!   null or absent (now), `queryCondition` `*` selects every device.
//! * `GET /jobs/v2/{id}` → `200` JobResponse, `404` JobNotFound.
//! * `POST /jobs/v2/{id}/cancel` → `200` JobResponse (`cancelled`).
//! * `GET /jobs/v2/query?jobType=&jobStatus=` → `200 [JobResponse, …]`, oldest first, paged by
//!   `x-ms-max-item-count` and `x-ms-continuation` (absent on the last page: the Node SDK loops
//!   while it is present). A JSON array as the service sends it.
//! * Import/export jobs (`/jobs/create`, `/jobs`, `/jobs/{id}`) → `501` NotImplemented.
//!
//! Writes need RegistryWrite or ServiceConnect, reads RegistryRead or ServiceConnect. The job
//! itself runs in the hub (`hub::jobs`).

use std::time::Duration;

use hyper::Method;
use serde_json::{Map, Value};

use super::hub_methods::MethodInvocation;
use super::hub_service::{Rights, ServiceGroup};
use super::reply::{self, Reply};
use super::request::Request;
use crate::hub::error::HubError;
use crate::hub::jobs::DEFAULT_MAX_EXECUTION;
use crate::hub::{Hub, JobAction, JobSpec};
use crate::query as query_string;
use crate::timefmt::parse_utc;

const JOB_WRITE: Rights = &["RegistryWrite", "ServiceConnect"];
const JOB_READ: Rights = &["RegistryRead", "ServiceConnect"];

/// Page size without `x-ms-max-item-count`.
const DEFAULT_PAGE: usize = 100;

pub(super) enum Operation<'p> {
    Create(&'p str),
    Get(&'p str),
    Cancel(&'p str),
    Query,
    ImportExport,
}

/// The jobs routes.
pub(super) struct Jobs;

impl ServiceGroup for Jobs {
    type Operation<'p> = Operation<'p>;

    fn parse<'p>(
        method: &Method,
        fixed: &[&str],
        segments: &[&'p str],
    ) -> Option<(Rights, Operation<'p>)> {
        let id = || segments.get(2).copied().unwrap_or_default();
        match (method, fixed) {
            // Before `{id}`, or a job named `query` would take the route.
            (&Method::GET, ["jobs", "v2", "query"]) => Some((JOB_READ, Operation::Query)),
            (&Method::PUT, ["jobs", "v2", _]) => Some((JOB_WRITE, Operation::Create(id()))),
            (&Method::GET, ["jobs", "v2", _]) => Some((JOB_READ, Operation::Get(id()))),
            (&Method::POST, ["jobs", "v2", _, "cancel"]) => {
                Some((JOB_WRITE, Operation::Cancel(id())))
            }
            (_, ["jobs", "create"] | ["jobs"] | ["jobs", _]) => {
                Some((JOB_WRITE, Operation::ImportExport))
            }
            _ => None,
        }
    }

    async fn apply<'a>(
        hub: &'a Hub,
        req: &'a Request<'a>,
        operation: Operation<'a>,
    ) -> Result<Reply, HubError> {
        let now = hub.clock().now();
        match operation {
            Operation::Create(id) => {
                let spec = job_spec(id, &req.body)?;
                let job = hub.create_job(spec, now)?.durable().await?;
                Ok(reply::json(200, &job.response()))
            }
            Operation::Get(id) => Ok(reply::json(200, &hub.job(id)?.response())),
            Operation::Cancel(id) => {
                let job = hub.cancel_job(id, now)?.durable().await?;
                Ok(reply::json(200, &job.response()))
            }
            Operation::Query => query_jobs(hub, req),
            Operation::ImportExport => Err(HubError::not_implemented(
                "Import and export of devices (/jobs/create)",
            )),
        }
    }
}

/// The job a `PUT /jobs/v2/{id}` body describes.
fn job_spec(path_id: &str, body: &[u8]) -> Result<JobSpec, HubError> {
    let bad = |why: String| HubError::argument_invalid(why);
    let request: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("The job request is not JSON: {e}")))?;
    let text = |name: &str| request.get(name).and_then(Value::as_str);
    if let Some(body_id) = text("jobId")
        && body_id != path_id
    {
        return Err(bad(format!(
            "The jobId in the body ('{body_id}') is not the one in the path ('{path_id}')"
        )));
    }
    let seconds =
        |value: Option<&Value>, name: &str, max: u64| -> Result<Option<Duration>, HubError> {
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_u64() {
                    Some(n) if n <= max => Ok(Some(Duration::from_secs(n))),
                    _ => Err(bad(format!(
                        "{name} must be a whole number of seconds up to {max}"
                    ))),
                },
            }
        };
    let action = match text("type") {
        Some("scheduleUpdateTwin") => {
            let update = request
                .get("updateTwin")
                .and_then(Value::as_object)
                .ok_or_else(|| bad("A scheduleUpdateTwin job needs updateTwin".into()))?;
            // What a service twin update takes; the etag ('*' in the samples), the device id
            // and reported properties (which the Node SDK's tests send empty) are not applied.
            let mut patch = Map::new();
            if let Some(tags) = update.get("tags").filter(|t| !t.is_null()) {
                patch.insert("tags".into(), tags.clone());
            }
            if let Some(desired) = update
                .get("properties")
                .and_then(|p| p.get("desired"))
                .filter(|d| !d.is_null())
            {
                patch.insert(
                    "properties".into(),
                    serde_json::json!({ "desired": desired }),
                );
            }
            JobAction::UpdateTwin {
                patch: Value::Object(patch),
            }
        }
        Some("scheduleDeviceMethod") => {
            // The same body and timeout rules as a direct method call (`POST …/methods`).
            let method = request
                .get("cloudToDeviceMethod")
                .filter(|m| m.is_object())
                .ok_or_else(
                    || bad("A scheduleDeviceMethod job needs cloudToDeviceMethod".into()),
                )?;
            let invocation = MethodInvocation::from_body(method.to_string().as_bytes())?;
            if invocation.method_name.is_empty() {
                return Err(bad("cloudToDeviceMethod.methodName is required".into()));
            }
            JobAction::DeviceMethod {
                response_timeout: invocation.response_timeout(),
                connect_timeout: invocation.connect_timeout(),
                method_name: invocation.method_name,
                payload: invocation.payload,
            }
        }
        other => {
            return Err(bad(format!(
                "The job type {other:?} is not one of scheduleUpdateTwin, scheduleDeviceMethod"
            )));
        }
    };
    let start = match request.get("startTime") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(
            parse_utc(t)
                .ok_or_else(|| bad(format!("startTime '{t}' is not an ISO 8601 UTC time")))?,
        ),
        Some(_) => return Err(bad("startTime must be a string".into())),
    };
    Ok(JobSpec {
        id: path_id.to_owned(),
        action,
        query_condition: text("queryCondition").unwrap_or_default().to_owned(),
        start,
        max_execution: seconds(
            request.get("maxExecutionTimeInSeconds"),
            "maxExecutionTimeInSeconds",
            // A year: more than any test waits, and far from overflowing a time.
            365 * 24 * 3600,
        )?
        .unwrap_or(DEFAULT_MAX_EXECUTION),
    })
}

/// One page of `GET /jobs/v2/query`; the continuation token is the number of jobs returned
/// before it.
fn query_jobs(hub: &Hub, req: &Request<'_>) -> Result<Reply, HubError> {
    let kind = query_string::value(&req.query, "jobType");
    let status = query_string::value(&req.query, "jobStatus");
    let jobs = hub.jobs(kind.as_deref(), status.as_deref());
    let size = req
        .header("x-ms-max-item-count")
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_PAGE)
        .min(crate::hub::query::MAX_PAGE_SIZE);
    let skip = match req.header("x-ms-continuation").map(str::trim) {
        None | Some("") => 0,
        Some(token) => token
            .strip_prefix("iotemu-jobs:")
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| {
                HubError::argument_invalid("The continuation token is not one iotemu gave")
            })?,
    };
    let page: Vec<Value> = jobs
        .iter()
        .skip(skip)
        .take(size)
        .map(|j| j.response())
        .collect();
    let returned = skip.saturating_add(page.len());
    let mut reply = reply::with_header(reply::json(200, &page), "x-ms-item-type", "jobResponse");
    if returned < jobs.len() {
        reply = reply::with_header(
            reply,
            "x-ms-continuation",
            &format!("iotemu-jobs:{returned}"),
        );
    }
    Ok(reply)
}
