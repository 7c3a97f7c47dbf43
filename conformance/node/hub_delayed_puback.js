// Scenario hub_delayed_puback, Node: azure-iot-device-mqtt waits out a slow PUBACK.
//
// The device (DPS registration as in the quickstart, Client over Mqtt) sends 3 messages,
// awaiting each, while a rule installed through the control port (docs/faults.md) delays the
// PUBACK of its 2nd message: `hub.telemetry`, delay 2000 ms, after 1, count 1. The emulator stores
// the message, then holds the PUBACK for 2 s. The Mqtt transport puts no timer on a publish (it
// calls back on mqtt.js's PUBACK); the only bound is the client's RetryOperation,
// MAX_OPERATION_TIMEOUT = 240000 ms (azure-iot-device internal_client.ts), which limits retries,
// not one attempt; the keep-alive is 180 s (azure-iot-mqtt-base mqtt_base.ts). So sendEvent must
// complete after the delay without a reconnect or a resend. Checked: the 2nd send took at least
// the delay, the rule hit once, no new session of the device in the emulator log, and GET
// /telemetry holds each message exactly once.
'use strict';

const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');

const h = require('./harness');
const common = require('./hub_faults_common');

const runId = common.runId();
const TOTAL = 3;
const DELAY_MS = 2000;
const SEND_BOUND_MS = 20000;

h.run('hub_delayed_puback', async (s) => {
  const { client, deviceId } = await h.provisionAndConnect(s, {
    Client, Mqtt, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
  });
  const events = [];
  client.on('disconnect', (r) => events.push(`disconnect: ${h.describeError(r && (r.reason || r))}`));
  client.on('error', (e) => events.push(`error: ${h.describeError(e)}`));
  const rule = {
    operation: 'hub.telemetry',
    deviceId,
    action: { delay: { ms: DELAY_MS } },
    after: 1,
    count: 1,
  };
  s.step('install the fault rule (POST /faults)');
  await common.withFaultRule(s, rule, async (faultId) => {
    const offset = h.logOffset();
    const took = {};
    for (let i = 1; i <= TOTAL; i++) {
      s.step(`send message ${i} of ${TOTAL} (awaited)`);
      const started = Date.now();
      await h.withTimeout(client.sendEvent(common.newMessage(Message, runId, i)), SEND_BOUND_MS, `sendEvent #${i}`);
      took[i] = Date.now() - started;
      s.info(`message ${i} sent in ${(took[i] / 1000).toFixed(2)} s`);
    }
    h.check(events.length === 0, `client events during the sends: ${events.join('; ')}`);

    s.step('the delayed send waited for the PUBACK');
    h.check(took[2] >= DELAY_MS, `sendEvent of the delayed message returned after ${took[2]} ms, before the ${DELAY_MS} ms delay`);

    s.step('the rule hit once (GET /faults)');
    await common.expectHits(s, faultId, 1);

    s.step('no reconnect (emulator log)');
    const { attempts } = h.countConnectAttempts(offset, deviceId);
    h.check(attempts !== null, 'emulator log unavailable: cannot tell whether the device reconnected');
    h.expectEqual(`CONNECTs of ${deviceId} during the sends`, attempts, 0);

    s.step('each message stored once (GET /telemetry)');
    await common.expectAllStored(s, deviceId, runId, TOTAL, false);
  });

  s.step('close');
  await client.close();
});
