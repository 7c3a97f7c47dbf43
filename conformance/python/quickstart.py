"""Scenario (a) quickstart, Python: the DPS symmetric-key quickstart, call for call.

Mirrors azure-iot-device's sample samples/async-hub-scenarios/provision_symmetric_key.py as run
by the quickstart document: the same four PROVISIONING_* environment variables, the same client
calls and the same printed lines. On top of the sample it asserts what the emulator did:
  * the registration result: status `assigned`, assigned hub, device id, substatus
    `initialAssignment`;
  * the 10 concurrent messages (uuid message ids, plus application properties that the sample
    does not set) are all stored by the emulator's hub: GET /telemetry must return each message
    id with its body and properties — not only the SDK's PUBACK-based success.
"""

import asyncio
import os
import uuid

from azure.iot.device.aio import ProvisioningDeviceClient
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.device import Message

import harness
from harness import check, expect_equal

messages_to_send = 10
provisioning_host = os.getenv("PROVISIONING_HOST")
id_scope = os.getenv("PROVISIONING_IDSCOPE")
registration_id = os.getenv("PROVISIONING_REGISTRATION_ID")
symmetric_key = os.getenv("PROVISIONING_SYMMETRIC_KEY")

expected_device_id = os.getenv("EXPECTED_DEVICE_ID")
expected_hub = os.getenv("EXPECTED_ASSIGNED_HUB")

# Not in the sample: an application property on every message, so the test can check that the
# property bag (percent-encoded on the topic by the SDK) arrives decoded.
run_id = str(uuid.uuid4())
WIND_UNIT = "m/s (avg & max=10%)"

scenario = harness.Scenario("quickstart")


async def main():
    for name in ("PROVISIONING_HOST", "PROVISIONING_IDSCOPE", "PROVISIONING_REGISTRATION_ID",
                 "PROVISIONING_SYMMETRIC_KEY", "EXPECTED_DEVICE_ID", "EXPECTED_ASSIGNED_HUB"):
        harness.env(name)

    scenario.step("create provisioning client")
    provisioning_device_client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=provisioning_host,
        registration_id=registration_id,
        id_scope=id_scope,
        symmetric_key=symmetric_key,
    )

    scenario.step("register")
    registration_result = await provisioning_device_client.register()

    print("The complete registration result is")
    print(registration_result.registration_state)

    scenario.step("check registration result")
    expect_equal("registration status", registration_result.status, "assigned")
    state = registration_result.registration_state
    check(state is not None, "registration result has no registration_state")
    expect_equal("assigned hub", state.assigned_hub, expected_hub)
    expect_equal("device id", state.device_id, expected_device_id)
    expect_equal("substatus", state.sub_status, "initialAssignment")

    if registration_result.status == "assigned":
        print("Will send telemetry from the provisioned device")
        scenario.step("create device client")
        device_client = IoTHubDeviceClient.create_from_symmetric_key(
            symmetric_key=symmetric_key,
            hostname=registration_result.registration_state.assigned_hub,
            device_id=registration_result.registration_state.device_id,
        )
        # Connect the client.
        scenario.step("connect to hub")
        await device_client.connect()

        sent = {}

        async def send_test_message(i):
            print("sending message #" + str(i))
            msg = Message("test wind speed " + str(i))
            msg.message_id = uuid.uuid4()
            msg.custom_properties["conformanceRun"] = run_id
            msg.custom_properties["windUnit"] = WIND_UNIT
            await device_client.send_message(msg)
            sent[str(msg.message_id)] = i
            print("done sending message #" + str(i))

        # send `messages_to_send` messages in parallel
        scenario.step("send {} messages concurrently".format(messages_to_send))
        await asyncio.gather(*[send_test_message(i) for i in range(1, messages_to_send + 1)])

        # finally, disconnect
        scenario.step("disconnect from hub")
        await device_client.disconnect()
    else:
        print("Can not send telemetry from the provisioned device")
        raise harness.ScenarioFailure("registration status is {!r}".format(registration_result.status))

    scenario.step("observe telemetry in the emulator (GET /telemetry)")
    expect_equal("messages the SDK reported sent", len(sent), messages_to_send)
    found = await harness.wait_for_telemetry(expected_device_id, set(sent))
    missing = sorted(set(sent) - set(found), key=lambda mid: sent[mid])
    check(
        not missing,
        "{} of {} sent messages not stored by the hub: message ids {}".format(
            len(missing), messages_to_send, ", ".join("#{}={}".format(sent[m], m) for m in missing)
        ),
    )
    for mid, stored in found.items():
        harness.check_stored_message(
            stored,
            expected_device_id,
            "test wind speed " + str(sent[mid]),
            {"conformanceRun": run_id, "windUnit": WIND_UNIT},
        )
    scenario.info("all {} messages stored by the emulator with their properties".format(len(found)))


if __name__ == "__main__":
    scenario.run(main)
