// Shared plumbing for the Node conformance scenarios (Node built-ins only, no SDK imports).
//
// A scenario script calls `run(name, async (s) => { s.step('...'); ... })`. Whatever happens,
// exactly one result line is printed last and the process exits with 0 (PASS) or 1 (FAIL):
//
//     PASS node <scenario>
//     FAIL node <scenario>: <step>: <reason>
//
// The runner (conformance/lib/suite.py) sets the environment read here:
//   IOTEMU_CONTROL_URL  the emulator's control port (default http://127.0.0.1:9180)
//   IOTEMU_LOG          the file the emulator's stderr goes to (for counting connection attempts)
//   CONFORMANCE_SCENARIO_TIMEOUT  optional override of the per-scenario deadline in seconds
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const SDK = 'node';
const CONTROL_URL = (process.env.IOTEMU_CONTROL_URL || 'http://127.0.0.1:9180').replace(/\/+$/, '');
// A control port bound beyond loopback (the container image) needs its token (docs/portal.md).
const CONTROL_AUTH = process.env.IOTEMU_CONTROL_TOKEN ? { Authorization: `Bearer ${process.env.IOTEMU_CONTROL_TOKEN}` } : {};
const EMULATOR_LOG = process.env.IOTEMU_LOG || '';

class ScenarioFailure extends Error {}

function check(condition, message) {
  if (!condition) throw new ScenarioFailure(message);
}

