// The device and module flows of the device-AMQP scenarios (device_amqp, device_amqp_ws,
// module_amqp): azure-iot-device's Client / ModuleClient over azure-iot-device-amqp's Amqp or
// AmqpWs transport (no SASL, CBS put-token of the device's SAS token; AmqpWs: wss://host:443/
// $iothub/websocket, subprotocol AMQPWSB10), against identities the hub service SDK creates over
// HTTPS. Not a scenario itself: the scenario files call deviceFlow / moduleFlow.
//
// deviceFlow asserts, each on both sides:
//   * telemetry: 3 messages sent concurrently (sendEvent), each stored by the hub with its message
//     id, body and application property (GET /telemetry);
//   * twin: getTwin, twin.properties.reported.update (seen by Registry.getTwin), and a desired
//     update from Registry.updateTwin (with the etag) reaching twin.on('properties.desired') with
//     the new $version;
//   * a direct method (onDeviceMethod) invoked by azure-iothub's Client.invokeDeviceMethod with
//     the device's status and payload passed back;
//   * C2D from azure-iothub's Client (AMQP, ack 'full'): one message completed (feedback
//     Success), one rejected (feedback Rejected), one abandoned once then completed when it comes
//     back (delivered twice, feedback Success), read with getFeedbackReceiver;
//   * after close, a method invocation fails promptly with 404 DeviceNotOnline (the AMQP
//     connection no longer speaks for the device).
// moduleFlow: a module (Registry.addModule) sends telemetry and an output message (stored with
// moduleId and iothub-outputname), reads and reports its twin, receives a desired patch, answers a
// method invoked on the module, and receives an input message (POST /input on the control port)
// as 'inputMessage' with its input name.
'use strict';

const crypto = require('crypto');
const { Client: DeviceClient, ModuleClient, Message } = require('azure-iot-device');
const { Client: ServiceClient, Registry } = require('azure-iothub');

const h = require('./harness');

const BOUND_MS = 15000;
const newKey = () => crypto.randomBytes(32).toString('base64');

function propsOf(msg) {
  const out = {};
  for (let i = 0; i < msg.properties.count(); i++) {
    const item = msg.properties.getItem(i);
    out[item.key] = item.value;
  }
  return out;
}

