// Scenario (j) service_enrollment_crud, Node: an individual enrollment's life cycle with the DPS
// service SDK (azure-iot-provisioning-service), and the device it provisions.
//
// With ProvisioningServiceClient.fromConnectionString(<the emulator's well-known DPS service
// connection string>), over HTTPS to the emulator (trusted through NODE_EXTRA_CA_CERTS):
// 1. createOrUpdateIndividualEnrollment with a symmetric-key attestation that carries no keys
//    (`attestation: { type: 'symmetricKey' }`, as the SDK's custom-allocation sample does): the
//    service generates them;
// 2. getIndividualEnrollment returns it with the same ETag;
// 3. getIndividualEnrollmentAttestationMechanism returns the generated keys (two distinct base64
//    keys);
// 4. the enrollment, as returned by get, updated with the keys and a new initial-twin tag and its
//    current ETag (If-Match) is accepted and gets a new ETag; the same update with the stale ETag
//    is refused with 412 (InvalidEtagError) and changes nothing; the keys are unchanged;
// 5. the device registers with the generated primary key (Node device SDK, MQTT): assigned with
//    the enrollment's device id;
// 6. getDeviceRegistrationState shows the assignment; deleteDeviceRegistrationState removes it
//    (GET then 404, the emulator has no record);
// 7. deleteIndividualEnrollment (If-Match: its ETag) removes the enrollment (GET then 404, the
//    emulator no longer lists it).
'use strict';

const ProvisioningServiceClient = require('azure-iot-provisioning-service').ProvisioningServiceClient;
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

/** `call()` must fail with HTTP `status`; returns the error. */
async function expectHttpError(s, what, status, call) {
  let result;
  try {
    result = await call();
  } catch (err) {
    const got = err && err.response && err.response.statusCode;
    s.info(`${what} failed as expected: ${h.describeError(err)} (HTTP ${got}, body ${err && err.responseBody})`);
    h.check(got === status, `${what}: expected HTTP ${status}, got ${got}: ${h.describeError(err)}`);
    return err;
  }
  throw new h.ScenarioFailure(`${what} succeeded, expected HTTP ${status}: ${JSON.stringify(result && result.responseBody)}`);
}

function checkKey(what, key) {
  h.check(typeof key === 'string' && key.length > 0, `${what} missing: ${JSON.stringify(key)}`);
  const raw = Buffer.from(key, 'base64');
  h.check(raw.length >= 16 && raw.toString('base64') === key, `${what} is not a base64 key of >= 16 bytes: ${key}`);
}

