"""A broker restart under running servers and clients, on the private broker.

A restart closes every connection (320 CONNECTION_FORCED) and loses the non-durable request
queues. Codecs report the loss; a sync server serving with `reconnect=True`, as
examples/recovering_server.py (driven here) does, connects again and declares its queue
again. `serve_again` below is the recovery pattern for an async server on a caller's
connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika.exceptions
import pytest

import amqprpc
import amqprpc.sync
from amqprpc.aio import AsyncServerCodec
from tests.backends import close_async, connect_async, connect_errors
from tests.brokers import PrivateBroker
from tests.integration.raw import queue_counts, wait_until

pytestmark = pytest.mark.slow  # each restart takes ~9 s

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recovering_server.py"


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("recovering_server", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recovering_server = _load_example()


class Service:
    """Mul answers; Hold keeps a request in flight until `gate` opens."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.gate = threading.Event()

    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    def hold(self, arg: Any) -> Any:
        self.entered.set()
        self.gate.wait(30)
        return arg


@pytest.fixture
def broker(private_broker: PrivateBroker) -> Iterator[PrivateBroker]:
    """The private broker, running again after the test whatever the test did to it."""
    yield private_broker
    private_broker.start()  # a no-op when it runs


def new_queue() -> str:
    return f"amqprpc-restart-{uuid.uuid4().hex[:12]}"


def queue_exists(url: str, name: str) -> bool:
    try:
        queue_counts(url, name)
    except pika.exceptions.ChannelClosedByBroker as exc:
        assert exc.reply_code == 404, exc
        return False
    return True


def served_again(url: str, name: str) -> bool:
    """The queue exists again, empty, with one consumer."""
    return queue_exists(url, name) and queue_counts(url, name) == (0, 1)


def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
    """Run `fn` in a daemon thread; the future gets what it returns or raises."""
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future.set_running_or_notify_cancel()

    def run() -> None:
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            future.set_exception(exc)

    threading.Thread(target=run, daemon=True).start()
    return future


def assert_password_never_logged(caplog: pytest.LogCaptureFixture, password: str) -> None:
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    text = logging.Formatter().format  # message, arguments and traceback, as a handler writes
    leaks = [r for r in caplog.records if password in text(r)]
    assert not leaks, f"the password is in {len(leaks)} log records, first: {text(leaks[0])}"


