// Scenario dps_throttle_websocket, Node: the DPS refusals of dps_throttle over the WebSocket
// transports (wss on 443): azure-iot-provisioning-device-mqtt's MqttWs (subprotocol mqtt)
// retries them by itself exactly as Mqtt does (throttleFlow: the 429 + retry-after 5 on
// register is retried after the 5 s, the 503 on the poll polled again), and
// azure-iot-provisioning-device-amqp's AmqpWs (subprotocol AMQPWSB10) rejects register() with
// the raw AMQP error as Amqp does (notRetriedFlow with dps_throttle_amqp's check; why it does not
// retry is in dps_throttle_amqp.js); each rule hit once and removed. The emulator log shows
// every DPS session of the device (MQTT) arrived over WebSocket, and the AMQP connections were
// WebSocket upgrades.
'use strict';

const { MqttWs } = require('azure-iot-provisioning-device-mqtt');
const { AmqpWs } = require('azure-iot-provisioning-device-amqp');

const h = require('./harness');
const { throttleFlow, notRetriedFlow, amqpRefusal } = require('./dps_throttle_flow');

h.run('dps_throttle_websocket', async (s) => {
  const offset = h.logOffset();
  s.step('MqttWs');
  await throttleFlow(s, MqttWs);
  h.expectWebsocketSessions(s, offset, h.env('PROVISIONING_REGISTRATION_ID'));
  s.step('AmqpWs');
  const amqpOffset = h.logOffset();
  await notRetriedFlow(s, AmqpWs, amqpRefusal(AmqpWs));
  // Four register() calls, each on a connection of its own.
  h.expectAmqpWebsocketUpgrades(s, amqpOffset, 4);
}, { timeoutSeconds: 90 });
