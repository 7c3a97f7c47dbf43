"""Scenario eventhub_redirect, Python: from the IoT Hub connection string to the Event Hubs-compatible
endpoint by following the hub's `amqp:link:redirect`, as `az iot hub monitor-events` does.

The Azure IoT CLI extension (azext_iot/monitor/builders/hub_target_builder.py, `_evaluate_redirect`)
discovers the built-in endpoint from nothing but an IoT Hub connection string, with
azure-eventhub's AMQP stack (`azure.eventhub._pyamqp`, the stack `az iot hub monitor-events`
runs on): a `ReceiveClient` on the hub host, CBS authentication with a hub SAS token
(`sr={hostname}`, audience `{hostname}`, type `servicebus.windows.net:sastoken`), source
`amqps://{hostname}/messages/events/$management`; the hub detaches that link with
`amqp:link:redirect` (raised as `AMQPLinkRedirect`) whose info carries `hostname` and an `address`
`amqps://{host}:{port}/{entity}/$management`. The CLI strips the scheme, `host:port/` and
`/$management` to get the Event Hub name, then reads with `EventHubConsumerClient` and
`Endpoint=sb://{hostname}/;SharedAccessKeyName={policy};SharedAccessKey={key};EntityPath={name}`.
This scenario takes the same steps (written here, not imported from the CLI, which is not
installed) and then receives three messages the quickstart device sent.

Asserted: the redirect arrives (condition `amqp:link:redirect`, port 5671), the derived endpoint
and Event Hub name are the ones in the emulator's published Event Hubs-compatible connection
string, and the consumer built from them receives the three events with
`iothub-connection-device-id` and their properties; GET /telemetry holds them too.
"""

import asyncio
import base64
import hashlib
import hmac
import time
import urllib.parse
import uuid
from collections import namedtuple

from azure.eventhub import EventHubConsumerClient
from azure.eventhub._pyamqp import ReceiveClient
from azure.eventhub._pyamqp.authentication import _CBSAuth
from azure.eventhub._pyamqp.error import AMQPLinkRedirect
from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient

import harness
from harness import check, expect_equal, in_thread

scenario = harness.Scenario("eventhub_redirect", timeout=75.0)
run_id = str(uuid.uuid4())
MESSAGES = 3
RECEIVE_BOUND = 20.0
TOKEN_SECONDS = 360
AccessToken = namedtuple("AccessToken", ["token", "expires_on"])


def hub_sas_token(uri, policy, key, seconds):
    """A SAS token for `uri` as the CLI's SasTokenAuthentication makes it (sr URL-encoded, signed
    over `sr + "\\n" + expiry`)."""
    expiry = int(time.time() + seconds)
    encoded = urllib.parse.quote_plus(uri)
    signature = base64.b64encode(
        hmac.new(base64.b64decode(key), "{}\n{}".format(encoded, expiry).encode("utf-8"), hashlib.sha256).digest())
    return "SharedAccessSignature " + urllib.parse.urlencode(
        {"sr": uri, "sig": signature, "se": str(expiry), "skn": policy})


def follow_redirect(hostname, policy, key, ca_file):
    """Attach to the hub's /messages/events/$management and return the AMQPLinkRedirect."""
    def get_token():
        return AccessToken(hub_sas_token(hostname, policy, key, TOKEN_SECONDS), time.time() + TOKEN_SECONDS)

    source = "amqps://{}/messages/events/$management".format(hostname)
    auth = _CBSAuth(uri=source, audience=hostname, token_type=b"servicebus.windows.net:sastoken",
                    get_token=get_token, expires_in=TOKEN_SECONDS)
    # connection_verify: the CLI passes none, so `az iot hub monitor-events` needs the emulator CA in
    # its Python's certifi bundle; here it is given explicitly.
    client = ReceiveClient(hostname=hostname, source=source, auth=auth, network_trace=False, timeout=30000,
                           prefetch=1, connection_verify=ca_file)
    try:
        client.open()
        client.receive_message_batch(max_batch_size=1, timeout=5000)
    except AMQPLinkRedirect as redirect:
        return redirect
    finally:
        try:
            client.close()
        except Exception:  # noqa: B902 - closing after a redirect may itself fail; the CLI ignores it
            pass
    return None


