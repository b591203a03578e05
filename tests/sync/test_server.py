"""The sync server (`ServerCodec`) on the in-memory broker: acks as the core decides them."""

from __future__ import annotations

import concurrent.futures

import pytest

import amqprpc
import amqprpc.sync
from amqprpc.protocol import Properties, Publish, request_queue_declaration
from amqprpc.testing import MemoryBroker

from .helpers import QUEUE, Arith, ServerThread


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


def replies_and_acks(broker: MemoryBroker, reply_queue: str) -> list[tuple[str, object]]:
    """The broker's log of the server's side: replies to `reply_queue`, acks and rejects."""
    return [
        (what, detail)
        for what, detail in broker.log
        if what != "publish" or (isinstance(detail, Publish) and detail.routing_key == reply_queue)
    ]


@pytest.mark.parametrize("ack", ["late", "early"])
def test_each_request_is_acked_once_in_the_order_its_mode_says(
    broker: MemoryBroker, ack: str
) -> None:
    service = Arith()
    server = ServerThread(broker, service, ack=ack)
    client = amqprpc.sync.client_codec(broker, QUEUE, amqprpc.Json)
    try:
        assert client.call("Arith.Mul", {"A": 6, "B": 7}) == 42
        log = replies_and_acks(broker, client.reply_queue)
        assert [what for what, _ in log] == (["publish", "ack"] if ack == "late" else
                                             ["ack", "publish"])  # fmt: skip
        assert log[1 if ack == "late" else 0][1] == [1]
    finally:
        client.close()
        server.stop()


def test_late_acks_go_after_the_replies_each_tag_once(broker: MemoryBroker) -> None:
    service = Arith()
    service.gate.clear()
    server = ServerThread(broker, service, max_workers=8)
    client = amqprpc.sync.client_codec(broker, QUEUE, amqprpc.Json)
    try:
        futures = [client.call_async("Arith.Held", i) for i in range(8)]
        for _ in range(8):
            assert service.entered.acquire(timeout=5)
        assert [w for w, _ in broker.log if w == "ack"] == []  # nothing acked before replying
        service.gate.set()
        assert sorted(f.result(5) for f in futures) == list(range(8))
        server.stop()
        acked = [tags for what, tags in broker.log if what == "ack"]
        assert sorted(tag for tags in acked for tag in tags) == list(range(1, 9))
    finally:
        client.close()
        server.stop()


def test_a_request_without_a_reply_queue_is_rejected_and_serving_goes_on(
    broker: MemoryBroker,
) -> None:
    server = ServerThread(broker, Arith())
    client = amqprpc.sync.client_codec(broker, QUEUE, amqprpc.Json)
    try:
        hostile = Publish(
            routing_key=QUEUE, properties=Properties(reply_to="Arith.Mul"), body=b"{}"
        )
        broker.perform(broker.connect(), hostile)
        assert client.call("Arith.Echo", "after") == "after"
        assert ("reject", [1]) in broker.log
    finally:
        client.close()
        server.stop()


def test_stop_lets_requests_in_progress_finish(broker: MemoryBroker) -> None:
    service = Arith()
    service.gate.clear()
    server = ServerThread(broker, service, grace=5)
    client = amqprpc.sync.client_codec(broker, QUEUE, amqprpc.Json)
    try:
        future = client.call_async("Arith.Held", "in progress")
        assert service.entered.acquire(timeout=5)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            stopping = pool.submit(server.stop)
            service.gate.set()
            stopping.result(10)
        assert future.result(5) == "in progress"
        assert broker.consumers(QUEUE) == 0
    finally:
        client.close()


def test_a_lost_connection_ends_serve_forever(broker: MemoryBroker) -> None:
    server = ServerThread(broker, Arith())
    (link,) = [link for link in broker.links if link.sink is server.codec]
    broker.cut(link)
    server.thread.join(5)
    assert isinstance(server.error, amqprpc.ConnectionLost)


def test_the_queue_is_declared_as_go_declares_it(broker: MemoryBroker) -> None:
    server = ServerThread(broker, Arith())
    try:
        found = broker.queues[QUEUE]
        assert (found.durable, found.exclusive, found.auto_delete) == (False, False, False)
        other = broker.connect()
        broker.perform(other, request_queue_declaration(QUEUE))  # a Go peer's: equivalent
    finally:
        server.stop()
