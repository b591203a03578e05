"""Deleted queues on the in-memory broker (basic.cancel): the sync server consumes its queue
again, and both sync clients fail calls in flight at once and set up a new reply queue."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import amqprpc
import amqprpc.sync
from amqprpc.testing import MemoryBroker
from tests.integration.raw import wait_until

from .helpers import QUEUE, Arith, ServerThread


def test_the_server_declares_its_deleted_queue_again_and_serves() -> None:
    broker = MemoryBroker()
    server = ServerThread(broker, Arith())
    try:
        broker.delete_queue(QUEUE)
        assert wait_until(lambda: broker.consumers(QUEUE) == 1, timeout=2)
        with amqprpc.sync.client_codec(broker.connection(), QUEUE, amqprpc.Json) as codec:  # type: ignore[call-overload]
            assert codec.call("Arith.Mul", {"A": 3, "B": 4}, timeout=5) == 12
    finally:
        server.stop()
    assert server.error is None


@pytest.mark.parametrize("shape", ["caller-connection", "thread-safe"])
def test_a_deleted_reply_queue_fails_calls_at_once_and_is_replaced(shape: str) -> None:
    broker = MemoryBroker()
    arith = Arith()
    arith.gate.clear()
    server = ServerThread(broker, arith)
    target: Any = broker.connection() if shape == "caller-connection" else broker
    codec: Any = amqprpc.sync.client_codec(target, QUEUE, amqprpc.Json)
    try:
        assert codec.call("Arith.Echo", 1, timeout=5) == 1
        first = codec.reply_queue
        threading.Thread(
            target=lambda: arith.entered.acquire(timeout=5) and broker.delete_queue(first)
        ).start()
        with pytest.raises(amqprpc.ConnectionLost, match="was deleted"):
            codec.call("Arith.Held", 2, timeout=30)
        arith.gate.set()
        assert codec.call("Arith.Echo", 3, timeout=5) == 3
        assert codec.reply_queue != first
    finally:
        codec.close()
        server.stop()
