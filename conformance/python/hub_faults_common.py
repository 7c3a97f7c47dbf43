"""Shared steps of the Python hub-fault scenarios (hub_drop_reconnect, hub_drop_twin,
hub_delayed_puback, hub_connect_refused): install a rule on the device's own id and always remove
it, send awaited telemetry, count what the emulator stored per message id (GET /telemetry), so
that a QoS 1 resend shows up as a duplicate instead of being folded away as `wait_for_telemetry`
does, and change desired properties as a back end would."""

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import harness
from harness import check, expect_equal


@contextlib.asynccontextmanager
async def fault_rule(scenario, rule):
    """Installs `rule` (POST /faults) for the body of the `async with`, then removes it
    (DELETE /faults/{id} → 204) even when the scenario fails, so no rule outlives it."""
    fault_id = await harness.install_fault(rule)
    scenario.info("installed {}: {}".format(fault_id, rule))
    removed = False
    try:
        yield fault_id
        status = await harness.remove_fault(fault_id)
        removed = True
        expect_equal("DELETE /faults/{} status".format(fault_id), status, 204)
    finally:
        if not removed:
            await harness.remove_fault(fault_id)


async def expect_hits(scenario, fault_id, hits):
    """GET /faults lists the rule with exactly `hits` hits."""
    rule = await harness.fault_status(fault_id)
    expect_equal("GET /faults {} hits".format(fault_id), rule.get("hits"), hits)
    scenario.info("GET /faults: {} hits={} remaining={}".format(fault_id, rule.get("hits"), rule.get("remaining")))


def new_message(message_cls, run_id, index):
    msg = message_cls("hub fault message {}".format(index))
    msg.message_id = "{}-{}".format(run_id, index)
    msg.custom_properties["conformanceRun"] = run_id
    return msg


async def stored_counts(device_id, run_id):
    """{message id: how many times GET /telemetry holds it} for this run's messages."""
    path = "/telemetry?deviceId=" + urllib.parse.quote(device_id, safe="")
    status, body = await harness.control_get_async(path)
    check(status == 200 and isinstance(body, list), "GET {} returned {}: {}".format(path, status, body))
    counts = {}
    for stored in body:
        mid = ((stored or {}).get("systemProperties") or {}).get("message-id")
        if isinstance(mid, str) and mid.startswith(run_id + "-"):
            counts[mid] = counts.get(mid, 0) + 1
    return counts


async def expect_all_stored(scenario, device_id, run_id, total, allow_duplicates):
    """Every message 1..total is stored; duplicates are reported (and fail unless allowed).
    Returns the ids stored more than once."""
    expected = ["{}-{}".format(run_id, i) for i in range(1, total + 1)]
    counts = await stored_counts(device_id, run_id)
    missing = [mid for mid in expected if counts.get(mid, 0) == 0]
    check(not missing, "{} of {} messages not stored: {}".format(len(missing), total, missing))
    unexpected = sorted(set(counts) - set(expected))
    check(not unexpected, "stored messages this run did not send: {}".format(unexpected))
    duplicates = {mid: n for mid, n in counts.items() if n > 1}
    if duplicates:
        scenario.info("stored more than once (QoS 1 resend): {}".format(duplicates))
    else:
        scenario.info("all {} messages stored exactly once".format(total))
    check(allow_duplicates or not duplicates, "messages stored more than once: {}".format(duplicates))
    return duplicates


def run_id():
    return str(uuid.uuid4())


def elapsed_since(started):
    return time.monotonic() - started


def _portal_patch(path, body):
    req = urllib.request.Request(
        harness.CONTROL_URL + path, data=json.dumps(body).encode("utf-8"), method="PATCH",
        headers={"Content-Type": "application/json", "X-Iotemu-Portal": "1"})
    try:
        with harness._OPENER.open(req, timeout=5) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


async def patch_desired(hub, device_id, desired):
    """Merges `desired` into the device's desired properties through the control port's portal
    API (PATCH /api/hubs/{hub}/devices/{id}/twin, docs/portal.md), as a back end would."""
    path = "/api/hubs/{}/devices/{}/twin".format(urllib.parse.quote(hub, safe=""), urllib.parse.quote(device_id, safe=""))
    status, body = await harness.in_thread(_portal_patch, path, {"properties": {"desired": desired}})
    check(status == 200, "PATCH {} returned {}: {}".format(path, status, body))
