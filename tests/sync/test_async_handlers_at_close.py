"""The sync server's `async def` handlers at its end: one still running when the grace period
is over, or when the connection goes, is cancelled and unwinds on its own loop. Before, the
loop was stopped and closed under it: "Task was destroyed but it is pending!", its `finally`
run later by the garbage collector in another context (a ValueError resetting the request
deadline), or the handler's coroutine never awaited at all."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from typing import Any

import pytest

import amqprpc
import amqprpc.sync
from amqprpc.testing import MemoryBroker

QUEUE = "slow"


class Slow:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.unwound: list[str] = []

    async def nap(self, seconds: float) -> str:
        self.started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.unwound.append("cancelled")
            raise
        finally:
            self.unwound.append("finally")
        return "rested"


def serve(server: Any) -> threading.Thread:
    def run() -> None:
        try:
            server.serve_forever()
        except amqprpc.ConnectionLost:
            pass  # the cut the test staged

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert server.wait_started(10)
    return thread


def test_a_handler_running_past_the_grace_period_is_cancelled_and_unwinds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = MemoryBroker()
    service = Slow()
    server = amqprpc.sync.server_codec(broker, QUEUE, amqprpc.Json, grace=0.1)
    server.register(service)
    thread = serve(server)
    with amqprpc.sync.client_codec(broker, QUEUE, amqprpc.Json, timeout=30) as client:
        call = client.call_async("Slow.Nap", 30)
        assert service.started.wait(10)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            server.stop()
            thread.join(10)
            gc.collect()
        assert not thread.is_alive()
        assert service.unwound == ["cancelled", "finally"]
        assert not [r for r in caplog.records if "destroyed" in r.getMessage()]
        assert not call.done()  # unanswered and unacked: the broker has it again
        assert broker.depth(QUEUE) == 1  # back in its queue for the next server


def test_a_handler_running_when_the_connection_goes_is_cancelled_and_unwinds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = MemoryBroker()
    service = Slow()
    server = amqprpc.sync.server_codec(broker, QUEUE, amqprpc.Json)
    server.register(service)
    thread = serve(server)
    with amqprpc.sync.client_codec(broker, QUEUE, amqprpc.Json, timeout=30) as client:
        client.call_async("Slow.Nap", 30)
        assert service.started.wait(10)
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            assert broker.cut_consumers(QUEUE) == 1
            thread.join(10)
            gc.collect()
        assert not thread.is_alive()
        assert service.unwound == ["cancelled", "finally"]
        assert not [r for r in caplog.records if "destroyed" in r.getMessage()]
