"""Shared plumbing for the C lane's scenario drivers: runs the official azure-sdk-for-c paho samples.

The samples (conformance/vendor/azure-sdk-for-c/sdk/samples/iot/, built unmodified by
conformance/c/CMakeLists.txt into $CONFORMANCE_C_SAMPLES) take their whole configuration from
AZ_IOT_* environment variables (iot_sample_common.h) and report what they did on stdout; their
exit code is 0 only when their flow finished. A driver (conformance/c/<scenario>.py) runs them
with `Sample`, acts from the service side while an interactive sample waits (twin, methods, C2D),
and checks both the sample's output and the emulator's record through the Python harness
(conformance/python/harness.py: control port, verdict line). The verdict line names the lane
"c": `PASS c <scenario>` / `FAIL c <scenario>: <step>: <reason>`.

The samples print with printf and flush only on errors, so they run under `stdbuf -oL` (line
buffering through the C library, no change to the sample) for their progress to be seen while
they wait. Every sample still running when the verdict is printed is killed first.
"""

import asyncio
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

import harness  # noqa: E402  (after the path insert)
from harness import check, expect_equal  # noqa: E402,F401  (re-exported for the drivers, with harness)

harness.SDK = "c"
SAMPLE_TIMEOUT = 30.0  # seconds for a non-interactive sample (DPS, telemetry) to finish
_running = []


class Scenario(harness.Scenario):
    """harness.Scenario that kills the samples still running before the verdict."""

    def _finish(self, line, code):
        for sample in list(_running):
            sample.kill()
        super()._finish(line, code)


def sample_path(name):
    directory = harness.env("CONFORMANCE_C_SAMPLES")
    path = os.path.join(directory, name)
    check(os.access(path, os.X_OK), "{} is not built in {}".format(name, directory))
    return path


