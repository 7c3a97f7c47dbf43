"""Scenario c_methods, C: paho_iot_hub_methods_sample answers methods invoked by the service SDK.

The device is provisioned with X.509 (paho_iot_provisioning_sample). paho_iot_hub_methods_sample
subscribes to methods and answers up to 5 calls: `ping` with status 200 and {"response": "pong"},
anything else with 404 and {}. The service side is azure-iot-hub's
IoTHubRegistryManager.invoke_device_method over HTTPS: ping, an unknown method, then ping
three more times; each result's status and payload must be the sample's, and the sample exits 0
after the 5th call by itself.
"""

from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import CloudToDeviceMethod

import samples
from samples import check, expect_equal, harness

scenario = samples.Scenario("c_methods", timeout=80.0)
CALLS = ["ping", "conformanceUnknownMethod", "ping", "ping", "ping"]  # the sample's MAX_METHOD_MESSAGE_COUNT is 5


async def main():
    hub, device_id, key_store = await samples.provision_x509(
        scenario, harness.env("PROVISIONING_REGISTRATION_ID"), harness.env("X509_CERT_FILE"),
        harness.env("X509_KEY_FILE"), harness.env("EXPECTED_DEVICE_ID"))
    registry = IoTHubRegistryManager.from_connection_string(harness.env("IOTHUB_CONNECTION_STRING"))

    scenario.step("paho_iot_hub_methods_sample subscribes")
    sample = samples.Sample(scenario, "paho_iot_hub_methods_sample", samples.hub_x509_env(hub, device_id, key_store))
    await sample.wait_for(r"ready to receive Methods messages")

    for i, name in enumerate(CALLS, start=1):
        scenario.step("service invoke_device_method({}) #{}".format(name, i))
        result = await samples.in_thread(
            registry.invoke_device_method, device_id,
            CloudToDeviceMethod(method_name=name, payload={"call": i}, response_timeout_in_seconds=20))
        print("method result:", result.status, result.payload)
        if name == "ping":
            expect_equal("{} status".format(name), result.status, 200)
            expect_equal("{} payload".format(name), result.payload, {"response": "pong"})
        else:
            expect_equal("{} status (the sample's 404 passed through)".format(name), result.status, 404)
            expect_equal("{} payload".format(name), result.payload, {})

    scenario.step("the sample exits after its {} calls".format(len(CALLS)))
    out = await sample.wait_exit(timeout=15.0)
    expect_equal("sample lines \"Client invoked method 'ping'.\"", out.count("Client invoked method 'ping'."), 4)
    check("Method not supported: conformanceUnknownMethod" in out, "the sample did not report the unknown method")


if __name__ == "__main__":
    scenario.run(main)
