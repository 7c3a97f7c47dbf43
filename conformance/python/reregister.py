"""Scenario (e) re-registration, Python: registering the same device twice is stable.

A device calls register() on every boot; two registrations (fresh client each time, as after a
reboot) must give the same assigned hub and device id, and the device must still be able to
connect to the hub with its key afterwards.
"""

from azure.iot.device.aio import ProvisioningDeviceClient
from azure.iot.device.aio import IoTHubDeviceClient

import harness
from harness import expect_equal

scenario = harness.Scenario("reregister")


async def main():
    provisioning_host = harness.env("PROVISIONING_HOST")
    id_scope = harness.env("PROVISIONING_IDSCOPE")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    symmetric_key = harness.env("PROVISIONING_SYMMETRIC_KEY")
    expected_hub = harness.env("EXPECTED_ASSIGNED_HUB")
    expected_device_id = harness.env("EXPECTED_DEVICE_ID")

    results = []
    for attempt in (1, 2):
        scenario.step("register #{}".format(attempt))
        client = ProvisioningDeviceClient.create_from_symmetric_key(
            provisioning_host=provisioning_host,
            registration_id=registration_id,
            id_scope=id_scope,
            symmetric_key=symmetric_key,
        )
        result = await client.register()
        state = result.registration_state
        scenario.info(
            "status={} hub={} device={} substatus={}".format(
                result.status, state.assigned_hub, state.device_id, state.sub_status
            )
        )
        expect_equal("registration #{} status".format(attempt), result.status, "assigned")
        results.append(result)

    scenario.step("compare the two registrations")
    first, second = (r.registration_state for r in results)
    expect_equal("assigned hub (first registration)", first.assigned_hub, expected_hub)
    expect_equal("device id (first registration)", first.device_id, expected_device_id)
    expect_equal("assigned hub (second vs first)", second.assigned_hub, first.assigned_hub)
    expect_equal("device id (second vs first)", second.device_id, first.device_id)

    scenario.step("check emulator registration record (GET /registrations)")
    record = await harness.registration_record(registration_id)
    expect_equal("record status", record.get("status"), "assigned")
    expect_equal("record deviceId", record.get("deviceId"), expected_device_id)

    scenario.step("connect to hub after re-registration")
    device_client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=symmetric_key, hostname=second.assigned_hub, device_id=second.device_id
    )
    await device_client.connect()
    await device_client.disconnect()


if __name__ == "__main__":
    scenario.run(main)
