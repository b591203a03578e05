"""The deadline holds while the broker pushes back: under a memory alarm RabbitMQ blocks
publishing connections (connection.blocked) and stops reading from them. On the private
broker, every client's calls still end by their deadlines (+0.5 s), codecs sharing a
connection do not hold each other up, the thread-safe client's I/O thread keeps going, the
codecs report `blocked`, and the requests that timed out never run once the alarm clears
(their deadline has passed: PROTOCOL.md 12.1)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.sync
from tests.backends import close_async, connect_async
from tests.brokers import PrivateBroker
from tests.integration.peers import SyncServerThread

BIG = "x" * (16 * 1024 * 1024 - 64)  # the largest argument the default limit allows
SLACK = 0.5


class Counted:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs = 0

    def echo(self, arg: Any) -> int:
        with self.lock:
            self.runs += 1
        return len(arg) if isinstance(arg, str) else 0


@pytest.fixture
def node(private_broker: PrivateBroker) -> PrivateBroker:
    private_broker.start()
    return private_broker


@pytest.fixture
def served(node: PrivateBroker) -> Iterator[tuple[str, Counted, Any]]:
    queue = f"amqprpc-test-{uuid.uuid4().hex[:12]}"
    counted = Counted()
    server = SyncServerThread(node.url, queue, amqprpc.Json, counted, deadline_skew=0.1).start()
    yield queue, counted, server.server
    server.stop()


class Alarm:
    """A memory alarm on the private node: every publishing connection gets blocked."""

    def __init__(self, node: PrivateBroker) -> None:
        self.node = node

    def __enter__(self) -> Alarm:
        self.node.ctl("set_vm_memory_high_watermark", "0")
        return self

    def __exit__(self, *exc: object) -> None:
        self.node.ctl("set_vm_memory_high_watermark", "0.4")


def ends_by_deadline(started: float, timeout: float) -> None:
    elapsed = time.monotonic() - started
    assert timeout <= elapsed <= timeout + SLACK, elapsed


def test_the_caller_connection_client(
    node: PrivateBroker, served: tuple[str, Counted, Any]
) -> None:
    queue, counted, server = served
    connection = pika.BlockingConnection(pika.URLParameters(node.url))
    codec = amqprpc.sync.client_codec(connection, queue, amqprpc.Json)
    assert codec.call("Counted.Echo", "warm", timeout=5) == 4
    with Alarm(node):
        started = time.monotonic()
        with pytest.raises(amqprpc.RPCTimeout):
            codec.call("Counted.Echo", BIG, timeout=3)
        ends_by_deadline(started, 3)
        assert codec.blocked
        started = time.monotonic()
        with pytest.raises(amqprpc.RPCTimeout):
            codec.call("Counted.Echo", "small", timeout=1)
        ends_by_deadline(started, 1)
    assert codec.call("Counted.Echo", "after", timeout=30) == 5  # the backlog went out first
    assert not codec.blocked
    assert counted.runs == 2  # the timed-out requests reached the server late and never ran
    assert server.stats.expired == 2
    codec.close()
    connection.close()


def test_the_thread_safe_client(node: PrivateBroker, served: tuple[str, Counted, Any]) -> None:
    queue, counted, server = served
    with amqprpc.sync.client_codec(node.url, queue, amqprpc.Json) as codec:
        assert codec.call("Counted.Echo", "warm", timeout=5) == 4
        with Alarm(node):
            started = time.monotonic()
            big = codec.call_async("Counted.Echo", BIG, timeout=3)
            smalls = [codec.call_async("Counted.Echo", str(i), timeout=1) for i in range(5)]
            for future in concurrent.futures.as_completed(smalls, 5):
                assert isinstance(future.exception(), amqprpc.RPCTimeout)
            ends_by_deadline(started, 1)  # the I/O thread never waited on the big one
            assert isinstance(big.exception(5), amqprpc.RPCTimeout)
            ends_by_deadline(started, 3)
            assert codec.blocked
        assert codec.call("Counted.Echo", "after", timeout=30) == 5
        assert counted.runs == 2
        assert server.stats.expired == 6


def tap_of(connection: Any) -> Any:
    from amqprpc.aio._rmq_compat import Tap

    return Tap.of(connection)


async def test_the_async_client_and_codecs_sharing_its_connection(
    node: PrivateBroker, served: tuple[str, Counted, Any], aio_backend: str
) -> None:
    queue, counted, server = served
    protocol = await connect_async(aio_backend, node.url)
    try:
        first = await amqprpc.client_codec(protocol, queue, amqprpc.Json)
        second = await amqprpc.client_codec(protocol, queue, amqprpc.Json)
        assert await first.call("Counted.Echo", "warm", timeout=5) == 4
        with Alarm(node):
            started = time.monotonic()
            big = asyncio.ensure_future(first.call("Counted.Echo", BIG, timeout=3))
            await asyncio.sleep(0)  # the big publish fills the socket first
            with pytest.raises(amqprpc.RPCTimeout):
                await second.call("Counted.Echo", "small", timeout=1)
            ends_by_deadline(started, 1)  # not held up by the other codec's publish
            with pytest.raises(amqprpc.RPCTimeout):
                await big
            ends_by_deadline(started, 3)
            assert first.blocked and second.blocked
            if aio_backend == "aiormq":  # the broker's own notice, not only stalled writes
                assert tap_of(protocol).blocked
        assert await first.call("Counted.Echo", "after", timeout=30) == 5
        assert not first.blocked
        if aio_backend == "aiormq":  # connection.unblocked
            assert not tap_of(protocol).blocked
        # Each channel is ordered, the two are not: once this reply is back, the server has
        # seen the small request too.
        assert await second.call("Counted.Echo", "after", timeout=30) == 5
        assert counted.runs == 3
        assert server.stats.expired == 2
        await first.close()
        await second.close()
    finally:
        await close_async(protocol)
