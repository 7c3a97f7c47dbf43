// Scenarios file_upload and file_upload_azurite, Node: file upload (docs/file-upload.md) with the
// official SDKs, into the emulator's built-in blob store (file_upload) or into Azurite, the account
// the hub 127.0.0.1 is linked to by connection string (file_upload_azurite; STORAGE_CONNECTION_STRING
// set: the container is created first with @azure/storage-blob, as a hub's linked container must
// exist on Azure, and the blobs are read back from Azurite instead of GET /blobs).
//
// The service creates a SAS device (azure-iothub Registry over HTTPS) and listens for file-upload
// notifications (Client.getFileNotificationReceiver over AMQP). The device (azure-iot-device over
// MQTT; file upload itself is always HTTPS) then
//   * runs the upload_to_blob.js sample's call, client.uploadToBlob('testblob.txt', stream, length):
//     the SDK asks the hub for a SAS URI (POST /devices/{id}/files), uploads with
//     @azure/storage-blob's uploadStream (Put Block + Put Block List, with the SDK's keyless
//     x-ms-encryption-algorithm header) and reports success with the correlation id in the path
//     (POST …/files/notifications/{correlationId});
//   * runs the upload_to_blob_advanced.js sample's steps: getBlobSharedAccessSignature, its own
//     BlockBlobClient from @azure/storage-blob and uploadFile (a single Put Blob), then
//     notifyBlobUploadStatus(correlationId, true, status, bodyAsText).
// Then the official samples upload_to_blob.js and upload_to_blob_advanced.js
// (conformance/vendor/azure-iot-samples, unmodified) run with the device's connection string and
// a file (PATH_TO_FILE), both uploading testblob.txt. Each of the four uploads gives the service
// one notification whose body names the device, the blob ({deviceId}/{name}), its size and a blob
// URI; the control port (GET /blobs) lists both blobs with the bytes last uploaded.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { Readable } = require('stream');
const { Client: ServiceClient, Registry } = require('azure-iothub');
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
// The storage SDK azure-iot-device itself depends on (the advanced sample requires it the same way).
const { AnonymousCredential, BlobServiceClient, BlockBlobClient, newPipeline } = require('@azure/storage-blob');

const h = require('./harness');

const runId = crypto.randomUUID();
const NOTIFICATION_BOUND_MS = 15000;

async function streamToBuffer(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return Buffer.concat(chunks);
}

