"""Runs the conformance scenarios against a freshly started iotemu (stdlib only).

Meant to run inside a private network namespace (conformance/run does `unshare --net`): it brings
`lo` up, starts the emulator on the standard ports (MQTT 8883, HTTPS 443, control 9180) with debug
logging captured to <cache>/logs/iotemu.log, waits for GET /health, fetches the CA from
GET /ca.pem, runs every scenario of scenarios.json once per SDK lane it names (default: every lane;
lanes in parallel, scenarios within a lane in order), writes <cache>/results.json, and stops the
emulator. Exit status 0 only if every scenario passed.

Each scenario process gets a TLS trust environment that contains only the emulator CA (and
Azurite's root when Azurite runs)
(SSL_CERT_FILE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS; SSL_CERT_DIR and proxy variables removed),
the scenario's env from scenarios.json, and IOTEMU_CONTROL_URL / IOTEMU_LOG for its assertions.

Scenarios that declare `"requires": ["x509"]` need certificates: with --x509 on, lib/x509_material.py makes
them first with `iotemu certs` (conformance/x509.json) and adds the runtime fixture it writes;
with --x509 off they are reported as skipped. Scenarios that declare `"requires": ["https"]` need
the emulator's HTTPS listener (`--https-port 443`: DPS service API, DPS device API over HTTPS);
with --https off they are reported as skipped, and they fail (step "emulator (HTTPS)") when the
emulator binary has no --https-port option or nothing listens on 443 after /health. Scenarios that
declare `"requires": ["amqp"]` need the AMQP listener (`--amqp-port 5671`: the Python AMQP clients
cannot dial another port; AMQP over WebSocket rides on 443): with --amqp off they are skipped, and
they fail (step "emulator (AMQP)") when the binary has no --amqp-port option or nothing listens on
5671 after /health.

Scenarios that declare `"requires": ["azurite"]` need Azurite: the suite starts it (from
.cache/azurite, which conformance/run installs) on https://127.0.0.1:10000 with a certificate from
`iotemu certs server`, adds its root to the scenarios' CA bundle, and stops it at the end; they fail
(step "azurite") when it does not start.

A scenario marked `"alone": "<why>"` changes the emulator for every scenario (POST /time/advance
moves its clock): it runs after the lanes have finished, one scenario at a time.

A scenario can be switched off or marked as expected to fail in scenarios.json, for every lane or
per lane: `"disabled": "<reason>"` / `{"node": "<reason>"}` reports it as skipped without running
it; `"xfail": "<reason>"` / `{"python": "<reason>"}` runs it, and a failure is then reported as
XFAIL (status "xfail" in results.json), which does not fail the suite; an xfail scenario that
passes is reported as XPASS (status "pass" with the note), a hint to remove the mark.

With --external the suite starts no emulator: it runs the scenarios against the one already
answering at --control-url (and on the standard MQTT/HTTPS ports of `localhost`), e.g. the
container image in .ci/container. That emulator must serve the fixtures the chosen scenarios
need; X.509 scenarios are skipped (their fixture is made at run time); --emulator-log names the
emulator's log, if there is one, for failure excerpts and the scenarios that read it.

A lane marked `"explicit": true` in scenarios.json (the embedded C SDK's, "c") runs only the
scenarios whose `sdks` name it. A lane's `hosts` are names its SDK dials that cannot be
configured (the C SDK's paho samples hard-code the global DPS endpoint): when that lane runs, the
suite maps them to 127.0.0.1 in a copy of /etc/hosts bind-mounted over /etc/hosts (conformance/run
enters a private mount namespace too, so only the suite sees it) and starts the emulator with
`--hostname <name>` so its TLS certificate covers them. With --external the lane's scenarios are
skipped (the namespace is not ours to change). The C lane's samples are built before the
namespace is entered (conformance/run, conformance/c/CMakeLists.txt) and found in --c-samples,
passed to the scenarios as CONFORMANCE_C_SAMPLES; when a sample binary is missing, the lane's
scenarios fail at step "build".
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import x509_material as x509

MQTT_PORT = 8883
HTTPS_PORT = 443
AMQP_PORT = 5671
HTTPS_PROBE_TIMEOUT = 10.0
# Azurite's blob port (its default), for the scenarios that declare "requires": ["azurite"].
AZURITE_PORT = 10000
AZURITE_START_TIMEOUT = 30.0
CONTROL_PORT = 9180
CONTROL_URL = "http://127.0.0.1:{}".format(CONTROL_PORT)
HEALTH_TIMEOUT = 60.0
SCENARIO_PROCESS_TIMEOUT = 90.0
# The binaries conformance/c/CMakeLists.txt builds; the C lane needs every one of them.
C_SAMPLES = ("paho_iot_provisioning_sas_sample", "paho_iot_provisioning_sample",
             "paho_iot_hub_sas_telemetry_sample", "paho_iot_hub_telemetry_sample",
             "paho_iot_hub_twin_sample", "paho_iot_hub_methods_sample", "paho_iot_hub_c2d_sample")
RESULT_LINE = re.compile(r"^(PASS|FAIL) (\S+) (\S+)(?:: (.*))?$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# A control port bound beyond loopback (the container image) needs its token (docs/portal.md).
if os.environ.get("IOTEMU_CONTROL_TOKEN"):
    _OPENER.addheaders = [("Authorization", "Bearer " + os.environ["IOTEMU_CONTROL_TOKEN"])]
_print_lock = threading.Lock()


def say(*lines):
    with _print_lock:
        for line in lines:
            print(line, flush=True)


def control_get(path, timeout=2.0):
    try:
        with _OPENER.open(CONTROL_URL + path, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


# --- fixtures ----------------------------------------------------------------------------------


def load_keys(fixture_files):
    """({registrationId: primaryKey}, {enrollmentGroupId: primaryKey}) from fixture files."""
    individual, groups = {}, {}
    for path in fixture_files:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        for e in doc.get("enrollments") or []:
            key = ((e.get("attestation") or {}).get("symmetricKey") or {}).get("primaryKey")
            if e.get("registrationId") and key:
                individual[e["registrationId"]] = key
        for g in doc.get("enrollmentGroups") or []:
            key = ((g.get("attestation") or {}).get("symmetricKey") or {}).get("primaryKey")
            if g.get("enrollmentGroupId") and key:
                groups[g["enrollmentGroupId"]] = key
    return individual, groups


def resolve_env(values, keys, x509_dir=None):
    """Replace '@key:<id>' / '@groupkey:<id>' / '@x509:<path>' references; raises KeyError with a
    readable text."""
    individual, groups = keys
    out = {}
    for name, value in values.items():
        if value.startswith(x509.X509_REF):
            value = x509.resolve_ref(value, x509_dir)
        elif value.startswith("@key:"):
            ref = value[len("@key:"):]
            if ref not in individual:
                raise KeyError("no symmetric-key individual enrollment {!r} in the fixtures".format(ref))
            value = individual[ref]
        elif value.startswith("@groupkey:"):
            ref = value[len("@groupkey:"):]
            if ref not in groups:
                raise KeyError("no symmetric-key enrollment group {!r} in the fixtures".format(ref))
            value = groups[ref]
        out[name] = value
    return out


# --- emulator ------------------------------------------------------------------------------------


def option_missing(binary, option, what):
    """None when `binary --help` lists `option`, else the reason the scenarios needing it cannot run."""
    try:
        proc = subprocess.run([binary, "--help"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "`iotemu --help` could not run: {}".format(e)
    if option.encode() not in proc.stdout:
        return "this iotemu binary has no {} option (no {} listener)".format(option, what)
    return None


def https_option_missing(binary):
    return option_missing(binary, "--https-port", "HTTPS")


def amqp_option_missing(binary):
    return option_missing(binary, "--amqp-port", "AMQP")


def wait_tcp(port, timeout):
    """None once 127.0.0.1:`port` accepts a TCP connection, else the last error (after `timeout`)."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return None
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    return last


