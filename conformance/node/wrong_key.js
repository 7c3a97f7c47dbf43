// Scenario (c) wrong key, Node: a bad symmetric key is refused promptly, without a retry storm.
//
// 1. DPS: register() with a wrong key must fail with an authorization error (mqtt.js reports the
//    CONNACK refusal "Not authorized"; the SDK's UnauthorizedError) within AUTH_FAILURE_BOUND_MS;
//    the emulator log is searched for the CONNECTs it received from that registration id.
// 2. register() with the right key, so the hub device exists.
// 3. Hub: Client.open() with a wrong device key must fail the same way, within the same bound.
'use strict';

const crypto = require('crypto');

const iotHubTransport = require('azure-iot-device-mqtt').Mqtt;
const Client = require('azure-iot-device').Client;
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

const AUTH_FAILURE_BOUND_MS = 20000;
const MAX_CONNECT_ATTEMPTS = 3;
const AUTHORIZATION_ERROR = /unauthori[sz]ed|not authori[sz]ed/i;

const wrongKey = () => crypto.randomBytes(64).toString('base64');

async function expectAuthorizationFailure(s, what, clientId, call) {
  const offset = h.logOffset();
  const started = Date.now();
  let result;
  let error;
  try {
    result = await h.withTimeout(call(), AUTH_FAILURE_BOUND_MS, `${what} with a wrong key`);
  } catch (err) {
    if (err instanceof h.ScenarioFailure) throw err;
    error = err;
  }
  if (!error) throw new h.ScenarioFailure(`${what} succeeded with a wrong key: ${JSON.stringify(result)}`);
  const described = h.describeError(error);
  s.info(`${what} failed after ${((Date.now() - started) / 1000).toFixed(2)} s: ${described}`);
  h.check(AUTHORIZATION_ERROR.test(described), `${what}: expected an authorization error, got ${described}`);

  const { attempts, refused, lines } = h.countConnectAttempts(offset, clientId);
  // The emulator logs one line per CONNECT outcome; not finding them means this check could
  // no longer see a retry storm, so that is a failure, not a skip.
  h.check(attempts !== null, `${what}: emulator log unavailable: connection attempts cannot be counted`);
  h.check(
    attempts > 0,
    `${what}: emulator log has ${lines.length} line(s) naming ${clientId} but no CONNECT outcome (did the log wording change?)`
  );
  s.info(`emulator logged ${attempts} CONNECT(s) from ${clientId} during the call, ${refused} refused`);
  h.check(
    attempts <= MAX_CONNECT_ATTEMPTS,
    `${what}: emulator saw ${attempts} CONNECTs from ${clientId} for one call (retry storm)`
  );
  return error;
}

h.run('wrong_key', async (s) => {
  const scenarioOffset = h.logOffset();
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const symmetricKey = h.env('PROVISIONING_SYMMETRIC_KEY');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');

  s.step('register with a wrong key');
  const badClient = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new ProvisioningTransport(),
    new SymmetricKeySecurityClient(registrationId, wrongKey())
  );
  await expectAuthorizationFailure(s, 'register()', registrationId, () => badClient.register());

  s.step('register with the right key');
  const client = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new ProvisioningTransport(),
    new SymmetricKeySecurityClient(registrationId, symmetricKey)
  );
  const result = await client.register();
  h.expectEqual('device id', result.deviceId, expectedDeviceId);
  h.expectEqual('assigned hub', result.assignedHub, expectedHub);

  s.step('connect to hub with a wrong key');
  const hubClient = Client.fromConnectionString(
    'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';SharedAccessKey=' + wrongKey(),
    iotHubTransport
  );
  await expectAuthorizationFailure(s, 'Client.open()', expectedDeviceId, () => hubClient.open());
  await hubClient.close().catch(() => {});

  s.step('count refused CONNECTs over the whole scenario');
  for (const clientId of [registrationId, expectedDeviceId]) {
    const { attempts, refused } = h.countConnectAttempts(scenarioOffset, clientId);
    if (attempts) {
      s.info(`${clientId}: ${attempts} CONNECT(s), ${refused} refused`);
      h.check(
        refused <= MAX_CONNECT_ATTEMPTS,
        `emulator refused ${refused} CONNECTs from ${clientId} (the SDK retried a wrong key)`
      );
    }
  }
});
