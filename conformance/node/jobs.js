// Scenario jobs, Node: scheduled jobs with azure-iothub's JobClient, as its samples and the
// schedule-jobs tutorial use it.
//
// The service creates two SAS devices (Registry over HTTPS); one connects (azure-iot-device over
// MQTT) with a 'lockDoor' method handler and a desired-properties listener. Then:
//   * scheduleDeviceMethod(jobId, "deviceId IN [...]", {methodName, payload, responseTimeoutInSeconds})
//     in promise form (the SDK then sends startTime null and no maxExecutionTimeInSeconds) is
//     'queued'; the tutorial's getJob polling reaches 'completed' with one succeeded device, and
//     the handler got the payload;
//   * scheduleTwinUpdate(jobId, condition over both devices, {etag: '*', tags, properties:
//     {desired, reported: {}}}, new Date(), 3600) (the SDK's end-to-end tests' patch) completes
//     with two succeeded devices; Registry.getTwin shows the tags and desired value, and the
//     connected device's twin got the desired change;
//   * Registry.createQuery("SELECT * FROM devices.jobs WHERE devices.jobs.jobId = ...") lists both
//     devices' parts, 'completed';
//   * a job scheduled an hour ahead is 'queued'; cancelJob makes it 'cancelled' (what the SDK's
//     end-to-end tests against Azure assert);
//   * JobClient.createQuery('scheduleUpdateTwin', 'completed', 1) pages through the finished twin
//     jobs with next() while hasMoreResults: the twin job is among them, and paging ends.
'use strict';

const crypto = require('crypto');
const { JobClient, Registry } = require('azure-iothub');
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const h = require('./harness');

const runId = crypto.randomUUID().slice(0, 8);
const JOB_BOUND_MS = 20000;

/** The tutorial's monitorJob: getJob until the status is `status`. */
async function waitForJob(jobClient, jobId, status) {
  const deadline = Date.now() + JOB_BOUND_MS;
  for (;;) {
    const { jobStatus } = await jobClient.getJob(jobId);
    if (jobStatus.status === status) return jobStatus;
    h.check(Date.now() < deadline, `job ${jobId} is ${jobStatus.status} after ${JOB_BOUND_MS / 1000} s, not ${status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function nextPage(query, asTwin) {
  return h.viaCallback((cb) => (asTwin ? query.nextAsTwin(cb) : query.next(cb)));
}

h.run(
  'jobs',
  async (s) => {
    const cs = h.env('IOTHUB_CONNECTION_STRING');
    const hubHost = /HostName=([^;]+)/.exec(cs)[1];
    const registry = Registry.fromConnectionString(cs);
    const jobClient = JobClient.fromConnectionString(cs);
    const onlineId = `${h.env('JOBS_DEVICE_ID')}-${runId}-online`;
    const idleId = `${h.env('JOBS_DEVICE_ID')}-${runId}-idle`;

    s.step('Registry.create: two SAS devices');
    const key = h.newKey();
    for (const [deviceId, primaryKey] of [[onlineId, key], [idleId, h.newKey()]]) {
      await registry.create({ deviceId, status: 'enabled', authentication: { symmetricKey: { primaryKey, secondaryKey: h.newKey() } } });
    }

    s.step('the online device connects with a lockDoor handler and a desired-properties listener');
    const device = DeviceClient.fromConnectionString(`HostName=${hubHost};DeviceId=${onlineId};SharedAccessKey=${key}`, Mqtt);
    await device.open();
    const calls = [];
    device.onDeviceMethod('lockDoor', (request, response) => {
      calls.push(request.payload);
      response.send(200, { locked: true }, () => {});
    });
    const twin = await device.getTwin();
    const desired = [];
    twin.on('properties.desired', (delta) => desired.push(delta));

    s.step('scheduleDeviceMethod (promise form) on the online device; getJob until completed');
    const methodJob = `methodjob-${runId}`;
    const scheduled = await jobClient.scheduleDeviceMethod(methodJob, `deviceId IN ['${onlineId}']`,
      { methodName: 'lockDoor', payload: { door: 'front' }, responseTimeoutInSeconds: 15 });
    h.expectEqual('status of the new job', scheduled.jobStatus.status, 'queued');
    let done = await waitForJob(jobClient, methodJob, 'completed');
    h.expectEqual('succeeded devices', done.deviceJobStatistics.succeededCount, 1);
    h.expectDeepEqual('payload the device got', calls, [{ door: 'front' }]);

    s.step("scheduleTwinUpdate over both devices ({etag: '*', tags, properties: {desired, reported: {}}})");
    const twinJob = `twinjob-${runId}`;
    await jobClient.scheduleTwinUpdate(twinJob, `deviceId IN ['${onlineId}', '${idleId}']`,
      { etag: '*', tags: { jobRun: runId }, properties: { desired: { building: '43', floor: 3 }, reported: {} } },
      new Date(), 3600);
    done = await waitForJob(jobClient, twinJob, 'completed');
    h.expectEqual('succeeded devices', done.deviceJobStatistics.succeededCount, 2);
    for (const deviceId of [onlineId, idleId]) {
      const { responseBody } = await registry.getTwin(deviceId);
      h.expectEqual(`tags.jobRun of ${deviceId}`, responseBody.tags.jobRun, runId);
      h.expectEqual(`desired floor of ${deviceId}`, responseBody.properties.desired.floor, 3);
    }
    await h.waitUntil(() => desired.some((d) => d.floor === 3), 5000, `the desired change on the device (got ${JSON.stringify(desired)})`);

    s.step('Registry.createQuery: SELECT * FROM devices.jobs for the twin job');
    const deviceJobs = await nextPage(registry.createQuery(`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '${twinJob}'`), false);
    h.expectDeepEqual('devices in the job', deviceJobs.map((r) => r.deviceId).sort(), [onlineId, idleId].sort());
    for (const row of deviceJobs) h.expectEqual(`status of ${row.deviceId}`, row.status, 'completed');

    s.step('a job an hour ahead is queued; cancelJob cancels it');
    const later = `laterjob-${runId}`;
    const queued = await jobClient.scheduleTwinUpdate(later, `deviceId IN ['${idleId}']`, { tags: { never: true } },
      new Date(Date.now() + 3600 * 1000), 3600);
    h.expectEqual('status', queued.jobStatus.status, 'queued');
    await jobClient.cancelJob(later);
    await waitForJob(jobClient, later, 'cancelled');

    s.step("JobClient.createQuery('scheduleUpdateTwin', 'completed', 1): next() while hasMoreResults");
    const query = jobClient.createQuery('scheduleUpdateTwin', 'completed', 1);
    const seen = [];
    let pages = 0;
    do {
      const page = await nextPage(query, false);
      pages += 1;
      h.check(Array.isArray(page) && page.length <= 1, `page ${pages}: ${JSON.stringify(page)}`);
      for (const job of page) {
        h.expectEqual(`type of ${job.jobId}`, job.type, 'scheduleUpdateTwin');
        h.expectEqual(`status of ${job.jobId}`, job.status, 'completed');
        seen.push(job.jobId);
      }
      h.check(pages < 1000, 'paging does not end');
    } while (query.hasMoreResults);
    h.check(seen.includes(twinJob), `${twinJob} not among the completed twin jobs: ${JSON.stringify(seen)}`);
    h.check(!seen.includes(later), 'the cancelled job is listed as completed');
    await device.close();
  },
  { timeoutSeconds: 60 }
);
