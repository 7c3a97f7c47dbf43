// Scenario module_client, Node: a module identity with azure-iothub (service, HTTPS) and
// azure-iot-device's ModuleClient over azure-iot-device-mqtt's Mqtt.
//
// The service (Registry.fromConnectionString(<iothubowner>)) creates a SAS device
// (Registry.create) and a SAS module on it (Registry.addModule). The module connects with
// ModuleClient.fromConnectionString('HostName=…;DeviceId=…;ModuleId=…;SharedAccessKey=<module key>',
// Mqtt) and:
//   * sends one telemetry message (sendEvent) and one output message (sendOutputEvent('alerts',
//     msg)): the emulator stores both under the device with moduleId set, the output one with
//     system property iothub-outputname = alerts;
//   * adds an 'inputMessage' listener (the SDK subscribes to its inputs; it gives no completion
//     signal, but the SUBSCRIBE goes out before the twin requests that follow on the same
//     connection, so once those are answered the subscription is in place);
//   * reads its twin (getTwin), reports properties (twin.properties.reported.update), which the
//     service sees with Registry.getModuleTwin; Registry.updateModuleTwin (with the etag) reaches
//     twin.on('properties.desired') with the new $version;
//   * answers a method (client.onMethod) invoked with Client.invokeDeviceMethod(deviceId,
//     moduleId, params);
//   * receives an input message sent through the emulator's control port
//     (POST /input?deviceId=&moduleId=&input=; IoT Edge routing would deliver it) as
//     'inputMessage' (inputName, msg) with data, message id and properties.
'use strict';

