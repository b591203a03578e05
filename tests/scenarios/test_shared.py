"""Scenarios that run on a real RabbitMQ and on the in-memory broker with the same
expectations: calls and errors, routing, expiry, correlation under concurrency, consumers,
prefetch, queue deletion, deadlines and a crashed server's request, for every client kind
against every server kind."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import amqprpc
from tests.scenarios.harness import Target, calling, eventually, serving


@pytest.fixture
def queue(target: Target) -> Iterator[str]:
    name = f"amqprpc-scenario-{uuid.uuid4().hex[:12]}"
    yield name
    if target.name == "rabbitmq":
        target.delete_queue(name)


class Arith:
    """The service every scenario serves."""

    def __init__(self) -> None:
        self.runs = 0
        self.entered = threading.Semaphore(0)
        self.gate = threading.Event()
        self.gate.set()

    def mul(self, args: dict[str, int]) -> int:
        self.runs += 1
        return args["A"] * args["B"]

    def fail(self, arg: Any) -> None:
        raise ValueError(f"no good: {arg}")

    def hold(self, arg: Any) -> Any:
        self.entered.release()
        assert self.gate.wait(20)
        return arg

    def deadline(self, arg: Any) -> float | None:
        return amqprpc.request_deadline()


async def test_a_call_is_answered(
    target: Target, queue: str, client_kind: str, server_kind: str
) -> None:
    async with serving(target, queue, Arith(), server_kind), calling(target, queue, client_kind) as client:  # noqa: E501
        assert await client.call("Arith.Mul", {"A": 6, "B": 7}) == 42


async def test_a_handler_error_reaches_the_caller(
    target: Target, queue: str, client_kind: str, server_kind: str
) -> None:
    async with serving(target, queue, Arith(), server_kind), calling(target, queue, client_kind) as client:  # noqa: E501
        with pytest.raises(amqprpc.RemoteError) as caught:
            await client.call("Arith.Fail", "x")
        assert str(caught.value) == "no good: x"


async def test_an_unknown_method_is_a_remote_error_naming_it(
    target: Target, queue: str, client_kind: str
) -> None:
    async with serving(target, queue, Arith(), "async"), calling(target, queue, client_kind) as client:  # noqa: E501
        with pytest.raises(amqprpc.RemoteError, match="Nope"):
            await client.call("Nope.Mul", {"A": 1, "B": 2})


async def test_a_queue_that_does_not_exist_is_unroutable_at_once(
    target: Target, queue: str, client_kind: str
) -> None:
    async with calling(target, queue, client_kind, timeout=30) as client:
        started = time.monotonic()
        with pytest.raises(amqprpc.Unroutable):
            await client.call("Arith.Mul", {"A": 1, "B": 2})
        assert time.monotonic() - started < 5  # not the 30 s timeout


async def test_with_no_server_a_call_times_out_and_its_request_expires_unrun(
    target: Target, queue: str, client_kind: str, server_kind: str
) -> None:
    target.declare_queue(queue)
    async with calling(target, queue, client_kind) as client:
        with pytest.raises(amqprpc.RPCTimeout):
            await client.call("Arith.Mul", {"A": 1, "B": 2}, timeout=0.3)
        assert await eventually(lambda: target.depth(queue) == 0)  # its expiration passed
        service = Arith()
        async with serving(target, queue, service, server_kind):
            assert await client.call("Arith.Mul", {"A": 3, "B": 4}) == 12
        assert service.runs == 1  # the expired request never ran


async def test_concurrent_calls_each_get_their_own_result(
    target: Target, queue: str, client_kind: str, server_kind: str
) -> None:
    async with serving(target, queue, Arith(), server_kind), calling(target, queue, client_kind) as client:  # noqa: E501
        results = await asyncio.gather(
            *(client.call("Arith.Mul", {"A": n, "B": 3}) for n in range(40))
        )
        assert results == [n * 3 for n in range(40)]


async def test_a_server_is_one_consumer_until_it_closes(
    target: Target, queue: str, server_kind: str
) -> None:
    async with serving(target, queue, Arith(), server_kind):
        assert target.consumers(queue) == 1
    assert await eventually(lambda: target.consumers(queue) == 0)


async def test_max_concurrency_bounds_the_requests_a_server_holds(
    target: Target, queue: str, server_kind: str, client_kind: str
) -> None:
    service = Arith()
    service.gate.clear()
    async with serving(target, queue, service, server_kind, max_concurrency=2), calling(
        target, queue, client_kind
    ) as client:
        calls = [asyncio.ensure_future(client.call("Arith.Hold", n)) for n in range(5)]
        for _ in range(2):
            assert await asyncio.to_thread(service.entered.acquire, True, 10)
        assert await eventually(lambda: target.depth(queue) == 3)
        assert not service.entered.acquire(timeout=0.2)  # a third is not started
        service.gate.set()
        assert await asyncio.gather(*calls) == list(range(5))


async def test_a_deleted_request_queue_is_declared_and_served_again(
    target: Target, queue: str, server_kind: str
) -> None:
    async with serving(target, queue, Arith(), server_kind), calling(target, queue, "async") as client:  # noqa: E501
        assert await client.call("Arith.Mul", {"A": 2, "B": 3}) == 6
        target.delete_queue(queue)
        assert await eventually(lambda: target.consumers(queue) == 1)
        assert await client.call("Arith.Mul", {"A": 4, "B": 5}) == 20


async def test_a_handler_sees_the_callers_deadline(
    target: Target, queue: str, client_kind: str, server_kind: str
) -> None:
    async with serving(target, queue, Arith(), server_kind), calling(target, queue, client_kind) as client:  # noqa: E501
        before = time.time()
        deadline = await client.call("Arith.Deadline", None, timeout=5)
        assert before + 4 < deadline <= time.time() + 5.002  # carried in whole milliseconds


@pytest.mark.parametrize(("ack", "rerun"), [("late", True), ("early", False)])
async def test_a_crashed_servers_request_is_run_by_the_next_server_only_with_late_acks(
    target: Target, queue: str, server_kind: str, ack: str, rerun: bool
) -> None:
    crashing, other = Arith(), Arith()
    crashing.gate.clear()
    where, crash = target.crashable(queue)
    async with calling(target, queue, "async") as client:
        async with serving(target, queue, crashing, server_kind, where=where, ack=ack):
            call = asyncio.ensure_future(client.call("Arith.Hold", "x", timeout=3))
            assert await asyncio.to_thread(crashing.entered.acquire, True, 10)
            crash()
            assert await eventually(lambda: target.consumers(queue) == 0)
            async with serving(target, queue, other, server_kind, ack=ack):
                if rerun:
                    assert await call == "x"  # redelivered, and answered by the other
                else:
                    with pytest.raises(amqprpc.RPCTimeout):
                        await call  # acked on receipt: it died with its server
            crashing.gate.set()
