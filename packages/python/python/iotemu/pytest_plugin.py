"""pytest plugin (entry point ``pytest11``: loaded once ``iotemu`` is installed).

Fixtures:

``iotemu``
    A fresh emulator for one test (its own state), stopped after it.
``iotemu_session``
    One emulator for the whole run: 8883 is one port, so tests share it and stay independent by
    provisioning devices of their own (``iotemu_session.device()`` gives each a new id).

Both return an :class:`iotemu.Emulator` and, while they are active, point ``SSL_CERT_FILE`` and
``REQUESTS_CA_BUNDLE`` at the emulator CA (the variables the Python SDKs read; the previous values
come back afterwards). A run uses one or the other: both bind 8883.

Options (command line or ini): ``--iotemu-bin PATH`` / ``iotemu_bin``: the binary (default: the
one the wheel installed); ``--iotemu-arg=ARG`` / ``iotemu_args``: extra iotemu flags, e.g.
``--iotemu-arg=--fixtures=tests/fixture.json``.
"""

import contextlib
import os
import shlex

import pytest

from ._emulator import IotemuError, start

_TRUST_VARIABLES = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")
_session_running = []


def pytest_addoption(parser):
    group = parser.getgroup("iotemu", "iotemu emulator fixtures")
    group.addoption("--iotemu-bin", default=None, help="iotemu binary for the iotemu fixtures")
    group.addoption("--iotemu-arg", action="append", default=[],
                    help="extra iotemu flag for the iotemu fixtures (repeatable)")
    parser.addini("iotemu_bin", "iotemu binary for the iotemu fixtures", default="")
    parser.addini("iotemu_args", "extra iotemu flags for the iotemu fixtures (shell words)", default="")


@contextlib.contextmanager
def trusting(emulator):
    """Points the SDKs' trust variables at the emulator CA, restoring the old values after."""
    saved = {name: os.environ.get(name) for name in _TRUST_VARIABLES}
    os.environ.update({name: emulator.ca_file for name in _TRUST_VARIABLES})
    try:
        yield emulator
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _start(config):
    binary = config.getoption("iotemu_bin") or config.getini("iotemu_bin") or None
    args = shlex.split(config.getini("iotemu_args")) + list(config.getoption("iotemu_arg"))
    try:
        return start(binary=binary, args=args)
    except IotemuError as e:
        hint = ""
        if _session_running:
            hint = "\n(iotemu_session is running in this run and holds 8883: use one fixture or the other)"
        pytest.fail("iotemu did not start: {}{}".format(e, hint), pytrace=False)


@pytest.fixture
def iotemu(request):
    """A fresh iotemu for this test, trusted through SSL_CERT_FILE / REQUESTS_CA_BUNDLE."""
    emulator = _start(request.config)
    try:
        with trusting(emulator):
            yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def iotemu_session(request):
    """One iotemu for the whole run, trusted through SSL_CERT_FILE / REQUESTS_CA_BUNDLE."""
    emulator = _start(request.config)
    _session_running.append(emulator)
    try:
        with trusting(emulator):
            yield emulator
    finally:
        _session_running.remove(emulator)
        emulator.stop()