/** Resolves once `predicate()` returns something truthy (polled every 50 ms), else fails after BOUND_MS. */
async function waitFor(predicate, what) {
  const deadline = Date.now() + BOUND_MS;
  for (;;) {
    const found = predicate();
    if (found) return found;
    if (Date.now() > deadline) throw new h.ScenarioFailure(`${what}: not within ${BOUND_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function callback(fn) {
  return new Promise((resolve, reject) => fn((err, result) => (err ? reject(err) : resolve(result))));
}

/**
 * Invokes a method, retrying while the device answers 404: the SDK attaches its method links in
 * the background after onDeviceMethod/onMethod and says nothing when they are in place.
 */
async function invokeWhenReady(service, target, params) {
  const deadline = Date.now() + BOUND_MS;
  for (;;) {
    try {
      return target.moduleId
        ? await service.invokeDeviceMethod(target.deviceId, target.moduleId, params)
        : await service.invokeDeviceMethod(target.deviceId, params);
    } catch (err) {
      const status = err.response && err.response.statusCode;
      if (status !== 404 || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function telemetry(s, client, deviceId, runId, label, count) {
  s.step(`sendEvent x${count} concurrently`);
  const sent = new Map();
  await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const message = new Message(`${label} ${i} ${runId}`);
      message.messageId = crypto.randomUUID();
      message.properties.add('conformanceRun', runId);
      await client.sendEvent(message);
      sent.set(message.messageId, `${label} ${i} ${runId}`);
    })
  );
  s.step('observe the telemetry in the emulator (GET /telemetry)');
  const found = await h.waitForTelemetry(deviceId, new Set(sent.keys()));
  const missing = [...sent.keys()].filter((mid) => !found.has(mid));
  h.check(missing.length === 0, `sent messages not stored by the hub: ${missing.join(', ')}`);
  for (const [mid, stored] of found) h.checkStoredMessage(stored, deviceId, sent.get(mid), { conformanceRun: runId });
  s.info(`${found.size} messages stored`);
  return found;
}

async function twinRoundTrip(s, client, registry, target, runId) {
  const getServiceTwin = () =>
    target.moduleId ? registry.getModuleTwin(target.deviceId, target.moduleId) : registry.getTwin(target.deviceId);
  s.step('client.getTwin()');
  const twin = await h.withTimeout(client.getTwin(), 10000, 'getTwin');
  h.check(Number.isInteger(twin.properties.desired.$version), `desired has no integer $version: ${JSON.stringify(twin.properties)}`);
  const patches = [];
  twin.on('properties.desired', (delta) => patches.push(JSON.parse(JSON.stringify(delta))));

  s.step('twin.properties.reported.update()');
  const reported = { conformanceRun: runId, firmware: { version: '1.2.3' } };
  await h.withTimeout(callback((cb) => twin.properties.reported.update(reported, cb)), 10000, 'reported.update');
  const { responseBody: serviceTwin } = await getServiceTwin();
  const svcReported = serviceTwin.properties.reported || {};
  h.expectEqual('service twin reported.conformanceRun', svcReported.conformanceRun, runId);
  h.expectDeepEqual('service twin reported.firmware', svcReported.firmware, reported.firmware);

  s.step('service updates desired properties; the device receives the patch');
  const desired = { conformanceRun: runId, interval: 7 };
  const patch = { properties: { desired } };
  const { responseBody: updated } = target.moduleId
    ? await registry.updateModuleTwin(target.deviceId, target.moduleId, patch, serviceTwin.etag)
    : await registry.updateTwin(target.deviceId, patch, serviceTwin.etag);
  const version = updated.properties.desired.$version;
  const got = await waitFor(() => patches.find((p) => p && p.conformanceRun === runId), 'desired patch with this run');
  h.expectEqual('patch interval', got.interval, 7);
  h.expectEqual('patch $version', got.$version, version);
}

async function deviceFlow(s, Transport, runId) {
  const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
  const deviceId = h.env('AMQP_DEVICE_ID');
  const hubHost = h.env('EXPECTED_ASSIGNED_HUB');
  const registry = Registry.fromConnectionString(serviceCs);

  s.step('service Registry.create (SAS device, over HTTPS)');
  const key = newKey();
  await registry.create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: newKey() } } });

  s.step(`Client.fromConnectionString(cs, ${Transport.name}).open()`);
  const client = DeviceClient.fromConnectionString(`HostName=${hubHost};DeviceId=${deviceId};SharedAccessKey=${key}`, Transport);
  const errors = [];
  client.on('error', (err) => errors.push(h.describeError(err)));
  await h.withTimeout(client.open(), 15000, 'open');

  await telemetry(s, client, deviceId, runId, 'amqp telemetry', 3);
  await twinRoundTrip(s, client, registry, { deviceId }, runId);

  s.step('onDeviceMethod; service invokeDeviceMethod');
  const service = ServiceClient.fromConnectionString(serviceCs);
  const calls = [];
  client.onDeviceMethod('reboot', (request, response) => {
    calls.push({ name: request.methodName, payload: request.payload });
    response.send(201, { rebooted: true, echo: request.payload }, (err) => {
      if (err) errors.push('response.send: ' + h.describeError(err));
    });
  });
  const payload = { delay: 1, run: runId };
  const { result } = await invokeWhenReady(service, { deviceId }, { methodName: 'reboot', payload, responseTimeoutInSeconds: 30 });
  h.expectEqual('method result status', result.status, 201);
  h.expectDeepEqual('method result payload', result.payload, { rebooted: true, echo: payload });
  h.expectDeepEqual('device handler calls', calls, [{ name: 'reboot', payload }]);

  s.step("client.on('message'): complete, reject, abandon then complete");
  const deliveries = new Map();
  client.on('message', (msg) => {
    const settle = propsOf(msg).settle;
    const seen = (deliveries.get(msg.messageId) || 0) + 1;
    deliveries.set(msg.messageId, seen);
    const how = settle === 'reject' ? 'reject' : settle === 'abandon' && seen === 1 ? 'abandon' : 'complete';
    console.log(`c2d ${msg.messageId} (${msg.data.toString('utf8')}) delivery ${seen}: ${how}`);
    client[how](msg, (err) => {
      if (err) errors.push(`${how} ${msg.messageId}: ${h.describeError(err)}`);
    });
  });
  await service.open();
  const feedback = new Map();
  const receiver = await callback((cb) => service.getFeedbackReceiver(cb));
  receiver.on('message', (msg) => {
    for (const r of JSON.parse(msg.data.toString('utf8'))) feedback.set(r.originalMessageId, r);
  });
  const sent = {};
  for (const settle of ['complete', 'reject', 'abandon']) {
    const msg = new Message(`${settle} me ${runId}`);
    msg.messageId = crypto.randomUUID();
    msg.ack = 'full';
    msg.properties.add('settle', settle);
    await service.send(deviceId, msg);
    sent[settle] = msg.messageId;
  }
  await waitFor(
    () => Object.values(sent).every((mid) => feedback.has(mid)),
    `feedback for every message (got ${JSON.stringify([...feedback.values()])}; deliveries ${JSON.stringify([...deliveries])})`
  );
  h.expectEqual('feedback of the completed message', feedback.get(sent.complete).statusCode, 'Success');
  h.expectEqual('feedback of the rejected message', feedback.get(sent.reject).statusCode, 'Rejected');
  h.expectEqual('feedback of the abandoned-then-completed message', feedback.get(sent.abandon).statusCode, 'Success');
  h.expectEqual('deliveries of the abandoned message', deliveries.get(sent.abandon), 2);
  h.expectEqual('deliveries of the completed message', deliveries.get(sent.complete), 1);
  h.expectEqual('deliveries of the rejected message', deliveries.get(sent.reject), 1);
  await service.close();
  h.check(errors.length === 0, `client errors: ${errors.join('; ')}`);

  s.step('close; a method on the closed device fails promptly with 404');
  await client.close();
  let error = null;
  try {
    await h.withTimeout(
      service.invokeDeviceMethod(deviceId, { methodName: 'reboot', payload, responseTimeoutInSeconds: 30 }),
      10000,
      'invokeDeviceMethod on a closed device'
    );
  } catch (err) {
    if (err instanceof h.ScenarioFailure) throw err;
    error = err;
  }
  h.check(error, 'invoking a method on the closed device succeeded');
  h.expectEqual('HTTP status for a method on a closed device', error.response && error.response.statusCode, 404);
}

async function moduleFlow(s, Transport, runId) {
  const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
  const deviceId = h.env('AMQP_DEVICE_ID');
  const moduleId = h.env('AMQP_MODULE_ID');
  const hubHost = h.env('EXPECTED_ASSIGNED_HUB');
  const registry = Registry.fromConnectionString(serviceCs);

  s.step('service Registry.create and addModule (SAS)');
  await registry.create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } } });
  const moduleKey = newKey();
  await registry.addModule({ deviceId, moduleId, authentication: { symmetricKey: { primaryKey: moduleKey, secondaryKey: newKey() } } });

  s.step(`ModuleClient.fromConnectionString(cs, ${Transport.name}).open()`);
  const client = ModuleClient.fromConnectionString(
    `HostName=${hubHost};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${moduleKey}`,
    Transport
  );
  const errors = [];
  client.on('error', (err) => errors.push(h.describeError(err)));
  await h.withTimeout(client.open(), 15000, 'open');

  const found = await telemetry(s, client, deviceId, runId, 'module telemetry', 1);
  for (const stored of found.values()) h.expectEqual('telemetry moduleId', stored.moduleId, moduleId);

  s.step("sendOutputEvent('alerts')");
  const output = new Message('module output ' + runId);
  output.messageId = 'output-' + runId;
  await client.sendOutputEvent('alerts', output);
  const outputs = await h.waitForTelemetry(deviceId, new Set([output.messageId]));
  const stored = outputs.get(output.messageId);
  h.check(stored, 'the output message was not stored');
  h.expectEqual('output moduleId', stored.moduleId, moduleId);
  h.expectEqual('output iothub-outputname', stored.systemProperties['iothub-outputname'], 'alerts');

  await twinRoundTrip(s, client, registry, { deviceId, moduleId }, runId);

  s.step('onMethod; service invokeDeviceMethod(deviceId, moduleId, …)');
  client.onMethod('setLevel', (request, response) => {
    response.send(200, { module: moduleId, echo: request.payload }, (err) => {
      if (err) errors.push('response.send: ' + h.describeError(err));
    });
  });
  const service = ServiceClient.fromConnectionString(serviceCs);
  const payload = { level: 3, run: runId };
  const { result } = await invokeWhenReady(service, { deviceId, moduleId }, { methodName: 'setLevel', payload, responseTimeoutInSeconds: 30 });
  h.expectEqual('method result status', result.status, 200);
  h.expectDeepEqual('method result payload', result.payload, { module: moduleId, echo: payload });

  s.step("client.on('inputMessage'); POST /input");
  const inputs = [];
  client.on('inputMessage', (inputName, msg) => {
    inputs.push({ inputName, mid: msg.messageId, data: msg.data.toString('utf8'), props: propsOf(msg) });
    client.complete(msg, (err) => {
      if (err) errors.push('complete: ' + h.describeError(err));
    });
  });
  const q = [['deviceId', deviceId], ['moduleId', moduleId], ['input', 'commands'], ['messageId', 'input-' + runId], ['prop.conformanceRun', runId]];
  const path = '/input?' + q.map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&');
  // The input link attaches in the background too: 404 until it is in place.
  const deadline = Date.now() + BOUND_MS;
  let r;
  for (;;) {
    r = await h.controlPost(path, 'input body ' + runId);
    if (r.status !== 404 || Date.now() > deadline) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  h.expectEqual('POST /input status', r.status, 201);
  const input = await waitFor(() => inputs.find((m) => m.mid === 'input-' + runId), 'input message');
  h.expectEqual('inputName', input.inputName, 'commands');
  h.expectEqual('input data', input.data, 'input body ' + runId);
  h.expectEqual('input property conformanceRun', input.props.conformanceRun, runId);
  h.check(errors.length === 0, `client errors: ${errors.join('; ')}`);

  s.step('close the module client');
  await client.close();
}

module.exports = { deviceFlow, moduleFlow };
