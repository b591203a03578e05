"""The sync clients: amqprpc's two pika clients and the raw pika loops that speak the same wire
protocol with no library (exclusive reply queue, auto-ack consumer, requests published
`mandatory` with `expiration`, replies matched by message_id).

- seq: one call at a time. amqprpc's ClientCodec over a caller's BlockingConnection against a
  raw BlockingConnection loop that publishes and pumps the connection until its reply is in.
- threads: amqprpc's ThreadSafeClientCodec shared by `inflight` threads against a raw
  SelectConnection loop that keeps `inflight` calls in flight on one thread (what the
  thread-safe client's I/O thread does, without the threads and the library).

Each returns its figures as peers_aio.measure does (calls, seconds, calls_per_s, p50_us,
p99_us, cpu_s).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import harness
import pika
import pika.exceptions

TIMEOUT = 60.0
EXPIRATION = str(int(TIMEOUT * 1000))

SyncCall = Callable[[int], Any]


def _compact(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _check(i: int, result: object) -> None:
    if result != 2 * i:
        raise AssertionError(f"Arith.Mul({i}, 2) returned {result!r}")


def _figures(latencies: list[float], seconds: float, cpu: float) -> dict[str, Any]:
    return {
        "calls": len(latencies),
        "seconds": seconds,
        "calls_per_s": len(latencies) / seconds,
        "cpu_s": cpu,
        **harness.latency_summary(latencies),
    }


def measure_seq(call: SyncCall, calls: int, warmup: int) -> dict[str, Any]:
    """`warmup` calls, the harness's go, then `calls` calls one at a time."""
    for i in range(warmup):
        _check(i, call(i))
    harness.wait_for_go()
    perf = time.perf_counter
    latencies: list[float] = []
    cpu = time.process_time()
    start = perf()
    for i in range(calls):
        began = perf()
        result = call(i)
        latencies.append(perf() - began)
        _check(i, result)
    seconds = perf() - start
    return _figures(latencies, seconds, time.process_time() - cpu)


def measure_threads(call: SyncCall, calls: int, threads: int, warmup: int) -> dict[str, Any]:
    """`threads` threads calling through `call` at once; warm-up, go, then the measured run.
    The clock starts when every thread is ready (thread start-up is not counted)."""
    perf = time.perf_counter

    def phase(total: int, latencies: list[float] | None) -> tuple[float, float]:
        per_thread = total // threads
        barrier = threading.Barrier(threads + 1)
        failures: list[BaseException] = []

        def worker() -> None:
            mine: list[float] = []
            barrier.wait()
            try:
                for i in range(per_thread):
                    began = perf()
                    result = call(i)
                    mine.append(perf() - began)
                    _check(i, result)
            except BaseException as exc:
                failures.append(exc)
                raise
            if latencies is not None:
                latencies.extend(mine)  # list.extend is atomic under the GIL

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in pool:
            thread.start()
        barrier.wait()
        cpu = time.process_time()
        start = perf()
        for thread in pool:
            thread.join()
        seconds, cpu = perf() - start, time.process_time() - cpu
        if failures:
            raise failures[0]
        return seconds, cpu

    if warmup:
        phase(max(warmup, threads), None)
    harness.wait_for_go()
    latencies: list[float] = []
    seconds, cpu = phase(calls, latencies)
    return _figures(latencies, seconds, cpu)


# -- seq ----------------------------------------------------------------------------------


def client_amqprpc_seq(queue: str, calls: int, inflight: int, warmup: int) -> dict[str, Any]:
    """amqprpc's ClientCodec over a caller's BlockingConnection, one call at a time."""
    import amqprpc
    import amqprpc.sync

    connection = pika.BlockingConnection(pika.URLParameters(harness.URL))
    codec = amqprpc.sync.client_codec(connection, queue, amqprpc.Json, timeout=TIMEOUT)
    mul = codec.client("Arith").Mul
    result = measure_seq(lambda i: mul({"A": i, "B": 2}), calls, warmup)
    harness.report(result)
    codec.close()
    connection.close()
    return result


