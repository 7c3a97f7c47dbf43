"""Scenarios file_upload and file_upload_azurite, Python: the upload_to_blob.py sample's flow, into the
built-in blob store (file_upload) or into Azurite, the account the hub 127.0.0.1 is linked to by
connection string (file_upload_azurite; STORAGE_CONNECTION_STRING set).

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
Then the official sample upload_to_blob.py (conformance/vendor/azure-iot-samples, unmodified) runs
with the device's connection string and uploads its `fakeBlobName12`.
Built-in store: the control port (GET /blobs) lists the blob once, with the first upload's bytes.
Azurite: the container is created first with the storage SDK (a hub's linked container must exist,
as on Azure), the SAS URL points at Azurite (https://127.0.0.1:10000/devstoreaccount1/…), and the
blob is read back from Azurite with the storage SDK.
"""

import os
import uuid

from azure.core.exceptions import ResourceExistsError
from azure.iot.device.aio import IoTHubDeviceClient
from azure.iot.hub import IoTHubRegistryManager
from azure.storage.blob import BlobClient, ContainerClient

import harness
from harness import check, expect_equal, in_thread

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


def create_container(connection_string, name):
    with ContainerClient.from_connection_string(connection_string, name) as container:
        try:
            container.create_container()
        except ResourceExistsError:
            pass  # the other lane made it


def download(connection_string, container, name):
    with BlobClient.from_connection_string(connection_string, container, name) as blob:
        return blob.download_blob().readall()


async def main(scenario):
    storage = os.environ.get("STORAGE_CONNECTION_STRING")
    container = harness.env("UPLOAD_CONTAINER")
    if storage:
        scenario.step("the linked container {!r} in Azurite (ContainerClient.create_container)".format(container))
        await in_thread(create_container, storage, container)
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
    expect_equal("containerName", storage_info["containerName"], container)
    if storage:
        expect_equal("hostName (Azurite's blob endpoint)", storage_info["hostName"], "127.0.0.1:10000/devstoreaccount1")
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

    scenario.step("the official sample upload_to_blob.py, unmodified, with IOTHUB_DEVICE_CONNECTION_STRING")
    output = await harness.run_official_sample(scenario, "upload_to_blob.py", {"IOTHUB_DEVICE_CONNECTION_STRING": device_cs})
    check("'status_code': 200" in output, "the sample did not report status_code 200")
    sample_blob = "{}/fakeBlobName12".format(device_id)

    name = storage_info["blobName"]
    if storage:
        scenario.step("the blobs in Azurite hold the uploaded bytes (BlobClient.download_blob)")
        expect_equal("content of {}".format(name), await in_thread(download, storage, container, name), content)
        expect_equal("content of " + sample_blob, await in_thread(download, storage, container, sample_blob), b"Hello, World!")
        return
    scenario.step("GET /blobs lists the blob once, with the first upload's bytes")
    status, listed = await harness.control_get_async("/blobs")
    expect_equal("GET /blobs status", status, 200)
    entries = [b for b in listed if b["name"] == name]
    expect_equal("entries for {}".format(name), len(entries), 1)
    expect_equal("size of {}".format(name), entries[0]["size"], len(content))
    expect_equal("container", entries[0]["container"], container)
    status, served = await harness.control_get_async("/blobs/{}/{}".format(container, sample_blob))
    expect_equal("the sample's blob", (status, served), (200, "Hello, World!"))


def run(name):
    scenario = harness.Scenario(name, timeout=60.0)
    scenario.run(lambda: main(scenario))
