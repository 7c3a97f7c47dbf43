"""Scenario service_registry, Python: the hub's identity registry, module identities and twin
replacement with azure-iot-hub's IoTHubRegistryManager (HTTPS, iothubowner).

  * devices: `create_device_with_sas` without keys (the hub generates both), `get_device`,
    `update_device_with_sas` with the device's etag (new keys, status disabled; the emulator's
    `GET /devices/{id}` agrees), `get_devices` lists it;
  * modules: `create_module_with_sas` without keys (generated) and with keys, `get_module`,
    `get_modules` (both), `update_module_with_sas` with the module's etag (managedBy and new keys),
    the same update with the stale etag refused with 412, `delete_module` with its etag
    (`get_module` → 404 afterwards);
  * twins: `replace_twin` (PUT, with the etag) sets tags and desired properties; a second
    `replace_twin` with other desired properties drops the first ones (replacement, not a merge)
    and the service reads it back with `get_twin`; `update_twin` (PATCH) merges;
    `replace_module_twin` / `get_module_twin` on the module;
  * `delete_device` (with its etag): `get_device` and `get_modules` → 404, and the emulator no
    longer lists the device.
"""

import asyncio
import base64
import os
import urllib.parse

from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import Twin, TwinProperties
from msrest.exceptions import HttpOperationError

import harness
from harness import check, expect_equal

scenario = harness.Scenario("service_registry")


async def in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def new_key():
    return base64.b64encode(os.urandom(32)).decode("ascii")


def is_key(text):
    try:
        return len(base64.b64decode(text, validate=True)) >= 16
    except (TypeError, ValueError):
        return False


async def expect_http_error(what, status, fn, *args):
    try:
        result = await in_thread(fn, *args)
    except HttpOperationError as e:
        got = e.response.status_code if e.response is not None else None
        body = e.response.text if e.response is not None else ""
        scenario.info("{}: HTTP {} {}".format(what, got, body))
        expect_equal("{}: HTTP status".format(what), got, status)
        return body
    raise harness.ScenarioFailure("{}: succeeded ({!r}), expected HTTP {}".format(what, result, status))


