//! Scheduled jobs (iot-hub-devguide-jobs.md): a twin update or a direct method applied to
//! every device a twin query selects, at a start time, with per-device results.
//!
//! A job is created `queued` (as Azure answers, whatever its start time), runs once its start
//! time has come on the emulator's clock (`crate::clock`: an advance starts it), selects its
//! devices then (`*` selects all), applies its action to each, and ends
//! `completed` — also when devices failed, which their own status says (`failed` with an
//! error, e.g. `DeviceNotOnline`), as Azure's job status only says the job ran. Devices are
//! handled side by side, up to 256 at once, so a method job's connect timeouts do not add
//! up. A cancel stops devices not yet started (`canceled`). Devices not done when
//! `maxExecutionTimeInSeconds` has passed since the start fail with `JobTimedOut`.
//!
//! Each hub runs its jobs from one task ([`Hub::run_jobs`]), woken when a job is created or
//! the clock moves. Jobs are kept (durably with `--data-dir`) until [`MAX_KEPT_JOBS`] finished
//! ones push the oldest out; a job that was running when the emulator stopped is `failed`
//! when it starts again.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Hub;
use super::error::HubError;
use super::query::{self as twin_query, Query};
use crate::pending::Pending;
use crate::shutdown::ShutdownSignal;
use crate::timefmt::utc_timestamp;

/// Azure's limit on a job id (iot-hub-devguide-jobs.md).
pub(crate) const MAX_JOB_ID: usize = 64;

/// Finished jobs kept; Azure keeps 30 days of history. Chosen.
pub(crate) const MAX_KEPT_JOBS: usize = 1000;

/// Jobs not finished at once; further creates are refused with 429. Chosen (Azure's S3 limit).
pub(crate) const MAX_ACTIVE_JOBS: usize = 10;

/// `maxExecutionTimeInSeconds` when the request names none (the Node SDK's default).
pub(crate) const DEFAULT_MAX_EXECUTION: Duration = Duration::from_secs(3600);

/// A job's status, spelled as the service sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum JobStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled
        )
    }
}

/// A device's part in a job (one `l` in `canceled`, as the service spells it here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum DeviceJobStatus {
    Pending,
    Running,
    Completed,
    Failed,
    Canceled,
}

impl DeviceJobStatus {
    fn name(self) -> &'static str {
        match self {
            DeviceJobStatus::Pending => "pending",
            DeviceJobStatus::Running => "running",
            DeviceJobStatus::Completed => "completed",
            DeviceJobStatus::Failed => "failed",
            DeviceJobStatus::Canceled => "canceled",
        }
    }
}

/// What a job does to each device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum JobAction {
    /// `scheduleUpdateTwin`: a service twin update (`{"tags", "properties": {"desired"}}`),
    /// merged like `PATCH /twins/{id}`.
    UpdateTwin { patch: Value },
    /// `scheduleDeviceMethod`: a direct method call.
    DeviceMethod {
        method_name: String,
        payload: Value,
        response_timeout: Duration,
        connect_timeout: Duration,
    },
}

impl JobAction {
    /// The job `type` on the wire.
    pub fn type_name(&self) -> &'static str {
        match self {
            JobAction::UpdateTwin { .. } => "scheduleUpdateTwin",
            JobAction::DeviceMethod { .. } => "scheduleDeviceMethod",
        }
    }
}

/// What a create asks for, parsed from the request by the transport.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub id: String,
    pub action: JobAction,
    /// A twin query condition without `WHERE`, or `*` for every device.
    pub query_condition: String,
    /// `None`: now.
    pub start: Option<SystemTime>,
    pub max_execution: Duration,
}

/// One device's part in a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceJob {
    pub device_id: String,
    pub status: DeviceJobStatus,
    pub start: Option<SystemTime>,
    pub end: Option<SystemTime>,
    pub last_updated: SystemTime,
    /// A method job's answer: the device's status and payload.
    pub method_response: Option<(i32, Value)>,
    /// Why it failed: (code, description).
    pub error: Option<(String, String)>,
}

