"""Scenario methods, Python: direct methods with azure-iot-device (device) and azure-iot-hub
(service).

The device (DPS symmetric-key registration as in the quickstart, then IoTHubDeviceClient over
MQTT) sets `on_method_request_received` (the setter returns once the hub acknowledged the
subscription) with a coroutine that answers through
`MethodResponse.create_from_method_request(request, status, payload)`. The service invokes with
`IoTHubRegistryManager.invoke_device_method(device_id, CloudToDeviceMethod(method_name=...,
payload=...))` over HTTPS and must get the device's status and payload back (two methods: one
answering 200 with an object that echoes the request, one answering the non-2xx device status 404
with a string payload, which the hub passes through as a successful invocation). After the device
disconnects, invoking again must fail promptly with HTTP 404 (DeviceNotOnline).
"""

import asyncio
import time
import uuid

from azure.iot.device import MethodResponse
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient
from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod
from msrest.exceptions import HttpOperationError

import harness
from harness import check, expect_equal

scenario = harness.Scenario("methods")
run_id = str(uuid.uuid4())
OFFLINE_BOUND = 10.0  # seconds: a method call to a disconnected device must fail before this


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def main():
    service_cs = harness.env("IOTHUB_CONNECTION_STRING")
    device_client, device_id = await harness.provision_and_connect(
        scenario, ProvisioningDeviceClient, IoTHubDeviceClient)
    requests_seen = []

    async def on_method(request):
        requests_seen.append((request.name, request.payload, request.request_id))
        if request.name == "reboot":
            response = MethodResponse.create_from_method_request(
                request, 200, {"rebooted": True, "echo": request.payload, "run": run_id})
        else:
            response = MethodResponse.create_from_method_request(request, 404, "no such method: " + request.name)
        await device_client.send_method_response(response)

    scenario.step("set on_method_request_received")
    device_client.on_method_request_received = on_method
    registry = IoTHubRegistryManager.from_connection_string(service_cs)

    scenario.step("service invoke_device_method(reboot)")
    payload = {"delay": 1, "reason": "conformance", "run": run_id}
    result = await in_thread(registry.invoke_device_method, device_id,
                             CloudToDeviceMethod(method_name="reboot", payload=payload, response_timeout_in_seconds=30))
    print("result:", result)
    expect_equal("method result status", result.status, 200)
    expect_equal("method result payload", result.payload, {"rebooted": True, "echo": payload, "run": run_id})
    check(requests_seen and requests_seen[0][:2] == ("reboot", payload),
          "the device handler saw {!r}".format(requests_seen))

    scenario.step("service invoke_device_method(unknownMethod): device status 404 passed through")
    result = await in_thread(registry.invoke_device_method, device_id,
                             CloudToDeviceMethod(method_name="unknownMethod", payload=None))
    print("result:", result)
    expect_equal("method result status", result.status, 404)
    expect_equal("method result payload", result.payload, "no such method: unknownMethod")
    expect_equal("device handler calls", [r[0] for r in requests_seen], ["reboot", "unknownMethod"])

    scenario.step("disconnect the device")
    await device_client.shutdown()

    scenario.step("service invoke_device_method on the disconnected device")
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(
            in_thread(registry.invoke_device_method, device_id,
                      CloudToDeviceMethod(method_name="reboot", payload=payload, response_timeout_in_seconds=30)),
            OFFLINE_BOUND)
    except asyncio.TimeoutError:
        raise harness.ScenarioFailure("no result within {:.0f} s (expected a prompt 404)".format(OFFLINE_BOUND))
    except HttpOperationError as e:
        elapsed = time.monotonic() - started
        status = e.response.status_code if e.response is not None else None
        body = e.response.text if e.response is not None else None
        scenario.info("refused after {:.2f} s: HTTP {} {}".format(elapsed, status, body))
        expect_equal("HTTP status for a method on a disconnected device", status, 404)
        check("DeviceNotOnline" in (body or "") or "404103" in (body or ""),
              "404 body does not name DeviceNotOnline/404103: {!r}".format(body))
    else:
        raise harness.ScenarioFailure("invoking a method on a disconnected device succeeded: {!r}".format(result))
    expect_equal("device handler calls", len(requests_seen), 2)


if __name__ == "__main__":
    scenario.run(main)