class ExternalEmulator:
    """An emulator someone else started and will stop: only its health is checked."""

    proc = None

    def start(self):
        say("conformance: using the emulator already running at {} (started elsewhere)".format(CONTROL_URL))

    def wait_healthy(self):
        deadline = time.monotonic() + HEALTH_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                status, _ = control_get("/health", timeout=1.0)
                if status == 200:
                    return
                last = "HTTP {}".format(status)
            except OSError as e:
                last = str(e)
            time.sleep(0.2)
        raise RuntimeError("GET {}/health not 200 within {:.0f} s (last: {})".format(CONTROL_URL, HEALTH_TIMEOUT, last))

    def alive(self):
        try:
            return control_get("/health", timeout=2.0)[0] == 200
        except OSError:
            return False

    def exit_note(self):
        return "the external emulator no longer answers GET /health"

    def stop(self):
        return None


class Emulator:
    def __init__(self, binary, fixtures, log_path, rust_log, https=False, amqp=False, hostnames=()):
        self.binary = binary
        self.hostnames = list(hostnames)
        self.fixtures = fixtures
        self.log_path = log_path
        self.rust_log = rust_log
        self.https = https
        self.amqp = amqp
        self.proc = None

    def start(self):
        cmd = [self.binary, "--mqtt-port", str(MQTT_PORT), "--control-port", str(CONTROL_PORT)]
        if self.https:
            cmd += ["--https-port", str(HTTPS_PORT)]
        if self.amqp:
            cmd += ["--amqp-port", str(AMQP_PORT)]
        for f in self.fixtures:
            cmd += ["--fixtures", f]
        for name in self.hostnames:
            cmd += ["--hostname", name]
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOTEMU_")}
        env["RUST_LOG"] = self.rust_log
        env.pop("RUST_LOG_STYLE", None)
        env["NO_COLOR"] = "1"
        self.log = open(self.log_path, "ab")
        say("conformance: starting {}".format(" ".join(cmd)))
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, env=env, start_new_session=True
        )

    def wait_healthy(self):
        deadline = time.monotonic() + HEALTH_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("emulator exited with code {} before becoming healthy".format(self.proc.returncode))
            try:
                status, _ = control_get("/health", timeout=1.0)
                if status == 200:
                    return
                last = "HTTP {}".format(status)
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        raise RuntimeError("GET /health not 200 within {:.0f} s (last: {})".format(HEALTH_TIMEOUT, last))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def exit_note(self):
        return "the emulator process has exited with code {}".format(self.proc.returncode)

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                say("conformance: emulator did not exit 5 s after SIGTERM; killing it")
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def log_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def emulator_excerpt(log_path, offset, ids, limit=40):
    """The emulator log lines after `offset` that mention one of `ids` (else all), last `limit`."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            lines = [ANSI.sub("", l) for l in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return "(emulator log unreadable)", []
    matching = [l for l in lines if any(i and i in l for i in ids)]
    if matching:
        return "emulator log lines naming {}".format(", ".join(i for i in ids if i)), matching[-limit:]
    if lines:
        return "emulator log during the scenario (no line names {})".format(", ".join(ids)), lines[-limit:]
    try:
        with open(log_path, "rb") as f:
            tail = [ANSI.sub("", l) for l in f.read().decode("utf-8", "replace").splitlines()[-limit:]]
    except OSError:
        tail = []
    return "emulator log tail (it logged nothing during the scenario)", tail


# --- scenarios -----------------------------------------------------------------------------------


def map_hosts(names, run_dir):
    """Maps `names` to 127.0.0.1: a copy of /etc/hosts with them added, bind-mounted over
    /etc/hosts. Only sound inside a private mount namespace (conformance/run's `unshare --mount`),
    where the mount is gone when the suite ends. Returns None, or why it could not."""
    hosts = os.path.join(run_dir, "hosts")
    try:
        with open("/etc/hosts", encoding="utf-8") as f:
            original = f.read()
        with open(hosts, "w", encoding="utf-8") as f:
            f.write(original.rstrip("\n") + "\n# conformance suite: names an SDK hard-codes, served by iotemu\n")
            f.write("127.0.0.1 {}\n".format(" ".join(names)))
    except OSError as e:
        return "could not write {}: {}".format(hosts, e)
    proc = subprocess.run(["mount", "--bind", hosts, "/etc/hosts"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        return "`mount --bind {} /etc/hosts` failed (is the suite in a private mount namespace?): {}".format(
            hosts, proc.stdout.decode("utf-8", "replace").strip())
    for name in names:
        try:
            if socket.gethostbyname(name) != "127.0.0.1":
                return "{} does not resolve to 127.0.0.1 after the bind mount".format(name)
        except OSError as e:
            return "{} does not resolve after the bind mount: {}".format(name, e)
    return None


def start_azurite(ctx, binary, node, run_dir):
    """Starts Azurite's blob service on 127.0.0.1:10000 over HTTPS, with a server certificate from
    `iotemu certs` (a root of its own, then `iotemu certs server --name 127.0.0.1 --name
    localhost`), in memory, with --loose (the Node device SDK sends x-ms-encryption-algorithm
    without a key) and --skipApiVersionCheck (the Python storage SDK's service version is newer
    than Azurite's list). Returns the process and the root's PEM, which the scenarios must trust
    too; raises RuntimeError with the reason."""
    main = os.path.join(ctx.cache, "azurite", "node_modules", "azurite", "dist", "src", "blob", "main.js")
    if not os.path.isfile(main):
        raise RuntimeError("Azurite is not installed ({} is missing; conformance/run installs it)".format(main))
    certs = os.path.join(run_dir, "azurite-certs")
    shutil.rmtree(certs, ignore_errors=True)
    steps = [
        [binary, "certs", "root", "--out-dir", certs, "--name", "iotemu conformance Azurite root"],
        [binary, "certs", "server", "--ca", os.path.join(certs, "root-ca.pem"),
         "--ca-key", os.path.join(certs, "root-ca.key.pem"), "--name", "127.0.0.1", "--name", "localhost",
         "--out-dir", certs],
    ]
    for step in steps:
        proc = subprocess.run(step, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            raise RuntimeError("`{}` failed: {}".format(" ".join(step[1:3]), proc.stdout.decode("utf-8", "replace").strip()))
    log = open(os.path.join(ctx.logs, "azurite.log"), "wb")
    proc = subprocess.Popen(
        [node, main, "--blobHost", "127.0.0.1", "--blobPort", str(AZURITE_PORT),
         "--cert", os.path.join(certs, "127.0.0.1.pem"), "--key", os.path.join(certs, "127.0.0.1.key.pem"),
         "--inMemoryPersistence", "--loose", "--skipApiVersionCheck", "--disableTelemetry"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=run_dir, start_new_session=True)
    log.close()
    refused = wait_tcp(AZURITE_PORT, AZURITE_START_TIMEOUT)
    if refused:
        stop_process(proc)
        raise RuntimeError("Azurite did not listen on 127.0.0.1:{} within {:.0f} s ({}; log {})".format(
            AZURITE_PORT, AZURITE_START_TIMEOUT, refused, os.path.relpath(os.path.join(ctx.logs, "azurite.log"), ctx.repo)))
    with open(os.path.join(certs, "root-ca.pem"), "rb") as f:
        return proc, f.read()


def stop_process(proc):
    """SIGTERM to the process group, then SIGKILL after five seconds."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()


def scenario_env(base_env, ca_path, log_path, cache, values):
    env = dict(base_env)
    for k in list(env):
        if k.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy") or k.startswith("IOTEMU_"):
            del env[k]
    env.pop("SSL_CERT_DIR", None)
    env["SSL_CERT_FILE"] = ca_path
    env["REQUESTS_CA_BUNDLE"] = ca_path
    env["NODE_EXTRA_CA_CERTS"] = ca_path
    env["IOTEMU_CONTROL_URL"] = CONTROL_URL
    env["IOTEMU_LOG"] = log_path
    # A control port bound beyond loopback (the container's) needs its token; the scenarios'
    # harnesses send it when it is set, so it survives the IOTEMU_* scrub above.
    if os.environ.get("IOTEMU_CONTROL_TOKEN"):
        env["IOTEMU_CONTROL_TOKEN"] = os.environ["IOTEMU_CONTROL_TOKEN"]
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["NODE_PATH"] = os.path.join(cache, "node", "node_modules")
    # The C lane's samples read the emulator CA from here (iot_sample_common.h).
    env["AZ_IOT_DEVICE_X509_TRUST_PEM_FILE_PATH"] = ca_path
    env.setdefault("DEBUG", "azure*,mqttjs*")
    env.update(values)
    return env


def lane_mark(scenario, key, lane):
    """The reason of a scenario's `disabled` / `xfail` mark for `lane`, or None (see the module doc)."""
    mark = scenario.get(key)
    if isinstance(mark, dict):
        return mark.get(lane)
    return mark or None


def run_one(ctx, lane, scenario):
    result, excerpt, body = run_one_unmarked(ctx, lane, scenario)
    expected = lane_mark(scenario, "xfail", lane)
    if expected and result["status"] == "fail":
        result.update(status="xfail", expected=expected)
    elif expected and result["status"] == "pass":
        result["xpass"] = expected
    return result, excerpt, body


def run_one_unmarked(ctx, lane, scenario):
    sid = scenario["id"]
    out_path = os.path.join(ctx.logs, "{}-{}.out".format(lane, sid))
    err_path = os.path.join(ctx.logs, "{}-{}.sdk.log".format(lane, sid))
    result = {"sdk": lane, "scenario": sid, "title": scenario.get("title", ""), "status": "fail",
              "step": None, "reason": None, "durationSeconds": 0.0,
              "output": os.path.relpath(out_path, ctx.repo), "sdkLog": os.path.relpath(err_path, ctx.repo)}
    disabled = lane_mark(scenario, "disabled", lane)
    if disabled:
        result.update(status="skipped", reason="disabled in scenarios.json: " + disabled)
        return result, [], []
    if scenario["id"] in ctx.blocked:
        step, reason = ctx.blocked[scenario["id"]]
        result.update(step=step, reason=reason)
        if step == "skipped":
            result.update(status="skipped", step=None)
        return result, [], []
    try:
        values = dict(ctx.manifest.get("defaults", {}))
        values.update(resolve_env(scenario.get("env", {}).get(lane, {}), ctx.keys, ctx.x509_dir))
    except KeyError as e:
        result.update(step="setup", reason=str(e.args[0]))
        return result, [], ["(not started)"]
    ids = [values.get("PROVISIONING_REGISTRATION_ID", ""), values.get("EXPECTED_DEVICE_ID", "")]
    ids += [v for k, v in sorted(values.items())
            if k.endswith(("_REGISTRATION_ID", "_DEVICE_ID", "_ENROLLMENT_GROUP_ID"))]
    ids = list(dict.fromkeys(i for i in ids if i)) or [""]
    subst = {"python": ctx.python, "node": ctx.node, "conformance": ctx.conformance, "scenario": sid}
    cmd = [part.format(**subst) for part in ctx.manifest["sdks"][lane]["command"]]
    env = scenario_env(ctx.base_env, ctx.ca_path, ctx.emulator_log, ctx.cache, values)
    # The emulator's binary, for scenarios that run `iotemu` subcommands as a user would
    # (readme_x509_group runs the README's `iotemu certs` lines); absent for an external emulator.
    binary = getattr(ctx.emulator, "binary", None)
    if binary:
        env["CONFORMANCE_IOTEMU_BIN"] = os.path.abspath(binary)
    offset = log_size(ctx.emulator_log)
    started = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env,
                                cwd=os.path.dirname(cmd[1]), start_new_session=True)
        try:
            code = proc.wait(timeout=SCENARIO_PROCESS_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = None
    result["durationSeconds"] = round(time.monotonic() - started, 2)
    with open(out_path, encoding="utf-8", errors="replace") as f:
        output = f.read().splitlines()
    verdict = None
    for line in reversed(output):
        m = RESULT_LINE.match(line.strip())
        if m:
            verdict = m
            break
    if code is None:
        result.update(step="process", reason="killed after {:.0f} s without finishing".format(SCENARIO_PROCESS_TIMEOUT))
    elif verdict is None:
        result.update(step="process", reason="exited with code {} without a PASS/FAIL line".format(code))
    elif verdict.group(2) != lane or verdict.group(3) != sid:
        result.update(step="process", reason="result line names the wrong scenario: {}".format(verdict.group(0)))
    elif verdict.group(1) == "PASS":
        if code == 0:
            result.update(status="pass")
        else:
            result.update(step="process", reason="printed PASS but exited with code {}".format(code))
    else:
        step, _, reason = (verdict.group(4) or "").partition(": ")
        result.update(step=step or "?", reason=reason or verdict.group(4) or "")
    if result["status"] == "pass":
        return result, [], []
    if not ctx.emulator.alive():
        result["reason"] += " [{}]".format(ctx.emulator.exit_note())
    title, excerpt = emulator_excerpt(ctx.emulator_log, offset, ids)
    body = ["  scenario output (last 15 lines of {}):".format(result["output"])]
    body += ["    " + l for l in output[-15:]] or ["    (none)"]
    body += ["  {} ({}):".format(title, os.path.relpath(ctx.emulator_log, ctx.repo))]
    body += ["    " + l for l in excerpt] or ["    (none)"]
    if "hang" in result["reason"] or code is None:
        # A hang names no device, so the device-id excerpt misses the protocol exchange that
        # stalled; CI keeps only the printed output, so print the AMQP side of it here.
        title, protocol = emulator_protocol_excerpt(ctx.emulator_log, offset)
        body += ["  {}:".format(title)]
        body += ["    " + l for l in protocol] or ["    (none)"]
    body += ["  SDK debug log: {}".format(result["sdkLog"])]
    body += ["    " + l for l in file_tail(os.path.join(ctx.repo, result["sdkLog"]), SDK_LOG_TAIL)]
    return result, excerpt, body


# Lines of the SDK debug log a failure prints (CI keeps only the printed output).
SDK_LOG_TAIL = 40


def file_tail(path, limit):
    """The last `limit` lines of `path` without ANSI colours, [] when it cannot be read."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except (OSError, TypeError):
        return []
    return [ANSI.sub("", l)[:400] for l in lines[-limit:]]


def emulator_protocol_excerpt(log_path, offset, limit=60):
    """The emulator's AMQP and WebSocket lines logged since `offset`, last `limit`."""
    try:
        with open(log_path, "rb") as f:
            f.seek(offset)
            lines = [ANSI.sub("", l) for l in f.read().decode("utf-8", "replace").splitlines()]
    except OSError:
        return "emulator protocol lines (log unreadable)", []
    protocol = [l[:400] for l in lines if "amqp" in l.lower() or "websocket" in l.lower()]
    return "emulator AMQP/WebSocket lines during the scenario (last {})".format(limit), protocol[-limit:]


def result_line(r):
    if r["status"] == "skipped":
        return "SKIP {} {}: {}".format(r["sdk"], r["scenario"], r["reason"])
    if r["status"] == "pass" and r.get("xpass"):
        return "XPASS {} {} ({:.1f} s): marked xfail in scenarios.json ({}) but passed: remove the mark".format(
            r["sdk"], r["scenario"], r["durationSeconds"], r["xpass"])
    if r["status"] == "pass":
        return "PASS {} {} ({:.1f} s)".format(r["sdk"], r["scenario"], r["durationSeconds"])
    if r["status"] == "xfail":
        return "XFAIL {} {}: {}: {} ({:.1f} s) [expected to fail: {}]".format(
            r["sdk"], r["scenario"], r["step"], r["reason"], r["durationSeconds"], r["expected"])
    return "FAIL {} {}: {}: {} ({:.1f} s)".format(r["sdk"], r["scenario"], r["step"], r["reason"], r["durationSeconds"])


def lanes_of(scenario, all_lanes):
    """The SDK lanes a scenario runs in: its `sdks` list, default every lane not marked `explicit`."""
    return scenario.get("sdks") or [l for l in all_lanes if not all_lanes[l].get("explicit")]


def run_lane(ctx, lane, scenarios, sink):
    for scenario in scenarios:
        if lane not in lanes_of(scenario, ctx.manifest["sdks"]):
            continue
        result, _, body = run_one(ctx, lane, scenario)
        sink.append(result)
        say(result_line(result), *body)


class Context:
    pass


def main():
    global CONTROL_URL
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True)
    ap.add_argument("--cache", required=True)
    ap.add_argument("--python", required=True, help="python of the SDK venv")
    ap.add_argument("--node", required=True)
    ap.add_argument("--emulator", help="iotemu binary to start (required unless --external)")
    ap.add_argument("--external", action="store_true",
                    help="start no emulator: use the one already answering at --control-url")
    ap.add_argument("--control-url", default=CONTROL_URL,
                    help="the emulator's control port (default: %(default)s)")
    ap.add_argument("--emulator-log", help="with --external: the running emulator's log file, if any")
    ap.add_argument("--fixtures", action="append", required=True)
    ap.add_argument("--only", default=os.environ.get("CONFORMANCE_ONLY", ""),
                    help="comma-separated scenario ids (default: all)")
    ap.add_argument("--sdks", default=os.environ.get("CONFORMANCE_SDKS", ""),
                    help="comma-separated SDK lanes (default: all)")
    ap.add_argument("--x509", choices=("on", "off"), default="on",
                    help="run the scenarios that require X.509 certificates (off: report them skipped)")
    ap.add_argument("--https", choices=("on", "off"), default="on",
                    help="start the emulator's HTTPS listener on 443 and run the scenarios that require it "
                         "(off: report them skipped)")
    ap.add_argument("--c-samples", default="",
                    help="directory of the C SDK samples built from conformance/c (the C lane)")
    ap.add_argument("--amqp", choices=("on", "off"), default="on",
                    help="start the emulator's AMQP listener on 5671 and run the scenarios that require it "
                         "(off: report them skipped)")
    args = ap.parse_args()
    if not args.external and not args.emulator:
        ap.error("--emulator is required unless --external is given")
    CONTROL_URL = args.control_url.rstrip("/")

    ctx = Context()
    ctx.repo = os.path.abspath(args.repo)
    ctx.conformance = os.path.join(ctx.repo, "conformance")
    ctx.cache = os.path.abspath(args.cache)
    ctx.python, ctx.node = args.python, args.node
    ctx.logs = os.path.join(ctx.cache, "logs")
    shutil.rmtree(ctx.logs, ignore_errors=True)
    os.makedirs(ctx.logs)
    run_dir = os.path.join(ctx.cache, "run")
    os.makedirs(run_dir, exist_ok=True)
    ctx.ca_path = os.path.join(run_dir, "ca.pem")
    ctx.emulator_log = os.path.join(ctx.logs, "iotemu.log")
    if args.external:
        # Without a log file the excerpts say "unreadable" and log-reading checks fail.
        ctx.emulator_log = os.path.abspath(args.emulator_log or os.path.join(ctx.logs, "no-emulator-log"))
    ctx.base_env = dict(os.environ)
    with open(os.path.join(ctx.conformance, "scenarios.json"), encoding="utf-8") as f:
        ctx.manifest = json.load(f)
    ctx.blocked = {}  # scenario id -> (step, reason) for scenarios that cannot run
    ctx.x509_dir = None

    only = {s for s in args.only.split(",") if s}
    lanes = [l for l in ctx.manifest["sdks"] if not args.sdks or l in args.sdks.split(",")]
    scenarios = [s for s in ctx.manifest["scenarios"] if not only or s["id"] in only]
    unknown = only - {s["id"] for s in ctx.manifest["scenarios"]}
    if unknown:
        sys.exit("conformance: unknown scenario(s): {}".format(", ".join(sorted(unknown))))
    for s in ctx.manifest["scenarios"]:
        bad = set(lanes_of(s, ctx.manifest["sdks"])) - set(ctx.manifest["sdks"])
        if bad:
            sys.exit("conformance: scenario {} names unknown SDK lane(s): {}".format(s["id"], ", ".join(sorted(bad))))

    started_utc = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    started = time.monotonic()
    results = []
    setup_error = None

    if not args.external:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    base_fixtures = [os.path.abspath(f) for f in args.fixtures]
    fixtures = base_fixtures
    x509_ids = [s["id"] for s in scenarios if "x509" in s.get("requires", [])]
    if x509_ids and args.external:
        for sid in x509_ids:
            ctx.blocked[sid] = ("skipped", "X.509 scenarios need a runtime fixture loaded at emulator start; "
                                           "not available with an external emulator")
    elif x509_ids and args.x509 == "off":
        for sid in x509_ids:
            ctx.blocked[sid] = ("skipped", "X.509 scenarios are off (CONFORMANCE_X509=1 runs them)")
    elif x509_ids:
        cert_log = os.path.join(ctx.logs, "x509-certs.log")
        try:
            t0 = time.monotonic()
            fixtures, ctx.x509_dir = x509.prepare(args.emulator, ctx.conformance, run_dir, base_fixtures, cert_log)
            say("conformance: X.509 certificates made with `iotemu certs` in {:.2f} s -> {}; runtime fixture {}".format(
                time.monotonic() - t0, os.path.relpath(ctx.x509_dir, ctx.repo),
                os.path.relpath(fixtures[0], ctx.repo)))
        except (x509.X509SetupError, OSError, ValueError, KeyError) as e:
            say("conformance: X.509 setup failed: {} (log: {})".format(e, os.path.relpath(cert_log, ctx.repo)))
            for sid in x509_ids:
                ctx.blocked[sid] = ("certificates", "X.509 setup failed: {}".format(e))
    https_ids = [s["id"] for s in scenarios if "https" in s.get("requires", [])]
    https = False
    if https_ids and args.https == "off":
        for sid in https_ids:
            ctx.blocked.setdefault(sid, ("skipped", "HTTPS scenarios are off (CONFORMANCE_HTTPS=1 runs them)"))
    elif https_ids and args.external:
        https = True
    elif https_ids:
        missing = https_option_missing(args.emulator)
        if missing:
            say("conformance: {}; the HTTPS scenarios fail".format(missing))
            for sid in https_ids:
                ctx.blocked.setdefault(sid, ("emulator (HTTPS)", missing))
        else:
            https = True
    amqp_ids = [s["id"] for s in scenarios if "amqp" in s.get("requires", [])]
    amqp = False
    if amqp_ids and args.amqp == "off":
        for sid in amqp_ids:
            ctx.blocked.setdefault(sid, ("skipped", "AMQP scenarios are off (CONFORMANCE_AMQP=1 runs them)"))
    elif amqp_ids and args.external:
        amqp = True
    elif amqp_ids:
        missing = amqp_option_missing(args.emulator)
        if missing:
            say("conformance: {}; the AMQP scenarios fail".format(missing))
            for sid in amqp_ids:
                ctx.blocked.setdefault(sid, ("emulator (AMQP)", missing))
        else:
            amqp = True
    azurite_ids = [s["id"] for s in scenarios if "azurite" in s.get("requires", [])]
    azurite = None
    # Lanes whose SDK dials hard-coded names (the C lane: the global DPS endpoint) and the C build.
    ctx.hostnames = []
    for lane in lanes:
        names = ctx.manifest["sdks"][lane].get("hosts") or []
        lane_ids = [s["id"] for s in scenarios if lane in lanes_of(s, ctx.manifest["sdks"])]
        if not names or not lane_ids:
            continue
        if args.external:
            why = ("the {} lane dials {}, which only the suite's own namespace maps to the emulator; "
                   "not available with an external emulator".format(lane, ", ".join(names)))
            for sid in lane_ids:
                ctx.blocked.setdefault(sid, ("skipped", why))
            continue
        refused = map_hosts(names, run_dir)
        if refused:
            say("conformance: /etc/hosts for the {} lane: {}; its scenarios fail".format(lane, refused))
            for sid in lane_ids:
                ctx.blocked.setdefault(sid, ("hosts", refused))
            continue
        say("conformance: {} -> 127.0.0.1 in this namespace's /etc/hosts (the {} lane)".format(", ".join(names), lane))
        ctx.hostnames += names
    c_ids = [s["id"] for s in scenarios if "c" in lanes and "c" in lanes_of(s, ctx.manifest["sdks"])]
    if c_ids:
        samples = os.path.abspath(args.c_samples) if args.c_samples else ""
        missing = [n for n in C_SAMPLES if not (samples and os.access(os.path.join(samples, n), os.X_OK))]
        if missing:
            why = "C SDK sample(s) not built in {}: {} (see the build log conformance/run names)".format(
                samples or "(no --c-samples)", ", ".join(missing))
            say("conformance: {}; the C scenarios fail".format(why))
            for sid in c_ids:
                ctx.blocked.setdefault(sid, ("build", why))
        ctx.base_env["CONFORMANCE_C_SAMPLES"] = samples
    ctx.keys = load_keys(fixtures)
    rust_log = os.environ.get("CONFORMANCE_RUST_LOG", "iotemu=debug")
    if args.external:
        ctx.emulator = ExternalEmulator()
    else:
        ctx.emulator = Emulator(args.emulator, fixtures, ctx.emulator_log, rust_log, https=https, amqp=amqp,
                                    hostnames=ctx.hostnames)
    # SIGTERM (e.g. from a CI timeout) must still stop the emulator: turn it into SystemExit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        try:
            ctx.emulator.start()
            try:
                ctx.emulator.wait_healthy()
            except RuntimeError as e:
                if fixtures == base_fixtures:
                    raise
                # The emulator refused the X.509 runtime fixture: keep the other scenarios
                # running on the plain fixtures and fail only the X.509 ones, with the reason.
                _, tail = emulator_excerpt(ctx.emulator_log, 0, [])
                why = next((l.strip() for l in reversed(tail) if "iotemu:" in l), str(e))
                say("conformance: the emulator did not start with the X.509 fixture ({}); "
                    "restarting it without".format(why))
                for sid in x509_ids:
                    ctx.blocked[sid] = ("emulator start (X.509 fixture)", why)
                ctx.emulator.stop()
                fixtures = base_fixtures
                ctx.keys = load_keys(fixtures)
                ctx.emulator = Emulator(args.emulator, fixtures, ctx.emulator_log, rust_log, https=https, amqp=amqp,
                                        hostnames=ctx.hostnames)
                ctx.emulator.start()
                ctx.emulator.wait_healthy()
            status, pem = control_get("/ca.pem")
            if status != 200 or b"-----BEGIN CERTIFICATE-----" not in pem:
                raise RuntimeError("GET /ca.pem returned HTTP {} without a PEM certificate".format(status))
            with open(ctx.ca_path, "wb") as f:
                f.write(pem)
            say("conformance: emulator healthy after {:.2f} s; CA from GET /ca.pem -> {}".format(
                time.monotonic() - started, os.path.relpath(ctx.ca_path, ctx.repo)))
            if azurite_ids and args.external:
                for sid in azurite_ids:
                    ctx.blocked.setdefault(sid, ("skipped", "Azurite is started by the suite next to its own emulator only"))
            elif azurite_ids:
                try:
                    t0 = time.monotonic()
                    azurite, azurite_root = start_azurite(ctx, args.emulator, args.node, run_dir)
                    # The scenarios trust the emulator's CA and Azurite's root: one bundle.
                    with open(ctx.ca_path, "ab") as f:
                        f.write(b"\n" + azurite_root)
                    say("conformance: Azurite on https://127.0.0.1:{} after {:.2f} s (certificate from `iotemu certs server`; "
                        "its root added to {})".format(AZURITE_PORT, time.monotonic() - t0, os.path.relpath(ctx.ca_path, ctx.repo)))
                except (OSError, RuntimeError) as e:
                    say("conformance: Azurite: {}; its scenarios fail".format(e))
                    for sid in azurite_ids:
                        ctx.blocked.setdefault(sid, ("azurite", str(e)))
            if https:
                refused = wait_tcp(HTTPS_PORT, HTTPS_PROBE_TIMEOUT)
                if refused:
                    why = "nothing accepts connections on 127.0.0.1:{} {:.0f} s after /health ({})".format(
                        HTTPS_PORT, HTTPS_PROBE_TIMEOUT, refused)
                    say("conformance: HTTPS listener: {}; the HTTPS scenarios fail".format(why))
                    for sid in https_ids:
                        ctx.blocked.setdefault(sid, ("emulator (HTTPS)", why))
            if amqp:
                refused = wait_tcp(AMQP_PORT, HTTPS_PROBE_TIMEOUT)
                if refused:
                    why = "nothing accepts connections on 127.0.0.1:{} {:.0f} s after /health ({})".format(
                        AMQP_PORT, HTTPS_PROBE_TIMEOUT, refused)
                    say("conformance: AMQP listener: {}; the AMQP scenarios fail".format(why))
                    for sid in amqp_ids:
                        ctx.blocked.setdefault(sid, ("emulator (AMQP)", why))
        except (OSError, RuntimeError) as e:
            setup_error = str(e)

        if setup_error:
            for lane in lanes:
                for s in scenarios:
                    if lane not in lanes_of(s, ctx.manifest["sdks"]):
                        continue
                    r = {"sdk": lane, "scenario": s["id"], "title": s.get("title", ""), "status": "fail",
                         "step": "emulator start", "reason": setup_error, "durationSeconds": 0.0}
                    if ctx.blocked.get(s["id"], ("",))[0] == "skipped":
                        r.update(status="skipped", step=None, reason=ctx.blocked[s["id"]][1])
                    results.append(r)
            _, tail = emulator_excerpt(ctx.emulator_log, 0, [])
            say("conformance: emulator did not start: {}".format(setup_error),
                "  emulator log ({}):".format(os.path.relpath(ctx.emulator_log, ctx.repo)),
                *["    " + l for l in tail[-40:]])
        else:
            sinks = {lane: [] for lane in lanes}
            shared = [s for s in scenarios if not s.get("alone")]
            threads = [threading.Thread(target=run_lane, args=(ctx, lane, shared, sinks[lane])) for lane in lanes]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            # Scenarios that change the emulator for everyone (its clock) run after the lanes,
            # one at a time, so no other scenario sees the change.
            alone = [s for s in scenarios if s.get("alone")]
            for lane in lanes:
                run_lane(ctx, lane, alone, sinks[lane])
            for lane in lanes:
                results.extend(sinks[lane])
    finally:
        stop_process(azurite)
        code = ctx.emulator.stop()
    if code not in (None, 0, -signal.SIGTERM):
        say("conformance: note: emulator exited with code {} on SIGTERM".format(code))

    order = {s["id"]: i for i, s in enumerate(ctx.manifest["scenarios"])}
    results.sort(key=lambda r: (lanes.index(r["sdk"]), order[r["scenario"]]))
    passed = sum(1 for r in results if r["status"] == "pass")
    skipped = sum(1 for r in results if r["status"] == "skipped")
    xfailed = sum(1 for r in results if r["status"] == "xfail")
    failed = len(results) - passed - skipped - xfailed
    doc = {
        "generatedBy": "conformance/run",
        "startedUtc": started_utc.isoformat().replace("+00:00", "Z"),
        "durationSeconds": round(time.monotonic() - started, 2),
        "complete": not only and len(lanes) == len(ctx.manifest["sdks"]) and not args.external,
        "emulator": {"binary": "external ({})".format(CONTROL_URL) if args.external else os.path.relpath(args.emulator, ctx.repo),
                     "log": os.path.relpath(ctx.emulator_log, ctx.repo),
                     "started": setup_error is None, "startError": setup_error, "exitCode": code},
        "x509": args.x509,
        "https": args.https if https_ids else None,
        "amqp": args.amqp if amqp_ids else None,
        "summary": {"passed": passed, "failed": failed, "skipped": skipped, "xfailed": xfailed},
        "results": results,
    }
    with open(os.path.join(ctx.cache, "results.json"), "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    say("conformance: scenarios finished in {:.1f} s ({} passed, {} failed, {} skipped, {} expected failures); "
        "results in {}".format(doc["durationSeconds"], passed, failed, skipped, xfailed,
                               os.path.relpath(os.path.join(ctx.cache, "results.json"), ctx.repo)))
    return 0 if failed == 0 and results else 1


if __name__ == "__main__":
    sys.exit(main())
