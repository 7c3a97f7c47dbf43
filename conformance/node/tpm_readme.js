// Scenario tpm_readme, Node: README.md "TPM attestation", run exactly as printed.
//
// The section's three blocks are marked `<!-- readme-snippet: start_swtpm.sh -->`,
// `enroll_tpm.js` and `register_tpm.js`. This scenario copies them byte for byte into a fresh
// directory and runs them as the README says: start_swtpm.sh with bash in that directory
// (swtpm in the foreground, stopped at the end), then `node enroll_tpm.js` and
// `node register_tpm.js` (the suite's environment already sets NODE_EXTRA_CA_CERTS to the
// emulator CA and NODE_PATH to the pinned packages). Asserts: enroll_tpm.js prints
// `enrolled <registration id>` and exits 0; register_tpm.js prints
// `assigned my-tpm-device to localhost` and `message sent` and exits 0; the emulator's
// registration record for that id is assigned to my-tpm-device, and it stored the message
// (GET /telemetry).
'use strict';

const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');

const h = require('./harness');

const README = path.join(__dirname, '..', '..', 'README.md');
const SNIPPET = /<!-- readme-snippet: (\S+)[^\n]*-->\n```[a-z]*\n([\s\S]*?)\n```/g;
const DEVICE_ID = 'my-tpm-device';

function readmeSnippet(name) {
  const found = {};
  for (const m of fs.readFileSync(README, 'utf8').matchAll(SNIPPET)) found[m[1]] = m[2] + '\n';
  h.check(name in found, `README.md has no snippet marked <!-- readme-snippet: ${name} --> (has: ${Object.keys(found)})`);
  return found[name];
}

/** Runs `command args` in `dir` until it exits or `ms` pass; resolves { code, output }. */
function runToEnd(command, args, dir, ms) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: dir, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const onData = (chunk) => {
      output += chunk.toString('utf8');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

async function waitForPort(port, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const open = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new h.ScenarioFailure(`nothing listens on 127.0.0.1:${port} after ${ms / 1000} s`);
}

h.run(
  'tpm_readme',
  async (s) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-tpm-'));
    for (const name of ['start_swtpm.sh', 'enroll_tpm.js', 'register_tpm.js']) {
      fs.writeFileSync(path.join(dir, name), readmeSnippet(name));
    }

    s.step("run the README's start_swtpm.sh (left running)");
    // Its own process group, so stopping it stops swtpm too.
    const swtpm = spawn('bash', ['start_swtpm.sh'], { cwd: dir, env: process.env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
    process.on('exit', () => {
      try {
        process.kill(-swtpm.pid, 'SIGKILL');
      } catch (_) {
        /* already gone */
      }
      fs.rmSync(dir, { recursive: true, force: true });
    });
    await waitForPort(2323, 10000);

    s.step("run the README's enroll_tpm.js");
    const enrolled = await runToEnd(process.execPath, ['enroll_tpm.js'], dir, 30000);
    console.log(enrolled.output);
    h.expectEqual(`enroll_tpm.js exit code (output: ${JSON.stringify(enrolled.output.slice(-500))})`, enrolled.code, 0);
    const match = enrolled.output.match(/^enrolled ([a-z0-9]+)$/m);
    h.check(match, `enroll_tpm.js did not print "enrolled <registration id>": ${enrolled.output}`);
    const registrationId = match[1];

    s.step("run the README's register_tpm.js");
    const registered = await runToEnd(process.execPath, ['register_tpm.js'], dir, 60000);
    console.log(registered.output);
    h.expectEqual(`register_tpm.js exit code (output: ${JSON.stringify(registered.output.slice(-500))})`, registered.code, 0);
    h.check(registered.output.includes(`assigned ${DEVICE_ID} to localhost`), `register_tpm.js did not print the assignment: ${registered.output}`);
    h.check(registered.output.includes('message sent'), `register_tpm.js did not print "message sent": ${registered.output}`);

    s.step('check the registration record and the stored message');
    const record = await h.registrationRecord(registrationId);
    h.expectEqual('record status', record.status, 'assigned');
    h.expectEqual('record deviceId', record.deviceId, DEVICE_ID);
    const { status, body } = await h.controlGet('/telemetry?deviceId=' + DEVICE_ID);
    h.check(status === 200 && Array.isArray(body), `GET /telemetry returned ${status}: ${JSON.stringify(body)}`);
    h.check(
      body.some((m) => m.deviceId === DEVICE_ID && m.body === JSON.stringify({ attestation: 'tpm' })),
      `the emulator stored no message {"attestation":"tpm"} for ${DEVICE_ID}: ${JSON.stringify(body)}`
    );
  },
  { timeoutSeconds: 120 }
);
