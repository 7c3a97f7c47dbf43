"""Scenario hub_connect_refused, Python: what azure-iot-device does with CONNACK 3.

After a DPS registration (as in the quickstart), a rule installed through the control port
(docs/faults.md) refuses the device's next hub CONNECT: `hub.connect`, refuse 503, count 1 — the
emulator answers CONNACK 3 (server unavailable) and closes. azure-iot-device 2.14.0 maps CONNACK 3
to ConnectionFailedError (`paho_connack_rc_to_error`, azure/iot/device/common/mqtt_transport.py)
and retries it only while *reconnecting* a connection it had (ConnectionStateStage, after
connection_retry_interval = 10 s, common/pipeline/pipeline_stages_base.py); a `connect()` the
application called fails instead. So the scenario asserts:
  * `connect()` raises ConnectionFailedError, promptly, and the emulator logged exactly one
    refused CONNECT of the device with code 3 (no retry storm, no silent success);
  * the rule hit once; the application's second `connect()` gets in;
  * a message sent afterwards is stored.
"""

import asyncio
import re
import time

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient
from azure.iot.device.exceptions import ConnectionFailedError

import harness
import hub_faults_common as common
from harness import check, expect_equal

scenario = harness.Scenario("hub_connect_refused")
run_id = common.run_id()
CONNECT_BOUND = 20.0


async def main():
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    key = harness.env("PROVISIONING_SYMMETRIC_KEY")
    scenario.step("register")
    provisioning = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=harness.env("PROVISIONING_HOST"), registration_id=registration_id,
        id_scope=harness.env("PROVISIONING_IDSCOPE"), symmetric_key=key)
    result = await provisioning.register()
    expect_equal("registration status", result.status, "assigned")
    state = result.registration_state
    expect_equal("device id", state.device_id, harness.env("EXPECTED_DEVICE_ID"))
    device_id = state.device_id
    device_client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=key, hostname=state.assigned_hub, device_id=device_id)

    rule = {"operation": "hub.connect", "deviceId": device_id, "action": {"refuse": {"status": 503}}, "count": 1}
    scenario.step("install the fault rule (POST /faults)")
    async with common.fault_rule(scenario, rule) as fault_id:
        offset = harness.log_offset()
        scenario.step("connect() is refused with CONNACK 3")
        started = time.monotonic()
        try:
            await asyncio.wait_for(device_client.connect(), CONNECT_BOUND)
        except asyncio.TimeoutError:
            raise harness.ScenarioFailure("connect() neither failed nor succeeded within {:.0f} s".format(CONNECT_BOUND))
        except ConnectionFailedError as e:
            scenario.info("connect() raised after {:.2f} s: {}".format(
                common.elapsed_since(started), harness.describe_error(e)))
        else:
            raise harness.ScenarioFailure("connect() succeeded although the CONNECT was refused with CONNACK 3")

        attempts, refused, lines = harness.count_connect_attempts(offset, device_id)
        check(attempts is not None, "emulator log unavailable: cannot count the CONNECTs")
        expect_equal("CONNECTs of {} logged during connect()".format(device_id), attempts, 1)
        expect_equal("refused CONNECTs of {}".format(device_id), refused, 1)
        check(any(re.search(r"\bcode=3\b", line) for line in lines),
              "the refusal was not logged with CONNACK code 3: {}".format(lines))
        await common.expect_hits(scenario, fault_id, 1)

        scenario.step("a second connect() gets in")
        await asyncio.wait_for(device_client.connect(), CONNECT_BOUND)
        check(device_client.connected, "the client does not report itself connected")

    scenario.step("send a message")
    await asyncio.wait_for(device_client.send_message(common.new_message(Message, run_id, 1)), CONNECT_BOUND)
    await common.expect_all_stored(scenario, device_id, run_id, 1, allow_duplicates=False)

    scenario.step("disconnect")
    await device_client.shutdown()


if __name__ == "__main__":
    scenario.run(main)
