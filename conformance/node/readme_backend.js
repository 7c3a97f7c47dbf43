// Scenario readme_backend, Node: the README's backend snippets, run exactly as printed.
//
// README.md "Send C2D from your backend" and "Read telemetry from your backend" each carry a Node
// block marked `<!-- readme-snippet: send_c2d.js -->` / `read_telemetry.js`. This scenario copies
// those blocks byte for byte into files and runs them as the README says
// (`NODE_EXTRA_CA_CERTS=iotemu-ca.pem node <file>`: the suite's environment already sets it, and
// NODE_PATH to the pinned packages), with the Node quickstart device connected:
//
//   * send_c2d.js sends {"command": "reboot"} (message id reboot-2, property priority) to
//     node-device-008 with azure-iothub over AMQP and exits 0; the device receives it intact;
//   * the device sends a message; read_telemetry.js (@azure/event-hubs, runs until stopped)
//     prints `node-device-008 <body as JSON>` for it; the scenario then stops it;
//   * the Event Hubs-compatible connection string in the README is the one the emulator publishes.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawn } = require('child_process');
const { Client, Message } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const ProvisioningTransport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const { SymmetricKeySecurityClient } = require('azure-iot-security-symmetric-key');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');

const h = require('./harness');

const runId = crypto.randomUUID();
const README = path.join(__dirname, '..', '..', 'README.md');
const SNIPPET = /<!-- readme-snippet: (\S+)[^\n]*-->\n```[a-z]*\n([\s\S]*?)\n```/g;

function readmeSnippet(name) {
  const found = {};
  for (const m of fs.readFileSync(README, 'utf8').matchAll(SNIPPET)) found[m[1]] = m[2] + '\n';
  h.check(name in found, `README.md has no snippet marked <!-- readme-snippet: ${name} --> (has: ${Object.keys(found)})`);
  return found[name];
}

/**
 * Runs `file` with node until it exits or `until(output)` is true or `ms` pass (then kills it).
 * Resolves { code (null if killed), output }.
 */
function runSnippet(file, ms, until = () => false) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: path.dirname(file), env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let settled = false;
    const finish = (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      resolve({ code, output });
    };
    const onData = (chunk) => {
      output += chunk.toString('utf8');
      if (until(output)) finish(null);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => finish(code));
    const timer = setTimeout(() => finish(null), ms);
  });
}

function propsOf(msg) {
  const out = {};
  for (let i = 0; i < msg.properties.count(); i++) out[msg.properties.getItem(i).key] = msg.properties.getItem(i).value;
  return out;
}

h.run(
  'readme_backend',
  async (s) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'readme-backend-'));
    const sendFile = path.join(dir, 'send_c2d.js');
    const readFile = path.join(dir, 'read_telemetry.js');
    fs.writeFileSync(sendFile, readmeSnippet('send_c2d.js'));
    fs.writeFileSync(readFile, readmeSnippet('read_telemetry.js'));

    s.step("the README's Event Hubs-compatible connection string is the published one");
    const published = await h.eventHubConnectionString(s);
    h.check(readmeSnippet('read_telemetry.js').includes(published), `read_telemetry.js in README.md does not use the published connection string ${published}`);

    const { client, deviceId } = await h.provisionAndConnect(s, {
      Client, Mqtt, ProvisioningTransport, SymmetricKeySecurityClient, ProvisioningDeviceClient,
    });
    h.expectEqual('quickstart device id', deviceId, 'node-device-008');
    const received = [];
    client.on('message', (msg) => {
      received.push({ mid: msg.messageId, data: msg.data.toString('utf8'), props: propsOf(msg) });
      client.complete(msg, () => {});
    });

    s.step("run the README's send_c2d.js");
    const sent = await runSnippet(sendFile, 30000);
    console.log(sent.output);
    h.expectEqual(`send_c2d.js exit code (output: ${JSON.stringify(sent.output.slice(-500))})`, sent.code, 0);
    const deadline = Date.now() + 15000;
    while (!received.some((r) => r.mid === 'reboot-2') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const got = received.find((r) => r.mid === 'reboot-2');
    h.check(got, `the device did not receive message reboot-2 within 15 s (got ${JSON.stringify(received)})`);
    h.expectEqual('data', got.data, '{"command": "reboot"}');
    h.expectDeepEqual('properties', got.props, { priority: 'high' });

    s.step("the device sends a message; run the README's read_telemetry.js until it prints it");
    const body = JSON.stringify({ temperature: 21.5, run: runId });
    await client.sendEvent(new Message(body));
    await client.close();
    const read = await runSnippet(readFile, 25000, (out) => out.split('\n').some((l) => l.includes(deviceId) && l.includes(runId)));
    console.log(read.output.slice(-3000));
    const line = read.output.split('\n').find((l) => l.includes(deviceId) && l.includes(runId));
    h.check(line, `read_telemetry.js printed no line with ${deviceId} and the message within 25 s`);
    h.expectEqual('read_telemetry.js line', line.trim(), `${deviceId} ${body}`);
  },
  { timeoutSeconds: 80 }
);
