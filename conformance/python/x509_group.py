"""Scenario (g) x509_group, Python: an X.509 enrollment group on an intermediate CA under a verified root.

The enrollment group `conformance-x509-group` holds the intermediate CA; the root is uploaded to
DPS as a verified certificate; the device's file is the full chain (leaf, intermediate, root) as
the SDK sends whatever X509(cert_file=...) holds. In order:

1. a device whose chain comes from an unrelated root with the same names (root, intermediate and
   leaf CN all equal to the real ones) registers: it must be refused promptly, and nothing is
   provisioned;
2. the real device registers: assigned with device id = CN = registration id, the hub device
   is `selfSigned` with the leaf's thumbprints (as Azure DPS creates a group's device); it
   connects with its certificate and one message is stored (GET /telemetry);
3. the rogue chain connects to the hub as that device: refused promptly.
"""

import uuid

from azure.iot.device import X509
from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.device.aio import ProvisioningDeviceClient

import harness
from harness import check, expect_equal

scenario = harness.Scenario("x509_group")


async def main():
    provisioning_host = harness.env("PROVISIONING_HOST")
    id_scope = harness.env("PROVISIONING_IDSCOPE")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    cert_file = harness.env("X509_CERT_FILE")
    key_file = harness.env("X509_KEY_FILE")
    rogue_cert_file = harness.env("ROGUE_X509_CERT_FILE")
    rogue_key_file = harness.env("ROGUE_X509_KEY_FILE")
    expected_hub = harness.env("EXPECTED_ASSIGNED_HUB")
    expected_device_id = harness.env("EXPECTED_DEVICE_ID")
    expected_group = harness.env("EXPECTED_ENROLLMENT_GROUP_ID")
    rogue = X509(cert_file=rogue_cert_file, key_file=rogue_key_file)
    x509 = X509(cert_file=cert_file, key_file=key_file)

    scenario.step("register with a chain from an unrelated root (same names)")
    rogue_client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=provisioning_host, registration_id=registration_id, id_scope=id_scope, x509=rogue
    )
    await harness.expect_refusal(scenario, "register() with the rogue chain", registration_id, rogue_client.register)

    scenario.step("check nothing was provisioned for the rogue chain")
    await harness.expect_not_provisioned(registration_id, expected_device_id)

    scenario.step("register with the device's chain")
    provisioning_device_client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=provisioning_host, registration_id=registration_id, id_scope=id_scope, x509=x509
    )
    result = await provisioning_device_client.register()
    print(result.registration_state)

    scenario.step("check registration result")
    expect_equal("registration status", result.status, "assigned")
    check(result.registration_state is not None, "registration result has no registration_state")
    expect_equal("assigned hub", result.registration_state.assigned_hub, expected_hub)
    expect_equal("device id", result.registration_state.device_id, expected_device_id)
    expect_equal("substatus", result.registration_state.sub_status, "initialAssignment")

    scenario.step("check emulator registration record (GET /registrations)")
    record = await harness.registration_record(registration_id)
    expect_equal("record status", record.get("status"), "assigned")
    expect_equal("record deviceId", record.get("deviceId"), expected_device_id)
    expect_equal("record assignedHub", record.get("assignedHub"), expected_hub)
    scenario.info("record x509 = {!r} (expected enrollment group {!r})".format(record.get("x509"), expected_group))

    scenario.step("check the hub device (GET /devices)")
    status, device = await harness.device_record(expected_device_id)
    check(status == 200, "GET /devices/{} returned {}: {}".format(expected_device_id, status, device))
    auth = (device or {}).get("authentication") or {}
    expect_equal("device authentication.type", auth.get("type"), "selfSigned")
    # Azure names the device by the leaf it presented: each registered thumbprint is one of its.
    sha1, sha256 = harness.leaf_thumbprints(cert_file)
    registered = auth.get("x509Thumbprint") or {}
    primary = (registered.get("primaryThumbprint") or "").upper()
    secondary = (registered.get("secondaryThumbprint") or "").upper()
    check(
        primary in (sha1, sha256) and secondary in ("", sha1, sha256),
        "device authentication.x509Thumbprint is {!r}, not the leaf's SHA-1 {} / SHA-256 {}".format(
            registered, sha1, sha256
        ),
    )

    scenario.step("connect to hub with the device's chain")
    device_client = IoTHubDeviceClient.create_from_x509_certificate(
        x509=x509, hostname=result.registration_state.assigned_hub, device_id=result.registration_state.device_id
    )
    await device_client.connect()

    scenario.step("send one message")
    mid = str(uuid.uuid4())
    msg = Message("x509 group device telemetry")
    msg.message_id = mid
    msg.custom_properties["scenario"] = "x509_group"
    await device_client.send_message(msg)
    await device_client.disconnect()

    scenario.step("observe telemetry in the emulator (GET /telemetry)")
    found = await harness.wait_for_telemetry(expected_device_id, {mid})
    check(mid in found, "message {} not stored by the hub".format(mid))
    harness.check_stored_message(found[mid], expected_device_id, "x509 group device telemetry", {"scenario": "x509_group"})

    scenario.step("connect to hub with the rogue chain")
    rogue_device = IoTHubDeviceClient.create_from_x509_certificate(
        x509=rogue, hostname=result.registration_state.assigned_hub, device_id=expected_device_id
    )
    await harness.expect_refusal(scenario, "connect() with the rogue chain", expected_device_id, rogue_device.connect)
    await rogue_device.shutdown()


if __name__ == "__main__":
    scenario.run(main)