function runFlow(name) {
  h.run(
    name,
    async (s) => {
      const serviceCs = h.env('IOTHUB_CONNECTION_STRING');
      const deviceId = h.env('UPLOAD_DEVICE_ID') + '-' + runId.slice(0, 8);
      const hubHost = /HostName=([^;]+)/.exec(serviceCs)[1];
      const container = h.env('UPLOAD_CONTAINER');
      const storageCs = process.env.STORAGE_CONNECTION_STRING;
      let containerClient = null;
      if (storageCs) {
        s.step(`the linked container '${container}' in Azurite (ContainerClient.createIfNotExists)`);
        containerClient = BlobServiceClient.fromConnectionString(storageCs).getContainerClient(container);
        await containerClient.createIfNotExists();
      }

      s.step('service Registry.create (SAS device, over HTTPS)');
      const key = h.newKey();
      await Registry.fromConnectionString(serviceCs).create({
        deviceId,
        status: 'enabled',
        authentication: { symmetricKey: { primaryKey: key, secondaryKey: h.newKey() } },
      });

      s.step('service Client (Amqp) open(), getFileNotificationReceiver()');
      const service = ServiceClient.fromConnectionString(serviceCs);
      await service.open();
      const notifications = [];
      const receiverErrors = [];
      const receiver = await h.viaCallback((cb) => service.getFileNotificationReceiver(cb));
      receiver.on('message', (msg) => {
        const text = msg.data.toString('utf8');
        console.log('file notification:', text);
        try {
          const body = JSON.parse(text);
          notifications.push(body);
        } catch (err) {
          receiverErrors.push(`notification body ${text} is not JSON`);
        }
      });
      receiver.on('errorReceived', (err) => receiverErrors.push(h.describeError(err)));

      const device = DeviceClient.fromConnectionString(`HostName=${hubHost};DeviceId=${deviceId};SharedAccessKey=${key}`, Mqtt);
      await device.open();

      s.step("upload_to_blob.js: client.uploadToBlob('testblob.txt', stream, length)");
      const content = Buffer.from(`file upload ${runId}\n`.repeat(100), 'utf8');
      await device.uploadToBlob('testblob.txt', Readable.from([content]), content.length);

      s.step('upload_to_blob_advanced.js: getBlobSharedAccessSignature, BlockBlobClient.uploadFile, notifyBlobUploadStatus');
      const file = path.join(os.tmpdir(), `iotemu-upload-${runId}.txt`);
      const advancedContent = Buffer.from(`advanced ${runId}`, 'utf8');
      fs.writeFileSync(file, advancedContent);
      const blobInfo = await device.getBlobSharedAccessSignature('advanced.txt');
      h.check(blobInfo && blobInfo.correlationId, `no correlationId in ${JSON.stringify(blobInfo)}`);
      h.expectEqual('blobName of the SAS answer', blobInfo.blobName, `${deviceId}/advanced.txt`);
      h.check(blobInfo.sasToken.startsWith('?sv='), `sasToken ${blobInfo.sasToken}`);
      h.expectEqual('containerName of the SAS answer', blobInfo.containerName, container);
      if (storageCs) h.expectEqual("hostName (Azurite's blob endpoint)", blobInfo.hostName, '127.0.0.1:10000/devstoreaccount1');
      const url = `https://${blobInfo.hostName}/${blobInfo.containerName}/${blobInfo.blobName}${blobInfo.sasToken}`;
      const pipeline = newPipeline(new AnonymousCredential(), { retryOptions: { maxTries: 2 } });
      const uploaded = await new BlockBlobClient(url, pipeline).uploadFile(file);
      fs.unlinkSync(file);
      h.expectEqual('uploadFile status', uploaded._response.status, 201);
      await device.notifyBlobUploadStatus(blobInfo.correlationId, true, uploaded._response.status, uploaded._response.bodyAsText || '');
      await device.close();

      s.step('the official samples upload_to_blob.js and upload_to_blob_advanced.js, unmodified');
      const deviceCs = `HostName=${hubHost};DeviceId=${deviceId};SharedAccessKey=${key}`;
      const sampleFile = path.join(os.tmpdir(), `iotemu-sample-upload-${runId}.txt`);
      fs.writeFileSync(sampleFile, `sample upload ${runId}`);
      const sampleEnv = { IOTHUB_DEVICE_CONNECTION_STRING: deviceCs, PATH_TO_FILE: sampleFile };
      const simple = await h.runOfficialSample(s, 'upload_to_blob.js', sampleEnv);
      h.check(simple.includes('Upload successful'), 'upload_to_blob.js did not print Upload successful');
      const advanced = await h.runOfficialSample(s, 'upload_to_blob_advanced.js', sampleEnv);
      h.check(advanced.includes('uploadStreamToBlockBlob success') && !advanced.includes('notifyBlobUploadStatus failed'),
        'upload_to_blob_advanced.js did not succeed');
      fs.unlinkSync(sampleFile);

      s.step('the service receives one notification per upload');
      const expected = new Map([
        [`${deviceId}/testblob.txt`, Buffer.from(`sample upload ${runId}`, 'utf8')],
        [`${deviceId}/advanced.txt`, advancedContent],
      ]);
      // One notification per upload; a name uploaded more than once is judged by its last one.
      const sizeOf = (bytes) => (storageCs ? 0 : bytes.length);
      const latest = (name) => notifications.filter((n) => n.blobName === name).pop();
      const ours = () => notifications.filter((n) => n.deviceId === deviceId);
      await h.waitUntil(() => ours().length >= 4 && [...expected].every(([name, bytes]) => latest(name) && latest(name).blobSizeInBytes === sizeOf(bytes)),
        NOTIFICATION_BOUND_MS,
        `notifications for ${[...expected.keys()]} (got ${JSON.stringify(notifications.map((n) => [n.blobName, n.blobSizeInBytes]))}; errors ${JSON.stringify(receiverErrors)})`);
      for (const name of expected.keys()) {
        const n = latest(name);
        h.expectEqual(`deviceId of ${name}`, n.deviceId, deviceId);
        // The hub reads sizes from the built-in store only (docs/differences.md).
        h.check(n.blobUri.endsWith(`/${container}/${name}`), `blobUri ${n.blobUri}`);
        h.check(!Number.isNaN(Date.parse(n.enqueuedTimeUtc)), `enqueuedTimeUtc ${n.enqueuedTimeUtc}`);
      }
      h.expectEqual('notifications for the four uploads', ours().length, 4);
      h.check(receiverErrors.length === 0, `receiver errors: ${JSON.stringify(receiverErrors)}`);
      await service.close();

      if (containerClient) {
        s.step('Azurite holds both blobs with the uploaded bytes (BlobClient.download)');
        for (const [name, bytes] of expected) {
          const download = await containerClient.getBlobClient(name).download();
          const got = await streamToBuffer(download.readableStreamBody);
          h.check(got.equals(bytes), `content of ${name} in Azurite: ${got.length} bytes, expected ${bytes.length}`);
        }
        return;
      }
      s.step(`GET /blobs lists both blobs; GET /blobs/${container}/{name} serves the uploaded bytes`);
      const listed = await h.controlGet('/blobs');
      h.expectEqual('GET /blobs status', listed.status, 200);
      for (const [name, bytes] of expected) {
        const entry = listed.body.find((b) => b.container === container && b.name === name);
        h.check(entry, `${name} not listed: ${JSON.stringify(listed.body)}`);
        h.expectEqual(`size of ${name}`, entry.size, bytes.length);
        const served = await h.controlGet(`/blobs/${container}/${name}`);
        h.expectEqual(`content of ${name}`, String(served.body), bytes.toString('utf8'));
      }
    },
    { timeoutSeconds: 60 }
  );
}

module.exports = { runFlow };
