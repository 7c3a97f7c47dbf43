"""Scenario certgen_group, Python: the X.509 enrollment-group quickstart's certificate path as written.

Source documents: "Quickstart: Enroll X.509 devices to the Device Provisioning Service using
Python" (quick-enroll-device-x509-python.md, seed 001) and the C SDK's "Managing test CA
certificates for samples and tutorials" (tools/CACertificates/CACertificateOverview.md). Nothing
comes from a fixture; every certificate is made by the C SDK's own `certGen.sh` (vendored
unmodified at a pinned commit, conformance/vendor/azure-iot-sdk-c-certgen, RSA 4096 keys, its
default) run with Debian's `openssl`:

1. `certGen.sh create_root_and_intermediate` in a scratch copy of the vendored directory;
2. the root (`certs/azure-iot-test-only.root.ca.cert.pem`) is uploaded to DPS over the
   management API's certificate routes on the emulator's HTTPS endpoint
   (PUT …/provisioningServices/{name}/certificates/{certificateName}, signed with the DPS
   service policy's SAS), and is not verified yet;
3. a proof that is not one (the intermediate, CN ≠ code) is refused with 400053 and changes nothing;
4. POST …/generateVerificationCode (If-Match: the etag) gives the code;
   `certGen.sh create_verification_certificate <code>` makes the proof; POST …/verify
   (If-Match, {"certificate": PEM}) answers isVerified = true;
5. the enrollment group is created with `azure-iothub-provisioningserviceclient` exactly as the
   quickstart's EnrollmentGroup.py does, SIGNING_CERT = the root's PEM;
6. `certGen.sh create_device_certificate <registration id>` makes a leaf signed by the root;
   the device registers with azure-iot-device (`X509(cert_file=certs/new-device.cert.pem,
   key_file=private/new-device.key.pem)`): assigned, device id = CN;
7. the device connects to its hub with the same certificate and sends one message, which the
   emulator stores.

Between 4 and 5, when the suite started the emulator itself, `iotemu certs verify --emulator`
verifies certGen.sh's intermediate with its RSA key (decrypted to PKCS#8 with `openssl pkcs8`):
the README's claim that a certGen.sh CA can sign the proof.
"""

import asyncio
import base64
import hashlib
import hmac
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import uuid

import requests
from azure.iot.device import Message, X509
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient
from provisioningserviceclient import ProvisioningServiceClient
from provisioningserviceclient.models import AttestationMechanism, EnrollmentGroup

import harness
from harness import check, expect_equal

# RSA 4096 key generation for four keys, on a busy CI runner.
scenario = harness.Scenario("certgen_group", timeout=80.0)

CERTGEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vendor", "azure-iot-sdk-c-certgen")
API_VERSION = "2022-02-05"
# An emulator has no subscription or resource group: any value is accepted.
ARM_PREFIX = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/conformance"

# The quickstart's module-level settings; set from the environment at the start of main().
CONNECTION_STRING = None
SIGNING_CERT = None
GROUP_ID = None


def create_enrollment_group():
    """The quickstart's EnrollmentGroup.py main(), unchanged but for returning the result."""
    print("Initiating enrollment group creation...")

    psc = ProvisioningServiceClient.create_from_connection_string(CONNECTION_STRING)
    att = AttestationMechanism.create_with_x509_signing_certs(SIGNING_CERT)
    eg = EnrollmentGroup.create(GROUP_ID, att)

    eg = psc.create_or_update(eg)

    print("Enrollment group created.")
    return eg


