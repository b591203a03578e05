"""Shared fixtures: the broker URL, a loud check that it answers, unique queue names, a
connection of each async backend, and a private broker for tests that stop or restart one."""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pytest

from tests.backends import ASYNC_BACKENDS, close_async, connect_async

if TYPE_CHECKING:
    from tests.brokers import PrivateBroker

# aiormq 7 needs Python 3.11: without it, its own tests are not collected (tests/backends.py;
# tests/aio/test_backends.py fails where the running Python supports it and it is missing).
collect_ignore = (
    []
    if "aiormq" in ASYNC_BACKENDS
    else ["integration/test_compat_aiormq.py", "integration/test_aio_urls.py"]
)

BROKER_URL = os.environ.get("AMQPRPC_TEST_URL", "amqp://guest:guest@127.0.0.1:5672/")
_HERE = Path(__file__).parent
_broker_checked: str | None = None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration talks to the broker. The tests that trace (the
    `spans` fixture) run last: the OpenTelemetry provider they set stays set for the rest of
    the process, and would have every later test trace its calls (slower, and not the
    conditions those tests measure)."""
    for item in items:
        if (_HERE / "integration") in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.broker)
    items.sort(key=lambda item: "spans" in getattr(item, "fixturenames", ()))


def _check_broker() -> None:
    global _broker_checked
    if _broker_checked is not None:
        return
    url = urlparse(BROKER_URL)
    try:
        with socket.create_connection((url.hostname or "127.0.0.1", url.port or 5672), 5):
            pass
    except OSError as exc:
        pytest.fail(
            f"no RabbitMQ at {url.hostname}:{url.port or 5672} ({exc}). Start one "
            "(`rabbitmq-server -detached`), set AMQPRPC_TEST_URL, or deselect with "
            '-m "not broker"',
            pytrace=False,
        )
    _broker_checked = BROKER_URL


@pytest.fixture(
    params=["rabbitmq3", pytest.param("rabbitmq4", marks=pytest.mark.rabbitmq4)]
)
def broker_url(request: pytest.FixtureRequest) -> str:
    """The URL of a reachable broker: the shared one (RabbitMQ 3.10 here, AMQPRPC_TEST_URL),
    then a RabbitMQ 4 node of the session's own, so that the broker tier runs on both. Fails
    the test loudly when the broker does not answer."""
    if request.param == "rabbitmq4":
        return str(request.getfixturevalue("rabbitmq4").url)
    _check_broker()
    return BROKER_URL


def _rabbitmq4_node(config: str = "") -> Iterator[PrivateBroker]:
    from tests.brokers import BrokerStartError
    from tests.rabbitmq4 import new_node

    try:
        node = new_node(config=config)
    except RuntimeError as exc:  # no chroot: CI builds one, a developer may not have root
        if os.environ.get("CI"):
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    try:
        node.start()
    except BrokerStartError as exc:
        shutil.rmtree(node.dir, ignore_errors=True)  # the chroot is a cache: leave no node
        pytest.fail(str(exc), pytrace=False)
    try:
        yield node
    finally:
        node.stop()
        shutil.rmtree(node.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def rabbitmq4() -> Iterator[PrivateBroker]:
    """A RabbitMQ 4.0 node (tests/rabbitmq4.py), started on first use and stopped at the
    session's end."""
    yield from _rabbitmq4_node()


@pytest.fixture(scope="session")
def rabbitmq43() -> Iterator[PrivateBroker]:
    """A RabbitMQ 4.0 node that denies transient non-exclusive queues, as 4.3 does by
    default (tests/rabbitmq4.py STRICT_4_3)."""
    from tests.rabbitmq4 import STRICT_4_3

    yield from _rabbitmq4_node(STRICT_4_3)


@pytest.fixture
def queue_name(broker_url: str) -> Iterator[str]:
    """A request-queue name no other test uses; the queue is deleted afterwards."""
    name = f"amqprpc-test-{uuid.uuid4().hex[:12]}"
    yield name
    from tests.integration.raw import delete_queue

    delete_queue(broker_url, name)


@pytest.fixture(params=ASYNC_BACKENDS)
def aio_backend(request: pytest.FixtureRequest) -> str:
    """The async API's client library a test runs on: each installed one in turn
    (tests/backends.py)."""
    return str(request.param)


@pytest.fixture
async def amqp(broker_url: str, aio_backend: str) -> AsyncIterator[Any]:
    """A connection of the async backend's kind to the broker (an aioamqp AmqpProtocol or an
    aiormq Connection), closed after the test."""
    connection = await connect_async(aio_backend, broker_url)
    yield connection
    await close_async(connection)


@pytest.fixture(scope="session")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A RabbitMQ node of the session's own (tests/brokers.py), started on first use (~9 s)
    and stopped at session end. Tests may stop and restart it; the shared broker never."""
    from tests.brokers import BrokerStartError, PrivateBroker

    broker = PrivateBroker(tmp_path_factory.mktemp("rabbitmq"))
    try:
        try:
            broker.start()
        except BrokerStartError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield broker
    finally:
        broker.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the failover test measured."""
    from tests.cluster import REPORT

    if REPORT:
        terminalreporter.section("failover on a 3-node cluster (calls by outcome)")
        for line in REPORT:
            terminalreporter.write_line(line)
