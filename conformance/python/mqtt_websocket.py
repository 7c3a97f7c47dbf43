"""Scenario mqtt_websocket, Python: the quickstart flow over MQTT over WebSocket.

Both clients are created as in the quickstart sample, plus `websockets=True`, which makes the SDK
use paho's WebSocket transport: wss to port 443, path `/$iothub/websocket`, subprotocol `mqtt`
(for DPS as well as for the hub). Asserts:
  * the registration result (status `assigned`, hub, device id, substatus) and the emulator's
    registration record;
  * 3 messages sent concurrently are all stored by the hub (GET /telemetry) with their bodies and
    properties;
  * the emulator's log shows that the DPS and the hub sessions both arrived through a WebSocket
    upgrade on the HTTPS port, not on 8883 (which is open too).
"""

import asyncio
import uuid

from azure.iot.device.aio import ProvisioningDeviceClient
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.device import Message

import harness
from harness import check, expect_equal

messages_to_send = 3
run_id = str(uuid.uuid4())

scenario = harness.Scenario("mqtt_websocket")


async def main():
    provisioning_host = harness.env("PROVISIONING_HOST")
    id_scope = harness.env("PROVISIONING_IDSCOPE")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    symmetric_key = harness.env("PROVISIONING_SYMMETRIC_KEY")
    expected_hub = harness.env("EXPECTED_ASSIGNED_HUB")
    expected_device_id = harness.env("EXPECTED_DEVICE_ID")
    offset = harness.log_offset()

    scenario.step("register over WebSocket")
    provisioning_device_client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=provisioning_host,
        registration_id=registration_id,
        id_scope=id_scope,
        symmetric_key=symmetric_key,
        websockets=True,
    )
    registration_result = await provisioning_device_client.register()
    print(registration_result.registration_state)

    scenario.step("check registration result")
    expect_equal("registration status", registration_result.status, "assigned")
    state = registration_result.registration_state
    check(state is not None, "registration result has no registration_state")
    expect_equal("assigned hub", state.assigned_hub, expected_hub)
    expect_equal("device id", state.device_id, expected_device_id)
    expect_equal("substatus", state.sub_status, "initialAssignment")

    scenario.step("check emulator registration record (GET /registrations)")
    record = await harness.registration_record(registration_id)
    expect_equal("record status", record.get("status"), "assigned")
    expect_equal("record deviceId", record.get("deviceId"), expected_device_id)

    scenario.step("connect to hub over WebSocket")
    device_client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=symmetric_key,
        hostname=state.assigned_hub,
        device_id=state.device_id,
        websockets=True,
    )
    await device_client.connect()

    sent = {}

    async def send_test_message(i):
        msg = Message("websocket telemetry " + str(i))
        msg.message_id = uuid.uuid4()
        msg.custom_properties["conformanceRun"] = run_id
        await device_client.send_message(msg)
        sent[str(msg.message_id)] = i

    scenario.step("send {} messages concurrently".format(messages_to_send))
    await asyncio.gather(*[send_test_message(i) for i in range(1, messages_to_send + 1)])

    scenario.step("disconnect from hub")
    await device_client.disconnect()

    scenario.step("observe telemetry in the emulator (GET /telemetry)")
    expect_equal("messages the SDK reported sent", len(sent), messages_to_send)
    found = await harness.wait_for_telemetry(expected_device_id, set(sent))
    missing = sorted(set(sent) - set(found), key=lambda mid: sent[mid])
    check(not missing, "sent messages not stored by the hub: {}".format(", ".join(missing)))
    for mid, stored in found.items():
        harness.check_stored_message(
            stored, expected_device_id, "websocket telemetry " + str(sent[mid]), {"conformanceRun": run_id}
        )

    scenario.step("check the sessions came over WebSocket (emulator log)")
    harness.expect_websocket_sessions(scenario, offset, registration_id)
    harness.expect_websocket_sessions(scenario, offset, expected_device_id)


if __name__ == "__main__":
    scenario.run(main)
