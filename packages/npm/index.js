'use strict';
// startIotemu(): runs the iotemu binary shipped in this package (bin/iotemu) on free ports and
// resolves once every listener is up, with the endpoints, connection strings and CA to trust.
//
// The binary writes a JSON "ready file" (--ready-file) when it is ready: the ports it really
// bound and connection strings that carry the HTTPS port. MQTT stays on 8883 and AMQP on 5671 (the
// official device SDKs and azure-iothub dial those; neither needs privileges); HTTPS takes 443
// when this process may bind it and a free port otherwise.
//
// Trust: Node reads NODE_EXTRA_CA_CERTS only when a process starts, and the emulator makes a new
// CA at every start. So by default (`trust: true`) startIotemu() adds the CA to the TLS defaults
// of this process (every tls.connect without its own `ca`: the SDKs' MQTT, AMQP and HTTPS
// clients, fetch) until stop(); child processes get it through `emu.env()`.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const tls = require('node:tls');

const AZURE_HTTPS_PORT = 443;
const TRANSPORTS_NEEDING_443 = Object.freeze([
  'MQTT over WebSocket (MqttWs)',
  'AMQP over WebSocket (AmqpWs)',
  'DPS registration over HTTPS (azure-iot-provisioning-device-http)',
  'device HTTP transport (azure-iot-device-http)',
  'REST service clients (azure-iothub Registry, azure-iot-provisioning-service): Node takes no port in HostName',
]);

/** The iotemu binary: $IOTEMU_BIN, else the one in this package. */
function binaryPath() {
  return process.env.IOTEMU_BIN || path.join(__dirname, 'bin', 'iotemu');
}

/** Whether this process may listen on 127.0.0.1:port right now. */
function canBind(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function logTail(file) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-30).join('\n');
  } catch {
    return '(no log)';
  }
}

// Every CA that startIotemu() added to this process's TLS defaults; the patch of
// tls.createSecureContext stays installed while the set is not empty.
const trusted = new Set();
let originalCreateSecureContext = null;

function addTrust(pem) {
  trusted.add(pem);
  if (originalCreateSecureContext) return;
  originalCreateSecureContext = tls.createSecureContext;
  const original = originalCreateSecureContext;
  tls.createSecureContext = function createSecureContext(options) {
    const context = original.apply(this, arguments);
    // A caller with its own `ca` decides alone; everyone else gets the system roots plus ours.
    if (!options || !options.ca) {
      for (const ca of trusted) context.context.addCACert(ca);
    }
    return context;
  };
}

function removeTrust(pem) {
  trusted.delete(pem);
  if (trusted.size === 0 && originalCreateSecureContext) {
    tls.createSecureContext = originalCreateSecureContext;
    originalCreateSecureContext = null;
  }
}

/**
 * Starts iotemu. Options: mqttPort (8883), amqpPort (5671), httpsPort (443 when bindable, else a
 * free port; $IOTEMU_HTTPS_PORT overrides; 0 = free), controlPort (0 = free), fixtures (files;
 * the built-in quickstart fixture without), dataDir, args (more iotemu flags), binary,
 * timeoutMs (30000), trust (true: trust the CA in this process until stop()).
 */
