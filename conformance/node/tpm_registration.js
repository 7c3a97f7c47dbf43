// Scenario tpm_registration, Node: DPS TPM attestation over HTTPS with a real (software) TPM.
//
// The scenario starts Debian's `swtpm` (socket mode, fresh TPM state in a temporary directory,
// `--flags not-need-init,startup-clear`) on 127.0.0.1:2323, where tss.js falls back when the
// machine has no /dev/tpm0 (spec/tpm.md Q1), so the SDK's default `new TpmSecurityClient()`
// uses it unchanged. Then, with the unmodified packages (azure-iot-security-tpm + tss.js,
// azure-iot-provisioning-device-http, azure-iot-provisioning-service, azure-iot-device-mqtt),
// following the SDK's register_tpm.js sample:
// 1. the TPM's EK and registration id (lower-case base32 of SHA-256 of the EK) are read;
// 2. wrong EK: the service SDK enrolls that registration id with another TPM's EK (the swtpm
//    EK committed in emulator/src/auth/tpm/testdata/ek.pub); register() fails promptly, every
//    register request the emulator logged was answered 401 (no challenge is sent for an EK
//    that is not enrolled), nothing is provisioned;
// 3. disabled enrollment: the enrollment gets the TPM's own EK with provisioningStatus
//    'disabled'; the device passes the challenge and register() fails with status 'disabled'
//    (the emulator's record says disabled);
// 4. the enrollment is enabled: register() passes the challenge (401 with authenticationKey and
//    keyName, ActivateCredential + Import in swtpm, SAS signed inside the TPM), is assigned to
//    the expected hub with the enrollment's device id, and `registrationState.tpm
//    .authenticationKey` carries the hub key, which the SDK imports into the TPM;
//    TpmAuthenticationProvider.fromTpmSecurityClient + Client.fromAuthenticationProvider(…, Mqtt)
//    then connect to the hub with SAS tokens signed by the TPM and send one message, which the
//    emulator stored (GET /telemetry);
// 5. a device that cannot answer the challenge: a second registration id enrolled with the
//    committed EK, claimed by this TPM (the security client reports that EK, the TPM itself is
//    unchanged): the emulator sends a challenge for that EK, which this TPM cannot activate
//    (ActivateCredential fails; the SDK then throws instead of calling back, see below), so no
//    signed request follows and nothing is provisioned.
'use strict';

const fs = require('fs');
const path = require('path');

const ProvisioningServiceClient = require('azure-iot-provisioning-service').ProvisioningServiceClient;
const ProvisioningTransport = require('azure-iot-provisioning-device-http').Http;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;
const tpmSecurity = require('azure-iot-security-tpm');
const Client = require('azure-iot-device').Client;
const Message = require('azure-iot-device').Message;
const Mqtt = require('azure-iot-device-mqtt').Mqtt;

const h = require('./harness');
const { startSwtpm, tpmCall } = require('./swtpm');

const BOUND_MS = 30000;
const OTHER_EK = path.join(__dirname, '..', '..', 'emulator', 'src', 'auth', 'tpm', 'testdata', 'ek.pub');

/** register() must fail within BOUND_MS; returns the error. `extra` may reject first. */
async function expectRegisterFails(s, what, provisioningClient, extra = new Promise(() => {})) {
  const started = Date.now();
  let result;
  try {
    result = await h.withTimeout(Promise.race([provisioningClient.register(), extra]), BOUND_MS, what);
  } catch (err) {
    if (err instanceof h.ScenarioFailure) throw err;
    s.info(`${what}: failed after ${((Date.now() - started) / 1000).toFixed(2)} s: ${h.describeError(err)}`);
    return err;
  }
  throw new h.ScenarioFailure(`${what} succeeded, but must fail: ${JSON.stringify(result)}`);
}

