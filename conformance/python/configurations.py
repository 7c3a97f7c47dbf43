"""Scenario configurations, Python: automatic device configurations with azure-iot-hub's
IoTHubConfigurationManager, as its sample iothub_configuration_manager_sample.py and the
automatic-device-management article use it (the article's chiller-water content and metric).

A SAS device tagged for this run connects (azure-iot-device, MQTT) with a desired-patch handler.
`create_configuration` with deviceContent `properties.desired.chiller-water`, a target condition
on the run's tag, priority 20 and a custom metric: the device receives the content as a desired
patch; `get_configuration` counts it in `systemMetrics` (`targetedCount`, `appliedCount` 1) and,
once the device reports `chillerWaterSettings.status = 'pending'`, in the custom metric;
`query_iot_hub("SELECT deviceId FROM devices WHERE configurations.[[id]].status = 'Applied'")`
names it. `update_configuration(config, etag)` changes the priority and the ETag; a stale ETag is
refused; `get_configurations` lists it; `test_configuration_queries` reports a broken condition.
`delete_configuration` takes the content back: the device gets `chiller-water: null`.
(The target condition names only this run's device: the hub is shared with the other scenarios.)
"""

import asyncio
import uuid

from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.hub import IoTHubConfigurationManager, IoTHubRegistryManager
from azure.iot.hub.models import (
    Configuration,
    ConfigurationContent,
    ConfigurationMetrics,
    ConfigurationQueriesTestInput,
    QuerySpecification,
    Twin,
)
from msrest.exceptions import HttpOperationError

import harness
from harness import check, expect_equal, in_thread

scenario = harness.Scenario("configurations", timeout=60.0)
run_id = str(uuid.uuid4())[:8]
BOUND = 15.0


async def eventually(what, probe):
    deadline = asyncio.get_running_loop().time() + BOUND
    while True:
        value = await probe()
        if value:
            return value
        check(asyncio.get_running_loop().time() < deadline, "{} within {:.0f} s".format(what, BOUND))
        await asyncio.sleep(0.2)


async def main():
    cs = harness.env("IOTHUB_CONNECTION_STRING")
    registry = IoTHubRegistryManager.from_connection_string(cs)
    manager = IoTHubConfigurationManager.from_connection_string(cs)
    device_id = "{}-{}".format(harness.env("CONFIGURATION_DEVICE_ID"), run_id)
    config_id = "chiller-{}".format(run_id)
    device_cs = await harness.create_sas_device(scenario, registry, device_id)
    await in_thread(registry.update_twin, device_id, Twin(tags={"conformanceRun": run_id, "environment": "prod"}), "*")

    scenario.step("the device connects with a desired-patch handler")
    device = IoTHubDeviceClient.create_from_connection_string(device_cs)
    await device.connect()
    patches = []
    device.on_twin_desired_properties_patch_received = patches.append

    scenario.step("create_configuration: chiller-water content, targetCondition on this run's tag, priority 20, a custom metric")
    configuration = Configuration(
        id=config_id,
        labels={"team": "hvac"},
        content=ConfigurationContent(device_content={"properties.desired.chiller-water": {"temperature": 66, "pressure": 28}}),
        target_condition="tags.conformanceRun='{}' AND tags.environment='prod'".format(run_id),
        priority=20,
        metrics=ConfigurationMetrics(queries={
            "waterSettingsPending":
                "SELECT deviceId FROM devices WHERE properties.reported.chillerWaterSettings.status='pending'"}),
    )
    created = await in_thread(manager.create_configuration, configuration)
    expect_equal("id", created.id, config_id)
    check(created.etag, "no etag on the created configuration")
    await eventually("the desired patch with chiller-water",
                     lambda: asyncio.sleep(0, result=any(p.get("chiller-water", {}).get("temperature") == 66 for p in patches)))

    scenario.step("get_configuration: systemMetrics count the device; the custom metric once it reports 'pending'")

    async def metrics():
        got = await in_thread(manager.get_configuration, config_id)
        return got if got.system_metrics.results.get("appliedCount") == 1 else None

    got = await eventually("appliedCount 1", metrics)
    expect_equal("targetedCount", got.system_metrics.results.get("targetedCount"), 1)
    check("configurations.[[{}]]".format(config_id) in got.system_metrics.queries["appliedCount"],
          "appliedCount query {!r}".format(got.system_metrics.queries["appliedCount"]))
    await device.patch_twin_reported_properties({"chillerWaterSettings": {"status": "pending"}})

    async def pending():
        got = await in_thread(manager.get_configuration, config_id)
        return got.metrics.results.get("waterSettingsPending", 0) >= 1

    await eventually("waterSettingsPending >= 1", pending)

    scenario.step("query_iot_hub: SELECT deviceId FROM devices WHERE configurations.[[id]].status = 'Applied'")
    result = await in_thread(registry.query_iot_hub, QuerySpecification(
        query="SELECT deviceId FROM devices WHERE configurations.[[{}]].status = 'Applied'".format(config_id)))
    expect_equal("devices with the configuration applied", [item.device_id for item in result.items], [device_id])

    scenario.step("update_configuration with the etag (priority 30); a stale etag is refused")
    got.priority = 30
    updated = await in_thread(manager.update_configuration, got, got.etag)
    expect_equal("priority", updated.priority, 30)
    check(updated.etag != got.etag, "the etag did not change")
    try:
        await in_thread(manager.update_configuration, got, got.etag)
        check(False, "an update with a stale etag succeeded")
    except HttpOperationError as e:
        expect_equal("status of a stale update", e.response.status_code, 412)
    listed = await in_thread(manager.get_configurations)
    check(config_id in [c.id for c in listed], "get_configurations lacks {}".format(config_id))
    tested = await in_thread(manager.test_configuration_queries,
                             ConfigurationQueriesTestInput(target_condition="tags.environment = ", custom_metric_queries={}))
    check(tested.target_condition_error, "a broken target condition has no error")

    scenario.step("delete_configuration: the device gets chiller-water: null")
    await in_thread(manager.delete_configuration, config_id)
    await eventually("chiller-water removed",
                     lambda: asyncio.sleep(0, result=any("chiller-water" in p and p["chiller-water"] is None for p in patches)))
    twin = await in_thread(registry.get_twin, device_id)
    check("chiller-water" not in twin.properties.desired, "desired still has chiller-water: {}".format(twin.properties.desired))
    await device.shutdown()


if __name__ == "__main__":
    scenario.run(main)
