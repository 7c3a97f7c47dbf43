"""Spawns the ``iotemu`` binary on free ports and describes the running emulator.

The binary writes a JSON "ready file" (``--ready-file``) once every listener is bound: the ports
it really took, the control URL and connection strings that carry the HTTPS port. ``start()``
waits for that file (or the process exiting, or a timeout) instead of parsing the banner.
"""

import base64
import ctypes
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.parse
import urllib.request
import uuid

AZURE_HTTPS_PORT = 443
AZURE_MQTT_PORT = 8883
AZURE_AMQP_PORT = 5671

# The device-side transports that dial 443 whatever the connection string says.
_TRANSPORTS_NEEDING_443 = (
    "MQTT over WebSocket (websockets=True)",
    "AMQP over WebSocket",
    "DPS registration over HTTPS (device SDKs)",
    "device HTTP transport (Node azure-iot-device-http)",
)

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class IotemuError(RuntimeError):
    """The emulator did not start, or stopped answering; the message ends with its log."""


def binary_path():
    """The ``iotemu`` binary: ``$IOTEMU_BIN``, else the one this package's wheel installed next
    to this interpreter, else the first on ``PATH``."""
    explicit = os.environ.get("IOTEMU_BIN")
    if explicit:
        return explicit
    beside = os.path.join(sysconfig.get_path("scripts"), "iotemu")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("iotemu")
    if found:
        return found
    raise IotemuError(
        "no iotemu binary: `pip install iotemu` installs one; or set IOTEMU_BIN to a binary "
        "built with `cargo install iotemu`"
    )


def can_bind(port, host="127.0.0.1"):
    """Whether this process may listen on ``host:port`` right now (root, CAP_NET_BIND_SERVICE
    or an unprivileged-port sysctl make 443 bindable)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
        return True
    except OSError:
        return False


def _die_with_parent():
    """Runs in the child before exec: SIGTERM it when the Python process dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Device:
    """A device identity for the DPS device SDKs: ``registration_id`` and its symmetric key,
    derived from a symmetric-key enrollment group (``base64(HMAC-SHA256(groupKey, id))``), so
    every test can provision a device of its own."""

    def __init__(self, registration_id, symmetric_key, id_scope, provisioning_host):
        self.registration_id = registration_id
        # DPS assigns group-enrolled devices the registration id as their device id.
        self.device_id = registration_id
        self.symmetric_key = symmetric_key
        self.id_scope = id_scope
        self.provisioning_host = provisioning_host

    def __repr__(self):
        return "Device(registration_id={!r}, id_scope={!r})".format(self.registration_id, self.id_scope)