def test_sync_server_reports_the_loss_and_the_example_recovers(
    broker: PrivateBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plain_queue, name = new_queue(), new_queue()
    plain = amqprpc.sync.server_codec(broker.url, plain_queue, amqprpc.Json)
    plain.register(Service())
    plain_served = in_thread(plain.serve_forever)
    servers: queue.Queue[amqprpc.sync.ServerCodec] = queue.Queue()
    recovering = in_thread(
        recovering_server.serve_with_recovery,
        broker.url,
        name,
        Service(),
        first_delay=0.1,
        max_delay=1.0,
        on_serving=servers.put,
    )
    latest: amqprpc.sync.ServerCodec | None = None
    try:
        latest = servers.get(timeout=15)
        with amqprpc.sync.client_codec(broker.url, name, amqprpc.Json, timeout=10) as client:
            assert client.call("Service.Mul", {"A": 6, "B": 7}) == 42

        broker.restart()

        with pytest.raises(amqprpc.ConnectionLost):  # the plain server reports the loss
            plain_served.result(timeout=30)
        assert not queue_exists(broker.url, plain_queue)  # the restart lost the queues...
        # ...and the example's codec connected again and declared its own again
        assert wait_until(lambda: served_again(broker.url, name), 30)
        assert servers.empty()  # the same codec, serving on
        with amqprpc.sync.client_codec(broker.url, name, amqprpc.Json, timeout=10) as client:
            assert client.call("Service.Mul", {"A": 7, "B": 8}) == 56
    finally:
        plain.close()
        if latest is not None:
            latest.stop()  # stops the example's loop
    assert recovering.result(timeout=30) is None  # stopped, not failed
    logged = [r for r in caplog.records if r.name == "amqprpc.sync.server"]
    lost = {r.levelno for r in logged if "lost" in r.getMessage()}
    assert lost == {logging.ERROR, logging.WARNING}  # the plain server's end, the example's loss
    assert_password_never_logged(caplog, broker.password)


def test_thread_safe_client_fails_calls_in_flight_and_answers_after_the_restart(
    broker: PrivateBroker,
) -> None:
    name, service = new_queue(), Service()
    servers: queue.Queue[amqprpc.sync.ServerCodec] = queue.Queue()
    recovering = in_thread(
        recovering_server.serve_with_recovery,
        broker.url,
        name,
        service,
        first_delay=0.1,
        max_delay=1.0,
        on_serving=servers.put,
    )
    client = amqprpc.sync.client_codec(broker.url, name, amqprpc.Json, timeout=30)
    assert isinstance(client, amqprpc.sync.ThreadSafeClientCodec)
    latest: amqprpc.sync.ServerCodec | None = None
    try:
        latest = servers.get(timeout=15)
        assert client.call("Service.Mul", {"A": 2, "B": 3}) == 6
        in_flight = [client.call_async("Service.Hold", n) for n in range(3)]
        assert service.entered.wait(10)

        broker.stop()

        for future in in_flight:
            with pytest.raises(amqprpc.ConnectionLost):
                future.result(timeout=10)
        with pytest.raises(amqprpc.ConnectionLost):  # the broker is down: not a timeout
            client.call("Service.Mul", {"A": 1, "B": 1})

        broker.start()

        # the same server connects again and declares the queue again
        assert wait_until(lambda: served_again(broker.url, name), 30)
        assert client.call("Service.Mul", {"A": 4, "B": 5}) == 20  # the next call reconnects
    finally:
        service.gate.set()
        client.close()
        if latest is not None:
            latest.stop()
    assert recovering.result(timeout=30) is None


async def serve_again(
    backend: str,
    url: str,
    name: str,
    service: object,
    *,
    first_delay: float = 0.1,
    max_delay: float = 1.0,
) -> tuple[Any, AsyncServerCodec, int]:
    """The async recovery pattern: connect (retrying with backoff while the broker is down or
    still starting), make a new codec (which declares the queue again), register, serve.

    Returns (connection, server, connection attempts).
    """
    delay, attempts = first_delay, 0
    while True:
        attempts += 1
        try:
            protocol = await connect_async(backend, url)
        except connect_errors(backend):
            await asyncio.sleep(delay)  # backoff, not synchronisation: nothing to wait on
            delay = min(delay * 2, max_delay)
            continue
        try:
            server = await amqprpc.server_codec(protocol, name, amqprpc.Json)
            server.register(service)
            await server.started()
        except BaseException:
            await close_async(protocol)
            raise
        return protocol, server, attempts


async def test_async_server_reports_the_loss_and_serves_again(
    broker: PrivateBroker, aio_backend: str
) -> None:
    name = new_queue()
    protocol = await connect_async(aio_backend, broker.url)
    try:
        server = await amqprpc.server_codec(protocol, name, amqprpc.Json)
        server.register(Service())
        await server.started()
        assert server.is_open

        await asyncio.to_thread(broker.stop)

        await asyncio.wait_for(server.wait_closed(), 30)  # the loss is reported...
        assert not server.is_open  # ...and visible
        await server.close()  # harmless on a lost server; frees its thread pool
    finally:
        await close_async(protocol)

    starting = asyncio.ensure_future(asyncio.to_thread(broker.start))
    try:
        protocol, server, attempts = await asyncio.wait_for(
            serve_again(aio_backend, broker.url, name, Service()), 60
        )
        try:
            assert attempts > 1  # it retried while the broker was down or starting
            await starting
            assert queue_counts(broker.url, name) == (0, 1)  # declared again, and consumed
            async with await amqprpc.client_codec(
                protocol, name, amqprpc.Json, timeout=10
            ) as client:
                assert await client.call("Service.Mul", {"A": 6, "B": 9}) == 54
        finally:
            await server.close()
            await close_async(protocol)
    finally:
        await starting
