// Shared steps of the DPS-over-AMQP scenarios (dps_amqp*.js): registration with
// azure-iot-provisioning-device-amqp's `Amqp` (amqps on 5671) or `AmqpWs` (wss on 443,
// /$iothub/websocket, AMQPWSB10), the checks on the result and the emulator's record, proof
// from the emulator log that the requests came over AMQP (and over WebSocket for AmqpWs),
// then the hub connection with the MQTT device transport and one telemetry message.
'use strict';

const crypto = require('crypto');
const util = require('util');

const { Amqp, AmqpWs } = require('azure-iot-provisioning-device-amqp');
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;
const iotHubTransport = require('azure-iot-device-mqtt').Mqtt;
const Client = require('azure-iot-device').Client;
const Message = require('azure-iot-device').Message;

const h = require('./harness');

const TRANSPORTS = ['Amqp', 'AmqpWs'];
const REGISTER_BOUND_MS = 30000;

// The emulator's debug line for every DPS request it answers over AMQP, with the registration
// id as `registration=<id>`, and its info line for a refused SASL PLAIN registration login.
const ANSWERED_OVER_AMQP = 'DPS request answered over AMQP';
const SASL_REFUSED = 'AMQP SASL PLAIN: DPS registration refused';

function newTransport(name) {
  if (name === 'Amqp') return new Amqp();
  if (name === 'AmqpWs') return new AmqpWs();
  throw new h.ScenarioFailure(`unknown transport ${name}`);
}

function provisioningClient(transportName, securityClient) {
  return ProvisioningDeviceClient.create(
    h.env('PROVISIONING_HOST'),
    h.env('PROVISIONING_IDSCOPE'),
    newTransport(transportName),
    securityClient
  );
}

/** Lines after `offset` containing `needle` whose `registration=` field is `registrationId`. */
function linesNaming(offset, needle, registrationId) {
  return h.logLinesSince(offset, needle).filter((l) => {
    const m = /\bregistration=("?)([^\s"]+)\1/.exec(l);
    return m !== null && m[2] === registrationId;
  });
}

/** The emulator answered DPS requests for `registrationId` over AMQP (and the WebSocket was used for AmqpWs). */
function expectAnsweredOverAmqp(s, offset, transportName, registrationId) {
  const answered = linesNaming(offset, ANSWERED_OVER_AMQP, registrationId);
  h.check(
    answered.length >= 2,
    `the emulator logged ${answered.length} '${ANSWERED_OVER_AMQP}' line(s) for ${registrationId}, expected a register and at least one poll`
  );
  s.info(`emulator: ${answered.length} DPS request(s) of ${registrationId} answered over AMQP`);
  if (transportName === 'AmqpWs') h.expectAmqpWebsocketUpgrades(s, offset);
}

/**
 * Registers over `transportName` with `securityClient`; checks the result, the emulator's record
 * and the AMQP evidence. Returns the registration result.
 */
async function registerOverAmqp(s, transportName, registrationId, securityClient, expectedDeviceId) {
  const expectedHub = h.env('EXPECTED_ASSIGNED_HUB');
  s.step(`register ${registrationId} over ${transportName}`);
  const offset = h.logOffset();
  const started = Date.now();
  const result = await h.withTimeout(
    provisioningClient(transportName, securityClient).register(),
    REGISTER_BOUND_MS,
    `register() over ${transportName}`
  );
  s.info(`${transportName}: assigned hub=${result.assignedHub} deviceId=${result.deviceId} in ${((Date.now() - started) / 1000).toFixed(2)} s`);

  s.step(`check the ${transportName} registration result and the emulator's record`);
  h.expectEqual('registrationState.status', result.status, 'assigned');
  h.expectEqual('assigned hub', result.assignedHub, expectedHub);
  h.expectEqual('device id', result.deviceId, expectedDeviceId);
  h.expectEqual('substatus', result.substatus, 'initialAssignment');
  h.expectEqual('registrationId', result.registrationId, registrationId);
  const record = await h.registrationRecord(registrationId);
  h.expectEqual('record status', record.status, 'assigned');
  h.expectEqual('record deviceId', record.deviceId, expectedDeviceId);
  h.expectEqual('record assignedHub', record.assignedHub, expectedHub);
  expectAnsweredOverAmqp(s, offset, transportName, registrationId);
  return result;
}

/**
 * Connects to the assigned hub over MQTT (`auth`: { key } or { cert, key: pem } for X.509) and
 * sends one message, which the emulator must store.
 */
async function sendOneMessage(s, result, auth, scenario) {
  s.step(`connect ${result.deviceId} to the hub (MQTT) and send one message`);
  let hubClient;
  if (auth.cert) {
    hubClient = Client.fromConnectionString(
      'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';x509=true',
      iotHubTransport
    );
    await hubClient.setOptions({ cert: auth.cert, key: auth.key });
  } else {
    hubClient = Client.fromConnectionString(
      'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';SharedAccessKey=' + auth.key,
      iotHubTransport
    );
  }
  await hubClient.open();
  const body = `${scenario} telemetry from ${result.deviceId}`;
  const message = new Message(body);
  message.messageId = crypto.randomUUID();
  message.properties.add('scenario', scenario);
  await hubClient.sendEvent(message);
  await hubClient.close();

  s.step(`observe ${result.deviceId}'s message in the emulator (GET /telemetry)`);
  const found = await h.waitForTelemetry(result.deviceId, new Set([message.messageId]));
  h.check(found.has(message.messageId), `message ${message.messageId} not stored by the hub`);
  h.checkStoredMessage(found.get(message.messageId), result.deviceId, body, { scenario });
}

/**
 * Text for a registration error. The AMQP transport hands a connection-level refusal up as
 * the raw AMQP error (condition + description, not an `Error`), so that is spelled out.
 */
function describeRegistrationError(err) {
  if (err instanceof Error) return h.describeError(err);
  if (err && err.condition !== undefined) return `AMQP error ${err.condition}: ${err.description}`;
  return `non-Error ${util.inspect(err, { depth: 6, breakLength: Infinity })}`;
}

/**
 * `register()` over `transportName` must fail within REFUSAL bound; returns the error. The
 * caller checks what kind.
 */
async function expectRegisterFails(s, transportName, securityClient, what) {
  const started = Date.now();
  let result;
  let error;
  try {
    result = await h.withTimeout(
      provisioningClient(transportName, securityClient).register(),
      20000,
      `${what} over ${transportName} (must fail)`
    );
  } catch (err) {
    if (err instanceof h.ScenarioFailure) throw err;
    error = err;
  }
  if (!error) throw new h.ScenarioFailure(`${what} over ${transportName} succeeded: ${JSON.stringify(result)}`);
  s.info(`${what} over ${transportName} failed after ${((Date.now() - started) / 1000).toFixed(2)} s: ${describeRegistrationError(error)}`);
  return error;
}

module.exports = {
  TRANSPORTS,
  SASL_REFUSED,
  linesNaming,
  registerOverAmqp,
  sendOneMessage,
  expectRegisterFails,
  describeRegistrationError,
};
