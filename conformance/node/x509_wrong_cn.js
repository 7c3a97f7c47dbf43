// Scenario (h) x509_wrong_cn, Node: a certificate whose CN is not the registration id is refused.
//
// DPS requires the leaf certificate's subject CN to equal the registration id (protocol.md §4).
// 1. Individual enrollment: the device presents exactly the certificate of its enrollment, but
//    that certificate's CN is another name: register() must be refused promptly, nothing
//    provisioned.
// 2. Enrollment group: a leaf correctly signed by the group's intermediate CA, with CN X,
//    registers under another registration id: refused promptly, nothing provisioned under
//    either name.
'use strict';

const fs = require('fs');

const Transport = require('azure-iot-provisioning-device-mqtt').Mqtt;
const X509Security = require('azure-iot-security-x509').X509Security;
const ProvisioningDeviceClient = require('azure-iot-provisioning-device').ProvisioningDeviceClient;

const h = require('./harness');

const readPair = (certVar, keyVar) => ({
  cert: fs.readFileSync(h.env(certVar)).toString(),
  key: fs.readFileSync(h.env(keyVar)).toString(),
});

h.run('x509_wrong_cn', async (s) => {
  const provisioningHost = h.env('PROVISIONING_HOST');
  const idScope = h.env('PROVISIONING_IDSCOPE');
  const registrationId = h.env('PROVISIONING_REGISTRATION_ID');
  const enrolledDeviceId = h.env('EXPECTED_DEVICE_ID');
  const groupRegistrationId = h.env('GROUP_REGISTRATION_ID');
  const groupCertCn = h.env('GROUP_CERTIFICATE_CN');
  const deviceCert = readPair('CERTIFICATE_FILE', 'KEY_FILE');
  const groupCert = readPair('GROUP_CERTIFICATE_FILE', 'GROUP_KEY_FILE');

  s.step('register an individual enrollment with its certificate whose CN differs');
  const client = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new Transport(),
    new X509Security(registrationId, deviceCert)
  );
  await h.expectRefusal(s, `register() as ${registrationId}`, registrationId, () => client.register());

  s.step('check nothing was provisioned for the individual enrollment');
  await h.expectNotProvisioned(registrationId, enrolledDeviceId);

  s.step('register with a group-signed certificate whose CN differs');
  const groupClient = ProvisioningDeviceClient.create(
    provisioningHost,
    idScope,
    new Transport(),
    new X509Security(groupRegistrationId, groupCert)
  );
  await h.expectRefusal(s, `register() as ${groupRegistrationId}`, groupRegistrationId, () => groupClient.register());

  s.step('check nothing was provisioned for the group device');
  await h.expectNotProvisioned(groupRegistrationId, groupRegistrationId);
  await h.expectNotProvisioned(groupCertCn, groupCertCn);
});
