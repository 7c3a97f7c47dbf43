"""Shared plumbing for the Python conformance scenarios (stdlib only, no SDK imports).

A scenario script creates one `Scenario`, marks its steps with `scenario.step(...)` and hands its
async main function to `scenario.run(...)`. Whatever happens, exactly one result line is printed
last, and the process exits with 0 (PASS) or 1 (FAIL):

    PASS python <scenario>
    FAIL python <scenario>: <step>: <reason>

The runner (conformance/lib/suite.py) sets the environment read here:
  IOTEMU_CONTROL_URL  the emulator's control port (default http://127.0.0.1:9180)
  IOTEMU_LOG          the file the emulator's stderr goes to (for counting connection attempts)
  CONFORMANCE_STEP_TIMEOUT  optional override of the per-scenario deadline in seconds
"""

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

SDK = "python"

CONTROL_URL = os.environ.get("IOTEMU_CONTROL_URL", "http://127.0.0.1:9180").rstrip("/")
EMULATOR_LOG = os.environ.get("IOTEMU_LOG", "")

# The control port is loopback plain HTTP: never route it through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# A control port bound beyond loopback (the container image) needs its token (docs/portal.md).
if os.environ.get("IOTEMU_CONTROL_TOKEN"):
    _OPENER.addheaders = [("Authorization", "Bearer " + os.environ["IOTEMU_CONTROL_TOKEN"])]


class ScenarioFailure(Exception):
    """An expectation of the scenario did not hold (as opposed to an unexpected exception)."""


class Scenario:
    def __init__(self, name, timeout=60.0):
        self.name = name
        self.timeout = float(os.environ.get("CONFORMANCE_SCENARIO_TIMEOUT", timeout))
        self.current_step = "start"
        self.started = time.monotonic()
        # SDK debug logs go to stderr, which the runner keeps in a per-scenario file.
        logging.basicConfig(
            stream=sys.stderr,
            level=logging.DEBUG,
            format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )

    def step(self, name):
        self.current_step = name
        print("[{:6.2f}s] step: {}".format(time.monotonic() - self.started, name), flush=True)

    def info(self, text):
        print("[{:6.2f}s]   {}".format(time.monotonic() - self.started, text), flush=True)

    def run(self, main):
        try:
            asyncio.run(asyncio.wait_for(main(), self.timeout))
        except ScenarioFailure as e:
            self._finish("FAIL {} {}: {}: {}".format(SDK, self.name, self.current_step, e), 1)
        except asyncio.TimeoutError:
            self._finish(
                "FAIL {} {}: {}: no result within {:.0f} s (hang)".format(
                    SDK, self.name, self.current_step, self.timeout
                ),
                1,
            )
        except BaseException as e:  # noqa: B902 - every failure must become a FAIL line
            self._finish(
                "FAIL {} {}: {}: unexpected {}".format(
                    SDK, self.name, self.current_step, describe_error(e)
                ),
                1,
            )
        else:
            self._finish("PASS {} {}".format(SDK, self.name), 0)

    def _finish(self, line, code):
        print(line.replace("\n", " "), flush=True)
        sys.stderr.flush()
        # The SDK leaves non-daemon threads (paho loop, timers) behind on failure paths; do not
        # let them keep the process alive after the verdict.
        os._exit(code)


def describe_error(e):
    """`Type: message <- CauseType: cause message ...` for an exception and its cause chain."""
    parts = []
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        parts.append("{}: {}".format(type(e).__name__, str(e) or repr(e)))
        e = e.__cause__ or e.__context__
    return " <- ".join(parts)


def error_chain(e):
    chain = []
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    return chain


def check(condition, message):
    if not condition:
        raise ScenarioFailure(message)


def expect_equal(what, actual, expected):
    if actual != expected:
        raise ScenarioFailure("{}: expected {!r}, got {!r}".format(what, expected, actual))


def env(name):
    value = os.environ.get(name)
    if not value:
        raise ScenarioFailure("environment variable {} is not set (run via conformance/run)".format(name))
    return value


