// Scenario (g) x509_group, Node: an X.509 enrollment group on an intermediate CA under a verified root.
//
// The enrollment group `conformance-x509-group` holds the intermediate CA; the root is uploaded
// to DPS as a verified certificate; the device's `cert` is the full chain (leaf, intermediate,
// root), which Node's TLS sends as is. In order:
// 1. a device whose chain comes from an unrelated root with the same names (root, intermediate
//    and leaf CN all equal to the real ones) registers: refused promptly, nothing provisioned;
// 2. the real device registers: assigned with device id = CN = registration id, the hub device
//    is `selfSigned` with the leaf's thumbprints (as Azure DPS creates a group's device); it
//    connects with its certificate and one message is stored (GET /telemetry);
// 3. the rogue chain connects to the hub as that device: refused promptly.
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

const readPair = (certVar, keyVar) => ({
  cert: fs.readFileSync(h.env(certVar)).toString(),
  key: fs.readFileSync(h.env(keyVar)).toString(),
});

h.run('x509_group', async (s) => {
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');
  const expectedGroup = h.env('EXPECTED_ENROLLMENT_GROUP_ID');
  const deviceCert = readPair('CERTIFICATE_FILE', 'KEY_FILE');
  const rogueCert = readPair('ROGUE_CERTIFICATE_FILE', 'ROGUE_KEY_FILE');

  s.step('register with a chain from an unrelated root (same names)');
  const rogueClient = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new Transport(),
    new X509Security(registrationId, rogueCert)
  );
  await h.expectRefusal(s, 'register() with the rogue chain', registrationId, () => rogueClient.register());

  s.step('check nothing was provisioned for the rogue chain');
  await h.expectNotProvisioned(registrationId, expectedDeviceId);

  s.step("register with the device's chain");
  const deviceClient = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new Transport(),
    new X509Security(registrationId, deviceCert)
  );
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
  s.info(`record x509 = ${JSON.stringify(record.x509)} (expected enrollment group ${expectedGroup})`);

  s.step('check the hub device (GET /devices)');
  const { status, body: device } = await h.deviceRecord(expectedDeviceId);
  h.check(status === 200, `GET /devices/${expectedDeviceId} returned ${status}: ${JSON.stringify(device)}`);
  const auth = (device && device.authentication) || {};
  h.expectEqual('device authentication.type', auth.type, 'selfSigned');
  // Azure names the device by the leaf it presented: each registered thumbprint is one of its.
  const { sha1, sha256 } = h.leafThumbprints(deviceCert.cert);
  const registered = auth.x509Thumbprint || {};
  const primary = (registered.primaryThumbprint || '').toUpperCase();
  const secondary = (registered.secondaryThumbprint || '').toUpperCase();
  h.check(
    [sha1, sha256].includes(primary) && ['', sha1, sha256].includes(secondary),
    `device authentication.x509Thumbprint is ${JSON.stringify(registered)}, ` +
      `not the leaf's SHA-1 ${sha1} / SHA-256 ${sha256}`
  );

  s.step("connect to hub with the device's chain");
  const connectionString = 'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';x509=true';
  const hubClient = Client.fromConnectionString(connectionString, iotHubTransport);
  await hubClient.setOptions(deviceCert);
  await hubClient.open();

  s.step('send one message');
  const message = new Message('x509 group device telemetry');
  message.messageId = crypto.randomUUID();
  message.properties.add('scenario', 'x509_group');
  await hubClient.sendEvent(message);
  await hubClient.close();

  s.step('observe telemetry in the emulator (GET /telemetry)');
  const found = await h.waitForTelemetry(expectedDeviceId, new Set([message.messageId]));
  h.check(found.has(message.messageId), `message ${message.messageId} not stored by the hub`);
  h.checkStoredMessage(found.get(message.messageId), expectedDeviceId, 'x509 group device telemetry', {
    scenario: 'x509_group',
  });

  s.step('connect to hub with the rogue chain');
  const rogueHubClient = Client.fromConnectionString(connectionString, iotHubTransport);
  await rogueHubClient.setOptions(rogueCert);
  await h.expectRefusal(s, 'Client.open() with the rogue chain', expectedDeviceId, () => rogueHubClient.open());
  await rogueHubClient.close().catch(() => {});
});
