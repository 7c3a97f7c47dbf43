// Scenario (a) quickstart, Node: the DPS symmetric-key quickstart with the Node SDK's MQTT
// transports.
//
// Follows the SDK's sample provisioning/device/samples/register_symkey.js (same PROVISIONING_*
// environment variables; ProvisioningDeviceClient.create(host, idScope, new Mqtt(),
// new SymmetricKeySecurityClient(regId, key)); Client.fromConnectionString(..., Mqtt)), then sends
// 10 messages concurrently like the Python quickstart, each with a uuid message id and
// application properties, and asserts that the emulator's hub stored all 10 (GET /telemetry).
'use strict';

const crypto = require('crypto');

const iotHubTransport = require('azure-iot-device-mqtt').Mqtt;
const Client = require('azure-iot-device').Client;
const Message = require('azure-iot-device').Message;
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

const messagesToSend = 10;
const runId = crypto.randomUUID();
const WIND_UNIT = 'm/s (avg & max=10%)';

h.run('quickstart', async (s) => {
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const symmetricKey = h.env('PROVISIONING_SYMMETRIC_KEY');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');

  s.step('register');
  const provisioningSecurityClient = new SymmetricKeySecurityClient(registrationId, symmetricKey);
  const provisioningClient = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new ProvisioningTransport(),
    provisioningSecurityClient
  );
  const result = await provisioningClient.register();
  console.log('registration succeeded');
  console.log('assigned hub=' + result.assignedHub);
  console.log('deviceId=' + result.deviceId);

  s.step('check registration result');
  h.expectEqual('assigned hub', result.assignedHub, expectedHub);
  h.expectEqual('device id', result.deviceId, expectedDeviceId);
  h.expectEqual('registrationState.status', result.status, 'assigned');
  h.expectEqual('substatus', result.substatus, 'initialAssignment');

  s.step('connect to hub');
  const connectionString =
    'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';SharedAccessKey=' + symmetricKey;
  const hubClient = Client.fromConnectionString(connectionString, iotHubTransport);
  await hubClient.open();
  console.log('Client connected');

  s.step(`send ${messagesToSend} messages concurrently`);
  const sent = new Map();
  const sendTestMessage = async (i) => {
    console.log('sending message #' + i);
    const message = new Message('test wind speed ' + i);
    message.messageId = crypto.randomUUID();
    message.properties.add('conformanceRun', runId);
    message.properties.add('windUnit', WIND_UNIT);
    await hubClient.sendEvent(message);
    sent.set(message.messageId, i);
    console.log('done sending message #' + i);
  };
  await Promise.all(Array.from({ length: messagesToSend }, (_, k) => sendTestMessage(k + 1)));

  s.step('disconnect from hub');
  await hubClient.close();

  s.step('observe telemetry in the emulator (GET /telemetry)');
  h.expectEqual('messages the SDK reported sent', sent.size, messagesToSend);
  const found = await h.waitForTelemetry(expectedDeviceId, new Set(sent.keys()));
  const missing = [...sent.keys()].filter((mid) => !found.has(mid));
  h.check(
    missing.length === 0,
    `${missing.length} of ${messagesToSend} sent messages not stored by the hub: message ids ` +
      missing.map((mid) => `#${sent.get(mid)}=${mid}`).join(', ')
  );
  for (const [mid, stored] of found) {
    h.checkStoredMessage(stored, expectedDeviceId, 'test wind speed ' + sent.get(mid), {
      conformanceRun: runId,
      windUnit: WIND_UNIT,
    });
  }
  s.info(`all ${found.size} messages stored by the emulator with their properties`);
});
