"""The thread-safe sync client (`ThreadSafeClientCodec`) on the in-memory broker: no RabbitMQ."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

import amqprpc
import amqprpc.sync
from amqprpc.protocol import CallState, request_queue_declaration
from amqprpc.testing import MemoryBroker

from .helpers import QUEUE, Arith, ServerThread


@pytest.fixture
def broker() -> MemoryBroker:
    return MemoryBroker()


@pytest.fixture
def service() -> Arith:
    return Arith()


@pytest.fixture
def served(broker: MemoryBroker, service: Arith):
    server = ServerThread(broker, service)
    yield server
    service.gate.set()
    server.stop()


@pytest.fixture
def codec(broker: MemoryBroker):
    codec = amqprpc.sync.client_codec(broker, QUEUE, amqprpc.Json, timeout=5)
    yield codec
    codec.close()


def test_calls_from_many_threads_each_get_their_own_result(
    codec: amqprpc.sync.ThreadSafeClientCodec, served: ServerThread
) -> None:
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: codec.call("Arith.Mul", {"A": i, "B": 3}), range(200)))
    assert results == [3 * i for i in range(200)]
    assert codec.pending == 0
    assert codec.stats.by_state == {CallState.DONE: 200}


def test_futures_and_proxies(codec: amqprpc.sync.ThreadSafeClientCodec, served) -> None:
    future = codec.client("Arith").Mul.future({"A": 2, "B": 21})
    assert isinstance(future, concurrent.futures.Future)
    assert future.result(5) == 42
    with pytest.raises(amqprpc.RemoteError, match="divide by zero"):
        codec.call_async("Arith.Div", {"A": 1, "B": 0}).result(5)


def test_timeout_says_no_reply_came(broker: MemoryBroker, codec) -> None:
    broker.perform(broker.connect(), request_queue_declaration(QUEUE))
    started = time.monotonic()
    with pytest.raises(amqprpc.RPCTimeout, match=r"Arith.Mul: no reply within 0.3 s"):
        codec.call("Arith.Mul", {"A": 1, "B": 2}, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 1.0
    assert codec.stats.by_state == {CallState.TIMED_OUT: 1}


def test_the_deadline_covers_connecting(broker: MemoryBroker, codec) -> None:
    broker.connect_delay = 2.0  # a broker that does not finish the handshake in time
    started = time.monotonic()
    first = codec.call_async("Arith.Mul", {"A": 1, "B": 2}, timeout=1.5)
    with pytest.raises(amqprpc.RPCTimeout, match=r"no reply within 0.3 s"):
        codec.call("Arith.Mul", {"A": 1, "B": 2}, timeout=0.3)  # came while connecting
    assert time.monotonic() - started < 0.6
    with pytest.raises(amqprpc.RPCTimeout, match=r"no reply within 1.5 s"):
        first.result(5)
    assert time.monotonic() - started < 1.8


def test_a_call_that_waited_for_the_connection_goes_out_with_the_time_it_has_left(
    broker: MemoryBroker, codec
) -> None:
    broker.perform(broker.connect(), request_queue_declaration(QUEUE))
    broker.connect_delay = 0.4
    with pytest.raises(amqprpc.RPCTimeout):
        codec.call("Arith.Mul", {"A": 1, "B": 2}, timeout=1.0)
    (publish,) = [p for what, p in broker.log if what == "publish"]
    assert 200 <= int(publish.properties.expiration) <= 650  # 1 s less the 0.4 s, and then some


def test_a_call_from_a_future_callback_on_the_io_thread_is_refused(
    codec, service: Arith, served
) -> None:
    errors: list[BaseException] = []

    def again(_: concurrent.futures.Future) -> None:  # type: ignore[type-arg]
        try:
            codec.call("Arith.Echo", 2)
        except amqprpc.UsageError as exc:
            errors.append(exc)

    service.gate.clear()
    future = codec.call_async("Arith.Held", 1)
    assert service.entered.acquire(timeout=5)
    future.add_done_callback(again)  # runs where the result is set: on the I/O thread
    service.gate.set()
    assert future.result(5) == 1
    assert codec.call("Arith.Echo", 3) == 3  # the I/O thread is not stuck
    assert len(errors) == 1 and "I/O thread" in str(errors[0])


def test_a_refused_connection_fails_fast_and_names_the_cause(broker: MemoryBroker, codec) -> None:
    broker.refuse_connections = "connection refused"
    started = time.monotonic()
    with pytest.raises(amqprpc.ConnectionLost, match="connection refused"):
        codec.call("Arith.Mul", {"A": 1, "B": 2})
    assert time.monotonic() - started < 1.0
    broker.refuse_connections = None
    with pytest.raises(amqprpc.Unroutable):  # the next call connects again
        codec.call("Arith.Mul", {"A": 1, "B": 2})


def test_a_cut_fails_calls_in_flight_and_the_next_call_reconnects(
    broker: MemoryBroker, codec, service: Arith, served: ServerThread
) -> None:
    service.gate.clear()
    future = codec.call_async("Arith.Held", "in flight")
    assert service.entered.acquire(timeout=5)
    client_link = next(link for link in broker.links if link.sink.__class__.__name__ == "IoThread")
    first_queue = codec.reply_queue
    broker.cut(client_link)
    with pytest.raises(amqprpc.ConnectionLost, match="cut"):
        future.result(5)
    service.gate.set()
    assert codec.call("Arith.Mul", {"A": 2, "B": 5}) == 10
    assert codec.reply_queue != first_queue  # a new connection, a new reply queue


def test_close_ends_calls_in_flight(broker: MemoryBroker, service: Arith, served) -> None:
    codec = amqprpc.sync.client_codec(broker, QUEUE, amqprpc.Json)
    service.gate.clear()
    future = codec.call_async("Arith.Held", 1)
    assert service.entered.acquire(timeout=5)
    codec.close()
    with pytest.raises(amqprpc.ConnectionLost):
        future.result(5)
    with pytest.raises(amqprpc.ConnectionLost):
        codec.call("Arith.Mul", {"A": 1, "B": 1})


def test_a_future_cancelled_before_it_was_sent_is_never_sent(broker: MemoryBroker) -> None:
    codec = amqprpc.sync.client_codec(broker, QUEUE, amqprpc.Json)
    gate = threading.Event()
    original = broker.connect

    def slow_connect():  # type: ignore[no-untyped-def]
        assert gate.wait(5)
        return original()

    broker.connect = slow_connect  # type: ignore[method-assign]
    future = codec.call_async("Arith.Mul", {"A": 1, "B": 1})
    assert future.cancel()
    gate.set()
    second = codec.call_async("Arith.Mul", {"A": 1, "B": 1})
    with pytest.raises(amqprpc.Unroutable):
        second.result(5)
    assert [what for what, _ in broker.log] == ["publish"]  # only the second went out
    codec.close()


def test_bad_arguments_fail_before_anything_is_sent(codec, served) -> None:
    with pytest.raises(amqprpc.EncodeError):
        codec.call("Arith.Echo", float("nan"))
    with pytest.raises(amqprpc.UsageError):
        codec.call("Arith.Echo", 1, timeout=-1)
    assert codec.call("Arith.Echo", 1) == 1