class RawBlocking:
    """A raw go-amqprpc client on a BlockingConnection: publish, pump until the reply is in."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.connection = pika.BlockingConnection(pika.URLParameters(harness.URL))
        self.channel = self.connection.channel()
        self.reply_queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)
        self.channel.add_on_return_callback(self._on_return)
        self.replies: dict[str, bytes] = {}
        self.counter = 0

    def _on_reply(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        self.replies[props.message_id] = body

    def _on_return(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        raise LookupError(f"unroutable: {method.routing_key}")

    def call(self, i: int) -> Any:
        call_id = str(self.counter)
        self.counter += 1
        props = pika.BasicProperties(
            reply_to="Arith.Mul",
            correlation_id=self.reply_queue,
            message_id=call_id,
            expiration=EXPIRATION,
        )
        body = _compact({"A": i, "B": 2})
        self.channel.basic_publish("", self.queue, body, props, mandatory=True)
        replies = self.replies
        while call_id not in replies:
            self.connection.process_data_events(time_limit=TIMEOUT)
        return json.loads(replies.pop(call_id))

    def close(self) -> None:
        self.connection.close()


def client_pika_seq(queue: str, calls: int, inflight: int, warmup: int) -> dict[str, Any]:
    """The raw BlockingConnection loop, one call at a time."""
    raw = RawBlocking(queue)
    result = measure_seq(raw.call, calls, warmup)
    harness.report(result)
    raw.close()
    return result


# -- threads ------------------------------------------------------------------------------


def client_amqprpc_threads(queue: str, calls: int, inflight: int, warmup: int) -> dict[str, Any]:
    """`inflight` threads sharing one ThreadSafeClientCodec (it owns a connection and an I/O
    thread)."""
    import amqprpc
    import amqprpc.sync

    codec = amqprpc.sync.client_codec(harness.URL, queue, amqprpc.Json, timeout=TIMEOUT)
    mul = codec.client("Arith").Mul
    result = measure_threads(lambda i: mul({"A": i, "B": 2}), calls, inflight, warmup)
    harness.report(result)
    codec.close()
    return result


class RawSelect:
    """A raw go-amqprpc client on a SelectConnection keeping `inflight` calls in flight on
    one thread: each reply that comes in sends the next request."""

    def __init__(self, queue: str, inflight: int) -> None:
        self.queue = queue
        self.inflight = inflight
        self.channel: Any = None
        self.reply_queue = ""
        self.started: dict[str, tuple[float, int]] = {}
        self.counter = 0
        self.to_send = 0
        self.sent = 0
        self.latencies: list[float] | None = None
        self.phase_done: Callable[[], None] = lambda: None
        self.error: BaseException | None = None
        self.connection = pika.SelectConnection(
            pika.URLParameters(harness.URL),
            on_open_callback=self._on_open,
            on_open_error_callback=self._on_failed,
            on_close_callback=self._on_failed,
        )

    def run(self, first_phase: Callable[[], None]) -> None:
        self._first_phase = first_phase
        self.connection.ioloop.start()
        if self.error is not None:
            raise self.error

    def _on_failed(self, connection: Any, reason: Any) -> None:
        if self.error is None and not isinstance(reason, pika.exceptions.ConnectionClosedByClient):
            self.error = RuntimeError(f"connection failed: {reason!r}")
        connection.ioloop.stop()

    def _on_open(self, connection: Any) -> None:
        connection.channel(on_open_callback=self._on_channel)

    def _on_channel(self, channel: Any) -> None:
        self.channel = channel
        channel.add_on_return_callback(self._on_return)
        channel.queue_declare("", exclusive=True, callback=self._on_declared)

    def _on_declared(self, frame: Any) -> None:
        self.reply_queue = frame.method.queue
        self.channel.basic_consume(
            self.reply_queue, self._on_reply, auto_ack=True, callback=lambda _: self._first_phase()
        )

    def _on_return(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        self._fail(LookupError(f"unroutable: {method.routing_key}"))

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.connection.ioloop.stop()

    def start_phase(
        self, total: int, latencies: list[float] | None, done: Callable[[], None]
    ) -> None:
        """Send `total` calls, `inflight` at a time; `done()` once every reply is in."""
        self.to_send = total
        self.sent = 0
        self.latencies = latencies
        self.phase_done = done
        for _ in range(min(self.inflight, total)):
            self._send()

    def _send(self) -> None:
        i = self.sent
        self.sent += 1
        self.to_send -= 1
        call_id = str(self.counter)
        self.counter += 1
        props = pika.BasicProperties(
            reply_to="Arith.Mul",
            correlation_id=self.reply_queue,
            message_id=call_id,
            expiration=EXPIRATION,
        )
        self.started[call_id] = (time.perf_counter(), i)
        self.channel.basic_publish("", self.queue, _compact({"A": i, "B": 2}), props, True)

    def _on_reply(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        began, i = self.started.pop(props.message_id)
        if self.latencies is not None:
            self.latencies.append(time.perf_counter() - began)
        try:
            _check(i, json.loads(body))
        except AssertionError as exc:
            self._fail(exc)
            return
        if self.to_send > 0:
            self._send()
        elif not self.started:
            self.phase_done()

    def close(self) -> None:
        self.connection.close()


def client_pika_select(queue: str, calls: int, inflight: int, warmup: int) -> dict[str, Any]:
    """The raw SelectConnection loop with `inflight` calls in flight."""
    raw = RawSelect(queue, inflight)
    figures: dict[str, Any] = {}
    latencies: list[float] = []
    clocks: dict[str, float] = {}

    def measured() -> None:
        harness.wait_for_go()  # blocks the I/O loop, which has nothing in flight meanwhile
        clocks["cpu"] = time.process_time()
        clocks["start"] = time.perf_counter()
        raw.start_phase(calls, latencies, finished)

    def finished() -> None:
        seconds = time.perf_counter() - clocks["start"]
        figures.update(_figures(latencies, seconds, time.process_time() - clocks["cpu"]))
        harness.report(figures)
        raw.close()

    def first() -> None:
        if warmup:
            raw.start_phase(max(warmup, inflight), None, measured)
        else:
            measured()

    raw.run(first)
    if not figures:
        raise RuntimeError("the measured phase did not finish")
    return figures


CLIENTS: dict[str, Callable[[str, int, int, int], dict[str, Any]]] = {
    "amqprpc-seq": client_amqprpc_seq,
    "pika-seq": client_pika_seq,
    "amqprpc-threads": client_amqprpc_threads,
    "pika-select": client_pika_select,
}