/** Register PUTs for `registrationId` the emulator logged after `offset`, with their statuses. */
function registerRequests(offset, registrationId) {
  const needle = `registrations/${registrationId}/register`;
  const lines = h.logLinesSince(offset, needle).filter((l) => /\bHTTPS request\b/.test(l) && /\bPUT\b/.test(l));
  return lines.map((l) => (l.match(/\bstatus=(\d+)/) || [])[1]);
}

h.run('tpm_registration', async (s) => {
  const connectionString = h.env('PROVISIONING_SERVICE_CONNECTION_STRING');
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');
  const impostorId = h.env('IMPOSTOR_REGISTRATION_ID');
  const otherEk = fs.readFileSync(OTHER_EK);

  s.step('start swtpm');
  await startSwtpm(s);

  s.step('read the TPM endorsement key and registration id');
  const securityClient = new tpmSecurity.TpmSecurityClient();
  const ek = await tpmCall(securityClient, 'getEndorsementKey');
  const registrationId = await tpmCall(securityClient, 'getRegistrationId');
  s.info(`EK ${ek.length} bytes, registration id ${registrationId}`);
  h.check(!ek.equals(otherEk), 'the fresh swtpm has the committed test EK (impossible unless the state was reused)');
  const serviceClient = ProvisioningServiceClient.fromConnectionString(connectionString);
  const enroll = async (id, endorsementKey, provisioningStatus, deviceId) => {
    const { responseBody } = await serviceClient.createOrUpdateIndividualEnrollment({
      registrationId: id,
      deviceId,
      attestation: { type: 'tpm', tpm: { endorsementKey: endorsementKey.toString('base64') } },
      provisioningStatus,
    });
    const current = await serviceClient.getIndividualEnrollment(id);
    h.expectEqual('enrollment attestation type', current.responseBody.attestation.type, 'tpm');
    return responseBody;
  };
  const newClient = (security) => ProvisioningDeviceClient.create(provisioningHost, idScope, new ProvisioningTransport(), security);

  s.step('wrong EK: enrollment with another TPM\'s EK, register() must fail');
  await enroll(registrationId, otherEk, 'enabled', expectedDeviceId);
  let offset = h.logOffset();
  await expectRegisterFails(s, 'register() with an EK that is not the enrolled one', newClient(securityClient));
  let statuses = registerRequests(offset, registrationId);
  s.info(`emulator answered the register request(s) with ${statuses.join(', ')}`);
  h.check(statuses.length > 0 && statuses.length <= 3, `expected 1 to 3 register requests, the emulator logged ${statuses.length}`);
  h.check(statuses.every((st) => st === '401'), `register requests answered ${statuses.join(', ')}, expected 401`);
  await h.expectNotProvisioned(registrationId, expectedDeviceId);

  s.step('disabled enrollment: register() must fail with status disabled');
  // Delete and create again: the enrollment's EK changes (the service refuses no update, but
  // this also drops the previous registration state).
  await serviceClient.deleteIndividualEnrollment(registrationId);
  await enroll(registrationId, ek, 'disabled', expectedDeviceId);
  const disabled = await expectRegisterFails(s, 'register() on a disabled enrollment', newClient(securityClient));
  const status = disabled.result && (disabled.result.status || (disabled.result.registrationState || {}).status);
  h.check(
    status === 'disabled' || /status is disabled/.test(disabled.message),
    `expected an error for operation status 'disabled', got ${h.describeError(disabled)} (result ${JSON.stringify(disabled.result)})`
  );
  const disabledRecord = await h.registrationRecord(registrationId);
  h.expectEqual('record status', disabledRecord.status, 'disabled');

  s.step('enabled enrollment: register() with the TPM');
  await enroll(registrationId, ek, 'enabled', expectedDeviceId);
  offset = h.logOffset();
  const result = await h.withTimeout(newClient(securityClient).register(), BOUND_MS, 'register() with the TPM');
  console.log('registration succeeded');
  console.log('assigned hub=' + result.registrationState.assignedHub);
  console.log('deviceId=' + result.registrationState.deviceId);
  const state = result.registrationState;
  h.expectEqual('registrationState.status', state.status, 'assigned');
  h.expectEqual('assigned hub', state.assignedHub, expectedHub);
  h.expectEqual('device id', state.deviceId, expectedDeviceId);
  h.expectEqual('registrationId', state.registrationId, registrationId);
  h.check(
    state.tpm && typeof state.tpm.authenticationKey === 'string' && state.tpm.authenticationKey.length > 0,
    `registrationState.tpm.authenticationKey missing: ${JSON.stringify(state.tpm)}`
  );
  statuses = registerRequests(offset, registrationId);
  s.info(`emulator answered the register requests with ${statuses.join(', ')}`);
  h.check(statuses[0] === '401' && statuses.includes('202'), `expected the challenge (401) then 202, got ${statuses.join(', ')}`);
  const record = await h.registrationRecord(registrationId);
  h.expectEqual('record status', record.status, 'assigned');
  h.expectEqual('record deviceId', record.deviceId, expectedDeviceId);

  s.step('connect to the hub with SAS tokens signed by the TPM (MQTT) and send a message');
  const provider = tpmSecurity.TpmAuthenticationProvider.fromTpmSecurityClient(state.deviceId, state.assignedHub, securityClient);
  const hubClient = Client.fromAuthenticationProvider(provider, Mqtt);
  await h.withTimeout(hubClient.open(), BOUND_MS, 'Client.open() with the TPM authentication provider');
  const messageId = `tpm-${Date.now()}`;
  const message = new Message(JSON.stringify({ attestation: 'tpm' }));
  message.messageId = messageId;
  await h.withTimeout(hubClient.sendEvent(message), BOUND_MS, 'sendEvent()');
  await hubClient.close();
  const stored = await h.waitForTelemetry(expectedDeviceId, new Set([messageId]));
  h.check(stored.has(messageId), `the emulator stored no message ${messageId} for ${expectedDeviceId}`);

  s.step('a device that cannot answer the challenge (claims an EK it does not own)');
  await enroll(impostorId, otherEk, 'enabled', undefined);
  const impostor = {
    getEndorsementKey: (callback) => callback(null, otherEk),
    getStorageRootKey: (callback) => securityClient.getStorageRootKey(callback),
    getRegistrationId: (callback) => callback(null, impostorId),
    activateIdentityKey: (key, callback) => securityClient.activateIdentityKey(key, callback),
    signWithIdentity: (data, callback) => securityClient.signWithIdentity(data, callback),
    cancel: (callback) => callback(),
  };
  offset = h.logOffset();
  // When ActivateCredential fails, azure-iot-security-tpm 1.9.3 throws a TypeError from a tss.js
  // callback (it reads the length of the missing result) instead of calling back with the
  // error; catch it for this one call.
  let onCrash;
  const crash = new Promise((_, reject) => {
    onCrash = (err) => reject(err);
    process.once('uncaughtException', onCrash);
  });
  const refused = await expectRegisterFails(s, 'register() claiming an EK the TPM does not hold', newClient(impostor), crash);
  process.removeListener('uncaughtException', onCrash);
  h.check(!(refused instanceof h.ScenarioFailure), `unexpected failure: ${h.describeError(refused)}`);
  statuses = registerRequests(offset, impostorId);
  s.info(`emulator answered the impostor's register request(s) with ${statuses.join(', ')}`);
  h.check(statuses.length === 1 && statuses[0] === '401', `expected one challenged request (401), got ${statuses.join(', ')}`);
  h.check(
    h.logLinesSince(offset, impostorId).some((l) => /TPM challenge issued/.test(l)),
    'the emulator log does not show the challenge for the impostor'
  );
  await h.expectNotProvisioned(impostorId, impostorId);
}, { timeoutSeconds: 120 });
