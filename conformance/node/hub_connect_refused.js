// Scenario hub_connect_refused, Node: what azure-iot-device-mqtt does with CONNACK 3.
//
// After a DPS registration (as in the quickstart), a rule installed through the control port
// (docs/faults.md) refuses the device's next hub CONNECT: `hub.connect`, refuse 503, count 1 — the
// emulator answers CONNACK 3 (server unavailable) and closes. mqtt.js reports it as "Connection
// refused: Server unavailable", which azure-iot-mqtt-base's translateError turns into a
// ServiceUnavailableError (mqtt_translate_error.ts); the default retry policy's error filter
// retries it (DefaultErrorFilter.ServiceUnavailableError = true, azure-iot-common
// retry_error_filter.ts) and client.open() runs in a RetryOperation whose first retry is
// immediate (ExponentialBackOffWithJitter, immediateFirstRetry). So open() must succeed on its
// own, after exactly one refused CONNECT (code 3) and one accepted one in the emulator log; the
// rule hit once; a message sent afterwards is stored.
'use strict';

const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');

const h = require('./harness');
const common = require('./hub_faults_common');

const runId = common.runId();
const OPEN_BOUND_MS = 20000;

h.run('hub_connect_refused', async (s) => {
  const { result, symmetricKey } = await h.provision(s, {
    ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
  });
  const deviceId = result.deviceId;
  const client = Client.fromConnectionString(
    'HostName=' + result.assignedHub + ';DeviceId=' + deviceId + ';SharedAccessKey=' + symmetricKey,
    Mqtt
  );

  const rule = { operation: 'hub.connect', deviceId, action: { refuse: { status: 503 } }, count: 1 };
  s.step('install the fault rule (POST /faults)');
  await common.withFaultRule(s, rule, async (faultId) => {
    const offset = h.logOffset();
    s.step('client.open() through one CONNACK 3');
    const started = Date.now();
    await h.withTimeout(client.open(), OPEN_BOUND_MS, 'client.open()');
    s.info(`open() resolved after ${((Date.now() - started) / 1000).toFixed(2)} s`);

    const { attempts, refused, lines } = h.countConnectAttempts(offset, deviceId);
    h.check(attempts !== null, 'emulator log unavailable: cannot count the CONNECTs');
    h.expectEqual(`CONNECTs of ${deviceId} logged during open()`, attempts, 2);
    h.expectEqual(`refused CONNECTs of ${deviceId}`, refused, 1);
    h.check(lines.some((l) => /\bconnection refused\b/.test(l) && /\bcode=3\b/.test(l)), `the refusal was not logged with CONNACK code 3: ${lines.join(' | ')}`);
    s.info('emulator: one CONNECT refused with CONNACK 3, the retry accepted');
    await common.expectHits(s, faultId, 1);
  });

  s.step('send a message');
  await h.withTimeout(client.sendEvent(common.newMessage(Message, runId, 1)), OPEN_BOUND_MS, 'sendEvent');
  await common.expectAllStored(s, deviceId, runId, 1, false);

  s.step('close');
  await client.close();
});