def certgen(workdir, *args):
    """Run the vendored certGen.sh in `workdir` (it writes next to itself) and return its output."""
    proc = subprocess.run(["bash", "certGen.sh", *args], cwd=workdir, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    output = proc.stdout.decode("utf-8", "replace")
    check(proc.returncode == 0, "certGen.sh {} exited {}: {}".format(" ".join(args), proc.returncode, output[-1500:]))
    return output


def policy_token(connection_string, seconds=3600):
    """A shared-access-policy SAS token for the connection string's host, as the service SDKs make it."""
    fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    host, policy, key = fields["HostName"], fields["SharedAccessKeyName"], fields["SharedAccessKey"]
    expiry = str(int(time.time()) + seconds)
    resource = urllib.parse.quote(host, safe="")
    signature = base64.b64encode(
        hmac.new(base64.b64decode(key), "{}\n{}".format(resource, expiry).encode("utf-8"), hashlib.sha256).digest()
    ).decode("ascii")
    return host, "SharedAccessSignature " + urllib.parse.urlencode(
        {"sr": resource, "sig": signature, "se": expiry, "skn": policy})


class CertificateApi:
    """The DPS certificate routes in the management API's shape, on the emulator's HTTPS endpoint."""

    def __init__(self, connection_string):
        self.host, self.token = policy_token(connection_string)
        # The instance name is the first label of the DPS host name.
        self.base = "https://{}{}/providers/Microsoft.Devices/provisioningServices/{}/certificates".format(
            self.host, ARM_PREFIX, self.host.split(".")[0])

    def call(self, method, path="", body=None, etag=None):
        headers = {"Authorization": self.token}
        if etag:
            headers["If-Match"] = etag
        # REQUESTS_CA_BUNDLE (set by the suite) makes requests trust the emulator's CA.
        response = requests.request(method, self.base + path, params={"api-version": API_VERSION},
                                    json=body, headers=headers, timeout=15)
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        return response.status_code, payload


async def blocking(fn, *args, **kwargs):
    """Run a synchronous call (requests, the service SDK, certGen.sh) in a worker thread."""
    return await harness.in_thread(fn, *args, **kwargs)


def read(path):
    with open(path, encoding="ascii") as f:
        return f.read()


async def main():
    global CONNECTION_STRING, SIGNING_CERT, GROUP_ID
    CONNECTION_STRING = harness.env("PROVISIONING_SERVICE_CONNECTION_STRING")
    GROUP_ID = harness.env("CERTGEN_ENROLLMENT_GROUP_ID")
    certificate_name = harness.env("CERTGEN_CERTIFICATE_NAME")
    provisioning_host = harness.env("PROVISIONING_HOST")
    id_scope = harness.env("PROVISIONING_IDSCOPE")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    expected_hub = harness.env("EXPECTED_ASSIGNED_HUB")
    expected_device_id = harness.env("EXPECTED_DEVICE_ID")

    openssl = shutil.which("openssl")
    check(openssl is not None, "openssl is not installed (Debian: apt-get install openssl; conformance/run installs it in CI)")
    version = subprocess.run([openssl, "version"], stdout=subprocess.PIPE, check=False).stdout.decode().strip()
    scenario.info("openssl: {} ({})".format(openssl, version))

    workdir = tempfile.mkdtemp(prefix="certgen-")
    try:
        for name in ("certGen.sh", "openssl_root_ca.cnf", "openssl_device_intermediate_ca.cnf"):
            shutil.copy(os.path.join(CERTGEN_DIR, name), workdir)
        root_pem_path = os.path.join(workdir, "certs", "azure-iot-test-only.root.ca.cert.pem")
        intermediate_pem_path = os.path.join(workdir, "certs", "azure-iot-test-only.intermediate.cert.pem")

        scenario.step("certGen.sh create_root_and_intermediate")
        await blocking(certgen, workdir, "create_root_and_intermediate")
        root_pem = read(root_pem_path)
        root_sha1, _ = harness.leaf_thumbprints(root_pem_path)

        api = CertificateApi(CONNECTION_STRING)
        scenario.step("upload the root CA (PUT …/certificates/{})".format(certificate_name))
        status, body = await blocking(api.call, "PUT", "/" + certificate_name,
                                      {"properties": {"certificate": root_pem}})
        check(status == 200, "PUT certificate returned {}: {}".format(status, body))
        properties = body.get("properties") or {}
        expect_equal("uploaded isVerified", properties.get("isVerified"), False)
        expect_equal("uploaded thumbprint", (properties.get("thumbprint") or "").upper(), root_sha1)
        expect_equal("uploaded subject", properties.get("subject"), "CN=Azure IoT Hub CA Cert Test Only")
        etag = body.get("etag")
        check(etag, "PUT certificate returned no etag: {}".format(body))

        scenario.step("generateVerificationCode")
        status, body = await blocking(api.call, "POST", "/{}/generateVerificationCode".format(certificate_name),
                                      etag=etag)
        check(status == 200, "generateVerificationCode returned {}: {}".format(status, body))
        code = (body.get("properties") or {}).get("verificationCode")
        check(code, "generateVerificationCode returned no verificationCode: {}".format(body))
        etag = body.get("etag")
        scenario.info("verification code {}".format(code))

        scenario.step("verify with a certificate that is not the proof (the intermediate): refused")
        status, body = await blocking(api.call, "POST", "/{}/verify".format(certificate_name),
                                      {"certificate": read(intermediate_pem_path)}, etag=etag)
        expect_equal("verify with the intermediate: HTTP status", status, 400)
        expect_equal("verify with the intermediate: error code", (body or {}).get("code"), "400053")
        status, body = await blocking(api.call, "GET", "/" + certificate_name)
        check(status == 200, "GET certificate returned {}: {}".format(status, body))
        expect_equal("isVerified after the refused proof", (body.get("properties") or {}).get("isVerified"), False)
        expect_equal("etag after the refused proof", body.get("etag"), etag)

        scenario.step("certGen.sh create_verification_certificate <code>; verify")
        await blocking(certgen, workdir, "create_verification_certificate", code)
        proof = read(os.path.join(workdir, "certs", "verification-code.cert.pem"))
        status, body = await blocking(api.call, "POST", "/{}/verify".format(certificate_name),
                                      {"certificate": proof}, etag=etag)
        check(status == 200, "verify returned {}: {}".format(status, body))
        expect_equal("verified isVerified", (body.get("properties") or {}).get("isVerified"), True)
        status, listed = await blocking(api.call, "GET")
        check(status == 200, "GET certificates returned {}: {}".format(status, listed))
        names = [(c.get("name"), (c.get("properties") or {}).get("isVerified")) for c in listed.get("value") or []]
        check((certificate_name, True) in names, "the certificate list does not show {} verified: {}".format(
            certificate_name, names))

        binary = os.environ.get("CONFORMANCE_IOTEMU_BIN")
        if binary:
            scenario.step("iotemu certs verify with certGen.sh's intermediate (its RSA key as unencrypted PKCS#8)")
            key = os.path.join(workdir, "intermediate.pkcs8.pem")
            await blocking(subprocess.run, [openssl, "pkcs8", "-topk8", "-nocrypt", "-passin", "pass:1234", "-in",
                                            os.path.join(workdir, "private", "azure-iot-test-only.intermediate.key.pem"),
                                            "-out", key], check=True, timeout=30)
            proc = await blocking(subprocess.run, [
                binary, "certs", "verify", "--emulator", harness.env("IOTEMU_CONTROL_URL"),
                "--name", "certgen-intermediate", "--ca", intermediate_pem_path, "--ca-key", key,
            ], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            output = proc.stdout.decode("utf-8", "replace")
            print(output)
            check(proc.returncode == 0 and "verified 'certgen-intermediate' in DPS" in output,
                  "iotemu certs verify exited {}: {}".format(proc.returncode, output))
        else:
            scenario.info("no emulator binary (external emulator): iotemu certs verify not run")

        scenario.step("create the enrollment group with the service SDK (the quickstart's EnrollmentGroup.py)")
        SIGNING_CERT = root_pem
        eg = await blocking(create_enrollment_group)
        expect_equal("created group id", eg.enrollment_group_id, GROUP_ID)
        expect_equal("created group provisioningStatus", eg.provisioning_status, "enabled")

        scenario.step("certGen.sh create_device_certificate {}".format(registration_id))
        await blocking(certgen, workdir, "create_device_certificate", registration_id)
        x509 = X509(cert_file=os.path.join(workdir, "certs", "new-device.cert.pem"),
                    key_file=os.path.join(workdir, "private", "new-device.key.pem"))

        scenario.step("register the device (leaf signed by the verified root)")
        provisioning_device_client = ProvisioningDeviceClient.create_from_x509_certificate(
            provisioning_host=provisioning_host, registration_id=registration_id, id_scope=id_scope, x509=x509
        )
        result = await provisioning_device_client.register()
        print(result.registration_state)
        expect_equal("registration status", result.status, "assigned")
        check(result.registration_state is not None, "registration result has no registration_state")
        expect_equal("assigned hub", result.registration_state.assigned_hub, expected_hub)
        expect_equal("device id", result.registration_state.device_id, expected_device_id)
        record = await harness.registration_record(registration_id)
        expect_equal("record status", record.get("status"), "assigned")

        scenario.step("connect to the hub with the certificate and send one message")
        device_client = IoTHubDeviceClient.create_from_x509_certificate(
            x509=x509, hostname=result.registration_state.assigned_hub, device_id=result.registration_state.device_id
        )
        await device_client.connect()
        mid = str(uuid.uuid4())
        msg = Message("certGen.sh device telemetry")
        msg.message_id = mid
        msg.custom_properties["scenario"] = "certgen_group"
        await device_client.send_message(msg)
        await device_client.shutdown()

        scenario.step("observe telemetry in the emulator (GET /telemetry)")
        found = await harness.wait_for_telemetry(expected_device_id, {mid})
        check(mid in found, "message {} not stored by the hub".format(mid))
        harness.check_stored_message(found[mid], expected_device_id, "certGen.sh device telemetry",
                                     {"scenario": "certgen_group"})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    scenario.run(main)