def entity_from_address(address):
    """`amqps://host:port/{entity}/$management` -> `{entity}` (the CLI's string steps)."""
    path = address.replace("amqps://", "").split("/", 1)[1] if "/" in address else address
    if path.endswith("/$management"):
        path = path[: -len("/$management")]
    return path


async def main():
    fields = dict(p.split("=", 1) for p in harness.env("IOTHUB_CONNECTION_STRING").split(";"))
    hostname, policy, key = fields["HostName"], fields["SharedAccessKeyName"], fields["SharedAccessKey"]

    device, device_id = await harness.provision_and_connect(scenario, ProvisioningDeviceClient, IoTHubDeviceClient)
    scenario.step("send {} messages".format(MESSAGES))
    sent = {}
    for i in range(MESSAGES):
        msg = Message("redirect test {}".format(i))
        msg.message_id = str(uuid.uuid4())
        msg.custom_properties["conformanceRun"] = run_id
        await device.send_message(msg)
        sent[msg.message_id] = i
    await device.shutdown()
    stored = await harness.wait_for_telemetry(device_id, set(sent))
    expect_equal("messages stored by the emulator (GET /telemetry)", len(stored), MESSAGES)

    scenario.step("attach to amqps://{}/messages/events/$management: expect amqp:link:redirect".format(hostname))
    redirect = await in_thread(follow_redirect, hostname, policy, key, harness.eventhub_ca())
    check(redirect is not None, "the hub did not redirect the receiver (no AMQPLinkRedirect)")
    scenario.info("redirect: condition={!r} hostname={!r} network_host={!r} port={!r} address={!r} info={!r}".format(
        redirect.condition, redirect.hostname, redirect.network_host, redirect.port, redirect.address, redirect.info))
    condition = getattr(redirect.condition, "value", redirect.condition)  # pyamqp's ErrorCondition enum
    expect_equal("redirect condition", harness.text(condition), "amqp:link:redirect")
    expect_equal("redirect port", redirect.port, 5671)
    check(redirect.hostname and redirect.address, "redirect info lacks hostname or address: {!r}".format(redirect.info))
    check(":5671/" in redirect.address and redirect.address.endswith("/$management"),
          "redirect address {!r} is not amqps://host:5671/<entity>/$management".format(redirect.address))
    entity = entity_from_address(redirect.address)

    scenario.step("the derived endpoint matches the published Event Hubs-compatible connection string")
    published = dict(p.split("=", 1) for p in (await harness.eventhub_connection_string(scenario)).split(";") if p)
    expect_equal("EntityPath", entity, published.get("EntityPath"))
    expect_equal("endpoint host", redirect.hostname, urllib.parse.urlsplit(published.get("Endpoint", "")).hostname)

    scenario.step("EventHubConsumerClient on Endpoint=sb://{}/ EntityPath={}: receive from '-1'".format(
        redirect.hostname, entity))
    connection_string = "Endpoint=sb://{}/;SharedAccessKeyName={};SharedAccessKey={};EntityPath={}".format(
        redirect.hostname, policy, key, entity)
    client = EventHubConsumerClient.from_connection_string(connection_string, consumer_group="$Default",
                                                           connection_verify=harness.eventhub_ca())

    def mine(events):
        return [e for _, e in events if harness.decoded_map(e.properties).get("conformanceRun") == run_id]

    events, errors = await in_thread(
        harness.receive_events, client, lambda evs: len(mine(evs)) >= MESSAGES, RECEIVE_BOUND, batch=True,
        starting_position="-1")
    got = mine(events)
    got_partitions = {p for p, e in events if any(e is g for g in got)}
    check(len(got) == MESSAGES, "{} of {} events arrived within {:.0f} s (errors: {})".format(
        len(got), MESSAGES, RECEIVE_BOUND, errors))
    for event in got:
        system = harness.decoded_map(event.system_properties)
        mid = system.get("message-id")
        check(mid in sent, "event with unknown message-id {!r}".format(mid))
        expect_equal("event {} iothub-connection-device-id".format(mid), system.get("iothub-connection-device-id"),
                     device_id)
        expect_equal("event {} body".format(mid), event.body_as_str(), "redirect test {}".format(sent[mid]))
    scenario.info("{} events received through the redirected endpoint".format(len(got)))
    expect_equal("partitions of the device's events", len(got_partitions), 1)
    await harness.expect_events_recorded(scenario, got_partitions.pop(), [e.sequence_number for e in got])


if __name__ == "__main__":
    scenario.run(main)
