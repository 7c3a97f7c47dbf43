// Scenario eventhub_redirect, Node: from the IoT Hub connection string to the Event Hubs-compatible
// endpoint by following the hub's amqp:link:redirect, as @azure/event-hubs' sample
// iothubConnectionString.ts does.
//
// The sample's steps (written here, not copied): a rhea-promise Connection to the hub host on 5671
// with SASL PLAIN, user `{policy}@sas.root.{hubName}` and as password a SAS token for
// `{HostName}/messages/events` signed with the policy key; a receiver on
// `amqps://{HostName}/messages/events/$management`; the hub detaches it with amqp:link:redirect,
// whose info has `hostname` and an `address` matching /:\d+\/(.*)\/\$management/ (the Event Hub
// name); then EventHubConsumerClient with
// `Endpoint=sb://{hostname}/;EntityPath={name};SharedAccessKeyName=…;SharedAccessKey=…` reads from
// earliestEventPosition.
//
// Asserted: the redirect arrives with that info; hostname and name equal the published
// connection string's; the consumer receives three messages the Node quickstart device sent,
// with iothub-connection-device-id; GET /telemetry holds them too.
'use strict';

const crypto = require('crypto');
const { Connection, ReceiverEvents, parseConnectionString } = require('rhea-promise');
const { EventHubConsumerClient, earliestEventPosition } = require('@azure/event-hubs');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');

const h = require('./harness');

const runId = crypto.randomUUID();
const MESSAGES = 3;
const REDIRECT_BOUND_MS = 15000;
const RECEIVE_BOUND_MS = 20000;

/** A SAS token as the IoT Hub security documentation builds it (URL-encoded resource, 5 minutes). */
function sasToken(resource, key, policy) {
  const sr = encodeURIComponent(resource);
  const se = Math.ceil(Date.now() / 1000 + 300);
  const sig = crypto.createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${se}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}&skn=${policy}`;
}

/** Attaches to /messages/events/$management and resolves with the redirect error (or rejects). */
async function redirectError(hostName, policy, key) {
  const connection = new Connection({
    transport: 'tls',
    host: hostName,
    hostname: hostName,
    port: 5671,
    username: `${policy}@sas.root.${hostName.split('.')[0]}`,
    password: sasToken(`${hostName}/messages/events`, key, policy),
    reconnect: false,
  });
  await connection.open();
  try {
    const redirected = new Promise((resolve) => {
      connection.on('receiver_error', (context) => resolve(context.receiver && context.receiver.error));
    });
    let receiver;
    try {
      receiver = await connection.createReceiver({ source: { address: `amqps://${hostName}/messages/events/$management` } });
    } catch (err) {
      // A hub that refuses the attach outright reports the redirect here instead.
      return err;
    }
    const fromReceiver = new Promise((resolve) => {
      receiver.on(ReceiverEvents.receiverError, (context) => resolve(context.receiver && context.receiver.error));
    });
    return await h.withTimeout(Promise.race([fromReceiver, redirected]), REDIRECT_BOUND_MS, 'redirect after the attach');
  } finally {
    await connection.close().catch(() => {});
  }
}

h.run(
  'eventhub_redirect',
  async (s) => {
    const { HostName, SharedAccessKeyName, SharedAccessKey } = parseConnectionString(h.env('IOTHUB_CONNECTION_STRING'));
    const { client, deviceId } = await h.provisionAndConnect(s, {
      Client, Mqtt, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
    });

    s.step(`send ${MESSAGES} messages`);
    const sent = new Map();
    for (let i = 0; i < MESSAGES; i++) {
      const msg = new Message(`redirect test ${i}`);
      msg.messageId = crypto.randomUUID();
      msg.properties.add('conformanceRun', runId);
      await client.sendEvent(msg);
      sent.set(msg.messageId, i);
    }
    await client.close();
    const stored = await h.waitForTelemetry(deviceId, new Set(sent.keys()));
    h.expectEqual('messages stored by the emulator (GET /telemetry)', stored.size, MESSAGES);

    s.step(`SASL PLAIN ${SharedAccessKeyName}@sas.root.…, receiver on amqps://${HostName}/messages/events/$management: expect amqp:link:redirect`);
    const error = await redirectError(HostName, SharedAccessKeyName, SharedAccessKey);
    console.log('redirect error:', JSON.stringify(error));
    h.check(error && error.condition === 'amqp:link:redirect', `expected amqp:link:redirect, got ${JSON.stringify(error)} (${h.describeError(error)})`);
    const info = error.info || {};
    const match = /:\d+\/(.*)\/\$management/i.exec(info.address || '');
    h.check(info.hostname && match, `redirect info lacks hostname or an address like amqps://host:5671/<name>/$management: ${JSON.stringify(info)}`);
    const eventHubName = match[1];

    s.step('the derived endpoint matches the published Event Hubs-compatible connection string');
    const published = parseConnectionString(await h.eventHubConnectionString(s));
    h.expectEqual('EntityPath', eventHubName, published.EntityPath);
    h.expectEqual('endpoint host', info.hostname, new URL(published.Endpoint).hostname);

    s.step(`EventHubConsumerClient on Endpoint=sb://${info.hostname}/ EntityPath=${eventHubName}: subscribe from earliest`);
    const consumer = new EventHubConsumerClient(
      '$Default',
      `Endpoint=sb://${info.hostname}/;EntityPath=${eventHubName};SharedAccessKeyName=${SharedAccessKeyName};SharedAccessKey=${SharedAccessKey}`
    );
    const mine = (evs) => evs.filter(({ event }) => event.properties && event.properties.conformanceRun === runId);
    const { events, errors } = await h.receiveEvents(
      consumer,
      { startPosition: earliestEventPosition, maxBatchSize: 50, maxWaitTimeInSeconds: 1 },
      (evs) => mine(evs).length >= MESSAGES,
      RECEIVE_BOUND_MS
    );
    await consumer.close();
    const got = mine(events);
    h.check(got.length === MESSAGES, `${got.length} of ${MESSAGES} events arrived within ${RECEIVE_BOUND_MS / 1000} s (errors: ${JSON.stringify(errors)})`);
    for (const { event } of got) {
      h.check(sent.has(event.messageId), `event with unknown messageId ${event.messageId}`);
      h.expectEqual(`event ${event.messageId} iothub-connection-device-id`, (event.systemProperties || {})['iothub-connection-device-id'], deviceId);
      h.expectEqual(`event ${event.messageId} body`, h.eventBodyText(event.body), `redirect test ${sent.get(event.messageId)}`);
    }
    s.info(`${got.length} events received through the redirected endpoint`);
    const partitions = new Set(got.map(({ partitionId }) => partitionId));
    h.expectEqual("partitions of the device's events", partitions.size, 1);
    await h.expectEventsRecorded(s, [...partitions][0], got.map(({ event }) => event.sequenceNumber));
  },
  { timeoutSeconds: 75 }
);