class Sample:
    """One run of a sample binary: its output lines as they come, its exit code at the end."""

    def __init__(self, scenario, name, env):
        self.name = name
        self.lines = []
        self._changed = threading.Condition()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AZ_IOT_")}
        full_env["AZ_IOT_DEVICE_X509_TRUST_PEM_FILE_PATH"] = harness.env("AZ_IOT_DEVICE_X509_TRUST_PEM_FILE_PATH")
        full_env.update(env)
        scenario.info("run {} ({})".format(name, ", ".join(
            "{}={}".format(k, "***" if k.endswith("_KEY") else v) for k, v in sorted(env.items()))))
        self.proc = subprocess.Popen(
            ["stdbuf", "-oL", "-eL", sample_path(name)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, env=full_env)
        _running.append(self)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            # A copy in the scenario's SDK log (stderr), prefixed with the sample's name.
            print("{}: {}".format(self.name, line), file=sys.stderr, flush=True)
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        self.proc.wait()
        with self._changed:
            self._changed.notify_all()

    def text(self):
        with self._changed:
            return "\n".join(self.lines)

    def count(self, pattern):
        """How many output lines match `pattern` (a regular expression)."""
        rx = re.compile(pattern)
        with self._changed:
            return sum(1 for line in self.lines if rx.search(line))

    def _wait_count(self, rx, n, timeout):
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = sum(1 for line in self.lines if rx.search(line))
                if found >= n:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return False
                self._changed.wait(min(remaining, 0.2))

    async def wait_for(self, pattern, n=1, timeout=15.0):
        """Waits until `n` output lines match `pattern`; fails with the sample's last lines if not."""
        rx = re.compile(pattern)
        ok = await asyncio.get_running_loop().run_in_executor(None, self._wait_count, rx, n, timeout)
        if not ok:
            raise harness.ScenarioFailure("{} printed {} of {} line(s) matching {!r} ({}); last output: {}".format(
                self.name, self.count(pattern), n, pattern,
                "it exited with code {}".format(self.proc.returncode) if self.proc.poll() is not None
                else "still running after {:.0f} s".format(timeout),
                " | ".join(l.strip() for l in self.lines[-6:] if l.strip())))

    async def wait_exit(self, timeout=SAMPLE_TIMEOUT):
        """Waits for the sample to exit; fails unless its exit code is 0. Returns its output."""
        code = await self.wait_code(timeout)
        check(code == 0, "{} exited with code {}; last output: {}".format(
            self.name, code, " | ".join(l.strip() for l in self.lines[-6:] if l.strip())))
        return self.text()

    async def wait_code(self, timeout=SAMPLE_TIMEOUT):
        """Waits for the sample to exit (fails if it does not within `timeout`); its exit code."""
        loop = asyncio.get_running_loop()
        try:
            code = await loop.run_in_executor(None, self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            raise harness.ScenarioFailure("{} did not exit within {:.0f} s; last output: {}".format(
                self.name, timeout, " | ".join(l.strip() for l in self.lines[-6:] if l.strip())))
        await loop.run_in_executor(None, self._reader.join, 5.0)
        _running.remove(self)
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def paho_key_store(cert_file, key_file):
    """The one PEM file the samples hand paho as its keyStore (AZ_IOT_DEVICE_X509_CERT_PEM_FILE_PATH):
    the certificate (chain) followed by its private key, written next to the certificate."""
    with open(cert_file, encoding="ascii") as f:
        cert = f.read()
    with open(key_file, encoding="ascii") as f:
        key = f.read()
    base, _ = os.path.splitext(cert_file)
    path = base + ".paho-keystore.pem"
    with open(path, "w", encoding="ascii") as f:
        f.write(cert.rstrip("\n") + "\n" + key)
    os.chmod(path, 0o600)
    return path


def printed(text, label):
    """The value after `label` on the sample's output line `<tabs><label> <value>`, or None."""
    m = re.search(r"^\s*" + re.escape(label) + r" (.*)$", text, re.MULTILINE)
    return m.group(1).strip() if m else None


async def provision_x509(scenario, registration_id, cert_file, key_file, expected_device_id):
    """paho_iot_provisioning_sample with the certificate; checks the printed assignment and the
    emulator's registration record. Returns (hub hostname, device id, keystore path)."""
    key_store = paho_key_store(cert_file, key_file)
    scenario.step("paho_iot_provisioning_sample ({})".format(registration_id))
    sample = Sample(scenario, "paho_iot_provisioning_sample", {
        "AZ_IOT_PROVISIONING_ID_SCOPE": harness.env("PROVISIONING_IDSCOPE"),
        "AZ_IOT_PROVISIONING_REGISTRATION_ID": registration_id,
        "AZ_IOT_DEVICE_X509_CERT_PEM_FILE_PATH": key_store,
    })
    out = await sample.wait_exit()
    return check_provisioned(scenario, out, registration_id, expected_device_id) + (key_store,)


def check_provisioned(scenario, out, registration_id, expected_device_id):
    """Checks a provisioning sample's output and the registration record; (hub, device id)."""
    scenario.step("check the printed assignment and the registration record ({})".format(registration_id))
    check("Device provisioned:" in out, "the sample did not print 'Device provisioned:'")
    hub = printed(out, "Hub Hostname:")
    device_id = printed(out, "Device Id:")
    expect_equal("printed hub hostname", hub, harness.env("EXPECTED_ASSIGNED_HUB"))
    expect_equal("printed device id", device_id, expected_device_id)
    status, record = harness.control_get("/registrations/" + registration_id)
    check(status == 200, "GET /registrations/{} returned {}: {}".format(registration_id, status, record))
    expect_equal("record status", record.get("status"), "assigned")
    expect_equal("record deviceId", record.get("deviceId"), expected_device_id)
    return hub, device_id


def hub_x509_env(hub, device_id, key_store):
    return {"AZ_IOT_HUB_HOSTNAME": hub, "AZ_IOT_HUB_DEVICE_ID": device_id,
            "AZ_IOT_DEVICE_X509_CERT_PEM_FILE_PATH": key_store}


def telemetry_bodies(device_id):
    """The bodies the emulator stored for `device_id`, oldest first (GET /telemetry)."""
    status, body = harness.control_get("/telemetry?deviceId=" + device_id)
    check(status == 200 and isinstance(body, list), "GET /telemetry?deviceId={} returned {}: {}".format(
        device_id, status, body))
    return [m.get("body") for m in body]


def expect_sample_telemetry(device_id):
    """The telemetry samples send {"message_number":1} … 5; every one must be stored, in order."""
    wanted = ['{{"message_number":{}}}'.format(i) for i in range(1, 6)]
    bodies = telemetry_bodies(device_id)
    expect_equal("bodies stored for {} (GET /telemetry)".format(device_id), bodies, wanted)


async def in_thread(fn, *args, **kwargs):
    return await harness.in_thread(fn, *args, **kwargs)
