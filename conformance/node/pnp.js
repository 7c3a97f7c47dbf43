// Scenario pnp, Node: IoT Plug and Play with azure-iot-device (device, MQTT) and azure-iothub
// (service, HTTPS), plus the bulk registry and the statistics.
//
// The service creates a SAS device (Registry.create); the device connects with
// Client.fromConnectionString(cs, Mqtt) after client.setOptions({ modelId }) (the SDK puts
// `model-id` in the CONNECT username). DigitalTwinClient (IoTHubTokenCredentials): getDigitalTwin
// shows `$dtId` and `$metadata.$model`; invokeCommand and invokeComponentCommand reach the device's
// onDeviceMethod handlers as `reboot` and `thermostat1*getMaxMinReport` and return the device's
// payload as `body` with its status as `xMsCommandStatuscode`; updateDigitalTwin with a JSON Patch
// reaches the device as a desired patch with the `__t` marker. Registry.addDevices creates two
// devices; getRegistryStatistics counts them.
'use strict';

const crypto = require('crypto');
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { Registry, DigitalTwinClient, IoTHubTokenCredentials } = require('azure-iothub');

const h = require('./harness');

const MODEL_ID = 'dtmi:com:example:TemperatureController;2';
const runId = crypto.randomUUID().slice(0, 8);

function newKey() {
  return crypto.randomBytes(32).toString('base64');
}

h.run('pnp', async (s) => {
  const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
  const host = /HostName=([^;]+)/.exec(serviceCs)[1];
  const registry = Registry.fromConnectionString(serviceCs);
  const deviceId = 'conformance-node-pnp-' + runId;
  const key = newKey();

  s.step('Registry.create');
  await registry.create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: newKey() } } });

  s.step('connect with the model id');
  const client = Client.fromConnectionString(`HostName=${host};DeviceId=${deviceId};SharedAccessKey=${key}`, Mqtt);
  await client.setOptions({ modelId: MODEL_ID });
  await client.open();
  const seen = [];
  for (const name of ['reboot', 'thermostat1*getMaxMinReport']) {
    client.onDeviceMethod(name, (request, response) => {
      seen.push(request.methodName);
      response.send(200, { command: request.methodName, payload: request.payload }, () => {});
    });
  }
  const twin = await client.getTwin();
  const patches = [];
  twin.on('properties.desired', (patch) => patches.push(patch));

  const digital = new DigitalTwinClient(new IoTHubTokenCredentials(serviceCs));
  s.step('getDigitalTwin');
  const dt = await digital.getDigitalTwin(deviceId);
  const { _response: ignored, ...shown } = dt;
  console.log('digital twin:', JSON.stringify(shown));
  h.expectEqual('$dtId', dt.$dtId, deviceId);
  h.expectEqual('$metadata.$model', dt.$metadata && dt.$metadata.$model, MODEL_ID);

  s.step('invokeCommand and invokeComponentCommand');
  const root = await digital.invokeCommand(deviceId, 'reboot', { delay: 1 });
  console.log('root command:', JSON.stringify(root.body), root.xMsCommandStatuscode);
  h.expectDeepEqual('root command body', root.body, { command: 'reboot', payload: { delay: 1 } });
  h.expectEqual('root command status', root.xMsCommandStatuscode, 200);
  const component = await digital.invokeComponentCommand(deviceId, 'thermostat1', 'getMaxMinReport', 'since',
    { connectTimeoutInSeconds: 5, responseTimeoutInSeconds: 30 });
  console.log('component command:', JSON.stringify(component.body), component.xMsCommandStatuscode);
  h.expectDeepEqual('component command body', component.body, { command: 'thermostat1*getMaxMinReport', payload: 'since' });
  h.check(typeof component.xMsRequestId === 'string' && component.xMsRequestId.length > 0, 'no x-ms-request-id');
  h.expectDeepEqual('methods the device saw', seen, ['reboot', 'thermostat1*getMaxMinReport']);

  s.step('updateDigitalTwin');
  await digital.updateDigitalTwin(deviceId, [{ op: 'add', path: '/thermostat1/targetTemperature', value: 42 }]);
  const deadline = Date.now() + 10000;
  while (!patches.some((p) => p.thermostat1) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const patch = patches.find((p) => p.thermostat1);
  console.log('desired patch:', JSON.stringify(patch));
  h.check(patch !== undefined, `no desired patch for thermostat1: ${JSON.stringify(patches)}`);
  h.expectDeepEqual('patch thermostat1', patch.thermostat1, { __t: 'c', targetTemperature: 42 });

  s.step('Registry.addDevices and getRegistryStatistics');
  const before = (await registry.getRegistryStatistics()).responseBody;
  const bulk = ['a', 'b'].map((x) => ({ deviceId: `conformance-node-bulk-${x}-${runId}`, status: 'enabled',
    authentication: { symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } } }));
  const added = (await registry.addDevices(bulk)).responseBody;
  console.log('bulk result:', JSON.stringify(added));
  h.expectEqual('bulk isSuccessful', added.isSuccessful, true);
  const after = (await registry.getRegistryStatistics()).responseBody;
  // At least: the other SDK lane runs at the same time and may add devices to the same hub.
  const grew = after.totalDeviceCount - before.totalDeviceCount;
  h.check(grew >= 2, `totalDeviceCount grew by ${grew} (${before.totalDeviceCount} -> ${after.totalDeviceCount}), not at least the 2 added`);
  for (const d of bulk) {
    const { status } = await h.deviceRecord(d.deviceId);
    h.check(status === 200, `bulk device ${d.deviceId} not in the registry: ${status}`);
  }
  await client.close();
});
