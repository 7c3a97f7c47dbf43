"""CI-only checks of the pytest plugin's session fixture (.ci/packages runs this file in its own
pytest process, as root inside a private network namespace, so HTTPS gets 443).

Tests share one emulator and stay independent through devices of their own; the trust variables
point at the emulator CA while the session fixture is active.
"""

import os

from azure.iot.device import IoTHubDeviceClient, Message, ProvisioningDeviceClient
from azure.iot.hub import IoTHubRegistryManager

import iotemu


def provision(device):
    registration = ProvisioningDeviceClient.create_from_symmetric_key(
        provisioning_host=device.provisioning_host,
        registration_id=device.registration_id,
        id_scope=device.id_scope,
        symmetric_key=device.symmetric_key,
    ).register()
    assert registration.status == "assigned"
    state = registration.registration_state
    client = IoTHubDeviceClient.create_from_symmetric_key(
        symmetric_key=device.symmetric_key, hostname=state.assigned_hub, device_id=state.device_id
    )
    client.connect()
    return client


def test_session_emulator_is_trusted_and_on_azure_ports(iotemu_session):
    assert os.environ["SSL_CERT_FILE"] == iotemu_session.ca_file
    assert os.environ["REQUESTS_CA_BUNDLE"] == iotemu_session.ca_file
    assert (iotemu_session.mqtt_port, iotemu_session.amqp_port) == (8883, 5671)
    # Root in a namespace of its own may bind 443: every transport works, the strings carry no port.
    assert iotemu_session.https_port == iotemu.AZURE_HTTPS_PORT
    assert iotemu_session.unavailable_transports == ()
    assert iotemu_session.hub_connection_string.startswith("HostName=localhost;")
    assert iotemu_session.get("/health")["status"] == "healthy"


def test_each_test_gets_its_own_device(iotemu_session):
    first, second = iotemu_session.device(), iotemu_session.device()
    assert first.registration_id != second.registration_id
    for device in (first, second):
        client = provision(device)
        client.send_message(Message(device.registration_id))
        client.shutdown()
    for device in (first, second):
        assert [m["body"] for m in iotemu_session.telemetry(device.device_id)] == [device.registration_id]


def test_registry_reaches_the_session_emulator_over_https(iotemu_session):
    device = iotemu_session.device()
    provision(device).shutdown()
    registry = IoTHubRegistryManager.from_connection_string(iotemu_session.hub_connection_string)
    assert registry.get_device(device.device_id).device_id == device.device_id


def test_a_second_emulator_beside_it_fails_clearly(iotemu_session):
    # The session emulator holds 8883 until the run ends.
    try:
        iotemu.start(timeout=10)
    except iotemu.IotemuError as e:
        assert "8883" in str(e) or "in use" in str(e)
    else:
        raise AssertionError("a second emulator started while the session one holds 8883")
