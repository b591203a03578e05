"""A library that prints nothing of its own accord, and its version written once."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import amqprpc


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )


def test_nothing_is_printed_unless_the_application_configures_logging() -> None:
    code = (
        "import logging, amqprpc\n"
        "logging.getLogger('amqprpc.aio.server').error('server channel closed')\n"
        "logging.getLogger('amqprpc.sync.client').warning('connection lost')\n"
    )
    assert _run(code).stderr == ""


def test_a_configured_application_sees_the_logs() -> None:
    code = (
        "import logging, amqprpc\n"
        "logging.basicConfig(format='%(name)s %(message)s')\n"
        "logging.getLogger('amqprpc.sync.server').warning('connection lost')\n"
    )
    assert _run(code).stderr == "amqprpc.sync.server connection lost\n"


def test_the_version_is_written_once() -> None:
    assert importlib.metadata.version("amqprpc") == amqprpc.__version__
