// Scenario device_amqp_x509, Node: an X.509 device over azure-iot-device-amqp's Amqp transport.
//
// The service creates a selfSigned device (Registry.create with the SHA-1 thumbprint of a
// certificate made at run time by `iotemu certs self-signed`, conformance/x509.json). The device
// connects with Client.fromConnectionString('HostName=…;DeviceId=…;x509=true', Amqp) and
// setOptions({cert, key}): TLS with the client certificate, plain AMQP header, no SASL and no CBS
// (spec/amqp.md §5.1). Two telemetry messages are stored by the hub (GET /telemetry) and a twin
// reported patch is seen by the service. Last, a certificate with the same CN and another key
// pair opens (the hub judges a device certificate at its links, as IoT Hub does) and its
// sendEvent fails promptly with UnauthorizedError (amqp:unauthorized-access).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const { Client, Message } = require('azure-iot-device');
const { Amqp } = require('azure-iot-device-amqp');
const { Registry } = require('azure-iothub');

const h = require('./harness');

const runId = crypto.randomUUID();

h.run(
  'device_amqp_x509',
  async (s) => {
    const deviceId = h.env('AMQP_DEVICE_ID');
    const hubHost = h.env('EXPECTED_ASSIGNED_HUB');
    const registry = Registry.fromConnectionString(h.env('IOTHUB_CONNECTION_STRING'));
    const deviceCert = {
      cert: fs.readFileSync(h.env('CERTIFICATE_FILE')).toString(),
      key: fs.readFileSync(h.env('KEY_FILE')).toString(),
    };
    const { sha1 } = h.leafThumbprints(deviceCert.cert);

    s.step('service Registry.create (selfSigned device with the certificate thumbprint)');
    await registry.create({ deviceId, status: 'enabled', authentication: { x509Thumbprint: { primaryThumbprint: sha1 } } });

    s.step("Client.fromConnectionString('…;x509=true', Amqp), setOptions({cert, key}), open()");
    const client = Client.fromConnectionString(`HostName=${hubHost};DeviceId=${deviceId};x509=true`, Amqp);
    await client.setOptions(deviceCert);
    await h.withTimeout(client.open(), 15000, 'open');

    s.step('sendEvent x2');
    const sent = new Map();
    for (const i of [1, 2]) {
      const message = new Message(`x509 amqp telemetry ${i}`);
      message.messageId = crypto.randomUUID();
      message.properties.add('conformanceRun', runId);
      await client.sendEvent(message);
      sent.set(message.messageId, `x509 amqp telemetry ${i}`);
    }
    const found = await h.waitForTelemetry(deviceId, new Set(sent.keys()));
    h.expectEqual('messages stored', found.size, sent.size);
    for (const [mid, stored] of found) h.checkStoredMessage(stored, deviceId, sent.get(mid), { conformanceRun: runId });

    s.step('twin reported patch, seen by the service');
    const twin = await h.withTimeout(client.getTwin(), 10000, 'getTwin');
    await h.withTimeout(
      new Promise((resolve, reject) => twin.properties.reported.update({ conformanceRun: runId }, (err) => (err ? reject(err) : resolve()))),
      10000,
      'reported.update'
    );
    const { responseBody: serviceTwin } = await registry.getTwin(deviceId);
    h.expectEqual('service twin reported.conformanceRun', (serviceTwin.properties.reported || {}).conformanceRun, runId);

    s.step('close');
    await client.close();

    // Same CN, another key pair: the hub refuses it at the device's links, as IoT Hub does
    // (the connection opens; the link is detached with amqp:unauthorized-access and 401002).
    // sendEvent attaches one link. (getTwin attaches two; when both are refused,
    // azure-iot-device-amqp 1.14.4 reports UnauthorizedError at once too, but its close() then
    // waits out its 45 s rundown timer: rhea sees the second refusal after it ended the session.)
    s.step('an impostor certificate (same CN, another key pair): open, then sendEvent must fail with an authorization error');
    const impostorCert = {
      cert: fs.readFileSync(h.env('IMPOSTOR_CERTIFICATE_FILE')).toString(),
      key: fs.readFileSync(h.env('IMPOSTOR_KEY_FILE')).toString(),
    };
    const impostor = Client.fromConnectionString(`HostName=${hubHost};DeviceId=${deviceId};x509=true`, Amqp);
    await impostor.setOptions(impostorCert);
    await h.withTimeout(impostor.open(), 15000, 'impostor open (the hub judges the certificate at the links)');
    const started = Date.now();
    let error = null;
    try {
      await h.withTimeout(impostor.sendEvent(new Message('impostor telemetry')), 20000, 'impostor sendEvent');
    } catch (err) {
      if (err instanceof h.ScenarioFailure) throw err;
      error = err;
    }
    h.check(error !== null, 'impostor sendEvent succeeded');
    const described = h.describeError(error);
    s.info(`impostor sendEvent failed after ${((Date.now() - started) / 1000).toFixed(2)} s: ${described}`);
    h.check(/unauthori[sz]ed/i.test(described), `impostor sendEvent: expected an authorization error, got ${described}`);
    await impostor.close().catch(() => {});
  },
  { timeoutSeconds: 60 }
);
