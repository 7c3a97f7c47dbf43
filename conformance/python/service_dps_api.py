"""Scenario service_dps_api, Python: the DPS service API beyond the enrollment-group quickstart,
with `azure-iothub-provisioningserviceclient` 1.2.0 (ProvisioningServiceClient over HTTPS with the
emulator's well-known `provisioningserviceowner` connection string), called as the SDK's
samples call it (`create_or_update`, `get_*`, `run_bulk_operation(BulkEnrollmentOperation(...))`,
`create_*_query(...)` iterated page by page, `delete*`):

1. individual enrollment: `create_or_update(IndividualEnrollment.create(...))` with a
   symmetric-key attestation and an initial twin; `get_individual_enrollment` (same etag);
   `get_individual_enrollment_attestation_mechanism` returns the keys;
2. bulk operations: `create` of two more enrollments succeeds; a second `create` of one of them
   reports a per-item 409 error and changes nothing; `updateIfMatchETag` with the current etag
   succeeds and with the stale etag reports a per-item 412; `delete` removes both (get → 404);
3. `create_individual_enrollment_query(QuerySpecification("*"), page_size=2)`: several pages,
   none larger than asked, each enrollment once, the same set the emulator holds;
4. an enrollment group (symmetric key) made with `create_or_update`,
   `get_enrollment_group_attestation_mechanism` returns its key; a device registers into it with
   the derived key (azure-iot-device);
5. registration states: `create_registration_state_query(group_id, page_size=1)` raises
   TypeError inside the SDK before sending anything (a bug of 1.2.0: its Query passes paging
   arguments the generated `query_device_registration_states` does not take), so the generated
   client it wraps is called with the paging headers: the device is listed;
   `get_registration_state`; `delete_registration_state_by_param` with a stale etag is refused
   (412, the record stays); `delete(state)` (If-Match: its etag) removes the record
   (get → 404, the query is empty, the emulator has no record);
6. clean-up: `delete_individual_enrollment_by_param` with the etag, `delete(group)`.

The service client is synchronous (msrest + requests, trusting REQUESTS_CA_BUNDLE = the emulator
CA); its calls run in a worker thread so that the scenario deadline still applies.
"""

import asyncio

from azure.iot.device.aio import ProvisioningDeviceClient
from provisioningserviceclient import (
    BulkEnrollmentOperation,
    ProvisioningServiceClient,
    ProvisioningServiceError,
    QuerySpecification,
)
from provisioningserviceclient.models import (
    AttestationMechanism,
    EnrollmentGroup,
    IndividualEnrollment,
    InitialTwin,
    SymmetricKeyAttestation,
)

import harness
from harness import check, expect_equal

scenario = harness.Scenario("service_dps_api")

ENROLLMENT_PAGE_SIZE = 2


