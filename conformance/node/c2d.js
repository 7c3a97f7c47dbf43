// Scenario c2d, Node: cloud-to-device messages received with azure-iot-device over MQTT.
//
// The service SDK sends C2D over AMQP, which the emulator does not serve, so the messages are sent
// through the emulator's control port: POST /c2d?deviceId=&messageId=&correlationId=&prop.<k>=<v>
// (body = message). The device (DPS symmetric-key registration as in the quickstart) adds a
// client.on('message') listener that completes each message with client.complete(msg); every
// message must arrive with its data, message id, correlation id and application properties
// intact — one property value contains '/' (the SDK splits the topic on '/'), '&', '=', '%' and a
// space. A message sent before the listener is added is queued and delivered once subscribed.
// Then the device closes and 51 messages are sent to it: the first 50 are queued (201), the 51st
// is refused with 403 (queue limit 50).
'use strict';

const crypto = require('crypto');
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');

const h = require('./harness');

const runId = crypto.randomUUID();
const UNIT = 'm/s (avg & max=10%) a/b';
const RECEIVE_BOUND_MS = 10000;

function c2dPath(deviceId, messageId, correlationId, props) {
  const q = [['deviceId', deviceId], ['messageId', messageId]];
  if (correlationId) q.push(['correlationId', correlationId]);
  for (const [k, v] of Object.entries(props || {})) q.push(['prop.' + k, v]);
  return '/c2d?' + q.map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&');
}

function propsOf(msg) {
  const out = {};
  for (let i = 0; i < msg.properties.count(); i++) {
    const item = msg.properties.getItem(i);
    out[item.key] = item.value;
  }
  return out;
}

h.run('c2d', async (s) => {
  const { client, deviceId } = await h.provisionAndConnect(s, {
    Client, Mqtt, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
  });
  const expected = [];
  const props = { conformanceRun: runId, unit: UNIT };

  s.step('POST /c2d before the listener is added (queued)');
  const mid0 = 'queued-' + runId;
  let r = await h.controlPost(c2dPath(deviceId, mid0, 'cid-0-' + runId, props), 'queued before subscribe ' + runId);
  h.expectEqual('POST /c2d status', r.status, 201);
  h.expectEqual('POST /c2d messageId', r.body && r.body.messageId, mid0);
  expected.push({ mid: mid0, body: 'queued before subscribe ' + runId, cid: 'cid-0-' + runId });

  s.step("client.on('message') with client.complete(msg)");
  const got = new Map();
  const duplicates = [];
  const completeErrors = [];
  client.on('message', (msg) => {
    const record = { mid: msg.messageId, cid: msg.correlationId, data: msg.data.toString('utf8'), props: propsOf(msg) };
    console.log('received:', JSON.stringify(record));
    if (got.has(msg.messageId)) duplicates.push(msg.messageId);
    got.set(msg.messageId, record);
    client.complete(msg, (err) => {
      if (err) completeErrors.push(h.describeError(err));
    });
  });

  s.step('POST /c2d while subscribed');
  for (const i of [1, 2]) {
    const mid = `msg-${i}-${runId}`;
    const body = `c2d body ${i} ${runId}`;
    r = await h.controlPost(c2dPath(deviceId, mid, `cid-${i}-${runId}`, props), body);
    h.expectEqual('POST /c2d status', r.status, 201);
    expected.push({ mid, body, cid: `cid-${i}-${runId}` });
  }

  s.step('receive the messages');
  const started = Date.now();
  while (got.size < expected.length && Date.now() - started < RECEIVE_BOUND_MS) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  h.check(got.size >= expected.length, `received ${got.size} of ${expected.length} messages within ${RECEIVE_BOUND_MS / 1000} s: ${[...got.keys()].join(', ')}`);
  for (const e of expected) {
    const m = got.get(e.mid);
    h.check(m, `message ${e.mid} not received (got ${[...got.keys()].join(', ')})`);
    h.expectEqual(`message ${e.mid} data`, m.data, e.body);
    h.expectEqual(`message ${e.mid} correlationId`, m.cid, e.cid);
    h.expectDeepEqual(`message ${e.mid} application properties`, m.props, props);
  }
  s.info(`all ${expected.length} messages received intact`);

  s.step('no further delivery (nothing redelivered within 2 s)');
  await new Promise((resolve) => setTimeout(resolve, 2000));
  h.check(duplicates.length === 0, `messages delivered twice: ${duplicates.join(', ')}`);
  h.expectEqual('messages received', got.size, expected.length);
  h.check(completeErrors.length === 0, `client.complete failed: ${completeErrors.join('; ')}`);

  s.step('close the device client');
  await client.close();

  s.step('51 messages to the disconnected device: the 51st refused with 403');
  for (let i = 1; i <= 51; i++) {
    r = await h.controlPost(c2dPath(deviceId, `offline-${i}-${runId}`), `offline ${i}`);
    if (i <= 50) {
      h.check(r.status === 201, `POST /c2d #${i} to the offline device returned ${r.status}: ${JSON.stringify(r.body)}`);
    } else {
      h.check(r.status === 403, `POST /c2d #51 to the offline device returned ${r.status} (expected 403): ${JSON.stringify(r.body)}`);
      s.info(`#51 refused: ${r.status} ${JSON.stringify(r.body)}`);
    }
  }
});
