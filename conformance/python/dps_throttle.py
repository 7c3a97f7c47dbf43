"""Scenario dps_throttle, Python: the device SDK recovers from DPS throttling by itself.

A fault rule installed through the emulator's control port (POST /faults, docs/faults.md) makes
DPS answer this device's next register request with 429 and `retry-after` (MQTT topic
`$dps/registrations/res/429/?$rid=…&retry-after=5`). azure-iot-device 2.14.0 treats every status
>= 429 on the register response as "retry": `RegistrationStage` calls
`_process_retry_status_code`, which starts a timer of `int(retry_after)` seconds (its default,
DEFAULT_POLLING_INTERVAL, is 2 s) and then runs the register operation again
(azure/iot/device/provisioning/pipeline/pipeline_stages_provisioning.py). So register() must
return `assigned` with no error, after at least the 5 s the rule asked for, and the rule must
have hit once. The same holds for the operation-status poll: a 503 there is polled again after
its `retry-after`. And for a throttle (a rule with a `rate`): a second register within the rate's
window is refused with 429 and the seconds until the rate allows it, which the SDK waits out.
"""

import time

from azure.iot.device.aio import ProvisioningDeviceClient

import harness
from harness import check, expect_equal

# Longer than the SDK's default retry interval (2 s), so waiting this long shows it read the
# header rather than falling back to its default.
RETRY_AFTER = 5
# A rate rule's window: its 429 tells the SDK to wait about this long.
RATE_SECONDS = 6


async def register(scenario, registration_id, symmetric_key, websockets):
    """A fresh client's register() (over MQTT, or MQTT over WebSocket): (result, seconds it took)."""
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=harness.env("PROVISIONING_HOST"),
        registration_id=registration_id,
        id_scope=harness.env("PROVISIONING_IDSCOPE"),
        symmetric_key=symmetric_key,
        websockets=websockets,
    )
    started = time.monotonic()
    result = await client.register()
    elapsed = time.monotonic() - started
    state = result.registration_state
    scenario.info(
        "status={} hub={} device={} substatus={} after {:.1f} s".format(
            result.status, state.assigned_hub, state.device_id, state.sub_status, elapsed
        )
    )
    expect_equal("registration status", result.status, "assigned")
    expect_equal("assigned hub", state.assigned_hub, harness.env("EXPECTED_ASSIGNED_HUB"))
    expect_equal("device id", state.device_id, harness.env("EXPECTED_DEVICE_ID"))
    return result, elapsed


async def throttle_flow(scenario, websockets=False):
    """The scenario's steps; dps_throttle_websocket runs them over MQTT over WebSocket."""
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    symmetric_key = harness.env("PROVISIONING_SYMMETRIC_KEY")

    async def throttled_register(fault_id):
        scenario.step("register() through a 429 with retry-after {}".format(RETRY_AFTER))
        _, elapsed = await register(scenario, registration_id, symmetric_key, websockets)
        check(
            elapsed >= RETRY_AFTER,
            "register() returned after {:.1f} s, sooner than the {} s retry-after".format(elapsed, RETRY_AFTER),
        )
        scenario.step("the 429 rule hit once (GET /faults)")
        status = await harness.fault_status(fault_id)
        expect_equal("hits", status.get("hits"), 1)
        expect_equal("remaining", status.get("remaining"), 0)
        scenario.step("remove the rule (DELETE /faults/{id})")
        expect_equal("DELETE /faults/{}".format(fault_id), await harness.remove_fault(fault_id), 204)
        gone, _ = await harness.control_get_async("/faults/" + fault_id)
        expect_equal("GET /faults/{} after DELETE".format(fault_id), gone, 404)

    scenario.step("install a 429 rule for this registration (POST /faults)")
    await harness.with_fault(
        scenario,
        {
            "operation": "dps.register",
            "registrationId": registration_id,
            "action": {"refuse": {"status": 429, "retryAfter": RETRY_AFTER}},
            "count": 1,
        },
        throttled_register,
    )

    async def refused_poll(fault_id):
        scenario.step("register() through a 503 on the operation-status poll")
        await register(scenario, registration_id, symmetric_key, websockets)
        scenario.step("the 503 rule hit once (GET /faults)")
        status = await harness.fault_status(fault_id)
        expect_equal("hits", status.get("hits"), 1)
        expect_equal("DELETE /faults/{}".format(fault_id), await harness.remove_fault(fault_id), 204)

    scenario.step("install a 503 rule on the poll (POST /faults)")
    await harness.with_fault(
        scenario,
        {
            "operation": "dps.poll",
            "registrationId": registration_id,
            "action": {"refuse": {"status": 503, "retryAfter": 1}},
            "count": 1,
        },
        refused_poll,
    )

    async def rate_limited_register(fault_id):
        scenario.step("register() within the rate of {} per {} s".format(1, RATE_SECONDS))
        await register(scenario, registration_id, symmetric_key, websockets)
        scenario.step("register() again at once: over the rate, 429 with the wait as retry-after")
        _, elapsed = await register(scenario, registration_id, symmetric_key, websockets)
        # The rule's 429 carries the seconds until its rate lets one more through (what is
        # left of RATE_SECONDS since the first register's request), and refuses again any
        # retry that comes sooner: register() can only be assigned once the window allows it.
        check(
            elapsed >= RATE_SECONDS - 1,
            "the second register() returned after {:.1f} s, before the rate allowed it".format(elapsed),
        )
        status = await harness.fault_status(fault_id)
        check(status.get("hits", 0) >= 1, "the rate rule never refused: {}".format(status))
        expect_equal("rate", status.get("rate"), {"limit": 1, "seconds": RATE_SECONDS, "each": True})

    scenario.step("install a throttle: 1 register per {} s for this registration (POST /faults)".format(RATE_SECONDS))
    await harness.with_fault(
        scenario,
        {
            "operation": "dps.register",
            "registrationId": registration_id,
            "action": {"refuse": {"status": 429}},
            "rate": {"limit": 1, "seconds": RATE_SECONDS, "each": True},
        },
        rate_limited_register,
    )

    scenario.step("check emulator registration record (GET /registrations)")
    record = await harness.registration_record(registration_id)
    expect_equal("record status", record.get("status"), "assigned")
    expect_equal("record deviceId", record.get("deviceId"), harness.env("EXPECTED_DEVICE_ID"))


if __name__ == "__main__":
    scenario = harness.Scenario("dps_throttle")
    scenario.run(lambda: throttle_flow(scenario))
