"""Scenario (b) group enrollment, Python: a device of a symmetric-key enrollment group.

The registration id is in no individual enrollment; the device key is derived from the group key
(base64(HMAC-SHA256(base64decode(groupKey), registrationId)), as the SDK's group sample does).
Asserts: assigned to the expected hub with device id = registration id, the emulator's
registration record agrees, and one message sent with that key is stored by the hub.
"""

import base64
import hashlib
import hmac
import uuid

from azure.iot.device.aio import ProvisioningDeviceClient
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.device import Message

import harness
from harness import check, expect_equal

scenario = harness.Scenario("group_enrollment")


def derive_device_key(group_symmetric_key, registration_id):
    # Same derivation as the SDK's provision_symmetric_key_group.py sample.
    message = registration_id.encode("utf-8")
    signing_key = base64.b64decode(group_symmetric_key.encode("utf-8"))
    signed_hmac = hmac.HMAC(signing_key, message, hashlib.sha256)
    return base64.b64encode(signed_hmac.digest()).decode("utf-8")


async def main():
    provisioning_host = harness.env("PROVISIONING_HOST")
    id_scope = harness.env("PROVISIONING_IDSCOPE")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    group_key = harness.env("PROVISIONING_SYMMETRIC_KEY")
    expected_hub = harness.env("EXPECTED_ASSIGNED_HUB")
    expected_device_id = harness.env("EXPECTED_DEVICE_ID")

    scenario.step("derive device key from group key")
    device_key = derive_device_key(group_key, registration_id)
    check(device_key == harness.derive_device_key(group_key, registration_id), "key derivation mismatch")

    scenario.step("register")
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=provisioning_host,
        registration_id=registration_id,
        id_scope=id_scope,
        symmetric_key=device_key,
    )
    result = await client.register()
    print(result.registration_state)

    scenario.step("check registration result")
    expect_equal("registration status", result.status, "assigned")
    expect_equal("assigned hub", result.registration_state.assigned_hub, expected_hub)
    expect_equal("device id", result.registration_state.device_id, expected_device_id)
    expect_equal("substatus", result.registration_state.sub_status, "initialAssignment")

    scenario.step("check emulator registration record (GET /registrations)")
    record = await harness.registration_record(registration_id)
    expect_equal("record status", record.get("status"), "assigned")
    expect_equal("record deviceId", record.get("deviceId"), expected_device_id)
    expect_equal("record assignedHub", record.get("assignedHub"), expected_hub)
    group = (record.get("symmetricKey") or {}).get("enrollmentGroupId")
    scenario.info("record symmetricKey.enrollmentGroupId = {!r}".format(group))

    scenario.step("connect to hub with the derived key")
    device_client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=device_key,
        hostname=result.registration_state.assigned_hub,
        device_id=result.registration_state.device_id,
    )
    await device_client.connect()

    scenario.step("send one message")
    mid = str(uuid.uuid4())
    msg = Message("group device telemetry")
    msg.message_id = mid
    msg.custom_properties["scenario"] = "group_enrollment"
    await device_client.send_message(msg)
    await device_client.disconnect()

    scenario.step("observe telemetry in the emulator (GET /telemetry)")
    found = await harness.wait_for_telemetry(expected_device_id, {mid})
    check(mid in found, "message {} not stored by the hub".format(mid))
    harness.check_stored_message(
        found[mid], expected_device_id, "group device telemetry", {"scenario": "group_enrollment"}
    )


if __name__ == "__main__":
    scenario.run(main)
