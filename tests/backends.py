"""The async API's client libraries, for tests that run on each: which are installed, and how
to open and close a connection of each kind (what a user passes to the async codecs).

aiormq 7 needs Python 3.11 or newer, so on 3.10 the async tests run on aioamqp alone; CI
checks that every backend the running Python supports is installed (`expected_backends`).
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = [
    "ASYNC_BACKENDS",
    "async_servers",
    "close_async",
    "connect_async",
    "connect_errors",
    "expected_backends",
    "is_open_async",
    "swallow_requests",
    "transport_of",
]


def expected_backends() -> list[str]:
    """The async client libraries the running Python supports (and CI installs)."""
    return ["aioamqp", "aiormq"] if sys.version_info >= (3, 11) else ["aioamqp"]


ASYNC_BACKENDS = [b for b in expected_backends() if importlib.util.find_spec(b) is not None]


async def connect_async(
    backend: str, url: str, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 30
) -> Any:
    """A connection of `backend`'s kind to `url`: an aioamqp AmqpProtocol or an aiormq
    Connection. Raises the client library's own errors (and asyncio.TimeoutError)."""
    if backend == "aioamqp":
        import aioamqp

        kwargs: dict[str, Any] = {} if ssl_context is None else {"ssl": ssl_context}
        transport, protocol = await asyncio.wait_for(aioamqp.from_url(url, **kwargs), timeout)
        protocol._amqprpc_test_transport = transport
        return protocol
    if backend == "aiormq":
        import aiormq

        return await asyncio.wait_for(aiormq.connect(url, context=ssl_context), timeout)
    raise ValueError(f"unknown async backend {backend!r}")


def is_open_async(connection: Any) -> bool:
    """Whether a connection from `connect_async` is still open."""
    if hasattr(connection, "_amqprpc_test_transport"):
        return bool(connection.state == 1)  # aioamqp.protocol.OPEN
    return bool(connection.is_opened and not connection.is_closed)


async def close_async(connection: Any) -> None:
    """Close a connection from `connect_async`, whatever state it is in."""
    transport = getattr(connection, "_amqprpc_test_transport", None)
    if transport is not None:
        if connection.state == 1:
            try:
                await asyncio.wait_for(connection.close(), 10)
            except Exception:  # noqa: BLE001 - closing a connection the test may have broken
                pass
        transport.close()
        return
    try:
        await asyncio.wait_for(connection.close(), 10)
    except Exception:  # noqa: BLE001 - closing a connection the test may have broken
        pass


# -- helpers for tests that run on each backend -------------------------------------------------


def connect_errors(backend: str) -> tuple[type[BaseException], ...]:
    """What `connect_async(backend, ...)` raises when the broker is down or still starting."""
    if backend == "aioamqp":
        import aioamqp.exceptions

        return (OSError, EOFError, aioamqp.exceptions.AioamqpException)
    import aiormq.exceptions

    return (OSError, aiormq.exceptions.AMQPError)


def transport_of(connection: Any) -> asyncio.Transport:
    """The socket transport under a connection from `connect_async`: to abort it as a dying
    process would, or to look at its TLS. aiormq keeps its stream writer to itself, as a local
    of its writer task (where amqprpc/aio/_rmq_compat.py finds it too)."""
    transport = getattr(connection, "_amqprpc_test_transport", None)
    if transport is None:
        from amqprpc.aio._rmq_compat import _task_local

        transport = _task_local(connection, "_writer_task", "writer").transport
    assert isinstance(transport, asyncio.Transport), transport
    return transport


async def swallow_requests(connection: Any, queue: str) -> Callable[[], Awaitable[None]]:
    """Declare `queue` (Go's flags) on a channel of its own on `connection` and consume it,
    dropping every message unanswered. Returns the coroutine function that stops it."""

    async def drop(*message: Any) -> None:
        return None

    channel = await connection.channel()
    await channel.queue_declare(queue)
    if hasattr(connection, "_amqprpc_test_transport"):  # aioamqp
        await channel.basic_consume(drop, queue_name=queue, no_ack=True)
    else:  # aiormq
        await channel.basic_consume(queue, drop, no_ack=True)
    close: Callable[[], Awaitable[None]] = channel.close
    return close


def async_servers() -> dict[str, Callable[..., Any]]:
    """The async server threads (tests/integration/peers.py), one a backend, under the ids
    the integration tests parametrize with: as `SERVERS` entries beside the sync server."""
    from tests.integration.peers import AsyncServerThread

    return {
        f"async-server-{backend}": functools.partial(AsyncServerThread, backend=backend)
        for backend in ASYNC_BACKENDS
    }
