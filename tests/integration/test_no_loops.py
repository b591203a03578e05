"""One message never makes servers loop (PROTOCOL.md 12.2), on a real broker, for both
servers (the async one on each backend) and both ack modes: a request whose reply queue is the
server's own request queue is never run, and a reply that one server sends into another's
request queue is never run by it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.sync
from tests.backends import async_servers
from tests.integration.peers import SyncServerThread
from tests.integration.raw import RawPeer, delete_queue, queue_counts, wait_until

SERVERS = {**async_servers(), "sync-server": SyncServerThread}


class Counter:
    """Counts how often each server ran its handler."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs = 0

    def hit(self, arg: Any) -> Any:
        with self.lock:
            self.runs += 1
        return arg


@pytest.fixture(params=list(SERVERS))
def kind(request: pytest.FixtureRequest) -> Any:
    return SERVERS[request.param]


@pytest.fixture(params=["late", "early"])
def ack(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def peer(broker_url: str) -> Iterator[RawPeer]:
    raw = RawPeer(broker_url)
    yield raw
    raw.close()


def hostile(queue: str, reply_queue: str) -> pika.BasicProperties:
    return pika.BasicProperties(reply_to="Counter.Hit", correlation_id=reply_queue,
                                message_id="1")  # fmt: skip


def test_a_request_naming_the_servers_own_queue_never_runs(
    kind: Any, ack: str, broker_url: str, queue_name: str, peer: RawPeer
) -> None:
    counter = Counter()
    server = kind(broker_url, queue_name, amqprpc.Json, counter, ack=ack).start()
    try:
        peer.publish(queue_name, b'"loop"', hostile(queue_name, queue_name))
        assert wait_until(lambda: server.server.stats.loops == 1)
        with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=10) as c:
            assert c.call("Counter.Hit", "normal") == "normal"  # still serving
        assert counter.runs == 1  # the normal call only
        assert queue_counts(broker_url, queue_name)[0] == 0  # nothing was published back
        assert server.server.stats.loops == 1
    finally:
        server.stop()


def test_a_reply_sent_into_another_servers_queue_never_runs(
    kind: Any, ack: str, broker_url: str, queue_name: str, peer: RawPeer
) -> None:
    other = f"amqprpc-test-{uuid.uuid4().hex[:12]}"
    a_counter, b_counter = Counter(), Counter()
    a = kind(broker_url, queue_name, amqprpc.Json, a_counter, ack=ack).start()
    b = kind(broker_url, other, amqprpc.Json, b_counter, ack=ack).start()
    try:
        peer.publish(queue_name, b'"ping"', hostile(queue_name, other))  # A answers into B
        assert wait_until(lambda: b.server.stats.replies == 1)
        with amqprpc.sync.client_codec(broker_url, other, amqprpc.Json, timeout=10) as c:
            assert c.call("Counter.Hit", "normal") == "normal"
        assert (a_counter.runs, b_counter.runs) == (1, 1)  # A ran it once; B only the call
        assert b.server.stats.replies == 1
        assert a.server.stats.replies == 0
    finally:
        a.stop()
        b.stop()
        delete_queue(broker_url, other)
