"""Where the shared scenarios run: a real RabbitMQ (codecs given its URL) or an in-memory
broker (codecs given the MemoryBroker), behind one `Target` interface, plus servers and
clients of either API on it, so each scenario is written once and asserts the same on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pika

import amqprpc
import amqprpc.aio
import amqprpc.sync
from amqprpc.testing import MemoryBroker
from tests.faults import TcpProxy


def _discard(_: object) -> None:
    """Drops a value (a crash's count of cut connections)."""


class Target:
    """What codecs connect to, and what a test may look at or do there."""

    name: str
    where: Any  # what the four codec factories are given

    def declare_queue(self, queue: str) -> None: ...
    def delete_queue(self, queue: str) -> None: ...
    def depth(self, queue: str) -> int: ...
    def consumers(self, queue: str) -> int: ...
    def close(self) -> None: ...

    def crashable(self, queue: str) -> tuple[Any, Callable[[], None]]:
        """Where a server that the test will crash connects, and how to crash it (its
        connection drops with no goodbye, as when its process dies)."""
        raise NotImplementedError


class RealTarget(Target):
    """A real RabbitMQ: the codecs get its URL; looking is done over a pika connection."""

    name = "rabbitmq"

    def __init__(self, url: str) -> None:
        self.where = url
        self._url = url
        self._proxies: list[TcpProxy] = []

    def _channel_op(self, op: Callable[[Any], Any]) -> Any:
        connection = pika.BlockingConnection(pika.URLParameters(self._url))
        try:
            return op(connection.channel())
        finally:
            connection.close()

    def declare_queue(self, queue: str) -> None:
        self._channel_op(lambda ch: ch.queue_declare(queue))

    def delete_queue(self, queue: str) -> None:
        self._channel_op(lambda ch: ch.queue_delete(queue))

    def _declared(self, queue: str) -> Any:
        try:
            return self._channel_op(lambda ch: ch.queue_declare(queue, passive=True)).method
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise

    def depth(self, queue: str) -> int:
        return int(self._declared(queue).message_count)

    def crashable(self, queue: str) -> tuple[Any, Callable[[], None]]:
        proxy = TcpProxy(self._url)
        self._proxies.append(proxy)
        return proxy.url, lambda: _discard(proxy.cut())

    def close(self) -> None:
        for proxy in self._proxies:
            proxy.close()

    def consumers(self, queue: str) -> int:
        declared = self._declared(queue)
        return 0 if declared is None else int(declared.consumer_count)


class MemoryTarget(Target):
    """An in-memory broker: the codecs get the MemoryBroker itself."""

    name = "memory"

    def __init__(self) -> None:
        self.broker = MemoryBroker()
        self.where = self.broker

    def declare_queue(self, queue: str) -> None:
        self.broker.declare_queue(queue)

    def delete_queue(self, queue: str) -> None:
        self.broker.delete_queue(queue)

    def depth(self, queue: str) -> int:
        return self.broker.depth(queue)

    def consumers(self, queue: str) -> int:
        return self.broker.consumers(queue)

    def crashable(self, queue: str) -> tuple[Any, Callable[[], None]]:
        return self.broker, lambda: _discard(self.broker.cut_consumers(queue))

    def close(self) -> None:
        self.broker.close()


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether `predicate` holds within `timeout` seconds (polled: the broker's state has no
    event to wait on from outside)."""
    deadline = time.monotonic() + timeout
    while True:
        if await asyncio.to_thread(predicate):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)


def _serve_until_lost(server: Any) -> None:
    try:
        server.serve_forever()
    except amqprpc.ConnectionLost:
        pass  # crashed by the test


@contextlib.asynccontextmanager
async def serving(target: Target, queue: str, service: object, kind: str, *,
                  where: Any = None, **options: Any) -> AsyncIterator[Any]:  # fmt: skip
    """A server of `kind` ("sync" or "async") serving `service` on `queue` until the block
    ends; on `where` instead of the target's own place (a crashable one) if given."""
    where = target.where if where is None else where
    if kind == "sync":
        server = await asyncio.to_thread(
            amqprpc.sync.server_codec, where, queue, amqprpc.Json, **options
        )
        server.register(service)
        thread = threading.Thread(target=_serve_until_lost, args=(server,), daemon=True)
        thread.start()
        assert await asyncio.to_thread(server.wait_started, 10)
        try:
            yield server
        finally:
            server.stop()
            await asyncio.to_thread(thread.join, 15)
            assert not thread.is_alive()
    else:
        aserver = await amqprpc.aio.server_codec(where, queue, amqprpc.Json, **options)
        aserver.register(service)
        await aserver.started()
        try:
            yield aserver
        finally:
            await aserver.close()


class Caller:
    """A client of either API, called the same way from an async test."""

    def __init__(self, codec: Any, kind: str) -> None:
        self.codec = codec
        self.kind = kind

    async def call(self, method: str, arg: Any = None, **options: Any) -> Any:
        if self.kind == "sync":
            return await asyncio.to_thread(self.codec.call, method, arg, **options)
        return await self.codec.call(method, arg, **options)


@contextlib.asynccontextmanager
async def calling(
    target: Target, queue: str, kind: str, timeout: float = 10
) -> AsyncIterator[Caller]:
    """A client of `kind` ("sync": the thread-safe client; "async") for `queue`."""
    if kind == "sync":
        codec = amqprpc.sync.client_codec(target.where, queue, amqprpc.Json, timeout=timeout)
        try:
            yield Caller(codec, kind)
        finally:
            await asyncio.to_thread(codec.close)
    else:
        acodec = await amqprpc.aio.client_codec(target.where, queue, amqprpc.Json, timeout=timeout)
        try:
            yield Caller(acodec, kind)
        finally:
            await acodec.close()
