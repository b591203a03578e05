"""Faults on a real broker at the limits: no server, size limits, and memory under endless
timeouts."""

from __future__ import annotations

import asyncio
import gc
import os
import statistics
import threading
import time
from typing import Any

import pika
import pytest

import amqprpc
import amqprpc.protocol
import amqprpc.sync
from tests.backends import swallow_requests
from tests.integration.faults_helpers import Holder
from tests.integration.raw import queue_counts

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


BATCHES, WARM_UP = 20, 4  # of 5,000 calls: 100,000 in all
# Growth allowed between two plateaus 40,000 calls apart. Objects tracked by the garbage
# collector: one left behind per call would be 40,000. RSS, generously: allocators differ
# (on Python 3.13 RSS climbs for longer and swings by 10 MiB around its plateau, more so in
# a process that has run the rest of the suite), so each plateau is a median.
MAX_OBJECTS = 2000
MAX_RSS = 16 * 1024 * 1024


def sample() -> tuple[int, int]:
    """(RSS bytes, objects the garbage collector tracks), after a collection."""
    gc.collect()
    return rss_bytes(), len(gc.get_objects())


def plateau_growth(samples: list[tuple[int, int]]) -> tuple[int, int]:
    """Growth of RSS and of tracked objects from the first plateau (after the warm-up) to
    the second: the medians of the two halves of what comes after it."""
    rest = samples[WARM_UP:]
    first, second = rest[: len(rest) // 2], rest[len(rest) // 2 :]

    def rise(i: int) -> int:
        return int(statistics.median(s[i] for s in second) - statistics.median(s[i] for s in first))

    return rise(0), rise(1)


def assert_levelled_off(samples: list[tuple[int, int]]) -> None:
    rss, objects = plateau_growth(samples)
    assert objects < MAX_OBJECTS, [s[1] for s in samples]
    assert rss < MAX_RSS, [s[0] for s in samples]


@pytest.mark.slow
async def test_100k_timed_out_calls_leave_nothing_behind_async(
    amqp: Any, queue_name: str, broker_url: str
) -> None:
    # A consumer that swallows every request: no reply ever comes, nothing piles up.
    stop_swallowing = await swallow_requests(amqp, queue_name)
    assert await asyncio.to_thread(queue_counts, broker_url, queue_name) == (0, 1)
    codec = await amqprpc.client_codec(amqp, queue_name, amqprpc.Json, timeout=0.2)
    batch = 5000

    async def one_batch() -> None:
        results = await asyncio.gather(
            *(codec.call("X.Y", i) for i in range(batch)), return_exceptions=True
        )
        assert all(isinstance(r, amqprpc.RPCTimeout) for r in results)

    samples = []
    for _ in range(BATCHES):
        await one_batch()
        samples.append(sample())
    assert codec.pending == 0
    assert codec.stats.by_state[amqprpc.protocol.CallState.TIMED_OUT] == 100_000
    assert len(codec._proto.pending._heap) < 2048  # no stale deadlines kept
    assert_levelled_off(samples)
    assert await asyncio.to_thread(queue_counts, broker_url, queue_name) == (0, 1)  # swallowed
    await codec.close()
    await stop_swallowing()


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
        samples = []
        for _ in range(BATCHES):
            one_batch()
            samples.append(sample())
        assert_levelled_off(samples)
    finally:
        codec.close()
        swallowing.set()
        drainer.join(10)
        sink.close()
