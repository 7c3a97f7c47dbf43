// Scenario http_device, Node: the device HTTPS API with azure-iot-device-http's Http transport.
//
// The device registers with DPS over HTTPS (azure-iot-provisioning-device-http) and uses
// Client.fromConnectionString(…, Http): no MQTT session at all. It
//   * sends one message with sendEvent (message id, correlation id, content type and encoding, two
//     application properties as IoTHub-* / iothub-app-* headers, stored under lower-case names,
//     see docs/differences.md) and three with sendEventBatch
//     (one JSON body of application/vnd.microsoft.iothub.json; the SDK base64-encodes each body
//     and sends no "base64Encoded" flag, like azure-iot-sdk-c): the emulator stores all four with
//     the bodies and properties the SDK was given;
//   * receives C2D by polling (setOptions({http: {receivePolicy: {interval: 1}}}): a GET every
//     second): three messages queued through the control port (POST /c2d) arrive with their ids,
//     correlation id and properties (the SDK names them after the header: iothub-app-<name>); one
//     is completed, one rejected, and one abandoned, which brings it back (the second delivery is
//     completed). Afterwards nothing more arrives for 3 s (the queue is empty).
// The emulator's log shows the device's HTTPS requests and no MQTT session for it.
'use strict';

const crypto = require('crypto');
const { Client, Message } = require('azure-iot-device');
const { Http } = require('azure-iot-device-http');
const ProvisioningTransport = require('azure-iot-provisioning-device-http').Http;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');

const h = require('./harness');

const runId = crypto.randomUUID();
const RECEIVE_BOUND_MS = 15000;
const QUIET_MS = 3000;
const UNIT = 'm/s (avg & max=10%) a/b';

function propsOf(msg) {
  const out = {};
  for (let i = 0; i < msg.properties.count(); i++) {
    const item = msg.properties.getItem(i);
    out[item.key] = item.value;
  }
  return out;
}

