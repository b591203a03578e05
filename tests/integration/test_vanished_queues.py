"""Vanished queues are noticed (the broker's basic.cancel), on the private broker: a server
whose request queue is deleted declares it again and goes on serving, and a client whose
reply queue is deleted fails its calls in flight with ConnectionLost at once and sets up a
new reply queue for the next call. For both servers and all three clients, the async ones on
each backend.

Queues are deleted with `rabbitmqctl delete_queue`, as an operator would: a reply queue is
exclusive, so no other connection may delete it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pika.exceptions
import pytest

import amqprpc
import amqprpc.sync
from tests.backends import async_servers, close_async, connect_async
from tests.brokers import PrivateBroker
from tests.integration.peers import Arith, SyncServerThread
from tests.integration.raw import wait_until

SERVERS = {**async_servers(), "sync-server": SyncServerThread}


@pytest.fixture
def node(private_broker: PrivateBroker) -> PrivateBroker:
    private_broker.start()  # a no-op unless a restart test left it stopped
    return private_broker


@pytest.fixture
def queue() -> str:
    return f"amqprpc-test-{uuid.uuid4().hex[:12]}"


def consumers(url: str, queue: str) -> int | None:
    """The queue's consumer count; None when it does not exist."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.consumer_count)
    except pika.exceptions.ChannelClosedByBroker:
        return None
    finally:
        connection.close()


@pytest.mark.parametrize("kind", list(SERVERS))
def test_a_server_whose_queue_is_deleted_serves_it_again(
    node: PrivateBroker, queue: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = SERVERS[kind](node.url, queue, amqprpc.Json, Arith()).start()
    try:
        with amqprpc.sync.client_codec(node.url, queue, amqprpc.Json, timeout=5) as codec:
            assert codec.call("Arith.Mul", {"A": 2, "B": 3}) == 6
            with caplog.at_level(logging.WARNING):
                node.ctl("delete_queue", queue)
                deleted = time.monotonic()
                assert wait_until(lambda: consumers(node.url, queue) == 1, timeout=2)
            assert time.monotonic() - deleted < 2
            assert codec.call("Arith.Mul", {"A": 4, "B": 5}) == 20  # answered again
        assert any("was deleted" in r.getMessage() for r in caplog.records)
        assert server.server.is_open if kind.startswith("async-server") else True
    finally:
        server.stop()


class Holder:
    """Holds each Hold call until `gate` opens."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def hold(self, arg: Any) -> Any:
        self.entered.set()
        self.gate.wait(20)
        return arg

    def echo(self, arg: Any) -> Any:
        return arg


@pytest.fixture
def held(node: PrivateBroker, queue: str) -> Iterator[Holder]:
    holder = Holder()
    server = SyncServerThread(node.url, queue, amqprpc.Json, holder).start()
    yield holder
    holder.gate.set()
    server.stop()


def delete_reply_queue_while_held(node: PrivateBroker, holder: Holder, reply_queue: str) -> float:
    assert holder.entered.wait(10)
    node.ctl("delete_queue", reply_queue)
    return time.monotonic()


@pytest.mark.parametrize("client", ["caller-connection", "thread-safe"])
def test_a_sync_client_whose_reply_queue_is_deleted_fails_fast_and_recovers(
    node: PrivateBroker, queue: str, held: Holder, client: str
) -> None:
    if client == "thread-safe":
        codec: Any = amqprpc.sync.client_codec(node.url, queue, amqprpc.Json, timeout=30)
        codec.call("Holder.Echo", 0)  # connected, reply queue declared
        first = codec.reply_queue
        future = codec.call_async("Holder.Hold", 1)
        deleted = delete_reply_queue_while_held(node, held, first)
        with pytest.raises(amqprpc.ConnectionLost, match="was deleted"):
            future.result(5)
        assert time.monotonic() - deleted < 1.0
        held.gate.set()
        assert codec.call("Holder.Echo", 2) == 2  # a new reply queue
        assert codec.reply_queue != first
        codec.close()
        return
    connection = pika.BlockingConnection(pika.URLParameters(node.url))
    codec = amqprpc.sync.client_codec(connection, queue, amqprpc.Json, timeout=30)
    first = codec.reply_queue
    deleted: list[float] = []
    deleting = threading.Thread(
        target=lambda: deleted.append(delete_reply_queue_while_held(node, held, first))
    )
    deleting.start()
    with pytest.raises(amqprpc.ConnectionLost, match="was deleted"):
        codec.call("Holder.Hold", 1)
    failed = time.monotonic()
    deleting.join(30)
    assert failed - deleted[0] < 1.0  # rabbitmqctl may still be exiting when the call fails
    held.gate.set()
    assert codec.call("Holder.Echo", 2) == 2
    assert codec.reply_queue != first
    codec.close()
    connection.close()


async def test_an_async_client_whose_reply_queue_is_deleted_fails_fast_and_recovers(
    node: PrivateBroker, queue: str, held: Holder, aio_backend: str
) -> None:
    protocol = await connect_async(aio_backend, node.url)
    try:
        codec = await amqprpc.client_codec(protocol, queue, amqprpc.Json, timeout=30)
        first = codec.reply_queue
        call = asyncio.ensure_future(codec.call("Holder.Hold", 1))
        deleted = await asyncio.to_thread(delete_reply_queue_while_held, node, held, first)
        with pytest.raises(amqprpc.ConnectionLost, match="was deleted"):
            await asyncio.wait_for(call, 5)
        assert time.monotonic() - deleted < 1.0
        held.gate.set()
        assert await codec.call("Holder.Echo", 2) == 2
        assert codec.reply_queue != first
        await codec.close()
    finally:
        await close_async(protocol)