/// A scheduled job and its devices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledJob {
    pub id: String,
    pub action: JobAction,
    pub query_condition: String,
    pub created: SystemTime,
    pub start: SystemTime,
    pub max_execution: Duration,
    pub status: JobStatus,
    pub end: Option<SystemTime>,
    pub failure_reason: Option<String>,
    pub devices: Vec<DeviceJob>,
}

impl ScheduledJob {
    /// The service's `JobResponse`.
    pub fn response(&self) -> Value {
        let count =
            |status: DeviceJobStatus| self.devices.iter().filter(|d| d.status == status).count();
        let mut response = json!({
            "jobId": self.id,
            "type": self.action.type_name(),
            "queryCondition": self.query_condition,
            "createdTime": utc_timestamp(self.created),
            "startTime": utc_timestamp(self.start),
            "maxExecutionTimeInSeconds": self.max_execution.as_secs(),
            "status": self.status.name(),
            "deviceJobStatistics": {
                "deviceCount": self.devices.len(),
                "failedCount": count(DeviceJobStatus::Failed),
                "succeededCount": count(DeviceJobStatus::Completed),
                "runningCount": count(DeviceJobStatus::Running),
                "pendingCount": count(DeviceJobStatus::Pending),
            },
        });
        match &self.action {
            JobAction::UpdateTwin { patch } => response["updateTwin"] = patch.clone(),
            JobAction::DeviceMethod {
                method_name,
                payload,
                response_timeout,
                connect_timeout,
            } => {
                response["cloudToDeviceMethod"] = json!({
                    "methodName": method_name,
                    "payload": payload,
                    "responseTimeoutInSeconds": response_timeout.as_secs(),
                    "connectTimeoutInSeconds": connect_timeout.as_secs(),
                })
            }
        }
        if let Some(end) = self.end {
            response["endTime"] = json!(utc_timestamp(end));
        }
        if let Some(reason) = &self.failure_reason {
            response["failureReason"] = json!(reason);
        }
        response
    }

    /// The `devices.jobs` documents of this job, as the query language returns them.
    pub fn device_documents(&self) -> impl Iterator<Item = Value> + '_ {
        self.devices.iter().map(|d| {
            let time = |t: Option<SystemTime>| t.map(utc_timestamp);
            let mut document = json!({
                "deviceId": d.device_id,
                "jobId": self.id,
                "jobType": self.action.type_name(),
                "status": d.status.name(),
                "startTimeUtc": time(d.start).unwrap_or_else(|| utc_timestamp(self.start)),
                "endTimeUtc": time(d.end).unwrap_or_else(|| utc_timestamp(self.start)),
                "createdDateTimeUtc": utc_timestamp(self.created),
                "lastUpdatedDateTimeUtc": utc_timestamp(d.last_updated),
                "outcome": {
                    "deviceMethodResponse": d.method_response.as_ref().map(|(status, payload)| {
                        json!({ "status": status, "payload": payload })
                    }),
                },
            });
            if let Some((code, description)) = &d.error {
                document["error"] = json!({ "code": code, "description": description });
            }
            document
        })
    }

    fn is_active(&self) -> bool {
        !self.status.is_finished()
    }
}

/// A job id as Azure allows it: 1–64 ASCII letters, digits and dashes.
fn check_job_id(id: &str) -> Result<(), HubError> {
    let valid = !id.is_empty()
        && id.len() <= MAX_JOB_ID
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(HubError::argument_invalid(format!(
            "The jobId '{}' is invalid: at most {MAX_JOB_ID} US-ASCII letters, digits and dashes",
            id.escape_default()
        )))
    }
}

/// The twin query a condition stands for; `*` selects every device.
fn device_query(condition: &str) -> Result<Query, HubError> {
    let text = match condition.trim() {
        "*" => "SELECT * FROM devices".to_owned(),
        condition => format!("SELECT * FROM devices WHERE {condition}"),
    };
    twin_query::parse(&text).map_err(|e| {
        HubError::argument_invalid(format!("The queryCondition is invalid: {}", e.message))
    })
}

