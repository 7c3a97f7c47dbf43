"""Scenario twin, Python: device twin with azure-iot-device (device) and azure-iot-hub (service).

The device (DPS symmetric-key registration as in the quickstart, then IoTHubDeviceClient over
MQTT) sets `on_twin_desired_properties_patch_received` (the SDK returns from the setter once the
hub acknowledged the subscription), reads its twin with `get_twin()` and reports properties with
`patch_twin_reported_properties()`. The service side is `azure-iot-hub`'s
`IoTHubRegistryManager.from_connection_string(<iothubowner>)` over HTTPS: `get_twin` must show the
reported values, and `update_twin(device_id, Twin(properties=TwinProperties(desired=...)),
twin.etag)` must reach the device as a desired patch whose `$version` is the desired version of
the twin the service got back. A last `get_twin()` on the device shows the desired values and the
same `$version`.
"""

import asyncio
import time
import uuid

from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin, TwinProperties

import harness
from harness import check, expect_equal

scenario = harness.Scenario("twin")
run_id = str(uuid.uuid4())
PATCH_BOUND = 10.0  # seconds for the desired patch to reach the device


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def main():
    service_cs = harness.env("IOTHUB_CONNECTION_STRING")
    device_client, device_id = await harness.provision_and_connect(
        scenario, ProvisioningDeviceClient, IoTHubDeviceClient)
    loop = asyncio.get_running_loop()
    patches = asyncio.Queue()

    def on_patch(patch):
        loop.call_soon_threadsafe(patches.put_nowait, patch)

    scenario.step("set on_twin_desired_properties_patch_received")
    device_client.on_twin_desired_properties_patch_received = on_patch

    scenario.step("device get_twin()")
    twin = await device_client.get_twin()
    print("device twin:", twin)
    check(isinstance(twin, dict) and "desired" in twin and "reported" in twin,
          "get_twin() did not return {{desired, reported}}: {!r}".format(twin))
    check(isinstance(twin["desired"].get("$version"), int), "desired has no integer $version: {!r}".format(twin))

    scenario.step("device patch_twin_reported_properties()")
    reported = {"conformanceRun": run_id, "firmware": {"version": "1.2.3", "channel": "stable"}}
    await device_client.patch_twin_reported_properties(reported)

    scenario.step("device get_twin() after the reported patch")
    twin = await device_client.get_twin()
    expect_equal("device twin reported.conformanceRun", twin["reported"].get("conformanceRun"), run_id)

    scenario.step("service IoTHubRegistryManager.get_twin()")
    registry = IoTHubRegistryManager.from_connection_string(service_cs)
    service_twin = await in_thread(registry.get_twin, device_id)
    print("service twin:", service_twin)
    expect_equal("service twin device_id", service_twin.device_id, device_id)
    check(service_twin.etag, "service twin has no etag")
    svc_reported = service_twin.properties.reported or {}
    expect_equal("service twin reported.conformanceRun", svc_reported.get("conformanceRun"), run_id)
    expect_equal("service twin reported.firmware", svc_reported.get("firmware"), reported["firmware"])

    scenario.step("service update_twin() with desired properties and the twin's etag")
    desired = {"conformanceRun": run_id, "targetTemperature": 21.5, "mode": {"fan": "auto"}}
    updated = await in_thread(
        registry.update_twin, device_id, Twin(properties=TwinProperties(desired=desired)), service_twin.etag)
    print("updated twin:", updated)
    new_version = (updated.properties.desired or {}).get("$version")
    check(isinstance(new_version, int), "update_twin returned no desired $version: {!r}".format(updated.properties))
    for k, v in desired.items():
        expect_equal("update_twin result desired.{}".format(k), updated.properties.desired.get(k), v)

    scenario.step("device receives the desired patch")
    started = time.monotonic()
    patch = None
    while patch is None or patch.get("conformanceRun") != run_id:
        remaining = PATCH_BOUND - (time.monotonic() - started)
        try:
            patch = await asyncio.wait_for(patches.get(), max(remaining, 0.01))
        except asyncio.TimeoutError:
            raise harness.ScenarioFailure("no desired patch with this run's values within {:.0f} s (last: {!r})".format(
                PATCH_BOUND, patch))
        print("desired patch:", patch)
    scenario.info("desired patch after {:.2f} s: {}".format(time.monotonic() - started, patch))
    for k, v in desired.items():
        expect_equal("patch {}".format(k), patch.get(k), v)
    expect_equal("patch $version", patch.get("$version"), new_version)

    scenario.step("device get_twin() shows the desired properties")
    twin = await device_client.get_twin()
    for k, v in desired.items():
        expect_equal("device twin desired.{}".format(k), twin["desired"].get(k), v)
    expect_equal("device twin desired.$version", twin["desired"].get("$version"), new_version)

    scenario.step("disconnect")
    await device_client.shutdown()


if __name__ == "__main__":
    scenario.run(main)
