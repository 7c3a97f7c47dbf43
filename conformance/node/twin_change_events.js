// Scenario twin_change_events, Node: a reported-property update reaches a backend as a
// twinChangeEvents event on the built-in Event Hubs-compatible endpoint.
//
// IoT Hub routes twin change notifications to the built-in endpoint when a route with source
// TwinChangeEvents asks for it; the quickstart hub has that route (as the Azure IoT SDKs' own
// end-to-end test hubs do). The service creates a SAS device over HTTPS (Registry.create); the
// device (azure-iot-device, MQTT) gets its twin and calls twin.properties.reported.update(patch)
// with a value unique to the run; a backend subscribes with @azure/event-hubs
// (EventHubConsumerClient('$Default', <published connection string>), earliestEventPosition).
//
// Asserted: an event with systemProperties 'iothub-message-source' = 'twinChangeEvents' for the
// device whose JSON body carries the reported patch (properties.reported); the service's
// Registry.getTwin (the emulator's record) shows the same value.
'use strict';

const crypto = require('crypto');
const { EventHubConsumerClient, earliestEventPosition } = require('@azure/event-hubs');
const { Registry } = require('azure-iothub');
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const h = require('./harness');

const runId = crypto.randomUUID();
const RECEIVE_BOUND_MS = 20000;

function bodyObject(body) {
  if (Buffer.isBuffer(body) || typeof body === 'string') {
    try {
      return JSON.parse(body.toString());
    } catch (_) {
      return null;
    }
  }
  return body;
}

h.run(
  'twin_change_events',
  async (s) => {
    const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
    const deviceId = h.env('TWIN_EVENTS_DEVICE_ID');
    const hubHost = h.env('EXPECTED_ASSIGNED_HUB');

    s.step('service Registry.create (SAS device, over HTTPS)');
    const registry = Registry.fromConnectionString(serviceCs);
    const key = crypto.randomBytes(32).toString('base64');
    await registry.create({
      deviceId,
      status: 'enabled',
      authentication: { symmetricKey: { primaryKey: key, secondaryKey: crypto.randomBytes(32).toString('base64') } },
    });

    s.step('device (MQTT): getTwin(), twin.properties.reported.update(patch)');
    const device = Client.fromConnectionString(`HostName=${hubHost};DeviceId=${deviceId};SharedAccessKey=${key}`, Mqtt);
    await device.open();
    const twin = await device.getTwin();
    await new Promise((resolve, reject) =>
      twin.properties.reported.update({ firmware: runId, settings: { interval: 30 } }, (err) => (err ? reject(err) : resolve()))
    );
    await device.close();

    s.step('service Registry.getTwin() sees the reported value');
    const { responseBody: serviceTwin } = await registry.getTwin(deviceId);
    h.expectEqual('getTwin reported firmware', serviceTwin.properties.reported.firmware, runId);

    s.step('EventHubConsumerClient.subscribe from earliestEventPosition until the twinChangeEvents event');
    const consumer = new EventHubConsumerClient('$Default', await h.eventHubConnectionString(s));
    const matches = ({ event }) => {
      const sys = event.systemProperties || {};
      const props = event.properties || {};
      return (
        sys['iothub-message-source'] === 'twinChangeEvents' &&
        (sys['iothub-connection-device-id'] === deviceId || props.deviceId === deviceId) &&
        JSON.stringify(bodyObject(event.body) || '').includes(runId)
      );
    };
    const { events, errors } = await h.receiveEvents(
      consumer,
      { startPosition: earliestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 1 },
      (evs) => evs.some(matches),
      RECEIVE_BOUND_MS
    );
    await consumer.close();
    const found = events.filter(matches);
    const sources = [...new Set(events.map(({ event }) => String((event.systemProperties || {})['iothub-message-source'])))];
    h.check(
      found.length > 0,
      `no twinChangeEvents event for ${deviceId} within ${RECEIVE_BOUND_MS / 1000} s (${events.length} events seen, sources ${JSON.stringify(sources)}; errors ${JSON.stringify(errors)})`
    );
    const { event, partitionId } = found[0];
    await h.expectEventsRecorded(s, partitionId, [event.sequenceNumber]);
    console.log('twin change event:', JSON.stringify({ sys: event.systemProperties, properties: event.properties, body: h.eventBodyText(event.body) }));
    const body = bodyObject(event.body);
    const reported = (body && body.properties && body.properties.reported) || {};
    h.expectEqual('event body properties.reported.firmware', reported.firmware, runId);
    h.expectDeepEqual('event body properties.reported.settings', reported.settings, { interval: 30 });
  },
  { timeoutSeconds: 70 }
);
