// Scenario dps_throttle, Node: the provisioning client recovers from DPS throttling by itself.
//
// A fault rule installed through the emulator's control port (POST /faults, docs/faults.md)
// makes DPS answer this device's next register request with 429 and `retry-after`
// (`$dps/registrations/res/429/?$rid=…&retry-after=5`). azure-iot-provisioning-device-mqtt 1.8.1
// reads `retry-after` (seconds × 1000) and answers any status >= 429 to the state machine as if
// the service had said `registering` (dist/mqtt.js); azure-iot-provisioning-device 1.9.1's
// PollingStateMachine waits that long and sends the register request again
// (dist/polling_state_machine.js, `registering` → `waitingToPoll` → `sendingRegistrationRequest`;
// its default interval is 2 s). So register() must resolve `assigned` with no error, after at
// least the 5 s the rule asked for, and the rule must have hit once. A 503 on the
// operation-status poll is answered as `assigning` with the same operation id: polled again
// after its `retry-after`.
'use strict';

const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

// Longer than the SDK's default interval (2 s), so waiting this long shows it read the value.
const RETRY_AFTER = 5;

h.run('dps_throttle', async (s) => {
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const symmetricKey = h.env('PROVISIONING_SYMMETRIC_KEY');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');

  /** A fresh client's register(): { result, seconds }. */
  async function register() {
    const provisioningClient = ProvisioningDeviceClient.create(
      provisioningHost,
      idScope,
      new ProvisioningTransport(),
      new SymmetricKeySecurityClient(registrationId, symmetricKey)
    );
    const started = process.hrtime.bigint();
    const result = await provisioningClient.register();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    s.info(`status=${result.status} hub=${result.assignedHub} device=${result.deviceId} substatus=${result.substatus} after ${seconds.toFixed(1)} s`);
    h.expectEqual('registration status', result.status, 'assigned');
    h.expectEqual('assigned hub', result.assignedHub, expectedHub);
    h.expectEqual('device id', result.deviceId, expectedDeviceId);
    return { result, seconds };
  }

  /** Installs `rule`, runs `body(faultId)`, and removes the rule whatever happens. */
  async function withFault(rule, body) {
    const faultId = await h.installFault(rule);
    s.info(`installed ${faultId}: ${JSON.stringify(rule)}`);
    try {
      await body(faultId);
    } finally {
      await h.removeFault(faultId);
    }
  }

  s.step('install a 429 rule for this registration (POST /faults)');
  await withFault(
    {
      operation: 'dps.register',
      registrationId,
      action: { refuse: { status: 429, retryAfter: RETRY_AFTER } },
      count: 1,
    },
    async (faultId) => {
      s.step(`register() through a 429 with retry-after ${RETRY_AFTER}`);
      const { seconds } = await register();
      h.check(seconds >= RETRY_AFTER, `register() resolved after ${seconds.toFixed(1)} s, sooner than the ${RETRY_AFTER} s retry-after`);
      s.step('the 429 rule hit once (GET /faults)');
      const status = await h.faultStatus(faultId);
      h.expectEqual('hits', status.hits, 1);
      h.expectEqual('remaining', status.remaining, 0);
      s.step('remove the rule (DELETE /faults/{id})');
      h.expectEqual(`DELETE /faults/${faultId}`, await h.removeFault(faultId), 204);
      const gone = await h.controlGet('/faults/' + faultId);
      h.expectEqual(`GET /faults/${faultId} after DELETE`, gone.status, 404);
    }
  );

  s.step('install a 503 rule on the poll (POST /faults)');
  await withFault(
    {
      operation: 'dps.poll',
      registrationId,
      action: { refuse: { status: 503, retryAfter: 1 } },
      count: 1,
    },
    async (faultId) => {
      s.step('register() through a 503 on the operation-status poll');
      await register();
      s.step('the 503 rule hit once (GET /faults)');
      const status = await h.faultStatus(faultId);
      h.expectEqual('hits', status.hits, 1);
      h.expectEqual(`DELETE /faults/${faultId}`, await h.removeFault(faultId), 204);
    }
  );

  s.step('check emulator registration record (GET /registrations)');
  const record = await h.registrationRecord(registrationId);
  h.expectEqual('record status', record.status, 'assigned');
  h.expectEqual('record deviceId', record.deviceId, expectedDeviceId);
});
