// Scenario dps_amqp_tpm, Node: DPS TPM attestation over AMQP with a real (software) TPM.
//
// As tpm_registration (which runs the same flow over HTTPS): Debian's `swtpm` on 127.0.0.1:2323,
// where tss.js falls back without /dev/tpm0, so the SDK's default `new TpmSecurityClient()` uses
// it unchanged; the service SDK (HTTPS) enrolls the TPM's EK under its registration id (lower-case
// base32 of SHA-256 of the EK). Then the SDK's register_tpm.js with
// azure-iot-provisioning-device-amqp instead of HTTP, once over `Amqp` (5671) and once over
// `AmqpWs` (wss on 443): the transport runs the SASL `TPM` mechanism (init with scope, id and
// EK; the SRK on the one-byte challenge; the authenticationKey blob in segments, activated and
// imported in swtpm; the SAS token signed inside the TPM as the last response), then the
// registration links and `iotdps-register` with the EK and SRK in the body. In order:
// 1. disabled enrollment: the challenge passes and register() fails with status `disabled`
//    (`SyntaxError: status is disabled`); the emulator's record says disabled;
// 2. enabled: over each transport, assigned to the expected hub with the enrollment's device id,
//    `registrationState.tpm.authenticationKey` carries the hub key (the SDK imports it into the
//    TPM), the emulator's record agrees, the emulator logged the SASL TPM acceptance and answered
//    the requests over AMQP (AmqpWs: through a WebSocket upgrade); then the device connects to
//    the hub with TPM-signed SAS tokens (MQTT) and one message is stored.
// (A TPM whose EK is not the enrolled one is refused by the emulator after `open`, but this
// transport then never calls back — its TPM connect path only listens for the connection result
// once the challenge was answered — so that case is covered by tests/amqp_dps.rs only.)
'use strict';


const ProvisioningServiceClient = require('azure-iot-provisioning-service').ProvisioningServiceClient;
const { Amqp, AmqpWs } = require('azure-iot-provisioning-device-amqp');
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;
const tpmSecurity = require('azure-iot-security-tpm');
const Client = require('azure-iot-device').Client;
const Message = require('azure-iot-device').Message;
const Mqtt = require('azure-iot-device-mqtt').Mqtt;

const h = require('./harness');
const { startSwtpm, tpmCall } = require('./swtpm');

const BOUND_MS = 30000;
const SASL_TPM_ACCEPTED = 'AMQP SASL TPM: DPS registration accepted';
const ANSWERED_OVER_AMQP = 'DPS request answered over AMQP';

/** Emulator log lines after `offset` containing `needle` whose `registration=` is `registrationId`. */
function linesFor(offset, needle, registrationId) {
  return h.logLinesSince(offset, needle).filter((l) => {
    const m = /\bregistration=("?)([^\s"]+)\1/.exec(l);
    return m !== null && m[2] === registrationId;
  });
}

