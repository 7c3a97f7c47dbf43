"""Scenario dps_service_throttle, Python: what the DPS service SDK does with a throttled or
unavailable DPS service API, injected through the control port (POST /faults, `dps.service`
rules addressed by request path, docs/faults.md).

`azure-iothub-provisioningserviceclient` 1.2.0 sends through msrest 0.7.1, whose
ClientRetryPolicy (msrest/universal_http/requests.py) is a urllib3 2.x Retry with total=3 and a
status_forcelist of 408 and every status from 500 except 501 and 505; urllib3 also retries a
413, 429 or 503 that carries `Retry-After` (whatever the list says) and sleeps what the header
asks. So, asserted in order:

1. a rule refusing `/enrollments/{id}` with 503 + retryAfter 1, count 2:
   `create_or_update(IndividualEnrollment)` succeeds by itself (two retries), after at least the
   2 s the two `Retry-After`s asked for (urllib3's own back-off would retry after 0 s and 1.6 s);
   the rule hit twice; the enrollment is stored once (GET /enrollments on the control port);
2. a rule refusing the same path with 429 + retryAfter 2, count 1: `get_individual_enrollment`
   returns the enrollment after at least 2 s; the rule hit once;
3. a 429 rule that lasts: the request and msrest's 3 retries are refused (4 hits), then the
   SDK raises ProvisioningServiceError ("Service Error 429 - Too Many Requests") with DPS's
   error message from the JSON body (naming the rule); once the rule is removed the call is
   answered;
4. clean-up: `delete_individual_enrollment_by_param`.

The service client is synchronous; its calls run in a worker thread so the scenario deadline
still applies.
"""

import asyncio
import time

from provisioningserviceclient import ProvisioningServiceClient, ProvisioningServiceError
from provisioningserviceclient.models import (
    AttestationMechanism,
    IndividualEnrollment,
    SymmetricKeyAttestation,
)

import harness
from harness import check, expect_equal

scenario = harness.Scenario("dps_service_throttle")

# Each retry waits the header's seconds.
UNAVAILABLE_RETRY_AFTER = 1
THROTTLED_RETRY_AFTER = 2
# msrest's ClientRetryPolicy: urllib3 Retry(total=3).
MSREST_RETRIES = 3


async def blocking(fn, *args):
    """Run a synchronous service-SDK call in a worker thread (the scenario deadline still applies)."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def answered_after_waiting(what, seconds, fn, *args):
    """Runs the SDK call `fn(*args)`; it must succeed, no sooner than `seconds` (the
    `Retry-After`s it had to wait). Returns its result."""
    started = time.monotonic()
    result = await blocking(fn, *args)
    elapsed = time.monotonic() - started
    scenario.info("{} answered after {:.1f} s".format(what, elapsed))
    check(elapsed >= seconds - 0.1,
          "{} returned after {:.1f} s, sooner than the {} s of retry-after".format(what, elapsed, seconds))
    return result


async def expect_hits(fault_id, hits):
    status = await harness.fault_status(fault_id)
    expect_equal("hits of {}".format(fault_id), status.get("hits"), hits)


async def main():
    psc = ProvisioningServiceClient.create_from_connection_string(
        harness.env("PROVISIONING_SERVICE_CONNECTION_STRING"))
    registration_id = harness.env("SERVICE_REGISTRATION_ID")
    path = "/enrollments/" + registration_id
    attestation = AttestationMechanism(type="symmetricKey", symmetric_key=SymmetricKeyAttestation())

    async def unavailable_then_created(fault_id):
        scenario.step("create_or_update through two 503s with retry-after {}".format(UNAVAILABLE_RETRY_AFTER))
        created = await answered_after_waiting(
            "create_or_update", 2 * UNAVAILABLE_RETRY_AFTER,
            psc.create_or_update, IndividualEnrollment.create(registration_id, attestation))
        expect_equal("created registration id", created.registration_id, registration_id)
        await expect_hits(fault_id, 2)
        status, listed = await harness.control_get_async("/enrollments")
        check(status == 200 and isinstance(listed, list), "GET /enrollments returned {}: {}".format(status, listed))
        stored = [e for e in listed if isinstance(e, dict) and e.get("registrationId") == registration_id]
        expect_equal("enrollments stored with this id (GET /enrollments)", len(stored), 1)

    scenario.step("install a 503 rule on {} (POST /faults)".format(path))
    await harness.with_fault(
        scenario,
        {
            "operation": "dps.service",
            "path": path,
            "action": {"refuse": {"status": 503, "retryAfter": UNAVAILABLE_RETRY_AFTER}},
            "count": 2,
        },
        unavailable_then_created,
    )

    async def throttled_get(fault_id):
        scenario.step("get_individual_enrollment through a 429 with retry-after {}".format(THROTTLED_RETRY_AFTER))
        got = await answered_after_waiting(
            "get_individual_enrollment", THROTTLED_RETRY_AFTER,
            psc.get_individual_enrollment, registration_id)
        expect_equal("registration id", got.registration_id, registration_id)
        await expect_hits(fault_id, 1)

    scenario.step("install a 429 rule on {} (POST /faults)".format(path))
    await harness.with_fault(
        scenario,
        {
            "operation": "dps.service",
            "path": path,
            "action": {"refuse": {"status": 429, "retryAfter": THROTTLED_RETRY_AFTER}},
            "count": 1,
        },
        throttled_get,
    )

    async def throttled_until_removed(fault_id):
        scenario.step("get_individual_enrollment against a 429 that lasts: the retries run out")
        started = time.monotonic()
        try:
            got = await blocking(psc.get_individual_enrollment, registration_id)
        except ProvisioningServiceError as e:
            elapsed = time.monotonic() - started
            described = harness.describe_error(e)
            scenario.info("raised after {:.1f} s: {}".format(elapsed, described))
            # msrest hands the last 429 to the SDK, which reads DPS's JSON error from it.
            check("429" in described, "the error does not name the 429: {}".format(described))
            check(fault_id in described, "the error does not carry DPS's message naming the rule: {}".format(described))
        else:
            raise harness.ScenarioFailure("get_individual_enrollment succeeded ({!r}), expected the retries to run out".format(got))
        # The request and msrest's 3 retries.
        await expect_hits(fault_id, 1 + MSREST_RETRIES)
        expect_equal("DELETE /faults/{}".format(fault_id), await harness.remove_fault(fault_id), 204)
        scenario.step("once the rule is removed the same call is answered")
        got = await blocking(psc.get_individual_enrollment, registration_id)
        expect_equal("registration id", got.registration_id, registration_id)

    scenario.step("install a lasting 429 rule on {} (POST /faults)".format(path))
    await harness.with_fault(
        scenario,
        {
            "operation": "dps.service",
            "path": path,
            "action": {"refuse": {"status": 429, "retryAfter": UNAVAILABLE_RETRY_AFTER}},
        },
        throttled_until_removed,
    )

    scenario.step("clean up: delete the enrollment")
    await blocking(psc.delete_individual_enrollment_by_param, registration_id)


if __name__ == "__main__":
    scenario.run(main)