h.run('service_enrollment_crud', async (s) => {
  const connectionString = h.env('PROVISIONING_SERVICE_CONNECTION_STRING');
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');

  const serviceClient = ProvisioningServiceClient.fromConnectionString(connectionString);

  s.step('createOrUpdateIndividualEnrollment (symmetric key, no keys given)');
  const enrollment = {
    registrationId: registrationId,
    deviceId: expectedDeviceId,
    attestation: {
      type: 'symmetricKey',
    },
    provisioningStatus: 'enabled',
  };
  const { responseBody: created } = await serviceClient.createOrUpdateIndividualEnrollment(enrollment);
  console.log('created: ' + JSON.stringify(created));
  h.expectEqual('created registrationId', created.registrationId, registrationId);
  h.expectEqual('created deviceId', created.deviceId, expectedDeviceId);
  h.expectEqual('created attestation.type', created.attestation && created.attestation.type, 'symmetricKey');
  h.expectEqual('created provisioningStatus', created.provisioningStatus, 'enabled');
  h.check(typeof created.etag === 'string' && created.etag.length > 0, `created enrollment has no etag: ${created.etag}`);

  s.step('getIndividualEnrollment');
  const { responseBody: got } = await serviceClient.getIndividualEnrollment(registrationId);
  console.log('got: ' + JSON.stringify(got));
  h.expectEqual('get registrationId', got.registrationId, registrationId);
  h.expectEqual('get deviceId', got.deviceId, expectedDeviceId);
  h.expectEqual('get attestation.type', got.attestation && got.attestation.type, 'symmetricKey');
  h.expectEqual('get etag (unchanged since create)', got.etag, created.etag);

  s.step('getIndividualEnrollmentAttestationMechanism');
  const { responseBody: attestation } = await serviceClient.getIndividualEnrollmentAttestationMechanism(registrationId);
  h.expectEqual('attestation mechanism type', attestation.type, 'symmetricKey');
  const keys = attestation.symmetricKey || {};
  checkKey('generated primaryKey', keys.primaryKey);
  checkKey('generated secondaryKey', keys.secondaryKey);
  h.check(keys.primaryKey !== keys.secondaryKey, 'the generated primary and secondary keys are equal');
  s.info(`generated keys: primary ${Buffer.from(keys.primaryKey, 'base64').length} bytes, ` +
    `secondary ${Buffer.from(keys.secondaryKey, 'base64').length} bytes`);
  const listedBefore = await h.controlGet('/enrollments');
  h.check(listedBefore.status === 200 && Array.isArray(listedBefore.body), `GET /enrollments returned ${listedBefore.status}`);
  const stored = listedBefore.body.filter((e) => e && e.registrationId === registrationId);
  h.expectEqual(`enrollments named ${registrationId} in the emulator (GET /enrollments)`, stored.length, 1);
  const storedKeys = (stored[0].attestation && stored[0].attestation.symmetricKey) || {};
  h.expectEqual("the emulator's stored primaryKey", storedKeys.primaryKey, keys.primaryKey);
  h.expectEqual("the emulator's stored secondaryKey", storedKeys.secondaryKey, keys.secondaryKey);
  for (const [what, body] of [['create', created], ['get', got]]) {
    const shown = body.attestation.symmetricKey;
    if (shown && shown.primaryKey) {
      h.expectEqual(`primaryKey in the ${what} response`, shown.primaryKey, keys.primaryKey);
    }
  }

  s.step('update with the current etag (If-Match)');
  const update = got;
  update.attestation = attestation;
  update.initialTwin = { tags: { conformance: 'updated' }, properties: { desired: { interval: 5 } } };
  const { responseBody: updated } = await serviceClient.createOrUpdateIndividualEnrollment(update);
  console.log('updated: ' + JSON.stringify(updated));
  h.check(typeof updated.etag === 'string' && updated.etag.length > 0, `updated enrollment has no etag: ${updated.etag}`);
  h.check(updated.etag !== got.etag, `the update did not change the etag (${updated.etag})`);
  h.expectEqual('updated initialTwin tag', updated.initialTwin && updated.initialTwin.tags && updated.initialTwin.tags.conformance, 'updated');

  s.step('update with the stale etag: 412');
  const stale = Object.assign({}, update, {
    etag: got.etag,
    initialTwin: { tags: { conformance: 'stale' }, properties: { desired: { interval: 7 } } },
  });
  h.check(stale.etag === created.etag, 'test setup: the stale update must carry the first etag');
  const staleError = await expectHttpError(s, 'createOrUpdateIndividualEnrollment with the stale etag', 412, () =>
    serviceClient.createOrUpdateIndividualEnrollment(stale)
  );
  h.expectEqual('error type for 412', staleError.name || staleError.constructor.name, 'InvalidEtagError');
  const { responseBody: afterStale } = await serviceClient.getIndividualEnrollment(registrationId);
  h.expectEqual('etag after the refused update', afterStale.etag, updated.etag);
  h.expectEqual('initialTwin tag after the refused update',
    afterStale.initialTwin && afterStale.initialTwin.tags && afterStale.initialTwin.tags.conformance, 'updated');

  s.step('the keys are unchanged by the updates');
  const { responseBody: attestationAfter } = await serviceClient.getIndividualEnrollmentAttestationMechanism(registrationId);
  h.expectEqual('primaryKey after the updates', (attestationAfter.symmetricKey || {}).primaryKey, keys.primaryKey);
  h.expectEqual('secondaryKey after the updates', (attestationAfter.symmetricKey || {}).secondaryKey, keys.secondaryKey);

  s.step('register the device with the generated primary key (MQTT)');
  const provisioningClient = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new ProvisioningTransport(),
    new SymmetricKeySecurityClient(registrationId, keys.primaryKey)
  );
  const result = await provisioningClient.register();
  console.log('registration succeeded');
  console.log('assigned hub=' + result.assignedHub);
  console.log('deviceId=' + result.deviceId);
  h.expectEqual('registrationState.status', result.status, 'assigned');
  h.expectEqual('assigned hub', result.assignedHub, expectedHub);
  h.expectEqual('device id', result.deviceId, expectedDeviceId);

  s.step('getDeviceRegistrationState');
  const { responseBody: state } = await serviceClient.getDeviceRegistrationState(registrationId);
  console.log('registration state: ' + JSON.stringify(state));
  h.expectEqual('registration state registrationId', state.registrationId, registrationId);
  h.expectEqual('registration state status', state.status, 'assigned');
  h.expectEqual('registration state deviceId', state.deviceId, expectedDeviceId);
  h.expectEqual('registration state assignedHub', state.assignedHub, expectedHub);
  const record = await h.registrationRecord(registrationId);
  h.expectEqual('emulator record status', record.status, 'assigned');
  h.expectEqual('emulator record deviceId', record.deviceId, expectedDeviceId);

  s.step('deleteDeviceRegistrationState');
  await serviceClient.deleteDeviceRegistrationState(state);
  await expectHttpError(s, 'getDeviceRegistrationState after delete', 404, () =>
    serviceClient.getDeviceRegistrationState(registrationId)
  );
  const gone = await h.controlGet('/registrations/' + encodeURIComponent(registrationId));
  h.expectEqual(`control GET /registrations/${registrationId} after delete (status)`, gone.status, 404);

  s.step('deleteIndividualEnrollment (If-Match: its etag)');
  await serviceClient.deleteIndividualEnrollment(afterStale);
  await expectHttpError(s, 'getIndividualEnrollment after delete', 404, () =>
    serviceClient.getIndividualEnrollment(registrationId)
  );
  const listed = await h.controlGet('/enrollments');
  h.check(listed.status === 200 && Array.isArray(listed.body), `GET /enrollments returned ${listed.status}`);
  h.check(
    !listed.body.some((e) => e && e.registrationId === registrationId),
    `GET /enrollments still lists the deleted enrollment ${registrationId}`
  );
});
