"""Scenario (h) x509_wrong_cn, Python: a certificate whose CN is not the registration id is refused.

DPS requires the leaf certificate's subject CN to equal the registration id (protocol.md §4).
1. Individual enrollment: the device presents exactly the certificate of its enrollment, but that
   certificate's CN is another name: register() must be refused promptly, nothing provisioned.
2. Enrollment group: a leaf correctly signed by the group's intermediate CA, with CN X, registers
   under another registration id: refused promptly, nothing provisioned under either name.
"""

from azure.iot.device import X509
from azure.iot.device.aio import ProvisioningDeviceClient

import harness

scenario = harness.Scenario("x509_wrong_cn")


async def main():
    provisioning_host = harness.env("PROVISIONING_HOST")
    id_scope = harness.env("PROVISIONING_IDSCOPE")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    cert_file = harness.env("X509_CERT_FILE")
    key_file = harness.env("X509_KEY_FILE")
    enrolled_device_id = harness.env("EXPECTED_DEVICE_ID")
    group_registration_id = harness.env("GROUP_REGISTRATION_ID")
    group_cert_file = harness.env("GROUP_X509_CERT_FILE")
    group_key_file = harness.env("GROUP_X509_KEY_FILE")
    group_cert_cn = harness.env("GROUP_CERTIFICATE_CN")

    scenario.step("register an individual enrollment with its certificate whose CN differs")
    client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=provisioning_host,
        registration_id=registration_id,
        id_scope=id_scope,
        x509=X509(cert_file=cert_file, key_file=key_file),
    )
    await harness.expect_refusal(scenario, "register() as {}".format(registration_id), registration_id, client.register)

    scenario.step("check nothing was provisioned for the individual enrollment")
    await harness.expect_not_provisioned(registration_id, enrolled_device_id)

    scenario.step("register with a group-signed certificate whose CN differs")
    group_client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=provisioning_host,
        registration_id=group_registration_id,
        id_scope=id_scope,
        x509=X509(cert_file=group_cert_file, key_file=group_key_file),
    )
    await harness.expect_refusal(
        scenario, "register() as {}".format(group_registration_id), group_registration_id, group_client.register
    )

    scenario.step("check nothing was provisioned for the group device")
    await harness.expect_not_provisioned(group_registration_id, group_registration_id)
    await harness.expect_not_provisioned(group_cert_cn, group_cert_cn)


if __name__ == "__main__":
    scenario.run(main)
