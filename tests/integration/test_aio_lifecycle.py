"""The async API (on aioamqp and on aiormq) against a real RabbitMQ: handlers and concurrency,
timeouts, servers and connections that die, and closing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pika
import pytest

import amqprpc
from tests.backends import close_async, connect_async, transport_of
from tests.integration.raw import queue_counts, wait_until


async def test_sync_handlers_do_not_block_the_loop(amqp: Any, queue_name: str) -> None:
    release = threading.Event()
    entered = threading.Event()

    def block(arg: Any) -> str:
        entered.set()
        assert release.wait(10)
        return "unblocked"

    async def ping(arg: Any) -> str:
        return "pong"

    server = await amqprpc.server_codec(amqp, queue_name, amqprpc.Json, max_workers=2)
    server.register(block, name="S.Block")
    server.register(ping, name="S.Ping")
    codec = await amqprpc.client_codec(amqp, queue_name, amqprpc.Json, timeout=10)
    blocked = asyncio.ensure_future(codec.call("S.Block", None))
    await asyncio.to_thread(entered.wait, 10)
    assert await codec.call("S.Ping", None) == "pong"  # answered while Block holds a thread
    assert not blocked.done()
    release.set()
    assert await blocked == "unblocked"
    await codec.close()
    await server.close()


async def test_max_concurrency_bounds_requests_in_progress(
    amqp: Any, queue_name: str, broker_url: str
) -> None:
    active = 0
    peak = 0
    gate = asyncio.Event()
    two_in = asyncio.Event()

    async def work(arg: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active == 2:
            two_in.set()
        await gate.wait()
        active -= 1
        return arg

    server = await amqprpc.server_codec(amqp, queue_name, amqprpc.Json, max_concurrency=2)
    server.register(work, name="S.Work")
    codec = await amqprpc.client_codec(amqp, queue_name, amqprpc.Json, timeout=20)
    calls = [asyncio.ensure_future(codec.call("S.Work", i)) for i in range(5)]
    await asyncio.wait_for(two_in.wait(), 10)
    # The other three stay in the queue: the broker holds them back (prefetch 2).
    assert await asyncio.to_thread(wait_until, lambda: queue_counts(broker_url, queue_name)[0] == 3)
    assert peak == 2
    gate.set()
    assert await asyncio.gather(*calls) == [0, 1, 2, 3, 4]
    assert peak == 2
    await codec.close()
    await server.close()


@pytest.mark.parametrize("ack", ["late", "early"])
async def test_server_dying_mid_call(
    broker_url: str, queue_name: str, ack: str, aio_backend: str
) -> None:
    """ack="late": another server answers the redelivered request; "early": it is lost."""
    entered = asyncio.Event()

    async def hang(arg: Any) -> str:
        entered.set()
        await asyncio.Event().wait()
        return "never"

    async def answer(arg: Any) -> str:
        return "second server"

    dying = await connect_async(aio_backend, broker_url)
    s1 = await amqprpc.server_codec(dying, queue_name, amqprpc.Json, ack=ack)  # type: ignore[arg-type]
    s1.register(hang, name="S.Work")
    await s1.started()
    conn = await connect_async(aio_backend, broker_url)
    codec = await amqprpc.client_codec(conn, queue_name, amqprpc.Json, timeout=3)
    call = asyncio.ensure_future(codec.call("S.Work", 1))
    await asyncio.wait_for(entered.wait(), 10)
    transport_of(dying).abort()  # the first server's connection dies with the request in its hands
    s2 = await amqprpc.server_codec(conn, queue_name, amqprpc.Json)
    s2.register(answer, name="S.Work")
    if ack == "late":
        assert await call == "second server"
    else:
        with pytest.raises(amqprpc.RPCTimeout):
            await call
    await s2.close()
    await codec.close()
    await close_async(conn)
    await close_async(dying)


async def test_timeouts_expiration_and_pending_cleanup(
    amqp: Any, queue_name: str, broker_url: str
) -> None:
    # A queue with no consumer: the request waits there, carrying its expiration.
    server = await amqprpc.server_codec(amqp, queue_name, amqprpc.Json)  # declares, no consume
    codec = await amqprpc.client_codec(amqp, queue_name, amqprpc.Json, timeout=0.3)
    with pytest.raises(amqprpc.RPCTimeout) as err:
        await codec.call("S.M", 1)
    assert isinstance(err.value, TimeoutError)
    with pytest.raises(amqprpc.RPCTimeout):
        await codec.call("S.M", 1, timeout=0.2)
    assert codec.pending == 0

    def peek() -> Any:
        with pika.BlockingConnection(pika.URLParameters(broker_url)) as conn:
            return conn.channel().basic_get(queue_name, auto_ack=True)

    # The broker dropped both expired requests: nothing is left behind in the queue.
    assert await asyncio.to_thread(wait_until, lambda: queue_counts(broker_url, queue_name)[0] == 0)
    slow = asyncio.ensure_future(codec.call("S.M", 1, timeout=30))
    assert await asyncio.to_thread(wait_until, lambda: queue_counts(broker_url, queue_name)[0] == 1)
    _method, props, _ = await asyncio.to_thread(peek)
    assert props.expiration == "30000"
    assert props.reply_to == "S.M" and props.correlation_id == codec.reply_queue
    assert props.message_id.isdecimal()
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    assert codec.pending == 0  # cancelling the waiting task removed its entry
    await codec.close()
    await server.close()


async def test_connection_loss_fails_calls_promptly(
    broker_url: str, queue_name: str, aio_backend: str
) -> None:
    sconn = await connect_async(aio_backend, broker_url)
    gate = asyncio.Event()

    async def hold(arg: Any) -> Any:
        await gate.wait()
        return arg

    server = await amqprpc.server_codec(sconn, queue_name, amqprpc.Json)
    server.register(hold, name="S.Hold")
    await server.started()
    cconn = await connect_async(aio_backend, broker_url)
    codec = await amqprpc.client_codec(cconn, queue_name, amqprpc.Json, timeout=30)
    calls = [asyncio.ensure_future(codec.call("S.Hold", i)) for i in range(50)]
    await asyncio.to_thread(wait_until, lambda: server.in_flight == 50)
    transport_of(cconn).abort()
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 5)
    assert all(isinstance(r, amqprpc.ConnectionLost) for r in results)
    assert codec.pending == 0
    with pytest.raises(amqprpc.ConnectionLost):
        await asyncio.wait_for(codec.call("S.Hold", 1), 5)
    gate.set()
    await server.close()
    await close_async(sconn)
    await close_async(cconn)


async def test_close_ends_pending_calls_and_drains_the_server(
    amqp: Any, queue_name: str, broker_url: str
) -> None:
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def hold(arg: Any) -> Any:
        entered.set()
        await gate.wait()
        return arg

    async with await amqprpc.server_codec(amqp, queue_name, amqprpc.Json) as server:
        server.register(hold, name="S.Hold")
        async with await amqprpc.client_codec(amqp, queue_name, amqprpc.Json) as codec:
            first = asyncio.ensure_future(codec.call("S.Hold", "first"))
            await asyncio.wait_for(entered.wait(), 10)
            closing = asyncio.ensure_future(server.close(grace=10))
            # The server stopped consuming but lets its handler finish.
            assert await asyncio.to_thread(
                wait_until, lambda: queue_counts(broker_url, queue_name)[1] == 0
            )
            assert not closing.done()
            gate.set()
            await closing
            assert await first == "first"
            abandoned = asyncio.ensure_future(codec.call("S.Hold", "second"))
        with pytest.raises(amqprpc.ConnectionLost):
            await abandoned
    assert server.in_flight == 0
