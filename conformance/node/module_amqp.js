// Scenario module_amqp, Node: a module identity over azure-iot-device-amqp's Amqp transport —
// telemetry and an output message, twin (get, reported patch, desired update), a method invoked
// on the module and an input message. The flow and what it asserts: device_amqp_flow.js.
'use strict';

const crypto = require('crypto');
const { Amqp } = require('azure-iot-device-amqp');

const h = require('./harness');
const { moduleFlow } = require('./device_amqp_flow');

h.run('module_amqp', (s) => moduleFlow(s, Amqp, crypto.randomUUID()), { timeoutSeconds: 90 });
