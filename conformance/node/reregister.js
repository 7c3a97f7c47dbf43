// Scenario (e) re-registration, Node: registering the same device twice is stable.
//
// Two registrations (a fresh client each time, as after a reboot) must give the same assigned hub
// and device id, and the device must still connect to the hub with its key afterwards.
'use strict';

const iotHubTransport = require('azure-iot-device-mqtt').Mqtt;
const Client = require('azure-iot-device').Client;
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

h.run('reregister', async (s) => {
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const symmetricKey = h.env('PROVISIONING_SYMMETRIC_KEY');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');

  const results = [];
  for (const attempt of [1, 2]) {
    s.step(`register #${attempt}`);
    const provisioningClient = ProvisioningDeviceClient.create(
      provisioningHost,
      idScope,
      new ProvisioningTransport(),
      new SymmetricKeySecurityClient(registrationId, symmetricKey)
    );
    const result = await provisioningClient.register();
    s.info(`status=${result.status} hub=${result.assignedHub} device=${result.deviceId} substatus=${result.substatus}`);
    h.expectEqual(`registration #${attempt} status`, result.status, 'assigned');
    results.push(result);
  }

  s.step('compare the two registrations');
  const [first, second] = results;
  h.expectEqual('assigned hub (first registration)', first.assignedHub, expectedHub);
  h.expectEqual('device id (first registration)', first.deviceId, expectedDeviceId);
  h.expectEqual('assigned hub (second vs first)', second.assignedHub, first.assignedHub);
  h.expectEqual('device id (second vs first)', second.deviceId, first.deviceId);

  s.step('check emulator registration record (GET /registrations)');
  const record = await h.registrationRecord(registrationId);
  h.expectEqual('record status', record.status, 'assigned');
  h.expectEqual('record deviceId', record.deviceId, expectedDeviceId);

  s.step('connect to hub after re-registration');
  const hubClient = Client.fromConnectionString(
    'HostName=' + second.assignedHub + ';DeviceId=' + second.deviceId + ';SharedAccessKey=' + symmetricKey,
    iotHubTransport
  );
  await hubClient.open();
  await hubClient.close();
});
