// Scenario clock_advance, Node: time control (docs/faults.md, "Time control") seen through the
// official SDKs — the emulator's clock moved ahead with POST /time/advance instead of waiting.
//
// The service (azure-iothub over AMQP) sends two C2D messages with ack 'full' to a SAS device that
// is offline: one without an expiry (Azure's default time to live, one hour) and one with
// expiryTimeUtc two hours ahead. After POST /time/advance {"seconds": 3601} the feedback receiver
// gets statusCode 'Expired' for the first, before any device connected; the service's own AMQP
// connection (a one-hour token) is untouched, as a plain advance leaves credentials alone. The
// device then connects (azure-iot-device over MQTT from its connection string: its SAS token is
// made after the advance, from its own clock, and is accepted) and receives only the second
// message; completing it gives 'Success' feedback. An advance of 3601 s with "credentials": true
// passes the device's token expiry: the hub ends the session (emulator log: SAS token expired,
// 401003), and the SDK's next sendEvent reconnects by itself with its token, which is still valid
// by the device's clock, and is stored.
//
// The scenario moves the clock of the emulator every lane shares, so it runs alone, after the
// lanes ("alone" in scenarios.json).
'use strict';

const crypto = require('crypto');
const { Client: ServiceClient, Registry } = require('azure-iothub');
const { Client: DeviceClient, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

const h = require('./harness');

const runId = crypto.randomUUID();
const HOUR_AND_A_SECOND = 3601;
const FEEDBACK_BOUND_MS = 25000;
const RECEIVE_BOUND_MS = 15000;

async function advance(seconds, credentials = false) {
  const r = await h.controlRequest('POST', '/time/advance', JSON.stringify({ seconds, credentials }), 'application/json');
  h.expectEqual('POST /time/advance status', r.status, 200);
  console.log('advanced:', JSON.stringify(r.body));
  return r.body;
}

function tracked(body, expiryTimeUtc) {
  const msg = new Message(body);
  msg.messageId = crypto.randomUUID();
  msg.ack = 'full';
  if (expiryTimeUtc) msg.expiryTimeUtc = expiryTimeUtc;
  return msg;
}

h.run(
  'clock_advance',
  async (s) => {
    const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
    const deviceId = h.env('C2D_DEVICE_ID');
    const hubHost = h.env('EXPECTED_ASSIGNED_HUB');

    s.step('service Registry.create (SAS device, over HTTPS); the device stays offline');
    const key = h.newKey();
    await Registry.fromConnectionString(serviceCs).create({
      deviceId,
      status: 'enabled',
      authentication: { symmetricKey: { primaryKey: key, secondaryKey: h.newKey() } },
    });

    s.step('service Client (Amqp) open(), getFeedbackReceiver()');
    const service = ServiceClient.fromConnectionString(serviceCs);
    await service.open();
    const { records: feedback, errors: feedbackErrors } = await h.collectFeedback(service);

    s.step("service send(): one message without an expiry, one with expiryTimeUtc in two hours (ack 'full')");
    const defaultTtl = tracked('default ttl ' + runId);
    // A number of milliseconds, as the SDK passes it to rhea as the AMQP timestamp (a Date is not encoded).
    const twoHours = tracked('two hours ' + runId, Date.now() + 2 * 3600 * 1000);
    await service.send(deviceId, defaultTtl);
    await service.send(deviceId, twoHours);

    s.step('POST /time/advance {"seconds": 3601}: the message without an expiry expires');
    const first = await advance(HOUR_AND_A_SECOND);
    h.check(first.offsetSeconds >= HOUR_AND_A_SECOND, `offsetSeconds ${first.offsetSeconds}`);
    h.check(first.expiredC2d >= 1, `expiredC2d ${first.expiredC2d}`);
    await h.waitUntil(() => feedback.has(defaultTtl.messageId), FEEDBACK_BOUND_MS,
      `'Expired' feedback for ${defaultTtl.messageId} (got ${JSON.stringify([...feedback.values()])}; errors ${JSON.stringify(feedbackErrors)})`);
    h.expectEqual('feedback statusCode of the message without an expiry', feedback.get(defaultTtl.messageId).statusCode, 'Expired');
    h.expectEqual('feedback deviceId', feedback.get(defaultTtl.messageId).deviceId, deviceId);
    h.check(!feedback.has(twoHours.messageId), 'the two-hour message was reported before delivery');

    s.step('device Client.fromConnectionString(cs, Mqtt).open() after the advance: its fresh token is accepted');
    const device = DeviceClient.fromConnectionString(`HostName=${hubHost};DeviceId=${deviceId};SharedAccessKey=${key}`, Mqtt);
    const received = [];
    device.on('message', (msg) => {
      received.push(msg.messageId);
      console.log('device received:', msg.messageId, msg.data.toString('utf8'));
      device.complete(msg, () => {});
    });
    await device.open();

    s.step('the device receives only the two-hour message; completing it reports Success');
    await h.waitUntil(() => received.includes(twoHours.messageId), RECEIVE_BOUND_MS, `the two-hour message (got ${JSON.stringify(received)})`);
    h.check(!received.includes(defaultTtl.messageId), 'the expired message was delivered');
    await h.waitUntil(() => feedback.has(twoHours.messageId), FEEDBACK_BOUND_MS, `'Success' feedback for ${twoHours.messageId}`);
    h.expectEqual('feedback statusCode of the delivered message', feedback.get(twoHours.messageId).statusCode, 'Success');
    h.check(feedbackErrors.length === 0, `feedback receiver errors: ${JSON.stringify(feedbackErrors)}`);
    await service.close();

    s.step(`POST /time/advance {"seconds": 3601, "credentials": true}: past the device's token expiry, the hub ends its session`);
    const offset = h.logOffset();
    await advance(HOUR_AND_A_SECOND, true);
    const deadline = Date.now() + 10000;
    let ended = [];
    while (ended.length === 0 && Date.now() < deadline) {
      ended = h.logLinesSince(offset, 'SAS token expired (401003)').filter((l) => l.includes(deviceId));
      await new Promise((r) => setTimeout(r, 100));
    }
    h.check(ended.length > 0, `no "SAS token expired (401003)" line for ${deviceId} in the emulator log`);
    s.info(ended[0]);

    s.step('sendEvent() reconnects with the token the device still holds (valid by its clock) and is stored');
    const after = new Message('after the advance ' + runId);
    after.messageId = 'after-' + runId;
    await h.withTimeout(device.sendEvent(after), 20000, 'sendEvent after the advance');
    const stored = await h.waitForTelemetry(deviceId, new Set([after.messageId]), 5000);
    h.check(stored.has(after.messageId), `message ${after.messageId} not stored`);
    await device.close();
  },
  { timeoutSeconds: 90 }
);
