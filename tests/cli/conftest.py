"""Fixtures of the command's tests: the shared broker's URL, a unique queue deleted after
the test, the directory of the served module, and the Go peer (tests/interop)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import BROKER_URL, _check_broker
from tests.interop.conftest import go_peer  # noqa: F401  (the Go peer for the Go tests)

from .helpers import write_app


@pytest.fixture
def url() -> str:
    """The shared broker (RabbitMQ 3.10 here); fails loudly when it does not answer."""
    _check_broker()
    return BROKER_URL


@pytest.fixture
def queue(url: str) -> Iterator[str]:
    """A queue name no other test uses; the queue is deleted afterwards."""
    name = f"amqprpc-test-cli-{uuid.uuid4().hex[:12]}"
    yield name
    from tests.integration.raw import delete_queue

    delete_queue(url, name)


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory holding the served module `cliapp` (tests/cli/helpers.py APP)."""
    return write_app(tmp_path)


@pytest.fixture
def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (connections to it are refused)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
