// Scenario service_dps_api, Node: enrollment groups, queries with paging, bulk operations and
// registration records with the DPS service SDK (azure-iot-provisioning-service), called as its
// samples call them, over HTTPS with the emulator's well-known DPS service connection string:
// 1. createOrUpdateEnrollmentGroup (symmetric key with given keys), getEnrollmentGroup (same
//    etag), getEnrollmentGroupAttestationMechanism (the keys), an update with the current etag
//    and a refused one (412) with the stale etag;
// 2. runBulkEnrollmentOperation: `create` of two individual enrollments succeeds; `create` of an
//    existing one reports a per-item 409 and changes nothing; `updateIfMatchEtag` (the SDK's
//    spelling of the mode) with the current etag succeeds, with the stale etag a per-item 412;
//    `delete` removes both. The SDK resolves no promise for this call (its callback adapter calls
//    back only when a callback was given), so it is called with a callback, as its sample does;
// 3. createEnrollmentGroupQuery and createIndividualEnrollmentQuery page through
//    `query.next(query.continuationToken)` (x-ms-max-item-count / x-ms-continuation) until
//    `hasMoreResults` is false:
//    several pages, none larger than asked, each item once, the set the emulator holds;
// 4. a device registers into the group with the derived key (MQTT);
//    createEnrollmentGroupDeviceRegistrationStateQuery lists it; getDeviceRegistrationState;
//    deleteDeviceRegistrationState with a stale etag is refused (412, the record stays), with
//    its etag it succeeds (then 404, the query is empty);
// 5. deleteEnrollmentGroup with its etag (then 404).
'use strict';

const crypto = require('crypto');
const ProvisioningServiceClient = require('azure-iot-provisioning-service').ProvisioningServiceClient;
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

const PAGE_SIZE = 2;

function newKey() {
  return crypto.randomBytes(32).toString('base64');
}

/** `call()` must fail with HTTP `status`. */
async function expectHttpError(s, what, status, call) {
  let result;
  try {
    result = await call();
  } catch (err) {
    const got = err && err.response && err.response.statusCode;
    s.info(`${what} failed as expected: ${h.describeError(err)} (HTTP ${got})`);
    h.check(got === status, `${what}: expected HTTP ${status}, got ${got}: ${h.describeError(err)}`);
    return err;
  }
  throw new h.ScenarioFailure(`${what} succeeded, expected HTTP ${status}: ${JSON.stringify(result && result.responseBody)}`);
}