def derive_device_key(group_key, registration_id):
    """DPS derived device key: base64(HMAC-SHA256(base64decode(groupKey), registrationId))."""
    digest = hmac.new(
        base64.b64decode(group_key), registration_id.encode("utf-8"), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode("ascii")


# --- emulator control port -------------------------------------------------------------------


def control_get(path):
    """GET on the control port; returns (status, parsed JSON or text)."""
    try:
        with _OPENER.open(CONTROL_URL + path, timeout=5) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


async def control_get_async(path):
    return await asyncio.get_running_loop().run_in_executor(None, control_get, path)


async def registration_record(registration_id):
    status, body = await control_get_async("/registrations/" + registration_id)
    check(status == 200, "GET /registrations/{} returned {}: {}".format(registration_id, status, body))
    check(isinstance(body, dict), "registration record is not a JSON object: {!r}".format(body))
    return body


async def wait_for_telemetry(device_id, wanted, timeout=3.0):
    """Poll GET /telemetry until every message id in `wanted` is present (or `timeout` passes).

    The emulator acknowledges a PUBLISH only after storing it, so the first poll should already
    see everything; the short grace period only absorbs scheduling noise.
    Returns {message-id: stored message} for the wanted ids that were found.
    """
    deadline = time.monotonic() + timeout
    path = "/telemetry?deviceId=" + urllib.parse.quote(device_id, safe="")
    while True:
        status, body = await control_get_async(path)
        check(status == 200, "GET {} returned {}: {}".format(path, status, body))
        check(isinstance(body, list), "GET {} did not return a JSON array: {!r}".format(path, body))
        found = {}
        for stored in body:
            mid = ((stored or {}).get("systemProperties") or {}).get("message-id")
            if mid in wanted:
                found[mid] = stored
        if len(found) == len(wanted) or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(0.1)


def check_stored_message(stored, device_id, body, properties):
    """Compare one stored telemetry record with what the SDK was asked to send."""
    mid = stored.get("systemProperties", {}).get("message-id")
    expect_equal("message {} deviceId".format(mid), stored.get("deviceId"), device_id)
    expect_equal("message {} body".format(mid), stored.get("body"), body)
    stored_props = stored.get("properties") or {}
    for key, value in properties.items():
        expect_equal("message {} application property {!r}".format(mid, key), stored_props.get(key), value)


# --- emulator log ----------------------------------------------------------------------------


def log_offset():
    try:
        return os.path.getsize(EMULATOR_LOG) if EMULATOR_LOG else 0
    except OSError:
        return 0


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def log_lines_since(offset, needle):
    """Emulator log lines written after `offset` that mention `needle`."""
    if not EMULATOR_LOG:
        return []
    try:
        with open(EMULATOR_LOG, "rb") as f:
            f.seek(offset)
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [_ANSI.sub("", line) for line in data.splitlines() if needle in line]


# The emulator logs one outcome line per MQTT CONNECT it receives: "client connected ...
# client=<dps|hub>:<id>" or "connection refused ... client_id=<id> ... code=<CONNACK code>". Counting
# those lines (not any debug line about the same CONNECT) gives one count per attempt.
CONNECT_OUTCOME = re.compile(r"\b(client connected|connection refused)\b")
REFUSED = re.compile(r"\bconnection refused\b")


def _names_client(line, client_id):
    # The id must stand alone: `conformance-x` must not match `conformance-x-device`.
    return re.search(r"(?<![\w.-])" + re.escape(client_id) + r"(?![\w.-])", line) is not None


def count_connect_attempts(offset, client_id):
    """(attempts, refused, lines): MQTT CONNECTs from `client_id` the emulator logged after `offset`.

    attempts is None when the emulator log is unavailable (then no claim is made).
    """
    if not EMULATOR_LOG or not os.path.exists(EMULATOR_LOG):
        return None, None, []
    lines = [l for l in log_lines_since(offset, client_id) if _names_client(l, client_id)]
    outcomes = [l for l in lines if CONNECT_OUTCOME.search(l)]
    return len(outcomes), sum(1 for l in outcomes if REFUSED.search(l)), lines



# A session that came over WebSocket is preceded by the emulator's debug line "MQTT over WebSocket:
# connection upgraded remote=<ip:port>"; its "client connected" line carries the same remote.
WEBSOCKET_UPGRADE = "MQTT over WebSocket: connection upgraded"
_REMOTE = re.compile(r"\bremote=(\S+)")


def websocket_sessions(offset, client_id):
    """(connected, over_websocket): MQTT sessions of `client_id` the emulator accepted after
    `offset`, and how many of them arrived through a WebSocket upgrade (matched by the peer
    address logged on both lines). (None, None) when the emulator log is unavailable."""
    if not EMULATOR_LOG or not os.path.exists(EMULATOR_LOG):
        return None, None
    lines = log_lines_since(offset, "")
    upgraded = set()
    for line in lines:
        match = _REMOTE.search(line) if WEBSOCKET_UPGRADE in line else None
        if match:
            upgraded.add(match.group(1))
    connected = [
        _REMOTE.search(l) for l in lines if "client connected" in l and _names_client(l, client_id)
    ]
    remotes = [m.group(1) for m in connected if m]
    return len(remotes), sum(1 for r in remotes if r in upgraded)


def expect_websocket_sessions(scenario, offset, client_id):
    """Every session of `client_id` since `offset` (at least one) came over WebSocket."""
    connected, over_ws = websocket_sessions(offset, client_id)
    check(connected is not None, "emulator log unavailable: cannot tell how {!r} connected".format(client_id))
    check(connected > 0, "emulator logged no session of {!r} (did the log wording change?)".format(client_id))
    check(
        over_ws == connected,
        "{} of {} session(s) of {!r} did not come over WebSocket".format(connected - over_ws, connected, client_id),
    )
    scenario.info("emulator: {} session(s) of {!r}, all over WebSocket".format(connected, client_id))

# --- refusals (X.509 and keys) ---------------------------------------------------------------

REFUSAL_BOUND = 20.0  # seconds: a refused credential must surface before this
MAX_REFUSED_CONNECTS = 3  # CONNECTs the emulator may see for one refused client call
_DPS_401 = re.compile(r"\bstatus code (of )?401\b")


def refusal_kind(error):
    """How the SDK reported an authorization refusal, or None when `error` is something else.

    The two forms the real services use: the MQTT CONNACK "not authorized" (Python: CredentialError
    caused by UnauthorizedError) and a DPS register response with status 401 (ServiceError
    "... returned a service error status code 401").
    """
    chain = error_chain(error)
    if any(type(c).__name__ == "UnauthorizedError" for c in chain):
        return "MQTT CONNACK refusal (UnauthorizedError)"
    if any(type(c).__name__ == "ServiceError" and _DPS_401.search(str(c)) for c in chain):
        return "DPS response status 401"
    return None


async def expect_refusal(scenario, what, client_id, call, bound=REFUSAL_BOUND):
    """`call()` must fail with an authorization refusal within `bound` seconds, after at most
    MAX_REFUSED_CONNECTS CONNECTs from `client_id` (counted in the emulator log). Returns the error."""
    offset = log_offset()
    started = time.monotonic()
    try:
        result = await asyncio.wait_for(call(), bound)
    except asyncio.TimeoutError:
        raise ScenarioFailure("{}: no error within {:.0f} s (the SDK hung or kept retrying)".format(what, bound))
    except Exception as e:  # noqa: B902 - classified below
        error = e
    else:
        raise ScenarioFailure("{}: succeeded, but must be refused: {}".format(what, result))
    elapsed = time.monotonic() - started
    scenario.info("{} refused after {:.2f} s: {}".format(what, elapsed, describe_error(error)))
    kind = refusal_kind(error)
    check(
        kind is not None,
        "{}: expected an authorization refusal (MQTT CONNACK 'not authorized' or DPS status 401), got {}".format(
            what, describe_error(error)
        ),
    )
    scenario.info("{}: refusal reported as {}".format(what, kind))
    attempts, refused, lines = count_connect_attempts(offset, client_id)
    check(attempts is not None, "{}: emulator log unavailable: connection attempts cannot be counted".format(what))
    check(
        attempts > 0,
        "{}: emulator log has {} line(s) naming {!r} but no CONNECT outcome (did the log wording change?)".format(
            what, len(lines), client_id
        ),
    )
    scenario.info("emulator logged {} CONNECT(s) from {!r} during the call, {} refused".format(
        attempts, client_id, refused))
    check(
        attempts <= MAX_REFUSED_CONNECTS,
        "{}: emulator saw {} CONNECTs from {!r} for one call (retry storm)".format(what, attempts, client_id),
    )
    return error


# --- X.509 ---------------------------------------------------------------------------------------


def leaf_thumbprints(pem_path):
    """(SHA-1, SHA-256) of the first certificate in a PEM file, upper-case hex (Azure's notation)."""
    with open(pem_path, encoding="ascii") as f:
        text = f.read()
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    check(start >= 0 and stop > start, "{} holds no PEM certificate".format(pem_path))
    der = ssl.PEM_cert_to_DER_cert(text[start:stop + len(end)] + "\n")
    return hashlib.sha1(der).hexdigest().upper(), hashlib.sha256(der).hexdigest().upper()


async def device_record(device_id):
    """GET /devices/{id}: (status, body)."""
    return await control_get_async("/devices/" + urllib.parse.quote(device_id, safe=""))


async def expect_not_provisioned(registration_id, device_id=None):
    """Neither an assigned DPS registration for `registration_id` nor a hub device `device_id`."""
    status, body = await control_get_async("/registrations/" + urllib.parse.quote(registration_id, safe=""))
    if status == 200 and isinstance(body, dict):
        check(
            body.get("status") != "assigned",
            "GET /registrations/{} shows an assigned registration: {}".format(registration_id, body),
        )
    else:
        check(status == 404, "GET /registrations/{} returned {}: {}".format(registration_id, status, body))
    if device_id:
        status, body = await device_record(device_id)
        check(status == 404, "GET /devices/{} returned {} (expected 404, no such device): {}".format(
            device_id, status, body))


# --- control port: POST (C2D) ----------------------------------------------------------------


def control_post(path, body=b"", content_type="application/octet-stream"):
    """POST on the control port; returns (status, parsed JSON or text)."""
    return control_request("POST", path, body, content_type)


def control_request(method, path, body=b"", content_type="application/octet-stream"):
    """Any request on the control port; returns (status, parsed JSON or text)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    req = urllib.request.Request(CONTROL_URL + path, data=body, method=method,
                                 headers={"Content-Type": content_type})
    try:
        with _OPENER.open(req, timeout=5) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    text = raw.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


async def control_post_async(path, body=b""):
    return await asyncio.get_running_loop().run_in_executor(None, control_post, path, body)


# --- injected faults (docs/faults.md) -------------------------------------------------------------


async def install_fault(rule):
    """POST /faults with `rule` (the control port's JSON); checks the 201 and returns the rule's id."""
    status, body = await in_thread(control_request, "POST", "/faults", json.dumps(rule), "application/json")
    check(status == 201, "POST /faults returned {}: {}".format(status, body))
    check(isinstance(body, dict) and body.get("id"), "POST /faults answered no id: {!r}".format(body))
    return body["id"]


async def fault_status(fault_id):
    """The rule `fault_id` as GET /faults lists it (with `hits` and `remaining`)."""
    status, body = await control_get_async("/faults")
    check(status == 200 and isinstance(body, list), "GET /faults returned {}: {}".format(status, body))
    listed = [rule for rule in body if isinstance(rule, dict) and rule.get("id") == fault_id]
    check(len(listed) == 1, "GET /faults does not list {}: {}".format(fault_id, body))
    return listed[0]


async def remove_fault(fault_id):
    """DELETE /faults/{id}; returns the status (204 when it was installed, 404 when not)."""
    status, _ = await in_thread(control_request, "DELETE", "/faults/" + fault_id)
    return status


async def with_fault(scenario, rule, run):
    """Installs `rule` (POST /faults), runs `await run(fault_id)`, and removes the rule whatever
    happens (DELETE /faults/{id}; a rule `run` already removed answers 404, which is fine)."""
    fault_id = await install_fault(rule)
    scenario.info("installed {}: {}".format(fault_id, rule))
    try:
        await run(fault_id)
    finally:
        await remove_fault(fault_id)


async def provision_and_connect(scenario, provisioning_client_cls, device_client_cls, websockets=False):
    """DPS symmetric-key registration as in the quickstart (PROVISIONING_* environment), checks
    the result (assigned, hub, EXPECTED_DEVICE_ID), then creates and connects the device client
    (both over MQTT over WebSocket with `websockets=True`). Returns (device_client, device_id)."""
    host = env("PROVISIONING_HOST")
    registration_id = env("PROVISIONING_REGISTRATION_ID")
    key = env("PROVISIONING_SYMMETRIC_KEY")
    scenario.step("register")
    client = provisioning_client_cls.create_from_symmetric_key(
        provisioning_host=host, registration_id=registration_id, id_scope=env("PROVISIONING_IDSCOPE"),
        symmetric_key=key, websockets=websockets,
    )
    result = await client.register()
    expect_equal("registration status", result.status, "assigned")
    state = result.registration_state
    check(state is not None, "registration result has no registration_state")
    expect_equal("assigned hub", state.assigned_hub, env("EXPECTED_ASSIGNED_HUB"))
    expect_equal("device id", state.device_id, env("EXPECTED_DEVICE_ID"))
    scenario.step("connect to hub")
    device_client = device_client_cls.create_from_symmetric_key(
        symmetric_key=key, hostname=state.assigned_hub, device_id=state.device_id, websockets=websockets)
    await device_client.connect()
    return device_client, state.device_id


# --- hub service SDK helpers (AMQP scenarios) ---------------------------------------------------


async def in_thread(fn, *args, **kwargs):
    """Run a blocking SDK call (the service SDKs and azure-eventhub's sync client) off the loop."""
    import functools

    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args, **kwargs))


def new_key():
    return base64.b64encode(os.urandom(32)).decode("ascii")


def hub_host(connection_string):
    """The HostName of a `HostName=…;SharedAccessKeyName=…;SharedAccessKey=…` connection string."""
    fields = dict(part.split("=", 1) for part in connection_string.split(";") if "=" in part)
    return fields["HostName"]


async def create_sas_device(scenario, registry, device_id):
    """Creates `device_id` with a fresh key through the service SDK's registry (HTTPS) and returns
    its device connection string. The emulator must list it afterwards (GET /devices/{id})."""
    key = new_key()
    scenario.step("create device {} (create_device_with_sas over HTTPS)".format(device_id))
    await in_thread(lambda: registry.create_device_with_sas(device_id, key, new_key(), "enabled"))
    status, body = await device_record(device_id)
    check(status == 200, "GET /devices/{} returned {} after create_device_with_sas: {}".format(device_id, status, body))
    host = hub_host(env("IOTHUB_CONNECTION_STRING"))
    return "HostName={};DeviceId={};SharedAccessKey={}".format(host, device_id, key)


# --- AMQP in the emulator log -------------------------------------------------------------------

# The emulator logs (debug) one line per C2D message a service sender link stored:
#   "C2D message queued over AMQP link=… device=<id> message_id=<id>"
# and one line per AMQP connection that arrived through a WebSocket upgrade (as for MQTT):
#   "AMQP over WebSocket: connection upgraded remote=<ip:port> path=…"
C2D_QUEUED_OVER_AMQP = "C2D message queued over AMQP"
AMQP_WEBSOCKET_UPGRADE = "AMQP over WebSocket: connection upgraded"


def expect_c2d_queued_over_amqp(scenario, offset, device_id, message_ids):
    """The emulator logged, after `offset`, that it queued each of `message_ids` for `device_id`
    from an AMQP sender link (its record of what the service SDK sent)."""
    check(EMULATOR_LOG and os.path.exists(EMULATOR_LOG), "emulator log unavailable: cannot see the AMQP C2D sends")
    lines = [l for l in log_lines_since(offset, C2D_QUEUED_OVER_AMQP) if _names_client(l, device_id)]
    missing = [m for m in message_ids if not any(m in l for l in lines)]
    check(not missing, "the emulator logged no '{}' for {} message id(s) {} ({} such line(s) for the device)".format(
        C2D_QUEUED_OVER_AMQP, device_id, missing, len(lines)))
    scenario.info("emulator: {} C2D message(s) for {} queued over AMQP".format(len(message_ids), device_id))


def expect_amqp_websocket_upgrades(scenario, offset, at_least=1):
    """At least `at_least` AMQP connections came through a WebSocket upgrade after `offset`."""
    check(EMULATOR_LOG and os.path.exists(EMULATOR_LOG), "emulator log unavailable: cannot see WebSocket upgrades")
    n = len(log_lines_since(offset, AMQP_WEBSOCKET_UPGRADE))
    check(n >= at_least, "the emulator logged {} '{}' line(s), expected at least {}".format(
        n, AMQP_WEBSOCKET_UPGRADE, at_least))
    scenario.info("emulator: {} AMQP connection(s) over WebSocket".format(n))


# --- the Event Hubs-compatible endpoint ---------------------------------------------------------


def _find_eventhub_connection_string(value):
    """The first `Endpoint=sb://…;EntityPath=…` string anywhere in a JSON value."""
    if isinstance(value, str):
        return value if value.startswith("Endpoint=sb://") and "EntityPath=" in value else None
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    for child in children:
        found = _find_eventhub_connection_string(child)
        if found:
            return found
    return None


EVENTHUB_ROUTES = ("/eventhubs", "/health")


async def eventhub_connection_string(scenario):
    """The Event Hubs-compatible connection string the emulator publishes on its control port
    (the same one its startup banner prints), for the hub the scenarios use."""
    for route in EVENTHUB_ROUTES:
        status, body = await control_get_async(route)
        found = _find_eventhub_connection_string(body) if status == 200 else None
        if found:
            scenario.info("Event Hubs-compatible connection string from GET {}: {}".format(route, found))
            return found
    raise ScenarioFailure("the control port publishes no Event Hubs-compatible connection string "
                          "(looked for 'Endpoint=sb://…;EntityPath=…' in GET {})".format(", ".join(EVENTHUB_ROUTES)))


def eventhub_ca():
    """The CA file for azure-eventhub's `connection_verify=`: its AMQP stack (pyamqp) loads
    `connection_verify or certifi.where()` and ignores SSL_CERT_FILE, so the emulator CA must be
    passed explicitly (the suite puts it in SSL_CERT_FILE)."""
    return env("SSL_CERT_FILE")


def text(value):
    """azure-eventhub (pyamqp) hands AMQP strings and symbols out as bytes; compare as str."""
    return value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else value


def decoded_map(mapping):
    return {text(k): text(v) for k, v in (mapping or {}).items()}


def receive_events(client, wanted, timeout, batch=False, **receive_kwargs):
    """Runs azure-eventhub's blocking `EventHubConsumerClient.receive(on_event, …)` — or, with
    `batch=True`, `receive_batch(on_event_batch, …)` — until `wanted(events)` is true or `timeout`
    seconds pass, then closes the client. Returns (events, errors): every event received as
    (partition_id, EventData), and the errors the client reported to `on_error`. Call it through
    `in_thread`.

    `receive` hands over one event per pass of its loop, and a pass waits for the socket timeout
    when nothing new arrives (0.2 s over AMQP, 1 s over WebSocket, a few per pass), so a backlog
    trickles out; `receive_batch` hands over everything that is buffered."""
    import threading

    events, errors = [], []
    done = threading.Event()

    def on_event(partition_context, event):
        if event is None:
            return
        events.append((partition_context.partition_id, event))
        if wanted(events):
            done.set()

    def on_event_batch(partition_context, batch_events):
        for event in batch_events or []:
            on_event(partition_context, event)

    def on_error(partition_context, error):
        errors.append("partition {}: {}".format(getattr(partition_context, "partition_id", None), describe_error(error)))

    if batch:
        target, kwargs = client.receive_batch, dict(on_event_batch=on_event_batch, on_error=on_error, **receive_kwargs)
    else:
        target, kwargs = client.receive, dict(on_event=on_event, on_error=on_error, **receive_kwargs)
    worker = threading.Thread(target=target, kwargs=kwargs, daemon=True)
    worker.start()
    done.wait(timeout)
    client.close()
    worker.join(10)
    return events, errors


# --- README snippets ------------------------------------------------------------------------------

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "README.md")
_SNIPPET = re.compile(r"<!-- readme-snippet: (\S+)[^\n]*-->\n```[a-z]*\n(.*?)\n```", re.S)


