"""Scenario official_service_samples, Python: azure-iot-hub's own job and configuration samples
(conformance/vendor/azure-iot-samples, unmodified), run as a user would with
IOTHUB_CONNECTION_STRING:

  * iothub_job_manager_twin_update_sample.py — a scheduleUpdateTwin job over every device
    (queryCondition "*"), polled with get_scheduled_job until 'completed';
  * iothub_job_manager_method_sample.py — a scheduleDeviceMethod job over every device (offline
    ones wait 15 s to connect, side by side, then fail), polled until 'completed';
  * iothub_configuration_manager_sample.py — create, get, delete and list a configuration.

The samples catch their own errors and print them ("HttpOperationError error …", "Unexpected
error …"), so the scenario reads their output. The job samples act on every device of the hub,
so the scenario runs alone, after the lanes.
"""

import harness
from harness import check

scenario = harness.Scenario("official_service_samples", timeout=150.0)
FAILURES = ("HttpOperationError error", "Unexpected error")


def check_clean(name, output):
    for failure in FAILURES:
        check(failure not in output, "{} printed '{}'".format(name, failure))
    check("finished" in output, "{} did not reach its end".format(name))


async def main():
    env = {"IOTHUB_CONNECTION_STRING": harness.env("IOTHUB_CONNECTION_STRING")}
    for name in ("iothub_job_manager_twin_update_sample.py", "iothub_job_manager_method_sample.py"):
        scenario.step("the official sample " + name)
        output = await harness.run_official_sample(scenario, name, env, timeout=60.0)
        check_clean(name, output)
        check("'status': 'completed'" in output, "{} never saw its job completed".format(name))
    name = "iothub_configuration_manager_sample.py"
    scenario.step("the official sample " + name)
    output = await harness.run_official_sample(scenario, name, env, timeout=30.0)
    check_clean(name, output)
    for title in ("Created configuration", "Get configuration"):
        check(title in output, "{} did not print '{}'".format(name, title))


if __name__ == "__main__":
    scenario.run(main)
