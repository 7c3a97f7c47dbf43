// Scenario eventhub_consumer, Node: a backend reads the devices' telemetry from the hub's built-in
// Event Hubs-compatible endpoint with @azure/event-hubs.
//
// The Node quickstart device (DPS symmetric-key registration, then azure-iot-device over MQTT)
// sends 10 messages with uuid message ids and two application properties. A backend reads them as
// the Event Hubs samples do: new EventHubConsumerClient('$Default', <Event Hubs-compatible
// connection string the emulator publishes>), subscribe({processEvents, processError},
// {startPosition: earliestEventPosition}) — once over AMQP (TLS, port from the connection string's
// Endpoint, default 5671) and once over AMQP over WebSocket (webSocketOptions with the `ws`
// WebSocket constructor: 443, /$servicebus/websocket, subprotocol AMQPWSB10).
//
// Asserted for each transport: all 10 events arrive, each once, with the body and application
// properties as sent, systemProperties 'iothub-connection-device-id' = the device, messageId =
// the SDK's message id, a sequence number, an offset and the enqueued time; all from one
// partition that getPartitionIds() lists. The emulator's record (GET /telemetry) holds them too.
'use strict';

const crypto = require('crypto');
const WebSocket = require('ws');
const { EventHubConsumerClient, earliestEventPosition } = require('@azure/event-hubs');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');

const h = require('./harness');

const runId = crypto.randomUUID();
const WIND_UNIT = 'm/s (avg & max=10%)';
const MESSAGES = 10;
const RECEIVE_BOUND_MS = 20000;

h.run(
  'eventhub_consumer',
  async (s) => {
    const { client, deviceId } = await h.provisionAndConnect(s, {
      Client, Mqtt, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
    });

    s.step(`send ${MESSAGES} messages`);
    const sent = new Map();
    await Promise.all(
      Array.from({ length: MESSAGES }, (_, k) => k + 1).map(async (i) => {
        const msg = new Message(`test wind speed ${i}`);
        msg.messageId = crypto.randomUUID();
        msg.properties.add('conformanceRun', runId);
        msg.properties.add('windUnit', WIND_UNIT);
        await client.sendEvent(msg);
        sent.set(msg.messageId, i);
      })
    );
    await client.close();

    s.step('the emulator stored them (GET /telemetry)');
    const stored = await h.waitForTelemetry(deviceId, new Set(sent.keys()));
    h.expectEqual('messages stored by the emulator', stored.size, MESSAGES);

    const connectionString = await h.eventHubConnectionString(s);
    const ours = (events) => events.filter(({ event }) => event.properties && event.properties.conformanceRun === runId);

    for (const [label, options] of [
      ['AMQP', {}],
      ['AMQP over WebSocket', { webSocketOptions: { webSocket: WebSocket } }],
    ]) {
      s.step(`new EventHubConsumerClient('$Default', cs${label === 'AMQP' ? '' : ', { webSocketOptions }'}): getPartitionIds() over ${label}`);
      const consumer = new EventHubConsumerClient('$Default', connectionString, options);
      const partitionIds = await consumer.getPartitionIds();
      s.info(`partition ids: ${JSON.stringify(partitionIds)}`);
      h.check(Array.isArray(partitionIds) && partitionIds.length > 0, `getPartitionIds() returned ${JSON.stringify(partitionIds)}`);

      s.step(`subscribe from earliestEventPosition over ${label}`);
      const { events, errors } = await h.receiveEvents(
        consumer,
        { startPosition: earliestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 1 },
        (evs) => ours(evs).length >= MESSAGES,
        RECEIVE_BOUND_MS
      );
      await consumer.close();
      const mine = ours(events);
      s.info(`${events.length} events received in all, ${mine.length} of this run; errors: ${JSON.stringify(errors)}`);
      h.check(mine.length >= MESSAGES, `${mine.length} of ${MESSAGES} events arrived within ${RECEIVE_BOUND_MS / 1000} s over ${label} (errors: ${JSON.stringify(errors)})`);

      const seen = new Set();
      const partitions = new Set();
      for (const { partitionId, event } of mine) {
        const sys = event.systemProperties || {};
        const mid = event.messageId;
        console.log('event:', JSON.stringify({ partitionId, messageId: mid, sys, properties: event.properties, body: h.eventBodyText(event.body) }));
        h.check(sent.has(mid), `event with unknown messageId ${JSON.stringify(mid)}`);
        h.check(!seen.has(mid), `event ${mid} delivered twice`);
        seen.add(mid);
        partitions.add(partitionId);
        h.expectEqual(`event ${mid} body`, h.eventBodyText(event.body), `test wind speed ${sent.get(mid)}`);
        h.expectEqual(`event ${mid} iothub-connection-device-id`, sys['iothub-connection-device-id'], deviceId);
        h.expectDeepEqual(`event ${mid} properties`, event.properties, { conformanceRun: runId, windUnit: WIND_UNIT });
        h.check(typeof event.sequenceNumber === 'number', `event ${mid}: sequenceNumber ${event.sequenceNumber}`);
        h.check(event.offset !== undefined && event.offset !== null && String(event.offset) !== '', `event ${mid}: offset ${event.offset}`);
        h.check(event.enqueuedTimeUtc instanceof Date && !isNaN(event.enqueuedTimeUtc), `event ${mid}: enqueuedTimeUtc ${event.enqueuedTimeUtc}`);
      }
      h.expectEqual('distinct message ids received', seen.size, MESSAGES);
      h.expectEqual("partitions the device's events came from", partitions.size, 1);
      const [partition] = partitions;
      h.check(partitionIds.includes(partition), `partition ${partition} not in getPartitionIds() ${JSON.stringify(partitionIds)}`);
      s.info(`all ${MESSAGES} events over ${label} from partition ${partition}`);
      await h.expectEventsRecorded(s, partition, mine.map(({ event }) => event.sequenceNumber));
    }
  },
  { timeoutSeconds: 80 }
);
