"""X.509 material and the runtime fixture for the x509_* scenarios (stdlib only).

Driven by conformance/x509.json: runs its `generate` steps as `<iotemu> certs <args>` in
<cache>/run/x509 (wiped first, so every run has fresh keys and nothing private is committed),
then writes <cache>/run/x509-fixture.json from its `fixture` template, with every '@pem:<path>'
replaced by that generated file's text. Only one fixture file may define the DPS instance, so
the runtime fixture takes over the `dps` section of the given fixture that has one (adding the
CA `certificates`), and that fixture is passed on as a copy without `dps`.
"""

import copy
import json
import os
import shutil
import subprocess

PEM_REF = "@pem:"
X509_REF = "@x509:"
STEP_TIMEOUT = 30.0


class X509SetupError(Exception):
    """Certificates or the runtime fixture could not be made; the text says which step and why."""


def load_plan(conformance_dir):
    with open(os.path.join(conformance_dir, "x509.json"), encoding="utf-8") as f:
        return json.load(f)


def generate(emulator, plan, out_dir, log):
    """Runs every `generate` step; returns the commands run (for the log)."""
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    done = []
    for args in plan["generate"]:
        cmd = [emulator, "certs"] + list(args)
        shown = "iotemu certs " + " ".join(args)
        try:
            proc = subprocess.run(cmd, cwd=out_dir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=STEP_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise X509SetupError("`{}` could not run: {}".format(shown, e))
        output = proc.stdout.decode("utf-8", "replace").strip()
        log.write("$ {}\n".format(shown) + (output + "\n" if output else ""))
        if proc.returncode != 0:
            raise X509SetupError("`{}` exited with code {}: {}".format(
                shown, proc.returncode, " | ".join(output.splitlines()[-5:]) or "(no output)"))
        done.append(shown)
    return done


def _listing(out_dir):
    found = []
    for root, _, files in os.walk(out_dir):
        for name in files:
            found.append(os.path.relpath(os.path.join(root, name), out_dir))
    return ", ".join(sorted(found)) or "(nothing)"


def generated_file(out_dir, rel):
    """Absolute path of a generated file; a readable error when the generator did not write it."""
    path = os.path.normpath(os.path.join(out_dir, rel))
    if not path.startswith(os.path.normpath(out_dir) + os.sep):
        raise X509SetupError("'{}' points outside the certificate directory".format(rel))
    if not os.path.isfile(path):
        raise X509SetupError("the certificate generator did not write '{}' (it wrote: {})".format(
            rel, _listing(out_dir)))
    return path


def _fill(value, out_dir):
    if isinstance(value, dict):
        return {k: _fill(v, out_dir) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, out_dir) for v in value]
    if isinstance(value, str) and value.startswith(PEM_REF):
        with open(generated_file(out_dir, value[len(PEM_REF):]), encoding="ascii") as f:
            text = f.read()
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise X509SetupError("'{}' holds no PEM certificate".format(value[len(PEM_REF):]))
        return text
    return value


def write_fixtures(plan, out_dir, run_dir, fixtures):
    """Writes the runtime fixture; returns the fixture list to start the emulator with."""
    runtime = _fill(copy.deepcopy(plan["fixture"]), out_dir)
    extra_dps = runtime.pop("dps", None) or {}
    result = []
    dps = None
    for path in fixtures:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        if "dps" in doc and dps is None:
            dps = doc.pop("dps")
            stripped = os.path.join(run_dir, os.path.splitext(os.path.basename(path))[0] + "-without-dps.json")
            with open(stripped, "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=2)
                f.write("\n")
            result.append(stripped)
        else:
            result.append(path)
    if dps is None:
        raise X509SetupError("none of the fixtures defines the DPS instance ('dps') to add the CA certificates to")
    for key, value in extra_dps.items():
        if isinstance(value, list):
            dps[key] = list(dps.get(key) or []) + value
        else:
            dps[key] = value
    doc = {"dps": dps}
    doc.update(runtime)
    path = os.path.join(run_dir, "x509-fixture.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return [path] + result


def prepare(emulator, conformance_dir, run_dir, fixtures, log_path):
    """Certificates + runtime fixture. Returns (fixture list, certificate directory)."""
    out_dir = os.path.join(run_dir, "x509")
    plan = load_plan(conformance_dir)
    with open(log_path, "w", encoding="utf-8") as log:
        generate(emulator, plan, out_dir, log)
    return write_fixtures(plan, out_dir, run_dir, fixtures), out_dir


def resolve_ref(value, out_dir):
    """'@x509:<path>' -> absolute path of that generated file (KeyError with a readable text)."""
    if out_dir is None:
        raise KeyError("X.509 material was not generated")
    try:
        return generated_file(out_dir, value[len(X509_REF):])
    except X509SetupError as e:
        raise KeyError(str(e))
