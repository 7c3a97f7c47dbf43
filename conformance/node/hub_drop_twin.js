// Scenario hub_drop_twin, Node: desired-property patches after a dropped hub connection.
//
// The device (DPS registration as in the quickstart, Client over Mqtt) gets its twin and listens
// for desired changes (twin.on('properties.desired'): the SDK subscribes to the desired-patch
// topic), then a rule installed through the control port (docs/faults.md) drops its connection
// right after the PUBACK of its 1st message (`hub.telemetry`, drop afterAck, `count` 1). A 2nd
// awaited sendEvent completes on a new connection. Then a back end merges a desired property (the
// control port's portal API, PATCH /api/hubs/{hub}/devices/{id}/twin) and the change must reach the
// listener within 10 s. The client's transport 'disconnect' handler reconnects through its retry
// policy and calls enableTwinDesiredPropertiesUpdates again (azure-iot-device internal_client.js,
// "re-enabling Twin"), but that sends no SUBSCRIBE: MqttTwinClient still counts the topic as
// subscribed and the connection asks for CleanSession 0 (azure-iot-mqtt-base mqtt_base.js,
// `clean: false`), so the SDK relies on the hub keeping the persistent session's subscriptions
// (CONNACK session-present 1). The rule hit once.
'use strict';

const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');

const h = require('./harness');
const common = require('./hub_faults_common');

const runId = common.runId();
const SEND_BOUND_MS = 20000;
const PATCH_BOUND_MS = 10000;

h.run('hub_drop_twin', async (s) => {
  const { client, deviceId } = await h.provisionAndConnect(s, {
    Client, Mqtt, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
  });
  client.on('error', (e) => s.info(`client error event: ${h.describeError(e)}`));

  s.step("getTwin() and twin.on('properties.desired')");
  const twin = await client.getTwin();
  const seen = [];
  let wake = null;
  twin.on('properties.desired', (delta) => {
    seen.push(delta);
    if (wake) wake();
  });
  // The desired SUBSCRIBE has no completion signal; a second getTwin() round trip on the same
  // connection is answered only after it.
  await client.getTwin();

  const rule = { operation: 'hub.telemetry', deviceId, action: { drop: { when: 'afterAck' } }, count: 1 };
  s.step('install the fault rule (POST /faults)');
  await common.withFaultRule(s, rule, async (faultId) => {
    const offset = h.logOffset();
    for (const i of [1, 2]) {
      s.step(`send message ${i} (awaited)`);
      await h.withTimeout(client.sendEvent(common.newMessage(Message, runId, i)), SEND_BOUND_MS, `sendEvent #${i}`);
    }
    await common.expectHits(s, faultId, 1);
    const { attempts, refused } = h.countConnectAttempts(offset, deviceId);
    h.check(attempts !== null, 'emulator log unavailable: cannot see the reconnect');
    h.check(attempts - refused >= 1, `no new hub session of ${deviceId} after the drop`);
    await common.expectAllStored(s, deviceId, runId, 2, true);
  });

  s.step('a desired-property patch after the reconnect reaches the listener');
  await common.patchDesired(h.env('EXPECTED_ASSIGNED_HUB'), deviceId, { conformanceRun: runId });
  await h.withTimeout(
    new Promise((resolve) => {
      wake = () => seen.some((d) => d && d.conformanceRun === runId) && resolve();
      wake();
    }),
    PATCH_BOUND_MS,
    'the desired patch made after the reconnect'
  );
  s.info(`desired change received after the reconnect (${seen.length} desired event(s) in all)`);

  s.step('close');
  await client.close();
});
