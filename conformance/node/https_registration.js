// Scenario (k) https_registration, Node: DPS symmetric-key registration over HTTPS.
//
// The SDK's register_symkey.js with the HTTP transport instead of MQTT:
// ProvisioningDeviceClient.create(host, idScope, new Http(), new SymmetricKeySecurityClient(regId, key))
// (azure-iot-provisioning-device-http: PUT /{idScope}/registrations/{id}/register, then GET
// .../operations/{operationId} polls honouring `retry-after`, on port 443, trusting the emulator
// CA through NODE_EXTRA_CA_CERTS). In order:
// 1. a wrong key: register() fails promptly (within 20 s) with an authorization error
//    (UnauthorizedError from the 401 response), after at most 3 register requests (the emulator
//    logs one "HTTPS request ... method=PUT path=<idScope>/registrations/<id>/register status=<code>"
//    line per request at debug level), and nothing is provisioned;
// 2. the enrollment's key: assigned to the expected hub with the enrollment's device id and
//    substatus initialAssignment; the emulator's registration record (GET /registrations/{id})
//    agrees.
'use strict';

const crypto = require('crypto');

const ProvisioningTransport = require('azure-iot-provisioning-device-http').Http;
const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

const REFUSAL_BOUND_MS = 20000;
const MAX_REFUSED_REQUESTS = 3;
const AUTHORIZATION_ERROR = /unauthori[sz]ed/i;

/** { requests, statuses }: register PUTs for `registrationId` the emulator logged after `offset`. */
function countRegisterRequests(offset, registrationId) {
  const needle = `registrations/${registrationId}/register`;
  const lines = h.logLinesSince(offset, needle).filter((l) => /\bHTTPS request\b/.test(l) && /\bPUT\b/.test(l));
  return { requests: lines.length, statuses: lines.map((l) => (l.match(/\bstatus=(\d+)/) || [])[1]) };
}

h.run('https_registration', async (s) => {
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const symmetricKey = h.env('PROVISIONING_SYMMETRIC_KEY');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');

  s.step('register over HTTPS with a wrong key');
  const wrongKey = crypto.randomBytes(64).toString('base64');
  const wrongClient = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new ProvisioningTransport(),
    new SymmetricKeySecurityClient(registrationId, wrongKey)
  );
  const offset = h.logOffset();
  const started = Date.now();
  let wrongResult;
  let wrongError;
  try {
    wrongResult = await h.withTimeout(wrongClient.register(), REFUSAL_BOUND_MS, 'register() with a wrong key (must be refused)');
  } catch (err) {
    if (err instanceof h.ScenarioFailure) throw err;
    wrongError = err;
  }
  h.check(wrongError !== undefined, `register() with a wrong key succeeded, but must be refused: ${JSON.stringify(wrongResult)}`);
  const described = h.describeError(wrongError);
  const status = wrongError.response && wrongError.response.statusCode;
  s.info(`refused after ${((Date.now() - started) / 1000).toFixed(2)} s: ${described} (HTTP ${status})`);
  h.check(
    AUTHORIZATION_ERROR.test(described),
    `register() with a wrong key: expected an authorization error (UnauthorizedError, HTTP 401), got ${described}`
  );
  const { requests, statuses } = countRegisterRequests(offset, registrationId);
  s.info(`emulator logged ${requests} register request(s) for ${registrationId} during the call, statuses ${statuses.join(', ')}`);
  h.check(
    requests > 0,
    `emulator log has no "HTTPS request ... PUT ... registrations/${registrationId}/register" line (did the log wording change?)`
  );
  h.check(requests <= MAX_REFUSED_REQUESTS, `emulator saw ${requests} register requests for one register() call (retry storm)`);
  h.check(statuses.every((st) => st === '401'), `the refused register requests were answered ${statuses.join(', ')}, expected 401`);

  s.step('check nothing was provisioned for the wrong key');
  await h.expectNotProvisioned(registrationId, expectedDeviceId);

  s.step('register over HTTPS with the enrollment key');
  const provisioningClient = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new ProvisioningTransport(),
    new SymmetricKeySecurityClient(registrationId, symmetricKey)
  );
  const result = await provisioningClient.register();
  console.log('registration succeeded');
  console.log('assigned hub=' + result.assignedHub);
  console.log('deviceId=' + result.deviceId);

  s.step('check registration result');
  h.expectEqual('registrationState.status', result.status, 'assigned');
  h.expectEqual('assigned hub', result.assignedHub, expectedHub);
  h.expectEqual('device id', result.deviceId, expectedDeviceId);
  h.expectEqual('substatus', result.substatus, 'initialAssignment');
  h.expectEqual('registrationId', result.registrationId, registrationId);

  s.step('check emulator registration record (GET /registrations)');
  const record = await h.registrationRecord(registrationId);
  h.expectEqual('record status', record.status, 'assigned');
  h.expectEqual('record deviceId', record.deviceId, expectedDeviceId);
  h.expectEqual('record assignedHub', record.assignedHub, expectedHub);
  h.expectEqual('record registrationId', record.registrationId, registrationId);
});
