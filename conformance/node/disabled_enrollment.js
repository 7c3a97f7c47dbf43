// Scenario (d) disabled enrollment, Node: register() on a disabled enrollment fails.
//
// The Node SDK's polling state machine accepts registering/assigning/assigned/failed; DPS answers
// a disabled individual enrollment with operation status `disabled`, which the SDK reports as an
// error (`SyntaxError: status is disabled`, with the service response in `err.result`). Asserts
// that error and that the emulator's registration record says `disabled`.
'use strict';

const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

const BOUND_MS = 20000;

h.run('disabled_enrollment', async (s) => {
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const symmetricKey = h.env('PROVISIONING_SYMMETRIC_KEY');

  s.step('register (enrollment is disabled)');
  const provisioningClient = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new ProvisioningTransport(),
    new SymmetricKeySecurityClient(registrationId, symmetricKey)
  );
  const started = Date.now();
  let error;
  let result;
  try {
    result = await h.withTimeout(provisioningClient.register(), BOUND_MS, 'register()');
  } catch (err) {
    if (err instanceof h.ScenarioFailure) throw err;
    error = err;
  }
  if (!error) throw new h.ScenarioFailure(`register() succeeded: ${JSON.stringify(result)}`);
  s.info(`register() failed after ${((Date.now() - started) / 1000).toFixed(2)} s: ${h.describeError(error)}`);
  s.info(`err.result = ${JSON.stringify(error.result)}`);

  s.step('check the error');
  const status = error.result && error.result.status;
  h.check(
    status === 'disabled' || /status is disabled/.test(error.message),
    `expected an error for operation status 'disabled', got ${h.describeError(error)} (result ${JSON.stringify(error.result)})`
  );

  s.step('check emulator registration record (GET /registrations)');
  const record = await h.registrationRecord(registrationId);
  h.expectEqual('record status', record.status, 'disabled');
});