/** runBulkEnrollmentOperation with a callback (see the header). */
function runBulk(client, operation) {
  return new Promise((resolve, reject) => {
    client.runBulkEnrollmentOperation(operation, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

/** Every page of a query, by `next(query.continuationToken)` while `hasMoreResults`, as the
 *  SDK's samples page (a bare `next()` starts from the first page again every time). */
async function allPages(query) {
  const pages = [];
  while (query.hasMoreResults) {
    const { responseBody } = await query.next(query.continuationToken);
    pages.push(responseBody);
    h.check(pages.length <= 100, 'the query does not end after 100 pages');
  }
  return pages;
}

function checkPages(what, pages, pageSize) {
  h.check(pages.length >= 2, `${what}: ${pages.length} page(s) with pageSize ${pageSize} (no paging)`);
  pages.forEach((page, i) => {
    h.check(Array.isArray(page) && page.length > 0 && page.length <= pageSize,
      `${what}: page ${i + 1} has ${Array.isArray(page) ? page.length : JSON.stringify(page)} items (pageSize ${pageSize})`);
  });
}

async function listedIds(path, key) {
  const listed = await h.controlGet(path);
  h.check(listed.status === 200 && Array.isArray(listed.body), `GET ${path} returned ${listed.status}`);
  return listed.body.map((item) => item[key]);
}

/** The query saw every item the emulator held both before and after it, and nothing it held at
 *  neither time (the other SDK lane runs at the same time and changes the collections). */
function expectListing(what, seen, before, after) {
  const missing = before.filter((id) => after.includes(id) && !seen.includes(id));
  const unknown = seen.filter((id) => !before.includes(id) && !after.includes(id));
  h.check(missing.length === 0, `${what}: missing ${JSON.stringify(missing)}`);
  h.check(unknown.length === 0, `${what}: unknown to the emulator: ${JSON.stringify(unknown)}`);
}

function symmetricKey(primaryKey, secondaryKey) {
  return { type: 'symmetricKey', symmetricKey: { primaryKey, secondaryKey } };
}

h.run('service_dps_api', async (s) => {
  const client = ProvisioningServiceClient.fromConnectionString(h.env('PROVISIONING_SERVICE_CONNECTION_STRING'));
  const prefix = h.env('SERVICE_REGISTRATION_ID_PREFIX');
  const groupId = h.env('SERVICE_ENROLLMENT_GROUP_ID');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');
  const bulkIds = [`${prefix}-bulk-1`, `${prefix}-bulk-2`];

  s.step('createOrUpdateEnrollmentGroup (symmetric key)');
  const groupKey = newKey();
  const secondaryKey = newKey();
  const { responseBody: group } = await client.createOrUpdateEnrollmentGroup({
    enrollmentGroupId: groupId,
    attestation: symmetricKey(groupKey, secondaryKey),
    provisioningStatus: 'enabled',
    initialTwin: { tags: { conformance: 'service_dps_api' }, properties: { desired: {} } },
  });
  console.log('created group: ' + JSON.stringify(group));
  h.expectEqual('created enrollmentGroupId', group.enrollmentGroupId, groupId);
  h.check(typeof group.etag === 'string' && group.etag.length > 0, `created group has no etag: ${group.etag}`);

  s.step('getEnrollmentGroup and getEnrollmentGroupAttestationMechanism');
  const { responseBody: got } = await client.getEnrollmentGroup(groupId);
  h.expectEqual('get etag (unchanged since create)', got.etag, group.etag);
  h.expectEqual('get attestation type', got.attestation && got.attestation.type, 'symmetricKey');
  const { responseBody: attestation } = await client.getEnrollmentGroupAttestationMechanism(groupId);
  h.expectEqual('attestation type', attestation.type, 'symmetricKey');
  h.expectEqual('attestation primaryKey', (attestation.symmetricKey || {}).primaryKey, groupKey);
  h.expectEqual('attestation secondaryKey', (attestation.symmetricKey || {}).secondaryKey, secondaryKey);

  s.step('update the group with its etag; the stale etag is refused with 412');
  const { responseBody: updatedGroup } = await client.createOrUpdateEnrollmentGroup(Object.assign({}, got, {
    attestation: attestation,
    initialTwin: { tags: { conformance: 'updated' }, properties: { desired: {} } },
  }));
  h.check(updatedGroup.etag && updatedGroup.etag !== got.etag, `the update did not change the etag (${updatedGroup.etag})`);
  await expectHttpError(s, 'createOrUpdateEnrollmentGroup with the stale etag', 412, () =>
    client.createOrUpdateEnrollmentGroup(Object.assign({}, got, { attestation: attestation })));
  const { responseBody: afterStale } = await client.getEnrollmentGroup(groupId);
  h.expectEqual('group etag after the refused update', afterStale.etag, updatedGroup.etag);

  s.step('runBulkEnrollmentOperation create (two individual enrollments)');
  const enrollments = bulkIds.map((id) => ({
    registrationId: id,
    attestation: symmetricKey(newKey(), newKey()),
    provisioningStatus: 'enabled',
  }));
  let result = await runBulk(client, { mode: 'create', enrollments });
  console.log('bulk create: ' + JSON.stringify(result));
  h.check(result.isSuccessful === true && (result.errors || []).length === 0, `bulk create failed: ${JSON.stringify(result)}`);

  s.step('runBulkEnrollmentOperation create of an existing enrollment: per-item 409');
  const { responseBody: before } = await client.getIndividualEnrollment(bulkIds[0]);
  result = await runBulk(client, { mode: 'create', enrollments: [enrollments[0]] });
  console.log('bulk create again: ' + JSON.stringify(result));
  h.check(result.isSuccessful === false, 'bulk create of an existing enrollment succeeded');
  h.check(result.errors.length === 1 && result.errors[0].registrationId === bulkIds[0] &&
    Math.floor(result.errors[0].errorCode / 1000) === 409, `expected one 409xxx error: ${JSON.stringify(result.errors)}`);
  const { responseBody: unchanged } = await client.getIndividualEnrollment(bulkIds[0]);
  h.expectEqual('etag after the refused bulk create', unchanged.etag, before.etag);

  s.step('runBulkEnrollmentOperation updateIfMatchEtag: current etag accepted, stale etag refused');
  const update = Object.assign({}, before, { initialTwin: { tags: { bulk: 'updated' }, properties: { desired: {} } } });
  result = await runBulk(client, { mode: 'updateIfMatchEtag', enrollments: [update] });
  console.log('bulk update: ' + JSON.stringify(result));
  h.check(result.isSuccessful === true, `bulk updateIfMatchEtag failed: ${JSON.stringify(result)}`);
  const { responseBody: updated } = await client.getIndividualEnrollment(bulkIds[0]);
  h.check(updated.etag !== before.etag, 'the bulk update did not change the etag');
  h.expectEqual('bulk-updated tag', updated.initialTwin && updated.initialTwin.tags && updated.initialTwin.tags.bulk, 'updated');
  result = await runBulk(client, { mode: 'updateIfMatchEtag', enrollments: [update] });
  console.log('bulk update with the stale etag: ' + JSON.stringify(result));
  h.check(result.isSuccessful === false && result.errors.length === 1 &&
    Math.floor(result.errors[0].errorCode / 1000) === 412, `expected one 412xxx error: ${JSON.stringify(result)}`);

  s.step(`createIndividualEnrollmentQuery and createEnrollmentGroupQuery, ${PAGE_SIZE} per page`);
  let listedBefore = await listedIds('/enrollments', 'registrationId');
  const enrollmentPages = await allPages(client.createIndividualEnrollmentQuery({ query: '*' }, PAGE_SIZE));
  let listedAfter = await listedIds('/enrollments', 'registrationId');
  const enrollmentIds = enrollmentPages.flat().map((e) => e.registrationId);
  s.info(`enrollment pages: ${JSON.stringify(enrollmentPages.map((p) => p.map((e) => e.registrationId)))}`);
  checkPages('individual enrollment query', enrollmentPages, PAGE_SIZE);
  h.expectEqual('distinct enrollments returned', new Set(enrollmentIds).size, enrollmentIds.length);
  expectListing('enrollments returned by the paged query', enrollmentIds, listedBefore, listedAfter);
  listedBefore = await listedIds('/enrollmentGroups', 'enrollmentGroupId');
  const groupPages = await allPages(client.createEnrollmentGroupQuery({ query: '*' }, 1));
  listedAfter = await listedIds('/enrollmentGroups', 'enrollmentGroupId');
  const groupIds = groupPages.flat().map((g) => g.enrollmentGroupId);
  s.info(`group pages: ${JSON.stringify(groupPages.map((p) => p.map((g) => g.enrollmentGroupId)))}`);
  checkPages('enrollment group query', groupPages, 1);
  h.expectEqual('distinct groups returned', new Set(groupIds).size, groupIds.length);
  h.check(groupIds.includes(groupId), `the group query did not return ${groupId}`);
  expectListing('groups returned by the paged query', groupIds, listedBefore, listedAfter);

  s.step('runBulkEnrollmentOperation delete');
  result = await runBulk(client, { mode: 'delete', enrollments: enrollments });
  h.check(result.isSuccessful === true, `bulk delete failed: ${JSON.stringify(result)}`);
  for (const id of bulkIds) {
    await expectHttpError(s, `getIndividualEnrollment(${id}) after bulk delete`, 404, () => client.getIndividualEnrollment(id));
  }

  s.step('a device registers into the group with the derived key (MQTT)');
  const provisioningClient = ProvisioningDeviceClient.create(h.env('PROVISIONING_HOST'), h.env('PROVISIONING_IDSCOPE'),
    new ProvisioningTransport(), new SymmetricKeySecurityClient(registrationId, h.deriveDeviceKey(groupKey, registrationId)));
  const registration = await provisioningClient.register();
  h.expectEqual('registration status', registration.status, 'assigned');
  h.expectEqual('assigned hub', registration.assignedHub, expectedHub);

  s.step('createEnrollmentGroupDeviceRegistrationStateQuery, 1 per page');
  let statePages = await allPages(client.createEnrollmentGroupDeviceRegistrationStateQuery({ query: '*' }, groupId, 1));
  h.expectDeepEqual('registration states of the group', statePages.flat().map((r) => r.registrationId), [registrationId]);
  h.expectEqual('queried registration status', statePages[0][0].status, 'assigned');

  s.step('getDeviceRegistrationState, deleteDeviceRegistrationState with its etag');
  const { responseBody: state } = await client.getDeviceRegistrationState(registrationId);
  h.expectEqual('registration state status', state.status, 'assigned');
  h.check(state.etag, `the registration state has no etag: ${JSON.stringify(state)}`);
  await expectHttpError(s, 'deleteDeviceRegistrationState with a stale etag', 412, () =>
    client.deleteDeviceRegistrationState(registrationId, '"stale"'));
  const { responseBody: kept } = await client.getDeviceRegistrationState(registrationId);
  h.expectEqual('registration state etag after the refused delete', kept.etag, state.etag);
  await client.deleteDeviceRegistrationState(registrationId, state.etag);
  await expectHttpError(s, 'getDeviceRegistrationState after delete', 404, () => client.getDeviceRegistrationState(registrationId));
  statePages = await allPages(client.createEnrollmentGroupDeviceRegistrationStateQuery({ query: '*' }, groupId, 1));
  h.expectDeepEqual('registration states of the group after delete', statePages.flat(), []);

  s.step('deleteEnrollmentGroup with its etag');
  await expectHttpError(s, 'deleteEnrollmentGroup with the stale etag', 412, () => client.deleteEnrollmentGroup(groupId, got.etag));
  await client.deleteEnrollmentGroup(groupId, updatedGroup.etag);
  await expectHttpError(s, 'getEnrollmentGroup after delete', 404, () => client.getEnrollmentGroup(groupId));
});
