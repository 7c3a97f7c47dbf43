"""Scenario c_c2d, C: paho_iot_hub_c2d_sample receives cloud-to-device messages.

The device is provisioned with X.509 (paho_iot_provisioning_sample). One message is queued
through the control port (`POST /c2d?deviceId=&messageId=&prop.<k>=<v>`) before the sample
connects, four more once paho_iot_hub_c2d_sample has subscribed. The sample parses each topic
with az_iot_hub_client_c2d_parse_received_topic and prints topic and payload: every body must
be printed once, in order, with its message id and application property in the topic. The
sample exits 0 after its 5 messages by itself; then nothing is left queued for the device
(paho's PUBACK completed every message; the portal API's GET /api/hubs/{hub}/devices/{id}/messages).
"""

import asyncio
import urllib.parse
import uuid

import samples
from samples import check, expect_equal, harness

scenario = samples.Scenario("c_c2d", timeout=80.0)
MESSAGES = 5  # the sample's MAX_C2D_MESSAGE_COUNT
QUEUE_SETTLE_SECONDS = 5.0
run_id = uuid.uuid4().hex[:12]


def send(device_id, i):
    query = {"deviceId": device_id, "messageId": "c-{}-{}".format(run_id, i), "prop.conformanceIndex": str(i)}
    body = '{{"conformance":"{}","index":{}}}'.format(run_id, i)
    status, resp = harness.control_post("/c2d?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote), body)
    expect_equal("POST /c2d #{} status".format(i), status, 201)
    return body


async def main():
    hub, device_id, key_store = await samples.provision_x509(
        scenario, harness.env("PROVISIONING_REGISTRATION_ID"), harness.env("X509_CERT_FILE"),
        harness.env("X509_KEY_FILE"), harness.env("EXPECTED_DEVICE_ID"))

    scenario.step("POST /c2d before the sample connects (queued)")
    bodies = [send(device_id, 1)]

    scenario.step("paho_iot_hub_c2d_sample subscribes and gets the queued message")
    sample = samples.Sample(scenario, "paho_iot_hub_c2d_sample", samples.hub_x509_env(hub, device_id, key_store))
    await sample.wait_for(r"Client parsed C2D message\.")

    scenario.step("POST /c2d while the sample waits")
    for i in range(2, MESSAGES + 1):
        bodies.append(send(device_id, i))
        await sample.wait_for(r"Client parsed C2D message\.", n=i)

    scenario.step("the sample exits after its {} messages".format(MESSAGES))
    out = await sample.wait_exit(timeout=15.0)
    payloads = [line.split("Payload:", 1)[1].strip() for line in out.splitlines() if "Payload:" in line]
    expect_equal("payloads the sample printed", payloads, bodies)
    topics = [line.split("Topic:", 1)[1].strip() for line in out.splitlines() if "Topic:" in line]
    for i, topic in enumerate(topics, start=1):
        check("c-{}-{}".format(run_id, i) in topic, "topic #{} lacks message id c-{}-{}: {}".format(i, run_id, i, topic))
        check("conformanceIndex={}".format(i) in topic, "topic #{} lacks conformanceIndex={}: {}".format(i, i, topic))

    scenario.step("nothing left queued for the device")
    # The sample's last PUBACK and its DISCONNECT can still be on their way when it has
    # exited; give the emulator a moment to read them before judging the queue.
    path = "/api/hubs/{}/devices/{}/messages".format(hub, device_id)
    deadline = asyncio.get_running_loop().time() + QUEUE_SETTLE_SECONDS
    while True:
        status, queued = harness.control_get(path)
        check(status == 200, "GET {} returned {}: {}".format(path, status, queued))
        if queued == [] or asyncio.get_running_loop().time() >= deadline:
            break
        await asyncio.sleep(0.1)
    expect_equal("messages still queued {} s after the sample completed them (GET {})".format(
        QUEUE_SETTLE_SECONDS, path), queued, [])


if __name__ == "__main__":
    scenario.run(main)
