"""Scenario hub_delayed_puback, Python: azure-iot-device waits out a slow PUBACK.

The device (DPS registration as in the quickstart, IoTHubDeviceClient over MQTT) sends 3
messages, awaiting each, while a rule installed through the control port (docs/faults.md) delays
the PUBACK of its 2nd message: `hub.telemetry`, delay 2000 ms, after 1, count 1. The emulator
stores the message, then holds the PUBACK for 2 s. azure-iot-device 2.14.0 puts no timeout on a
publish (its OpTimeoutStage times only SUBSCRIBE/UNSUBSCRIBE, 10 s: "MQTT auto retries pub",
azure/iot/device/common/pipeline/pipeline_stages_base.py), and the keep-alive (60 s) is far
longer than the delay, so the send must simply complete after the delay, without a reconnect or
a resend. Checked: the 2nd send took at least the delay (it cannot have been acknowledged
sooner), the rule hit once, no new session of the device in the emulator log, and GET /telemetry
holds each message exactly once.
"""

import asyncio
import time

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient

import harness
import hub_faults_common as common
from harness import check, expect_equal

scenario = harness.Scenario("hub_delayed_puback")
run_id = common.run_id()
TOTAL = 3
DELAY_MS = 2000
SEND_BOUND = 20.0


async def main():
    device_client, device_id = await harness.provision_and_connect(
        scenario, ProvisioningDeviceClient, IoTHubDeviceClient)
    rule = {
        "operation": "hub.telemetry",
        "deviceId": device_id,
        "action": {"delay": {"ms": DELAY_MS}},
        "after": 1,
        "count": 1,
    }
    scenario.step("install the fault rule (POST /faults)")
    async with common.fault_rule(scenario, rule) as fault_id:
        offset = harness.log_offset()
        took = {}
        for i in range(1, TOTAL + 1):
            scenario.step("send message {} of {} (awaited)".format(i, TOTAL))
            started = time.monotonic()
            try:
                await asyncio.wait_for(device_client.send_message(common.new_message(Message, run_id, i)), SEND_BOUND)
            except asyncio.TimeoutError:
                raise harness.ScenarioFailure("send_message did not complete within {:.0f} s".format(SEND_BOUND))
            took[i] = common.elapsed_since(started)
            scenario.info("message {} sent in {:.2f} s".format(i, took[i]))

        scenario.step("the delayed send waited for the PUBACK")
        check(took[2] >= DELAY_MS / 1000.0,
              "send_message of the delayed message returned after {:.2f} s, before the {} ms delay".format(
                  took[2], DELAY_MS))

        scenario.step("the rule hit once (GET /faults)")
        await common.expect_hits(scenario, fault_id, 1)

        scenario.step("no reconnect (emulator log)")
        attempts, _, lines = harness.count_connect_attempts(offset, device_id)
        check(attempts is not None, "emulator log unavailable: cannot tell whether the device reconnected")
        expect_equal("CONNECTs of {} during the sends".format(device_id), attempts, 0)

        scenario.step("each message stored once (GET /telemetry)")
        await common.expect_all_stored(scenario, device_id, run_id, TOTAL, allow_duplicates=False)

    scenario.step("disconnect")
    await device_client.shutdown()


if __name__ == "__main__":
    scenario.run(main)
