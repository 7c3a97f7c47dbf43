// Scenario configurations, Node: automatic device configurations with azure-iothub's Registry
// (addConfiguration, getConfiguration, getConfigurations, updateConfiguration,
// removeConfiguration), as its configuration sample does.
//
// A SAS device tagged for this run connects (azure-iot-device over MQTT) and listens for desired
// changes. Two configurations target it (the target conditions name only this run's device: the
// hub is shared): 'low' (priority 10) sets properties.desired.fanSpeed 1 and mode 'eco'; 'high'
// (priority 20) sets properties.desired.fanSpeed 3. The device's twin gets fanSpeed 3 from the
// higher priority and mode 'eco' from the lower (configurations merge per path); both are
// applied. The SDK's addConfiguration sends schemaVersion '1.0', updateConfiguration a quoted
// If-Match; without forceUpdate and a wrong etag the hub refuses (412). Removing 'high' brings
// back fanSpeed 1; Registry.createQuery("SELECT deviceId FROM devices WHERE
// configurations.[[low]].status = 'Applied'") names the device; removing 'low' takes mode and
// fanSpeed away (null patches).
'use strict';

const crypto = require('crypto');
const { Registry } = require('azure-iothub');
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const h = require('./harness');

const runId = crypto.randomUUID().slice(0, 8);
const BOUND_MS = 15000;

h.run(
  'configurations',
  async (s) => {
    const cs = h.env('IOTHUB_CONNECTION_STRING');
    const hubHost = /HostName=([^;]+)/.exec(cs)[1];
    const registry = Registry.fromConnectionString(cs);
    const deviceId = `${h.env('CONFIGURATION_DEVICE_ID')}-${runId}`;
    const low = `low-${runId}`;
    const high = `high-${runId}`;
    const target = `tags.conformanceRun='${runId}'`;

    s.step('Registry.create a SAS device and tag it for this run');
    const key = h.newKey();
    await registry.create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey: key, secondaryKey: h.newKey() } } });
    const { responseBody: twin0 } = await registry.getTwin(deviceId);
    await registry.updateTwin(deviceId, { tags: { conformanceRun: runId } }, twin0.etag);

    s.step('the device connects and listens for desired changes');
    const device = DeviceClient.fromConnectionString(`HostName=${hubHost};DeviceId=${deviceId};SharedAccessKey=${key}`, Mqtt);
    await device.open();
    const twin = await device.getTwin();
    const state = {};
    twin.on('properties.desired', (delta) => {
      for (const [k, v] of Object.entries(delta)) if (!k.startsWith('$')) state[k] = v;
    });
    const waitFor = (what, predicate) => h.waitUntil(predicate, BOUND_MS, `${what} (desired seen: ${JSON.stringify(state)})`);

    s.step("addConfiguration 'low' (priority 10: fanSpeed 1, mode eco) and 'high' (priority 20: fanSpeed 3)");
    await registry.addConfiguration({
      id: low, priority: 10, targetCondition: target, labels: { run: runId },
      content: { deviceContent: { 'properties.desired.fanSpeed': 1, 'properties.desired.mode': 'eco' } },
      metrics: { queries: { eco: "SELECT deviceId FROM devices WHERE properties.desired.mode = 'eco'" } },
    });
    await registry.addConfiguration({
      id: high, priority: 20, targetCondition: target,
      content: { deviceContent: { 'properties.desired.fanSpeed': 3 } },
    });
    await waitFor('fanSpeed 3 and mode eco', () => state.fanSpeed === 3 && state.mode === 'eco');

    s.step('getConfiguration: both applied, systemMetrics and the custom metric count the device');
    let lowConfig;
    const deadline = Date.now() + BOUND_MS;
    for (;;) {
      lowConfig = (await registry.getConfiguration(low)).responseBody;
      if (lowConfig.systemMetrics.results.appliedCount === 1 && lowConfig.metrics.results.eco === 1) break;
      h.check(Date.now() < deadline, `low's metrics: ${JSON.stringify([lowConfig.systemMetrics, lowConfig.metrics])}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    h.expectEqual("low's schemaVersion (the SDK's default)", lowConfig.schemaVersion, '1.0');
    h.expectEqual("low's targetedCount", lowConfig.systemMetrics.results.targetedCount, 1);
    const { responseBody: all } = await registry.getConfigurations();
    h.check([low, high].every((id) => all.some((c) => c.id === id)), `getConfigurations lacks ours: ${JSON.stringify(all.map((c) => c.id))}`);

    s.step("updateConfiguration: a stale etag is refused (412); with the current one the labels change");
    const stale = { ...lowConfig, etag: 'c3RhbGU=', labels: { run: runId, step: 'stale' } };
    let refused = null;
    try {
      await registry.updateConfiguration(stale);
    } catch (err) {
      refused = err;
    }
    h.check(refused && refused.response && refused.response.statusCode === 412, `a stale update was not refused with 412: ${h.describeError(refused)}`);
    const { responseBody: updated } = await registry.updateConfiguration({ ...lowConfig, labels: { run: runId, step: 'two' } });
    h.expectEqual('updated label', updated.labels.step, 'two');
    h.check(updated.etag !== lowConfig.etag, 'the etag did not change');

    s.step("removeConfiguration 'high': fanSpeed goes back to low's 1");
    await registry.removeConfiguration(high);
    await waitFor('fanSpeed 1', () => state.fanSpeed === 1);

    s.step("Registry.createQuery: SELECT deviceId FROM devices WHERE configurations.[[low]].status = 'Applied'");
    const rows = await h.viaCallback((cb) => registry.createQuery(`SELECT deviceId FROM devices WHERE configurations.[[${low}]].status = 'Applied'`).next(cb));
    h.expectDeepEqual('devices with low applied', rows, [{ deviceId }]);

    s.step("removeConfiguration 'low': the device's fanSpeed and mode are removed");
    await registry.removeConfiguration(low);
    await waitFor('fanSpeed and mode null', () => state.fanSpeed === null && state.mode === null);
    await device.close();
  },
  { timeoutSeconds: 60 }
);
