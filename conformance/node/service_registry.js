// Scenario service_registry, Node: the hub's identity registry and module identities with
// azure-iothub's Registry (HTTPS, iothubowner).
//
//   * devices: Registry.create({deviceId}) without authentication (the SDK sends empty SAS keys;
//     the hub generates both), get, update (the SDK sends If-Match "*": new keys, status
//     disabled; the emulator's GET /devices/{id} agrees), list;
//   * modules: addModule without authentication (generated keys) and with keys, getModule,
//     getModulesOnDevice (both), updateModule with the module's etag (managedBy, new keys), the
//     same update with the stale etag refused with 412, removeModule(module) (If-Match: its etag)
//     and removeModule(deviceId, moduleId) (If-Match "*"): getModule → 404 afterwards;
//   * twins: updateTwin merges tags and desired properties into the device twin; getModuleTwin /
//     updateModuleTwin on a module. (The Node Registry has no replaceTwin.)
//   * delete(deviceId): get and getModulesOnDevice → 404, and the emulator no longer lists it.
'use strict';

const crypto = require('crypto');
const { Registry } = require('azure-iothub');

const h = require('./harness');

const newKey = () => crypto.randomBytes(32).toString('base64');
const isKey = (text) => typeof text === 'string' && Buffer.from(text, 'base64').length >= 16 && Buffer.from(text, 'base64').toString('base64') === text;
const withoutMeta = (o) => Object.fromEntries(Object.entries(o || {}).filter(([k]) => !k.startsWith('$')));

async function expectHttpError(s, what, status, call) {
  let result;
  try {
    result = await call();
  } catch (err) {
    const got = err.response && err.response.statusCode;
    s.info(`${what}: HTTP ${got} ${String(err.responseBody || '')}`);
    h.expectEqual(`${what}: HTTP status`, got, status);
    return err;
  }
  throw new h.ScenarioFailure(`${what}: succeeded (${JSON.stringify(result && result.responseBody)}), expected HTTP ${status}`);
}

