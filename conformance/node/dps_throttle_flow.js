// The DPS throttling scenarios' shared parts (dps_throttle over MQTT, dps_throttle_https over
// HTTPS, dps_throttle_amqp over AMQP): a fresh azure-iot-provisioning-device 1.9.1 client's register() with the transport the
// scenario passes, and DPS refusals installed with the emulator's control port (POST /faults,
// docs/faults.md) for the scenario's own registration id, removed whatever happens. Not a
// scenario itself.
//
// throttleFlow is the MQTT flow. azure-iot-provisioning-device-mqtt 1.8.1 turns a response status
// >= 429 into a result the PollingStateMachine waits on, for `retry-after` × 1000 ms (default
// 2000): a refused register becomes `{status: 'registering'}` and is sent again, a refused poll
// becomes `{status: 'assigning', operationId}` and is polled again (dist/mqtt.js;
// azure-iot-provisioning-device dist/polling_state_machine.js, `registering` → `waitingToPoll` →
// `sendingRegistrationRequest`). Asserted, in order:
//   * a `dps.register` rule refusing with 429 + retryAfter 5, count 1: register() resolves
//     `assigned` with the expected hub and device id, no sooner than 5 s after it was called
//     (longer than the 2 s default, so the SDK waited the value it was sent); GET /faults shows
//     the rule with hits 1, remaining 0; DELETE /faults/{id} → 204, then GET → 404;
//   * a `dps.poll` rule refusing with 503 + retryAfter 1, count 1: register() is assigned, the
//     rule hit once;
//   * the emulator's registration record says assigned with the device id.
'use strict';

const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

// Longer than the SDK's default interval (2 s), so waiting this long shows it read the value.
const RETRY_AFTER = 5;

