"""Scenario service_query, Python: the hub's twin query with azure-iot-hub's
IoTHubRegistryManager.query_iot_hub (POST /devices/query over HTTPS, iothubowner), as the SDK's
query sample calls it:

    query_specification = QuerySpecification(query="SELECT * FROM devices")
    query_result = iothub_registry_manager.query_iot_hub(query_specification)
    query_result = iothub_registry_manager.query_iot_hub(query_specification, None, 1)
    query_result = iothub_registry_manager.query_iot_hub(query_specification, query_result.continuation_token, 1)

Three devices are created (`create_device_with_sas`) and tagged (`update_twin`), one module is
added to the first (`create_module_with_sas`). Then:

1. `SELECT * FROM devices`: every device the emulator holds (control port `GET /devices` before
   and after the query, as the other lane adds and removes devices meanwhile), as twins (`type`
   twin);
2. the same query page by page with `max_item_count` 1 and the returned `continuation_token`
   until it is empty: one twin per page, each device once, the same set;
3. `WHERE tags.conformance = '…'` gives exactly the three devices with their tags;
   `… AND tags.index >= 1` two of them; `NOT IS_DEFINED(tags.conformance)` none of them;
4. `SELECT * FROM devices.modules WHERE deviceId = '…'` gives the module twin (moduleId set);
5. a query the hub cannot parse is refused with HTTP 400 (HttpOperationError);
6. the devices are deleted; the tag query then returns nothing.
"""

from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import QuerySpecification, Twin
from msrest.exceptions import HttpOperationError

import harness
from harness import check, expect_equal, in_thread, new_key

scenario = harness.Scenario("service_query")


def query_all_pages(registry, query, page_size):
    """Every page of `query` with `page_size` twins each (None: the hub's default), following
    the continuation token."""
    spec = QuerySpecification(query=query)
    pages = []
    result = registry.query_iot_hub(spec, None, page_size)
    pages.append(result)
    while result.continuation_token:
        check(len(pages) < 100, "the query does not end after 100 pages")
        result = registry.query_iot_hub(spec, result.continuation_token, page_size)
        pages.append(result)
    return pages


async def listed_device_ids():
    status, listed = await harness.control_get_async("/devices")
    check(status == 200 and isinstance(listed, list), "GET /devices returned {}: {}".format(status, listed))
    return [d.get("deviceId") for d in listed]


def expect_listing(what, seen, before, after):
    """The query saw every device the emulator held both before and after it, and none it held at
    neither time (the other SDK lane creates and deletes devices at the same time)."""
    stable, possible = set(before) & set(after), set(before) | set(after)
    check(stable <= set(seen), "{}: missing {}".format(what, sorted(stable - set(seen))))
    check(set(seen) <= possible, "{}: unknown to the emulator: {}".format(what, sorted(set(seen) - possible)))


async def query_ids(registry, query):
    result = await in_thread(registry.query_iot_hub, QuerySpecification(query=query))
    expect_equal("item type of {!r}".format(query), result.type, "twin")
    check(not result.continuation_token, "{!r}: unexpected continuation token {!r}".format(
        query, result.continuation_token))
    return result, sorted(t.device_id for t in result.items)


async def main():
    registry = IoTHubRegistryManager.from_connection_string(harness.env("IOTHUB_CONNECTION_STRING"))
    prefix = harness.env("QUERY_DEVICE_ID_PREFIX")
    device_ids = ["{}-{}".format(prefix, i) for i in range(3)]
    module_id = "query-module"

    for index, device_id in enumerate(device_ids):
        scenario.step("create and tag device {}".format(device_id))
        await in_thread(registry.create_device_with_sas, device_id, new_key(), new_key(), "enabled")
        twin = await in_thread(registry.get_twin, device_id)
        await in_thread(registry.update_twin, device_id,
                        Twin(tags={"conformance": prefix, "index": index}), twin.etag)
    await in_thread(registry.create_module_with_sas, device_ids[0], module_id, None, new_key(), new_key())

    scenario.step("SELECT * FROM devices")
    before = await listed_device_ids()
    pages = await in_thread(query_all_pages, registry, "SELECT * FROM devices", None)
    ids = [t.device_id for p in pages for t in p.items]
    expect_listing("devices returned by SELECT * FROM devices", ids, before, await listed_device_ids())
    for page in pages:
        expect_equal("item type of SELECT * FROM devices", page.type, "twin")
    check(set(device_ids) <= set(ids), "SELECT * FROM devices misses {}".format(sorted(set(device_ids) - set(ids))))

    scenario.step("SELECT * FROM devices, 1 per page (max_item_count, continuation_token)")
    before = await listed_device_ids()
    pages = await in_thread(query_all_pages, registry, "SELECT * FROM devices", 1)
    after = await listed_device_ids()
    scenario.info("pages: {}".format([[t.device_id for t in p.items] for p in pages]))
    check(len(pages) >= 3, "{} page(s) for {} devices with max_item_count 1".format(len(pages), len(after)))
    for i, page in enumerate(pages):
        expect_equal("page {} item type".format(i + 1), page.type, "twin")
        expect_equal("twins on page {}".format(i + 1), len(page.items), 1)
    paged = [t.device_id for p in pages for t in p.items]
    check(len(paged) == len(set(paged)), "a device came twice over the pages: {}".format(paged))
    expect_listing("devices over all pages", paged, before, after)

    scenario.step("WHERE on tags")
    tagged = "SELECT * FROM devices WHERE tags.conformance = '{}'".format(prefix)
    result, ids = await query_ids(registry, tagged)
    expect_equal("devices tagged {}".format(prefix), ids, device_ids)
    for twin in result.items:
        expect_equal("tags of {}".format(twin.device_id), twin.tags,
                     {"conformance": prefix, "index": device_ids.index(twin.device_id)})
        check(twin.etag, "queried twin {} has no etag".format(twin.device_id))
    _, ids = await query_ids(registry, tagged + " AND tags.index >= 1")
    expect_equal("devices with tags.index >= 1", ids, device_ids[1:])
    _, ids = await query_ids(registry, "SELECT * FROM devices WHERE NOT IS_DEFINED(tags.conformance)")
    check(not set(ids) & set(device_ids), "NOT IS_DEFINED(tags.conformance) returned tagged devices: {}".format(ids))

    scenario.step("SELECT * FROM devices.modules")
    result = await in_thread(registry.query_iot_hub, QuerySpecification(
        query="SELECT * FROM devices.modules WHERE deviceId = '{}'".format(device_ids[0])))
    expect_equal("module twins of {}".format(device_ids[0]),
                 [(t.device_id, t.module_id) for t in result.items], [(device_ids[0], module_id)])

    scenario.step("a query the hub cannot parse: 400")
    try:
        result = await in_thread(registry.query_iot_hub, QuerySpecification(query="SELECT * FROM"))
    except HttpOperationError as e:
        got = e.response.status_code if e.response is not None else None
        scenario.info("bad query: HTTP {} {}".format(got, e.response.text if e.response is not None else ""))
        expect_equal("HTTP status of a bad query", got, 400)
    else:
        raise harness.ScenarioFailure("a bad query succeeded: {!r}".format(result.items))

    scenario.step("delete the devices; the tag query is then empty")
    for device_id in device_ids:
        await in_thread(registry.delete_device, device_id)
    _, ids = await query_ids(registry, tagged)
    expect_equal("devices tagged {} after delete".format(prefix), ids, [])


if __name__ == "__main__":
    scenario.run(main)
