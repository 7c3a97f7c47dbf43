// Scenario dps_throttle_amqp, Node: what the AMQP provisioning transport
// (azure-iot-provisioning-device-amqp 1.9.1, amqps on 5671) does with DPS throttling, as installed
// from node/package-lock.json: it does NOT retry; register() rejects with the raw AMQP error.
//
// The emulator refuses a throttled request message with the AMQP `rejected` outcome, condition
// `com.microsoft:device-container-throttled` (a 503: `amqp:internal-error`), DPS's JSON error as
// description and `retry-after` in the error's info (docs/faults.md). The transport's send
// callback has a retry branch for exactly these (dist/amqp.js, registrationRequest and
// queryOperationStatus: `translateError(…, err)` instanceof `errors.ThrottlingError` or
// `errors.InternalServerError` → `registering` / `assigning` after `info['retry-after']` × 1000
// ms), but here it is never taken: azure-iot-provisioning-device-amqp and azure-iot-amqp-base
// (whose translateError builds the error) each pin azure-iot-common 1.13.1 exactly, this project
// pins 1.13.3 at the top (azure-iothub's Message), so npm gives each of them its own nested copy,
// and an error built from one copy's ThrottlingError class is not `instanceof` the other's. The
// transport then takes its "non-retryable" branch and passes the raw AMQP error up (as it does
// for the wrong key in dps_amqp_refusals). In a tree where the two share one azure-iot-common the
// retry branch would run. Asserted, in order:
//   * a `dps.register` rule refusing with 429 + retryAfter 5, count 1 (POST /faults): register()
//     rejects with an error whose `condition` is `com.microsoft:device-container-throttled`,
//     whose `info['retry-after']` is 5 and whose description carries DPS's 429001; the rule hit
//     once; after waiting that long, register() again (a fresh client) is assigned with the
//     expected hub and device id; the rule still hit once (DELETE → 204, GET → 404);
//   * a `dps.poll` rule refusing with 503 + retryAfter 1: register() rejects with
//     `amqp:internal-error`, `info['retry-after']` 1 and 503000; after the wait a second
//     register() is assigned; the rule hit once;
//   * the emulator's registration record says assigned with the device id.
// Shared parts: dps_throttle_flow.js.
'use strict';

const { Amqp } = require('azure-iot-provisioning-device-amqp');

const h = require('./harness');
const { notRetriedFlow, amqpRefusal } = require('./dps_throttle_flow');

h.run('dps_throttle_amqp', (s) => notRetriedFlow(s, Amqp, amqpRefusal(Amqp)));
