"""Scenario (i) service_x509_group, Python: the X.509 enrollment-group quickstart with the DPS service SDK.

Source document: "Quickstart: Enroll X.509 devices to the Device Provisioning Service using
Python" (quick-enroll-device-x509-python.md). Its EnrollmentGroup.py is followed call for call with
the 2018 service client `azure-iothub-provisioningserviceclient` 1.2.0:

    psc = ProvisioningServiceClient.create_from_connection_string(CONNECTION_STRING)
    att = AttestationMechanism.create_with_x509_signing_certs(SIGNING_CERT)
    eg = EnrollmentGroup.create(GROUP_ID, att)
    eg = psc.create_or_update(eg)

CONNECTION_STRING is the emulator's well-known DPS service connection string (exactly three
`;`-separated fields, as this client insists) and SIGNING_CERT the PEM text of an intermediate CA
made by `iotemu certs` whose root is a verified DPS certificate (runtime fixture, x509.json). Then:

1. a device with a leaf signed by that intermediate registers with azure-iot-device
   (`X509(cert_file=<leaf + intermediate + root>)`): assigned, device id = CN, and the emulator's
   registration record agrees;
2. `get_registration_state` (GET /registrations/{id}) shows the assignment;
3. `get_enrollment_group` returns the group (x509 signing certificate, ETag, enabled);
4. `create_enrollment_group_query(QuerySpecification("*"), page_size=1)` pages through every
   enrollment group (x-ms-max-item-count / x-ms-continuation): more than one page, no page larger
   than asked, each group once, the new group among them, the groups the emulator holds (those
   held before and after the query, as the Node lane changes groups meanwhile);
5. `delete(eg)` (DELETE with If-Match = the group's ETag) removes it: `get_enrollment_group` now
   fails with 404, the emulator no longer lists the group, and the device can no longer register
   (refused promptly, like any device without an enrollment).

The service client is synchronous (msrest + requests, trusting REQUESTS_CA_BUNDLE = the emulator
CA); its calls run in a worker thread so that the scenario deadline still applies.
"""

import asyncio
import json

from azure.iot.device import X509
from azure.iot.device.aio import ProvisioningDeviceClient
from provisioningserviceclient import ProvisioningServiceClient, ProvisioningServiceError, QuerySpecification
from provisioningserviceclient.models import AttestationMechanism, EnrollmentGroup

import harness
from harness import check, expect_equal

scenario = harness.Scenario("service_x509_group")

# The quickstart's module-level settings; set from the environment at the start of main().
CONNECTION_STRING = None
SIGNING_CERT = None
GROUP_ID = None

PAGE_SIZE = 1


def create_enrollment_group():
    """The quickstart's EnrollmentGroup.py main(), unchanged but for returning the result."""
    print("Initiating enrollment group creation...")

    psc = ProvisioningServiceClient.create_from_connection_string(CONNECTION_STRING)
    att = AttestationMechanism.create_with_x509_signing_certs(SIGNING_CERT)
    eg = EnrollmentGroup.create(GROUP_ID, att)

    eg = psc.create_or_update(eg)

    print("Enrollment group created.")
    return psc, eg


