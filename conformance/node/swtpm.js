// swtpm for the TPM scenarios (tpm_registration, dps_amqp_tpm): Debian's software TPM on
// tss.js' fallback port, with its state in a fresh temporary directory removed at exit
// (spec/tpm.md Q1), and a promise wrapper for azure-iot-security-tpm's callback getters.
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const h = require('./harness');

const SWTPM_PORT = 2323; // tss.js' fallback "user mode TRM" port (spec/tpm.md Q1)

/** Starts swtpm with a fresh state directory; resolves once its data port accepts connections. */
async function startSwtpm(s) {
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'iotemu-swtpm-'));
  const args = [
    'socket', '--tpm2',
    '--server', `type=tcp,port=${SWTPM_PORT},bindaddr=127.0.0.1`,
    '--ctrl', `type=tcp,port=${SWTPM_PORT + 1},bindaddr=127.0.0.1`,
    '--tpmstate', `dir=${state}`,
    '--flags', 'not-need-init,startup-clear',
  ];
  s.info('swtpm ' + args.join(' '));
  const child = childProcess.spawn('swtpm', args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const spawnError = new Promise((_, reject) => child.on('error', (e) => reject(
    new h.ScenarioFailure(`cannot start swtpm (Debian package swtpm; conformance/run installs it in CI): ${e.message}`))));
  process.on('exit', () => {
    child.kill();
    fs.rmSync(state, { recursive: true, force: true });
  });
  const ready = (async () => {
    for (let i = 0; i < 100; i++) {
      const ok = await new Promise((resolve) => {
        const socket = net.connect(SWTPM_PORT, '127.0.0.1', () => { socket.destroy(); resolve(true); });
        socket.on('error', () => resolve(false));
      });
      if (ok) return;
      if (child.exitCode !== null) throw new h.ScenarioFailure(`swtpm exited with ${child.exitCode}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new h.ScenarioFailure(`swtpm did not listen on ${SWTPM_PORT} within 10 s`);
  })();
  await Promise.race([ready, spawnError]);
}

/** Promise wrapper of a TpmSecurityClient getter. */
function tpmCall(client, method, ...args) {
  return new Promise((resolve, reject) => client[method](...args, (err, value) => (err ? reject(err) : resolve(value))));
}

module.exports = { SWTPM_PORT, startSwtpm, tpmCall };
