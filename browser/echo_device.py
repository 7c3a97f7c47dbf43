"""A connected device for the portal's browser test: answers every direct method with its
payload, reports each desired-property patch back, and prints each cloud-to-device message as
one JSON line (body and application properties) so browser/portal.test.mjs can see it arrive.

Environment: DEVICE_HOST, DEVICE_ID, DEVICE_KEY (the primary key copied from the portal);
with MODULE_ID it connects as that module of the device instead, DEVICE_KEY then being the
module's key; with CERT_FILE and KEY_FILE (a module created with X.509 authentication) it
presents that certificate instead of a key.
"""

import asyncio
import json
import os
import sys

from azure.iot.device import MethodResponse, X509
from azure.iot.device.aio import IoTHubDeviceClient, IoTHubModuleClient


def say(kind, **fields):
    print(json.dumps(dict(kind=kind, **fields)), flush=True)


async def main():
    module_id = os.environ.get("MODULE_ID")
    if module_id and os.environ.get("CERT_FILE"):
        client = IoTHubModuleClient.create_from_x509_certificate(
            x509=X509(cert_file=os.environ["CERT_FILE"], key_file=os.environ["KEY_FILE"]),
            hostname=os.environ["DEVICE_HOST"],
            device_id=os.environ["DEVICE_ID"],
            module_id=module_id,
        )
    elif module_id:
        client = IoTHubModuleClient.create_from_connection_string(
            f"HostName={os.environ['DEVICE_HOST']};DeviceId={os.environ['DEVICE_ID']};"
            f"ModuleId={module_id};SharedAccessKey={os.environ['DEVICE_KEY']}"
        )
    else:
        client = IoTHubDeviceClient.create_from_symmetric_key(
            symmetric_key=os.environ["DEVICE_KEY"],
            hostname=os.environ["DEVICE_HOST"],
            device_id=os.environ["DEVICE_ID"],
        )

    async def on_method(request):
        say("method", name=request.name, payload=request.payload)
        await client.send_method_response(
            MethodResponse.create_from_method_request(request, 200, {"echo": request.payload, "method": request.name})
        )

    def on_message(message):
        body = message.data.decode("utf-8", "replace") if isinstance(message.data, bytes) else str(message.data)
        say("c2d", body=body, properties=message.custom_properties, messageId=message.message_id)

    async def on_desired(patch):
        say("desired", patch=patch)
        await client.patch_twin_reported_properties({"lastDesired": {k: v for k, v in patch.items() if not k.startswith("$")}})

    client.on_method_request_received = on_method
    client.on_message_received = on_message
    client.on_twin_desired_properties_patch_received = on_desired
    await client.connect()
    say("connected")
    # Runs until the test ends it (SIGTERM) or stdin closes.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await client.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
