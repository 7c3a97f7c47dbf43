"""Scenario readme_backend, Python: the README's backend snippets, run exactly as printed.

README.md "Send C2D from your backend" and "Read telemetry from your backend" each carry a Python
block marked `<!-- readme-snippet: send_c2d.py -->` / `read_telemetry.py`. This scenario copies
those blocks byte for byte into files and runs them as the README says
(`SSL_CERT_FILE=iotemu-ca.pem python send_c2d.py`: the suite's environment already has
SSL_CERT_FILE; `python read_telemetry.py`, which names `iotemu-ca.pem` itself, in a directory
holding the emulator CA under that name), with the quickstart device connected:

  * send_c2d.py sends `{"command": "reboot"}` (message id `reboot-1`, property `priority`) to
    `python-device-008` with azure-iot-hub over AMQP and exits 0; the device receives it intact;
  * the device sends a message; read_telemetry.py (azure-eventhub, runs until stopped) prints
    `python-device-008 <body>` for it; the scenario then stops it;
  * the Event Hubs-compatible connection string in the README is the one the emulator publishes.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

from azure.iot.device import Message
from azure.iot.device.aio import IoTHubDeviceClient, ProvisioningDeviceClient

import harness
from harness import check, expect_equal

scenario = harness.Scenario("readme_backend", timeout=75.0)
run_id = str(uuid.uuid4())
SNIPPET_BOUND = 30.0
RECEIVE_BOUND = 15.0


def run_to_end(path):
    proc = subprocess.run([sys.executable, path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=SNIPPET_BOUND, cwd=os.path.dirname(path))
    return proc.returncode, proc.stdout.decode("utf-8", "replace")


def read_until(path, wanted, bound):
    """Runs a long-running snippet until a line of its output contains every string of `wanted`
    (or `bound` seconds pass), stops it, and returns (matching line or None, all output)."""
    proc = subprocess.Popen([sys.executable, path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, cwd=os.path.dirname(path))
    os.set_blocking(proc.stdout.fileno(), False)
    deadline = time.monotonic() + bound
    buffer, match = b"", None
    try:
        while match is None and time.monotonic() < deadline and proc.poll() is None:
            chunk = proc.stdout.read()
            if chunk:
                buffer += chunk
                lines = buffer.decode("utf-8", "replace").splitlines()
                match = next((l for l in lines if all(w in l for w in wanted)), None)
            else:
                time.sleep(0.1)
    finally:
        proc.kill()
        rest = proc.communicate()[0] or b""
    return match, (buffer + rest).decode("utf-8", "replace")


async def main():
    workdir = tempfile.mkdtemp(prefix="readme-backend-")
    # The README runs the snippets next to the CA written with `--ca-out iotemu-ca.pem`.
    shutil.copyfile(harness.env("SSL_CERT_FILE"), os.path.join(workdir, "iotemu-ca.pem"))
    send_c2d = harness.write_snippet(workdir, "send_c2d.py")
    read_telemetry = harness.write_snippet(workdir, "read_telemetry.py")

    scenario.step("the README's Event Hubs-compatible connection string is the published one")
    published = await harness.eventhub_connection_string(scenario)
    check(published in harness.readme_snippet("read_telemetry.py"),
          "read_telemetry.py in README.md does not use the published connection string {}".format(published))

    device, device_id = await harness.provision_and_connect(scenario, ProvisioningDeviceClient, IoTHubDeviceClient)
    expect_equal("quickstart device id", device_id, "python-device-008")
    loop = asyncio.get_running_loop()
    received = asyncio.Queue()
    device.on_message_received = lambda m: loop.call_soon_threadsafe(received.put_nowait, m)

    scenario.step("run the README's send_c2d.py")
    code, output = await harness.in_thread(run_to_end, send_c2d)
    print(output)
    expect_equal("send_c2d.py exit code (output: {!r})".format(output[-500:]), code, 0)
    try:
        msg = await asyncio.wait_for(received.get(), RECEIVE_BOUND)
    except asyncio.TimeoutError:
        raise harness.ScenarioFailure("the device received nothing within {:.0f} s".format(RECEIVE_BOUND))
    print("device received: id={!r} data={!r} props={!r}".format(msg.message_id, msg.data, msg.custom_properties))
    expect_equal("message id", msg.message_id, "reboot-1")
    expect_equal("data", msg.data, b'{"command": "reboot"}')
    expect_equal("custom properties", msg.custom_properties, {"priority": "high"})

    scenario.step("the device sends a message; run the README's read_telemetry.py until it prints it")
    body = json.dumps({"temperature": 21.5, "run": run_id})
    await device.send_message(Message(body))
    await device.shutdown()
    line, output = await harness.in_thread(read_until, read_telemetry, [device_id, run_id], 25.0)
    print(output[-3000:])
    check(line is not None, "read_telemetry.py printed no line with {} and the message within 25 s".format(device_id))
    expect_equal("read_telemetry.py line", line.strip(), "{} {}".format(device_id, body))


if __name__ == "__main__":
    scenario.run(main)
