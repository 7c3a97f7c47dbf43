"""Scenario readme_x509_group, Python: README.md's X.509 enrollment-group story, run as printed.

README.md ("The X.509 enrollment-group story, end to end") tells the story with three blocks,
each marked `<!-- readme-snippet: … -->`; this scenario writes each to a scratch directory and runs
it there, unchanged, against the suite's emulator (control port 9180, the port the README names):

1. `x509_group.sh` with bash, `iotemu` on PATH (the suite's emulator binary): `iotemu certs root`,
   `iotemu certs device`, then `iotemu certs verify --emulator http://127.0.0.1:9180 --name my-root`
   (upload, verification code, proof, verify); the emulator then reports `my-root` verified;
2. `x509_group_enroll.py` (the quickstart's EnrollmentGroup.py with the Python service SDK);
   the emulator then holds the group;
3. `x509_group_device.py` (azure-iot-device: X.509 registration with the full chain, hub
   connection, one message); the emulator then has the registration and the message.
"""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile

import harness
from harness import check, expect_equal

scenario = harness.Scenario("readme_x509_group", timeout=80.0)

DEVICE_ID = "device-01"
GROUP_ID = "my-x509-group"


def run(argv, cwd, env, what):
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    output = proc.stdout.decode("utf-8", "replace")
    print(output)
    check(proc.returncode == 0, "{} exited {}: {}".format(what, proc.returncode, output[-1500:]))
    return output


async def main():
    binary = harness.env("CONFORMANCE_IOTEMU_BIN")
    workdir = tempfile.mkdtemp(prefix="readme-x509-")
    try:
        # The README says `iotemu`; the suite's binary may have another name.
        bindir = os.path.join(workdir, "bin")
        os.mkdir(bindir)
        os.symlink(binary, os.path.join(bindir, "iotemu"))
        env = dict(os.environ)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        story = os.path.join(workdir, "story")
        os.mkdir(story)

        scenario.step("README x509_group.sh: iotemu certs root, device, verify --emulator")
        script = harness.write_snippet(workdir, "x509_group.sh")
        output = await harness.in_thread(run, ["bash", "-eu", script], story, env, "x509_group.sh")
        check("verified 'my-root' in DPS" in output, "iotemu certs verify did not report my-root verified")
        status, certificates = await harness.control_get_async("/api/certificates")
        check(status == 200 and isinstance(certificates, list),
              "GET /api/certificates returned {}: {}".format(status, certificates))
        verified = [c.get("name") for c in certificates if (c.get("properties") or {}).get("isVerified")]
        check("my-root" in verified, "the emulator does not hold my-root verified: {}".format(verified))

        scenario.step("README x509_group_enroll.py: the enrollment group with the service SDK")
        script = harness.write_snippet(workdir, "x509_group_enroll.py")
        await harness.in_thread(run, [sys.executable, script], story, env, "x509_group_enroll.py")
        status, groups = await harness.control_get_async("/enrollmentGroups")
        check(status == 200 and isinstance(groups, list), "GET /enrollmentGroups returned {}: {}".format(status, groups))
        check(any((g or {}).get("enrollmentGroupId") == GROUP_ID for g in groups),
              "the emulator does not hold the group {}".format(GROUP_ID))

        scenario.step("README x509_group_device.py: register, connect, send")
        script = harness.write_snippet(workdir, "x509_group_device.py")
        output = await harness.in_thread(run, [sys.executable, script], story, env, "x509_group_device.py")
        check("assigned {} to localhost".format(DEVICE_ID) in output, "the device was not assigned: {}".format(output))
        record = await harness.registration_record(DEVICE_ID)
        expect_equal("record status", record.get("status"), "assigned")
        status, messages = await harness.control_get_async("/telemetry?deviceId=" + DEVICE_ID)
        check(status == 200 and isinstance(messages, list), "GET /telemetry returned {}: {}".format(status, messages))
        bodies = [m.get("body") for m in messages]
        check("hello from device-01" in bodies, "the device's message is not stored: {}".format(bodies))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    scenario.run(main)