async def blocking(fn, *args):
    """Run a synchronous service-SDK call in a worker thread (the scenario deadline still applies)."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def status_of(error):
    """HTTP status of a ProvisioningServiceError (its cause is msrest's exception with .response)."""
    response = getattr(getattr(error, "cause", None), "response", None)
    return getattr(response, "status_code", None)


async def expect_status(what, status, fn, *args):
    try:
        result = await blocking(fn, *args)
    except ProvisioningServiceError as e:
        scenario.info("{}: {}".format(what, harness.describe_error(e)))
        expect_equal("{}: HTTP status".format(what), status_of(e), status)
        return
    raise harness.ScenarioFailure("{}: succeeded ({!r}), expected HTTP {}".format(
        what, result, status))


def symmetric_key_attestation(primary, secondary):
    return AttestationMechanism(
        type="symmetricKey",
        symmetric_key=SymmetricKeyAttestation(primary_key=primary, secondary_key=secondary),
    )


def all_pages(query):
    return [list(page) for page in query]


def registration_state_pages(psc, group_id, page_size):
    """Every page of a group's registration states. The SDK's create_registration_state_query
    cannot run in 1.2.0 (its Query passes paging arguments that the generated
    query_device_registration_states does not take: TypeError before any request), so the
    generated client it wraps is called directly, with the paging headers as custom headers."""
    pages, continuation = [], None
    while True:
        headers = {"x-ms-max-item-count": str(page_size)}
        if continuation:
            headers["x-ms-continuation"] = continuation
        raw = psc._runtime_client.query_device_registration_states(group_id, custom_headers=headers, raw=True)
        if raw.output:
            pages.append(list(raw.output))
        continuation = raw.response.headers.get("x-ms-continuation")
        if not continuation:
            return pages
        check(len(pages) < 100, "the registration state query does not end after 100 pages")


def check_pages(what, pages, page_size):
    check(len(pages) >= 2, "{}: {} page(s) with page_size={} (no paging)".format(what, len(pages), page_size))
    for i, page in enumerate(pages):
        check(0 < len(page) <= page_size, "{}: page {} has {} items (page_size={})".format(
            what, i + 1, len(page), page_size))


async def listed_ids(path, key):
    status, listed = await harness.control_get_async(path)
    check(status == 200 and isinstance(listed, list), "GET {} returned {}: {}".format(path, status, listed))
    return [item.get(key) for item in listed]


def expect_listing(what, seen, before, after):
    """The query saw every item the emulator held both before and after it, and nothing it held
    at neither time (the other SDK lane runs at the same time and changes the collections)."""
    stable, possible = set(before) & set(after), set(before) | set(after)
    check(stable <= set(seen), "{}: missing {}".format(what, sorted(stable - set(seen))))
    check(set(seen) <= possible, "{}: unknown to the emulator: {}".format(what, sorted(set(seen) - possible)))


def bulk_errors(result):
    return [(e.registration_id, e.error_code, e.error_status) for e in (result.errors or [])]


async def main():
    psc = ProvisioningServiceClient.create_from_connection_string(
        harness.env("PROVISIONING_SERVICE_CONNECTION_STRING"))
    prefix = harness.env("SERVICE_REGISTRATION_ID_PREFIX")
    group_id = harness.env("SERVICE_ENROLLMENT_GROUP_ID")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    expected_hub = harness.env("EXPECTED_ASSIGNED_HUB")
    single_id, bulk_ids = prefix + "-single", [prefix + "-bulk-1", prefix + "-bulk-2"]

    scenario.step("create_or_update an individual enrollment (symmetric key, initial twin)")
    primary, secondary = harness.new_key(), harness.new_key()
    twin = InitialTwin.create(tags={"conformance": "service_dps_api"}, desired_properties={"interval": 30})
    enrollment = IndividualEnrollment.create(single_id, symmetric_key_attestation(primary, secondary),
                                             device_id=single_id + "-device", initial_twin=twin)
    created = await blocking(psc.create_or_update, enrollment)
    expect_equal("created registration_id", created.registration_id, single_id)
    expect_equal("created device_id", created.device_id, single_id + "-device")
    expect_equal("created provisioning_status", created.provisioning_status, "enabled")
    check(created.etag, "create_or_update returned no etag")

    scenario.step("get_individual_enrollment and its attestation mechanism")
    got = await blocking(psc.get_individual_enrollment, single_id)
    expect_equal("get etag (unchanged since create)", got.etag, created.etag)
    expect_equal("get initial twin tag", got.initial_twin.tags.get("conformance")
                 if got.initial_twin and got.initial_twin.tags else None, "service_dps_api")
    attestation = await blocking(psc.get_individual_enrollment_attestation_mechanism, single_id)
    expect_equal("attestation type", attestation.type, "symmetricKey")
    expect_equal("attestation primary key", attestation.symmetric_key.primary_key, primary)
    expect_equal("attestation secondary key", attestation.symmetric_key.secondary_key, secondary)

    scenario.step("run_bulk_operation create (two enrollments)")
    bulk = [IndividualEnrollment.create(rid, symmetric_key_attestation(harness.new_key(), harness.new_key()))
            for rid in bulk_ids]
    result = await blocking(psc.run_bulk_operation, BulkEnrollmentOperation("create", bulk))
    check(result.is_successful and not result.errors, "bulk create failed: {}".format(bulk_errors(result)))
    for rid in bulk_ids:
        await blocking(psc.get_individual_enrollment, rid)

    scenario.step("run_bulk_operation create of an existing enrollment: per-item 409, nothing changed")
    before = await blocking(psc.get_individual_enrollment, bulk_ids[0])
    again = [IndividualEnrollment.create(bulk_ids[0], symmetric_key_attestation(harness.new_key(), harness.new_key()))]
    result = await blocking(psc.run_bulk_operation, BulkEnrollmentOperation("create", again))
    scenario.info("bulk create again: successful {}, errors {}".format(result.is_successful, bulk_errors(result)))
    check(not result.is_successful, "bulk create of an existing enrollment succeeded")
    errors = bulk_errors(result)
    check(len(errors) == 1 and errors[0][0] == bulk_ids[0] and 409000 <= errors[0][1] < 410000,
          "bulk create of an existing enrollment: expected one 409xxx error for {}, got {}".format(bulk_ids[0], errors))
    after = await blocking(psc.get_individual_enrollment, bulk_ids[0])
    expect_equal("etag after the refused bulk create", after.etag, before.etag)

    scenario.step("run_bulk_operation updateIfMatchETag: current etag accepted, stale etag 412")
    before.initial_twin = InitialTwin.create(tags={"bulk": "updated"})
    result = await blocking(psc.run_bulk_operation, BulkEnrollmentOperation("updateIfMatchETag", [before]))
    check(result.is_successful and not result.errors, "bulk updateIfMatchETag failed: {}".format(bulk_errors(result)))
    updated = await blocking(psc.get_individual_enrollment, bulk_ids[0])
    check(updated.etag != before.etag, "bulk update did not change the etag")
    expect_equal("bulk-updated tag", (updated.initial_twin.tags or {}).get("bulk") if updated.initial_twin else None,
                 "updated")
    result = await blocking(psc.run_bulk_operation, BulkEnrollmentOperation("updateIfMatchETag", [before]))
    errors = bulk_errors(result)
    scenario.info("bulk update with the stale etag: successful {}, errors {}".format(result.is_successful, errors))
    check(not result.is_successful and len(errors) == 1 and 412000 <= errors[0][1] < 413000,
          "bulk update with the stale etag: expected one 412xxx error, got {}".format(errors))
    unchanged = await blocking(psc.get_individual_enrollment, bulk_ids[0])
    expect_equal("etag after the refused bulk update", unchanged.etag, updated.etag)

    scenario.step("create_individual_enrollment_query, {} per page".format(ENROLLMENT_PAGE_SIZE))
    query = psc.create_individual_enrollment_query(QuerySpecification("*"), page_size=ENROLLMENT_PAGE_SIZE)
    before = await listed_ids("/enrollments", "registrationId")
    pages = await blocking(all_pages, query)
    after = await listed_ids("/enrollments", "registrationId")
    seen = [e.registration_id for page in pages for e in page]
    scenario.info("query pages: {}".format([[e.registration_id for e in page] for page in pages]))
    check_pages("individual enrollment query", pages, ENROLLMENT_PAGE_SIZE)
    check(len(seen) == len(set(seen)), "the query returned an enrollment twice: {}".format(seen))
    expect_listing("enrollments returned by the paged query", seen, before, after)
    for rid in [single_id] + bulk_ids:
        check(rid in seen, "the query did not return {}".format(rid))

    scenario.step("run_bulk_operation delete (the two bulk enrollments)")
    result = await blocking(psc.run_bulk_operation, BulkEnrollmentOperation("delete", [
        IndividualEnrollment.create(rid, symmetric_key_attestation(None, None)) for rid in bulk_ids]))
    check(result.is_successful and not result.errors, "bulk delete failed: {}".format(bulk_errors(result)))
    for rid in bulk_ids:
        await expect_status("get_individual_enrollment({}) after bulk delete".format(rid), 404,
                            psc.get_individual_enrollment, rid)

    scenario.step("create_or_update a symmetric-key enrollment group; its attestation mechanism")
    group_key = harness.new_key()
    group = EnrollmentGroup.create(group_id, symmetric_key_attestation(group_key, harness.new_key()))
    group = await blocking(psc.create_or_update, group)
    expect_equal("created group id", group.enrollment_group_id, group_id)
    group_attestation = await blocking(psc.get_enrollment_group_attestation_mechanism, group_id)
    expect_equal("group attestation type", group_attestation.type, "symmetricKey")
    expect_equal("group attestation primary key", group_attestation.symmetric_key.primary_key, group_key)

    scenario.step("a device registers into the group with the derived key")
    device_client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=harness.env("PROVISIONING_HOST"), registration_id=registration_id,
        id_scope=harness.env("PROVISIONING_IDSCOPE"),
        symmetric_key=harness.derive_device_key(group_key, registration_id))
    registration = await device_client.register()
    expect_equal("registration status", registration.status, "assigned")
    expect_equal("assigned hub", registration.registration_state.assigned_hub, expected_hub)

    scenario.step("create_registration_state_query (broken in the SDK) and the query it wraps, 1 per page")
    try:
        await blocking(all_pages, psc.create_registration_state_query(group_id, page_size=1))
    except TypeError as e:
        scenario.info("create_registration_state_query: {} (the SDK's own bug, no request sent)".format(e))
    else:
        scenario.info("create_registration_state_query worked (the SDK's bug is fixed)")
    pages = await blocking(registration_state_pages, psc, group_id, 1)
    seen = [s.registration_id for page in pages for s in page]
    scenario.info("registration state pages: {}".format([[s.registration_id for s in page] for page in pages]))
    expect_equal("registration states of the group", seen, [registration_id])
    expect_equal("queried registration status", pages[0][0].status, "assigned")

    scenario.step("get_registration_state, then delete it with its etag")
    state = await blocking(psc.get_registration_state, registration_id)
    expect_equal("registration state status", state.status, "assigned")
    check(state.etag, "the registration state has no etag: {!r}".format(state.serialize()))
    await expect_status("delete_registration_state_by_param with a stale etag", 412,
                        psc.delete_registration_state_by_param, registration_id, '"stale"')
    kept = await blocking(psc.get_registration_state, registration_id)
    expect_equal("registration state etag after the refused delete", kept.etag, state.etag)
    await blocking(psc.delete, state)
    await expect_status("get_registration_state after delete", 404, psc.get_registration_state, registration_id)
    pages = await blocking(registration_state_pages, psc, group_id, 1)
    expect_equal("registration states of the group after delete", [s for page in pages for s in page], [])
    status, body = await harness.control_get_async("/registrations/" + registration_id)
    expect_equal("GET /registrations/{} after delete: status".format(registration_id), status, 404)

    scenario.step("clean up: delete the enrollment (If-Match) and the group")
    await expect_status("delete_individual_enrollment_by_param with a stale etag", 412,
                        psc.delete_individual_enrollment_by_param, single_id, '"stale"')
    await blocking(psc.delete_individual_enrollment_by_param, single_id, got.etag)
    await expect_status("get_individual_enrollment after delete", 404, psc.get_individual_enrollment, single_id)
    await blocking(psc.delete, group)
    await expect_status("get_enrollment_group after delete", 404, psc.get_enrollment_group, group_id)


if __name__ == "__main__":
    scenario.run(main)
