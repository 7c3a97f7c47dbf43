// Scenario c2d_amqp, Node: cloud-to-device messages and delivery feedback with the hub service
// SDK over AMQP.
//
// azure-iothub's messaging Client, as its send_c2d_message / receive_file_notifications samples
// use it: Client.fromConnectionString(<iothubowner>) (transport Amqp: TLS on 5671, plain AMQP
// header, CBS put-token), open(), getFeedbackReceiver() (a receiver on
// /messages/serviceBound/feedback) and send(deviceId, message) with message.ack = 'full'.
//
// The device is a SAS device the service creates over HTTPS (Registry.create); it receives with
// azure-iot-device-http (Client.fromConnectionString(cs, Http), polling every second), because
// only the HTTP device transport can reject a message (MQTT can only complete). It completes the
// first message and rejects the second: the feedback receiver gets a record with statusCode
// 'Success' for the first original message id and 'Rejected' for the second, both with the device
// id. Both messages arrive with their data, uuid message id, correlation id and application
// properties (one value with '/ & = %' and spaces). Then a third message is sent with the AmqpWs
// transport (AMQP over WebSocket on 443, /$iothub/websocket, subprotocol AMQPWSB10) and
// arrives too. A send refused once with a 429 (a hub.c2d.send fault, POST /faults) is retried by
// the SDK itself and arrives. Sending to a device that does not exist fails with
// DeviceNotFoundError.
'use strict';

const crypto = require('crypto');
const { Client: ServiceClient, Registry, AmqpWs } = require('azure-iothub');
const { Client: DeviceClient, Message } = require('azure-iot-device');
const { Http } = require('azure-iot-device-http');

const h = require('./harness');

const runId = crypto.randomUUID();
const UNIT = 'm/s (avg & max=10%) a/b';
const RECEIVE_BOUND_MS = 15000;
const FEEDBACK_BOUND_MS = 25000;
// The service client's retry policy waits 10 s or more after a ThrottlingError.
const THROTTLED_BOUND_MS = 45000;

// azure-iot-device-http names application properties after their header, `iothub-app-<name>`.
function propsOf(msg) {
  const out = {};
  for (let i = 0; i < msg.properties.count(); i++) {
    const item = msg.properties.getItem(i);
    out[item.key.replace(/^iothub-app-/, '')] = item.value;
  }
  return out;
}

// Azure's documented feedback record (spec/amqp.md §3.3; the Node SDK hands the body over
// unparsed): {originalMessageId, enqueuedTimeUtc, statusCode: "Success" | "Rejected" | …,
// description, deviceId, deviceGenerationId}, read as a backend would, by those exact keys.
function feedbackRecord(raw) {
  for (const key of ['originalMessageId', 'enqueuedTimeUtc', 'statusCode', 'description', 'deviceId', 'deviceGenerationId']) {
    h.check(raw && key in raw, `feedback record without '${key}': ${JSON.stringify(raw)}`);
  }
  return raw;
}

function c2dMessage(body, tag, settle, ack) {
  const msg = new Message(body);
  msg.messageId = crypto.randomUUID(); // UUID-shaped: the SDK sends it as an AMQP uuid
  msg.correlationId = `cid-${tag}-${runId}`;
  msg.properties.add('run', runId); // lower-case: HTTP delivers property names as lower-case headers
  msg.properties.add('unit', UNIT);
  msg.properties.add('settle', settle);
  if (ack) msg.ack = ack;
  return msg;
}