class Emulator:
    """A running iotemu. Attributes:

    ``control_url`` (``/health``, ``/ca.pem``, ``/telemetry``…), ``mqtt_port``, ``amqp_port``,
    ``https_port`` (``None`` when HTTPS is off), ``ca_file`` (PEM path) and ``ca_pem``,
    ``id_scope``, ``provisioning_host``, ``hub_host``, ``hub_connection_string`` and
    ``dps_service_connection_string`` (``HostName=localhost:PORT`` when HTTPS is not on 443),
    ``event_hubs_connection_string``, ``unavailable_transports`` (what needs port 443 when
    HTTPS is elsewhere), ``log_file`` and ``info`` (the whole ready-file document).
    """

    def __init__(self, process, info, workdir, log_file, keep_files=False):
        self._process = process
        self._workdir = workdir
        self._keep_files = keep_files
        self.info = info
        self.log_file = log_file
        self.control_url = info["controlUrl"]
        self.mqtt_port = info["mqttPort"]
        self.amqp_port = info["amqpPort"]
        self.https_port = info["httpsPort"]
        self.ca_file = info["caFile"]
        with open(self.ca_file, encoding="ascii") as f:
            self.ca_pem = f.read()
        self.id_scope = info["idScope"]
        self.provisioning_host = info["dpsHost"]
        hub = info["hubs"][0]
        self.hub_host = hub["hostName"]
        self.hub_connection_string = hub["connectionString"]
        self.event_hubs_connection_string = hub["eventHubsConnectionString"]
        self.dps_service_connection_string = info["dpsServiceConnectionString"]
        if self.https_port == AZURE_HTTPS_PORT:
            self.unavailable_transports = ()
        else:
            self.unavailable_transports = _TRANSPORTS_NEEDING_443

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "Emulator(control_url={!r}, mqtt_port={}, amqp_port={}, https_port={})".format(
            self.control_url, self.mqtt_port, self.amqp_port, self.https_port)

    @property
    def pid(self):
        return self._process.pid

    def trust_env(self):
        """The environment variables the SDKs read to trust the emulator CA (and only it):
        ``SSL_CERT_FILE`` (azure-iot-device, uamqp) and ``REQUESTS_CA_BUNDLE`` (REST SDKs),
        plus ``NODE_EXTRA_CA_CERTS`` for Node child processes."""
        return {
            "SSL_CERT_FILE": self.ca_file,
            "REQUESTS_CA_BUNDLE": self.ca_file,
            "NODE_EXTRA_CA_CERTS": self.ca_file,
        }

    def get(self, path):
        """``GET`` on the control port; the decoded JSON (or text for non-JSON answers)."""
        with _NO_PROXY.open(self.control_url + path, timeout=10) as resp:
            body = resp.read()
            if resp.headers.get_content_type() == "application/json":
                return json.loads(body)
            return body.decode("utf-8")

    def telemetry(self, device_id=None):
        """The telemetry the hub stored (acknowledged means stored), oldest first; each a dict
        with ``deviceId``, ``body`` (text) and ``properties``."""
        query = "?" + urllib.parse.urlencode({"deviceId": device_id}) if device_id else ""
        return self.get("/telemetry" + query)

    def device(self, registration_id=None, group=None):
        """A device identity to provision with. ``registration_id`` of a symmetric-key
        individual enrollment (e.g. the quickstart's ``symm-key-python-device-008``) gives that
        enrollment's key; any other id, or none (then a unique ``dev-<hex>``), gets a key derived
        from a symmetric-key enrollment group (``group``, else the first: the quickstart's
        ``quickstart-group``)."""

        def key_of(enrollment):
            return ((enrollment.get("attestation") or {}).get("symmetricKey") or {}).get("primaryKey")

        if registration_id is not None and group is None:
            for enrollment in self.get("/enrollments"):
                if enrollment.get("registrationId") == registration_id and key_of(enrollment):
                    device = Device(registration_id, key_of(enrollment), self.id_scope, self.provisioning_host)
                    device.device_id = enrollment.get("deviceId") or registration_id
                    return device
        groups = [
            g for g in self.get("/enrollmentGroups")
            if key_of(g) and (group is None or g.get("enrollmentGroupId") == group)
        ]
        if not groups:
            raise IotemuError("no symmetric-key enrollment group {}in the emulator's fixtures".format(
                "{!r} ".format(group) if group else ""))
        registration_id = registration_id or "dev-" + uuid.uuid4().hex[:12]
        digest = hmac.new(base64.b64decode(key_of(groups[0])), registration_id.encode("utf-8"),
                          hashlib.sha256).digest()
        return Device(registration_id, base64.b64encode(digest).decode("ascii"), self.id_scope,
                      self.provisioning_host)

    def alive(self):
        return self._process.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL; removes the temporary files
        (CA, ready file, log) unless ``keep_files`` was given to ``start``."""
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._workdir is not None and not self._keep_files:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


def _log_tail(path, lines=30):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log)"


def start(
    *,
    mqtt_port=AZURE_MQTT_PORT,
    amqp_port=AZURE_AMQP_PORT,
    https_port=None,
    control_port=0,
    fixtures=(),
    data_dir=None,
    hostnames=(),
    args=(),
    binary=None,
    timeout=30.0,
    keep_files=False,
    env=None,
):
    """Starts iotemu and returns an :class:`Emulator` once every listener is up.

    ``https_port``: ``None`` picks 443 when this process may bind it (then every transport
    works) and a free port otherwise (``$IOTEMU_HTTPS_PORT`` overrides the choice); ``0`` is
    always a free port. ``mqtt_port`` / ``amqp_port`` default to 8883 / 5671 because the device
    SDKs and the Python AMQP clients cannot dial others; give ``0`` for free ports when your
    clients take a port. ``fixtures``: fixture files (the built-in quickstart fixture without
    any). ``data_dir``: durable state (in memory without). ``args``: more iotemu flags.
    """
    binary = binary or binary_path()
    if https_port is None:
        from_env = os.environ.get("IOTEMU_HTTPS_PORT")
        if from_env:
            https_port = int(from_env)
        else:
            https_port = AZURE_HTTPS_PORT if can_bind(AZURE_HTTPS_PORT) else 0
    workdir = tempfile.mkdtemp(prefix="iotemu-")
    ca_file = os.path.join(workdir, "ca.pem")
    ready_file = os.path.join(workdir, "ready.json")
    log_file = os.path.join(workdir, "iotemu.log")
    command = [
        binary,
        "--mqtt-port", str(mqtt_port),
        "--amqp-port", str(amqp_port),
        "--https-port", str(https_port),
        "--control-port", str(control_port),
        "--ca-out", ca_file,
        "--ready-file", ready_file,
    ]
    for path in fixtures:
        command += ["--fixtures", os.fspath(path)]
    if data_dir is not None:
        command += ["--data-dir", os.fspath(data_dir)]
    for name in hostnames:
        command += ["--hostname", name]
    command += list(args)
    child_env = dict(os.environ if env is None else env)
    # The flags above decide; stray IOTEMU_* settings of the caller must not.
    for name in ("IOTEMU_READY_FILE", "IOTEMU_CA_OUT"):
        child_env.pop(name, None)
    log = open(log_file, "wb")
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    except OSError as e:
        shutil.rmtree(workdir, ignore_errors=True)
        raise IotemuError("cannot run {}: {}".format(binary, e)) from e
    finally:
        log.close()
    deadline = time.monotonic() + timeout
    try:
        while not os.path.exists(ready_file):
            if process.poll() is not None:
                raise IotemuError("iotemu exited with status {} before it was ready:\n{}".format(
                    process.returncode, _log_tail(log_file)))
            if time.monotonic() > deadline:
                raise IotemuError("iotemu was not ready within {:.0f} s:\n{}".format(timeout, _log_tail(log_file)))
            time.sleep(0.02)
        with open(ready_file, encoding="utf-8") as f:
            info = json.load(f)
        emulator = Emulator(process, info, workdir, log_file, keep_files)
        emulator.get("/health")
        return emulator
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        if not keep_files:
            shutil.rmtree(workdir, ignore_errors=True)
        raise