impl Hub {
    /// `PUT /jobs/v2/{id}`: the job, `queued`. 400 for a bad id or condition, 409 for an id
    /// in use, 429 when [`MAX_ACTIVE_JOBS`] are not finished.
    pub fn create_job(
        &self,
        spec: JobSpec,
        now: SystemTime,
    ) -> Result<Pending<'_, ScheduledJob>, HubError> {
        check_job_id(&spec.id)?;
        if spec.query_condition.trim().is_empty() {
            return Err(HubError::argument_invalid("The queryCondition is required"));
        }
        device_query(&spec.query_condition)?;
        let mut jobs = self.jobs.lock();
        if jobs.iter().any(|j| j.id == spec.id) {
            return Err(HubError::job_already_exists(&spec.id));
        }
        if jobs.iter().filter(|j| j.is_active()).count() >= MAX_ACTIVE_JOBS {
            return Err(HubError::too_many_active_jobs(MAX_ACTIVE_JOBS));
        }
        let job = ScheduledJob {
            id: spec.id,
            action: spec.action,
            query_condition: spec.query_condition,
            created: now,
            start: spec.start.unwrap_or(now).max(now),
            max_execution: spec.max_execution,
            status: JobStatus::Queued,
            end: None,
            failure_reason: None,
            devices: Vec::new(),
        };
        let commit = self.save_job(&job)?;
        jobs.push(job.clone());
        // Finished jobs beyond the cap go, oldest first.
        while jobs.len() > MAX_KEPT_JOBS {
            match jobs.iter().position(|j| !j.is_active()) {
                Some(oldest) => {
                    let gone = jobs.remove(oldest);
                    let _ = self.forget_job(&gone.id);
                }
                None => break,
            }
        }
        drop(jobs);
        self.jobs.changed.notify_one();
        tracing::info!(hub = %self.host_name, job = %job.id, kind = job.action.type_name(), "job created");
        Ok(Pending::new(job, commit))
    }

    /// A job by id.
    pub fn job(&self, id: &str) -> Result<ScheduledJob, HubError> {
        self.jobs
            .lock()
            .iter()
            .find(|j| j.id == id)
            .cloned()
            .ok_or_else(|| HubError::job_not_found(id))
    }

    /// Every job, oldest first, of `kind` (`scheduleUpdateTwin`, …) and `status` when given.
    pub fn jobs(&self, kind: Option<&str>, status: Option<&str>) -> Vec<ScheduledJob> {
        self.jobs
            .lock()
            .iter()
            .filter(|j| kind.is_none_or(|k| j.action.type_name().eq_ignore_ascii_case(k)))
            .filter(|j| status.is_none_or(|s| j.status.name().eq_ignore_ascii_case(s)))
            .cloned()
            .collect()
    }

    /// Every device's part in every job: the `devices.jobs` query collection.
    pub(crate) fn device_job_documents(&self) -> Vec<Value> {
        self.jobs
            .lock()
            .iter()
            .flat_map(|j| j.device_documents().collect::<Vec<_>>())
            .collect()
    }

    /// `POST /jobs/v2/{id}/cancel`: a job not finished is `cancelled` (its devices not
    /// reached `canceled`); a finished one is answered as it is.
    pub fn cancel_job(
        &self,
        id: &str,
        now: SystemTime,
    ) -> Result<Pending<'_, ScheduledJob>, HubError> {
        let mut jobs = self.jobs.lock();
        let job = jobs
            .iter_mut()
            .find(|j| j.id == id)
            .ok_or_else(|| HubError::job_not_found(id))?;
        if job.status.is_finished() {
            return Ok(Pending::ready(job.clone()));
        }
        let mut cancelled = job.clone();
        cancelled.status = JobStatus::Cancelled;
        cancelled.end = Some(now);
        for device in &mut cancelled.devices {
            if device.status == DeviceJobStatus::Pending {
                device.status = DeviceJobStatus::Canceled;
                device.last_updated = now;
            }
        }
        let commit = self.save_job(&cancelled)?;
        *job = cancelled.clone();
        drop(jobs);
        tracing::info!(hub = %self.host_name, job = %id, "job cancelled");
        Ok(Pending::new(cancelled, commit))
    }

    /// Runs this hub's jobs as they come due, until shutdown. Started once per hub with the
    /// emulator.
    pub(crate) async fn run_jobs(self: Arc<Self>, mut shutdown: ShutdownSignal) {
        let mut running = tokio::task::JoinSet::new();
        loop {
            let changed = self.jobs.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let now = self.clock.now();
            let mut next_start = None;
            for id in self.due_jobs(now, &mut next_start) {
                running.spawn(self.clone().run_job(id));
            }
            let wait = next_start.map_or(Duration::from_secs(3600), |start: SystemTime| {
                start.duration_since(now).unwrap_or(Duration::ZERO)
            });
            tokio::select! {
                () = &mut changed => {}
                () = self.clock.sleep(wait) => {}
                Some(_) = running.join_next() => {}
                () = shutdown.recv() => break,
            }
        }
        running.abort_all();
    }

    /// Marks the queued jobs whose start has come `running` and returns their ids; sets
    /// `next_start` to the earliest start still ahead.
    fn due_jobs(&self, now: SystemTime, next_start: &mut Option<SystemTime>) -> Vec<String> {
        let mut jobs = self.jobs.lock();
        let mut due = Vec::new();
        for job in jobs.iter_mut().filter(|j| j.status == JobStatus::Queued) {
            if job.start <= now {
                job.status = JobStatus::Running;
                due.push(job.id.clone());
            } else if next_start.is_none_or(|n| job.start < n) {
                *next_start = Some(job.start);
            }
        }
        due
    }

    /// One job from its start to its end.
    async fn run_job(self: Arc<Self>, id: String) {
        let now = self.clock.now();
        let Some(job) = self.update_job(&id, |job| {
            // The devices are the ones the condition selects when the job starts.
            let selected: Vec<String> = match device_query(&job.query_condition) {
                Ok(query) => self
                    .query_twin_documents()
                    .into_iter()
                    .filter(|twin| query.matches(twin))
                    .filter_map(|twin| twin["deviceId"].as_str().map(str::to_owned))
                    .collect(),
                Err(_) => Vec::new(),
            };
            let mut selected = selected;
            selected.sort();
            job.devices = selected
                .into_iter()
                .map(|device_id| DeviceJob {
                    device_id,
                    status: DeviceJobStatus::Pending,
                    start: None,
                    end: None,
                    last_updated: now,
                    method_response: None,
                    error: None,
                })
                .collect();
        }) else {
            return;
        };
        tracing::info!(hub = %self.host_name, job = %id, devices = job.devices.len(), "job running");
        let deadline = job.start + job.max_execution;
        // Devices are handled side by side (a method call may wait for its device to connect),
        // at most this many at once.
        const PARALLEL: usize = 256;
        let hub: &Hub = &self;
        let handle_device = |device: String| {
            let (id, action) = (&id, &job.action);
            async move {
                let this = hub;
                if this.job_status(id) != Some(JobStatus::Running) {
                    return;
                }
                let left = deadline
                    .duration_since(this.clock.now())
                    .unwrap_or(Duration::ZERO);
                this.set_device_outcome(id, &device, DeviceJobStatus::Running, None, None);
                let timed_out = (
                    DeviceJobStatus::Failed,
                    None,
                    Some((
                        "JobTimedOut",
                        "the job's maxExecutionTimeInSeconds passed before this device was done"
                            .to_owned(),
                    )),
                );
                let (status, response, error) = if left.is_zero() {
                    timed_out
                } else {
                    tokio::select! {
                        outcome = this.apply_job_action(action, &device) => outcome,
                        () = this.clock.sleep(left) => timed_out,
                    }
                };
                this.set_device_outcome(id, &device, status, response, error);
            }
        };
        let devices: Vec<String> = job.devices.iter().map(|d| d.device_id.clone()).collect();
        futures_util::StreamExt::for_each_concurrent(
            futures_util::stream::iter(devices),
            PARALLEL,
            handle_device,
        )
        .await;
        let end = self.clock.now();
        if let Some(job) = self.update_job(&id, |job| {
            if job.status == JobStatus::Running {
                job.status = JobStatus::Completed;
                job.end = Some(end);
            }
        }) {
            tracing::info!(hub = %self.host_name, job = %id, status = job.status.name(), "job finished");
        }
    }

    /// One device's action: its status, method answer and error.
    async fn apply_job_action(
        &self,
        action: &JobAction,
        device_id: &str,
    ) -> (
        DeviceJobStatus,
        Option<(i32, Value)>,
        Option<(&'static str, String)>,
    ) {
        let failed = |e: HubError| (DeviceJobStatus::Failed, None, Some((e.name, e.message)));
        match action {
            JobAction::UpdateTwin { patch } => {
                match self.update_twin(device_id, patch, None, false) {
                    Ok(pending) => match pending.durable().await {
                        Ok(_) => (DeviceJobStatus::Completed, None, None),
                        Err(e) => failed(HubError::from(e)),
                    },
                    Err(e) => failed(e),
                }
            }
            JobAction::DeviceMethod {
                method_name,
                payload,
                response_timeout,
                connect_timeout,
            } => match self
                .invoke_method(
                    device_id,
                    method_name,
                    payload.clone(),
                    *response_timeout,
                    *connect_timeout,
                )
                .await
            {
                Ok(answer) => (
                    DeviceJobStatus::Completed,
                    Some((answer.status, answer.payload)),
                    None,
                ),
                Err(e) => failed(e),
            },
        }
    }

    fn job_status(&self, id: &str) -> Option<JobStatus> {
        self.jobs
            .lock()
            .iter()
            .find(|j| j.id == id)
            .map(|j| j.status)
    }

    fn set_device_outcome(
        &self,
        id: &str,
        device_id: &str,
        status: DeviceJobStatus,
        method_response: Option<(i32, Value)>,
        error: Option<(&'static str, String)>,
    ) {
        let now = self.clock.now();
        self.update_job(id, |job| {
            if let Some(device) = job.devices.iter_mut().find(|d| d.device_id == device_id) {
                if device.status == DeviceJobStatus::Canceled {
                    return;
                }
                match status {
                    DeviceJobStatus::Running => device.start = Some(now),
                    DeviceJobStatus::Completed | DeviceJobStatus::Failed => device.end = Some(now),
                    _ => {}
                }
                device.status = status;
                device.last_updated = now;
                device.method_response = method_response;
                device.error = error.map(|(code, description)| (code.to_owned(), description));
            }
        });
    }

    /// Changes a job in memory and submits it to the store (not waited for: nobody is told).
    fn update_job(&self, id: &str, change: impl FnOnce(&mut ScheduledJob)) -> Option<ScheduledJob> {
        let mut jobs = self.jobs.lock();
        let job = jobs.iter_mut().find(|j| j.id == id)?;
        let mut changed = job.clone();
        change(&mut changed);
        if let Err(e) = self.save_job(&changed) {
            tracing::error!(hub = %self.host_name, job = %id, error = %e, "a job's progress could not be stored");
        }
        *job = changed.clone();
        Some(changed)
    }
}

/// The jobs of a hub, and what wakes its runner.
#[derive(Default)]
pub(crate) struct JobList {
    jobs: std::sync::Mutex<Vec<ScheduledJob>>,
    changed: tokio::sync::Notify,
}

impl JobList {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ScheduledJob>> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts a stored job back at startup: one that was running when the emulator stopped
    /// has failed.
    pub(crate) fn restore(&self, mut job: ScheduledJob, now: SystemTime) {
        if job.status == JobStatus::Running {
            job.status = JobStatus::Failed;
            job.end = Some(now);
            job.failure_reason = Some("iotemu stopped while the job was running".into());
        }
        let mut jobs = self.lock();
        jobs.retain(|j| j.id != job.id);
        jobs.push(job);
        jobs.sort_by_key(|j| j.created);
    }

    pub(crate) fn forget(&self, id: &str) {
        self.lock().retain(|j| j.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_and_conditions_are_checked() {
        for good in ["job1", "twin-job-0001", &"a".repeat(64)] {
            assert!(check_job_id(good).is_ok(), "{good}");
        }
        for bad in ["", "a b", "job/1", "ü", &"a".repeat(65)] {
            assert_eq!(check_job_id(bad).unwrap_err().code, 400004, "{bad}");
        }
        assert!(device_query("*").is_ok());
        assert!(device_query("deviceId IN ['a', 'b']").is_ok());
        assert!(device_query("tags.floor = 3 AND").is_err());
    }
}
