"""Scenario module_client, Python: a module identity with azure-iot-hub (service) and
azure-iot-device's IoTHubModuleClient (MQTT).

The service (`IoTHubRegistryManager.from_connection_string(<iothubowner>)`, HTTPS) creates a SAS
device (`create_device_with_sas`) and a SAS module on it (`create_module_with_sas`). The module
connects with `IoTHubModuleClient.create_from_connection_string("HostName=…;DeviceId=…;ModuleId=…;
SharedAccessKey=<module key>")` and:
  * sends one telemetry message (`send_message`) and one output message
    (`send_message_to_output(msg, "alerts")`): the emulator stores both under the device with
    `moduleId` set, the output one with system property `iothub-outputname` = `alerts`;
  * reads its twin (`get_twin`), reports properties (`patch_twin_reported_properties`), which the
    service sees with `get_module_twin`; the service's `update_module_twin` (with the etag)
    reaches the module's `on_twin_desired_properties_patch_received` with the new `$version`;
  * answers a method invoked with `invoke_device_module_method` (`on_method_request_received`);
  * receives an input message sent through the emulator's control port
    (`POST /input?deviceId=&moduleId=&input=`; IoT Edge routing would deliver it) on
    `on_message_received` with `message.input_name`, data, message id and properties.
"""

import asyncio
import base64
import os
import urllib.parse
import uuid

from azure.iot.device import Message, MethodResponse
from azure.iot.device.aio import IoTHubModuleClient
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties

import harness
from harness import check, expect_equal

scenario = harness.Scenario("module_client")
run_id = str(uuid.uuid4())
RECEIVE_BOUND = 10.0  # seconds for a desired patch or an input message to arrive
OUTPUT = "alerts"
INPUT = "commands"


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def new_key():
    return base64.b64encode(os.urandom(32)).decode("ascii")


async def next_item(queue, what):
    try:
        return await asyncio.wait_for(queue.get(), RECEIVE_BOUND)
    except asyncio.TimeoutError:
        raise harness.ScenarioFailure("no {} within {:.0f} s".format(what, RECEIVE_BOUND))


