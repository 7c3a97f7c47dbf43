"""Scenario c_dps_x509, C: DPS with X.509, then hub telemetry authenticated by the certificate.

Twice, with paho_iot_provisioning_sample and paho_iot_hub_telemetry_sample: first a self-signed
certificate of an individual enrollment, then a device certificate whose chain (leaf +
intermediate, as `iotemu certs device` writes it) leads to the verified root of the X.509
enrollment group (the device id is the registration id). Either way the hub device DPS creates
must be `selfSigned` with the presented leaf's thumbprint (as Azure DPS creates it,
docs/differences.md). The samples take one PEM file holding
the chain and the key (their AZ_IOT_DEVICE_X509_CERT_PEM_FILE_PATH, paho's keyStore); the
driver writes it from the generated files. Each telemetry sample's 5 messages must be stored.
"""

import samples
from samples import check, expect_equal, harness

scenario = samples.Scenario("c_dps_x509")


async def provision_and_send(registration_id, cert_file, key_file, expected_device_id):
    hub, device_id, key_store = await samples.provision_x509(
        scenario, registration_id, cert_file, key_file, expected_device_id)

    scenario.step("check the hub device ({})".format(device_id))
    status, device = await harness.device_record(device_id)
    check(status == 200, "GET /devices/{} returned {}: {}".format(device_id, status, device))
    auth = (device or {}).get("authentication") or {}
    expect_equal("device {} authentication.type".format(device_id), auth.get("type"), "selfSigned")
    sha1, sha256 = harness.leaf_thumbprints(cert_file)
    primary = ((auth.get("x509Thumbprint") or {}).get("primaryThumbprint") or "").upper()
    check(primary in (sha1, sha256), "device primaryThumbprint {!r} is not the leaf certificate's".format(primary))

    scenario.step("paho_iot_hub_telemetry_sample ({})".format(device_id))
    sample = samples.Sample(scenario, "paho_iot_hub_telemetry_sample", samples.hub_x509_env(hub, device_id, key_store))
    await sample.wait_exit()
    scenario.step("check the 5 messages are stored ({})".format(device_id))
    samples.expect_sample_telemetry(device_id)


async def main():
    await provision_and_send(harness.env("PROVISIONING_REGISTRATION_ID"), harness.env("X509_CERT_FILE"),
                             harness.env("X509_KEY_FILE"), harness.env("EXPECTED_DEVICE_ID"))
    group_registration_id = harness.env("GROUP_REGISTRATION_ID")
    await provision_and_send(group_registration_id, harness.env("GROUP_CERT_FILE"), harness.env("GROUP_KEY_FILE"),
                             group_registration_id)


if __name__ == "__main__":
    scenario.run(main)
