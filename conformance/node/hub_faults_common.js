// Shared steps of the Node hub-fault scenarios (hub_drop_reconnect, hub_drop_twin,
// hub_delayed_puback, hub_connect_refused): install a rule on the device's own id and always remove
// it, make this run's messages, count what the emulator stored per message id (GET /telemetry), so
// that a QoS 1 resend shows up as a duplicate instead of being folded away as `waitForTelemetry`
// does, and change desired properties as a back end would.
'use strict';

const crypto = require('crypto');
const http = require('http');

const h = require('./harness');

const CONTROL_URL = (process.env.IOTEMU_CONTROL_URL || 'http://127.0.0.1:9180').replace(/\/+$/, '');
const CONTROL_AUTH = process.env.IOTEMU_CONTROL_TOKEN ? { Authorization: `Bearer ${process.env.IOTEMU_CONTROL_TOKEN}` } : {};

/** Installs `rule` (POST /faults), runs `body(faultId)`, then removes the rule (DELETE → 204),
 *  also when `body` fails, so no rule outlives the scenario. */
async function withFaultRule(s, rule, body) {
  const faultId = await h.installFault(rule);
  s.info(`installed ${faultId}: ${JSON.stringify(rule)}`);
  let removed = false;
  try {
    const result = await body(faultId);
    const status = await h.removeFault(faultId);
    removed = true;
    h.expectEqual(`DELETE /faults/${faultId} status`, status, 204);
    return result;
  } finally {
    if (!removed) await h.removeFault(faultId).catch(() => {});
  }
}

/** GET /faults lists the rule with exactly `hits` hits. */
async function expectHits(s, faultId, hits) {
  const rule = await h.faultStatus(faultId);
  h.expectEqual(`GET /faults ${faultId} hits`, rule.hits, hits);
  s.info(`GET /faults: ${faultId} hits=${rule.hits} remaining=${rule.remaining}`);
}

function newMessage(Message, runId, index) {
  const msg = new Message(`hub fault message ${index}`);
  msg.messageId = `${runId}-${index}`;
  msg.properties.add('conformanceRun', runId);
  return msg;
}

/** Map message id → how many times GET /telemetry holds it, for this run's messages. */
async function storedCounts(deviceId, runId) {
  const path = '/telemetry?deviceId=' + encodeURIComponent(deviceId);
  const { status, body } = await h.controlGet(path);
  h.check(status === 200 && Array.isArray(body), `GET ${path} returned ${status}: ${JSON.stringify(body)}`);
  const counts = new Map();
  for (const stored of body) {
    const mid = stored && stored.systemProperties && stored.systemProperties['message-id'];
    if (typeof mid === 'string' && mid.startsWith(runId + '-')) counts.set(mid, (counts.get(mid) || 0) + 1);
  }
  return counts;
}

/** Every message 1..total is stored; duplicates are reported (and fail unless allowed).
 *  Returns { id: count } for the ids stored more than once. */
async function expectAllStored(s, deviceId, runId, total, allowDuplicates) {
  const expected = Array.from({ length: total }, (_, k) => `${runId}-${k + 1}`);
  const counts = await storedCounts(deviceId, runId);
  const missing = expected.filter((mid) => !counts.get(mid));
  h.check(missing.length === 0, `${missing.length} of ${total} messages not stored: ${missing.join(', ')}`);
  const unexpected = [...counts.keys()].filter((mid) => !expected.includes(mid));
  h.check(unexpected.length === 0, `stored messages this run did not send: ${unexpected.join(', ')}`);
  const duplicates = Object.fromEntries([...counts].filter(([, n]) => n > 1));
  if (Object.keys(duplicates).length) {
    s.info(`stored more than once (QoS 1 resend): ${JSON.stringify(duplicates)}`);
  } else {
    s.info(`all ${total} messages stored exactly once`);
  }
  h.check(allowDuplicates || Object.keys(duplicates).length === 0, `messages stored more than once: ${JSON.stringify(duplicates)}`);
  return duplicates;
}

module.exports = { withFaultRule, expectHits, newMessage, storedCounts, expectAllStored, runId: () => crypto.randomUUID() };

/** Merges `desired` into the device's desired properties through the control port's portal API
 *  (PATCH /api/hubs/{hub}/devices/{id}/twin, docs/portal.md), as a back end would. */
async function patchDesired(hub, deviceId, desired) {
  const path = `/api/hubs/${encodeURIComponent(hub)}/devices/${encodeURIComponent(deviceId)}/twin`;
  const body = JSON.stringify({ properties: { desired } });
  const { status, text } = await new Promise((resolve, reject) => {
    const req = http.request(
      CONTROL_URL + path,
      {
        method: 'PATCH',
        timeout: 5000,
        headers: { ...CONTROL_AUTH, 'Content-Type': 'application/json', 'X-Iotemu-Portal': '1', 'Content-Length': Buffer.byteLength(body) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString('utf8') }));
      }
    );
    req.on('timeout', () => req.destroy(new Error(`PATCH ${path} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
  h.check(status === 200, `PATCH ${path} returned ${status}: ${text}`);
}

module.exports.patchDesired = patchDesired;
