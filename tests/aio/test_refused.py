"""A refused connection is named "connection refused" by each async backend's own connect
(aioamqp's used to read "connection closed"; on Python 3.10 URLs connect through it)."""

from __future__ import annotations

import socket

import pytest

import amqprpc
from tests.backends import ASYNC_BACKENDS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("backend", ASYNC_BACKENDS)
async def test_a_refused_connection_is_named(backend: str) -> None:
    if backend == "aioamqp":
        from amqprpc.aio._link import AioLink as Link
    else:
        from amqprpc.aio._rmq import RmqLink as Link  # type: ignore[assignment]
    port = free_port()
    with pytest.raises(amqprpc.ConnectionLost) as caught:
        await Link.connect([f"amqp://guest:secret@127.0.0.1:{port}/"])
    assert str(caught.value) == f"cannot connect: 127.0.0.1:{port}: connection refused"
