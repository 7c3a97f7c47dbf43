//! Scheduled jobs over the service REST API (docs/jobs.md): twin updates and direct methods
//! applied to the devices a query condition selects, their per-device results in
//! `devices.jobs`, cancellation, a start time reached by advancing the emulator's clock, and
//! the refusals (bad ids, types and conditions, an id in use, an unknown job).

use std::time::Duration;

use iotemu_device::{MethodRequest, MethodResponse};
use iotemu_e2e::*;
use serde_json::{Value, json};

/// The job's JobResponse once its status is `status`.
async fn wait_for_status(emulator: &iotemu::Emulator, id: &str, status: &str) -> Value {
    within(&format!("job {id} {status}"), async {
        loop {
            let job = hub_rest(emulator, "GET", &format!("/jobs/v2/{id}"), &[], Value::Null).await;
            assert_eq!(job.status, 200, "{}", String::from_utf8_lossy(&job.body));
            let job = job.json();
            if job["status"] == status {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

async fn query(emulator: &iotemu::Emulator, text: &str) -> HttpsResponse {
    hub_rest(
        emulator,
        "POST",
        "/devices/query",
        &[],
        json!({ "query": text }),
    )
    .await
}

#[tokio::test]
async fn a_twin_update_job_patches_the_selected_twins() {
    let emulator = start_emulator(None).await;
    for id in ["job-a", "job-b", "job-c"] {
        let _ = quickstart_device(&emulator, id, None);
    }
    let created = hub_rest(
        &emulator,
        "PUT",
        "/jobs/v2/twin-job-1",
        &[],
        json!({
            "jobId": "twin-job-1",
            "type": "scheduleUpdateTwin",
            "queryCondition": "deviceId IN ['job-a', 'job-b']",
            "updateTwin": {"etag": "*", "tags": {"building": "43"}, "properties": {"desired": {"interval": 42}, "reported": {}}},
            "startTime": null,
        }),
    )
    .await;
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let created = created.json();
    assert_eq!(created["status"], "queued");
    assert_eq!(created["type"], "scheduleUpdateTwin");
    assert_eq!(created["maxExecutionTimeInSeconds"], 3600);

    let done = wait_for_status(&emulator, "twin-job-1", "completed").await;
    assert_eq!(
        done["deviceJobStatistics"],
        json!({"deviceCount": 2, "failedCount": 0, "succeededCount": 2, "runningCount": 0, "pendingCount": 0})
    );
    assert!(done["endTime"].is_string());
    let hub = emulator.default_hub();
    for id in ["job-a", "job-b"] {
        let twin = hub.device_twin(id).unwrap();
        assert_eq!(twin.tags["building"], "43");
        assert_eq!(twin.desired["interval"], 42);
    }
    assert!(
        hub.device_twin("job-c")
            .unwrap()
            .tags
            .get("building")
            .is_none(),
        "not selected"
    );

    let rows = query(
        &emulator,
        "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'twin-job-1'",
    )
    .await;
    assert_eq!(rows.header("x-ms-item-type"), Some("deviceJob"));
    let rows = rows.json();
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["deviceId"], "job-a");
    assert_eq!(rows[0]["jobType"], "scheduleUpdateTwin");
    assert_eq!(rows[0]["status"], "completed");
    assert_eq!(rows[0]["outcome"], json!({"deviceMethodResponse": null}));
}

#[tokio::test]
async fn a_method_job_calls_connected_devices_and_fails_offline_ones() {
    let emulator = start_emulator(None).await;
    let device = quickstart_device(&emulator, "online", None)
        .connect()
        .await
        .unwrap();
    device
        .on_method(|request: MethodRequest| async move {
            MethodResponse::new(
                200,
                json!({ "echo": request.payload, "name": request.name }),
            )
        })
        .await
        .unwrap();
    let _ = quickstart_device(&emulator, "offline", None);
    let created = hub_rest(
        &emulator,
        "PUT",
        "/jobs/v2/method-job",
        &[],
        json!({
            "jobId": "method-job",
            "type": "scheduleDeviceMethod",
            "queryCondition": "*",
            "cloudToDeviceMethod": {"methodName": "reboot", "payload": {"delay": 1}, "responseTimeoutInSeconds": 10},
            "maxExecutionTimeInSeconds": 60,
        }),
    )
    .await;
    assert_eq!(
        created.status,
        200,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let done = wait_for_status(&emulator, "method-job", "completed").await;
    assert_eq!(done["deviceJobStatistics"]["deviceCount"], 2);
    assert_eq!(done["deviceJobStatistics"]["succeededCount"], 1);
    assert_eq!(done["deviceJobStatistics"]["failedCount"], 1);
    assert_eq!(done["cloudToDeviceMethod"]["methodName"], "reboot");

    let rows = query(
        &emulator,
        "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'method-job'",
    )
    .await
    .json();
    let online = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["deviceId"] == "online")
        .unwrap();
    assert_eq!(online["status"], "completed");
    assert_eq!(
        online["outcome"]["deviceMethodResponse"],
        json!({"status": 200, "payload": {"echo": {"delay": 1}, "name": "reboot"}})
    );
    let offline = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["deviceId"] == "offline")
        .unwrap();
    assert_eq!(offline["status"], "failed");
    assert_eq!(offline["error"]["code"], "DeviceNotOnline");
    // The per-device collection takes conditions on its own fields.
    let failed = query(
        &emulator,
        "SELECT * FROM devices.jobs WHERE devices.jobs.status = 'failed'",
    )
    .await
    .json();
    assert_eq!(failed.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_future_job_waits_for_the_clock_and_a_queued_one_can_be_cancelled() {
    let emulator = start_emulator(None).await;
    let _ = quickstart_device(&emulator, "later", None);
    let start = |offset: u64| {
        iotemu::internals::timefmt::utc_timestamp(
            std::time::SystemTime::now() + Duration::from_secs(offset),
        )
    };
    for (id, offset) in [("later-job", 3600), ("cancelled-job", 7200)] {
        let created = hub_rest(
            &emulator,
            "PUT",
            &format!("/jobs/v2/{id}"),
            &[],
            json!({"jobId": id, "type": "scheduleUpdateTwin", "queryCondition": "deviceId = 'later'",
                   "updateTwin": {"tags": {"job": id}}, "startTime": start(offset)}),
        )
        .await;
        assert_eq!(
            created.status,
            200,
            "{}",
            String::from_utf8_lossy(&created.body)
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        emulator.default_hub().job("later-job").unwrap().status,
        iotemu::JobStatus::Queued
    );

    let cancelled = hub_rest(
        &emulator,
        "POST",
        "/jobs/v2/cancelled-job/cancel",
        &[],
        Value::Null,
    )
    .await;
    assert_eq!(cancelled.status, 200);
    assert_eq!(cancelled.json()["status"], "cancelled");

    // An hour on the emulator's clock starts the first job; the cancelled one never runs.
    emulator.advance(Duration::from_secs(3601)).await.unwrap();
    wait_for_status(&emulator, "later-job", "completed").await;
    assert_eq!(
        emulator.default_hub().device_twin("later").unwrap().tags["job"],
        "later-job"
    );
    emulator.advance(Duration::from_secs(3601)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        wait_for_status(&emulator, "cancelled-job", "cancelled").await["deviceJobStatistics"]["deviceCount"],
        0
    );

    // The job list, filtered and paged.
    let all = hub_rest(
        &emulator,
        "GET",
        "/jobs/v2/query",
        &[("x-ms-max-item-count", "1")],
        Value::Null,
    )
    .await;
    assert_eq!(all.json().as_array().unwrap().len(), 1);
    let token = all
        .header("x-ms-continuation")
        .expect("a second page")
        .to_owned();
    let rest = hub_rest(
        &emulator,
        "GET",
        "/jobs/v2/query",
        &[("x-ms-continuation", &token)],
        Value::Null,
    )
    .await;
    assert_eq!(rest.json().as_array().unwrap().len(), 1);
    assert!(
        rest.header("x-ms-continuation").is_none(),
        "the last page has no token"
    );
    let completed = hub_rest(
        &emulator,
        "GET",
        "/jobs/v2/query?jobType=scheduleUpdateTwin&jobStatus=completed",
        &[],
        Value::Null,
    )
    .await;
    let completed = completed.json();
    assert_eq!(completed.as_array().unwrap().len(), 1);
    assert_eq!(completed[0]["jobId"], "later-job");
}

#[tokio::test]
async fn bad_jobs_are_refused_and_nothing_is_created() {
    let emulator = start_emulator(None).await;
    let good = json!({"type": "scheduleUpdateTwin", "queryCondition": "*", "updateTwin": {"tags": {"a": 1}}});
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = good.clone();
        change(&mut body);
        body
    };
    let cases: Vec<(&str, Value, u16)> = vec![
        ("bad%20id", good.clone(), 400),
        (
            "j1",
            with(&|b| b["type"] = json!("scheduleTwinUpdate")),
            400,
        ),
        (
            "j1",
            with(&|b| b["queryCondition"] = json!("deviceId = ")),
            400,
        ),
        ("j1", with(&|b| b["queryCondition"] = json!("")), 400),
        ("j1", with(&|b| b["startTime"] = json!("yesterday")), 400),
        (
            "j1",
            with(&|b| b["maxExecutionTimeInSeconds"] = json!(-1)),
            400,
        ),
        ("j1", with(&|b| b["jobId"] = json!("other")), 400),
        (
            "j1",
            json!({"type": "scheduleDeviceMethod", "queryCondition": "*"}),
            400,
        ),
    ];
    for (id, body, status) in cases {
        let refused = hub_rest(
            &emulator,
            "PUT",
            &format!("/jobs/v2/{id}"),
            &[],
            body.clone(),
        )
        .await;
        assert_eq!(
            refused.status,
            status,
            "{id} {body}: {}",
            String::from_utf8_lossy(&refused.body)
        );
    }
    assert!(emulator.default_hub().jobs(None, None).is_empty());

    assert_eq!(
        hub_rest(&emulator, "PUT", "/jobs/v2/j1", &[], good.clone())
            .await
            .status,
        200
    );
    let again = hub_rest(&emulator, "PUT", "/jobs/v2/j1", &[], good).await;
    assert_eq!(again.status, 409);
    assert_eq!(
        hub_rest(&emulator, "GET", "/jobs/v2/nope", &[], Value::Null)
            .await
            .status,
        404
    );
    assert_eq!(
        hub_rest(&emulator, "POST", "/jobs/v2/nope/cancel", &[], Value::Null)
            .await
            .status,
        404
    );
    let export = hub_rest(
        &emulator,
        "POST",
        "/jobs/create",
        &[],
        json!({"type": "export"}),
    )
    .await;
    assert_eq!(export.status, 501);
}

#[tokio::test]
async fn jobs_survive_a_restart_with_a_data_dir() {
    let dir = std::env::temp_dir().join(format!("iotemu-jobs-{}", uuid::Uuid::new_v4()));
    let emulator = start_on_data_dir(&dir).await;
    let _ = quickstart_device(&emulator, "kept", None);
    let start = iotemu::internals::timefmt::utc_timestamp(
        std::time::SystemTime::now() + Duration::from_secs(3600),
    );
    let created = hub_rest(
        &emulator,
        "PUT",
        "/jobs/v2/kept-job",
        &[],
        json!({"type": "scheduleUpdateTwin", "queryCondition": "*", "updateTwin": {"tags": {"kept": true}}, "startTime": start}),
    )
    .await;
    assert_eq!(created.status, 200);
    emulator.shutdown().await;

    let emulator = start_on_data_dir(&dir).await;
    assert_eq!(
        wait_for_status(&emulator, "kept-job", "queued").await["jobId"],
        "kept-job"
    );
    emulator.advance(Duration::from_secs(3601)).await.unwrap();
    wait_for_status(&emulator, "kept-job", "completed").await;
    assert_eq!(
        emulator.default_hub().device_twin("kept").unwrap().tags["kept"],
        true
    );
    emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn devices_wait_side_by_side_and_time_out_with_the_job() {
    let emulator = start_emulator(None).await;
    for id in ["late-1", "late-2"] {
        let _ = quickstart_device(&emulator, id, None);
    }
    let created = hub_rest(
        &emulator,
        "PUT",
        "/jobs/v2/waiting-job",
        &[],
        json!({"type": "scheduleDeviceMethod", "queryCondition": "deviceId IN ['late-1', 'late-2']",
               "cloudToDeviceMethod": {"methodName": "m", "connectTimeoutInSeconds": 60, "responseTimeoutInSeconds": 5},
               "maxExecutionTimeInSeconds": 30}),
    )
    .await;
    assert_eq!(created.status, 200);
    // Both devices are waiting for their device to connect at once, not one after the other.
    within("both devices running", async {
        loop {
            let job = hub_rest(&emulator, "GET", "/jobs/v2/waiting-job", &[], Value::Null)
                .await
                .json();
            if job["deviceJobStatistics"]["runningCount"] == 2 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    emulator.advance(Duration::from_secs(31)).await.unwrap();
    let done = wait_for_status(&emulator, "waiting-job", "completed").await;
    assert_eq!(done["deviceJobStatistics"]["failedCount"], 2);
    let rows = query(
        &emulator,
        "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'waiting-job'",
    )
    .await
    .json();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["error"]["code"], "JobTimedOut", "{row}");
    }
}
