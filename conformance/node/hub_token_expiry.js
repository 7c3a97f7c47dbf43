// Scenario hub_token_expiry, Node: a device whose SAS token expires mid-session, with
// azure-iot-device + azure-iot-device-mqtt and a token the application makes itself
// (Client.fromSharedAccessSignature), as a device without its key (a token service, a
// constrained device handed tokens) does.
//
// IoT Hub closes an MQTT connection when the token it was opened with expires; the SDK cannot
// renew a token it was handed, so the application must (Client.updateSharedAccessSignature).
// Asserted in order:
//   * a token valid for LIFETIME_S seconds: open() and one sendEvent succeed;
//   * the hub ends the session at the token's expiry (the emulator log: "SAS token expired
//     (401003)", no sooner than the expiry). The SDK does not tell the application (no
//     'disconnect' event without C2D, methods or twin enabled: it reconnects on the next
//     operation);
//   * so a sendEvent after the expiry is refused: had the connection stayed open it would have
//     succeeded; instead the transport connects again with the expired token, the hub answers
//     CONNACK 5, and the SDK's retry filter does not retry an UnauthorizedError, so the send
//     rejects with it (the emulator logs the refused CONNECT);
//   * updateSharedAccessSignature with a fresh token (1 h) resolves; the next sendEvent connects
//     with it and succeeds; GET /telemetry holds both messages.
'use strict';

const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { SharedAccessSignature } = require('azure-iot-common');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');

const h = require('./harness');
const common = require('./hub_faults_common');

const runId = common.runId();
const LIFETIME_S = 5;
const DISCONNECT_BOUND_MS = 20000; // the expiry is 5 s away; this only bounds a hang
const SEND_BOUND_MS = 20000;

/** A device token for `seconds` from now: `sr` is the device's resource URI, no key name. */
function deviceToken(hub, deviceId, key, seconds) {
  const expiry = Math.floor(Date.now() / 1000) + seconds;
  const resourceUri = encodeURIComponent(`${hub}/devices/${deviceId}`);
  return { token: SharedAccessSignature.create(resourceUri, null, key, expiry).toString(), expiry };
}

h.run('hub_token_expiry', async (s) => {
  const { result, symmetricKey: key } = await h.provision(s, {
    ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
  });
  const { assignedHub: hub, deviceId } = result;

  s.step(`connect with a token valid for ${LIFETIME_S} s (Client.fromSharedAccessSignature)`);
  const short = deviceToken(hub, deviceId, key, LIFETIME_S);
  const client = Client.fromSharedAccessSignature(short.token, Mqtt);
  const offset = h.logOffset();
  await client.open();
  const message = (index) => {
    const msg = new Message(`token expiry message ${index}`);
    msg.messageId = `${runId}-${index}`;
    return msg;
  };
  await h.withTimeout(client.sendEvent(message(1)), SEND_BOUND_MS, 'sendEvent 1');

  s.step("the hub closes the connection at the token's expiry");
  // The SDK does not tell the application: the transport's 'disconnect' (NotConnectedError) is
  // one its retry policy would reconnect from, and with no C2D, method or twin feature enabled
  // the client only reconnects on the next operation (device_client.js _deviceDisconnectHandler).
  const events = [];
  client.on('disconnect', (r) => events.push(h.describeError(r && (r.reason || r))));
  const logged = async () => {
    for (;;) {
      const lines = h.logLinesSince(offset, 'SAS token expired (401003)').filter((l) => l.includes(`:${deviceId} `));
      if (lines.length) return lines;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  if (h.logOffset() > 0) {
    const lines = await h.withTimeout(logged(), DISCONNECT_BOUND_MS, 'the session ending on the expiry (emulator log)');
    const at = Date.now() / 1000;
    s.info(`${lines.length} log line(s), ${(at - short.expiry).toFixed(1)} s after the expiry: ${lines[0]}`);
    h.check(at >= short.expiry - 0.5, `the session ended ${(short.expiry - at).toFixed(1)} s before the token expired`);
  } else {
    // An external emulator without a readable log: wait out the expiry.
    await new Promise((r) => setTimeout(r, Math.max(0, (short.expiry + 1) * 1000 - Date.now())));
  }

  s.step('a send with the expired token is refused (CONNACK 5, not retried)');
  const refusedOffset = h.logOffset();
  let refusal = null;
  try {
    await h.withTimeout(client.sendEvent(message('expired')), SEND_BOUND_MS, 'sendEvent with the expired token');
  } catch (err) {
    refusal = err;
  }
  h.check(refusal, 'sendEvent with an expired token succeeded');
  s.info(`refused: ${h.describeError(refusal)}`);
  h.expectEqual('error name', refusal.name, 'UnauthorizedError');
  const attempts = h.countConnectAttempts(refusedOffset, deviceId);
  if (attempts.attempts !== null) {
    h.check(attempts.refused >= 1, `no refused CONNECT logged for ${deviceId}: ${attempts.lines.join(' | ')}`);
  }

  s.step('updateSharedAccessSignature with a fresh token, then send again');
  const fresh = deviceToken(hub, deviceId, key, 3600);
  // Not promisified in this SDK version: callback only.
  const updated = new Promise((resolve, reject) =>
    client.updateSharedAccessSignature(fresh.token, (err, res) => (err ? reject(err) : resolve(res)))
  );
  await h.withTimeout(updated, SEND_BOUND_MS, 'updateSharedAccessSignature');
  await h.withTimeout(client.sendEvent(message(2)), SEND_BOUND_MS, 'sendEvent 2');

  s.step('both messages stored (GET /telemetry)');
  const wanted = new Set([`${runId}-1`, `${runId}-2`]);
  const found = await h.waitForTelemetry(deviceId, wanted);
  h.expectEqual('stored messages', found.size, 2);
  const expiredStored = await h.waitForTelemetry(deviceId, new Set([`${runId}-expired`]), 0);
  h.expectEqual('messages stored from the refused send', expiredStored.size, 0);
  s.info(`client 'disconnect' events: ${events.length ? events.join(' | ') : 'none'}`);
  await client.close();
});
