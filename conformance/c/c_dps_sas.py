"""Scenario c_dps_sas, C: DPS with a symmetric key, then hub telemetry with a SAS token.

First paho_iot_provisioning_sas_sample is given a wrong key: it must exit non-zero promptly (its CONNECT refused,
the sample does not retry) and nothing is provisioned. Then, with the right key, the sample
dials the global endpoint it hard-codes
(global.azure-devices-provisioning.net:8883, mapped to the emulator by the suite), signs its
SAS token with the enrollment key and polls until assigned; its printed hub and device id, the
registration record and the hub device (symmetric-key authentication) are checked. Then
paho_iot_hub_sas_telemetry_sample connects to that hub with a SAS token from the same key (an
individual enrollment's device key is the enrollment key) and sends its 5 messages, which must
all be stored in order (GET /telemetry). Last, the telemetry sample with a wrong key exits
non-zero promptly and stores nothing more.
"""

import samples
from samples import check, expect_equal, harness

scenario = samples.Scenario("c_dps_sas")
REFUSAL_BOUND = 20.0  # seconds for a sample with a wrong key to give up
WRONG_KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="  # valid base64, not the enrollment's key


async def expect_refused(name, env):
    sample = samples.Sample(scenario, name, env)
    code = await sample.wait_code(timeout=REFUSAL_BOUND)
    check(code != 0, "{} exited with code 0 with a wrong key".format(name))
    check("Failed to connect" in sample.text(), "{} did not print 'Failed to connect' (exit code {}): {}".format(
        name, code, " | ".join(l.strip() for l in sample.lines[-4:] if l.strip())))
    scenario.info("{} refused: exit code {}".format(name, code))


async def main():
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    key = harness.env("PROVISIONING_SYMMETRIC_KEY")
    expected_device_id = harness.env("EXPECTED_DEVICE_ID")

    dps_env = {
        "AZ_IOT_PROVISIONING_ID_SCOPE": harness.env("PROVISIONING_IDSCOPE"),
        "AZ_IOT_PROVISIONING_SAS_REGISTRATION_ID": registration_id,
    }

    scenario.step("paho_iot_provisioning_sas_sample with a wrong key: refused promptly")
    await expect_refused("paho_iot_provisioning_sas_sample", dict(dps_env, AZ_IOT_PROVISIONING_SAS_KEY=WRONG_KEY))
    await harness.expect_not_provisioned(registration_id, expected_device_id)

    scenario.step("paho_iot_provisioning_sas_sample")
    sample = samples.Sample(scenario, "paho_iot_provisioning_sas_sample", dict(dps_env, AZ_IOT_PROVISIONING_SAS_KEY=key))
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

    scenario.step("paho_iot_hub_sas_telemetry_sample with a wrong key: refused promptly")
    await expect_refused("paho_iot_hub_sas_telemetry_sample", {
        "AZ_IOT_HUB_HOSTNAME": hub, "AZ_IOT_HUB_SAS_DEVICE_ID": device_id, "AZ_IOT_HUB_SAS_KEY": WRONG_KEY})
    samples.expect_sample_telemetry(device_id)


if __name__ == "__main__":
    scenario.run(main)
