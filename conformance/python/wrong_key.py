"""Scenario (c) wrong key, Python: a bad symmetric key is refused promptly, without a retry storm.

1. DPS: register() with a wrong key (valid base64, wrong secret) must raise the SDK's
   authorization error (CredentialError, caused by the MQTT CONNACK "not authorised") within
   AUTH_FAILURE_BOUND seconds; the emulator log is searched for the CONNECTs it received from
   that registration id to show the SDK did not hammer the server.
2. register() with the right key, so the hub device exists.
3. Hub: connect() with a wrong device key must fail the same way, within the same bound.
"""

import asyncio
import base64
import os
import time

from azure.iot.device.aio import ProvisioningDeviceClient
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.device import exceptions

import harness
from harness import check, expect_equal

AUTH_FAILURE_BOUND = 20.0  # seconds: an authorization failure must surface before this
MAX_CONNECT_ATTEMPTS = 3  # CONNECTs the emulator may see for one failing client call

scenario = harness.Scenario("wrong_key")


def wrong_key():
    return base64.b64encode(os.urandom(64)).decode("ascii")


async def expect_authorization_failure(what, client_id, call):
    """Run `call()`; it must fail with CredentialError within the bound. Returns the error."""
    offset = harness.log_offset()
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(call(), AUTH_FAILURE_BOUND)
    except asyncio.TimeoutError:
        raise harness.ScenarioFailure(
            "{}: no error within {:.0f} s (the SDK hung or kept retrying)".format(what, AUTH_FAILURE_BOUND)
        )
    except exceptions.CredentialError as e:
        error = e
    except Exception as e:
        raise harness.ScenarioFailure(
            "{}: expected CredentialError (authorization failure), got {}".format(what, harness.describe_error(e))
        )
    else:
        raise harness.ScenarioFailure("{}: succeeded with a wrong key: {}".format(what, result))
    elapsed = time.monotonic() - started
    scenario.info("{} failed after {:.2f} s: {}".format(what, elapsed, harness.describe_error(error)))
    check(
        any(type(c).__name__ == "UnauthorizedError" for c in harness.error_chain(error)),
        "{}: CredentialError was not caused by an MQTT authorization refusal: {}".format(
            what, harness.describe_error(error)
        ),
    )
    attempts, refused, lines = harness.count_connect_attempts(offset, client_id)
    # The emulator logs one line per CONNECT outcome; not finding them means this check
    # could no longer see a retry storm, so that is a failure, not a skip.
    check(attempts is not None, "{}: emulator log unavailable: connection attempts cannot be counted".format(what))
    check(
        attempts > 0,
        "{}: emulator log has {} line(s) naming {!r} but no CONNECT outcome (did the log wording change?)".format(
            what, len(lines), client_id
        ),
    )
    scenario.info("emulator logged {} CONNECT(s) from {!r} during the call, {} refused".format(
        attempts, client_id, refused))
    check(
        attempts <= MAX_CONNECT_ATTEMPTS,
        "{}: emulator saw {} CONNECTs from {!r} for one call (retry storm)".format(what, attempts, client_id),
    )
    return error


async def main():
    scenario_offset = harness.log_offset()
    provisioning_host = harness.env("PROVISIONING_HOST")
    id_scope = harness.env("PROVISIONING_IDSCOPE")
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    symmetric_key = harness.env("PROVISIONING_SYMMETRIC_KEY")
    expected_hub = harness.env("EXPECTED_ASSIGNED_HUB")
    expected_device_id = harness.env("EXPECTED_DEVICE_ID")

    scenario.step("register with a wrong key")
    bad_client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=provisioning_host,
        registration_id=registration_id,
        id_scope=id_scope,
        symmetric_key=wrong_key(),
    )
    await expect_authorization_failure("register()", registration_id, bad_client.register)

    scenario.step("register with the right key")
    client = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=provisioning_host,
        registration_id=registration_id,
        id_scope=id_scope,
        symmetric_key=symmetric_key,
    )
    result = await client.register()
    expect_equal("registration status", result.status, "assigned")
    expect_equal("device id", result.registration_state.device_id, expected_device_id)
    expect_equal("assigned hub", result.registration_state.assigned_hub, expected_hub)

    scenario.step("connect to hub with a wrong key")
    device_client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=wrong_key(),
        hostname=result.registration_state.assigned_hub,
        device_id=result.registration_state.device_id,
    )
    await expect_authorization_failure("connect()", expected_device_id, device_client.connect)
    await device_client.shutdown()

    scenario.step("count refused CONNECTs over the whole scenario")
    for client_id in (registration_id, expected_device_id):
        attempts, refused, _ = harness.count_connect_attempts(scenario_offset, client_id)
        if attempts:
            scenario.info("{!r}: {} CONNECT(s), {} refused".format(client_id, attempts, refused))
            check(
                refused <= MAX_CONNECT_ATTEMPTS,
                "emulator refused {} CONNECTs from {!r} (the SDK retried a wrong key)".format(refused, client_id),
            )


if __name__ == "__main__":
    scenario.run(main)