h.run(
  'c2d_amqp',
  async (s) => {
    const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
    const deviceId = h.env('C2D_DEVICE_ID');
    const hubHost = h.env('EXPECTED_ASSIGNED_HUB');

    s.step('service Registry.create (SAS device, over HTTPS)');
    const key = h.newKey();
    await Registry.fromConnectionString(serviceCs).create({
      deviceId,
      status: 'enabled',
      authentication: { symmetricKey: { primaryKey: key, secondaryKey: h.newKey() } },
    });
    const record = await h.deviceRecord(deviceId);
    h.expectEqual(`GET /devices/${deviceId} status`, record.status, 200);

    s.step("device Client.fromConnectionString(cs, Http).open(), on('message') polling every second");
    const device = DeviceClient.fromConnectionString(`HostName=${hubHost};DeviceId=${deviceId};SharedAccessKey=${key}`, Http);
    await device.open();
    await device.setOptions({ http: { receivePolicy: { interval: 1 } } });
    const received = new Map();
    const settleErrors = [];
    device.on('message', (msg) => {
      const rec = { mid: msg.messageId, cid: msg.correlationId, data: msg.data.toString('utf8'), props: propsOf(msg) };
      console.log('device received:', JSON.stringify(rec));
      received.set(msg.messageId, rec);
      const how = rec.props.settle === 'reject' ? 'reject' : 'complete';
      device[how](msg, (err) => {
        if (err) settleErrors.push(`${how} ${msg.messageId}: ${h.describeError(err)}`);
      });
    });
    device.on('error', (err) => settleErrors.push('device error: ' + h.describeError(err)));

    const offset = h.logOffset();
    s.step('service Client.fromConnectionString(cs) (Amqp).open()');
    const service = ServiceClient.fromConnectionString(serviceCs);
    await service.open();

    s.step('service getFeedbackReceiver()');
    const { records: feedback, errors: feedbackErrors } = await h.collectFeedback(service, feedbackRecord);

    s.step("service send() x2 with ack 'full' (the device completes one, rejects the other)");
    const toComplete = c2dMessage('complete me ' + runId, 'complete', 'complete', 'full');
    const toReject = c2dMessage('reject me ' + runId, 'reject', 'reject', 'full');
    await service.send(deviceId, toComplete);
    await service.send(deviceId, toReject);

    s.step('the device receives both intact');
    await h.waitUntil(() => received.has(toComplete.messageId) && received.has(toReject.messageId), RECEIVE_BOUND_MS,
      `device received ${JSON.stringify([...received.keys()])}`);
    for (const [msg, body] of [[toComplete, 'complete me ' + runId], [toReject, 'reject me ' + runId]]) {
      const got = received.get(msg.messageId);
      h.expectEqual(`message ${msg.messageId} data`, got.data, body);
      h.expectEqual(`message ${msg.messageId} correlationId`, got.cid, msg.correlationId);
      h.expectEqual(`message ${msg.messageId} property run`, got.props.run, runId);
      h.expectEqual(`message ${msg.messageId} property unit`, got.props.unit, UNIT);
    }

    s.step('feedback: Success for the completed message, Rejected for the rejected one');
    await h.waitUntil(() => feedback.has(toComplete.messageId) && feedback.has(toReject.messageId), FEEDBACK_BOUND_MS,
      `feedback records for ${toComplete.messageId} and ${toReject.messageId} (got ${JSON.stringify([...feedback.values()])}; errors ${JSON.stringify(feedbackErrors)})`);
    h.check(settleErrors.length === 0, `settlement errors: ${JSON.stringify(settleErrors)}`);
    const ok = feedback.get(toComplete.messageId);
    const rejected = feedback.get(toReject.messageId);
    h.expectEqual('feedback statusCode of the completed message', ok.statusCode, 'Success');
    h.expectEqual('feedback statusCode of the rejected message', rejected.statusCode, 'Rejected');
    h.expectEqual('feedback deviceId', ok.deviceId, deviceId);
    h.expectEqual('feedback deviceId (rejected)', rejected.deviceId, deviceId);
    h.check(feedbackErrors.length === 0, `feedback receiver errors: ${JSON.stringify(feedbackErrors)}`);

    s.step("send() throttled once (POST /faults: hub.c2d.send, 429 with retry-after 1): the SDK's retry policy sends it again and it arrives");
    const faultId = await h.installFault({
      operation: 'hub.c2d.send', deviceId, action: { refuse: { status: 429, retryAfter: 1 } }, count: 1,
    });
    const throttled = c2dMessage('throttled once ' + runId, 'throttled', 'complete');
    const sendStarted = Date.now();
    await service.send(deviceId, throttled);
    s.info(`send() resolved after ${Date.now() - sendStarted} ms`);
    await h.waitUntil(() => received.has(throttled.messageId), THROTTLED_BOUND_MS, 'the device received the throttled message');
    h.expectEqual('throttled message data', received.get(throttled.messageId).data, 'throttled once ' + runId);
    h.expectEqual('hub.c2d.send rule hits', (await h.faultStatus(faultId)).hits, 1);
    h.expectEqual('DELETE /faults/{id}', await h.removeFault(faultId), 204);

    s.step('send() to a device that does not exist fails with DeviceNotFoundError');
    let missingError = null;
    try {
      await service.send(deviceId + '-missing', c2dMessage('nobody', 'missing', 'complete'));
    } catch (err) {
      missingError = err;
    }
    h.check(missingError !== null, 'send() to an unknown device succeeded');
    s.info(`refused: ${h.describeError(missingError)}`);
    h.check(/DeviceNotFound/.test(missingError.name || '') || /DeviceNotFound|not.?found/i.test(h.describeError(missingError)),
      `expected DeviceNotFoundError, got ${h.describeError(missingError)}`);
    await service.close();

    s.step('service Client.fromConnectionString(cs, AmqpWs): open() and send() over WebSocket');
    const wsService = ServiceClient.fromConnectionString(serviceCs, AmqpWs);
    await wsService.open();
    const overWs = c2dMessage('over websocket ' + runId, 'ws', 'complete');
    await wsService.send(deviceId, overWs);
    await h.waitUntil(() => received.has(overWs.messageId), RECEIVE_BOUND_MS, 'the device received the AmqpWs message');
    h.expectEqual('AmqpWs message data', received.get(overWs.messageId).data, 'over websocket ' + runId);
    h.expectEqual('AmqpWs message correlationId', received.get(overWs.messageId).cid, overWs.correlationId);
    await wsService.close();
    await device.close();

    s.step('emulator log: every message was queued from an AMQP link, one connection came over WebSocket');
    h.expectC2dQueuedOverAmqp(s, offset, deviceId, [toComplete.messageId, toReject.messageId, overWs.messageId]);
    h.expectAmqpWebsocketUpgrades(s, offset);
  },
  { timeoutSeconds: 140 }
);