h.run('service_registry', async (s) => {
  const registry = Registry.fromConnectionString(h.env('IOTHUB_CONNECTION_STRING'));
  const deviceId = h.env('REGISTRY_DEVICE_ID');

  s.step('Registry.create({deviceId}) without keys (generated)');
  const { responseBody: device } = await registry.create({ deviceId, status: 'enabled' });
  console.log('created:', JSON.stringify(device));
  h.expectEqual('deviceId', device.deviceId, deviceId);
  h.expectEqual('authentication.type', device.authentication.type, 'sas');
  const keys = device.authentication.symmetricKey;
  h.check(isKey(keys.primaryKey) && isKey(keys.secondaryKey) && keys.primaryKey !== keys.secondaryKey,
    `the hub did not generate two keys: ${JSON.stringify(keys)}`);

  s.step('Registry.get');
  const { responseBody: got } = await registry.get(deviceId);
  h.expectEqual('get primaryKey', got.authentication.symmetricKey.primaryKey, keys.primaryKey);
  h.expectEqual('get etag', got.etag, device.etag);

  s.step('Registry.update: new keys, disabled');
  const primaryKey = newKey();
  const { responseBody: updated } = await registry.update({
    deviceId, status: 'disabled', authentication: { symmetricKey: { primaryKey, secondaryKey: newKey() } },
  });
  h.expectEqual('updated status', updated.status, 'disabled');
  h.expectEqual('updated primaryKey', updated.authentication.symmetricKey.primaryKey, primaryKey);
  h.check(updated.etag && updated.etag !== got.etag, `the etag did not change: ${updated.etag}`);
  const record = await h.deviceRecord(deviceId);
  h.expectEqual('GET /devices/{id} status', record.status, 200);
  h.expectEqual('emulator device status', record.body.status, 'disabled');

  s.step('Registry.list');
  const { responseBody: devices } = await registry.list();
  h.check(devices.some((d) => d.deviceId === deviceId), `list does not contain ${deviceId}`);

  s.step('addModule: one without keys (generated), one with keys');
  const { responseBody: modA } = await registry.addModule({ deviceId, moduleId: 'modA' });
  console.log('modA:', JSON.stringify(modA));
  h.expectEqual('modA moduleId', modA.moduleId, 'modA');
  h.expectEqual('modA deviceId', modA.deviceId, deviceId);
  h.check(isKey(modA.authentication.symmetricKey.primaryKey), `modA has no generated key: ${JSON.stringify(modA.authentication)}`);
  const keyB = newKey();
  const { responseBody: modB } = await registry.addModule({
    deviceId, moduleId: 'modB', authentication: { symmetricKey: { primaryKey: keyB, secondaryKey: newKey() } },
  });
  h.expectEqual('modB primaryKey', modB.authentication.symmetricKey.primaryKey, keyB);

  s.step('getModule and getModulesOnDevice');
  const { responseBody: gotA } = await registry.getModule(deviceId, 'modA');
  h.expectEqual('getModule etag', gotA.etag, modA.etag);
  const { responseBody: modules } = await registry.getModulesOnDevice(deviceId);
  h.expectDeepEqual('getModulesOnDevice', modules.map((m) => m.moduleId).sort(), ['modA', 'modB']);

  s.step('updateModule with the etag (managedBy, new keys)');
  const keyA = newKey();
  const { responseBody: updA } = await registry.updateModule({
    deviceId, moduleId: 'modA', etag: gotA.etag, managedBy: 'conformance',
    authentication: { symmetricKey: { primaryKey: keyA, secondaryKey: newKey() } },
  });
  h.expectEqual('updated managedBy', updA.managedBy, 'conformance');
  h.expectEqual('updated primaryKey', updA.authentication.symmetricKey.primaryKey, keyA);
  h.check(updA.etag !== gotA.etag, 'module etag did not change');

  s.step('updateModule with the stale etag: 412');
  await expectHttpError(s, 'updateModule with a stale etag', 412, () => registry.updateModule({
    deviceId, moduleId: 'modA', etag: gotA.etag, managedBy: 'someone-else',
    authentication: { symmetricKey: { primaryKey: newKey(), secondaryKey: newKey() } },
  }));
  const { responseBody: again } = await registry.getModule(deviceId, 'modA');
  h.expectEqual('managedBy after the refused update', again.managedBy, 'conformance');

  s.step('removeModule(module) with its etag');
  // The callback form: the promise form of removeModule(module) loses the callback and throws
  // ReferenceError "Argument 'done' cannot be falsy" in the SDK (azure-iothub registry.js
  // removeModule/_removeModule) before sending anything.
  await new Promise((resolve, reject) => registry.removeModule(modB, (err) => (err ? reject(err) : resolve())));
  await expectHttpError(s, 'getModule after removeModule', 404, () => registry.getModule(deviceId, 'modB'));

  s.step('updateTwin merges tags and desired properties');
  const { responseBody: twin } = await registry.getTwin(deviceId);
  const { responseBody: t1 } = await registry.updateTwin(deviceId, { tags: { site: 'lab' }, properties: { desired: { mode: 'eco' } } }, twin.etag);
  const { responseBody: t2 } = await registry.updateTwin(deviceId, { tags: { floor: 3 }, properties: { desired: { limit: 10 } } }, t1.etag);
  h.expectDeepEqual('tags after two patches', t2.tags, { site: 'lab', floor: 3 });
  h.expectDeepEqual('desired after two patches', withoutMeta(t2.properties.desired), { mode: 'eco', limit: 10 });

  s.step('getModuleTwin and updateModuleTwin');
  const { responseBody: mtwin } = await registry.getModuleTwin(deviceId, 'modA');
  h.expectEqual('module twin moduleId', mtwin.moduleId, 'modA');
  const { responseBody: mt1 } = await registry.updateModuleTwin(deviceId, 'modA', { tags: { role: 'filter' }, properties: { desired: { threshold: 7 } } }, mtwin.etag);
  h.expectDeepEqual('module twin tags', mt1.tags, { role: 'filter' });
  h.expectEqual('module twin desired.threshold', mt1.properties.desired.threshold, 7);

  s.step('removeModule(deviceId, moduleId)');
  await registry.removeModule(deviceId, 'modA');
  await expectHttpError(s, 'getModule after removeModule', 404, () => registry.getModule(deviceId, 'modA'));
  const { responseBody: none } = await registry.getModulesOnDevice(deviceId);
  h.expectDeepEqual('getModulesOnDevice after removing both', none, []);

  s.step('Registry.delete');
  await registry.delete(deviceId);
  await expectHttpError(s, 'get after delete', 404, () => registry.get(deviceId));
  await expectHttpError(s, 'getModulesOnDevice after delete', 404, () => registry.getModulesOnDevice(deviceId));
  const gone = await h.deviceRecord(deviceId);
  h.expectEqual('GET /devices/{id} after delete', gone.status, 404);
});