async function startIotemu(options = {}) {
  const binary = options.binary || binaryPath();
  let httpsPort = options.httpsPort;
  if (httpsPort === undefined || httpsPort === null) {
    if (process.env.IOTEMU_HTTPS_PORT) httpsPort = Number(process.env.IOTEMU_HTTPS_PORT);
    else httpsPort = (await canBind(AZURE_HTTPS_PORT)) ? AZURE_HTTPS_PORT : 0;
  }
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'iotemu-'));
  const caFile = path.join(workdir, 'ca.pem');
  const readyFile = path.join(workdir, 'ready.json');
  const logFile = path.join(workdir, 'iotemu.log');
  const args = [
    '--mqtt-port', String(options.mqttPort ?? 8883),
    '--amqp-port', String(options.amqpPort ?? 5671),
    '--https-port', String(httpsPort),
    '--control-port', String(options.controlPort ?? 0),
    '--ca-out', caFile,
    '--ready-file', readyFile,
  ];
  for (const file of options.fixtures || []) args.push('--fixtures', file);
  if (options.dataDir) args.push('--data-dir', options.dataDir);
  args.push(...(options.args || []));
  const env = { ...process.env };
  delete env.IOTEMU_READY_FILE;
  delete env.IOTEMU_CA_OUT;

  const log = fs.openSync(logFile, 'w');
  const child = spawn(binary, args, { stdio: ['ignore', log, log], env });
  fs.closeSync(log);
  let exited = null;
  const exitedPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  let spawnError = null;
  child.once('error', (e) => { spawnError = e; });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const cleanup = () => {
    process.removeListener('exit', killOnExit);
    fs.rmSync(workdir, { recursive: true, force: true });
  };
  const deadline = Date.now() + (options.timeoutMs ?? 30000);
  while (!fs.existsSync(readyFile)) {
    if (spawnError || exited) {
      const why = spawnError ? `cannot run ${binary}: ${spawnError.message}`
        : `iotemu exited (${exited.code ?? exited.signal}) before it was ready`;
      const tail = logTail(logFile);
      cleanup();
      throw new Error(`${why}\n${tail}`);
    }
    if (Date.now() > deadline) {
      const tail = logTail(logFile);
      child.kill('SIGKILL');
      cleanup();
      throw new Error(`iotemu was not ready within ${options.timeoutMs ?? 30000} ms\n${tail}`);
    }
    await sleep(20);
  }
  const info = JSON.parse(fs.readFileSync(readyFile, 'utf8'));
  const caPem = fs.readFileSync(caFile, 'utf8');
  const hub = info.hubs[0];
  // Node's REST clients put HostName into https.request's `host`, which takes no port, and
  // azure-iothub's AMQP Client would dial that port: Node gets the names without it (AMQP on
  // 5671 works everywhere, REST needs HTTPS on 443).
  const withoutPort = (cs) => cs && cs.replace(/^HostName=([^;:]+):\d+;/, 'HostName=$1;');
  const trust = options.trust !== false;
  if (trust) addTrust(caPem);

  const get = async (route) => {
    const response = await fetch(info.controlUrl + route);
    if (!response.ok) throw new Error(`GET ${route}: HTTP ${response.status} ${await response.text()}`);
    return (response.headers.get('content-type') || '').includes('json') ? response.json() : response.text();
  };
  const keyOf = (e) => e && e.attestation && e.attestation.symmetricKey && e.attestation.symmetricKey.primaryKey;

  let stopped = null;
  return {
    info,
    pid: child.pid,
    controlUrl: info.controlUrl,
    mqttPort: info.mqttPort,
    amqpPort: info.amqpPort,
    httpsPort: info.httpsPort,
    caFile,
    caPem,
    logFile,
    idScope: info.idScope,
    provisioningHost: info.dpsHost,
    hubHost: hub.hostName,
    hubConnectionString: withoutPort(hub.connectionString),
    eventHubsConnectionString: hub.eventHubsConnectionString,
    dpsServiceConnectionString: withoutPort(info.dpsServiceConnectionString),
    unavailableTransports: info.httpsPort === AZURE_HTTPS_PORT ? [] : TRANSPORTS_NEEDING_443,
    get,
    /** Environment for child processes that must trust the emulator (Node, Python, curl…). */
    env() {
      return { NODE_EXTRA_CA_CERTS: caFile, SSL_CERT_FILE: caFile, REQUESTS_CA_BUNDLE: caFile };
    },
    /** Telemetry the hub stored, oldest first ({ deviceId, body, properties, … }). */
    telemetry(deviceId) {
      return get('/telemetry' + (deviceId ? `?deviceId=${encodeURIComponent(deviceId)}` : ''));
    },
    /**
     * A device to provision: a symmetric-key individual enrollment's registration id gives its
     * key; any other id (default: a unique dev-<hex>) gets a key derived from a symmetric-key
     * enrollment group (options.group, else the first: the quickstart's quickstart-group).
     */
    async device(registrationId, deviceOptions = {}) {
      const base = { idScope: info.idScope, provisioningHost: info.dpsHost };
      if (registrationId && !deviceOptions.group) {
        const individual = (await get('/enrollments')).find((e) => e.registrationId === registrationId && keyOf(e));
        if (individual) {
          return { ...base, registrationId, deviceId: individual.deviceId || registrationId, symmetricKey: keyOf(individual) };
        }
      }
      const group = (await get('/enrollmentGroups'))
        .find((g) => keyOf(g) && (!deviceOptions.group || g.enrollmentGroupId === deviceOptions.group));
      if (!group) throw new Error('no symmetric-key enrollment group in the emulator\'s fixtures');
      const id = registrationId || `dev-${crypto.randomBytes(6).toString('hex')}`;
      const symmetricKey = crypto.createHmac('sha256', Buffer.from(keyOf(group), 'base64')).update(id, 'utf8').digest('base64');
      return { ...base, registrationId: id, deviceId: id, symmetricKey };
    },
    /** SIGTERM (SIGKILL after 10 s), forget the CA, remove the temporary files. */
    stop() {
      if (!stopped) {
        stopped = (async () => {
          if (!exited) {
            child.kill('SIGTERM');
            const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
            await exitedPromise;
            clearTimeout(timer);
          }
          if (trust) removeTrust(caPem);
          cleanup();
        })();
      }
      return stopped;
    },
  };
}

module.exports = { startIotemu, binaryPath, AZURE_HTTPS_PORT };
