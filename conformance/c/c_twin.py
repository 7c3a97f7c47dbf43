"""Scenario c_twin, C: paho_iot_hub_twin_sample with desired patches from the hub service SDK.

The device is provisioned with X.509 (paho_iot_provisioning_sample). paho_iot_hub_twin_sample
then gets its twin, reports `device_count` (0) and waits for desired patches, up to 5. The
service side is azure-iot-hub's IoTHubRegistryManager over HTTPS: 5 times, `update_twin` sets
desired `device_count` to N. The sample finds the property by walking the patch's JSON and stops
at `$version`, so it only sees N when the hub sends `$version` after the properties (as Azure
does); it then reports N back. Checked each time: the sample printed `Parsed desired
device_count: N` and got the reported patch acknowledged, and the service's twin shows reported
device_count N. After the 5th the sample exits 0 by itself ("Client received messages.").
"""

import asyncio
import time

from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin, TwinProperties

import samples
from samples import check, expect_equal, harness

scenario = samples.Scenario("c_twin", timeout=80.0)
PATCHES = 5  # the sample's MAX_TWIN_MESSAGE_COUNT: it exits after this many desired patches
REPORTED_BOUND = 10.0  # seconds for a desired patch to come back as a reported value


async def main():
    hub, device_id, key_store = await samples.provision_x509(
        scenario, harness.env("PROVISIONING_REGISTRATION_ID"), harness.env("X509_CERT_FILE"),
        harness.env("X509_KEY_FILE"), harness.env("EXPECTED_DEVICE_ID"))
    registry = IoTHubRegistryManager.from_connection_string(harness.env("IOTHUB_CONNECTION_STRING"))

    scenario.step("paho_iot_hub_twin_sample: get the twin, report device_count")
    sample = samples.Sample(scenario, "paho_iot_hub_twin_sample", samples.hub_x509_env(hub, device_id, key_store))
    await sample.wait_for(r"Message Type: GET")
    await sample.wait_for(r"Message Type: Reported Properties")
    twin = await samples.in_thread(registry.get_twin, device_id)
    expect_equal("service twin reported.device_count", (twin.properties.reported or {}).get("device_count"), 0)

    for n in range(1, PATCHES + 1):
        value = 40 + n
        scenario.step("service update_twin(desired device_count={}) #{}".format(value, n))
        twin = await samples.in_thread(registry.get_twin, device_id)
        updated = await samples.in_thread(
            registry.update_twin, device_id, Twin(properties=TwinProperties(desired={"device_count": value})), twin.etag)
        expect_equal("update_twin result desired.device_count", (updated.properties.desired or {}).get("device_count"),
                     value)

        scenario.step("the sample parses desired device_count={} and reports it back".format(value))
        await sample.wait_for(r"Parsed desired `device_count`: {}$".format(value))
        # The reported patch's acknowledgement: one more "Reported Properties" response.
        await sample.wait_for(r"Message Type: Reported Properties", n=n + 1)
        started = time.monotonic()
        while True:
            twin = await samples.in_thread(registry.get_twin, device_id)
            reported = (twin.properties.reported or {}).get("device_count")
            if reported == value:
                break
            check(time.monotonic() - started < REPORTED_BOUND,
                  "service twin reported.device_count is {!r}, not {}, {:.0f} s after the sample reported it".format(
                      reported, value, REPORTED_BOUND))
            await asyncio.sleep(0.1)

    scenario.step("the sample exits after its {} desired patches".format(PATCHES))
    out = await sample.wait_exit(timeout=15.0)
    check("Client received messages." in out, "the sample did not print 'Client received messages.'")
    check("not found" not in out, "the sample missed device_count in a desired patch")


if __name__ == "__main__":
    scenario.run(main)
