"""Scenario hub_drop_reconnect, Python: azure-iot-device recovers from a dropped hub connection.

The device (DPS symmetric-key registration as in the quickstart, then IoTHubDeviceClient over
MQTT with the SDK's defaults: connection_retry=True, connection_retry_interval=10) sets
`on_message_received` (C2D subscription), then a rule is installed through the control port
(docs/faults.md): `hub.telemetry`, drop afterAck, after 2, count 1, on this device only — the
emulator stores the 3rd message, sends its PUBACK and closes the connection. The device sends 6
messages, awaiting each: the SDK must notice the drop and reconnect by itself (its
ConnectionStateStage starts a reconnect 0.01 s after an unexpected disconnect,
azure/iot/device/common/pipeline/pipeline_stages_base.py); sends issued while it reconnects wait
for the connection (AutoConnectStage / ConnectionStateStage's waiting ops).

One race is the SDK's own: a send issued in the millisecond between paho seeing the socket close
and the pipeline's DisconnectedEvent reaches paho's `publish()` while paho is disconnected; paho
answers MQTT_ERR_NO_CONN (rc 4) and the SDK raises NoConnectionError to the application — but
paho (1.6.1) has also kept the QoS 1 message in its queue ("so it will be send after a connection
is made") and, since the SDK reuses the one paho client, sends it after the reconnect ("Response
received for unknown MID"). The application, told the send failed, sends it again (as it must),
and the hub stores that message twice (a resend issued at once can hit the same window, so the
scenario pauses 0.5 s first). So a NoConnectionError / ConnectionDroppedError is answered with a
resend of the same message (at most two per message), and a duplicate is reported, not failed.
Then:
  * GET /faults: the rule hit once;
  * the emulator log shows at least one new hub session of the device (the reconnect);
  * GET /telemetry holds all 6 messages; one stored twice would be a QoS 1 resend, which MQTT
    allows — reported, not failed;
  * a C2D message queued after the reconnect (POST /c2d) reaches `on_message_received`: the SDK
    connects with clean_session=False and never subscribes again, so this shows that the hub
    kept the C2D subscription of the persistent session across the drop. (Twin subscriptions
    after a reconnect are `hub_drop_twin`.)
"""

import asyncio
import time
import urllib.parse

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient
from azure.iot.device.exceptions import ConnectionDroppedError, NoConnectionError

import harness
import hub_faults_common as common
from harness import check

scenario = harness.Scenario("hub_drop_reconnect")
run_id = common.run_id()
TOTAL = 6
SEND_BOUND = 20.0  # seconds per awaited send (the reconnect is immediate; this only bounds a hang)
RECEIVE_BOUND = 10.0
MAX_ATTEMPTS = 3  # per message: the first send and up to two resends after a transient error
RESEND_PAUSE = 0.5  # seconds before a resend (the SDK reconnects 0.01 s after the drop)


async def main():
    device_client, device_id = await harness.provision_and_connect(
        scenario, ProvisioningDeviceClient, IoTHubDeviceClient)
    loop = asyncio.get_running_loop()
    received = asyncio.Queue()
    device_client.on_message_received = lambda m: loop.call_soon_threadsafe(received.put_nowait, m)

    rule = {
        "operation": "hub.telemetry",
        "deviceId": device_id,
        "action": {"drop": {"when": "afterAck"}},
        "after": 2,
        "count": 1,
    }
    scenario.step("install the fault rule (POST /faults)")
    async with common.fault_rule(scenario, rule) as fault_id:
        offset = harness.log_offset()
        resent = []
        for i in range(1, TOTAL + 1):
            scenario.step("send message {} of {} (awaited)".format(i, TOTAL))
            started = time.monotonic()
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    await asyncio.wait_for(
                        device_client.send_message(common.new_message(Message, run_id, i)), SEND_BOUND)
                    break
                except asyncio.TimeoutError:
                    raise harness.ScenarioFailure("send_message did not complete within {:.0f} s".format(SEND_BOUND))
                except (NoConnectionError, ConnectionDroppedError) as e:
                    # The SDK's documented transient errors: a send that races the drop (issued
                    # after paho saw the socket close, before the pipeline's DisconnectedEvent)
                    # is not queued by the SDK but fails. The application waits a little and
                    # sends the same message again, as an application must; the SDK reconnects
                    # by itself meanwhile.
                    check(attempt < MAX_ATTEMPTS, "send {} failed {} times: {}".format(
                        i, attempt, harness.describe_error(e)))
                    resent.append(i)
                    scenario.info("message {} attempt {} failed after {:.2f} s with {}; sending it again in {} s".format(
                        i, attempt, common.elapsed_since(started), harness.describe_error(e), RESEND_PAUSE))
                    await asyncio.sleep(RESEND_PAUSE)
            scenario.info("message {} sent in {:.2f} s (client connected={})".format(
                i, common.elapsed_since(started), device_client.connected))

        scenario.step("the rule hit once (GET /faults)")
        await common.expect_hits(scenario, fault_id, 1)

        scenario.step("the device reconnected (emulator log)")
        attempts, refused, lines = harness.count_connect_attempts(offset, device_id)
        check(attempts is not None, "emulator log unavailable: cannot see the reconnect")
        check(attempts - refused >= 1,
              "no new hub session of {} after the drop (log lines: {})".format(device_id, lines[-5:]))
        scenario.info("emulator: {} CONNECT(s) of {} after the rule was installed, {} refused".format(
            attempts, device_id, refused))

        scenario.step("all {} messages stored (GET /telemetry)".format(TOTAL))
        duplicates = await common.expect_all_stored(scenario, device_id, run_id, TOTAL, allow_duplicates=True)
        scenario.info("application-level resends: {}; duplicates: {}".format(resent or "none", duplicates or "none"))

    scenario.step("C2D after the reconnect reaches on_message_received")
    mid = "c2d-" + run_id
    path = "/c2d?" + urllib.parse.urlencode({"deviceId": device_id, "messageId": mid})
    status, body = await harness.control_post_async(path, "after the reconnect")
    check(status == 201, "POST /c2d returned {}: {}".format(status, body))
    try:
        msg = await asyncio.wait_for(received.get(), RECEIVE_BOUND)
    except asyncio.TimeoutError:
        raise harness.ScenarioFailure("the C2D message sent after the reconnect did not arrive within {:.0f} s".format(
            RECEIVE_BOUND))
    harness.expect_equal("C2D message id", msg.message_id, mid)
    harness.expect_equal("C2D data", msg.data, b"after the reconnect")
    scenario.info("C2D {} received after the reconnect".format(mid))

    scenario.step("disconnect")
    await device_client.shutdown()


if __name__ == "__main__":
    scenario.run(main)
