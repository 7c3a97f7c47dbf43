"""Scenario twin_change_events, Python: a reported-property update reaches a backend as a
`twinChangeEvents` event on the built-in Event Hubs-compatible endpoint.

IoT Hub routes twin change notifications to the built-in endpoint when a route with source
`TwinChangeEvents` asks for it; the quickstart hub has that route (as the Azure IoT SDKs' own
end-to-end test hubs do: their twin tests wait for these events). The service SDK creates a SAS
device over HTTPS and the device (`azure-iot-device`, MQTT) connects. A backend listens first:
`EventHubConsumerClient.from_connection_string(<published Event Hubs-compatible connection
string>, consumer_group="$Default")` with `receive(on_event, starting_position="@latest")` — the
per-event API and the "only new events" position. Then the device calls
`patch_twin_reported_properties` with a value unique to the run (again every 2 s until an event
shows up, since a consumer gives no signal once its partitions are attached).

Asserted: an event with system property `iothub-message-source` = `twinChangeEvents` for the
device (`iothub-connection-device-id` or application property `deviceId`) whose JSON body carries
the reported patch (`properties.reported`); the service's `get_twin` (the emulator's record) shows
the same reported value.
"""

import asyncio
import json
import threading
import uuid

from azure.eventhub import EventHubConsumerClient
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.hub import IoTHubRegistryManager

import harness
from harness import check, expect_equal, in_thread

scenario = harness.Scenario("twin_change_events", timeout=70.0)
run_id = str(uuid.uuid4())
ATTEMPTS = 10
ATTEMPT_WAIT = 2.0


def twin_event_of(device_id):
    def matches(event):
        system = harness.decoded_map(event.system_properties)
        props = harness.decoded_map(event.properties)
        return (system.get("iothub-message-source") == "twinChangeEvents"
                and device_id in (system.get("iothub-connection-device-id"), props.get("deviceId"))
                and run_id in event.body_as_str())
    return matches


async def main():
    cs = harness.env("IOTHUB_CONNECTION_STRING")
    device_id = harness.env("TWIN_EVENTS_DEVICE_ID")
    registry = await in_thread(IoTHubRegistryManager.from_connection_string, cs)
    device_cs = await harness.create_sas_device(scenario, registry, device_id)

    scenario.step("device connects (MQTT)")
    device = IoTHubDeviceClient.create_from_connection_string(device_cs)
    await device.connect()

    scenario.step("EventHubConsumerClient: receive(on_event, starting_position='@latest')")
    client = EventHubConsumerClient.from_connection_string(
        await harness.eventhub_connection_string(scenario), consumer_group="$Default",
        connection_verify=harness.eventhub_ca())
    matches = twin_event_of(device_id)
    found = threading.Event()
    receiving = asyncio.ensure_future(in_thread(
        harness.receive_events, client, lambda evs: found.is_set() or any(matches(e) for _, e in evs),
        ATTEMPTS * ATTEMPT_WAIT + 5, starting_position="@latest"))

    scenario.step("device patches reported properties until the event arrives")
    patch = {"firmware": run_id, "settings": {"interval": 30}}
    for attempt in range(1, ATTEMPTS + 1):
        await device.patch_twin_reported_properties(dict(patch, attempt=attempt))
        done, _ = await asyncio.wait({receiving}, timeout=ATTEMPT_WAIT)
        if done:
            break
    found.set()
    events, errors = await receiving
    await device.shutdown()
    hits = [e for _, e in events if matches(e)]
    sources = sorted({str(harness.decoded_map(e.system_properties).get("iothub-message-source")) for _, e in events})
    check(hits, "no twinChangeEvents event for {} after {} reported patches ({} events seen, sources {}; "
                "errors {})".format(device_id, attempt, len(events), sources, errors))
    scenario.info("event after {} patch(es)".format(attempt))
    event = hits[0]
    system = harness.decoded_map(event.system_properties)
    props = harness.decoded_map(event.properties)
    print("twin change event: system={!r} properties={!r} body={!r}".format(system, props, event.body_as_str()))
    try:
        body = json.loads(event.body_as_str())
    except ValueError:
        raise harness.ScenarioFailure("the event body is not JSON: {!r}".format(event.body_as_str()))
    reported = ((body.get("properties") or {}).get("reported") or {}) if isinstance(body, dict) else {}
    expect_equal("event body properties.reported.firmware", reported.get("firmware"), run_id)
    expect_equal("event body properties.reported.settings", reported.get("settings"), {"interval": 30})

    partition = next(p for p, e in events if e is event)
    await harness.expect_events_recorded(scenario, partition, [event.sequence_number])

    scenario.step("the service sees the reported value (get_twin over HTTPS)")
    twin = await in_thread(registry.get_twin, device_id)
    expect_equal("get_twin reported firmware", (twin.properties.reported or {}).get("firmware"), run_id)


if __name__ == "__main__":
    scenario.run(main)
