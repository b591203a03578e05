"""The async client and server codecs on the in-memory broker: no RabbitMQ, no aioamqp."""

from __future__ import annotations

import asyncio
import time

import pytest

import amqprpc
import amqprpc.aio
from amqprpc.protocol import CallState, Properties, Publish, request_queue_declaration
from amqprpc.testing import MemoryBroker

QUEUE = "testrpc"


class Arith:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Queue[object]()
        self.acks_seen_at_start: list[int] = []

    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    async def div(self, args: dict[str, int]) -> int:
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return args["A"] // args["B"]

    async def held(self, arg: object) -> object:
        self.entered.put_nowait(arg)
        await self.gate.wait()
        return arg


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


async def serve(broker: MemoryBroker, service: object, **options: object):  # type: ignore[no-untyped-def]
    server = await amqprpc.aio.server_codec(broker, QUEUE, amqprpc.Json, **options)  # type: ignore[arg-type]
    server.register(service, name="Arith")
    await server.started()
    return server


async def test_round_trip_concurrent_calls_and_remote_errors(broker: MemoryBroker) -> None:
    server = await serve(broker, Arith())
    client = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)
    results = await asyncio.gather(*(client.call("Arith.Mul", {"A": i, "B": 2}) for i in range(50)))
    assert results == [2 * i for i in range(50)]
    with pytest.raises(amqprpc.RemoteError, match="divide by zero"):
        await client.client("Arith").div({"A": 1, "B": 0})
    assert client.pending == 0
    await client.close()
    await server.close()


async def test_timeouts_share_one_timer_set_by_the_core(broker: MemoryBroker) -> None:
    broker.perform(broker.connect(), request_queue_declaration(QUEUE))
    client = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)
    started = time.monotonic()
    results = await asyncio.gather(
        *(client.call("Arith.Mul", i, timeout=t) for i, t in enumerate([0.3, 0.1, 0.2])),
        return_exceptions=True,
    )
    assert time.monotonic() - started < 1.0
    assert [str(r) for r in results] == [
        "Arith.Mul: no reply within 0.3 s",
        "Arith.Mul: no reply within 0.1 s",
        "Arith.Mul: no reply within 0.2 s",
    ]
    assert all(isinstance(r, amqprpc.RPCTimeout) for r in results)
    assert client.stats.by_state == {CallState.TIMED_OUT: 3}
    await client.close()


async def test_missing_queue_is_unroutable(broker: MemoryBroker) -> None:
    client = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)
    with pytest.raises(amqprpc.Unroutable):
        await client.call("Arith.Mul", 1)
    await client.close()


async def test_a_cancelled_call_leaves_nothing_behind(broker: MemoryBroker) -> None:
    broker.perform(broker.connect(), request_queue_declaration(QUEUE))
    client = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)
    task = asyncio.ensure_future(client.call("Arith.Mul", 1))
    await asyncio.sleep(0)  # let it publish
    assert client.pending == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.pending == 0
    assert client.stats.by_state == {CallState.CANCELLED: 1}
    await client.close()


async def test_close_and_connection_loss_end_calls_in_flight(broker: MemoryBroker) -> None:
    broker.perform(broker.connect(), request_queue_declaration(QUEUE))
    first = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)
    second = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)
    closing = asyncio.ensure_future(first.call("Arith.Mul", 1))
    cut = asyncio.ensure_future(second.call("Arith.Mul", 1))
    await asyncio.sleep(0)
    await first.close()
    broker.cut(next(link for link in broker.links if link.sink is second))
    with pytest.raises(amqprpc.ConnectionLost, match="closed"):
        await closing
    with pytest.raises(amqprpc.ConnectionLost, match="cut"):
        await cut
    with pytest.raises(amqprpc.ConnectionLost):
        await second.call("Arith.Mul", 1)
    assert second.stats.by_state == {CallState.LOST: 1}


