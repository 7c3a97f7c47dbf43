"""Scenario file_upload, Python: the upload_to_blob.py sample's flow against the built-in blob store.

The hub service SDK (azure-iot-hub, HTTPS) creates a SAS device; the device SDK
(azure-iot-device, MQTT connection; file upload itself is HTTPS) then does what
samples/async-hub-scenarios/upload_to_blob.py does:
  * `get_storage_info_for_blob(name)` (POST /devices/{id}/files): hostName, containerName,
    blobName `{deviceId}/{name}` and a sasToken with its leading '?';
  * `BlobClient.from_blob_url("https://{hostName}/{containerName}/{blobName}{sasToken}")` and
    `upload_blob(data)` from azure-storage-blob (one Put Blob with If-None-Match: *, since the
    sample does not overwrite), 201;
  * `notify_blob_upload_status(correlationId, True, 200, "OK: …")`, 204.
A second upload to the same name raises ResourceExistsError (409 BlobAlreadyExists), and the
sample's error path reports it with `notify_blob_upload_status(correlationId, False, 409, reason)`.
The control port (GET /blobs) lists the blob once, with the first upload's bytes.
"""

import uuid

from azure.core.exceptions import ResourceExistsError
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.hub import IoTHubRegistryManager
from azure.storage.blob import BlobClient

import harness
from harness import check, expect_equal, in_thread

scenario = harness.Scenario("file_upload", timeout=60.0)
run_id = str(uuid.uuid4())


def sas_url(storage_info):
    # Exactly the sample's URL.
    return "https://{}/{}/{}{}".format(
        storage_info["hostName"],
        storage_info["containerName"],
        storage_info["blobName"],
        storage_info["sasToken"],
    )


def upload(url, data):
    with BlobClient.from_blob_url(url) as blob_client:
        return blob_client.upload_blob(data)


async def main():
    registry = IoTHubRegistryManager.from_connection_string(harness.env("IOTHUB_CONNECTION_STRING"))
    device_id = "{}-{}".format(harness.env("UPLOAD_DEVICE_ID"), run_id[:8])
    device_cs = await harness.create_sas_device(scenario, registry, device_id)
    device = IoTHubDeviceClient.create_from_connection_string(device_cs)
    await device.connect()
    blob_name = "sample-{}.txt".format(run_id[:8])
    content = "Hello, World! {}".format(run_id).encode("utf-8")

    scenario.step("get_storage_info_for_blob({!r})".format(blob_name))
    storage_info = await device.get_storage_info_for_blob(blob_name)
    scenario.info("storage info: {}".format({k: v for k, v in storage_info.items() if k != "sasToken"}))
    expect_equal("blobName", storage_info["blobName"], "{}/{}".format(device_id, blob_name))
    check(storage_info["sasToken"].startswith("?sv="), "sasToken {!r}".format(storage_info["sasToken"]))

    scenario.step("BlobClient.from_blob_url(sas_url).upload_blob(data); notify_blob_upload_status(True, 200)")
    result = await in_thread(upload, sas_url(storage_info), content)
    check(result.get("etag"), "upload_blob returned no etag: {}".format(result))
    await device.notify_blob_upload_status(storage_info["correlationId"], True, 200, "OK: {}".format(blob_name))

    scenario.step("a second upload to the same name: ResourceExistsError, reported with notify_blob_upload_status(False, 409)")
    second = await device.get_storage_info_for_blob(blob_name)
    try:
        await in_thread(upload, sas_url(second), b"must not replace the first")
        check(False, "the second upload_blob replaced an existing blob")
    except ResourceExistsError as ex:
        expect_equal("status of the second upload", ex.status_code, 409)
        await device.notify_blob_upload_status(second["correlationId"], False, ex.status_code, str(ex.reason))
    await device.shutdown()

    scenario.step("GET /blobs lists the blob once, with the first upload's bytes")
    status, listed = await harness.control_get_async("/blobs")
    expect_equal("GET /blobs status", status, 200)
    name = storage_info["blobName"]
    entries = [b for b in listed if b["name"] == name]
    expect_equal("entries for {}".format(name), len(entries), 1)
    expect_equal("size of {}".format(name), entries[0]["size"], len(content))
    expect_equal("container", entries[0]["container"], storage_info["containerName"])


if __name__ == "__main__":
    scenario.run(main)
