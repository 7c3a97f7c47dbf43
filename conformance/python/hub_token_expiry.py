"""Scenario hub_token_expiry, Python: a device whose SAS token expires mid-session, with
azure-iot-device 2.14.0 and a token the application makes itself
(`IoTHubDeviceClient.create_from_sastoken`), as a device without its key does.

The SDK cannot renew a token it was handed: its `SasTokenStage` sets an alarm at the token's
expiry minus DEFAULT_TOKEN_UPDATE_MARGIN (120 s) that raises NewSasTokenRequiredEvent, i.e.
calls the client's `on_new_sastoken_required` handler (common/pipeline/pipeline_stages_base.py
`_start_token_update_alarm`); the application answers with `update_sastoken`. Asserted in order:

1. a token valid for LIFETIME seconds: `connect()` and one `send_message` succeed. (The token
   has less than the 120 s margin left, so the SDK raises its event while the client is being
   created, before `on_new_sastoken_required` can be set: it logs "no handler was set" and the
   handler is never called for this token; reported, not asserted);
2. the hub ends the session at the token's expiry (the emulator log: "SAS token expired
   (401003)", no sooner than the expiry), as IoT Hub closes an MQTT connection whose token
   expired;
3. `update_sastoken` with a fresh token (1 h); the next `send_message` is sent on a connection
   made with it (the SDK's own reconnect right after the expiry, `connection_retry`, used the
   expired token and was refused with CONNACK 5; it tries again on its timer or for the send);
   GET /telemetry holds both messages.
"""

import asyncio
import base64
import hashlib
import hmac
import time
import urllib.parse
import uuid

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient

import harness
from harness import check, expect_equal

scenario = harness.Scenario("hub_token_expiry")

LIFETIME = 5
EXPIRY_BOUND = 20.0  # the expiry is 5 s away; this only bounds a hang
SEND_BOUND = 30.0


def device_token(hub, device_id, key, seconds):
    """A device SAS token for `seconds` from now (no key name), and its expiry."""
    expiry = int(time.time()) + seconds
    resource = urllib.parse.quote("{}/devices/{}".format(hub, device_id), safe="")
    to_sign = "{}\n{}".format(resource, expiry).encode("utf-8")
    signature = base64.b64encode(hmac.new(base64.b64decode(key), to_sign, hashlib.sha256).digest())
    token = "SharedAccessSignature sr={}&sig={}&se={}".format(
        resource, urllib.parse.quote(signature, safe=""), expiry)
    return token, expiry


async def main():
    registration_id = harness.env("PROVISIONING_REGISTRATION_ID")
    key = harness.env("PROVISIONING_SYMMETRIC_KEY")
    scenario.step("register")
    provisioning = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=harness.env("PROVISIONING_HOST"),
        registration_id=registration_id,
        id_scope=harness.env("PROVISIONING_IDSCOPE"),
        symmetric_key=key,
    )
    result = await provisioning.register()
    expect_equal("registration status", result.status, "assigned")
    hub, device_id = result.registration_state.assigned_hub, result.registration_state.device_id
    expect_equal("device id", device_id, harness.env("EXPECTED_DEVICE_ID"))

    scenario.step("connect with a token valid for {} s (create_from_sastoken)".format(LIFETIME))
    token, expiry = device_token(hub, device_id, key, LIFETIME)
    client = IoTHubDeviceClient.create_from_sastoken(token)
    asked = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_new_sastoken_required():
        scenario.info("on_new_sastoken_required called {:.1f} s before the expiry".format(expiry - time.time()))
        loop.call_soon_threadsafe(asked.set)

    client.on_new_sastoken_required = on_new_sastoken_required
    offset = harness.log_offset()
    await client.connect()
    run = str(uuid.uuid4())

    def message(index):
        msg = Message("token expiry message {}".format(index))
        msg.message_id = "{}-{}".format(run, index)
        return msg

    await asyncio.wait_for(client.send_message(message(1)), SEND_BOUND)

    scenario.step("the hub ends the session at the token's expiry")
    if harness.log_offset() > 0:
        deadline = time.monotonic() + EXPIRY_BOUND
        while True:
            lines = [line for line in harness.log_lines_since(offset, "SAS token expired (401003)")
                     if ":{} ".format(device_id) in line]
            if lines:
                break
            check(time.monotonic() < deadline, "the emulator log does not show the session ending on the expiry")
            await asyncio.sleep(0.1)
        now = time.time()
        scenario.info("{:.1f} s after the expiry: {}".format(now - expiry, lines[0]))
        check(now >= expiry - 0.5, "the session ended {:.1f} s before the token expired".format(expiry - now))
    else:
        await asyncio.sleep(max(0.0, expiry + 1 - time.time()))

    scenario.step("update_sastoken with a fresh token, then send again")
    fresh, _ = device_token(hub, device_id, key, 3600)
    await client.update_sastoken(fresh)
    await asyncio.wait_for(client.send_message(message(2)), SEND_BOUND)
    attempts, refused, _ = harness.count_connect_attempts(offset, device_id)
    scenario.info("hub CONNECTs of the device since the first: {} ({} refused)".format(attempts, refused))

    # The SDK raised NewSasTokenRequiredEvent while the client was being created (the alarm's
    # time, expiry - 120 s, had passed), before any handler could be set: it logs "requires new
    # SASToken, but no handler was set", so the handler is not called for such a token.
    scenario.info("on_new_sastoken_required called: {}".format(asked.is_set()))

    scenario.step("both messages stored (GET /telemetry)")
    found = await harness.wait_for_telemetry(device_id, {"{}-1".format(run), "{}-2".format(run)})
    expect_equal("stored messages", len(found), 2)
    await client.shutdown()


if __name__ == "__main__":
    scenario.run(main)
