// Scenario twin, Node: device twin with azure-iot-device (device, MQTT) and azure-iothub
// (service, HTTPS).
//
// The device (DPS symmetric-key registration as in the quickstart) calls client.getTwin(), adds a
// twin.on('properties.desired', ...) listener (the SDK subscribes to desired patches; it gives no
// completion signal, but its SUBSCRIBE goes out before the reported-properties PUBLISH that follows
// on the same connection, so once that update is acknowledged the subscription is in place) and
// reports properties with twin.properties.reported.update(). The service side is
// Registry.fromConnectionString(<iothubowner>): getTwin must show the reported values;
// updateTwin(deviceId, {properties: {desired}}, twin.etag) must reach the device as a desired patch
// whose $version is the desired $version of the twin the service got back.
'use strict';

const crypto = require('crypto');
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Registry } = require('azure-iothub');

const h = require('./harness');

const runId = crypto.randomUUID();
const PATCH_BOUND_MS = 10000;

h.run('twin', async (s) => {
  const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
  const { client, deviceId } = await h.provisionAndConnect(s, {
    Client, Mqtt, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
  });

  s.step('device client.getTwin()');
  const twin = await client.getTwin();
  console.log('device twin properties:', JSON.stringify(twin.properties));
  h.check(Number.isInteger(twin.properties.desired.$version), `desired has no integer $version: ${JSON.stringify(twin.properties)}`);

  s.step("twin.on('properties.desired')");
  const events = [];
  let wake = null;
  twin.on('properties.desired', (delta) => {
    console.log('properties.desired event:', JSON.stringify(delta));
    events.push(JSON.parse(JSON.stringify(delta)));
    if (wake) wake();
  });

  s.step('device twin.properties.reported.update()');
  const reported = { conformanceRun: runId, firmware: { version: '1.2.3', channel: 'stable' } };
  await h.withTimeout(
    new Promise((resolve, reject) => twin.properties.reported.update(reported, (err) => (err ? reject(err) : resolve()))),
    10000,
    'reported.update'
  );

  s.step('service Registry.getTwin()');
  const registry = Registry.fromConnectionString(serviceCs);
  const { responseBody: serviceTwin } = await registry.getTwin(deviceId);
  console.log('service twin:', JSON.stringify(serviceTwin));
  h.expectEqual('service twin deviceId', serviceTwin.deviceId, deviceId);
  h.check(serviceTwin.etag, 'service twin has no etag');
  const svcReported = serviceTwin.properties.reported || {};
  h.expectEqual('service twin reported.conformanceRun', svcReported.conformanceRun, runId);
  h.expectDeepEqual('service twin reported.firmware', svcReported.firmware, reported.firmware);

  s.step('service Registry.updateTwin() with desired properties and the twin etag');
  const desired = { conformanceRun: runId, targetTemperature: 21.5, mode: { fan: 'auto' } };
  const { responseBody: updated } = await registry.updateTwin(deviceId, { properties: { desired } }, serviceTwin.etag);
  console.log('updated twin:', JSON.stringify(updated));
  const newVersion = updated.properties && updated.properties.desired && updated.properties.desired.$version;
  h.check(Number.isInteger(newVersion), `updateTwin returned no desired $version: ${JSON.stringify(updated.properties)}`);
  for (const [k, v] of Object.entries(desired)) {
    h.expectDeepEqual(`updateTwin result desired.${k}`, updated.properties.desired[k], v);
  }

  s.step('device receives the desired patch');
  const started = Date.now();
  const findPatch = () => events.find((e) => e && e.conformanceRun === runId);
  while (!findPatch()) {
    const left = PATCH_BOUND_MS - (Date.now() - started);
    if (left <= 0) {
      throw new h.ScenarioFailure(`no desired patch with this run's values within ${PATCH_BOUND_MS / 1000} s (events: ${JSON.stringify(events)})`);
    }
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, Math.min(left, 200));
    });
  }
  const patch = findPatch();
  s.info(`desired patch after ${((Date.now() - started) / 1000).toFixed(2)} s: ${JSON.stringify(patch)}`);
  for (const [k, v] of Object.entries(desired)) {
    h.expectDeepEqual(`patch ${k}`, patch[k], v);
  }
  h.expectEqual('patch $version', patch.$version, newVersion);
  h.expectEqual('device twin desired.$version after the patch', twin.properties.desired.$version, newVersion);

  s.step('disconnect');
  await client.close();
});
