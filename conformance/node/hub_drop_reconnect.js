// Scenario hub_drop_reconnect, Node: azure-iot-device + azure-iot-device-mqtt recover from a
// dropped hub connection.
//
// The device (DPS registration as in the quickstart, Client over Mqtt with the SDK's default
// retry policy, ExponentialBackOffWithJitter) adds a client.on('message') listener (C2D), then a
// rule is installed through the control port (docs/faults.md): `hub.telemetry`, drop afterAck,
// after 2, count 1, on this device only — the emulator stores the 3rd message, sends its PUBACK and
// closes the connection. The device sends 6 messages, awaiting each. The SDK recovers by itself:
// every sendEvent runs in a RetryOperation (internal_client.ts, bounded by MAX_OPERATION_TIMEOUT =
// 240 s) that retries a NotConnectedError, and the Mqtt transport connects again when asked to
// send while disconnected; with C2D enabled, the client's transport 'disconnect' handler also
// reconnects through the retry policy and subscribes again (device_client.ts, _enableC2D). Then:
//   * GET /faults: the rule hit once;
//   * the emulator log shows at least one new hub session of the device (the reconnect);
//   * GET /telemetry holds all 6 messages (one stored twice would be a QoS 1 resend — reported);
//   * a C2D message queued after the reconnect (POST /c2d) reaches the listener: the SDK
//     subscribed again (or the hub kept the subscription of the persistent session, clean: false).
'use strict';

const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');

const h = require('./harness');
const common = require('./hub_faults_common');

const runId = common.runId();
const TOTAL = 6;
const SEND_BOUND_MS = 20000; // per awaited send: the reconnect is immediate; this only bounds a hang
const RECEIVE_BOUND_MS = 10000;

h.run('hub_drop_reconnect', async (s) => {
  const { client, deviceId } = await h.provisionAndConnect(s, {
    Client, Mqtt, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
  });
  const events = [];
  client.on('disconnect', (r) => events.push(`disconnect: ${h.describeError(r && (r.reason || r.transportError || r))}`));
  client.on('error', (e) => events.push(`error: ${h.describeError(e)}`));

  s.step("client.on('message') (C2D)");
  const received = [];
  let wake = null;
  client.on('message', (msg) => {
    received.push(msg);
    client.complete(msg, () => {});
    if (wake) wake();
  });
  // The C2D SUBSCRIBE has no completion signal; a getTwin() round trip on the same connection
  // is answered only after it.
  await client.getTwin();

  const rule = {
    operation: 'hub.telemetry',
    deviceId,
    action: { drop: { when: 'afterAck' } },
    after: 2,
    count: 1,
  };
  s.step('install the fault rule (POST /faults)');
  await common.withFaultRule(s, rule, async (faultId) => {
    const offset = h.logOffset();
    for (let i = 1; i <= TOTAL; i++) {
      s.step(`send message ${i} of ${TOTAL} (awaited)`);
      const started = Date.now();
      await h.withTimeout(client.sendEvent(common.newMessage(Message, runId, i)), SEND_BOUND_MS, `sendEvent #${i}`);
      s.info(`message ${i} sent in ${((Date.now() - started) / 1000).toFixed(2)} s`);
    }
    s.info(`client events: ${events.length ? events.join('; ') : 'none'}`);

    s.step('the rule hit once (GET /faults)');
    await common.expectHits(s, faultId, 1);

    s.step('the device reconnected (emulator log)');
    const { attempts, refused, lines } = h.countConnectAttempts(offset, deviceId);
    h.check(attempts !== null, 'emulator log unavailable: cannot see the reconnect');
    h.check(attempts - refused >= 1, `no new hub session of ${deviceId} after the drop (log: ${lines.slice(-5).join(' | ')})`);
    s.info(`emulator: ${attempts} CONNECT(s) of ${deviceId} after the rule was installed, ${refused} refused`);

    s.step(`all ${TOTAL} messages stored (GET /telemetry)`);
    const duplicates = await common.expectAllStored(s, deviceId, runId, TOTAL, true);
    s.info(`duplicates: ${Object.keys(duplicates).length ? JSON.stringify(duplicates) : 'none'}`);
  });

  s.step("C2D after the reconnect reaches client.on('message')");
  const mid = 'c2d-' + runId;
  const r = await h.controlPost('/c2d?deviceId=' + encodeURIComponent(deviceId) + '&messageId=' + encodeURIComponent(mid), 'after the reconnect');
  h.expectEqual('POST /c2d status', r.status, 201);
  await h.withTimeout(
    new Promise((resolve) => {
      wake = () => received.some((m) => m.messageId === mid) && resolve();
      wake();
    }),
    RECEIVE_BOUND_MS,
    'the C2D message sent after the reconnect'
  );
  const msg = received.find((m) => m.messageId === mid);
  h.expectEqual('C2D data', msg.data.toString('utf8'), 'after the reconnect');
  s.info(`C2D ${mid} received after the reconnect`);

  s.step('close');
  await client.close();
});
