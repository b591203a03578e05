"""amqprpc.testing on its own: every codec factory on a MemoryBroker, the manual clock (a
30-second timeout in no real time), fault injection, crashes and the pytest fixtures.
(tests/scenarios runs the scenarios it shares with a real RabbitMQ.)"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import amqprpc
import amqprpc.aio
import amqprpc.sync
from amqprpc.testing import ManualClock, MemoryBroker
from amqprpc.testing._faults import is_reply

Q = "arith"


class Arith:
    def __init__(self) -> None:
        self.runs = 0
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def mul(self, args: dict[str, int]) -> int:
        self.runs += 1
        return args["A"] * args["B"]

    def hold(self, arg: Any) -> Any:
        self.runs += 1
        self.entered.set()
        assert self.gate.wait(20)
        return arg


def serve_until_lost(server: Any) -> None:
    try:
        server.serve_forever()
    except amqprpc.ConnectionLost:
        pass  # its connection was cut: the crash a test staged


def sync_server(broker: Any, service: object, **options: Any) -> Iterator[Any]:
    server = amqprpc.sync.server_codec(broker, Q, amqprpc.Json, **options)
    server.register(service)
    thread = threading.Thread(target=serve_until_lost, args=(server,), daemon=True)
    thread.start()
    assert server.wait_started(10)
    yield server
    server.stop()
    thread.join(10)


@pytest.fixture
def served(memory_broker: MemoryBroker) -> Iterator[Arith]:
    service = Arith()
    yield from (service for _ in sync_server(memory_broker, service))


@pytest.fixture
async def aserved(memory_broker: MemoryBroker) -> AsyncIterator[Arith]:
    service = Arith()
    server = await amqprpc.aio.server_codec(memory_broker, Q, amqprpc.Json)
    server.register(service)
    await server.started()
    yield service
    await server.close()


# -- every factory takes the broker ------------------------------------------------------


def test_the_sync_factories_take_the_broker_or_a_connection_to_it(
    memory_broker: MemoryBroker, served: Arith
) -> None:
    with amqprpc.sync.client_codec(memory_broker, Q, amqprpc.Json) as threadsafe:
        assert isinstance(threadsafe, amqprpc.sync.ThreadSafeClientCodec)
        assert threadsafe.call("Arith.Mul", {"A": 6, "B": 7}) == 42
    connection = memory_broker.connection()
    with amqprpc.sync.client_codec(connection, Q, amqprpc.Json) as single:
        assert isinstance(single, amqprpc.sync.ClientCodec)
        assert single.call("Arith.Mul", {"A": 2, "B": 3}) == 6
    connection.close()
    assert served.runs == 2


async def test_the_async_factories_take_the_broker_or_a_connection_to_it(
    memory_broker: MemoryBroker, aserved: Arith
) -> None:
    codec = await amqprpc.aio.client_codec(memory_broker, Q, amqprpc.Json)
    assert await codec.call("Arith.Mul", {"A": 6, "B": 7}) == 42
    await codec.close()
    connection = memory_broker.connection()
    codec = await amqprpc.aio.client_codec(connection, Q, amqprpc.Json)
    assert await codec.call("Arith.Mul", {"A": 2, "B": 5}) == 10
    await codec.close()
    connection.close()


# -- the manual clock --------------------------------------------------------------------


def call_in_thread(codec: Any, *args: Any, **options: Any) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def call() -> None:
        try:
            outcome.append(codec.call(*args, **options))
        except amqprpc.RPCError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread, outcome


def wait_for(predicate: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_sync_timeout_on_the_manual_clock_takes_no_real_time(
    manual_clock: ManualClock, memory_broker: MemoryBroker
) -> None:
    memory_broker.declare_queue(Q)  # no server
    started = time.monotonic()
    with amqprpc.sync.client_codec(memory_broker, Q, amqprpc.Json, timeout=30) as codec:
        thread, outcome = call_in_thread(codec, "Arith.Mul", {"A": 1, "B": 2})
        assert wait_for(lambda: memory_broker.depth(Q) == 1)
        memory_broker.advance(29)
        assert memory_broker.depth(Q) == 1 and thread.is_alive()
        memory_broker.advance(1.5)
        thread.join(5)
        assert isinstance(outcome[0], amqprpc.RPCTimeout)
    assert memory_broker.depth(Q) == 0  # its expiration passed too
    assert time.monotonic() - started < 5


async def test_an_async_timeout_on_the_manual_clock_takes_no_real_time(
    manual_clock: ManualClock, memory_broker: MemoryBroker
) -> None:
    memory_broker.declare_queue(Q)
    codec = await amqprpc.aio.client_codec(memory_broker, Q, amqprpc.Json, timeout=30)
    started = time.monotonic()
    call = asyncio.ensure_future(codec.call("Arith.Mul", {"A": 1, "B": 2}))
    await asyncio.sleep(0)
    assert memory_broker.depth(Q) == 1
    memory_broker.advance(29.9)
    await asyncio.sleep(0)
    assert not call.done()
    memory_broker.advance(0.2)
    with pytest.raises(amqprpc.RPCTimeout):
        await call
    assert time.monotonic() - started < 5
    await codec.close()


def test_advance_needs_a_manual_clock(memory_broker: MemoryBroker) -> None:
    with pytest.raises(TypeError, match="ManualClock"):
        memory_broker.advance(1)


def test_a_clock_does_not_go_back() -> None:
    with pytest.raises(ValueError):
        ManualClock().advance(-1)


# -- faults ------------------------------------------------------------------------------


async def test_a_dropped_reply_times_out_and_the_next_call_is_answered(
    manual_clock: ManualClock, memory_broker: MemoryBroker, aserved: Arith
) -> None:
    codec = await amqprpc.aio.client_codec(memory_broker, Q, amqprpc.Json, timeout=10)
    memory_broker.faults.drop_replies(1)
    call = asyncio.ensure_future(codec.call("Arith.Mul", {"A": 1, "B": 2}))
    assert await wait_async(lambda: aserved.runs == 1)
    memory_broker.advance(11)
    with pytest.raises(amqprpc.RPCTimeout):
        await call
    assert await codec.call("Arith.Mul", {"A": 3, "B": 3}) == 9
    await codec.close()


async def wait_async(predicate: Any, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.001)
    return True


async def test_a_late_reply_is_answered_within_the_deadline_or_ignored_after_it(
    manual_clock: ManualClock, memory_broker: MemoryBroker, aserved: Arith
) -> None:
    codec = await amqprpc.aio.client_codec(memory_broker, Q, amqprpc.Json, timeout=10)
    memory_broker.faults.delay_replies(5, count=2)
    early = asyncio.ensure_future(codec.call("Arith.Mul", {"A": 2, "B": 2}))
    late = asyncio.ensure_future(codec.call("Arith.Mul", {"A": 3, "B": 3}, timeout=4))
    assert await wait_async(lambda: aserved.runs == 2)
    memory_broker.advance(4.5)
    with pytest.raises(amqprpc.RPCTimeout):
        await late
    assert not early.done()
    memory_broker.advance(1)
    assert await early == 4  # the late reply to `late` came too, and was ignored
    assert await codec.call("Arith.Mul", {"A": 5, "B": 5}) == 25
    await codec.close()


def test_a_duplicated_reply_is_used_once(memory_broker: MemoryBroker, served: Arith) -> None:
    memory_broker.faults.duplicate_replies(count=None)
    with amqprpc.sync.client_codec(memory_broker, Q, amqprpc.Json) as codec:
        assert [codec.call("Arith.Mul", {"A": n, "B": 2}) for n in range(5)] == [0, 2, 4, 6, 8]
    published = [p for what, p in memory_broker.log if what == "publish"]
    replies = [p for p in published if is_reply(p)]  # type: ignore[arg-type]
    assert len(replies) == 5 and served.runs == 5


async def test_a_cut_mid_call_ends_it_with_connection_lost(
    memory_broker: MemoryBroker, aserved: Arith
) -> None:
    codec = await amqprpc.aio.client_codec(memory_broker, Q, amqprpc.Json)
    memory_broker.faults.cut_client_on_request(queue=Q)
    with pytest.raises(amqprpc.ConnectionLost):
        await codec.call("Arith.Mul", {"A": 1, "B": 2})
    await codec.close()


def test_the_threadsafe_client_connects_again_after_a_cut(
    memory_broker: MemoryBroker, served: Arith
) -> None:
    with amqprpc.sync.client_codec(memory_broker, Q, amqprpc.Json) as codec:
        memory_broker.faults.cut_client_on_request()
        with pytest.raises(amqprpc.ConnectionLost):
            codec.call("Arith.Mul", {"A": 1, "B": 2})
        assert codec.call("Arith.Mul", {"A": 2, "B": 2}) == 4


@pytest.mark.parametrize(("ack", "answered"), [("late", True), ("early", False)])
def test_a_crashed_servers_request_goes_to_another_with_late_acks(
    manual_clock: ManualClock, memory_broker: MemoryBroker, ack: str, answered: bool
) -> None:
    crashing, other = Arith(), Arith()
    crashing.gate.clear()
    first = sync_server(memory_broker, crashing, ack=ack)
    next(first)
    with amqprpc.sync.client_codec(memory_broker, Q, amqprpc.Json, timeout=10) as codec:
        thread, outcome = call_in_thread(codec, "Arith.Hold", "x")
        assert crashing.entered.wait(10)
        assert memory_broker.cut_consumers(Q) == 1  # the server's process dies holding it
        second = sync_server(memory_broker, other, ack=ack)
        next(second)
        if answered:
            thread.join(10)  # redelivered to the other server, which answers
            assert outcome == ["x"] and other.runs == 1
        else:
            assert memory_broker.depth(Q) == 0  # acked on receipt: lost with its server
            memory_broker.advance(11)
            thread.join(10)
            assert isinstance(outcome[0], amqprpc.RPCTimeout) and other.runs == 0
        next(second, None)
    crashing.gate.set()
    next(first, None)


def test_requests_go_round_robin_to_the_servers_of_a_queue(memory_broker: MemoryBroker) -> None:
    services = [Arith(), Arith()]
    running = [sync_server(memory_broker, service) for service in services]
    for server in running:
        next(server)
    with amqprpc.sync.client_codec(memory_broker, Q, amqprpc.Json) as codec:
        for n in range(10):
            assert codec.call("Arith.Mul", {"A": n, "B": 1}) == n
    assert [service.runs for service in services] == [5, 5]
    for server in running:
        next(server, None)


def test_faults_need_a_positive_count_and_delay(memory_broker: MemoryBroker) -> None:
    with pytest.raises(ValueError):
        memory_broker.faults.drop_replies(0)
    with pytest.raises(ValueError):
        memory_broker.faults.delay_replies(0)
    memory_broker.faults.drop_replies(None)
    memory_broker.faults.clear()
    assert not memory_broker.faults.on_reply().drop


def test_a_refusing_broker_fails_connects_with_connection_lost(
    memory_broker: MemoryBroker,
) -> None:
    memory_broker.refuse_connections = "down for the test"
    with amqprpc.sync.client_codec(memory_broker, Q, amqprpc.Json, timeout=2) as codec:
        with pytest.raises(amqprpc.ConnectionLost, match="down for the test"):
            codec.call("Arith.Mul", {"A": 1, "B": 2})
