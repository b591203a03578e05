"""Servers that connect again by themselves: `serve_forever(reconnect=True)` on the sync server,
`server_codec(urls, ..., reconnect=True)` on the async one.

The servers connect through a fault proxy (tests/faults.py) whose `cut()` resets their
connection, after a dead address first in their URL list. A request a server was running
when its connection went is delivered again (ack="late") and answered; the handler that was
running meanwhile still answers too, without acking anything on the new channel.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.aio
import amqprpc.sync
from tests.faults import TcpProxy
from tests.integration.raw import queue_counts, wait_until


class Gated:
    """Hold blocks until `gate` opens; `entered` counts its runs."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.lock = threading.Condition()
        self.entered = 0

    def hold(self, arg: Any) -> Any:
        with self.lock:
            self.entered += 1
            self.lock.notify_all()
        self.gate.wait(30)
        return arg

    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def wait_entered(self, count: int, timeout: float = 15) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: self.entered >= count, timeout)


@pytest.fixture
def proxy(broker_url: str) -> Iterator[TcpProxy]:
    p = TcpProxy(broker_url)
    yield p
    p.close()


def dead_url(broker_url: str) -> str:
    """The broker's URL with a port nobody listens on (refused at once)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    creds = broker_url.split("//", 1)[1].rpartition("@")[0]
    return f"amqp://{creds}@127.0.0.1:{port}/"


def through_a_cut(
    client: amqprpc.sync.ThreadSafeClientCodec, service: Gated, proxy: TcpProxy
) -> None:
    """A call in flight while the server's connection is cut is answered once it serves again."""
    assert client.call("Gated.Mul", {"A": 6, "B": 7}) == 42
    held = client.call_async("Gated.Hold", "held")
    assert service.wait_entered(1)
    assert proxy.cut() >= 1
    assert service.wait_entered(2)  # connected again, and the request came back
    service.gate.set()
    assert held.result(15) == "held"
    assert client.call("Gated.Mul", {"A": 2, "B": 3}) == 6


def test_the_sync_server_serves_on_after_losing_its_connection(
    broker_url: str, proxy: TcpProxy, queue_name: str
) -> None:
    service = Gated()
    server = amqprpc.sync.server_codec([dead_url(broker_url), proxy.url], queue_name, amqprpc.Json)
    server.register(service)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            server.serve_forever(reconnect=True)
        except BaseException as exc:  # noqa: BLE001 - the test asserts there was none
            errors.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        assert server.wait_started(15)
        with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=20) as c:
            assert isinstance(c, amqprpc.sync.ThreadSafeClientCodec)
            through_a_cut(c, service, proxy)
            assert wait_until(lambda: queue_counts(broker_url, queue_name) == (0, 1))
    finally:
        service.gate.set()
        server.stop()
        thread.join(15)
    assert not thread.is_alive() and errors == []
    assert proxy.accepted == 2


async def test_the_async_server_serves_on_after_losing_its_connection(
    broker_url: str, proxy: TcpProxy, queue_name: str
) -> None:
    service = Gated()
    server = await amqprpc.aio.server_codec(
        [dead_url(broker_url), proxy.url], queue_name, amqprpc.Json, reconnect=True
    )
    server.register(service)
    await server.started()
    closed = asyncio.ensure_future(server.wait_closed())
    try:
        with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=20) as c:
            assert isinstance(c, amqprpc.sync.ThreadSafeClientCodec)
            await asyncio.to_thread(through_a_cut, c, service, proxy)
        assert not closed.done()  # a lost connection does not end a reconnecting server
        assert server.is_open
    finally:
        service.gate.set()
        await server.close()
    await asyncio.wait_for(closed, 5)
    assert proxy.accepted == 2
    assert queue_counts(broker_url, queue_name) == (0, 0)  # close() closed its connection too


async def test_the_async_url_form_without_reconnect_reports_the_loss(
    broker_url: str, proxy: TcpProxy, queue_name: str
) -> None:
    server = await amqprpc.aio.server_codec(proxy.url, queue_name, amqprpc.Json)
    server.register(Gated())
    await server.started()
    proxy.cut()
    await asyncio.wait_for(server.wait_closed(), 5)
    assert not server.is_open
    await server.close()


async def test_reconnect_needs_urls(broker_url: str, queue_name: str, amqp: Any) -> None:
    with pytest.raises(amqprpc.UsageError, match="reconnect=True needs"):
        await amqprpc.aio.server_codec(amqp, queue_name, amqprpc.Json, reconnect=True)
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    try:
        server = amqprpc.sync.server_codec(connection, queue_name, amqprpc.Json)
        server.register(Gated())
        with pytest.raises(amqprpc.UsageError, match="reconnect=True needs"):
            server.serve_forever(reconnect=True)
        server.close()
    finally:
        connection.close()


async def test_an_async_server_names_every_address_it_could_not_reach(broker_url: str) -> None:
    urls = [dead_url(broker_url), dead_url(broker_url)]
    with pytest.raises(amqprpc.ConnectionLost) as info:
        await amqprpc.aio.server_codec(urls, "q", amqprpc.Json)
    text = str(info.value)
    for url in urls:
        assert url.rpartition(":")[0].rpartition("@")[2] in text
        assert url.rsplit(":", 1)[1].rstrip("/") in text
    password = broker_url.split("//", 1)[1].rpartition("@")[0].partition(":")[2]
    assert password not in text
