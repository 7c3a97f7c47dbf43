// Scenario (b) group enrollment, Node: a device of a symmetric-key enrollment group.
//
// As in the SDK's sample register_symkeygroup.js: PROVISIONING_SYMMETRIC_KEY is the group key and
// the device key is derived from it for a registration id that is in no individual enrollment.
// Asserts: assigned with device id = registration id, the emulator's registration record agrees,
// and one message sent with the derived key is stored by the hub.
'use strict';

const crypto = require('crypto');

const iotHubTransport = require('azure-iot-device-mqtt').Mqtt;
const Client = require('azure-iot-device').Client;
const Message = require('azure-iot-device').Message;
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

function computeDerivedSymmetricKey(masterKey, regId) {
  return crypto.createHmac('SHA256', Buffer.from(masterKey, 'base64')).update(regId, 'utf8').digest('base64');
}

h.run('group_enrollment', async (s) => {
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const groupKey = h.env('PROVISIONING_SYMMETRIC_KEY');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');

  s.step('derive device key from group key');
  const symmetricKey = computeDerivedSymmetricKey(groupKey, registrationId);
  h.check(symmetricKey === h.deriveDeviceKey(groupKey, registrationId), 'key derivation mismatch');

  s.step('register');
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
  h.expectEqual('record assignedHub', record.assignedHub, expectedHub);
  s.info(`record symmetricKey.enrollmentGroupId = ${JSON.stringify((record.symmetricKey || {}).enrollmentGroupId)}`);

  s.step('connect to hub with the derived key');
  const hubClient = Client.fromConnectionString(
    'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';SharedAccessKey=' + symmetricKey,
    iotHubTransport
  );
  await hubClient.open();

  s.step('send one message');
  const message = new Message('group device telemetry');
  message.messageId = crypto.randomUUID();
  message.properties.add('scenario', 'group_enrollment');
  await hubClient.sendEvent(message);
  await hubClient.close();

  s.step('observe telemetry in the emulator (GET /telemetry)');
  const found = await h.waitForTelemetry(expectedDeviceId, new Set([message.messageId]));
  h.check(found.has(message.messageId), `message ${message.messageId} not stored by the hub`);
  h.checkStoredMessage(found.get(message.messageId), expectedDeviceId, 'group device telemetry', {
    scenario: 'group_enrollment',
  });
});
