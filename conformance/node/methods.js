// Scenario methods, Node: direct methods with azure-iot-device (device, MQTT) and azure-iothub
// (service, HTTPS).
//
// The device (DPS symmetric-key registration as in the quickstart) registers handlers with
// client.onDeviceMethod(name, (request, response) => response.send(status, payload, cb)). The SDK
// gives no signal when its methods SUBSCRIBE is acknowledged; a client.getTwin() round trip on the
// same connection afterwards (its PUBLISH goes out after the SUBSCRIBE) makes sure it is in place.
// The service invokes with Client.fromConnectionString(<iothubowner>).invokeDeviceMethod(deviceId,
// {methodName, payload, responseTimeoutInSeconds}) and must get the device's status and payload
// (200 with an echo object, and a device status 404 passed through). After the device closes,
// invoking again must fail promptly with HTTP 404 (DeviceNotOnline).
'use strict';

const crypto = require('crypto');
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const ServiceClient = require('azure-iothub').Client;

const h = require('./harness');

const runId = crypto.randomUUID();
const OFFLINE_BOUND_MS = 10000;

h.run('methods', async (s) => {
  const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
  const { client, deviceId } = await h.provisionAndConnect(s, {
    Client, Mqtt, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
  });
  const seen = [];

  s.step('client.onDeviceMethod');
  client.onDeviceMethod('reboot', (request, response) => {
    seen.push({ name: request.methodName, payload: request.payload });
    response.send(200, { rebooted: true, echo: request.payload, run: runId }, (err) => {
      if (err) console.log('response.send failed: ' + h.describeError(err));
    });
  });
  client.onDeviceMethod('unknownMethod', (request, response) => {
    seen.push({ name: request.methodName, payload: request.payload });
    response.send(404, 'no such method: ' + request.methodName, (err) => {
      if (err) console.log('response.send failed: ' + h.describeError(err));
    });
  });
  await client.getTwin();

  const service = ServiceClient.fromConnectionString(serviceCs);
  const payload = { delay: 1, reason: 'conformance', run: runId };

  s.step('service invokeDeviceMethod(reboot)');
  const first = await service.invokeDeviceMethod(deviceId, { methodName: 'reboot', payload, responseTimeoutInSeconds: 30 });
  console.log('result:', JSON.stringify(first.result));
  h.expectEqual('method result status', first.result.status, 200);
  h.expectDeepEqual('method result payload', first.result.payload, { rebooted: true, echo: payload, run: runId });
  h.check(seen.length === 1 && seen[0].name === 'reboot' && require('util').isDeepStrictEqual(seen[0].payload, payload),
    `the device handler saw ${JSON.stringify(seen)}`);

  s.step('service invokeDeviceMethod(unknownMethod): device status 404 passed through');
  const second = await service.invokeDeviceMethod(deviceId, { methodName: 'unknownMethod', payload: null, responseTimeoutInSeconds: 30 });
  console.log('result:', JSON.stringify(second.result));
  h.expectEqual('method result status', second.result.status, 404);
  h.expectEqual('method result payload', second.result.payload, 'no such method: unknownMethod');

  s.step('close the device client');
  await client.close();

  s.step('service invokeDeviceMethod on the disconnected device');
  const started = Date.now();
  let error = null;
  let result;
  try {
    result = await h.withTimeout(
      service.invokeDeviceMethod(deviceId, { methodName: 'reboot', payload, responseTimeoutInSeconds: 30 }),
      OFFLINE_BOUND_MS,
      'invokeDeviceMethod on a disconnected device (expected a prompt 404)'
    );
  } catch (err) {
    if (err instanceof h.ScenarioFailure) throw err;
    error = err;
  }
  if (!error) throw new h.ScenarioFailure(`invoking a method on a disconnected device succeeded: ${JSON.stringify(result && result.result)}`);
  const status = error.response && error.response.statusCode;
  const body = String(error.responseBody || '');
  s.info(`refused after ${((Date.now() - started) / 1000).toFixed(2)} s: ${h.describeError(error)}; HTTP ${status} ${body}`);
  h.expectEqual('HTTP status for a method on a disconnected device', status, 404);
  h.check(/DeviceNotOnline|404103/.test(body), `404 body does not name DeviceNotOnline/404103: ${body}`);
  h.expectEqual('device handler calls', seen.length, 2);
});
