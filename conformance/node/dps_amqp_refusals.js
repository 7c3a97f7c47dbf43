// Scenario dps_amqp_refusals, Node: DPS over AMQP refuses a wrong key and reports a disabled
// enrollment, over `Amqp` (5671) and `AmqpWs` (wss on 443).
//
// 1. A wrong symmetric key for an existing enrollment: as DPS does, the SASL PLAIN login
//    succeeds and the connection is closed right after `open` with `amqp:unauthorized-access`
//    and DPS's error JSON (401002 IotHubUnauthorizedAccess) as description; register() fails
//    promptly (within 20 s) with that AMQP error (the transport passes the raw AMQP error up);
//    the emulator logged at most 3 refused logins for the registration (no retry storm) and
//    nothing is provisioned.
// 2. A disabled individual enrollment: the login succeeds, registration is answered with status
//    `disabled`, which the SDK's polling state machine reports as an error
//    (`SyntaxError: status is disabled`, the service answer in `err.result`), as over MQTT and
//    HTTPS; the emulator's record says `disabled` and no hub device exists.
'use strict';

const crypto = require('crypto');

const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;

const h = require('./harness');
const dps = require('./dps_amqp_common');

const MAX_REFUSED_LOGINS = 3;
const AUTHORIZATION_ERROR = /unauthori[sz]ed/i;

h.run('dps_amqp_refusals', async (s) => {
  const wrongKeyId = h.env('WRONG_KEY_REGISTRATION_ID');
  const wrongKeyDevice = h.env('WRONG_KEY_EXPECTED_DEVICE_ID');
  const disabledId = h.env('DISABLED_REGISTRATION_ID');
  const disabledKey = h.env('DISABLED_SYMMETRIC_KEY');
  const disabledDevice = h.env('DISABLED_EXPECTED_DEVICE_ID');

  for (const transport of dps.TRANSPORTS) {
    s.step(`register ${wrongKeyId} over ${transport} with a wrong key`);
    const wrongKey = crypto.randomBytes(64).toString('base64');
    const offset = h.logOffset();
    const error = await dps.expectRegisterFails(
      s,
      transport,
      new SymmetricKeySecurityClient(wrongKeyId, wrongKey),
      'register() with a wrong key'
    );
    const described = dps.describeRegistrationError(error);
    h.check(
      AUTHORIZATION_ERROR.test(described) && /amqp:unauthorized-access/.test(described) && /401002/.test(described),
      `register() with a wrong key over ${transport}: expected the amqp:unauthorized-access refusal with DPS's 401002, got ${described}`
    );
    const refusals = dps.linesNaming(offset, dps.SASL_REFUSED, wrongKeyId).length;
    s.info(`emulator logged ${refusals} refused SASL PLAIN login(s) for ${wrongKeyId}`);
    h.check(refusals > 0, `the emulator logged no '${dps.SASL_REFUSED}' line for ${wrongKeyId} (did the log wording change?)`);
    h.check(refusals <= MAX_REFUSED_LOGINS, `the emulator saw ${refusals} logins for one register() call (retry storm)`);
    await h.expectNotProvisioned(wrongKeyId, wrongKeyDevice);

    s.step(`register ${disabledId} over ${transport} (enrollment is disabled)`);
    const disabled = await dps.expectRegisterFails(
      s,
      transport,
      new SymmetricKeySecurityClient(disabledId, disabledKey),
      'register() on a disabled enrollment'
    );
    s.info(`err.result = ${JSON.stringify(disabled.result)}`);
    const status = disabled.result && disabled.result.status;
    h.check(
      status === 'disabled' && /status is disabled/.test(disabled.message),
      `expected the SDK's error for operation status 'disabled', got ${h.describeError(disabled)} (result ${JSON.stringify(disabled.result)})`
    );
    const record = await h.registrationRecord(disabledId);
    h.expectEqual('record status', record.status, 'disabled');
    const device = await h.deviceRecord(disabledDevice);
    h.check(device.status === 404, `GET /devices/${disabledDevice} returned ${device.status}, expected 404`);
  }
});
