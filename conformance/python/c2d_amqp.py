"""Scenario c2d_amqp, Python: cloud-to-device messages sent by the hub service SDK over AMQP.

`azure-iot-hub` 2.7.0 `IoTHubRegistryManager.send_c2d_message(device_id, message, properties)`,
the documented way a Python backend sends C2D, speaks AMQP through uamqp: TLS on 5671 (SASL
MSSBCBS, a CBS put-token, a sender link to `amqps://{host}/messages/devicebound`), or AMQP over
WebSocket on 443 (`/$servicebus/websocket/`, subprotocol AMQPWSB10) with
`transport_type=TransportType.AmqpOverWebsocket`. Neither port can be changed, and uamqp's TLS
trusts the emulator CA through SSL_CERT_FILE (its bundled OpenSSL reads it; certifi's bundle is
loaded as well).

Flow: the service SDK creates a SAS device over HTTPS; the device SDK (`azure-iot-device`, MQTT,
device connection string) connects and sets `on_message_received`. Then, once per transport, the
service sends one message with a message id, a correlation id, a content type and two custom
properties (one value with `/ & = %` and spaces): the device receives it with all of them intact.
A third message is sent over AMQP while the device is disconnected (the hub queues it) and
arrives after the device reconnects. A message to a device that does not exist makes
`send_c2d_message` raise (the hub rejects it: amqp:not-found). The emulator's log shows the
AMQP connections, one of them over WebSocket.
"""

import asyncio
import uuid

from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.hub import IoTHubRegistryManager
from uamqp import TransportType

import harness
from harness import check, expect_equal, in_thread

scenario = harness.Scenario("c2d_amqp", timeout=75.0)
run_id = str(uuid.uuid4())
UNIT = "m/s (avg & max=10%) a/b"
RECEIVE_BOUND = 15.0


def properties_for(tag):
    return {
        "messageId": "{}-{}".format(tag, run_id),
        "correlationId": "cid-{}-{}".format(tag, run_id),
        "contentType": "application/json",
        "conformanceRun": run_id,
        "unit": UNIT,
    }


async def receive_one(queue, what):
    try:
        return await asyncio.wait_for(queue.get(), RECEIVE_BOUND)
    except asyncio.TimeoutError:
        raise harness.ScenarioFailure("{}: the device received nothing within {:.0f} s".format(what, RECEIVE_BOUND))


def check_received(msg, tag, body):
    props = properties_for(tag)
    print("received: id={!r} cid={!r} ct={!r} data={!r} props={!r}".format(
        msg.message_id, msg.correlation_id, msg.content_type, msg.data, msg.custom_properties))
    expect_equal("message id", msg.message_id, props["messageId"])
    expect_equal("data", msg.data, body.encode("utf-8"))
    expect_equal("correlation id", msg.correlation_id, props["correlationId"])
    expect_equal("content type", msg.content_type, props["contentType"])
    expect_equal("custom properties", msg.custom_properties, {"conformanceRun": run_id, "unit": UNIT})


async def main():
    cs = harness.env("IOTHUB_CONNECTION_STRING")
    device_id = harness.env("C2D_DEVICE_ID")
    registry = await in_thread(IoTHubRegistryManager.from_connection_string, cs)
    device_cs = await harness.create_sas_device(scenario, registry, device_id)

    scenario.step("device connects (MQTT) and sets on_message_received")
    loop = asyncio.get_running_loop()
    received = asyncio.Queue()
    device = IoTHubDeviceClient.create_from_connection_string(device_cs)
    await device.connect()
    device.on_message_received = lambda m: loop.call_soon_threadsafe(received.put_nowait, m)

    offset = harness.log_offset()
    for transport, tag in ((TransportType.Amqp, "amqp"), (TransportType.AmqpOverWebsocket, "amqp-ws")):
        scenario.step("send_c2d_message over {} (IoTHubRegistryManager.from_connection_string(cs, "
                      "transport_type={}))".format("5671" if tag == "amqp" else "WebSocket on 443", transport))
        sender = await in_thread(lambda: IoTHubRegistryManager.from_connection_string(cs, transport_type=transport))
        body = '{{"command": "{}", "run": "{}"}}'.format(tag, run_id)
        await in_thread(sender.send_c2d_message, device_id, body, properties_for(tag))
        scenario.step("the device receives the {} message intact".format(tag))
        check_received(await receive_one(received, tag), tag, body)
        # Later sends on the same sender reuse its AMQP connection.
        scenario.step("second send on the same {} client".format(tag))
        body2 = '{{"command": "{}-again"}}'.format(tag)
        await in_thread(sender.send_c2d_message, device_id, body2, properties_for(tag + "-again"))
        check_received(await receive_one(received, tag + "-again"), tag + "-again", body2)
        await in_thread(sender.amqp_svc_client.disconnect_sync)

    scenario.step("send_c2d_message to a device that does not exist raises")
    try:
        await in_thread(registry.send_c2d_message, device_id + "-missing", "nobody", properties_for("missing"))
    except Exception as e:  # the SDK raises a bare Exception("C2D message send failure")
        scenario.info("refused as expected: {}".format(harness.describe_error(e)))
    else:
        raise harness.ScenarioFailure("send_c2d_message to an unknown device succeeded")

    scenario.step("send over AMQP while the device is disconnected, then reconnect")
    await device.disconnect()
    body = '{"command": "offline"}'
    await in_thread(registry.send_c2d_message, device_id, body, properties_for("offline"))
    await device.connect()
    check_received(await receive_one(received, "offline"), "offline", body)
    await device.shutdown()
    await in_thread(registry.amqp_svc_client.disconnect_sync)

    scenario.step("emulator log: every message was queued from an AMQP link, one connection came over WebSocket")
    harness.expect_c2d_queued_over_amqp(scenario, offset, device_id, [
        properties_for(tag)["messageId"] for tag in ("amqp", "amqp-again", "amqp-ws", "amqp-ws-again", "offline")])
    harness.expect_amqp_websocket_upgrades(scenario, offset)


if __name__ == "__main__":
    scenario.run(main)
