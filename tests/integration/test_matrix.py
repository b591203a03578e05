"""Every Python client (async on each backend, sync on a caller's connection, thread-safe
sync) against every Python server (async on each backend, sync), in both formats: same cases,
same answers."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.sync
from tests.backends import ASYNC_BACKENDS
from tests.integration.cases import Case, cases_for
from tests.integration.peers import Arith, AsyncServerThread, SyncServerThread

FORMATS = {"json": amqprpc.Json, "msgpack": amqprpc.MsgPack}
SERVERS: dict[str, Any] = {
    **{
        f"async-server-{backend}": functools.partial(AsyncServerThread, backend=backend)
        for backend in ASYNC_BACKENDS
    },
    "sync-server": SyncServerThread,
}


@pytest.fixture(params=list(FORMATS))
def formatter(request: pytest.FixtureRequest) -> Any:
    return FORMATS[request.param]


@pytest.fixture(params=list(SERVERS))
def server(
    request: pytest.FixtureRequest, broker_url: str, queue_name: str, formatter: Any
) -> Iterator[Any]:
    peer = SERVERS[request.param](broker_url, queue_name, formatter, Arith()).start()
    yield peer
    peer.stop()


def check(case: Case, outcome: Any) -> None:
    if case.error is None:
        assert outcome == case.result, case.id
        return
    assert isinstance(outcome, amqprpc.RemoteError), (case.id, outcome)
    assert str(outcome) == case.error, case.id
    assert outcome.remote_type == case.remote_type, case.id


def call_all(call: Any, formatter: Any) -> None:
    for case in cases_for(formatter):
        try:
            outcome = call(case.method, case.arg)
        except amqprpc.RemoteError as err:
            outcome = err
        check(case, outcome)


async def test_async_client(server: Any, amqp: Any, queue_name: str, formatter: Any) -> None:
    """On each async backend's connection (the `amqp` fixture, tests/conftest.py)."""
    async with await amqprpc.client_codec(amqp, queue_name, formatter, timeout=10) as codec:
        for case in cases_for(formatter):
            try:
                outcome = await codec.call(case.method, case.arg)
            except amqprpc.RemoteError as err:
                outcome = err
            check(case, outcome)
        many = await asyncio.gather(*(codec.call("Arith.Echo", i) for i in range(200)))
        assert many == list(range(200))


def test_sync_client_on_callers_connection(
    server: Any, broker_url: str, queue_name: str, formatter: Any
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(broker_url))
    codec = amqprpc.sync.client_codec(connection, queue_name, formatter, timeout=10)
    assert isinstance(codec, amqprpc.sync.ClientCodec)
    call_all(codec.call, formatter)
    assert codec.client("Arith").Mul({"A": 2, "B": 3}) == 6
    assert codec.pending == 0
    codec.close()
    connection.close()


def test_thread_safe_sync_client(
    server: Any, broker_url: str, queue_name: str, formatter: Any
) -> None:
    with amqprpc.sync.client_codec(broker_url, queue_name, formatter, timeout=10) as codec:
        assert isinstance(codec, amqprpc.sync.ThreadSafeClientCodec)
        call_all(codec.call, formatter)
        futures = [codec.client("Arith").Echo.future(i) for i in range(200)]
        assert [f.result(10) for f in futures] == list(range(200))
