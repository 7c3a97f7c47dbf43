// Scenario mqtt_websocket, Node: the quickstart flow over MQTT over WebSocket.
//
// As node/quickstart.js, with the SDKs' WebSocket transports: azure-iot-provisioning-device-mqtt's
// MqttWs and azure-iot-device-mqtt's MqttWs (wss://host:443/$iothub/websocket, subprotocol mqtt).
// Asserts the registration result and the emulator's record, that 3 messages are stored by the hub
// (GET /telemetry), and — from the emulator's log — that the DPS and hub sessions both arrived
// through a WebSocket upgrade on the HTTPS port rather than on 8883.
'use strict';

const crypto = require('crypto');

const iotHubTransport = require('azure-iot-device-mqtt').MqttWs;
const Client = require('azure-iot-device').Client;
const Message = require('azure-iot-device').Message;
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').MqttWs;
const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

const messagesToSend = 3;
const runId = crypto.randomUUID();

h.run('mqtt_websocket', async (s) => {
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const symmetricKey = h.env('PROVISIONING_SYMMETRIC_KEY');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');
  const offset = h.logOffset();

  s.step('register over WebSocket');
  const provisioningClient = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new ProvisioningTransport(),
    new SymmetricKeySecurityClient(registrationId, symmetricKey)
  );
  const result = await provisioningClient.register();
  console.log('assigned hub=' + result.assignedHub + ' deviceId=' + result.deviceId);

  s.step('check registration result');
  h.expectEqual('assigned hub', result.assignedHub, expectedHub);
  h.expectEqual('device id', result.deviceId, expectedDeviceId);
  h.expectEqual('registrationState.status', result.status, 'assigned');
  h.expectEqual('substatus', result.substatus, 'initialAssignment');

  s.step('check emulator registration record (GET /registrations)');
  const record = await h.registrationRecord(registrationId);
  h.expectEqual('record status', record.status, 'assigned');
  h.expectEqual('record deviceId', record.deviceId, expectedDeviceId);

  s.step('connect to hub over WebSocket');
  const connectionString =
    'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';SharedAccessKey=' + symmetricKey;
  const hubClient = Client.fromConnectionString(connectionString, iotHubTransport);
  await hubClient.open();

  s.step(`send ${messagesToSend} messages concurrently`);
  const sent = new Map();
  const sendTestMessage = async (i) => {
    const message = new Message('websocket telemetry ' + i);
    message.messageId = crypto.randomUUID();
    message.properties.add('conformanceRun', runId);
    await hubClient.sendEvent(message);
    sent.set(message.messageId, i);
  };
  await Promise.all(Array.from({ length: messagesToSend }, (_, k) => sendTestMessage(k + 1)));

  s.step('disconnect from hub');
  await hubClient.close();

  s.step('observe telemetry in the emulator (GET /telemetry)');
  h.expectEqual('messages the SDK reported sent', sent.size, messagesToSend);
  const found = await h.waitForTelemetry(expectedDeviceId, new Set(sent.keys()));
  const missing = [...sent.keys()].filter((mid) => !found.has(mid));
  h.check(missing.length === 0, `sent messages not stored by the hub: ${missing.join(', ')}`);
  for (const [mid, stored] of found) {
    h.checkStoredMessage(stored, expectedDeviceId, 'websocket telemetry ' + sent.get(mid), { conformanceRun: runId });
  }

  s.step('check the sessions came over WebSocket (emulator log)');
  h.expectWebsocketSessions(s, offset, registrationId);
  h.expectWebsocketSessions(s, offset, expectedDeviceId);
});
