"""Scenario c2d, Python: cloud-to-device messages received with azure-iot-device.

The service SDKs send C2D over AMQP, which the emulator does not serve, so the messages are sent
through the emulator's control port: `POST /c2d?deviceId=&messageId=&correlationId=&prop.<k>=<v>`
(body = message). The device (DPS symmetric-key registration as in the quickstart, then
IoTHubDeviceClient over MQTT) sets `on_message_received` (the setter returns once subscribed) and
must receive every message with its data, message id, correlation id and application properties
intact — one property value contains `/` (the SDK splits the topic on `/`), `&`, `=`, `%` and a
space. A message sent before the handler is set is queued and delivered once subscribed. Then the
device disconnects and 51 messages are sent to it: the first 50 are queued (201), the 51st is
refused with 403 (queue limit 50).
"""

import asyncio
import urllib.parse
import uuid

from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient

import harness
from harness import check, expect_equal

scenario = harness.Scenario("c2d")
run_id = str(uuid.uuid4())
UNIT = "m/s (avg & max=10%) a/b"
RECEIVE_BOUND = 10.0


def c2d_path(device_id, message_id, correlation_id=None, props=None):
    q = [("deviceId", device_id), ("messageId", message_id)]
    if correlation_id:
        q.append(("correlationId", correlation_id))
    for k, v in (props or {}).items():
        q.append(("prop." + k, v))
    return "/c2d?" + urllib.parse.urlencode(q, quote_via=urllib.parse.quote)


async def send(device_id, body, message_id, correlation_id=None, props=None):
    status, resp = await harness.control_post_async(c2d_path(device_id, message_id, correlation_id, props), body)
    return status, resp


async def main():
    device_client, device_id = await harness.provision_and_connect(
        scenario, ProvisioningDeviceClient, IoTHubDeviceClient)
    loop = asyncio.get_running_loop()
    received = asyncio.Queue()

    def on_message(message):
        loop.call_soon_threadsafe(received.put_nowait, message)

    expected = []
    scenario.step("POST /c2d before the handler is set (queued)")
    mid0 = "queued-" + run_id
    status, resp = await send(device_id, "queued before subscribe " + run_id, mid0, "cid-0-" + run_id,
                              {"conformanceRun": run_id, "unit": UNIT})
    expect_equal("POST /c2d status", status, 201)
    expect_equal("POST /c2d messageId", (resp or {}).get("messageId") if isinstance(resp, dict) else resp, mid0)
    expected.append((mid0, "queued before subscribe " + run_id, "cid-0-" + run_id))

    scenario.step("set on_message_received")
    device_client.on_message_received = on_message

    scenario.step("POST /c2d while subscribed")
    for i in (1, 2):
        mid = "msg-{}-{}".format(i, run_id)
        body = "c2d body {} {}".format(i, run_id)
        status, resp = await send(device_id, body, mid, "cid-{}-{}".format(i, run_id),
                                  {"conformanceRun": run_id, "unit": UNIT})
        expect_equal("POST /c2d status", status, 201)
        expected.append((mid, body, "cid-{}-{}".format(i, run_id)))

    scenario.step("receive the messages")
    got = {}
    while len(got) < len(expected):
        try:
            msg = await asyncio.wait_for(received.get(), RECEIVE_BOUND)
        except asyncio.TimeoutError:
            raise harness.ScenarioFailure("received {} of {} messages within {:.0f} s: {}".format(
                len(got), len(expected), RECEIVE_BOUND, sorted(got)))
        print("received: id={!r} cid={!r} data={!r} props={!r}".format(
            msg.message_id, msg.correlation_id, msg.data, msg.custom_properties))
        check(msg.message_id not in got, "message {!r} delivered twice".format(msg.message_id))
        got[msg.message_id] = msg
    for mid, body, cid in expected:
        check(mid in got, "message {!r} not received (got {})".format(mid, sorted(got)))
        msg = got[mid]
        expect_equal("message {} data".format(mid), msg.data, body.encode("utf-8"))
        expect_equal("message {} correlation_id".format(mid), msg.correlation_id, cid)
        expect_equal("message {} custom_properties".format(mid), msg.custom_properties,
                     {"conformanceRun": run_id, "unit": UNIT})
    scenario.info("all {} messages received intact".format(len(expected)))

    scenario.step("no further delivery (nothing redelivered within 2 s)")
    try:
        extra = await asyncio.wait_for(received.get(), 2.0)
        raise harness.ScenarioFailure("unexpected extra delivery: id={!r}".format(extra.message_id))
    except asyncio.TimeoutError:
        pass

    scenario.step("disconnect the device")
    await device_client.shutdown()

    scenario.step("51 messages to the disconnected device: the 51st refused with 403")
    for i in range(1, 52):
        status, resp = await send(device_id, "offline {}".format(i), "offline-{}-{}".format(i, run_id))
        if i <= 50:
            check(status == 201, "POST /c2d #{} to the offline device returned {}: {}".format(i, status, resp))
        else:
            check(status == 403, "POST /c2d #51 to the offline device returned {} (expected 403): {}".format(
                status, resp))
            scenario.info("#51 refused: {} {}".format(status, resp))


if __name__ == "__main__":
    scenario.run(main)
