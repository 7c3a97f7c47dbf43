"""Scenario c_dps_sas, C: DPS with a symmetric key, then hub telemetry with a SAS token.

paho_iot_provisioning_sas_sample dials the global endpoint it hard-codes
(global.azure-devices-provisioning.net:8883, mapped to the emulator by the suite), signs its
SAS token with the enrollment key and polls until assigned; its printed hub and device id, the
registration record and the hub device (symmetric-key authentication) are checked. Then
paho_iot_hub_sas_telemetry_sample connects to that hub with a SAS token from the same key (an
individual enrollment's device key is the enrollment key) and sends its 5 messages, which must
all be stored in order (GET /telemetry).
"""

import samples
from samples import check, expect_equal, harness

scenario = samples.Scenario("c_dps_sas")


async def main():
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    key = harness.env("PROVISIONING_SYMMETRIC_KEY")
    expected_device_id = harness.env("EXPECTED_DEVICE_ID")

    scenario.step("paho_iot_provisioning_sas_sample")
    sample = samples.Sample(scenario, "paho_iot_provisioning_sas_sample", {
        "AZ_IOT_PROVISIONING_ID_SCOPE": harness.env("PROVISIONING_IDSCOPE"),
        "AZ_IOT_PROVISIONING_SAS_REGISTRATION_ID": registration_id,
        "AZ_IOT_PROVISIONING_SAS_KEY": key,
    })
    out = await sample.wait_exit()
    check("MQTT endpoint created at \"ssl://global.azure-devices-provisioning.net:8883\"" in out,
          "the sample did not dial the global DPS endpoint")
    hub, device_id = samples.check_provisioned(scenario, out, registration_id, expected_device_id)

    scenario.step("check the hub device (GET /devices)")
    status, device = await harness.device_record(device_id)
    check(status == 200, "GET /devices/{} returned {}: {}".format(device_id, status, device))
    expect_equal("device authentication.type", ((device or {}).get("authentication") or {}).get("type"), "sas")

    scenario.step("paho_iot_hub_sas_telemetry_sample")
    sample = samples.Sample(scenario, "paho_iot_hub_sas_telemetry_sample", {
        "AZ_IOT_HUB_HOSTNAME": hub,
        "AZ_IOT_HUB_SAS_DEVICE_ID": device_id,
        "AZ_IOT_HUB_SAS_KEY": key,
    })
    await sample.wait_exit()

    scenario.step("check the 5 messages are stored (GET /telemetry)")
    samples.expect_sample_telemetry(device_id)


if __name__ == "__main__":
    scenario.run(main)
