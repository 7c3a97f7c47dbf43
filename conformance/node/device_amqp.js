// Scenario device_amqp, Node: a device over azure-iot-device-amqp's Amqp transport (TLS on 5671,
// plain AMQP header, CBS put-token) — telemetry, twin (get, reported patch, desired update), a
// direct method, C2D complete / reject / abandon with feedback, and the device offline once
// closed. The flow and what it asserts: device_amqp_flow.js.
'use strict';

const crypto = require('crypto');
const { Amqp } = require('azure-iot-device-amqp');

const h = require('./harness');
const { deviceFlow } = require('./device_amqp_flow');

h.run('device_amqp', (s) => deviceFlow(s, Amqp, crypto.randomUUID()), { timeoutSeconds: 90 });
