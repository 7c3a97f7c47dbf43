// Scenario websocket_hub, Node: twin, direct method and C2D over MQTT over WebSocket.
//
// The device registers with DPS (azure-iot-provisioning-device-mqtt's MqttWs) and opens the hub
// client with azure-iot-device-mqtt's MqttWs (wss://host:443/$iothub/websocket). Over that one
// WebSocket session it:
//   * adds client.on('message') (+ complete), client.onDeviceMethod and, after getTwin(),
//     twin.on('properties.desired'); the SDK gives no signal when these SUBSCRIBEs are
//     acknowledged, but they go out before the reported-properties update that follows on the same
//     connection, so once that is answered the subscriptions are in place;
//   * reports properties (twin.properties.reported.update): the service (azure-iothub
//     Registry.getTwin, HTTPS) sees them; Registry.updateTwin with the etag reaches the device as
//     a desired patch with the twin's new $version;
//   * answers a method invoked with Client.invokeDeviceMethod (200 with an echo);
//   * receives a C2D message sent through the control port (POST /c2d) intact.
// The emulator's log must show that the DPS and hub sessions both came through a WebSocket upgrade.
'use strict';

const crypto = require('crypto');
const { Client } = require('azure-iot-device');
const { MqttWs } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').MqttWs;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Registry } = require('azure-iothub');
const ServiceClient = require('azure-iothub').Client;

const h = require('./harness');

const runId = crypto.randomUUID();
const RECEIVE_BOUND_MS = 10000;
const UNIT = 'm/s (avg & max=10%) a/b';

function propsOf(msg) {
  const out = {};
  for (let i = 0; i < msg.properties.count(); i++) {
    const item = msg.properties.getItem(i);
    out[item.key] = item.value;
  }
  return out;
}

async function waitFor(list, pred, what) {
  const started = Date.now();
  for (;;) {
    const found = list.find(pred);
    if (found) return found;
    if (Date.now() - started > RECEIVE_BOUND_MS) {
      throw new h.ScenarioFailure(`no ${what} within ${RECEIVE_BOUND_MS / 1000} s (got ${JSON.stringify(list)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

h.run('websocket_hub', async (s) => {
  const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const offset = h.logOffset();
  const { client, deviceId } = await h.provisionAndConnect(s, {
    Client, Mqtt: MqttWs, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
  });
  const errors = [];

  s.step("client.on('message') and client.onDeviceMethod");
  const messages = [];
  client.on('message', (msg) => {
    const record = { mid: msg.messageId, cid: msg.correlationId, data: msg.data.toString('utf8'), props: propsOf(msg) };
    console.log('message:', JSON.stringify(record));
    messages.push(record);
    client.complete(msg, (err) => {
      if (err) errors.push('complete: ' + h.describeError(err));
    });
  });
  const methods = [];
  client.onDeviceMethod('ping', (request, response) => {
    methods.push({ name: request.methodName, payload: request.payload });
    response.send(200, { echo: request.payload, transport: 'websocket' }, (err) => {
      if (err) errors.push('response.send: ' + h.describeError(err));
    });
  });

  s.step("device client.getTwin() and twin.on('properties.desired')");
  const twin = await client.getTwin();
  console.log('device twin properties:', JSON.stringify(twin.properties));
  h.check(Number.isInteger(twin.properties.desired.$version), `desired has no integer $version: ${JSON.stringify(twin.properties)}`);
  const patches = [];
  twin.on('properties.desired', (delta) => {
    console.log('properties.desired event:', JSON.stringify(delta));
    patches.push(JSON.parse(JSON.stringify(delta)));
  });

  s.step('device twin.properties.reported.update()');
  const reported = { conformanceRun: runId, transport: { kind: 'websocket' } };
  await h.withTimeout(
    new Promise((resolve, reject) => twin.properties.reported.update(reported, (err) => (err ? reject(err) : resolve()))),
    10000,
    'reported.update'
  );

  s.step('service Registry.getTwin()');
  const registry = Registry.fromConnectionString(serviceCs);
  const { responseBody: serviceTwin } = await registry.getTwin(deviceId);
  console.log('service twin:', JSON.stringify(serviceTwin));
  const svcReported = serviceTwin.properties.reported || {};
  h.expectEqual('service twin reported.conformanceRun', svcReported.conformanceRun, runId);
  h.expectDeepEqual('service twin reported.transport', svcReported.transport, reported.transport);

  s.step('service Registry.updateTwin() with desired properties and the etag');
  const desired = { conformanceRun: runId, interval: 30 };
  const { responseBody: updated } = await registry.updateTwin(deviceId, { properties: { desired } }, serviceTwin.etag);
  const newVersion = updated.properties && updated.properties.desired && updated.properties.desired.$version;
  h.check(Number.isInteger(newVersion), `updateTwin returned no desired $version: ${JSON.stringify(updated.properties)}`);

  s.step('device receives the desired patch');
  const patch = await waitFor(patches, (p) => p && p.conformanceRun === runId, "desired patch with this run's values");
  h.expectEqual('patch interval', patch.interval, 30);
  h.expectEqual('patch $version', patch.$version, newVersion);

  s.step('service Client.invokeDeviceMethod()');
  const service = ServiceClient.fromConnectionString(serviceCs);
  const payload = { run: runId };
  const { result } = await service.invokeDeviceMethod(deviceId, { methodName: 'ping', payload, responseTimeoutInSeconds: 30 });
  console.log('method result:', JSON.stringify(result));
  h.expectEqual('method result status', result.status, 200);
  h.expectDeepEqual('method result payload', result.payload, { echo: payload, transport: 'websocket' });
  h.expectDeepEqual('device handler calls', methods, [{ name: 'ping', payload }]);

  s.step('POST /c2d (control port)');
  const mid = 'c2d-' + runId;
  const q = [['deviceId', deviceId], ['messageId', mid], ['correlationId', 'cid-' + runId], ['prop.conformanceRun', runId], ['prop.unit', UNIT]];
  const r = await h.controlPost('/c2d?' + q.map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&'), 'c2d over websocket ' + runId);
  h.expectEqual('POST /c2d status', r.status, 201);

  s.step('device receives the C2D message');
  const m = await waitFor(messages, (x) => x.mid === mid, 'C2D message');
  h.expectEqual('correlationId', m.cid, 'cid-' + runId);
  h.expectEqual('data', m.data, 'c2d over websocket ' + runId);
  h.expectDeepEqual('application properties', m.props, { conformanceRun: runId, unit: UNIT });
  h.check(errors.length === 0, `client errors: ${errors.join('; ')}`);

  s.step('close the device client');
  await client.close();

  s.step('check the sessions came over WebSocket (emulator log)');
  h.expectWebsocketSessions(s, offset, registrationId);
  h.expectWebsocketSessions(s, offset, deviceId);
});