async def blocking(fn, *args):
    """Run a synchronous service-SDK call in a worker thread (the scenario deadline still applies)."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def pem_body(pem):
    """The base64 body of the first PEM certificate (for comparing echoed certificates)."""
    text = pem.strip()
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    if begin in text:
        text = text[text.index(begin) + len(begin):text.index(end)]
    return "".join(text.split())


def status_of(error):
    """HTTP status of a ProvisioningServiceError (its cause is msrest's exception with .response)."""
    response = getattr(getattr(error, "cause", None), "response", None)
    return getattr(response, "status_code", None)


async def listed_group_ids():
    status, groups = await harness.control_get_async("/enrollmentGroups")
    check(status == 200 and isinstance(groups, list), "GET /enrollmentGroups returned {}: {}".format(status, groups))
    return [g.get("enrollmentGroupId") for g in groups]


def check_signing_certificate(group, what):
    att = group.attestation
    check(att is not None, "{}: no attestation".format(what))
    expect_equal("{}: attestation.type".format(what), att.type, "x509")
    x509 = att.x509
    check(x509 is not None and x509.signing_certificates is not None,
          "{}: no attestation.x509.signingCertificates: {!r}".format(what, x509 and x509.serialize()))
    primary = x509.signing_certificates.primary
    check(primary is not None, "{}: no signingCertificates.primary".format(what))
    sha1, sha256 = harness.leaf_thumbprints(harness.env("SIGNING_CERT_FILE"))
    info = primary.info
    if primary.certificate:
        expect_equal("{}: signingCertificates.primary.certificate".format(what),
                     pem_body(primary.certificate), pem_body(SIGNING_CERT))
    if info is not None:
        if info.sha1_thumbprint:
            expect_equal("{}: certificate info sha1Thumbprint".format(what), info.sha1_thumbprint.upper(), sha1)
        if info.sha256_thumbprint:
            expect_equal("{}: certificate info sha256Thumbprint".format(what), info.sha256_thumbprint.upper(), sha256)
    check(primary.certificate or (info is not None and (info.sha1_thumbprint or info.sha256_thumbprint)),
          "{}: signingCertificates.primary has neither the certificate nor its info: {!r}".format(
              what, primary.serialize()))
    scenario.info("{}: x509 signing certificate: certificate {}, info {}".format(
        what, "echoed" if primary.certificate else "not echoed", info.serialize() if info is not None else None))


async def main():
    global CONNECTION_STRING, SIGNING_CERT, GROUP_ID
    CONNECTION_STRING = harness.env("PROVISIONING_SERVICE_CONNECTION_STRING")
    GROUP_ID = harness.env("SERVICE_ENROLLMENT_GROUP_ID")
    with open(harness.env("SIGNING_CERT_FILE"), encoding="ascii") as f:
        SIGNING_CERT = f.read()
    provisioning_host = harness.env("PROVISIONING_HOST")
    id_scope = harness.env("PROVISIONING_IDSCOPE")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    expected_hub = harness.env("EXPECTED_ASSIGNED_HUB")
    expected_device_id = harness.env("EXPECTED_DEVICE_ID")
    x509 = X509(cert_file=harness.env("X509_CERT_FILE"), key_file=harness.env("X509_KEY_FILE"))

    scenario.step("create the enrollment group with the service SDK (the quickstart's EnrollmentGroup.py)")
    psc, eg = await blocking(create_enrollment_group)
    expect_equal("created group id", eg.enrollment_group_id, GROUP_ID)
    expect_equal("created group provisioningStatus", eg.provisioning_status, "enabled")
    check(eg.etag, "create_or_update returned no etag: {!r}".format(eg.serialize()))
    scenario.info("created: etag {!r}, createdDateTimeUtc {}".format(eg.etag, eg.created_date_time_utc))
    check_signing_certificate(eg, "create_or_update result")

    scenario.step("check the emulator holds the group (GET /enrollmentGroups)")
    status, groups = await harness.control_get_async("/enrollmentGroups")
    check(status == 200 and isinstance(groups, list), "GET /enrollmentGroups returned {}: {}".format(status, groups))
    stored = [g for g in groups if (g or {}).get("enrollmentGroupId") == GROUP_ID]
    check(len(stored) == 1, "GET /enrollmentGroups does not list {} once: {}".format(
        GROUP_ID, [(g or {}).get("enrollmentGroupId") for g in groups]))
    x509_att = (stored[0].get("attestation") or {}).get("x509") or {}
    primary = (x509_att.get("signingCertificates") or {}).get("primary") or {}
    sha1, _ = harness.leaf_thumbprints(harness.env("SIGNING_CERT_FILE"))
    stored_cert = primary.get("certificate")
    stored_sha1 = ((primary.get("info") or {}).get("sha1Thumbprint") or "").upper()
    check((stored_cert and pem_body(stored_cert) == pem_body(SIGNING_CERT)) or stored_sha1 == sha1,
          "the emulator's group does not hold SIGNING_CERT as signingCertificates.primary: {}".format(
              json.dumps(stored[0].get("attestation"))[:400]))

    scenario.step("register the device with its full chain (leaf signed by the group's intermediate)")
    provisioning_device_client = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=provisioning_host, registration_id=registration_id, id_scope=id_scope, x509=x509
    )
    result = await provisioning_device_client.register()
    print(result.registration_state)
    expect_equal("registration status", result.status, "assigned")
    check(result.registration_state is not None, "registration result has no registration_state")
    expect_equal("assigned hub", result.registration_state.assigned_hub, expected_hub)
    expect_equal("device id", result.registration_state.device_id, expected_device_id)

    scenario.step("check emulator registration record (GET /registrations)")
    record = await harness.registration_record(registration_id)
    expect_equal("record status", record.get("status"), "assigned")
    expect_equal("record deviceId", record.get("deviceId"), expected_device_id)
    expect_equal("record assignedHub", record.get("assignedHub"), expected_hub)

    scenario.step("get_registration_state")
    state = await blocking(psc.get_registration_state, registration_id)
    expect_equal("registration state registrationId", state.registration_id, registration_id)
    expect_equal("registration state status", state.status, "assigned")
    expect_equal("registration state deviceId", state.device_id, expected_device_id)
    expect_equal("registration state assignedHub", state.assigned_hub, expected_hub)

    scenario.step("get_enrollment_group")
    got = await blocking(psc.get_enrollment_group, GROUP_ID)
    expect_equal("get_enrollment_group id", got.enrollment_group_id, GROUP_ID)
    expect_equal("get_enrollment_group provisioningStatus", got.provisioning_status, "enabled")
    expect_equal("get_enrollment_group etag (nothing changed since create)", got.etag, eg.etag)
    check_signing_certificate(got, "get_enrollment_group")

    scenario.step("query every enrollment group, {} per page".format(PAGE_SIZE))
    before = await listed_group_ids()
    query = psc.create_enrollment_group_query(QuerySpecification("*"), page_size=PAGE_SIZE)
    pages = await blocking(lambda: [list(page) for page in query])
    after = await listed_group_ids()
    seen = [g.enrollment_group_id for page in pages for g in page]
    scenario.info("query pages: {}".format([[g.enrollment_group_id for g in page] for page in pages]))
    check(len(pages) >= 2, "the query returned {} page(s) for {} groups with page_size={} (no paging)".format(
        len(pages), len(after), PAGE_SIZE))
    for i, page in enumerate(pages):
        check(0 < len(page) <= PAGE_SIZE, "page {} has {} groups (page_size={})".format(i + 1, len(page), PAGE_SIZE))
    check(len(seen) == len(set(seen)), "the query returned a group twice: {}".format(seen))
    check(GROUP_ID in seen, "the query did not return {}: {}".format(GROUP_ID, seen))
    # The Node lane runs at the same time and adds and removes groups of its own: the query must
    # return every group held both before and after it, and none held at neither time.
    stable, possible = set(before) & set(after), set(before) | set(after)
    check(stable <= set(seen), "groups returned by the paged query miss {}".format(sorted(stable - set(seen))))
    check(set(seen) <= possible, "the paged query returned groups unknown to the emulator: {}".format(
        sorted(set(seen) - possible)))
    queried = next(g for page in pages for g in page if g.enrollment_group_id == GROUP_ID)
    expect_equal("queried group etag", queried.etag, eg.etag)

    scenario.step("delete the enrollment group (If-Match: its etag)")
    await blocking(psc.delete, got)
    try:
        again = await blocking(psc.get_enrollment_group, GROUP_ID)
    except ProvisioningServiceError as e:
        scenario.info("get_enrollment_group after delete: {}".format(harness.describe_error(e)))
        expect_equal("HTTP status of get_enrollment_group after delete", status_of(e), 404)
    else:
        raise harness.ScenarioFailure("get_enrollment_group still returns the deleted group: {!r}".format(
            again.serialize()))
    status, groups = await harness.control_get_async("/enrollmentGroups")
    check(status == 200 and isinstance(groups, list), "GET /enrollmentGroups returned {}: {}".format(status, groups))
    check(not any((g or {}).get("enrollmentGroupId") == GROUP_ID for g in groups),
          "GET /enrollmentGroups still lists the deleted group {}".format(GROUP_ID))

    scenario.step("register the device again (no enrollment group any more)")
    client_after_delete = ProvisioningDeviceClient.create_from_x509_certificate(
        provisioning_host=provisioning_host, registration_id=registration_id, id_scope=id_scope, x509=x509
    )
    await harness.expect_refusal(scenario, "register() after the group was deleted", registration_id,
                                 client_after_delete.register)


if __name__ == "__main__":
    scenario.run(main)