def readme_snippet(name):
    """The code block of README.md that follows the marker `<!-- readme-snippet: NAME … -->`."""
    with open(README, encoding="utf-8") as f:
        found = {m.group(1): m.group(2) + "\n" for m in _SNIPPET.finditer(f.read())}
    check(name in found, "README.md has no snippet marked `<!-- readme-snippet: {} -->` (has: {})".format(
        name, sorted(found)))
    return found[name]


def write_snippet(directory, name):
    path = os.path.join(directory, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(readme_snippet(name))
    return path


async def expect_events_recorded(scenario, partition_id, sequence_numbers):
    """The emulator's own record of the built-in endpoint (GET /eventhubs) has partition
    `partition_id` holding every one of `sequence_numbers` (between its begin and last enqueued
    sequence numbers)."""
    status, body = await control_get_async("/eventhubs")
    check(status == 200 and isinstance(body, list) and body, "GET /eventhubs returned {}: {}".format(status, body))
    partitions = {str(p.get("partitionId")): p for p in (body[0].get("partitions") or [])}
    check(str(partition_id) in partitions, "GET /eventhubs lists no partition {!r}: {}".format(
        partition_id, sorted(partitions)))
    record = partitions[str(partition_id)]
    low, high = record.get("beginSequenceNumber"), record.get("lastEnqueuedSequenceNumber")
    outside = [n for n in sequence_numbers if not (isinstance(low, int) and isinstance(high, int) and low <= n <= high)]
    check(not outside, "GET /eventhubs partition {} holds sequence numbers {}..{}, not {}".format(
        partition_id, low, high, outside))
    scenario.info("emulator: partition {} holds sequence numbers {}..{} (the events' {}..{})".format(
        partition_id, low, high, min(sequence_numbers), max(sequence_numbers)))


# --- official samples, vendored unmodified (conformance/vendor/azure-iot-samples) -----------------

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vendor", "azure-iot-samples", "python")


async def run_official_sample(scenario, name, env_vars, timeout=60.0):
    """Runs the vendored official sample `name` as a user would — `python <name>` in a scratch
    directory holding a copy (samples write files next to themselves) — with `env_vars` added to
    the scenario's environment. Returns its output; fails on a non-zero exit or a hang."""
    import shutil
    import subprocess
    import sys
    import tempfile

    scratch = tempfile.mkdtemp(prefix="iotemu-sample-")
    shutil.copy(os.path.join(SAMPLES, name), scratch)
    env = dict(os.environ)
    env.update(env_vars)
    scenario.info("running the official sample {} in {}".format(name, scratch))

    def run():
        return subprocess.run([sys.executable, name], cwd=scratch, env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)

    try:
        proc = await in_thread(run)
    except subprocess.TimeoutExpired as e:
        output = (e.output or b"").decode("utf-8", "replace")
        raise ScenarioFailure("the sample {} did not finish within {:.0f} s; its output:\n{}".format(name, timeout, output))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    output = proc.stdout.decode("utf-8", "replace")
    for line in output.splitlines()[-40:]:
        scenario.info("  | " + line)
    check(proc.returncode == 0, "the sample {} exited {}".format(name, proc.returncode))
    return output