async def main():
    service_cs = harness.env("IOTHUB_CONNECTION_STRING")
    device_id = harness.env("MODULE_DEVICE_ID")
    module_id = harness.env("MODULE_ID")
    hub_host = harness.env("EXPECTED_ASSIGNED_HUB")
    registry = IoTHubRegistryManager.from_connection_string(service_cs)

    scenario.step("service create_device_with_sas")
    device = await in_thread(
        lambda: registry.create_device_with_sas(device_id, new_key(), new_key(), "enabled"))
    print("device:", device)
    expect_equal("created device_id", device.device_id, device_id)
    expect_equal("created device authentication.type", device.authentication.type, "sas")

    scenario.step("service create_module_with_sas")
    module_key = new_key()
    module = await in_thread(
        lambda: registry.create_module_with_sas(device_id, module_id, None, module_key, new_key()))
    print("module:", module)
    expect_equal("created module device_id", module.device_id, device_id)
    expect_equal("created module module_id", module.module_id, module_id)
    expect_equal("created module primary key", module.authentication.symmetric_key.primary_key, module_key)

    scenario.step("IoTHubModuleClient.create_from_connection_string + connect")
    client = IoTHubModuleClient.create_from_connection_string(
        "HostName={};DeviceId={};ModuleId={};SharedAccessKey={}".format(hub_host, device_id, module_id, module_key))
    await client.connect()

    loop = asyncio.get_running_loop()
    patches, inputs, methods = asyncio.Queue(), asyncio.Queue(), []

    def on_patch(patch):
        loop.call_soon_threadsafe(patches.put_nowait, patch)

    def on_message(message):
        loop.call_soon_threadsafe(inputs.put_nowait, message)

    async def on_method(request):
        methods.append((request.name, request.payload))
        await client.send_method_response(MethodResponse.create_from_method_request(
            request, 200, {"module": module_id, "echo": request.payload}))

    scenario.step("set the desired-patch, method and message handlers")
    client.on_twin_desired_properties_patch_received = on_patch
    client.on_method_request_received = on_method
    client.on_message_received = on_message

    scenario.step("send_message (telemetry) and send_message_to_output")
    telemetry = Message("module telemetry " + run_id)
    telemetry.message_id = "telemetry-" + run_id
    telemetry.custom_properties["conformanceRun"] = run_id
    await client.send_message(telemetry)
    output = Message("module output " + run_id)
    output.message_id = "output-" + run_id
    output.custom_properties["conformanceRun"] = run_id
    await client.send_message_to_output(output, OUTPUT)

    scenario.step("observe both messages in the emulator (GET /telemetry)")
    found = await harness.wait_for_telemetry(device_id, {telemetry.message_id, output.message_id})
    check(len(found) == 2, "stored: {}, expected both {} and {}".format(
        sorted(found), telemetry.message_id, output.message_id))
    stored = found[telemetry.message_id]
    harness.check_stored_message(stored, device_id, "module telemetry " + run_id, {"conformanceRun": run_id})
    expect_equal("telemetry moduleId", stored.get("moduleId"), module_id)
    expect_equal("telemetry iothub-outputname", stored["systemProperties"].get("iothub-outputname"), None)
    stored = found[output.message_id]
    harness.check_stored_message(stored, device_id, "module output " + run_id, {"conformanceRun": run_id})
    expect_equal("output moduleId", stored.get("moduleId"), module_id)
    expect_equal("output iothub-outputname", stored["systemProperties"].get("iothub-outputname"), OUTPUT)

    scenario.step("module get_twin() and patch_twin_reported_properties()")
    twin = await client.get_twin()
    print("module twin:", twin)
    check(isinstance(twin, dict) and isinstance(twin.get("desired", {}).get("$version"), int),
          "get_twin() did not return {{desired: {{$version}}, reported}}: {!r}".format(twin))
    reported = {"conformanceRun": run_id, "module": {"state": "running", "restarts": 0}}
    await client.patch_twin_reported_properties(reported)

    scenario.step("service get_module_twin()")
    service_twin = await in_thread(registry.get_module_twin, device_id, module_id)
    print("service module twin:", service_twin)
    expect_equal("service twin device_id", service_twin.device_id, device_id)
    expect_equal("service twin module_id", service_twin.module_id, module_id)
    check(service_twin.etag, "service module twin has no etag")
    expect_equal("service twin reported.conformanceRun", (service_twin.properties.reported or {}).get("conformanceRun"), run_id)
    expect_equal("service twin reported.module", (service_twin.properties.reported or {}).get("module"), reported["module"])

    scenario.step("service update_module_twin() with desired properties and the etag")
    desired = {"conformanceRun": run_id, "logLevel": "debug", "limits": {"rate": 5}}
    updated = await in_thread(registry.update_module_twin, device_id, module_id,
                              Twin(properties=TwinProperties(desired=desired)), service_twin.etag)
    new_version = (updated.properties.desired or {}).get("$version")
    check(isinstance(new_version, int), "update_module_twin returned no desired $version: {!r}".format(updated.properties))

    scenario.step("module receives the desired patch")
    while True:
        patch = await next_item(patches, "desired patch with this run's values")
        print("desired patch:", patch)
        if patch.get("conformanceRun") == run_id:
            break
    for k, v in desired.items():
        expect_equal("patch {}".format(k), patch.get(k), v)
    expect_equal("patch $version", patch.get("$version"), new_version)

    scenario.step("service invoke_device_module_method()")
    payload = {"run": run_id, "level": 3}
    result = await in_thread(registry.invoke_device_module_method, device_id, module_id,
                             CloudToDeviceMethod(method_name="setLevel", payload=payload, response_timeout_in_seconds=30))
    print("method result:", result)
    expect_equal("method result status", result.status, 200)
    expect_equal("method result payload", result.payload, {"module": module_id, "echo": payload})
    expect_equal("module handler calls", methods, [("setLevel", payload)])

    scenario.step("POST /input to the module's input (control port)")
    query = urllib.parse.urlencode([
        ("deviceId", device_id), ("moduleId", module_id), ("input", INPUT),
        ("messageId", "input-" + run_id), ("correlationId", "cid-" + run_id),
        ("prop.conformanceRun", run_id), ("prop.unit", "m/s (avg & max=10%)"),
    ], quote_via=urllib.parse.quote)
    status, resp = await harness.control_post_async("/input?" + query, "input body " + run_id)
    expect_equal("POST /input status", status, 201)

    scenario.step("module receives the input message (on_message_received)")
    message = await next_item(inputs, "input message")
    print("input message: input={!r} id={!r} cid={!r} data={!r} props={!r}".format(
        message.input_name, message.message_id, message.correlation_id, message.data, message.custom_properties))
    expect_equal("input_name", message.input_name, INPUT)
    expect_equal("data", message.data, ("input body " + run_id).encode("utf-8"))
    expect_equal("message_id", message.message_id, "input-" + run_id)
    expect_equal("correlation_id", message.correlation_id, "cid-" + run_id)
    expect_equal("custom_properties", message.custom_properties,
                 {"conformanceRun": run_id, "unit": "m/s (avg & max=10%)"})

    scenario.step("disconnect")
    await client.shutdown()


if __name__ == "__main__":
    scenario.run(main)
