"""The caller-connection sync client (`ClientCodec`) on the in-memory broker: no RabbitMQ."""

from __future__ import annotations

import threading
import time

import pytest

import amqprpc
import amqprpc.sync
from amqprpc.protocol import CallState, Delivery, Properties, Publish
from amqprpc.testing import MemoryBroker

from .helpers import QUEUE, Arith, ServerThread


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def served(broker: MemoryBroker):
    server = ServerThread(broker, Arith())
    yield server
    server.stop()


def codec_on(broker: MemoryBroker, **options: object) -> amqprpc.sync.ClientCodec:
    return amqprpc.sync.client_codec(broker.connection(), QUEUE, amqprpc.Json, **options)  # type: ignore[arg-type]


def test_round_trip_and_remote_error(broker: MemoryBroker, served: ServerThread) -> None:
    codec = codec_on(broker)
    assert codec.client("Arith").Mul({"A": 6, "B": 7}) == 42
    with pytest.raises(amqprpc.RemoteError, match="divide by zero") as info:
        codec.call("Arith.Div", {"A": 1, "B": 0})
    assert info.value.remote_type == "ZeroDivisionError"
    assert codec.pending == 0
    assert codec.reply_queue.startswith("amqprpc.reply.")


def test_timeout_is_decided_by_the_core(broker: MemoryBroker) -> None:
    broker.perform(broker.connect(), _declare(QUEUE))  # a queue nobody consumes
    codec = codec_on(broker)
    started = time.monotonic()
    with pytest.raises(amqprpc.RPCTimeout, match=r"Arith.Mul: no reply within 0.2 s"):
        codec.call("Arith.Mul", {"A": 1, "B": 2}, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 1.0
    assert codec.pending == 0
    assert codec.stats.by_state == {CallState.TIMED_OUT: 1}
    (publish,) = [p for what, p in broker.log if what == "publish"]
    assert isinstance(publish, Publish) and publish.properties.expiration == "200"


def test_missing_queue_is_unroutable(broker: MemoryBroker) -> None:
    codec = codec_on(broker)
    with pytest.raises(amqprpc.Unroutable, match="no queue named 'testrpc'"):
        codec.call("Arith.Mul", {"A": 1, "B": 2}, timeout=5)
    assert codec.pending == 0


def test_connection_loss_fails_the_call_and_later_ones(broker: MemoryBroker) -> None:
    broker.perform(broker.connect(), _declare(QUEUE))
    codec = codec_on(broker)
    link = broker.links[-1]
    timer = threading.Timer(0.1, broker.cut, (link,))
    timer.start()
    with pytest.raises(amqprpc.ConnectionLost, match="cut"):
        codec.call("Arith.Mul", {"A": 1, "B": 2}, timeout=5)
    timer.join()
    assert codec.pending == 0
    assert codec.stats.by_state == {CallState.LOST: 1}
    with pytest.raises(amqprpc.ConnectionLost, match="closed"):
        codec.call("Arith.Mul", {"A": 1, "B": 2})


def test_close_then_call_fails_at_once(broker: MemoryBroker, served: ServerThread) -> None:
    codec = codec_on(broker)
    assert codec.call("Arith.Echo", "x") == "x"
    codec.close()
    with pytest.raises(amqprpc.ConnectionLost):
        codec.call("Arith.Echo", "x")
    assert broker.consumers(codec.reply_queue) == 0  # its exclusive queue went with it


def test_another_thread_is_refused(broker: MemoryBroker, served: ServerThread) -> None:
    codec = codec_on(broker)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            codec.call("Arith.Echo", 1)
        except amqprpc.UsageError as exc:
            errors.append(exc)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "thread" in str(errors[0])


def test_stray_replies_are_counted_and_calls_still_get_their_own(
    broker: MemoryBroker, served: ServerThread
) -> None:
    codec = codec_on(broker)
    other = codec_on(broker)
    stray = broker.connect()
    for message_id in ("999", "abc"):
        broker.perform(stray, _reply(codec.reply_queue, message_id))
    assert codec.call("Arith.Mul", {"A": 3, "B": 4}) == 12
    assert other.call("Arith.Mul", {"A": 5, "B": 4}) == 20
    assert (codec.stats.unknown, codec.malformed) == (1, 1)
    assert (other.stats.unknown, other.malformed) == (0, 0)


def test_an_interrupted_wait_leaves_nothing_behind(broker: MemoryBroker) -> None:
    broker.perform(broker.connect(), _declare(QUEUE))
    codec = codec_on(broker)

    def interrupt(delivery: Delivery) -> None:
        raise KeyboardInterrupt

    codec.delivered = interrupt  # type: ignore[method-assign]
    broker.perform(broker.connect(), _reply(codec.reply_queue, "0"))
    with pytest.raises(KeyboardInterrupt):
        codec.call("Arith.Mul", {"A": 1, "B": 2}, timeout=5)
    assert codec.pending == 0
    assert codec.stats.by_state == {CallState.CANCELLED: 1}


def _declare(name: str):  # type: ignore[no-untyped-def]
    from amqprpc.protocol import request_queue_declaration

    return request_queue_declaration(name)


def _reply(queue: str, message_id: str) -> Publish:
    properties = Properties(reply_to="Arith.Mul", correlation_id=queue, message_id=message_id)
    return Publish(routing_key=queue, properties=properties, body=b"1")
