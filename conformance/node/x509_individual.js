// Scenario (f) x509_individual, Node: an individual enrollment with a self-signed device certificate.
//
// Follows the SDK sample provisioning/device/samples/register_x509.js (PROVISIONING_* plus
// CERTIFICATE_FILE / KEY_FILE; X509Security(registrationId, {cert, key}) with the MQTT
// transport; then Client.fromConnectionString('HostName=…;DeviceId=…;x509=true', Mqtt) and
// setOptions({cert, key})). Asserts: assigned with the enrollment's device id, the hub device
// authenticates as `selfSigned` with the certificate's thumbprint, and the 3 messages sent over
// the certificate-authenticated connection are stored (GET /telemetry). The certificate is made
// at run time by `iotemu certs self-signed` (conformance/x509.json).
'use strict';

const crypto = require('crypto');
const fs = require('fs');

const iotHubTransport = require('azure-iot-device-mqtt').Mqtt;
const Client = require('azure-iot-device').Client;
const Message = require('azure-iot-device').Message;
const Transport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const X509Security = require('azure-iot-security-x509').X509Security;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

const MESSAGES = 3;

h.run('x509_individual', async (s) => {
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');
  const deviceCert = {
    cert: fs.readFileSync(h.env('CERTIFICATE_FILE')).toString(),
    key: fs.readFileSync(h.env('KEY_FILE')).toString(),
  };
  const { sha1, sha256 } = h.leafThumbprints(deviceCert.cert);
  s.info(`device certificate ${process.env.CERTIFICATE_FILE} (SHA-1 thumbprint ${sha1})`);

  s.step('register with the device certificate');
  const securityClient = new X509Security(registrationId, deviceCert);
  const deviceClient = ProvisioningDeviceClient.create(provisioningHost, idScope, new Transport(), securityClient);
  const result = await deviceClient.register();
  console.log('registration succeeded');
  console.log('assigned hub=' + result.assignedHub);
  console.log('deviceId=' + result.deviceId);

  s.step('check registration result');
  h.expectEqual('registrationState.status', result.status, 'assigned');
  h.expectEqual('assigned hub', result.assignedHub, expectedHub);
  h.expectEqual('device id', result.deviceId, expectedDeviceId);
  h.expectEqual('substatus', result.substatus, 'initialAssignment');

  s.step('check emulator registration record (GET /registrations)');
  const record = await h.registrationRecord(registrationId);
  h.expectEqual('record status', record.status, 'assigned');
  h.expectEqual('record deviceId', record.deviceId, expectedDeviceId);
  h.expectEqual('record assignedHub', record.assignedHub, expectedHub);

  s.step('check the hub device (GET /devices)');
  const { status, body: device } = await h.deviceRecord(expectedDeviceId);
  h.check(status === 200, `GET /devices/${expectedDeviceId} returned ${status}: ${JSON.stringify(device)}`);
  const auth = (device && device.authentication) || {};
  h.expectEqual('device authentication.type', auth.type, 'selfSigned');
  const primary = ((auth.x509Thumbprint && auth.x509Thumbprint.primaryThumbprint) || '').toUpperCase();
  h.check(
    primary === sha1 || primary === sha256,
    `device authentication.x509Thumbprint.primaryThumbprint is ${JSON.stringify(primary || null)}, ` +
      `not the certificate's SHA-1 ${sha1} or SHA-256 ${sha256}`
  );

  s.step('connect to hub with the device certificate');
  const connectionString = 'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';x509=true';
  const hubClient = Client.fromConnectionString(connectionString, iotHubTransport);
  await hubClient.setOptions(deviceCert);
  await hubClient.open();
  console.log('Client connected');

  s.step(`send ${MESSAGES} messages`);
  const sent = new Map();
  for (let i = 1; i <= MESSAGES; i++) {
    const message = new Message('x509 telemetry ' + i);
    message.messageId = crypto.randomUUID();
    message.properties.add('scenario', 'x509_individual');
    await hubClient.sendEvent(message);
    sent.set(message.messageId, i);
  }

  s.step('disconnect from hub');
  await hubClient.close();

  s.step('observe telemetry in the emulator (GET /telemetry)');
  const found = await h.waitForTelemetry(expectedDeviceId, new Set(sent.keys()));
  const missing = [...sent.keys()].filter((mid) => !found.has(mid));
  h.check(missing.length === 0, `${missing.length} of ${MESSAGES} sent messages not stored by the hub: ${missing.join(', ')}`);
  for (const [mid, stored] of found) {
    h.checkStoredMessage(stored, expectedDeviceId, 'x509 telemetry ' + sent.get(mid), { scenario: 'x509_individual' });
  }
  s.info(`all ${found.size} messages stored by the emulator`);
});