h.run('dps_amqp_tpm', async (s) => {
  const connectionString = h.env('PROVISIONING_SERVICE_CONNECTION_STRING');
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const expectedDeviceId = h.env('EXPECTED_DEVICE_ID');
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');

  s.step('start swtpm');
  await startSwtpm(s);

  s.step('read the TPM endorsement key and registration id');
  const securityClient = new tpmSecurity.TpmSecurityClient();
  const ek = await tpmCall(securityClient, 'getEndorsementKey');
  const registrationId = await tpmCall(securityClient, 'getRegistrationId');
  s.info(`EK ${ek.length} bytes, registration id ${registrationId}`);
  const serviceClient = ProvisioningServiceClient.fromConnectionString(connectionString);
  const enroll = async (provisioningStatus) => {
    await serviceClient.createOrUpdateIndividualEnrollment({
      registrationId,
      deviceId: expectedDeviceId,
      attestation: { type: 'tpm', tpm: { endorsementKey: ek.toString('base64') } },
      provisioningStatus,
    });
  };
  const newClient = (transport) => ProvisioningDeviceClient.create(provisioningHost, idScope, transport, securityClient);

  s.step('disabled enrollment: register() over Amqp must fail with status disabled');
  await enroll('disabled');
  let disabled;
  try {
    const result = await h.withTimeout(newClient(new Amqp()).register(), BOUND_MS, 'register() on a disabled enrollment');
    throw new h.ScenarioFailure(`register() on a disabled enrollment succeeded: ${JSON.stringify(result)}`);
  } catch (err) {
    if (err instanceof h.ScenarioFailure) throw err;
    disabled = err;
  }
  s.info(`register() on a disabled enrollment failed: ${h.describeError(disabled)}`);
  const status = disabled.result && (disabled.result.status || (disabled.result.registrationState || {}).status);
  h.check(
    status === 'disabled' || /status is disabled/.test(disabled.message),
    `expected an error for operation status 'disabled', got ${h.describeError(disabled)} (result ${JSON.stringify(disabled.result)})`
  );
  h.expectEqual('record status', (await h.registrationRecord(registrationId)).status, 'disabled');

  await enroll('enabled');
  for (const [name, transport] of [['Amqp', () => new Amqp()], ['AmqpWs', () => new AmqpWs()]]) {
    s.step(`register() with the TPM over ${name}`);
    const offset = h.logOffset();
    const result = await h.withTimeout(newClient(transport()).register(), BOUND_MS, `register() over ${name}`);
    const state = result.registrationState;
    s.info(`${name}: assigned hub=${state.assignedHub} deviceId=${state.deviceId}`);
    h.expectEqual('registrationState.status', state.status, 'assigned');
    h.expectEqual('assigned hub', state.assignedHub, expectedHub);
    h.expectEqual('device id', state.deviceId, expectedDeviceId);
    h.expectEqual('registrationId', state.registrationId, registrationId);
    h.check(
      state.tpm && typeof state.tpm.authenticationKey === 'string' && state.tpm.authenticationKey.length > 0,
      `registrationState.tpm.authenticationKey missing: ${JSON.stringify(state.tpm)}`
    );
    const record = await h.registrationRecord(registrationId);
    h.expectEqual('record status', record.status, 'assigned');
    h.expectEqual('record deviceId', record.deviceId, expectedDeviceId);
    const accepted = linesFor(offset, SASL_TPM_ACCEPTED, registrationId).length;
    const answered = linesFor(offset, ANSWERED_OVER_AMQP, registrationId).length;
    s.info(`emulator: ${accepted} SASL TPM login(s) accepted, ${answered} DPS request(s) answered over AMQP`);
    h.check(accepted === 1, `expected one '${SASL_TPM_ACCEPTED}' line for ${registrationId}, got ${accepted}`);
    h.check(answered >= 2, `expected a register and a poll answered over AMQP for ${registrationId}, got ${answered}`);
    if (name === 'AmqpWs') h.expectAmqpWebsocketUpgrades(s, offset);

    s.step(`connect to the hub with SAS tokens signed by the TPM (MQTT) and send a message (after ${name})`);
    const provider = tpmSecurity.TpmAuthenticationProvider.fromTpmSecurityClient(state.deviceId, state.assignedHub, securityClient);
    const hubClient = Client.fromAuthenticationProvider(provider, Mqtt);
    await h.withTimeout(hubClient.open(), BOUND_MS, 'Client.open() with the TPM authentication provider');
    const messageId = `amqp-tpm-${name}-${Date.now()}`;
    const message = new Message(JSON.stringify({ attestation: 'tpm', transport: name }));
    message.messageId = messageId;
    await h.withTimeout(hubClient.sendEvent(message), BOUND_MS, 'sendEvent()');
    await hubClient.close();
    const stored = await h.waitForTelemetry(expectedDeviceId, new Set([messageId]));
    h.check(stored.has(messageId), `the emulator stored no message ${messageId} for ${expectedDeviceId}`);
  }
}, { timeoutSeconds: 120 });
