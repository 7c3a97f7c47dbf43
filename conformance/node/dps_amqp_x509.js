// Scenario dps_amqp_x509, Node: DPS X.509 registration over AMQP, individual enrollment.
//
// register_x509.js with azure-iot-provisioning-device-amqp: X509Security(regId, {cert, key}) and
// `Amqp` (5671) or `AmqpWs` (wss on 443), each with its own self-signed device certificate made
// by `iotemu certs self-signed` (conformance/x509.json). The transport sends no SASL (plain AMQP
// header) and presents the certificate in the TLS handshake; the emulator judges it before it
// answers `open`, as DPS does. Asserts: assigned with the enrollment's device id and
// initialAssignment, the emulator's record agrees, the requests were answered over AMQP (AmqpWs:
// through a WebSocket upgrade), the hub device is `selfSigned` with the certificate's thumbprint;
// then the device connects to the hub (MQTT, x509=true) with the certificate and one message is
// stored. Last, a self-signed certificate with the same CN but another key pair is refused over
// both transports: the connection is closed right after `open` with amqp:unauthorized-access and
// DPS's 401002 JSON (azure-iot-sdk-c#815 shows DPS doing so), register() reports an
// authorization error promptly, no registration link was refused, and the registration record
// does not change.
'use strict';

const fs = require('fs');

const X509Security = require('azure-iot-security-x509').X509Security;

const h = require('./harness');
const dps = require('./dps_amqp_common');

/** The emulator's log line for a certificate DPS refuses before `open` (amqp/dps_x509_open.rs). */
const X509_REFUSED_AT_OPEN = 'AMQP DPS X.509: certificate refused';

h.run('dps_amqp_x509', async (s) => {
  for (const transport of dps.TRANSPORTS) {
    const prefix = transport.toUpperCase();
    const registrationId = h.env(`${prefix}_REGISTRATION_ID`);
    const expectedDeviceId = h.env(`${prefix}_EXPECTED_DEVICE_ID`);
    const deviceCert = {
      cert: fs.readFileSync(h.env(`${prefix}_CERTIFICATE_FILE`)).toString(),
      key: fs.readFileSync(h.env(`${prefix}_KEY_FILE`)).toString(),
    };
    const { sha1, sha256 } = h.leafThumbprints(deviceCert.cert);
    const result = await dps.registerOverAmqp(
      s,
      transport,
      registrationId,
      new X509Security(registrationId, deviceCert),
      expectedDeviceId
    );

    s.step(`check the hub device ${expectedDeviceId} (GET /devices)`);
    const { status, body: device } = await h.deviceRecord(expectedDeviceId);
    h.check(status === 200, `GET /devices/${expectedDeviceId} returned ${status}: ${JSON.stringify(device)}`);
    const auth = (device && device.authentication) || {};
    h.expectEqual('device authentication.type', auth.type, 'selfSigned');
    const primary = ((auth.x509Thumbprint && auth.x509Thumbprint.primaryThumbprint) || '').toUpperCase();
    h.check(
      primary === sha1 || primary === sha256,
      `device authentication.x509Thumbprint.primaryThumbprint is ${JSON.stringify(primary || null)}, not the certificate's ${sha1} / ${sha256}`
    );

    await dps.sendOneMessage(s, result, deviceCert, 'dps_amqp_x509');
  }

  // Same CN, another key pair: DPS refuses the certificate before any link — the connection
  // is closed right after `open` with amqp:unauthorized-access and DPS's 401002 JSON — so
  // register() fails promptly with an authorization error and nothing changes.
  const registrationId = h.env('AMQP_REGISTRATION_ID');
  const impostorCert = {
    cert: fs.readFileSync(h.env('IMPOSTOR_CERTIFICATE_FILE')).toString(),
    key: fs.readFileSync(h.env('IMPOSTOR_KEY_FILE')).toString(),
  };
  for (const transport of dps.TRANSPORTS) {
    s.step(`register ${registrationId} over ${transport} with an impostor certificate (same CN)`);
    const before = await h.registrationRecord(registrationId);
    const offset = h.logOffset();
    const error = await dps.expectRegisterFails(
      s,
      transport,
      new X509Security(registrationId, impostorCert),
      'register() with an impostor certificate'
    );
    const described = dps.describeRegistrationError(error);
    h.check(
      /unauthori[sz]ed/i.test(described),
      `register() with an impostor certificate over ${transport}: expected an authorization error, got ${described}`
    );
    const refusedAtOpen = dps.linesNaming(offset, X509_REFUSED_AT_OPEN, registrationId).length;
    h.check(
      refusedAtOpen > 0,
      `the emulator logged no '${X509_REFUSED_AT_OPEN}' line for ${registrationId} (did the log wording change?)`
    );
    const linksRefused = dps.linesNaming(offset, 'AMQP DPS link refused', registrationId).length;
    h.expectEqual('registration links refused (the connection is refused before any link)', linksRefused, 0);
    const after = await h.registrationRecord(registrationId);
    h.expectEqual('record lastUpdatedDateTimeUtc (unchanged)', after.lastUpdatedDateTimeUtc, before.lastUpdatedDateTimeUtc);
  }
});