async def main():
    registry = IoTHubRegistryManager.from_connection_string(harness.env("IOTHUB_CONNECTION_STRING"))
    device_id = harness.env("REGISTRY_DEVICE_ID")
    quoted = urllib.parse.quote(device_id, safe="")

    scenario.step("create_device_with_sas without keys (generated)")
    device = await in_thread(lambda: registry.create_device_with_sas(device_id, None, None, "enabled"))
    print("created:", device)
    expect_equal("device_id", device.device_id, device_id)
    expect_equal("status", device.status, "enabled")
    keys = device.authentication.symmetric_key
    check(is_key(keys.primary_key) and is_key(keys.secondary_key) and keys.primary_key != keys.secondary_key,
          "the hub did not generate two keys: {!r}".format(keys))
    check(device.etag, "created device has no etag")

    scenario.step("get_device")
    got = await in_thread(registry.get_device, device_id)
    expect_equal("get_device primary key", got.authentication.symmetric_key.primary_key, keys.primary_key)
    expect_equal("get_device etag", got.etag, device.etag)

    scenario.step("update_device_with_sas with the etag: new keys, disabled")
    primary, secondary = new_key(), new_key()
    updated = await in_thread(lambda: registry.update_device_with_sas(
        device_id, got.etag, primary, secondary, "disabled"))
    expect_equal("updated status", updated.status, "disabled")
    expect_equal("updated primary key", updated.authentication.symmetric_key.primary_key, primary)
    check(updated.etag and updated.etag != got.etag, "the etag did not change: {!r}".format(updated.etag))
    status, record = await harness.control_get_async("/devices/" + quoted)
    expect_equal("GET /devices/{id} status".format(id=device_id), status, 200)
    expect_equal("emulator device status", record.get("status"), "disabled")

    scenario.step("get_devices")
    devices = await in_thread(registry.get_devices)
    check(device_id in [d.device_id for d in devices], "get_devices does not list {}".format(device_id))

    scenario.step("create_module_with_sas: one without keys (generated), one with keys")
    mod_a = await in_thread(lambda: registry.create_module_with_sas(device_id, "modA", None, None, None))
    print("modA:", mod_a)
    expect_equal("modA module_id", mod_a.module_id, "modA")
    expect_equal("modA device_id", mod_a.device_id, device_id)
    check(is_key(mod_a.authentication.symmetric_key.primary_key), "modA has no generated key: {!r}".format(
        mod_a.authentication.symmetric_key))
    key_b = new_key()
    mod_b = await in_thread(lambda: registry.create_module_with_sas(device_id, "modB", None, key_b, new_key()))
    expect_equal("modB primary key", mod_b.authentication.symmetric_key.primary_key, key_b)

    scenario.step("get_module and get_modules")
    got_a = await in_thread(registry.get_module, device_id, "modA")
    expect_equal("get_module etag", got_a.etag, mod_a.etag)
    modules = await in_thread(registry.get_modules, device_id)
    expect_equal("get_modules", sorted(m.module_id for m in modules), ["modA", "modB"])

    scenario.step("update_module_with_sas with the etag (managedBy, new keys)")
    key_a = new_key()
    upd_a = await in_thread(lambda: registry.update_module_with_sas(
        device_id, "modA", "conformance", got_a.etag, key_a, new_key()))
    expect_equal("updated managed_by", upd_a.managed_by, "conformance")
    expect_equal("updated primary key", upd_a.authentication.symmetric_key.primary_key, key_a)
    check(upd_a.etag != got_a.etag, "module etag did not change")

    scenario.step("update_module_with_sas with the stale etag: 412")
    await expect_http_error("update with a stale etag", 412, lambda: registry.update_module_with_sas(
        device_id, "modA", "someone-else", got_a.etag, new_key(), new_key()))
    again = await in_thread(registry.get_module, device_id, "modA")
    expect_equal("managed_by after the refused update", again.managed_by, "conformance")

    scenario.step("delete_module(modB) with its etag")
    await in_thread(registry.delete_module, device_id, "modB", mod_b.etag)
    await expect_http_error("get_module after delete", 404, registry.get_module, device_id, "modB")
    modules = await in_thread(registry.get_modules, device_id)
    expect_equal("get_modules after delete", [m.module_id for m in modules], ["modA"])

    scenario.step("replace_twin with tags and desired properties (etag)")
    twin = await in_thread(registry.get_twin, device_id)
    replaced = await in_thread(registry.replace_twin, device_id, Twin(
        tags={"site": "lab", "floor": 3}, properties=TwinProperties(desired={"mode": "eco", "limit": 10})), twin.etag)
    print("replaced:", replaced)
    expect_equal("replaced tags", replaced.tags, {"site": "lab", "floor": 3})
    expect_equal("replaced desired.mode", replaced.properties.desired.get("mode"), "eco")

    scenario.step("replace_twin again: the first desired properties and tags are gone")
    replaced2 = await in_thread(registry.replace_twin, device_id, Twin(
        tags={"site": "plant"}, properties=TwinProperties(desired={"interval": 5})), replaced.etag)
    desired = {k: v for k, v in replaced2.properties.desired.items() if not k.startswith("$")}
    expect_equal("desired after the second replace", desired, {"interval": 5})
    expect_equal("tags after the second replace", replaced2.tags, {"site": "plant"})
    check(replaced2.properties.desired["$version"] > replaced.properties.desired["$version"],
          "desired $version did not grow: {} then {}".format(
              replaced.properties.desired["$version"], replaced2.properties.desired["$version"]))

    scenario.step("update_twin (PATCH) merges")
    patched = await in_thread(registry.update_twin, device_id, Twin(
        tags={"owner": "conformance"}, properties=TwinProperties(desired={"mode": "fast"})), replaced2.etag)
    desired = {k: v for k, v in patched.properties.desired.items() if not k.startswith("$")}
    expect_equal("desired after the patch", desired, {"interval": 5, "mode": "fast"})
    expect_equal("tags after the patch", patched.tags, {"site": "plant", "owner": "conformance"})
    read = await in_thread(registry.get_twin, device_id)
    expect_equal("get_twin desired", {k: v for k, v in read.properties.desired.items() if not k.startswith("$")},
                 {"interval": 5, "mode": "fast"})

    scenario.step("replace_module_twin and get_module_twin")
    mtwin = await in_thread(registry.get_module_twin, device_id, "modA")
    expect_equal("module twin module_id", mtwin.module_id, "modA")
    mreplaced = await in_thread(registry.replace_module_twin, device_id, "modA", Twin(
        tags={"role": "filter"}, properties=TwinProperties(desired={"threshold": 7})), mtwin.etag)
    expect_equal("module twin tags", mreplaced.tags, {"role": "filter"})
    mread = await in_thread(registry.get_module_twin, device_id, "modA")
    expect_equal("module twin desired.threshold", mread.properties.desired.get("threshold"), 7)
    expect_equal("device twin untouched", (await in_thread(registry.get_twin, device_id)).tags,
                 {"site": "plant", "owner": "conformance"})

    scenario.step("delete_device with its etag")
    current = await in_thread(registry.get_device, device_id)
    await in_thread(registry.delete_device, device_id, current.etag)
    await expect_http_error("get_device after delete", 404, registry.get_device, device_id)
    await expect_http_error("get_modules after delete", 404, registry.get_modules, device_id)
    status, record = await harness.control_get_async("/devices/" + quoted)
    expect_equal("GET /devices/{id} after delete".format(id=device_id), status, 404)


if __name__ == "__main__":
    scenario.run(main)
