"""Scenario websocket_hub, Python: twin, direct method and C2D over MQTT over WebSocket.

The device registers with DPS and connects to the hub as in the quickstart, both with
`websockets=True` (paho over wss on 443, path `/$iothub/websocket`). Over that one WebSocket
session it:
  * sets `on_twin_desired_properties_patch_received`, `on_method_request_received` and
    `on_message_received` (each setter returns once the hub acknowledged the subscription);
  * reads its twin (`get_twin`) and reports properties (`patch_twin_reported_properties`): the
    service (`azure-iot-hub` `get_twin`, HTTPS) sees them; the service's `update_twin` with the
    etag reaches the device as a desired patch with the twin's new `$version`;
  * answers a method invoked with `invoke_device_method` (200 with an echo);
  * receives a C2D message sent through the control port (`POST /c2d`) with data, ids and
    application properties intact.
The emulator's log must show that the DPS and hub sessions both came through a WebSocket upgrade.
"""

import asyncio
import urllib.parse
import uuid

from azure.iot.device import MethodResponse
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod, Twin, TwinProperties

import harness
from harness import check, expect_equal

scenario = harness.Scenario("websocket_hub")
run_id = str(uuid.uuid4())
RECEIVE_BOUND = 10.0
UNIT = "m/s (avg & max=10%) a/b"


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def next_item(queue, what):
    try:
        return await asyncio.wait_for(queue.get(), RECEIVE_BOUND)
    except asyncio.TimeoutError:
        raise harness.ScenarioFailure("no {} within {:.0f} s".format(what, RECEIVE_BOUND))


async def main():
    service_cs = harness.env("IOTHUB_CONNECTION_STRING")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    offset = harness.log_offset()
    client, device_id = await harness.provision_and_connect(
        scenario, ProvisioningDeviceClient, IoTHubDeviceClient, websockets=True)
    registry = IoTHubRegistryManager.from_connection_string(service_cs)
    loop = asyncio.get_running_loop()
    patches, messages, methods = asyncio.Queue(), asyncio.Queue(), []

    def on_patch(patch):
        loop.call_soon_threadsafe(patches.put_nowait, patch)

    def on_message(message):
        loop.call_soon_threadsafe(messages.put_nowait, message)

    async def on_method(request):
        methods.append((request.name, request.payload))
        await client.send_method_response(MethodResponse.create_from_method_request(
            request, 200, {"echo": request.payload, "transport": "websocket"}))

    scenario.step("set the desired-patch, method and C2D handlers")
    client.on_twin_desired_properties_patch_received = on_patch
    client.on_method_request_received = on_method
    client.on_message_received = on_message

    scenario.step("device get_twin() and patch_twin_reported_properties()")
    twin = await client.get_twin()
    print("device twin:", twin)
    check(isinstance(twin, dict) and isinstance(twin.get("desired", {}).get("$version"), int),
          "get_twin() did not return {{desired: {{$version}}, reported}}: {!r}".format(twin))
    reported = {"conformanceRun": run_id, "transport": {"kind": "websocket"}}
    await client.patch_twin_reported_properties(reported)

    scenario.step("service get_twin()")
    service_twin = await in_thread(registry.get_twin, device_id)
    print("service twin:", service_twin)
    svc_reported = service_twin.properties.reported or {}
    expect_equal("service twin reported.conformanceRun", svc_reported.get("conformanceRun"), run_id)
    expect_equal("service twin reported.transport", svc_reported.get("transport"), reported["transport"])

    scenario.step("service update_twin() with desired properties and the etag")
    desired = {"conformanceRun": run_id, "interval": 30}
    updated = await in_thread(registry.update_twin, device_id, Twin(properties=TwinProperties(desired=desired)),
                              service_twin.etag)
    new_version = (updated.properties.desired or {}).get("$version")
    check(isinstance(new_version, int), "update_twin returned no desired $version: {!r}".format(updated.properties))

    scenario.step("device receives the desired patch")
    while True:
        patch = await next_item(patches, "desired patch with this run's values")
        print("desired patch:", patch)
        if patch.get("conformanceRun") == run_id:
            break
    expect_equal("patch interval", patch.get("interval"), 30)
    expect_equal("patch $version", patch.get("$version"), new_version)

    scenario.step("service invoke_device_method()")
    payload = {"run": run_id}
    result = await in_thread(registry.invoke_device_method, device_id,
                             CloudToDeviceMethod(method_name="ping", payload=payload, response_timeout_in_seconds=30))
    print("method result:", result)
    expect_equal("method result status", result.status, 200)
    expect_equal("method result payload", result.payload, {"echo": payload, "transport": "websocket"})
    expect_equal("device handler calls", methods, [("ping", payload)])

    scenario.step("POST /c2d (control port)")
    mid = "c2d-" + run_id
    query = urllib.parse.urlencode([
        ("deviceId", device_id), ("messageId", mid), ("correlationId", "cid-" + run_id),
        ("prop.conformanceRun", run_id), ("prop.unit", UNIT),
    ], quote_via=urllib.parse.quote)
    status, resp = await harness.control_post_async("/c2d?" + query, "c2d over websocket " + run_id)
    expect_equal("POST /c2d status", status, 201)

    scenario.step("device receives the C2D message")
    message = await next_item(messages, "C2D message")
    print("c2d: id={!r} cid={!r} data={!r} props={!r}".format(
        message.message_id, message.correlation_id, message.data, message.custom_properties))
    expect_equal("message_id", message.message_id, mid)
    expect_equal("correlation_id", message.correlation_id, "cid-" + run_id)
    expect_equal("data", message.data, ("c2d over websocket " + run_id).encode("utf-8"))
    expect_equal("custom_properties", message.custom_properties, {"conformanceRun": run_id, "unit": UNIT})

    scenario.step("disconnect")
    await client.shutdown()

    scenario.step("check the sessions came over WebSocket (emulator log)")
    harness.expect_websocket_sessions(scenario, offset, registration_id)
    harness.expect_websocket_sessions(scenario, offset, device_id)


if __name__ == "__main__":
    scenario.run(main)
