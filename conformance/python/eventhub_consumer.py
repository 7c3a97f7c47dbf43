"""Scenario eventhub_consumer, Python: a backend reads the devices' telemetry from the hub's
built-in Event Hubs-compatible endpoint with azure-eventhub.

The quickstart device (DPS symmetric-key registration, then `IoTHubDeviceClient` over MQTT) sends
10 messages with uuid message ids and two custom properties. A backend then reads them the way
Azure documents it: `EventHubConsumerClient.from_connection_string(<Event Hubs-compatible
connection string the emulator publishes>, consumer_group="$Default", transport_type=…)` and
`receive_batch(on_event_batch, starting_position="-1")` (from the start of every partition), once
with `TransportType.Amqp` (TLS on 5671, SASL ANONYMOUS + CBS) and once with
`TransportType.AmqpOverWebsocket` (443, `/$servicebus/websocket`). azure-eventhub's own AMQP
stack (pyamqp) ignores SSL_CERT_FILE, so the emulator CA is passed as `connection_verify`.

Asserted for each transport: all 10 events arrive, each once, with the body and the custom
properties as sent, system property `iothub-connection-device-id` = the device,
`message-id` = the SDK's message id, `x-opt-sequence-number`, a string `x-opt-offset` and the
enqueued time; every event of the device comes from one partition, a partition that
`get_partition_ids()` lists. The emulator's own record (GET /telemetry) holds the same 10
message ids.
"""

import asyncio
import uuid

from azure.eventhub import EventHubConsumerClient, TransportType
from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient

import harness
from harness import check, expect_equal, in_thread

scenario = harness.Scenario("eventhub_consumer", timeout=80.0)
run_id = str(uuid.uuid4())
WIND_UNIT = "m/s (avg & max=10%)"
MESSAGES = 10
RECEIVE_BOUND = 20.0


def ours(events):
    return [(p, e) for p, e in events if harness.decoded_map(e.properties).get("conformanceRun") == run_id]


async def main():
    device, device_id = await harness.provision_and_connect(scenario, ProvisioningDeviceClient, IoTHubDeviceClient)

    scenario.step("send {} messages".format(MESSAGES))
    sent = {}

    async def send(i):
        msg = Message("test wind speed {}".format(i))
        msg.message_id = str(uuid.uuid4())
        msg.custom_properties["conformanceRun"] = run_id
        msg.custom_properties["windUnit"] = WIND_UNIT
        await device.send_message(msg)
        sent[msg.message_id] = i

    await asyncio.gather(*[send(i) for i in range(1, MESSAGES + 1)])
    await device.shutdown()

    scenario.step("the emulator stored them (GET /telemetry)")
    stored = await harness.wait_for_telemetry(device_id, set(sent))
    expect_equal("messages stored by the emulator", len(stored), MESSAGES)

    connection_string = await harness.eventhub_connection_string(scenario)

    for transport in (TransportType.Amqp, TransportType.AmqpOverWebsocket):
        scenario.step("EventHubConsumerClient.from_connection_string(…, consumer_group='$Default', "
                      "transport_type={}): get_partition_ids()".format(transport))
        client = EventHubConsumerClient.from_connection_string(
            connection_string, consumer_group="$Default", transport_type=transport,
            connection_verify=harness.eventhub_ca())
        partition_ids = await in_thread(client.get_partition_ids)
        scenario.info("partition ids: {}".format(partition_ids))
        check(partition_ids and all(isinstance(p, str) for p in partition_ids),
              "get_partition_ids() returned {!r}".format(partition_ids))

        # receive_batch: `receive` hands out one event per pass of its loop and a backlog from '-1'
        # trickles (0.6 s per event over AMQP, 3 s over WebSocket); twin_change_events uses it.
        scenario.step("receive_batch(on_event_batch, starting_position='-1') over {}".format(transport))
        events, errors = await in_thread(
            harness.receive_events, client, lambda evs: len(ours(evs)) >= MESSAGES, RECEIVE_BOUND, batch=True,
            starting_position="-1")
        mine = ours(events)
        scenario.info("{} events received in all, {} of this run; errors: {}".format(len(events), len(mine), errors))
        check(len(mine) >= MESSAGES, "{} of {} events arrived within {:.0f} s over {} (errors: {})".format(
            len(mine), MESSAGES, RECEIVE_BOUND, transport, errors))

        seen = {}
        partitions = set()
        for partition, event in mine:
            system = harness.decoded_map(event.system_properties)
            props = harness.decoded_map(event.properties)
            mid = system.get("message-id")
            print("event: partition={} system={!r} properties={!r} body={!r}".format(
                partition, system, props, event.body_as_str()))
            check(mid in sent, "event with unknown message-id {!r} (system properties {!r})".format(mid, system))
            check(mid not in seen, "event {} delivered twice".format(mid))
            seen[mid] = event
            partitions.add(partition)
            expect_equal("event {} body".format(mid), event.body_as_str(), "test wind speed {}".format(sent[mid]))
            expect_equal("event {} iothub-connection-device-id".format(mid),
                         system.get("iothub-connection-device-id"), device_id)
            expect_equal("event {} application properties".format(mid), props,
                         {"conformanceRun": run_id, "windUnit": WIND_UNIT})
            check(isinstance(event.sequence_number, int), "event {}: sequence number {!r}".format(
                mid, event.sequence_number))
            check(isinstance(event.offset, str) and event.offset, "event {}: offset {!r}".format(mid, event.offset))
            check(event.enqueued_time is not None, "event {}: no enqueued time".format(mid))
        expect_equal("message ids received", set(seen), set(sent))
        expect_equal("partitions the device's events came from", len(partitions), 1)
        check(partitions <= set(partition_ids), "partition {} not in get_partition_ids() {}".format(
            partitions, partition_ids))
        partition = partitions.pop()
        scenario.info("all {} events over {} from partition {}".format(MESSAGES, transport, partition))
        await harness.expect_events_recorded(scenario, partition, [e.sequence_number for e in seen.values()])


if __name__ == "__main__":
    scenario.run(main)