async def test_replies_go_only_to_the_codec_that_asked(broker: MemoryBroker) -> None:
    server = await serve(broker, Arith())
    one = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)
    two = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)
    stray = Publish(
        routing_key=one.reply_queue,
        properties=Properties(reply_to="Arith.Mul", correlation_id=one.reply_queue, message_id="7"),
        body=b"1",
    )
    broker.perform(broker.connect(), stray)
    assert await asyncio.gather(one.call("Arith.Mul", {"A": 1, "B": 2}),
                                two.call("Arith.Mul", {"A": 3, "B": 2})) == [2, 6]  # fmt: skip
    assert (one.stats.unknown, two.stats.unknown) == (1, 0)
    for codec in (one, two, server):
        await codec.close()


@pytest.mark.parametrize("ack", ["late", "early"])
async def test_acks_follow_the_mode_and_are_batched(broker: MemoryBroker, ack: str) -> None:
    service = Arith()
    service.gate.clear()
    server = await serve(broker, service, ack=ack)
    client = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)
    calls = [asyncio.ensure_future(client.call("Arith.Held", i)) for i in range(10)]
    for _ in range(10):
        await asyncio.wait_for(service.entered.get(), 5)
    acked_early = [tags for what, tags in broker.log if what == "ack"]
    if ack == "early":
        assert sorted(t for tags in acked_early for t in tags) == list(range(1, 11))
    else:
        assert acked_early == []  # nothing is acked before its reply
    service.gate.set()
    assert await asyncio.gather(*calls) == list(range(10))
    await server.close()
    acked = [tags for what, tags in broker.log if what == "ack"]
    assert sorted(t for tags in acked for t in tags) == list(range(1, 11))  # each exactly once
    if ack == "late":
        assert len(acked) < 10  # answers of one loop turn go as one multiple ack
    await client.close()


async def test_close_drains_handlers_then_stops_consuming(broker: MemoryBroker) -> None:
    service = Arith()
    service.gate.clear()
    server = await serve(broker, service, grace=5)
    client = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)
    call = asyncio.ensure_future(client.call("Arith.Held", "last"))
    await asyncio.wait_for(service.entered.get(), 5)
    closing = asyncio.ensure_future(server.close())
    await asyncio.sleep(0)
    assert broker.consumers(QUEUE) == 0  # cancelled at once: no new requests
    service.gate.set()
    await closing
    assert await call == "last"
    await client.close()


async def test_a_lost_server_channel_is_reported(broker: MemoryBroker) -> None:
    server = await serve(broker, Arith())
    broker.cut(next(link for link in broker.links if link.sink is server))
    await asyncio.wait_for(server.wait_closed(), 5)
    assert not server.is_open


async def test_deleted_queues_are_noticed(broker: MemoryBroker) -> None:
    arith = Arith()
    server = await serve(broker, arith)
    broker.delete_queue(QUEUE)  # the server consumes it again
    for _ in range(100):
        await asyncio.sleep(0.01)  # the fake's cancel, then the re-declare, each a loop turn
        if broker.consumers(QUEUE) == 1:
            break
    assert broker.consumers(QUEUE) == 1
    codec = await amqprpc.aio.client_codec(broker, QUEUE, amqprpc.Json)  # type: ignore[arg-type]
    assert await codec.call("Arith.Mul", {"A": 2, "B": 5}, timeout=5) == 10
    arith.gate.clear()
    first = codec.reply_queue
    call = asyncio.ensure_future(codec.call("Arith.Held", 1, timeout=30))
    await arith.entered.get()
    broker.delete_queue(first)
    with pytest.raises(amqprpc.ConnectionLost, match="was deleted"):
        await asyncio.wait_for(call, 2)
    arith.gate.set()
    assert await codec.call("Arith.Mul", {"A": 3, "B": 5}, timeout=5) == 15
    assert codec.reply_queue != first
    await codec.close()
    await server.close()
