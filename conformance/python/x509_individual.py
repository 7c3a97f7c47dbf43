"""Scenario (f) x509_individual, Python: an individual enrollment with a self-signed device certificate.

Follows the SDK sample provision_x509.py: X509(cert_file, key_file),
ProvisioningDeviceClient.create_from_x509_certificate(...), register(), then
IoTHubDeviceClient.create_from_x509_certificate(x509=..., hostname=assigned hub, device_id=...)
with the same certificate. Asserts: assigned with the enrollment's device id, the hub device the
emulator created authenticates as `selfSigned` with the certificate's thumbprint, and the 3
messages sent over the certificate-authenticated connection are stored (GET /telemetry).
The certificate is made at run time by `iotemu certs self-signed` (conformance/x509.json).
"""

import uuid

from azure.iot.device import X509
from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.device.aio import ProvisioningDeviceClient

import harness
from harness import check, expect_equal

scenario = harness.Scenario("x509_individual")
MESSAGES = 3


async def main():
    provisioning_host = harness.env("PROVISIONING_HOST")
    id_scope = harness.env("PROVISIONING_IDSCOPE")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    cert_file = harness.env("X509_CERT_FILE")
    key_file = harness.env("X509_KEY_FILE")
    expected_hub = harness.env("EXPECTED_ASSIGNED_HUB")
    expected_device_id = harness.env("EXPECTED_DEVICE_ID")
    sha1, sha256 = harness.leaf_thumbprints(cert_file)
    scenario.info("device certificate {} (SHA-1 thumbprint {})".format(cert_file, sha1))

    scenario.step("register with the device certificate")
    x509 = X509(cert_file=cert_file, key_file=key_file)
    provisioning_device_client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=provisioning_host,
        registration_id=registration_id,
        id_scope=id_scope,
        x509=x509,
    )
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

    scenario.step("check emulator registration record (GET /registrations)")
    record = await harness.registration_record(registration_id)
    expect_equal("record status", record.get("status"), "assigned")
    expect_equal("record deviceId", record.get("deviceId"), expected_device_id)
    expect_equal("record assignedHub", record.get("assignedHub"), expected_hub)

    scenario.step("check the hub device (GET /devices)")
    status, device = await harness.device_record(expected_device_id)
    check(status == 200, "GET /devices/{} returned {}: {}".format(expected_device_id, status, device))
    auth = (device or {}).get("authentication") or {}
    expect_equal("device authentication.type", auth.get("type"), "selfSigned")
    primary = ((auth.get("x509Thumbprint") or {}).get("primaryThumbprint") or "").upper()
    check(
        primary in (sha1, sha256),
        "device authentication.x509Thumbprint.primaryThumbprint is {!r}, not the certificate's "
        "SHA-1 {} or SHA-256 {}".format(primary or None, sha1, sha256),
    )

    scenario.step("connect to hub with the device certificate")
    device_client = IoTHubDeviceClient.create_from_x509_certificate(
        x509=x509,
        hostname=state.assigned_hub,
        device_id=state.device_id,
    )
    await device_client.connect()

    scenario.step("send {} messages".format(MESSAGES))
    sent = {}
    for i in range(1, MESSAGES + 1):
        msg = Message("x509 telemetry " + str(i))
        msg.message_id = str(uuid.uuid4())
        msg.custom_properties["scenario"] = "x509_individual"
        await device_client.send_message(msg)
        sent[msg.message_id] = i

    scenario.step("disconnect from hub")
    await device_client.disconnect()

    scenario.step("observe telemetry in the emulator (GET /telemetry)")
    found = await harness.wait_for_telemetry(expected_device_id, set(sent))
    missing = [mid for mid in sent if mid not in found]
    check(not missing, "{} of {} sent messages not stored by the hub: {}".format(
        len(missing), MESSAGES, ", ".join(missing)))
    for mid, stored in found.items():
        harness.check_stored_message(
            stored, expected_device_id, "x509 telemetry " + str(sent[mid]), {"scenario": "x509_individual"}
        )
    scenario.info("all {} messages stored by the emulator".format(len(found)))


if __name__ == "__main__":
    scenario.run(main)
