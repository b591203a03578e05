"""Faults on a real broker: cut connections, killed servers, stale work, no server, size
limits and memory under endless timeouts. Cuts go through a fault-injecting proxy; the
shared broker itself is never touched."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aioamqp
import pika
import pytest

import amqprpc
import amqprpc.protocol
import amqprpc.sync
from tests.faults import TcpProxy
from tests.integration.peers import AsyncServerThread, SyncServerThread
from tests.integration.raw import queue_counts

ROOT = Path(__file__).resolve().parents[2]


class Holder:
    """Even arguments come back at once; odd ones are held until the server goes away."""

    async def hold(self, arg: int) -> int:
        if arg % 2:
            await asyncio.sleep(60)
        return arg

    async def slow(self, args: dict[str, float]) -> str:
        await asyncio.sleep(args["s"])
        return "late"

    def echo(self, arg: Any) -> Any:
        return arg

    def grow(self, size: int) -> str:
        return "x" * size


@pytest.fixture
def proxy(broker_url: str) -> Iterator[TcpProxy]:
    p = TcpProxy(broker_url)
    yield p
    p.close()


@pytest.fixture
def holder_server(broker_url: str, queue_name: str) -> Iterator[AsyncServerThread]:
    server = AsyncServerThread(
        broker_url, queue_name, amqprpc.Json, Holder(), grace=0.2, max_concurrency=1000
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def amqp(broker_url: str) -> AsyncIterator[Any]:
    transport, protocol = await aioamqp.from_url(broker_url)
    yield protocol
    if protocol.state == 1:  # OPEN
        await protocol.close()
    transport.close()


# -- 1. a connection cut with 1,000 calls in flight ------------------------------------------


async def test_cut_with_1000_calls_in_flight_async(
    holder_server: AsyncServerThread, proxy: TcpProxy, queue_name: str
) -> None:
    loop = asyncio.get_running_loop()
    transport, protocol = await aioamqp.from_url(proxy.url)
    codec = await amqprpc.client_codec(protocol, queue_name, amqprpc.Json, timeout=60)
    ended: dict[int, float] = {}
    calls = []
    for i in range(1000):
        call = asyncio.ensure_future(codec.call("Holder.Hold", i))
        call.add_done_callback(lambda _, i=i: ended.__setitem__(i, loop.time()))
        calls.append(call)
    await asyncio.wait(calls[0::2])  # every even call answered: the odd ones are held
    cut_at = loop.time()
    assert await asyncio.to_thread(proxy.cut) == 1
    results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 10)
    for i, result in enumerate(results):
        if i % 2:
            assert isinstance(result, amqprpc.ConnectionLost), (i, result)
            assert ended[i] - cut_at < 1.0, (i, ended[i] - cut_at)
        else:
            assert result == i  # its own result, never another call's
    assert codec.pending == 0
    with pytest.raises(amqprpc.ConnectionLost):
        await codec.call("Holder.Echo", 1)
    transport.close()


def test_cut_with_1000_calls_in_flight_thread_safe_sync(
    holder_server: AsyncServerThread, proxy: TcpProxy, queue_name: str
) -> None:
    codec = amqprpc.sync.client_codec(proxy.url, queue_name, amqprpc.Json, timeout=60)
    ended: dict[int, float] = {}
    lock = threading.Lock()

    def on_end(i: int) -> Any:
        def record(_: Any) -> None:
            with lock:
                ended[i] = time.monotonic()

        return record

    futures = []
    for i in range(1000):
        future = codec.call_async("Holder.Hold", i)
        future.add_done_callback(on_end(i))
        futures.append(future)
    for i in range(0, 1000, 2):
        assert futures[i].result(30) == i
    cut_at = time.monotonic()
    assert proxy.cut() == 1
    for i in range(1, 1000, 2):
        with pytest.raises(amqprpc.ConnectionLost):
            futures[i].result(10)
        assert ended[i] - cut_at < 1.0, (i, ended[i] - cut_at)
    assert codec.call("Holder.Echo", "back") == "back"  # reconnects on the next call
    assert proxy.accepted == 2
    codec.close()


def test_cut_during_a_call_on_a_callers_connection(
    holder_server: AsyncServerThread, proxy: TcpProxy, queue_name: str
) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(proxy.url))
    codec = amqprpc.sync.client_codec(connection, queue_name, amqprpc.Json, timeout=30)
    assert codec.call("Holder.Hold", 2) == 2
    timer = threading.Timer(0.3, proxy.cut)  # the cut comes while the call blocks
    timer.start()
    start = time.monotonic()
    with pytest.raises(amqprpc.ConnectionLost):
        codec.call("Holder.Hold", 1)
    assert time.monotonic() - start < 5
    assert codec.pending == 0
    timer.join()
    with pytest.raises(amqprpc.ConnectionLost):
        codec.call("Holder.Echo", 1)


# -- 2. a server killed mid-call ---------------------------------------------------------------

SERVER_SCRIPT = """
import asyncio, os, sys, time
import aioamqp, amqprpc, amqprpc.sync

