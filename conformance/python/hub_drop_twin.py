"""Scenario hub_drop_twin, Python: desired-property patches after a dropped hub connection.

The device (DPS registration as in the quickstart, IoTHubDeviceClient over MQTT) sets
`on_twin_desired_properties_patch_received` (the SDK subscribes to
`$iothub/twin/PATCH/properties/desired/#`), then a rule installed through
the control port (docs/faults.md) drops its connection right after the PUBACK of its 1st message
(`hub.telemetry`, drop afterAck, `count` 1). A 2nd awaited send shows that the SDK reconnected by
itself (a send racing the drop is sent again after 0.5 s, as in hub_drop_reconnect). Then a back
end merges a desired property (the control port's portal API, PATCH /api/hubs/{hub}/devices/{id}/twin)
and the patch must reach the handler within 10 s; the rule hit once.

azure-iot-device 2.14.0 connects with clean_session=False and never subscribes again after a
reconnect (common/mqtt_transport.py): it relies on the hub keeping the session's subscriptions
(iotemu did so only for C2D until this scenario showed the patch being dropped). On reconnecting
it also sends a twin GET to catch up (EnsureDesiredPropertiesStage,
iothub/pipeline/pipeline_stages_iothub.py) — without ever having subscribed to
`$iothub/twin/res/#` when the application never called get_twin(), so iotemu drops that answer;
the patch itself arrives on the kept subscription.
"""

import asyncio
import time

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient
from azure.iot.device.exceptions import ConnectionDroppedError, NoConnectionError

import harness
import hub_faults_common as common
from harness import check

scenario = harness.Scenario("hub_drop_twin")
run_id = common.run_id()
SEND_BOUND = 20.0
PATCH_BOUND = 10.0
RESEND_PAUSE = 0.5


async def send(device_client, i):
    for attempt in (1, 2, 3):
        try:
            await asyncio.wait_for(device_client.send_message(common.new_message(Message, run_id, i)), SEND_BOUND)
            return
        except asyncio.TimeoutError:
            raise harness.ScenarioFailure("send_message did not complete within {:.0f} s".format(SEND_BOUND))
        except (NoConnectionError, ConnectionDroppedError) as e:
            check(attempt < 3, "send {} failed 3 times: {}".format(i, harness.describe_error(e)))
            scenario.info("message {} attempt {} failed with {}; sending it again".format(
                i, attempt, harness.describe_error(e)))
            await asyncio.sleep(RESEND_PAUSE)


async def main():
    device_client, device_id = await harness.provision_and_connect(
        scenario, ProvisioningDeviceClient, IoTHubDeviceClient)
    loop = asyncio.get_running_loop()
    patches = asyncio.Queue()
    scenario.step("set on_twin_desired_properties_patch_received")
    device_client.on_twin_desired_properties_patch_received = (
        lambda p: loop.call_soon_threadsafe(patches.put_nowait, p))

    rule = {"operation": "hub.telemetry", "deviceId": device_id, "action": {"drop": {"when": "afterAck"}}, "count": 1}
    scenario.step("install the fault rule (POST /faults)")
    async with common.fault_rule(scenario, rule) as fault_id:
        offset = harness.log_offset()
        scenario.step("send message 1 (its PUBACK, then the drop)")
        await send(device_client, 1)
        scenario.step("send message 2 (after the reconnect)")
        await send(device_client, 2)
        await common.expect_hits(scenario, fault_id, 1)
        attempts, refused, lines = harness.count_connect_attempts(offset, device_id)
        check(attempts is not None, "emulator log unavailable: cannot see the reconnect")
        check(attempts - refused >= 1, "no new hub session of {} after the drop".format(device_id))
        await common.expect_all_stored(scenario, device_id, run_id, 2, allow_duplicates=True)

    scenario.step("a desired-property patch after the reconnect reaches the handler")
    await common.patch_desired(harness.env("EXPECTED_ASSIGNED_HUB"), device_id, {"conformanceRun": run_id})
    started = time.monotonic()
    got = None
    while got is None or got.get("conformanceRun") != run_id:
        try:
            got = await asyncio.wait_for(patches.get(), max(PATCH_BOUND - common.elapsed_since(started), 0.01))
        except asyncio.TimeoutError:
            raise harness.ScenarioFailure(
                "no desired patch with this run's value within {:.0f} s after the reconnect (last: {!r})".format(
                    PATCH_BOUND, got))
    scenario.info("desired patch received after the reconnect: {}".format(got))

    scenario.step("disconnect")
    await device_client.shutdown()


if __name__ == "__main__":
    scenario.run(main)
