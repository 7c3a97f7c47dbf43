"""Start the iotemu emulator (Azure IoT Hub DPS + IoT Hub) from Python and from pytest.

``pip install iotemu`` puts the ``iotemu`` binary on PATH; this module starts it::

    import iotemu

    with iotemu.start() as emu:
        print(emu.hub_connection_string, emu.ca_file)

``start()`` binds MQTT on 8883 and AMQP on 5671 (the official SDKs hard-code both; neither needs
privileges), HTTPS on 443 when this process may bind it (root, CAP_NET_BIND_SERVICE, or inside a
network namespace of your own) and otherwise on a free port that the connection strings carry
(``HostName=localhost:PORT``: the REST SDKs accept it), and the control port on a free port. It
waits until every listener is up and returns an :class:`Emulator` with the endpoints, connection
strings and the CA file to trust.

The pytest plugin (``iotemu.pytest_plugin``, loaded automatically) adds the ``iotemu`` fixture (a
fresh emulator per test) and ``iotemu_session`` (one emulator for the whole run); both set
``SSL_CERT_FILE`` and ``REQUESTS_CA_BUNDLE`` to the emulator CA while they are active.
"""

from ._emulator import (
    AZURE_HTTPS_PORT,
    Device,
    Emulator,
    IotemuError,
    binary_path,
    start,
)

__all__ = [
    "AZURE_HTTPS_PORT",
    "Device",
    "Emulator",
    "IotemuError",
    "binary_path",
    "start",
]