function expectEqual(what, actual, expected) {
  if (actual !== expected) {
    throw new ScenarioFailure(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** Deep equality (JSON values; object key order does not matter). */
function expectDeepEqual(what, actual, expected) {
  if (!require('util').isDeepStrictEqual(actual, expected)) {
    throw new ScenarioFailure(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

function env(name) {
  const value = process.env[name];
  if (!value) throw new ScenarioFailure(`environment variable ${name} is not set (run via conformance/run)`);
  return value;
}

/** `Name: message <- cause ...` for an error, including the SDK's `innerError`/`cause` chain. */
function describeError(err) {
  const parts = [];
  const seen = new Set();
  while (err && !seen.has(err)) {
    seen.add(err);
    if (err instanceof Error) {
      parts.push(`${err.name || err.constructor.name}: ${err.message}`);
    } else {
      parts.push(String(err));
    }
    err = err.cause || err.innerError || err.transportError || null;
  }
  return parts.join(' <- ');
}

/** Resolve with `promise`, or reject with a hang failure after `ms`. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new ScenarioFailure(`${what}: no result within ${ms / 1000} s (hang)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function run(name, main, { timeoutSeconds = 60 } = {}) {
  const started = Date.now();
  const stamp = () => `[${((Date.now() - started) / 1000).toFixed(2).padStart(6)}s]`;
  const s = {
    name,
    currentStep: 'start',
    step(stepName) {
      this.currentStep = stepName;
      console.log(`${stamp()} step: ${stepName}`);
    },
    info(text) {
      console.log(`${stamp()}   ${text}`);
    },
  };
  const limit = Number(process.env.CONFORMANCE_SCENARIO_TIMEOUT || timeoutSeconds);
  const finish = (line, code) => {
    console.log(line.replace(/\n/g, ' '));
    // The SDK can leave sockets and timers behind on failure paths; do not let them keep the
    // process alive after the verdict.
    process.exitCode = code;
    process.stdout.write('', () => process.exit(code));
  };
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new ScenarioFailure(`no result within ${limit} s (hang)`)), limit * 1000);
  });
  Promise.race([Promise.resolve().then(() => main(s)), deadline])
    .then(() => {
      clearTimeout(timer);
      finish(`PASS ${SDK} ${name}`, 0);
    })
    .catch((err) => {
      clearTimeout(timer);
      const reason = err instanceof ScenarioFailure ? err.message : `unexpected ${describeError(err)}`;
      finish(`FAIL ${SDK} ${name}: ${s.currentStep}: ${reason}`, 1);
    });
}

function deriveDeviceKey(groupKey, registrationId) {
  return crypto.createHmac('sha256', Buffer.from(groupKey, 'base64')).update(registrationId, 'utf8').digest('base64');
}

// --- emulator control port ------------------------------------------------------------------

function controlGet(path) {
  return new Promise((resolve, reject) => {
    const req = http.get(CONTROL_URL + path, { timeout: 5000, headers: CONTROL_AUTH }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body = text;
        try {
          body = JSON.parse(text);
        } catch (_) {
          /* keep text */
        }
        resolve({ status: res.statusCode, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} timed out`)));
    req.on('error', reject);
  });
}

async function registrationRecord(registrationId) {
  const { status, body } = await controlGet('/registrations/' + encodeURIComponent(registrationId));
  check(status === 200, `GET /registrations/${registrationId} returned ${status}: ${JSON.stringify(body)}`);
  check(body && typeof body === 'object', `registration record is not a JSON object: ${JSON.stringify(body)}`);
  return body;
}

/**
 * Poll GET /telemetry until every message id in `wanted` (a Set) is present or `timeoutMs`
 * passes. The emulator acknowledges a PUBLISH only after storing it, so the first poll should
 * already see everything. Returns a Map message-id -> stored message for the ids found.
 */
async function waitForTelemetry(deviceId, wanted, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  const path = '/telemetry?deviceId=' + encodeURIComponent(deviceId);
  for (;;) {
    const { status, body } = await controlGet(path);
    check(status === 200, `GET ${path} returned ${status}: ${JSON.stringify(body)}`);
    check(Array.isArray(body), `GET ${path} did not return a JSON array: ${JSON.stringify(body)}`);
    const found = new Map();
    for (const stored of body) {
      const mid = stored && stored.systemProperties && stored.systemProperties['message-id'];
      if (wanted.has(mid)) found.set(mid, stored);
    }
    if (found.size === wanted.size || Date.now() >= deadline) return found;
    await new Promise((r) => setTimeout(r, 100));
  }
}

function checkStoredMessage(stored, deviceId, body, properties) {
  const mid = stored.systemProperties && stored.systemProperties['message-id'];
  expectEqual(`message ${mid} deviceId`, stored.deviceId, deviceId);
  expectEqual(`message ${mid} body`, stored.body, body);
  const props = stored.properties || {};
  for (const [key, value] of Object.entries(properties)) {
    expectEqual(`message ${mid} application property ${JSON.stringify(key)}`, props[key], value);
  }
}

// --- emulator log ---------------------------------------------------------------------------

function logOffset() {
  try {
    return EMULATOR_LOG ? fs.statSync(EMULATOR_LOG).size : 0;
  } catch (_) {
    return 0;
  }
}

function logLinesSince(offset, needle) {
  if (!EMULATOR_LOG) return [];
  let data;
  try {
    const fd = fs.openSync(EMULATOR_LOG, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const buf = Buffer.alloc(Math.max(0, size - offset));
      fs.readSync(fd, buf, 0, buf.length, offset);
      data = buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch (_) {
    return [];
  }
  // eslint-disable-next-line no-control-regex
  return data.split('\n').map((l) => l.replace(/\x1b\[[0-9;]*m/g, '')).filter((l) => l.includes(needle));
}

// The emulator logs one outcome line per MQTT CONNECT it receives: "client connected ...
// client=<dps|hub>:<id>" or "connection refused ... client_id=<id> ... code=<CONNACK code>". Counting
// those lines (not any debug line about the same CONNECT) gives one count per attempt.
const CONNECT_OUTCOME = /\b(client connected|connection refused)\b/;
const REFUSED = /\bconnection refused\b/;

function namesClient(line, clientId) {
  // The id must stand alone: `conformance-x` must not match `conformance-x-device`.
  const escaped = clientId.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp('(?<![\\w.-])' + escaped + '(?![\\w.-])').test(line);
}

/** { attempts, refused, lines }: CONNECTs from `clientId` logged after `offset` (attempts null: no log). */
function countConnectAttempts(offset, clientId) {
  if (!EMULATOR_LOG || !fs.existsSync(EMULATOR_LOG)) return { attempts: null, refused: null, lines: [] };
  const lines = logLinesSince(offset, clientId).filter((l) => namesClient(l, clientId));
  const outcomes = lines.filter((l) => CONNECT_OUTCOME.test(l));
  return { attempts: outcomes.length, refused: outcomes.filter((l) => REFUSED.test(l)).length, lines };
}

// A session that came over WebSocket is preceded by the emulator's debug line "MQTT over WebSocket:
// connection upgraded remote=<ip:port>"; its "client connected" line carries the same remote.
const WEBSOCKET_UPGRADE = 'MQTT over WebSocket: connection upgraded';
const REMOTE = /\bremote=(\S+)/;

/**
 * { connected, overWebSocket }: MQTT sessions of `clientId` the emulator accepted after `offset`,
 * and how many arrived through a WebSocket upgrade (matched by the peer address logged on both
 * lines). Both null when the emulator log is unavailable.
 */
function websocketSessions(offset, clientId) {
  if (!EMULATOR_LOG || !fs.existsSync(EMULATOR_LOG)) return { connected: null, overWebSocket: null };
  const lines = logLinesSince(offset, '');
  const upgraded = new Set(
    lines
      .filter((l) => l.includes(WEBSOCKET_UPGRADE))
      .map((l) => REMOTE.exec(l))
      .filter(Boolean)
      .map((m) => m[1])
  );
  const remotes = lines
    .filter((l) => l.includes('client connected') && namesClient(l, clientId))
    .map((l) => REMOTE.exec(l))
    .filter(Boolean)
    .map((m) => m[1]);
  return { connected: remotes.length, overWebSocket: remotes.filter((r) => upgraded.has(r)).length };
}

/** Every session of `clientId` since `offset` (at least one) came over WebSocket. */
function expectWebsocketSessions(s, offset, clientId) {
  const { connected, overWebSocket } = websocketSessions(offset, clientId);
  check(connected !== null, `emulator log unavailable: cannot tell how ${clientId} connected`);
  check(connected > 0, `emulator logged no session of ${clientId} (did the log wording change?)`);
  check(
    overWebSocket === connected,
    `${connected - overWebSocket} of ${connected} session(s) of ${clientId} did not come over WebSocket`
  );
  s.info(`emulator: ${connected} session(s) of ${clientId}, all over WebSocket`);
}

// --- refusals (X.509 and keys) ------------------------------------------------------------

const REFUSAL_BOUND_MS = 20000; // a refused credential must surface before this
const MAX_REFUSED_CONNECTS = 3; // CONNECTs the emulator may see for one refused client call
// mqtt.js reports the CONNACK refusal as "Not authorized"; the SDKs turn it, and a DPS 401
// response (provisioning translateError), into UnauthorizedError.
const AUTHORIZATION_ERROR = /unauthori[sz]ed|not authori[sz]ed/i;

/**
 * `call()` must fail with an authorization refusal within `boundMs`, after at most
 * MAX_REFUSED_CONNECTS CONNECTs from `clientId` (counted in the emulator log). Returns the error.
 */
async function expectRefusal(s, what, clientId, call, boundMs = REFUSAL_BOUND_MS) {
  const offset = logOffset();
  const started = Date.now();
  let result;
  let error;
  try {
    result = await withTimeout(call(), boundMs, `${what} (must be refused)`);
  } catch (err) {
    if (err instanceof ScenarioFailure) throw err;
    error = err;
  }
  if (!error) throw new ScenarioFailure(`${what} succeeded, but must be refused: ${JSON.stringify(result)}`);
  const described = describeError(error);
  s.info(`${what} refused after ${((Date.now() - started) / 1000).toFixed(2)} s: ${described}`);
  check(
    AUTHORIZATION_ERROR.test(described),
    `${what}: expected an authorization refusal (MQTT CONNACK 'not authorized' or DPS status 401), got ${described}`
  );
  const { attempts, refused, lines } = countConnectAttempts(offset, clientId);
  check(attempts !== null, `${what}: emulator log unavailable: connection attempts cannot be counted`);
  check(
    attempts > 0,
    `${what}: emulator log has ${lines.length} line(s) naming ${clientId} but no CONNECT outcome (did the log wording change?)`
  );
  s.info(`emulator logged ${attempts} CONNECT(s) from ${clientId} during the call, ${refused} refused`);
  check(attempts <= MAX_REFUSED_CONNECTS, `${what}: emulator saw ${attempts} CONNECTs from ${clientId} for one call (retry storm)`);
  return error;
}

// --- X.509 ----------------------------------------------------------------------------------

/** { sha1, sha256 } of the first certificate in a PEM text, upper-case hex (Azure's notation). */
function leafThumbprints(pem) {
  const cert = new crypto.X509Certificate(pem);
  const hex = (fp) => fp.replace(/:/g, '').toUpperCase();
  return { sha1: hex(cert.fingerprint), sha256: hex(cert.fingerprint256) };
}

/** GET /devices/{id}: { status, body }. */
function deviceRecord(deviceId) {
  return controlGet('/devices/' + encodeURIComponent(deviceId));
}

/** Neither an assigned DPS registration for `registrationId` nor a hub device `deviceId`. */
async function expectNotProvisioned(registrationId, deviceId) {
  const reg = await controlGet('/registrations/' + encodeURIComponent(registrationId));
  if (reg.status === 200 && reg.body && typeof reg.body === 'object') {
    check(
      reg.body.status !== 'assigned',
      `GET /registrations/${registrationId} shows an assigned registration: ${JSON.stringify(reg.body)}`
    );
  } else {
    check(reg.status === 404, `GET /registrations/${registrationId} returned ${reg.status}: ${JSON.stringify(reg.body)}`);
  }
  if (deviceId) {
    const dev = await deviceRecord(deviceId);
    check(
      dev.status === 404,
      `GET /devices/${deviceId} returned ${dev.status} (expected 404, no such device): ${JSON.stringify(dev.body)}`
    );
  }
}

// --- control port: POST (C2D) --------------------------------------------------------------

/** POST on the control port with `body` (string or Buffer): { status, body (parsed JSON or text) }. */
function controlPost(path, body = '') {
  return controlRequest('POST', path, body);
}

/** Any request on the control port: { status, body (parsed JSON or text) }. */
function controlRequest(method, path, body = '', contentType = 'application/octet-stream') {
  return new Promise((resolve, reject) => {
    const data = Buffer.isBuffer(body) ? body : Buffer.from(String(body), 'utf8');
    const req = http.request(
      CONTROL_URL + path,
      {
        method,
        timeout: 5000,
        headers: { ...CONTROL_AUTH, 'Content-Type': contentType, 'Content-Length': data.length },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed = text;
          try {
            parsed = JSON.parse(text);
          } catch (_) {
            /* keep text */
          }
          resolve({ status: res.statusCode, body: parsed });
        });
      }
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.on('error', reject);
    req.end(data);
  });
}

// --- injected faults (docs/faults.md) -------------------------------------------------------

/** POST /faults with `rule` (the control port's JSON); checks the 201 and returns the rule's id. */
async function installFault(rule) {
  const { status, body } = await controlRequest('POST', '/faults', JSON.stringify(rule), 'application/json');
  check(status === 201, `POST /faults returned ${status}: ${JSON.stringify(body)}`);
  check(body && typeof body.id === 'string', `POST /faults answered no id: ${JSON.stringify(body)}`);
  return body.id;
}

/** The rule `faultId` as GET /faults lists it (with `hits` and `remaining`). */
async function faultStatus(faultId) {
  const { status, body } = await controlGet('/faults');
  check(status === 200 && Array.isArray(body), `GET /faults returned ${status}: ${JSON.stringify(body)}`);
  const listed = body.filter((rule) => rule && rule.id === faultId);
  check(listed.length === 1, `GET /faults does not list ${faultId}: ${JSON.stringify(body)}`);
  return listed[0];
}

/** DELETE /faults/{id}; returns the status (204 when it was installed, 404 when not). */
async function removeFault(faultId) {
  const { status } = await controlRequest('DELETE', '/faults/' + encodeURIComponent(faultId));
  return status;
}

/**
 * DPS symmetric-key registration as in the quickstart (PROVISIONING_* environment, MQTT); checks
 * the result (assigned, hub, EXPECTED_DEVICE_ID). Returns { result, symmetricKey }. The SDK
 * modules are passed in (this file imports no SDK).
 */
async function provision(s, sdk) {
  const registrationId = env('PROVISIONING_REGISTRATION_ID');
  const symmetricKey = env('PROVISIONING_SYMMETRIC_KEY');
  s.step('register');
  const provisioningClient = sdk.ProvisioningDeviceClient.create(
    env('PROVISIONING_HOST'),
    env('PROVISIONING_IDSCOPE'),
    new sdk.ProvisioningTransport(),
    new sdk.SymmetricKeySecurityClient(registrationId, symmetricKey)
  );
  const result = await provisioningClient.register();
  expectEqual('registrationState.status', result.status, 'assigned');
  expectEqual('assigned hub', result.assignedHub, env('EXPECTED_ASSIGNED_HUB'));
  expectEqual('device id', result.deviceId, env('EXPECTED_DEVICE_ID'));
  return { result, symmetricKey };
}

/**
 * [provision], then opens a device client over MQTT.
 * Returns { client, deviceId }. The SDK modules are passed in (this file imports no SDK).
 */
async function provisionAndConnect(s, sdk) {
  const { result, symmetricKey } = await provision(s, sdk);
  s.step('connect to hub');
  const client = sdk.Client.fromConnectionString(
    'HostName=' + result.assignedHub + ';DeviceId=' + result.deviceId + ';SharedAccessKey=' + symmetricKey,
    sdk.Mqtt
  );
  await client.open();
  return { client, deviceId: result.deviceId };
}


// --- the Event Hubs-compatible endpoint ---------------------------------------------------

function findEventHubConnectionString(value) {
  if (typeof value === 'string') {
    return value.startsWith('Endpoint=sb://') && value.includes('EntityPath=') ? value : null;
  }
  const children = Array.isArray(value) ? value : value && typeof value === 'object' ? Object.values(value) : [];
  for (const child of children) {
    const found = findEventHubConnectionString(child);
    if (found) return found;
  }
  return null;
}

const EVENTHUB_ROUTES = ['/eventhubs', '/health'];

/**
 * The Event Hubs-compatible connection string the emulator publishes on its control port (the
 * one its startup banner prints), for the hub the scenarios use.
 */
async function eventHubConnectionString(s) {
  for (const route of EVENTHUB_ROUTES) {
    const { status, body } = await controlGet(route);
    const found = status === 200 ? findEventHubConnectionString(body) : null;
    if (found) {
      s.info(`Event Hubs-compatible connection string from GET ${route}: ${found}`);
      return found;
    }
  }
  throw new ScenarioFailure(
    `the control port publishes no Event Hubs-compatible connection string (looked for 'Endpoint=sb://…;EntityPath=…' in GET ${EVENTHUB_ROUTES.join(', ')})`
  );
}

/**
 * Subscribes `consumer` (an @azure/event-hubs EventHubConsumerClient) to all partitions with
 * `options` until `done(events)` is true or `ms` pass; closes the subscription. Returns
 * { events: [{ partitionId, event }], errors: [text] }.
 */
async function receiveEvents(consumer, options, done, ms) {
  const events = [];
  const errors = [];
  let finish;
  const finished = new Promise((resolve) => {
    finish = resolve;
  });
  const subscription = consumer.subscribe(
    {
      processEvents: async (batch, context) => {
        for (const event of batch) events.push({ partitionId: context.partitionId, event });
        if (done(events)) finish();
      },
      processError: async (err, context) => {
        errors.push(`partition ${context && context.partitionId}: ${describeError(err)}`);
      },
    },
    options
  );
  const timer = setTimeout(finish, ms);
  await finished;
  clearTimeout(timer);
  await subscription.close();
  return { events, errors };
}

/** An Event Hubs event body as text (the client JSON-decodes Data sections that parse as JSON). */
function eventBodyText(body) {
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  if (typeof body === 'string') return body;
  return JSON.stringify(body);
}

/**
 * The emulator's own record of the built-in endpoint (GET /eventhubs) has partition `partitionId`
 * holding every one of `sequenceNumbers` (between its begin and last enqueued sequence numbers).
 */
async function expectEventsRecorded(s, partitionId, sequenceNumbers) {
  const { status, body } = await controlGet('/eventhubs');
  check(status === 200 && Array.isArray(body) && body.length > 0, `GET /eventhubs returned ${status}: ${JSON.stringify(body)}`);
  const record = (body[0].partitions || []).find((p) => String(p.partitionId) === String(partitionId));
  check(record, `GET /eventhubs lists no partition ${partitionId}: ${JSON.stringify(body[0].partitions)}`);
  const low = record.beginSequenceNumber;
  const high = record.lastEnqueuedSequenceNumber;
  const outside = sequenceNumbers.filter((n) => !(n >= low && n <= high));
  check(outside.length === 0, `GET /eventhubs partition ${partitionId} holds sequence numbers ${low}..${high}, not ${JSON.stringify(outside)}`);
  s.info(`emulator: partition ${partitionId} holds sequence numbers ${low}..${high} (the events' ${Math.min(...sequenceNumbers)}..${Math.max(...sequenceNumbers)})`);
}

// --- AMQP in the emulator log -------------------------------------------------------------

// The emulator logs (debug) one line per C2D message a service sender link stored:
//   "C2D message queued over AMQP link=… device=<id> message_id=<id>"
// and one line per AMQP connection that arrived through a WebSocket upgrade (as for MQTT):
//   "AMQP over WebSocket: connection upgraded remote=<ip:port> path=…"
const C2D_QUEUED_OVER_AMQP = 'C2D message queued over AMQP';
const AMQP_WEBSOCKET_UPGRADE = 'AMQP over WebSocket: connection upgraded';

/** The emulator logged after `offset` that it queued each of `messageIds` for `deviceId` from an AMQP link. */
function expectC2dQueuedOverAmqp(s, offset, deviceId, messageIds) {
  check(EMULATOR_LOG && fs.existsSync(EMULATOR_LOG), 'emulator log unavailable: cannot see the AMQP C2D sends');
  const lines = logLinesSince(offset, C2D_QUEUED_OVER_AMQP).filter((l) => namesClient(l, deviceId));
  const missing = messageIds.filter((m) => !lines.some((l) => l.includes(m)));
  check(
    missing.length === 0,
    `the emulator logged no '${C2D_QUEUED_OVER_AMQP}' for ${deviceId} message id(s) ${JSON.stringify(missing)} (${lines.length} such line(s) for the device)`
  );
  s.info(`emulator: ${messageIds.length} C2D message(s) for ${deviceId} queued over AMQP`);
}

/** At least `atLeast` AMQP connections came through a WebSocket upgrade after `offset`. */
function expectAmqpWebsocketUpgrades(s, offset, atLeast = 1) {
  check(EMULATOR_LOG && fs.existsSync(EMULATOR_LOG), 'emulator log unavailable: cannot see WebSocket upgrades');
  const n = logLinesSince(offset, AMQP_WEBSOCKET_UPGRADE).length;
  check(n >= atLeast, `the emulator logged ${n} '${AMQP_WEBSOCKET_UPGRADE}' line(s), expected at least ${atLeast}`);
  s.info(`emulator: ${n} AMQP connection(s) over WebSocket`);
}

/** A fresh 32-byte symmetric key, base64, for a device a scenario creates. */
function newKey() {
  return crypto.randomBytes(32).toString('base64');
}

/** `fn(callback)` as a promise: the callback's error rejects it, its result resolves it. */
function viaCallback(fn) {
  return new Promise((resolve, reject) => fn((err, result) => (err ? reject(err) : resolve(result))));
}

/** Resolves once `predicate()` is true (polled every 100 ms) or fails after `ms`. */
async function waitUntil(predicate, ms, what) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new ScenarioFailure(`${what}: not within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * azure-iothub's getFeedbackReceiver() on an open service client: every record of every batch
 * (a JSON array) lands in `records` by originalMessageId, after `checkRecord` (which may throw
 * a ScenarioFailure); bodies that are not such arrays and receiver errors land in `errors`.
 */
async function collectFeedback(service, checkRecord = (r) => r) {
  const records = new Map();
  const errors = [];
  const receiver = await viaCallback((cb) => service.getFeedbackReceiver(cb));
  receiver.on('message', (msg) => {
    const text = msg.data.toString('utf8');
    console.log('feedback message:', text);
    try {
      for (const r of JSON.parse(text)) {
        const record = checkRecord(r);
        records.set(record.originalMessageId, record);
      }
    } catch (err) {
      errors.push(`feedback body ${text}: ${err instanceof ScenarioFailure ? err.message : 'not a JSON array'}`);
    }
  });
  receiver.on('errorReceived', (err) => errors.push(describeError(err)));
  return { records, errors };
}

// --- official samples, vendored unmodified (conformance/vendor/azure-iot-samples) ----------------

const SAMPLES = require('path').join(__dirname, '..', 'vendor', 'azure-iot-samples', 'node');

/**
 * Runs the vendored official sample `name` as a user would — `node <name>` in a scratch directory
 * holding a copy — with `envVars` added to the scenario's environment, until it exits or
 * `until(output)` is true (samples that keep timers alive); then it is stopped. Resolves with its
 * output; fails on a non-zero exit or after `ms`.
 */
function runOfficialSample(s, name, envVars, { ms = 60000, until = null } = {}) {
  const fs = require('fs');
  const os = require('os');
  const path = require('path');
  const { spawn } = require('child_process');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'iotemu-sample-'));
  fs.copyFileSync(path.join(SAMPLES, name), path.join(scratch, name));
  s.info(`running the official sample ${name} in ${scratch}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [name], { cwd: scratch, env: { ...process.env, ...envVars }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let done = false;
    const finish = (err) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      child.kill('SIGTERM');
      fs.rmSync(scratch, { recursive: true, force: true });
      for (const line of output.split('\n').slice(-40)) s.info(`  | ${line}`);
      if (err) reject(err); else resolve(output);
    };
    const timer = setTimeout(() => finish(new ScenarioFailure(`the sample ${name} did not finish within ${ms / 1000} s`)), ms);
    const take = (d) => {
      output += d;
      if (until && until(output)) finish(null);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('exit', (code) => finish(code === 0 || code === null ? null : new ScenarioFailure(`the sample ${name} exited ${code}`)));
  });
}

module.exports = {
  SDK,
  runOfficialSample,
  newKey,
  viaCallback,
  waitUntil,
  collectFeedback,
  ScenarioFailure,
  check,
  expectEqual,
  expectDeepEqual,
  env,
  describeError,
  withTimeout,
  run,
  deriveDeviceKey,
  controlGet,
  registrationRecord,
  waitForTelemetry,
  checkStoredMessage,
  logOffset,
  logLinesSince,
  countConnectAttempts,
  websocketSessions,
  expectWebsocketSessions,
  expectRefusal,
  leafThumbprints,
  deviceRecord,
  expectNotProvisioned,
  controlPost,
  controlRequest,
  installFault,
  faultStatus,
  removeFault,
  provision,
  provisionAndConnect,
  eventHubConnectionString,
  receiveEvents,
  eventBodyText,
  expectEventsRecorded,
  expectC2dQueuedOverAmqp,
  expectAmqpWebsocketUpgrades,
};
