// Scenario service_query, Node: the hub's twin query with azure-iothub's Registry.createQuery
// (POST /devices/query over HTTPS, iothubowner), paged as the SDK's query sample pages it:
//
//     const query = registry.createQuery('SELECT * FROM devices', pageSize);
//     const onResults = (err, results) => { ...; if (query.hasMoreResults) query.nextAsTwin(onResults); };
//     query.nextAsTwin(onResults);
//
// Three devices are created (Registry.create) and tagged (Registry.updateTwin), one module is
// added to the first (Registry.addModule). Then:
// 1. 'SELECT * FROM devices' with pageSize 1 through nextAsTwin until hasMoreResults is false: one
//    Twin per page, each device once, the devices the emulator holds (control port GET /devices
//    before and after, as the other lane adds and removes devices meanwhile);
// 2. WHERE on tags gives exactly the three devices (as Twin objects with their tags); `AND
//    tags.index >= 1` two of them;
// 3. 'SELECT COUNT() AS numberOfDevices FROM devices WHERE …' through query.next() gives
//    [{numberOfDevices: 3}];
// 4. 'SELECT * FROM devices.modules WHERE deviceId = …' gives the module twin;
// 5. a query the hub cannot parse is refused with HTTP 400;
// 6. the devices are deleted; the tag query then returns nothing.
'use strict';

const crypto = require('crypto');
const { Registry } = require('azure-iothub');

const h = require('./harness');

function newKey() {
  return crypto.randomBytes(32).toString('base64');
}

/** Every page of `query` through nextAsTwin, callback style as in the SDK's sample. */
function allTwinPages(query) {
  return new Promise((resolve, reject) => {
    const pages = [];
    const onResults = (err, results) => {
      if (err) return reject(err);
      pages.push(results);
      if (pages.length > 100) return reject(new h.ScenarioFailure('the query does not end after 100 pages'));
      if (query.hasMoreResults) {
        query.nextAsTwin(onResults);
      } else {
        resolve(pages);
      }
    };
    query.nextAsTwin(onResults);
  });
}

async function listedDeviceIds() {
  const listed = await h.controlGet('/devices');
  h.check(listed.status === 200 && Array.isArray(listed.body), `GET /devices returned ${listed.status}`);
  return listed.body.map((d) => d.deviceId);
}

/** Every device held both before and after the query was returned, and none held at neither time. */
function expectListing(what, seen, before, after) {
  const missing = before.filter((id) => after.includes(id) && !seen.includes(id));
  const unknown = seen.filter((id) => !before.includes(id) && !after.includes(id));
  h.check(missing.length === 0, `${what}: missing ${JSON.stringify(missing)}`);
  h.check(unknown.length === 0, `${what}: unknown to the emulator: ${JSON.stringify(unknown)}`);
}

async function queryIds(registry, sql) {
  const pages = await allTwinPages(registry.createQuery(sql));
  h.expectEqual(`pages of ${sql}`, pages.length, 1);
  return pages[0].map((twin) => twin.deviceId).sort();
}

h.run('service_query', async (s) => {
  const registry = Registry.fromConnectionString(h.env('IOTHUB_CONNECTION_STRING'));
  const prefix = h.env('QUERY_DEVICE_ID_PREFIX');
  const deviceIds = [0, 1, 2].map((i) => `${prefix}-${i}`);
  const moduleId = 'query-module';

  for (const [index, deviceId] of deviceIds.entries()) {
    s.step(`create and tag device ${deviceId}`);
    await registry.create({
      deviceId,
      status: 'enabled',
      authentication: { symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } },
    });
    const { responseBody: twin } = await registry.getTwin(deviceId);
    await registry.updateTwin(deviceId, { tags: { conformance: prefix, index } }, twin.etag);
  }
  await registry.addModule({
    deviceId: deviceIds[0],
    moduleId,
    authentication: { type: 'sas', symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } },
  });

  s.step("createQuery('SELECT * FROM devices', 1) paged with nextAsTwin");
  const before = await listedDeviceIds();
  const pages = await allTwinPages(registry.createQuery('SELECT * FROM devices', 1));
  const after = await listedDeviceIds();
  s.info(`pages: ${JSON.stringify(pages.map((p) => p.map((t) => t.deviceId)))}`);
  h.check(pages.length >= 3, `${pages.length} page(s) with pageSize 1`);
  pages.forEach((page, i) => h.expectEqual(`twins on page ${i + 1}`, page.length, 1));
  const paged = pages.flat().map((t) => t.deviceId);
  h.expectEqual('distinct devices over the pages', new Set(paged).size, paged.length);
  expectListing('devices over all pages', paged, before, after);
  for (const id of deviceIds) h.check(paged.includes(id), `the query did not return ${id}`);

  s.step('WHERE on tags');
  const tagged = `SELECT * FROM devices WHERE tags.conformance = '${prefix}'`;
  const taggedPages = await allTwinPages(registry.createQuery(tagged));
  const twins = taggedPages.flat();
  h.expectDeepEqual(`devices tagged ${prefix}`, twins.map((t) => t.deviceId).sort(), deviceIds);
  for (const twin of twins) {
    h.expectDeepEqual(`tags of ${twin.deviceId}`, twin.tags, { conformance: prefix, index: deviceIds.indexOf(twin.deviceId) });
    h.check(typeof twin.etag === 'string' && twin.etag.length > 0, `queried twin ${twin.deviceId} has no etag`);
  }
  h.expectDeepEqual('devices with tags.index >= 1', await queryIds(registry, `${tagged} AND tags.index >= 1`), deviceIds.slice(1));

  s.step('SELECT COUNT() through query.next()');
  const count = registry.createQuery(`SELECT COUNT() AS numberOfDevices FROM devices WHERE tags.conformance = '${prefix}'`);
  const { result: counted } = await count.next();
  h.expectDeepEqual('COUNT() result', counted, [{ numberOfDevices: 3 }]);
  h.expectEqual('hasMoreResults after COUNT()', count.hasMoreResults, false);

  s.step('SELECT * FROM devices.modules');
  const modulePages = await allTwinPages(registry.createQuery(`SELECT * FROM devices.modules WHERE deviceId = '${deviceIds[0]}'`));
  h.expectDeepEqual(`module twins of ${deviceIds[0]}`, modulePages.flat().map((t) => [t.deviceId, t.moduleId]), [[deviceIds[0], moduleId]]);

  s.step('a query the hub cannot parse: 400');
  let refused;
  try {
    await registry.createQuery('SELECT * FROM').next();
  } catch (err) {
    refused = err;
  }
  h.check(refused, 'a bad query succeeded');
  s.info(`bad query: ${h.describeError(refused)} (HTTP ${refused.response && refused.response.statusCode})`);
  h.expectEqual('HTTP status of a bad query', refused.response && refused.response.statusCode, 400);

  s.step('delete the devices; the tag query is then empty');
  for (const id of deviceIds) await registry.delete(id);
  h.expectDeepEqual(`devices tagged ${prefix} after delete`, await queryIds(registry, tagged), []);
});
