"""Deadline-aware servers on a real broker (PROTOCOL.md 12.1): requests carry their caller's
deadline, a request whose caller gave up while it waited behind a slow handler never runs, a
handler's own calls inherit what is left of its deadline, and `async def` handlers can be
cancelled at it. For both servers and all three clients."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.sync
from tests.backends import ASYNC_BACKENDS, async_servers, close_async, connect_async
from tests.integration.peers import SyncServerThread
from tests.integration.raw import blocking, wait_until

SERVERS = {**async_servers(), "sync-server": SyncServerThread}


@pytest.fixture(params=list(SERVERS))
def kind(request: pytest.FixtureRequest) -> Any:
    return SERVERS[request.param]


@pytest.fixture
def black_hole(broker_url: str, queue_name: str) -> Iterator[str]:
    """A request queue nobody consumes: calls to it can only time out."""
    with blocking(broker_url) as conn:
        conn.channel().queue_declare(queue_name)
    yield queue_name


def test_every_client_sends_its_absolute_deadline(broker_url: str, black_hole: str) -> None:
    seen: list[float] = []
    connection = blocking(broker_url)
    channel = connection.channel()

    def record(ch: Any, method: Any, props: pika.BasicProperties, body: bytes) -> None:
        seen.append(int(props.headers["amqprpc-deadline"]) / 1000 - time.time())

    channel.basic_consume(black_hole, record, auto_ack=True)
    stop = threading.Event()

    def swallow() -> None:
        while not stop.is_set():
            connection.process_data_events(time_limit=0.05)

    swallower = threading.Thread(target=swallow)
    swallower.start()

    async def async_call(backend: str) -> None:
        protocol = await connect_async(backend, broker_url)
        codec = await amqprpc.client_codec(protocol, black_hole, amqprpc.Json)
        with pytest.raises(amqprpc.RPCTimeout):
            await codec.call("X.Y", 1, timeout=0.5)
        await close_async(protocol)

    try:
        for backend in ASYNC_BACKENDS:
            asyncio.run(async_call(backend))
        with blocking(broker_url) as own, amqprpc.sync.client_codec(
            own, black_hole, amqprpc.Json
        ) as plain:
            with pytest.raises(amqprpc.RPCTimeout):
                plain.call("X.Y", 2, timeout=0.5)
        with amqprpc.sync.client_codec(broker_url, black_hole, amqprpc.Json) as threadsafe:
            with pytest.raises(amqprpc.RPCTimeout):
                threadsafe.call("X.Y", 3, timeout=0.5)
    finally:
        stop.set()
        swallower.join(5)
        connection.close()
    assert len(seen) == 2 + len(ASYNC_BACKENDS)
    for left in seen:  # read on arrival: the deadline is about 0.5 s ahead
        assert 0.3 < left <= 0.51, seen


class Work:
    """A slow handler and a fast one, counted."""

    def __init__(self) -> None:
        self.fast_runs = 0

    def slow(self, seconds: float) -> bool:
        time.sleep(seconds)
        return True

    def fast(self, arg: Any) -> Any:
        self.fast_runs += 1
        return arg

    async def stuck(self, seconds: float) -> bool:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return True


def test_a_request_whose_caller_gave_up_while_held_never_runs(
    kind: Any, broker_url: str, queue_name: str
) -> None:
    work = Work()
    server = kind(broker_url, queue_name, amqprpc.Json, work, max_workers=1,
                  max_concurrency=4, deadline_skew=0.1).start()  # fmt: skip
    try:
        with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json) as codec:
            slow = codec.call_async("Work.Slow", 1.0, timeout=10)
            started = time.monotonic()
            with pytest.raises(amqprpc.RPCTimeout):
                codec.call("Work.Fast", "late", timeout=0.3)  # held behind Slow, then stale
            assert time.monotonic() - started < 0.8
            assert slow.result(10) is True
            assert wait_until(lambda: server.server.stats.expired == 1)
            assert work.fast_runs == 0  # it never ran
            assert codec.call("Work.Fast", "on time", timeout=5) == "on time"
            assert work.fast_runs == 1
    finally:
        server.stop()


@pytest.mark.parametrize("cancel", [True, False])
def test_async_handlers_are_cancelled_at_the_deadline_only_when_asked(
    kind: Any, broker_url: str, queue_name: str, cancel: bool
) -> None:
    work = Work()
    server = kind(broker_url, queue_name, amqprpc.Json, work, deadline_skew=0.1,
                  cancel_on_deadline=cancel).start()  # fmt: skip
    try:
        with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json) as codec:
            with pytest.raises(amqprpc.RPCTimeout):
                codec.call("Work.Stuck", 1.5, timeout=0.3)
            if cancel:
                assert wait_until(lambda: server.server.stats.cancelled == 1, timeout=1.2)
                assert getattr(work, "cancelled", False)
            else:
                assert wait_until(lambda: server.server.in_flight == 0, timeout=5)
                assert server.server.stats.cancelled == 0
                assert not getattr(work, "cancelled", False)
            assert codec.call("Work.Fast", 1, timeout=5) == 1
    finally:
        server.stop()


# -- a handler's calls inherit what is left of its deadline ------------------------------------


class Nested:
    """Handlers that wait, then call a queue nobody serves with a 60 s timeout of their own,
    through each kind of client, and record how long that call took and how it ended."""

    def __init__(self, url: str, target: str, backend: str | None = None) -> None:
        self.url, self.target, self.backend = url, target, backend
        self.results: list[tuple[str, float]] = []
        self.done = threading.Event()
        self.threadsafe = amqprpc.sync.client_codec(url, target, amqprpc.Json, timeout=60)

    def _record(self, started: float, left: float, exc: BaseException | None) -> None:
        self.results.append((type(exc).__name__, time.monotonic() - started, left))
        self.done.set()

    @staticmethod
    def _left() -> float:
        deadline = amqprpc.request_deadline()
        assert deadline is not None
        return deadline - time.time()

    def via_thread_safe(self, wait: float) -> None:
        time.sleep(wait)
        started, left = time.monotonic(), self._left()
        try:
            self.threadsafe.call("X.Y", 1)
        except amqprpc.RPCError as exc:
            self._record(started, left, exc)

    def via_caller_connection(self, wait: float) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        time.sleep(wait)
        started, left = time.monotonic(), self._left()
        try:
            with amqprpc.sync.client_codec(connection, self.target, amqprpc.Json) as codec:
                codec.call("X.Y", 1, timeout=60)
        except amqprpc.RPCError as exc:
            self._record(started, left, exc)
        finally:
            connection.close()

    async def via_async(self, wait: float) -> None:
        assert self.backend is not None
        protocol = await connect_async(self.backend, self.url)
        await asyncio.sleep(wait)
        started, left = time.monotonic(), self._left()
        try:
            codec = await amqprpc.client_codec(protocol, self.target, amqprpc.Json, timeout=60)
            await codec.call("X.Y", 1)
        except amqprpc.RPCError as exc:
            self._record(started, left, exc)
        finally:
            await close_async(protocol)


VIAS = [("ViaThreadSafe", None), ("ViaCallerConnection", None)]
VIAS += [("ViaAsync", backend) for backend in ASYNC_BACKENDS]


@pytest.mark.parametrize(("via", "backend"), VIAS, ids=[f"{v}-{b}" if b else v for v, b in VIAS])
def test_a_nested_call_inherits_the_remaining_budget(
    kind: Any, broker_url: str, queue_name: str, black_hole: str, via: str, backend: str | None
) -> None:
    serve = f"{queue_name}-outer"
    nested = Nested(broker_url, black_hole, backend)
    server = kind(broker_url, serve, amqprpc.Json, nested).start()
    try:
        with amqprpc.sync.client_codec(broker_url, serve, amqprpc.Json) as codec:
            # 2 s for the outer call; the handler waits 1 s, so its call has about 1 s left.
            # The nested call ends at the outer call's deadline, and the handler's answer then
            # races the outer call's own timer: either way, the outer call ends by then.
            began = time.monotonic()
            try:
                answer = codec.call(f"Nested.{via}", 1.0, timeout=2.0)
            except amqprpc.RPCTimeout:
                pass
            else:
                assert answer is None  # the handler's answer won the race
            assert time.monotonic() - began < 2.5
        assert nested.done.wait(5)
        [(error, elapsed, left)] = nested.results
        assert error == "RPCTimeout"
        assert 0 < left <= 1.01, left  # about 1 s of the outer call's budget was left
        assert abs(elapsed - left) < 0.4, (elapsed, left)  # it took what was left, not 60 s
    finally:
        server.stop()
        nested.threadsafe.close()
        with blocking(broker_url) as conn:
            conn.channel().queue_delete(serve)