url, queue, kind, ack, behaviour = sys.argv[1:6]

def say(line):  # one write a line: handler threads and the main thread both speak
    os.write(1, (line + "\\n").encode())

class Work:
    def run(self, arg):
        say(f"started {arg}")
        if behaviour == "hang":
            time.sleep(600)
        return f"answered by {behaviour}"

if kind == "sync":
    server = amqprpc.sync.server_codec(url, queue, amqprpc.Json, ack=ack)
    server.register(Work())
    say("ready")
    server.serve_forever()
else:
    async def main():
        transport, protocol = await aioamqp.from_url(url)
        server = await amqprpc.server_codec(protocol, queue, amqprpc.Json, ack=ack)
        server.register(Work())
        await server.started()
        say("ready")
        await server.wait_closed()
    asyncio.run(main())
"""


def spawn_server(
    url: str, queue: str, kind: str, ack: str, behaviour: str
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(SERVER_SCRIPT), url, queue, kind, ack, behaviour],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # a redelivered request may be taken before "ready" is printed
        if line.strip() == "ready":
            return proc
    raise AssertionError("server did not start")


@pytest.mark.slow
@pytest.mark.parametrize("ack", ["late", "early"])
@pytest.mark.parametrize("kind", ["async", "sync"])
def test_server_killed_mid_call(broker_url: str, queue_name: str, kind: str, ack: str) -> None:
    """ack="late": a second server answers the redelivered request. ack="early": it is lost,
    as with go-amqprpc, and the caller gets RPCTimeout."""
    first = spawn_server(broker_url, queue_name, kind, ack, "hang")
    second = None
    try:
        with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=4) as codec:
            future = codec.call_async("Work.Run", "job")
            assert first.stdout is not None
            assert first.stdout.readline().strip() == "started job"
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=10)
            second = spawn_server(broker_url, queue_name, kind, ack, "second")
            if ack == "late":
                assert future.result(10) == "answered by second"
            else:
                with pytest.raises(amqprpc.RPCTimeout):
                    future.result(10)
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
                proc.communicate(timeout=10)


# -- 4. stale work -----------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def run(self, arg: Any) -> Any:
        self.seen.append(arg)
        return arg


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_request_of_a_caller_that_timed_out_is_not_executed(
    broker_url: str, queue_name: str, kind: str
) -> None:
    # The queue exists but nobody consumes it yet: the request waits, then expires.
    declare = amqprpc.sync.server_codec(broker_url, queue_name, amqprpc.Json)
    with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json) as codec:
        with pytest.raises(amqprpc.RPCTimeout):
            codec.call("Recorder.Run", "stale", timeout=0.2)
        recorder = Recorder()
        peer_class = AsyncServerThread if kind == "async" else SyncServerThread
        server = peer_class(broker_url, queue_name, amqprpc.Json, recorder).start()
        try:
            assert codec.call("Recorder.Run", "fresh", timeout=10) == "fresh"
        finally:
            server.stop()
    declare.close()
    assert recorder.seen == ["fresh"]


@pytest.mark.parametrize("client", ["async", "sync"])
def test_late_reply_is_dropped_and_counted(
    holder_server: AsyncServerThread, broker_url: str, queue_name: str, client: str
) -> None:
    if client == "sync":
        connection = pika.BlockingConnection(pika.URLParameters(broker_url))
        codec = amqprpc.sync.client_codec(connection, queue_name, amqprpc.Json)
        with pytest.raises(amqprpc.RPCTimeout):
            codec.call("Holder.Slow", {"s": 0.5}, timeout=0.1)
        # The late reply arrives while the codec serves its next call: dropped and counted.
        assert codec.call("Holder.Slow", {"s": 0.6}, timeout=5) == "late"
        assert codec.stats.late == 1
        assert codec.pending == 0
        codec.close()
        connection.close()
        return

    async def main() -> None:
        transport, protocol = await aioamqp.from_url(broker_url)
        codec = await amqprpc.client_codec(protocol, queue_name, amqprpc.Json)
        with pytest.raises(amqprpc.RPCTimeout):
            await codec.call("Holder.Slow", {"s": 0.5}, timeout=0.1)
        assert await codec.call("Holder.Slow", {"s": 0.6}, timeout=5) == "late"
        assert codec.stats.late == 1
        assert codec.pending == 0
        await codec.close()
        await protocol.close()
        transport.close()

    asyncio.run(main())


# -- 5. no server --------------------------------------------------------------------------------


async def test_unroutable_is_fast_async(amqp: Any) -> None:
    codec = await amqprpc.client_codec(amqp, "amqprpc-test-nowhere", amqprpc.Json, timeout=10)
    elapsed = []
    for _ in range(5):
        start = time.perf_counter()
        with pytest.raises(amqprpc.Unroutable):
            await codec.call("X.Y", 1)
        elapsed.append(time.perf_counter() - start)
    assert statistics.median(elapsed) < 0.1, elapsed
    assert codec.pending == 0
    await codec.close()


def test_unroutable_is_fast_sync(broker_url: str) -> None:
    with amqprpc.sync.client_codec(broker_url, "amqprpc-test-nowhere", amqprpc.Json) as codec:
        elapsed = []
        for _ in range(5):
            start = time.perf_counter()
            with pytest.raises(amqprpc.Unroutable):
                codec.call("X.Y", 1, timeout=10)
            elapsed.append(time.perf_counter() - start)
    assert statistics.median(elapsed[1:]) < 0.1, elapsed  # the first call also connects


# -- 8. size limits ------------------------------------------------------------------------------


async def test_size_limits_async(amqp: Any, queue_name: str, broker_url: str) -> None:
    server = await amqprpc.server_codec(amqp, queue_name, amqprpc.Json, max_body_size=1000)
    codec = await amqprpc.client_codec(amqp, queue_name, amqprpc.Json, max_body_size=1000)
    with pytest.raises(amqprpc.MessageTooLarge):
        await codec.call("Holder.Echo", "x" * 2000)
    assert await asyncio.to_thread(queue_counts, broker_url, queue_name) == (0, 0)  # unsent
    assert codec.pending == 0
    server.register(Holder())
    big = await amqprpc.client_codec(amqp, queue_name, amqprpc.Json)
    with pytest.raises(amqprpc.RemoteError, match="exceeds the limit"):
        await big.call("Holder.Echo", "x" * 5000)
    assert await big.call("Holder.Echo", "small") == "small"  # still serving
    with pytest.raises(amqprpc.RemoteError, match="cannot encode result"):
        await big.call("Holder.Grow", 5000)  # the result is over the limit
    for closable in (big, codec, server):
        await closable.close()


def test_size_limits_sync(broker_url: str, queue_name: str) -> None:
    server = amqprpc.sync.server_codec(broker_url, queue_name, amqprpc.Json, max_body_size=1000)
    server.register(Holder())
    serving = threading.Thread(target=server.serve_forever)
    with amqprpc.sync.client_codec(
        broker_url, queue_name, amqprpc.Json, max_body_size=1000
    ) as codec:
        with pytest.raises(amqprpc.MessageTooLarge):
            codec.call("Holder.Echo", "x" * 2000)
        assert queue_counts(broker_url, queue_name) == (0, 0)
        serving.start()
        with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json) as big:
            with pytest.raises(amqprpc.RemoteError, match="exceeds the limit"):
                big.call("Holder.Echo", "x" * 5000)
            assert big.call("Holder.Echo", "small") == "small"
    server.stop()
    serving.join(10)


# -- 9. memory under endless timeouts ------------------------------------------------------------


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.slow
async def test_100k_timed_out_calls_leave_nothing_behind_async(amqp: Any, queue_name: str) -> None:
    # A consumer that swallows every request: no reply ever comes, nothing piles up.
    channel = await amqp.channel()
    await channel.queue_declare(queue_name)

    async def swallow(ch: Any, body: bytes, envelope: Any, props: Any) -> None:
        return None

    await channel.basic_consume(swallow, queue_name=queue_name, no_ack=True)
    codec = await amqprpc.client_codec(amqp, queue_name, amqprpc.Json, timeout=0.2)
    batch = 5000

    async def one_batch() -> None:
        results = await asyncio.gather(
            *(codec.call("X.Y", i) for i in range(batch)), return_exceptions=True
        )
        assert all(isinstance(r, amqprpc.RPCTimeout) for r in results)

    for _ in range(2):  # warm up: allocator pools, the reply consumer
        await one_batch()
    before = rss_bytes()
    for _ in range(100_000 // batch - 2):
        await one_batch()
    after = rss_bytes()
    assert codec.pending == 0
    assert codec.stats.by_state[amqprpc.protocol.CallState.TIMED_OUT] == 100_000
    assert len(codec._proto.pending._heap) < 2048  # no stale deadlines kept
    assert after - before < 20 * 1024 * 1024, (before, after)
    await codec.close()
    await channel.close()


@pytest.mark.slow
def test_100k_timed_out_calls_leave_nothing_behind_thread_safe_sync(
    broker_url: str, queue_name: str
) -> None:
    sink = pika.BlockingConnection(pika.URLParameters(broker_url))
    channel = sink.channel()
    channel.queue_declare(queue_name)
    channel.basic_consume(queue_name, lambda *args: None, auto_ack=True)
    swallowing = threading.Event()

    def drain() -> None:
        while not swallowing.is_set():
            sink.process_data_events(time_limit=0.1)

    drainer = threading.Thread(target=drain)
    drainer.start()
    codec = amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json, timeout=0.2)
    batch = 5000

    def one_batch() -> None:
        futures = [codec.call_async("X.Y", i) for i in range(batch)]
        for future in futures:
            with pytest.raises(amqprpc.RPCTimeout):
                future.result(30)

    try:
        for _ in range(2):
            one_batch()
        before = rss_bytes()
        for _ in range(100_000 // batch - 2):
            one_batch()
        after = rss_bytes()
        assert after - before < 20 * 1024 * 1024, (before, after)
    finally:
        codec.close()
        swallowing.set()
        drainer.join(10)
        sink.close()
