"""Faults on a real broker with calls in flight: cut connections, killed servers and stale
work. Cuts go through a fault-injecting proxy; the shared broker itself is never touched."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.sync
from tests.backends import ASYNC_BACKENDS, async_servers, close_async, connect_async
from tests.faults import TcpProxy
from tests.integration.faults_helpers import Holder
from tests.integration.peers import AsyncServerThread, SyncServerThread

ROOT = Path(__file__).resolve().parents[2]
SERVERS = {**async_servers(), "sync-server": SyncServerThread}


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


# -- 1. a connection cut with 1,000 calls in flight ------------------------------------------


async def test_cut_with_1000_calls_in_flight_async(
    holder_server: AsyncServerThread, proxy: TcpProxy, queue_name: str, aio_backend: str
) -> None:
    loop = asyncio.get_running_loop()
    protocol = await connect_async(aio_backend, proxy.url)
    codec = await amqprpc.client_codec(protocol, queue_name, amqprpc.Json, timeout=60)
    ended: dict[int, float] = {}

    async def timed(i: int) -> Any:
        try:
            return await codec.call("Holder.Hold", i)
        finally:  # inside the call's own task: read before anything awaits its end
            ended[i] = loop.time()

    calls = [asyncio.ensure_future(timed(i)) for i in range(1000)]
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
    await close_async(protocol)


def test_cut_with_1000_calls_in_flight_thread_safe_sync(
    holder_server: AsyncServerThread, proxy: TcpProxy, queue_name: str
) -> None:
    codec = amqprpc.sync.client_codec(proxy.url, queue_name, amqprpc.Json, timeout=60)
    ended: dict[int, float] = {}
    recorded = threading.Condition()

    def on_end(i: int) -> Any:
        def record(_: Any) -> None:
            with recorded:
                ended[i] = time.monotonic()
                recorded.notify_all()

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
    # A future's done-callbacks run just after its waiters wake: wait for the last of them.
    with recorded:
        assert recorded.wait_for(lambda: len(ended) == 1000, timeout=10)
    for i in range(1, 1000, 2):
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
import amqprpc, amqprpc.sync
from tests.backends import connect_async

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
    async def main():  # kind: the async backend
        protocol = await connect_async(kind, url)
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
@pytest.mark.parametrize("kind", [*ASYNC_BACKENDS, "sync"])
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


@pytest.mark.parametrize("kind", list(SERVERS))
def test_request_of_a_caller_that_timed_out_is_not_executed(
    broker_url: str, queue_name: str, kind: str
) -> None:
    # The queue exists but nobody consumes it yet: the request waits, then expires.
    declare = amqprpc.sync.server_codec(broker_url, queue_name, amqprpc.Json)
    with amqprpc.sync.client_codec(broker_url, queue_name, amqprpc.Json) as codec:
        with pytest.raises(amqprpc.RPCTimeout):
            codec.call("Recorder.Run", "stale", timeout=0.2)
        recorder = Recorder()
        server = SERVERS[kind](broker_url, queue_name, amqprpc.Json, recorder).start()
        try:
            assert codec.call("Recorder.Run", "fresh", timeout=10) == "fresh"
        finally:
            server.stop()
    declare.close()
    assert recorder.seen == ["fresh"]


@pytest.mark.parametrize("client", [*ASYNC_BACKENDS, "sync"])
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

    async def main() -> None:  # client: the async backend
        protocol = await connect_async(client, broker_url)
        codec = await amqprpc.client_codec(protocol, queue_name, amqprpc.Json)
        with pytest.raises(amqprpc.RPCTimeout):
            await codec.call("Holder.Slow", {"s": 0.5}, timeout=0.1)
        assert await codec.call("Holder.Slow", {"s": 0.6}, timeout=5) == "late"
        assert codec.stats.late == 1
        assert codec.pending == 0
        await codec.close()
        await close_async(protocol)

    asyncio.run(main())
