// Scenario dps_throttle, Node: the provisioning client over MQTT recovers from DPS throttling by
// itself. A 429 + `retry-after` 5 on register arrives as
// `$dps/registrations/res/429/?$rid=…&retry-after=5`; azure-iot-provisioning-device-mqtt 1.8.1
// reads `retry-after` (× 1000 ms) and reports any status >= 429 as `registering`, which the
// PollingStateMachine waits on and sends again. The flow and what it asserts:
// dps_throttle_flow.js (throttleFlow).
'use strict';

const { Mqtt } = require('azure-iot-provisioning-device-mqtt');

const h = require('./harness');
const { throttleFlow } = require('./dps_throttle_flow');

h.run('dps_throttle', (s) => throttleFlow(s, Mqtt));