function settle(client, how, msg) {
  return new Promise((resolve, reject) => {
    client[how](msg, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

h.run('http_device', async (s) => {
  const offset = h.logOffset();
  const { client, deviceId } = await h.provisionAndConnect(s, {
    Client, Mqtt: Http, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
  });

  s.step('sendEvent (IoTHub-* and iothub-app-* headers)');
  const single = new Message(JSON.stringify({ temperature: 21.5, run: runId }));
  single.messageId = 'single-' + runId;
  single.correlationId = 'cid-' + runId;
  single.contentType = 'application/json';
  single.contentEncoding = 'utf-8';
  single.properties.add('conformanceRun', runId);
  single.properties.add('unit', UNIT);
  await client.sendEvent(single);

  s.step('sendEventBatch (3 messages)');
  const bodies = [JSON.stringify({ seq: 1, run: runId }), 'plain text 2 ' + runId, 'third ' + runId + ' \u00e9\u00e8'];
  const batch = bodies.map((body, i) => {
    const m = new Message(body);
    m.properties.add('conformanceRun', runId);
    m.properties.add('batchIndex', String(i));
    return m;
  });
  await client.sendEventBatch(batch);

  s.step('observe the messages in the emulator (GET /telemetry)');
  const found = await h.waitForTelemetry(deviceId, new Set([single.messageId]));
  h.check(found.size === 1, `message ${single.messageId} not stored`);
  const stored = found.get(single.messageId);
  // Header names are case-insensitive and arrive lower-cased, so the emulator stores the
  // application properties of a single HTTPS message under lower-case names
  // (docs/differences.md, "Device HTTPS telemetry properties"); batch entries keep their case.
  h.checkStoredMessage(stored, deviceId, single.data, { conformancerun: runId, unit: UNIT });
  h.expectEqual('correlation-id', stored.systemProperties['correlation-id'], 'cid-' + runId);
  h.expectEqual('content-type', stored.systemProperties['content-type'], 'application/json');
  h.expectEqual('content-encoding', stored.systemProperties['content-encoding'], 'utf-8');
  const all = await h.controlGet('/telemetry?deviceId=' + encodeURIComponent(deviceId));
  h.expectEqual('GET /telemetry status', all.status, 200);
  const batchStored = all.body.filter((m) => m.properties && m.properties.conformanceRun === runId && 'batchIndex' in m.properties);
  console.log('stored batch messages:', JSON.stringify(batchStored));
  h.expectEqual('batch messages stored', batchStored.length, bodies.length);
  bodies.forEach((body, i) => {
    const m = batchStored.find((x) => x.properties.batchIndex === String(i));
    h.check(m, `batch message ${i} not stored`);
    h.expectEqual(`batch message ${i} body`, m.body, body);
  });

  s.step('POST /c2d three messages (control port)');
  const ids = { complete: 'complete-' + runId, reject: 'reject-' + runId, abandon: 'abandon-' + runId };
  for (const [what, mid] of Object.entries(ids)) {
    const q = [['deviceId', deviceId], ['messageId', mid], ['correlationId', 'cid-' + what], ['prop.conformanceRun', runId], ['prop.unit', UNIT]];
    const r = await h.controlPost('/c2d?' + q.map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&'), 'c2d ' + what + ' ' + runId);
    h.expectEqual(`POST /c2d (${what}) status`, r.status, 201);
  }

  s.step("client.on('message') polling every second; complete, reject, abandon");
  await client.setOptions({ http: { receivePolicy: { interval: 1 } } });
  const deliveries = [];
  const settled = [];
  const errors = [];
  client.on('error', (err) => errors.push(h.describeError(err)));
  client.on('message', (msg) => {
    const record = { mid: msg.messageId, cid: msg.correlationId, data: msg.data.toString('utf8'), props: propsOf(msg), lockToken: msg.lockToken };
    console.log('received:', JSON.stringify(record));
    deliveries.push(record);
    let how = 'complete';
    if (msg.messageId === ids.reject) how = 'reject';
    if (msg.messageId === ids.abandon && deliveries.filter((d) => d.mid === ids.abandon).length === 1) how = 'abandon';
    settle(client, how, msg).then(
      (result) => settled.push({ mid: msg.messageId, how, result: result && result.constructor.name }),
      (err) => errors.push(`${how} ${msg.messageId}: ${h.describeError(err)}`)
    );
  });
  const started = Date.now();
  const done = () => settled.filter((x) => x.mid === ids.abandon).length === 2 && settled.length === 4;
  while (!done() && errors.length === 0 && Date.now() - started < RECEIVE_BOUND_MS) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  console.log('settled:', JSON.stringify(settled));
  h.check(errors.length === 0, `errors: ${errors.join('; ')}`);
  h.check(done(), `within ${RECEIVE_BOUND_MS / 1000} s expected 4 settlements (complete, reject, abandon, then complete of the redelivered one), got ${JSON.stringify(settled)}`);
  for (const [what, mid] of Object.entries(ids)) {
    const d = deliveries.find((x) => x.mid === mid);
    h.expectEqual(`${what} correlationId`, d.cid, 'cid-' + what);
    h.expectEqual(`${what} data`, d.data, 'c2d ' + what + ' ' + runId);
    h.expectDeepEqual(`${what} properties`, d.props, { 'iothub-app-conformancerun': runId, 'iothub-app-unit': UNIT });
  }
  const abandoned = deliveries.filter((x) => x.mid === ids.abandon);
  h.check(abandoned[0].lockToken !== abandoned[1].lockToken, 'the redelivered message kept its lock token');
  h.expectDeepEqual('settlements', settled.map((x) => `${x.how}:${x.result}`).sort(),
    ['abandon:MessageAbandoned', 'complete:MessageCompleted', 'complete:MessageCompleted', 'reject:MessageRejected']);

  s.step(`no further delivery within ${QUIET_MS / 1000} s`);
  await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
  h.expectEqual('deliveries', deliveries.length, 4);
  h.check(errors.length === 0, `errors: ${errors.join('; ')}`);

  s.step('close the client');
  await client.close();

  s.step('emulator log: HTTPS requests, no MQTT session');
  const lines = h.logLinesSince(offset, 'HTTPS request').filter((l) => l.includes('devices/' + deviceId + '/messages/'));
  const receives = lines.filter((l) => /method=GET/.test(l) && l.includes('/messages/devicebound'));
  h.check(lines.some((l) => /method=POST/.test(l) && l.includes('/messages/events')), `no HTTPS telemetry request logged for ${deviceId}`);
  h.check(receives.length >= 4, `only ${receives.length} HTTPS receive requests logged for ${deviceId}`);
  const { attempts } = h.countConnectAttempts(offset, deviceId);
  h.expectEqual(`MQTT CONNECTs from ${deviceId}`, attempts, 0);
  s.info(`${lines.length} HTTPS device requests logged (${receives.length} receives), no MQTT session`);
});
