// Scenario dps_throttle_https, Node: what the HTTPS provisioning transport
// (azure-iot-provisioning-device-http 1.9.1) does with DPS throttling — it does NOT retry.
//
// Its registrationRequest / queryOperationStatus have a branch for status >= 429 that would report
// `registering` / `assigning` with the `retry-after` header as the interval (dist/http.js, the
// `response.statusCode >= 429` branches), but it is never reached: the request goes through
// azure-iot-http-base 1.12.3, whose Http.buildRequest calls back with an error for every status
// >= 300 (dist/http.js, `response.statusCode >= 300 ? new Error(…)`) and whose
// RestApiClient.executeApiCall then hands the transport only `translateError(body, response)`
// (dist/rest_api_client.js: 429 → ThrottlingError, 503 → ServiceUnavailableError, with
// `response` and `responseBody` attached), which takes the transport's `if (err)` branch and
// fails register(). So, asserted in order:
//   * a `dps.register` rule refusing with 429 + retryAfter 5, count 1 (POST /faults): register()
//     rejects with ThrottlingError whose `response.statusCode` is 429 and whose
//     `response.headers['retry-after']` is '5' (what the application has to honour itself); the
//     rule hit once; the application waits that long and calls register() again (a fresh
//     client): assigned with the expected hub and device id; the rule still hit once
//     (DELETE → 204, GET → 404);
//   * a `dps.poll` rule refusing with 503 + retryAfter 1: register() rejects with
//     ServiceUnavailableError (503, `retry-after` '1'); after the wait a second register() is
//     assigned; the rule hit once;
//   * the emulator's registration record says assigned with the device id.
// Shared parts: dps_throttle_flow.js.
'use strict';

const { Http } = require('azure-iot-provisioning-device-http');

const h = require('./harness');
const { RETRY_AFTER, registerOnce, notRetriedFlow } = require('./dps_throttle_flow');

/** register() must reject with `name` carrying `status` and `retryAfter`; returns the header value. */
async function expectRefused(s, name, status, retryAfter) {
  const { result, error, seconds } = await registerOnce(Http);
  h.check(error, `register() resolved (${JSON.stringify(result)}); expected ${name}`);
  s.info(`register() rejected after ${seconds.toFixed(1)} s: ${h.describeError(error)}`);
  h.expectEqual('error name', error.name, name);
  const response = error.response || {};
  h.expectEqual('error.response.statusCode', response.statusCode, status);
  const header = (response.headers || {})['retry-after'];
  h.expectEqual("error.response.headers['retry-after']", header, String(retryAfter));
  return Number(header);
}

h.run('dps_throttle_https', (s) =>
  notRetriedFlow(s, Http, (s, refusal) =>
    refusal === 'register'
      ? expectRefused(s, 'ThrottlingError', 429, RETRY_AFTER)
      : expectRefused(s, 'ServiceUnavailableError', 503, 1)
  )
);