/** Seconds since `started` (a process.hrtime.bigint()). */
function secondsSince(started) {
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/**
 * A fresh client's register() over `Transport` for PROVISIONING_REGISTRATION_ID:
 * { result, seconds } when it resolves, { error, seconds } when it rejects.
 */
async function registerOnce(Transport) {
  const provisioningClient = ProvisioningDeviceClient.create(
    h.env('PROVISIONING_HOST'),
    h.env('PROVISIONING_IDSCOPE'),
    new Transport(),
    new SymmetricKeySecurityClient(h.env('PROVISIONING_REGISTRATION_ID'), h.env('PROVISIONING_SYMMETRIC_KEY'))
  );
  const started = process.hrtime.bigint();
  try {
    const result = await provisioningClient.register();
    return { result, seconds: secondsSince(started) };
  } catch (error) {
    return { error, seconds: secondsSince(started) };
  }
}

/** register() must resolve assigned to the expected hub and device id; returns { result, seconds }. */
async function registerAssigned(s, Transport) {
  const { result, error, seconds } = await registerOnce(Transport);
  h.check(!error, `register() failed after ${seconds.toFixed(1)} s: ${h.describeError(error)}`);
  s.info(`status=${result.status} hub=${result.assignedHub} device=${result.deviceId} substatus=${result.substatus} after ${seconds.toFixed(1)} s`);
  h.expectEqual('registration status', result.status, 'assigned');
  h.expectEqual('assigned hub', result.assignedHub, h.env('EXPECTED_ASSIGNED_HUB'));
  h.expectEqual('device id', result.deviceId, h.env('EXPECTED_DEVICE_ID'));
  return { result, seconds };
}

/** Installs `rule`, runs `body(faultId)`, and removes the rule whatever happens. */
async function withFault(s, rule, body) {
  const faultId = await h.installFault(rule);
  s.info(`installed ${faultId}: ${JSON.stringify(rule)}`);
  try {
    await body(faultId);
  } finally {
    await h.removeFault(faultId);
  }
}

/** The rule hit once and is removed: GET /faults, DELETE /faults/{id} → 204, GET → 404. */
async function expectHitOnceAndRemove(s, faultId) {
  s.step(`the rule hit once (GET /faults), then remove it (DELETE /faults/${faultId})`);
  const status = await h.faultStatus(faultId);
  h.expectEqual('hits', status.hits, 1);
  h.expectEqual('remaining', status.remaining, 0);
  h.expectEqual(`DELETE /faults/${faultId}`, await h.removeFault(faultId), 204);
  const gone = await h.controlGet('/faults/' + faultId);
  h.expectEqual(`GET /faults/${faultId} after DELETE`, gone.status, 404);
}

/** The emulator's registration record says assigned with EXPECTED_DEVICE_ID. */
async function expectRecordAssigned(s) {
  s.step('check emulator registration record (GET /registrations)');
  const record = await h.registrationRecord(h.env('PROVISIONING_REGISTRATION_ID'));
  h.expectEqual('record status', record.status, 'assigned');
  h.expectEqual('record deviceId', record.deviceId, h.env('EXPECTED_DEVICE_ID'));
}

/** The MQTT flow (see the top of this file). */
async function throttleFlow(s, Transport) {
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');

  s.step('install a 429 rule for this registration (POST /faults)');
  await withFault(
    s,
    {
      operation: 'dps.register',
      registrationId,
      action: { refuse: { status: 429, retryAfter: RETRY_AFTER } },
      count: 1,
    },
    async (faultId) => {
      s.step(`register() through a 429 with retry-after ${RETRY_AFTER}`);
      const { seconds } = await registerAssigned(s, Transport);
      h.check(seconds >= RETRY_AFTER, `register() resolved after ${seconds.toFixed(1)} s, sooner than the ${RETRY_AFTER} s retry-after`);
      await expectHitOnceAndRemove(s, faultId);
    }
  );

  s.step('install a 503 rule on the poll (POST /faults)');
  await withFault(
    s,
    {
      operation: 'dps.poll',
      registrationId,
      action: { refuse: { status: 503, retryAfter: 1 } },
      count: 1,
    },
    async (faultId) => {
      s.step('register() through a 503 on the operation-status poll');
      await registerAssigned(s, Transport);
      await expectHitOnceAndRemove(s, faultId);
    }
  );

  await expectRecordAssigned(s);
}

function sleep(seconds) {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}

/**
 * The flow of a transport that does not retry a refusal (HTTPS, AMQP; see their files): a 429
 * on register, then a 503 on the poll, each time register() is refused, checked by
 * `expectRefused(s, refusal)` — `refusal` is `'register'` or `'poll'`; it returns the seconds
 * to wait —, and after that wait a second register() is assigned; each rule hit once.
 */
async function notRetriedFlow(s, Transport, expectRefused) {
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const refusals = [
    ['register', 'dps.register', { status: 429, retryAfter: RETRY_AFTER }],
    ['poll', 'dps.poll', { status: 503, retryAfter: 1 }],
  ];
  for (const [refusal, operation, refuse] of refusals) {
    s.step(`install a ${refuse.status} rule on ${operation} for this registration (POST /faults)`);
    await withFault(s, { operation, registrationId, action: { refuse }, count: 1 }, async (faultId) => {
      s.step(`register() is refused at the ${refusal}, not retried`);
      const wait = await expectRefused(s, refusal);
      h.expectEqual('hits after the refusal', (await h.faultStatus(faultId)).hits, 1);
      s.step(`wait the retry-after (${wait} s), then register() again`);
      await sleep(wait);
      await registerAssigned(s, Transport);
      await expectHitOnceAndRemove(s, faultId);
    });
  }
  await expectRecordAssigned(s);
}

/**
 * `notRetriedFlow`'s check for the AMQP transports (Amqp, AmqpWs), which reject register() with
 * the raw AMQP error as installed here (dps_throttle_amqp.js says why): the 429 on the register
 * as `com.microsoft:device-container-throttled`, the 503 on the status request as
 * `amqp:internal-error`, each with DPS's error code in the description and `retry-after` in
 * the error info. Returns the retry-after.
 */
function amqpRefusal(Transport) {
  const expectRejected = async (s, condition, retryAfter, errorCode) => {
    const { result, error, seconds } = await registerOnce(Transport);
    h.check(error, `register() resolved (${JSON.stringify(result)}); expected the ${condition} rejection`);
    s.info(`register() rejected after ${seconds.toFixed(1)} s: ${JSON.stringify(error)}`);
    h.expectEqual('error.condition', error.condition, condition);
    const info = error.info || {};
    h.expectEqual("error.info['retry-after']", Number(info['retry-after']), retryAfter);
    h.check(
      String(error.description || '').includes(String(errorCode)),
      `error.description does not carry DPS's ${errorCode}: ${error.description}`
    );
    return Number(info['retry-after']);
  };
  return (s, refusal) =>
    refusal === 'register'
      ? expectRejected(s, 'com.microsoft:device-container-throttled', RETRY_AFTER, 429001)
      : expectRejected(s, 'amqp:internal-error', 1, 503000);
}

module.exports = {
  amqpRefusal,
  RETRY_AFTER,
  registerOnce,
  registerAssigned,
  withFault,
  expectHitOnceAndRemove,
  expectRecordAssigned,
  throttleFlow,
  notRetriedFlow,
};
