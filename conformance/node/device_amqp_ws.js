// Scenario device_amqp_ws, Node: the device_amqp flow over azure-iot-device-amqp's AmqpWs
// transport (wss://host:443/$iothub/websocket, subprotocol AMQPWSB10), and the emulator logged
// that the connection came through a WebSocket upgrade. The flow: device_amqp_flow.js.
'use strict';

const crypto = require('crypto');
const { AmqpWs } = require('azure-iot-device-amqp');

const h = require('./harness');
const { deviceFlow } = require('./device_amqp_flow');

h.run(
  'device_amqp_ws',
  async (s) => {
    const offset = h.logOffset();
    await deviceFlow(s, AmqpWs, crypto.randomUUID());
    s.step('emulator log: the device connection came over WebSocket');
    h.expectAmqpWebsocketUpgrades(s, offset);
  },
  { timeoutSeconds: 90 }
);
