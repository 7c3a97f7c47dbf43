// Scenario dps_amqp, Node: DPS symmetric-key registration over AMQP, individual enrollment.
//
// register_symkey.js with azure-iot-provisioning-device-amqp instead of MQTT:
// ProvisioningDeviceClient.create(host, idScope, new Amqp() | new AmqpWs(),
// new SymmetricKeySecurityClient(regId, key)). The transport logs in with SASL PLAIN
// (`{idScope}/registrations/{regId}` and a registration SAS token), attaches a receiver and a
// sender on `{idScope}/registrations/{regId}`, sends `iotdps-register` and polls with
// `iotdps-get-operationstatus`, matching answers by correlation id. Once over `Amqp` (amqps on
// 5671) and once over `AmqpWs` (wss on 443, /$iothub/websocket, subprotocol AMQPWSB10), each with
// its own enrollment. Asserts: assigned with the enrollment's device id and initialAssignment, the
// emulator's record agrees, the emulator answered the requests over AMQP (and, for AmqpWs, an
// AMQP connection came through a WebSocket upgrade); then the device connects to the assigned hub
// (MQTT) and one message is stored.
'use strict';

const SymmetricKeySecurityClient = require('azure-iot-security-symmetric-key').SymmetricKeySecurityClient;

const h = require('./harness');
const dps = require('./dps_amqp_common');

h.run('dps_amqp', async (s) => {
  for (const transport of dps.TRANSPORTS) {
    const prefix = transport.toUpperCase();
    const registrationId = h.env(`${prefix}_REGISTRATION_ID`);
    const key = h.env(`${prefix}_SYMMETRIC_KEY`);
    const expectedDeviceId = h.env(`${prefix}_EXPECTED_DEVICE_ID`);
    const result = await dps.registerOverAmqp(
      s,
      transport,
      registrationId,
      new SymmetricKeySecurityClient(registrationId, key),
      expectedDeviceId
    );
    await dps.sendOneMessage(s, result, { key }, 'dps_amqp');
  }
});
