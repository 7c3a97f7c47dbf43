// Scenario dps_amqp_group, Node: DPS symmetric-key registration over AMQP, enrollment group.
//
// register_symkeygroup.js with azure-iot-provisioning-device-amqp: the device key is derived
// from the group key (HMAC-SHA256 of the registration id) for a registration id that is in no
// individual enrollment, and registered once over `Amqp` (5671) and once over `AmqpWs` (wss on
// 443) with two such ids (SASL PLAIN with the derived key's token). Asserts: assigned with
// device id = registration id and initialAssignment, the emulator's record agrees, the requests
// were answered over AMQP (AmqpWs: through a WebSocket upgrade); then each device connects to the
// hub (MQTT) with the derived key and one message is stored.
'use strict';

const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;

const h = require('./harness');
const dps = require('./dps_amqp_common');

h.run('dps_amqp_group', async (s) => {
  const groupKey = h.env('PROVISIONING_SYMMETRIC_KEY');
  for (const transport of dps.TRANSPORTS) {
    const registrationId = h.env(`${transport.toUpperCase()}_REGISTRATION_ID`);
    const key = h.deriveDeviceKey(groupKey, registrationId);
    const result = await dps.registerOverAmqp(
      s,
      transport,
      registrationId,
      new SymmetricKeySecurityClient(registrationId, key),
      registrationId
    );
    await dps.sendOneMessage(s, result, { key }, 'dps_amqp_group');
  }
});