const crypto = require('crypto');
const { ModuleClient, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { Registry } = require('azure-iothub');
const ServiceClient = require('azure-iothub').Client;

const h = require('./harness');

const runId = crypto.randomUUID();
const RECEIVE_BOUND_MS = 10000;
const OUTPUT = 'alerts';
const INPUT = 'commands';
const UNIT = 'm/s (avg & max=10%)';

const newKey = () => crypto.randomBytes(32).toString('base64');

function propsOf(msg) {
  const out = {};
  for (let i = 0; i < msg.properties.count(); i++) {
    const item = msg.properties.getItem(i);
    out[item.key] = item.value;
  }
  return out;
}

/** Resolves with the first element of `list` that `pred` accepts, polling until `what` times out. */
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

h.run('module_client', async (s) => {
  const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
  const deviceId = h.env('MODULE_DEVICE_ID');
  const moduleId = h.env('MODULE_ID');
  const hubHost = h.env('EXPECTED_ASSIGNED_HUB');
  const registry = Registry.fromConnectionString(serviceCs);

  s.step('service Registry.create (SAS device)');
  const { responseBody: device } = await registry.create({
    deviceId,
    status: 'enabled',
    authentication: { symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } },
  });
  console.log('device:', JSON.stringify(device));
  h.expectEqual('created deviceId', device.deviceId, deviceId);
  h.expectEqual('created authentication.type', device.authentication.type, 'sas');

  s.step('service Registry.addModule (SAS module)');
  const moduleKey = newKey();
  const { responseBody: module } = await registry.addModule({
    deviceId,
    moduleId,
    authentication: { symmetricKey: { primaryKey: moduleKey, secondaryKey: newKey() } },
  });
  console.log('module:', JSON.stringify(module));
  h.expectEqual('created module deviceId', module.deviceId, deviceId);
  h.expectEqual('created module moduleId', module.moduleId, moduleId);
  h.expectEqual('created module primaryKey', module.authentication.symmetricKey.primaryKey, moduleKey);

  s.step('ModuleClient.fromConnectionString(…, Mqtt).open()');
  const client = ModuleClient.fromConnectionString(
    `HostName=${hubHost};DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${moduleKey}`,
    Mqtt
  );
  const errors = [];
  client.on('error', (err) => errors.push(h.describeError(err)));
  await client.open();

  s.step('sendEvent (telemetry) and sendOutputEvent');
  const telemetry = new Message('module telemetry ' + runId);
  telemetry.messageId = 'telemetry-' + runId;
  telemetry.properties.add('conformanceRun', runId);
  await client.sendEvent(telemetry);
  const output = new Message('module output ' + runId);
  output.messageId = 'output-' + runId;
  output.properties.add('conformanceRun', runId);
  await client.sendOutputEvent(OUTPUT, output);

  s.step('observe both messages in the emulator (GET /telemetry)');
  const found = await h.waitForTelemetry(deviceId, new Set([telemetry.messageId, output.messageId]));
  h.check(found.size === 2, `stored: ${[...found.keys()].join(', ')}; expected ${telemetry.messageId} and ${output.messageId}`);
  let stored = found.get(telemetry.messageId);
  h.checkStoredMessage(stored, deviceId, 'module telemetry ' + runId, { conformanceRun: runId });
  h.expectEqual('telemetry moduleId', stored.moduleId, moduleId);
  h.expectEqual('telemetry iothub-outputname', stored.systemProperties['iothub-outputname'], undefined);
  stored = found.get(output.messageId);
  h.checkStoredMessage(stored, deviceId, 'module output ' + runId, { conformanceRun: runId });
  h.expectEqual('output moduleId', stored.moduleId, moduleId);
  h.expectEqual('output iothub-outputname', stored.systemProperties['iothub-outputname'], OUTPUT);

  s.step("client.on('inputMessage') and client.onMethod");
  const inputs = [];
  client.on('inputMessage', (inputName, msg) => {
    const record = { inputName, mid: msg.messageId, cid: msg.correlationId, data: msg.data.toString('utf8'), props: propsOf(msg) };
    console.log('inputMessage:', JSON.stringify(record));
    inputs.push(record);
    client.complete(msg, (err) => {
      if (err) errors.push('complete: ' + h.describeError(err));
    });
  });
  const methods = [];
  client.onMethod('setLevel', (request, response) => {
    methods.push({ name: request.methodName, payload: request.payload });
    response.send(200, { module: moduleId, echo: request.payload }, (err) => {
      if (err) errors.push('response.send: ' + h.describeError(err));
    });
  });

  s.step('module client.getTwin()');
  const twin = await client.getTwin();
  console.log('module twin properties:', JSON.stringify(twin.properties));
  h.check(Number.isInteger(twin.properties.desired.$version), `desired has no integer $version: ${JSON.stringify(twin.properties)}`);
  const patches = [];
  twin.on('properties.desired', (delta) => {
    console.log('properties.desired event:', JSON.stringify(delta));
    patches.push(JSON.parse(JSON.stringify(delta)));
  });

  s.step('module twin.properties.reported.update()');
  const reported = { conformanceRun: runId, module: { state: 'running', restarts: 0 } };
  await h.withTimeout(
    new Promise((resolve, reject) => twin.properties.reported.update(reported, (err) => (err ? reject(err) : resolve()))),
    10000,
    'reported.update'
  );

  s.step('service Registry.getModuleTwin()');
  const { responseBody: serviceTwin } = await registry.getModuleTwin(deviceId, moduleId);
  console.log('service module twin:', JSON.stringify(serviceTwin));
  h.expectEqual('service twin deviceId', serviceTwin.deviceId, deviceId);
  h.expectEqual('service twin moduleId', serviceTwin.moduleId, moduleId);
  h.check(serviceTwin.etag, 'service module twin has no etag');
  const svcReported = serviceTwin.properties.reported || {};
  h.expectEqual('service twin reported.conformanceRun', svcReported.conformanceRun, runId);
  h.expectDeepEqual('service twin reported.module', svcReported.module, reported.module);

  s.step('service Registry.updateModuleTwin() with desired properties and the etag');
  const desired = { conformanceRun: runId, logLevel: 'debug', limits: { rate: 5 } };
  const { responseBody: updated } = await registry.updateModuleTwin(deviceId, moduleId, { properties: { desired } }, serviceTwin.etag);
  const newVersion = updated.properties && updated.properties.desired && updated.properties.desired.$version;
  h.check(Number.isInteger(newVersion), `updateModuleTwin returned no desired $version: ${JSON.stringify(updated.properties)}`);

  s.step('module receives the desired patch');
  const patch = await waitFor(patches, (p) => p && p.conformanceRun === runId, "desired patch with this run's values");
  for (const [k, v] of Object.entries(desired)) h.expectDeepEqual(`patch ${k}`, patch[k], v);
  h.expectEqual('patch $version', patch.$version, newVersion);

  s.step('service Client.invokeDeviceMethod(deviceId, moduleId, …)');
  const service = ServiceClient.fromConnectionString(serviceCs);
  const payload = { run: runId, level: 3 };
  const { result } = await service.invokeDeviceMethod(deviceId, moduleId, { methodName: 'setLevel', payload, responseTimeoutInSeconds: 30 });
  console.log('method result:', JSON.stringify(result));
  h.expectEqual('method result status', result.status, 200);
  h.expectDeepEqual('method result payload', result.payload, { module: moduleId, echo: payload });
  h.expectDeepEqual('module handler calls', methods, [{ name: 'setLevel', payload }]);

  s.step('POST /input to the module (control port)');
  const q = [
    ['deviceId', deviceId], ['moduleId', moduleId], ['input', INPUT], ['messageId', 'input-' + runId],
    ['correlationId', 'cid-' + runId], ['prop.conformanceRun', runId], ['prop.unit', UNIT],
  ];
  const r = await h.controlPost('/input?' + q.map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v)).join('&'), 'input body ' + runId);
  h.expectEqual('POST /input status', r.status, 201);

  s.step("module receives the input message ('inputMessage')");
  const input = await waitFor(inputs, (m) => m.mid === 'input-' + runId, 'input message');
  h.expectEqual('inputName', input.inputName, INPUT);
  h.expectEqual('data', input.data, 'input body ' + runId);
  h.expectEqual('correlationId', input.cid, 'cid-' + runId);
  h.expectDeepEqual('application properties', input.props, { conformanceRun: runId, unit: UNIT });
  h.expectEqual('input messages received', inputs.length, 1);
  h.check(errors.length === 0, `client errors: ${errors.join('; ')}`);

  s.step('close the module client');
  await client.close();
});
