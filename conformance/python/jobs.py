"""Scenario jobs, Python: scheduled jobs with azure-iot-hub's IoTHubJobManager, as its samples
iothub_job_manager_method_sample.py and iothub_job_manager_twin_update_sample.py use it.

The service creates two SAS devices; one connects (azure-iot-device, MQTT) with a method handler
and a desired-properties handler. Then:
  * `create_scheduled_job(id, JobRequest(type="scheduleDeviceMethod", cloud_to_device_method=…,
    query_condition="deviceId IN ['<connected>']", start_time=now, max_execution_time_in_seconds=60))`
    is answered `queued`; polling `get_scheduled_job` (the samples' loop) reaches `completed` with
    one succeeded device, and the device's handler got the method and payload;
  * a `scheduleUpdateTwin` job with `Twin(etag="*", tags=…, properties=TwinProperties(desired=…))`
    over both devices completes with two succeeded devices: `get_twin` shows the tags and desired
    value on both, and the connected device's desired-patch handler received the value;
  * `query_iot_hub("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '<twin job>'")` lists
    both devices' parts, `completed`;
  * a job starting in an hour is `queued`; `cancel_scheduled_job` makes it `cancelled`.
(`query_scheduled_jobs` is not used: azure-iot-hub 2.7.0 expects an object where the service
answers a JSON array, and fails against Azure too; docs/jobs.md.)
"""

import asyncio
import datetime
import uuid

from azure.iot.device import MethodResponse
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.hub import IoTHubJobManager, IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod, JobRequest, QuerySpecification, Twin, TwinProperties

import harness
from harness import check, expect_equal, in_thread

scenario = harness.Scenario("jobs", timeout=60.0)
run_id = str(uuid.uuid4())[:8]
JOB_BOUND = 20.0


def utc_now(offset_seconds=0):
    # The samples' start time: a naive UTC isoformat, which the SDK sends with a 'Z'.
    return (datetime.datetime.utcnow() + datetime.timedelta(seconds=offset_seconds)).isoformat()


async def wait_for(job_manager, job_id, status):
    """The samples poll get_scheduled_job every 5 s until 'completed'; faster here."""
    deadline = asyncio.get_running_loop().time() + JOB_BOUND
    while True:
        job = await in_thread(job_manager.get_scheduled_job, job_id)
        if job.status == status:
            return job
        check(asyncio.get_running_loop().time() < deadline,
              "job {} is {} after {:.0f} s, not {}".format(job_id, job.status, JOB_BOUND, status))
        await asyncio.sleep(0.2)


async def main():
    cs = harness.env("IOTHUB_CONNECTION_STRING")
    registry = IoTHubRegistryManager.from_connection_string(cs)
    job_manager = IoTHubJobManager.from_connection_string(cs)
    online_id = "{}-{}-online".format(harness.env("JOBS_DEVICE_ID"), run_id)
    offline_id = "{}-{}-idle".format(harness.env("JOBS_DEVICE_ID"), run_id)
    device_cs = await harness.create_sas_device(scenario, registry, online_id)
    await harness.create_sas_device(scenario, registry, offline_id)

    scenario.step("device connects with a method handler and a desired-properties handler")
    device = IoTHubDeviceClient.create_from_connection_string(device_cs)
    await device.connect()
    methods = asyncio.Queue()
    desired = asyncio.Queue()

    async def on_method(request):
        await methods.put((request.name, request.payload))
        await device.send_method_response(MethodResponse.create_from_method_request(request, 200, {"done": True}))

    def on_desired(patch):
        desired.put_nowait(patch)

    device.on_method_request_received = on_method
    device.on_twin_desired_properties_patch_received = on_desired

    scenario.step("create_scheduled_job: scheduleDeviceMethod on the connected device")
    method_job = "methodJob-" + run_id
    request = JobRequest(
        job_id=method_job,
        type="scheduleDeviceMethod",
        cloud_to_device_method=CloudToDeviceMethod(
            method_name="test_method", payload={"key": "value"}, response_timeout_in_seconds=30),
        query_condition="deviceId IN ['{}']".format(online_id),
        start_time=utc_now(),
        max_execution_time_in_seconds=60,
    )
    created = await in_thread(job_manager.create_scheduled_job, method_job, request)
    expect_equal("status of the new job", created.status, "queued")
    done = await wait_for(job_manager, method_job, "completed")
    expect_equal("succeeded devices", done.device_job_statistics.succeeded_count, 1)
    name, payload = await asyncio.wait_for(methods.get(), 5)
    expect_equal("method the device got", (name, payload), ("test_method", {"key": "value"}))

    scenario.step("create_scheduled_job: scheduleUpdateTwin over both devices (etag '*')")
    twin_job = "twinJob-" + run_id
    request = JobRequest(
        job_id=twin_job,
        type="scheduleUpdateTwin",
        update_twin=Twin(etag="*", tags={"jobRun": run_id}, properties=TwinProperties(desired={"temperature": 98.6})),
        query_condition="deviceId IN ['{}', '{}']".format(online_id, offline_id),
        start_time=utc_now(),
    )
    await in_thread(job_manager.create_scheduled_job, twin_job, request)
    done = await wait_for(job_manager, twin_job, "completed")
    expect_equal("succeeded devices", done.device_job_statistics.succeeded_count, 2)
    for device_id in (online_id, offline_id):
        twin = await in_thread(registry.get_twin, device_id)
        expect_equal("tags.jobRun of " + device_id, twin.tags.get("jobRun"), run_id)
        expect_equal("desired temperature of " + device_id, twin.properties.desired.get("temperature"), 98.6)
    patch = await asyncio.wait_for(desired.get(), 5)
    expect_equal("desired patch on the device", patch.get("temperature"), 98.6)

    scenario.step("query_iot_hub: SELECT * FROM devices.jobs for the twin job")
    result = await in_thread(
        registry.query_iot_hub,
        QuerySpecification(query="SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '{}'".format(twin_job)))
    rows = {item.device_id: item for item in result.items}
    expect_equal("devices in the job", sorted(rows), sorted([online_id, offline_id]))
    for item in rows.values():
        expect_equal("status of " + item.device_id, item.status, "completed")
        expect_equal("jobType", item.additional_properties.get("jobType"), "scheduleUpdateTwin")
    expect_equal("x-ms-item-type", result.type, "deviceJob")

    scenario.step("a job starting in an hour is queued; cancel_scheduled_job cancels it")
    later = "laterJob-" + run_id
    request = JobRequest(
        job_id=later,
        type="scheduleUpdateTwin",
        update_twin=Twin(etag="*", tags={"never": True}),
        query_condition="deviceId IN ['{}']".format(offline_id),
        start_time=utc_now(3600),
    )
    created = await in_thread(job_manager.create_scheduled_job, later, request)
    expect_equal("status", created.status, "queued")
    cancelled = await in_thread(job_manager.cancel_scheduled_job, later)
    expect_equal("status after cancel", cancelled.status, "cancelled")
    await device.shutdown()


if __name__ == "__main__":
    scenario.run(main)
