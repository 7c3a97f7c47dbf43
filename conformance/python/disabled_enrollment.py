"""Scenario (d) disabled enrollment, Python: register() on a disabled enrollment raises.

azure-iot-device 2.14.0 accepts only the statuses assigning/assigned/failed; DPS answers a
disabled individual enrollment with operation status `disabled`, which the SDK turns into a
ServiceError ("... invalid registration status disabled ...") surfaced from register() (wrapped
in ClientError). Asserts that exception, and that the emulator's registration record says
`disabled`.
"""

import asyncio
import time

from azure.iot.device.aio import ProvisioningDeviceClient

import harness
from harness import check, expect_equal

BOUND = 20.0

scenario = harness.Scenario("disabled_enrollment")


async def main():
    provisioning_host = harness.env("PROVISIONING_HOST")
    id_scope = harness.env("PROVISIONING_IDSCOPE")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    symmetric_key = harness.env("PROVISIONING_SYMMETRIC_KEY")

    scenario.step("register (enrollment is disabled)")
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=provisioning_host,
        registration_id=registration_id,
        id_scope=id_scope,
        symmetric_key=symmetric_key,
    )
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(client.register(), BOUND)
    except asyncio.TimeoutError:
        raise harness.ScenarioFailure("register() gave no result within {:.0f} s".format(BOUND))
    except Exception as e:
        error = e
    else:
        raise harness.ScenarioFailure(
            "register() returned instead of raising: status={!r} state={}".format(
                result.status, result.registration_state
            )
        )
    scenario.info(
        "register() raised after {:.2f} s: {}".format(time.monotonic() - started, harness.describe_error(error))
    )

    scenario.step("check the exception")
    chain = harness.error_chain(error)
    check(
        any(type(c).__name__ == "ServiceError" and "disabled" in str(c) for c in chain),
        "expected a ServiceError naming the status 'disabled', got {}".format(harness.describe_error(error)),
    )

    scenario.step("check emulator registration record (GET /registrations)")
    record = await harness.registration_record(registration_id)
    expect_equal("record status", record.get("status"), "disabled")


if __name__ == "__main__":
    scenario.run(main)
