// Scenario official_service_samples, Node: azure-iothub's own job and configuration samples
// (conformance/vendor/azure-iot-samples, unmodified: the service samples as of the last commit
// that had them), run as a user would with IOTHUB_CONNECTION_STRING:
//   * configuration_sample.js — getConfigurations, addConfiguration (chiller4000x), getConfiguration,
//     updateConfiguration with a new metric query, getConfiguration, removeConfiguration: each step
//     prints its success;
//   * schedule_job.js — a device method job and a twin update job (tags.state 'WA') over two devices
//     named by IOTHUB_DEVICE_ID / IOTHUB_DEVICE_ID2 (quoted, as its queryCondition needs), each
//     polled with getJob until 'completed'; the twins show the tag.
// The scenario runs alone, after the lanes, with the Python lane's job samples that act on every
// device.
'use strict';

const crypto = require('crypto');
const { Registry } = require('azure-iothub');

const h = require('./harness');

const runId = crypto.randomUUID().slice(0, 8);

h.run(
  'official_service_samples',
  async (s) => {
    const cs = h.env('IOTHUB_CONNECTION_STRING');
    const env = { IOTHUB_CONNECTION_STRING: cs };

    s.step('the official sample configuration_sample.js');
    const steps = ['add configuration', 'updateConfiguration', 'removeConfiguration'];
    const config = await h.runOfficialSample(s, 'configuration_sample.js', env, {
      ms: 30000,
      until: (out) => /removeConfiguration (succeeded|failed)/.test(out),
    });
    for (const step of steps) {
      h.check(config.includes(`${step} succeeded`), `configuration_sample.js did not print '${step} succeeded'`);
    }

    s.step('the official sample schedule_job.js over two devices');
    const registry = Registry.fromConnectionString(cs);
    const ids = [`sample-job-${runId}-1`, `sample-job-${runId}-2`];
    for (const deviceId of ids) await registry.create({ deviceId, status: 'enabled' });
    const jobs = await h.runOfficialSample(s, 'schedule_job.js', {
      ...env, IOTHUB_DEVICE_ID: `'${ids[0]}'`, IOTHUB_DEVICE_ID2: `'${ids[1]}'`,
    }, {
      ms: 45000,
      until: (out) => (out.match(/status: (completed|failed|cancelled)/g) || []).length >= 2,
    });
    h.check(!/Could not/.test(jobs), 'schedule_job.js printed an error');
    h.expectEqual('jobs completed', (jobs.match(/status: completed/g) || []).length, 2);
    for (const deviceId of ids) {
      const { responseBody } = await registry.getTwin(deviceId);
      h.expectEqual(`tags.state of ${deviceId}`, responseBody.tags.state, 'WA');
    }
  },
  { timeoutSeconds: 90 }
);
