"""Scenario pnp, Python: IoT Plug and Play (thermostat-style) with azure-iot-device (device) and
azure-iot-hub (service), plus the bulk registry and the statistics.

The service creates a SAS device (`create_device_with_sas`); the device connects over MQTT with
`product_info` set to a DTMI, which the SDK sends as `model-id` in the CONNECT username. The
service then sees, through `DigitalTwinClient` (HTTPS):

* `get_digital_twin`: `$dtId` and `$metadata.$model` = the model id;
* `invoke_command` (root) and `invoke_component_command`: the device's method handler gets
  `getMaxMinReport` and `thermostat1*getMaxMinReport` with the payload, and the service gets the
  device's payload back;
* `update_digital_twin` with a JSON Patch on `/thermostat1/targetTemperature`: the device gets a
  desired patch `{"thermostat1": {"__t": "c", "targetTemperature": 42}, "$version": v}`, acks it
  by the writable-property convention (`{"value", "ac", "av", "ad"}`), and `get_digital_twin` shows
  the value with `desiredValue`, `desiredVersion`, `ackCode` and `ackVersion` in the component's
  `$metadata`.

`IoTHubRegistryManager.bulk_create_or_update_devices` creates two devices in one request (200,
`is_successful`), a second call with one taken id answers 400 with one `DeviceAlreadyExists`
error; `get_device_registry_statistics` and `get_service_statistics` count them and the
connected device.
"""

import asyncio
import uuid

from azure.iot.device import MethodResponse
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.hub import DigitalTwinClient, IoTHubRegistryManager
from azure.iot.hub.models import AuthenticationMechanism, ExportImportDevice, SymmetricKey

import harness
from harness import check, expect_equal, in_thread

scenario = harness.Scenario("pnp")
MODEL_ID = "dtmi:com:example:TemperatureController;2"
run_id = uuid.uuid4().hex[:8]


async def main():
    service_cs = harness.env("IOTHUB_CONNECTION_STRING")
    registry = IoTHubRegistryManager.from_connection_string(service_cs)
    device_id = "conformance-py-pnp-" + run_id
    device_cs = await harness.create_sas_device(scenario, registry, device_id)

    scenario.step("connect with product_info = the model id")
    device = IoTHubDeviceClient.create_from_connection_string(device_cs, product_info=MODEL_ID)
    await device.connect()
    commands = []
    patches = asyncio.Queue()

    async def on_method(request):
        commands.append((request.name, request.payload))
        await device.send_method_response(MethodResponse.create_from_method_request(
            request, 200, {"command": request.name, "since": request.payload}))

    device.on_method_request_received = on_method
    device.on_twin_desired_properties_patch_received = patches.put_nowait
    digital = DigitalTwinClient.from_connection_string(service_cs)

    scenario.step("get_digital_twin: the model id")
    twin = await in_thread(digital.get_digital_twin, device_id)
    print("digital twin:", twin)
    expect_equal("$dtId", twin.get("$dtId"), device_id)
    expect_equal("$metadata.$model", (twin.get("$metadata") or {}).get("$model"), MODEL_ID)

    scenario.step("invoke_command and invoke_component_command")
    root = await in_thread(digital.invoke_command, device_id, "getMaxMinReport", "2024-01-01T00:00:00Z")
    print("root command:", root)
    expect_equal("root command result", root, {"command": "getMaxMinReport", "since": "2024-01-01T00:00:00Z"})
    component = await in_thread(digital.invoke_component_command, device_id, "thermostat1",
                                "getMaxMinReport", {"since": "yesterday"}, 5, 30)
    print("component command:", component)
    expect_equal("component command result", component,
                 {"command": "thermostat1*getMaxMinReport", "since": {"since": "yesterday"}})
    expect_equal("methods the device saw", [c[0] for c in commands],
                 ["getMaxMinReport", "thermostat1*getMaxMinReport"])

    scenario.step("update_digital_twin: a writable property on a component")
    await in_thread(digital.update_digital_twin, device_id,
                    [{"op": "add", "path": "/thermostat1/targetTemperature", "value": 42}])
    patch = await asyncio.wait_for(patches.get(), 10)
    print("desired patch:", patch)
    expect_equal("patch component", patch.get("thermostat1"), {"__t": "c", "targetTemperature": 42})
    version = patch.get("$version")
    check(isinstance(version, int), "the desired patch has no $version: {!r}".format(patch))

    scenario.step("the device acks the writable property")
    await device.patch_twin_reported_properties({"thermostat1": {
        "__t": "c", "targetTemperature": {"value": 42, "ac": 200, "av": version, "ad": "ok"}}})
    twin = await in_thread(digital.get_digital_twin, device_id)
    print("digital twin:", twin)
    thermostat = twin.get("thermostat1") or {}
    expect_equal("thermostat1.targetTemperature", thermostat.get("targetTemperature"), 42)
    meta = (thermostat.get("$metadata") or {}).get("targetTemperature") or {}
    expect_equal("desiredValue", meta.get("desiredValue"), 42)
    expect_equal("desiredVersion", meta.get("desiredVersion"), version)
    expect_equal("ackCode", meta.get("ackCode"), 200)
    expect_equal("ackVersion", meta.get("ackVersion"), version)

    scenario.step("bulk_create_or_update_devices: two devices in one request")
    def bulk_device(suffix):
        return ExportImportDevice(
            id="conformance-py-bulk-{}-{}".format(suffix, run_id), import_mode="create",
            status="enabled", authentication=AuthenticationMechanism(
                type="sas", symmetric_key=SymmetricKey(primary_key=harness.new_key(), secondary_key=harness.new_key())))
    before = await in_thread(registry.get_device_registry_statistics)
    result = await in_thread(registry.bulk_create_or_update_devices, [bulk_device("a"), bulk_device("b")])
    print("bulk result:", result)
    expect_equal("bulk is_successful", result.is_successful, True)
    for suffix in ("a", "b"):
        status, body = await harness.device_record("conformance-py-bulk-{}-{}".format(suffix, run_id))
        check(status == 200, "bulk device {} not in the registry: {} {}".format(suffix, status, body))

    scenario.step("bulk create again with a taken id: 400 with one DeviceAlreadyExists")
    result = await in_thread(registry.bulk_create_or_update_devices, [bulk_device("a"), bulk_device("c")])
    print("bulk result:", result)
    expect_equal("bulk is_successful", result.is_successful, False)
    errors = result.errors or []
    expect_equal("bulk errors", [(e.device_id, e.error_code) for e in errors],
                 [("conformance-py-bulk-a-" + run_id, "DeviceAlreadyExists")])

    scenario.step("statistics")
    after = await in_thread(registry.get_device_registry_statistics)
    print("registry statistics:", before, after)
    # At least: the other SDK lane runs at the same time and may add devices to the same hub.
    grew = after.total_device_count - before.total_device_count
    check(grew >= 3, "totalDeviceCount grew by {} ({} -> {}), not at least the 3 added".format(
        grew, before.total_device_count, after.total_device_count))
    service = await in_thread(registry.get_service_statistics)
    check(service.connected_device_count >= 1,
          "connectedDeviceCount {} with the PnP device connected".format(service.connected_device_count))
    await device.shutdown()


if __name__ == "__main__":
    scenario.run(main)
