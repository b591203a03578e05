"""Failover on a 3-node cluster (tests/cluster.py) with a quorum request queue.

Both servers (sync, with serve_forever(reconnect=True), and async, with reconnect=True)
and all three clients connect to node 1 first. The clients run calls for DURATION seconds:
the thread-safe sync client (given every node's URL), a sync client on a caller's
BlockingConnection and an async client on a caller's aioamqp connection (those callers
connect again, to the next node, after a ConnectionLost, as users do). During the run node
1 is killed (SIGKILL) and later started again, then the queue's leader is killed and
started again.

Asserted: no wrong result, no call past its deadline (+0.5 s), the thread-safe client's
call after a loss goes to a live node, both servers serve to the end, and every client
and server works after the run. Printed: calls ok / ConnectionLost / RPCTimeout per client.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aioamqp
import pika
import pytest

import amqprpc
import amqprpc.aio
import amqprpc.sync
from tests.cluster import REPORT, Cluster

pytestmark = pytest.mark.slow

DURATION = float(os.environ.get("AMQPRPC_FAILOVER_SECONDS", "60"))
TIMEOUT = 5.0  # each call's
SLACK = 0.5
OUTCOMES = ("ok", "ConnectionLost", "RPCTimeout")


class Calc:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0

    def mul(self, args: dict[str, int]) -> dict[str, Any]:
        self.calls += 1
        return {"P": args["A"] * args["B"], "By": self.name}


class Tally:
    """Outcomes of one client's calls, and what must never happen."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.wrong: list[str] = []
        self.late: list[float] = []
        self.failures: list[float] = []  # when calls failed, on the monotonic clock

    def record(self, outcome: str, elapsed: float, problem: str | None = None) -> None:
        with self.lock:
            self.counts[outcome] += 1
            if outcome != "ok":
                self.failures.append(time.monotonic() - elapsed)
            if problem is not None:
                self.wrong.append(problem)
            if elapsed > TIMEOUT + SLACK:
                self.late.append(elapsed)


def windows(times: list[float], since: float) -> str:
    """When calls that failed were started, as spans of seconds into the run."""
    spans: list[list[float]] = []
    for moment in sorted(t - since for t in times):
        if spans and moment - spans[-1][1] < 1.0:
            spans[-1][1] = moment
        else:
            spans.append([moment, moment])
    return ", ".join(f"{a:.1f}-{b:.1f}" for a, b in spans)


def checked(tally: Tally, started: float, args: dict[str, int], result: Any) -> None:
    problem = None
    if not isinstance(result, dict) or result.get("P") != args["A"] * args["B"]:
        problem = f"{args} -> {result!r}"
    tally.record("ok", time.monotonic() - started, problem)


def failed(tally: Tally, started: float, exc: amqprpc.RPCError) -> None:
    kind = "RPCTimeout" if isinstance(exc, amqprpc.RPCTimeout) else "ConnectionLost"
    if not isinstance(exc, (amqprpc.RPCTimeout, amqprpc.ConnectionLost)):
        kind = type(exc).__name__  # an Unroutable, say: reported, and fails the test
    tally.record(kind, time.monotonic() - started)


def new_args() -> dict[str, int]:
    return {"A": random.randrange(1, 10**6), "B": random.randrange(1, 10**6)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    nodes = Cluster(Path(tmp_path_factory.mktemp("cluster")))
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


def thread_safe_load(urls: list[str], queue: str, until: float, tally: Tally) -> None:
    with amqprpc.sync.client_codec(urls, queue, amqprpc.Json, timeout=TIMEOUT) as client:
        pending: collections.deque[tuple[float, dict[str, int], Any]] = collections.deque()
        while time.monotonic() < until or pending:
            while time.monotonic() < until and len(pending) < 8:
                args = new_args()
                pending.append((time.monotonic(), args, client.call_async("Calc.Mul", args)))
            started, args, future = pending.popleft()
            try:
                checked(tally, started, args, future.result(TIMEOUT + 5))
            except amqprpc.RPCError as exc:
                failed(tally, started, exc)


def caller_connection_load(urls: list[str], queue: str, until: float, tally: Tally) -> None:
    while time.monotonic() < until:
        parameters = [pika.URLParameters(url) for url in urls]
        try:
            connection = pika.BlockingConnection(parameters)
        except pika.exceptions.AMQPError:
            continue  # every node refused: the next round tries again
        try:
            client = amqprpc.sync.client_codec(connection, queue, amqprpc.Json, timeout=TIMEOUT)
            while time.monotonic() < until:
                args, started = new_args(), time.monotonic()
                try:
                    checked(tally, started, args, client.call("Calc.Mul", args))
                except amqprpc.ConnectionLost as exc:
                    failed(tally, started, exc)
                    break
                except amqprpc.RPCError as exc:
                    failed(tally, started, exc)
        except amqprpc.ConnectionLost:
            pass  # making the codec failed: connect again
        finally:
            if connection.is_open:
                connection.close()


async def async_load(urls: list[str], queue: str, until: float, tally: Tally) -> None:
    while time.monotonic() < until:
        connected = None
        for url in urls:
            try:
                connected = await asyncio.wait_for(aioamqp.from_url(url), 5)
                break
            except (OSError, asyncio.TimeoutError, aioamqp.AioamqpException):
                continue
        if connected is None:
            await asyncio.sleep(0.1)  # every node refused: try the list again
            continue
        transport, protocol = connected
        try:
            client = await amqprpc.client_codec(protocol, queue, amqprpc.Json, timeout=TIMEOUT)
        except amqprpc.RPCError:
            transport.close()
            continue
        lost = asyncio.Event()
        await asyncio.gather(*(calls(client, until, tally, lost) for _ in range(8)))
        await client.close()
        if protocol.state == aioamqp.protocol.OPEN:
            await protocol.close()
        transport.close()


async def calls(client: Any, until: float, tally: Tally, lost: asyncio.Event) -> None:
    while time.monotonic() < until and not lost.is_set():
        args, started = new_args(), time.monotonic()
        try:
            checked(tally, started, args, await client.call("Calc.Mul", args))
        except amqprpc.ConnectionLost as exc:
            failed(tally, started, exc)
            lost.set()  # the connection is gone: the caller connects again
        except amqprpc.RPCError as exc:
            failed(tally, started, exc)


def in_thread(target: Callable[..., None], *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


async def test_calls_survive_losing_the_servers_node_and_the_queues_leader(
    cluster: Cluster,
) -> None:
    queue = f"amqprpc-failover-{uuid.uuid4().hex[:8]}"
    urls = cluster.urls[1:] + cluster.urls[:1]  # everyone tries node 1, then 2, then 0
    sync_calc, async_calc = Calc("sync"), Calc("async")
    sync_server = amqprpc.sync.server_codec(urls, queue, amqprpc.Json, declare="quorum")
    sync_server.register(sync_calc)
    serving = in_thread(lambda: sync_server.serve_forever(reconnect=True))
    async_server = await amqprpc.aio.server_codec(
        urls, queue, amqprpc.Json, declare="quorum", reconnect=True
    )
    async_server.register(async_calc)
    await async_server.started()
    assert await asyncio.to_thread(sync_server.wait_started, 15)
    assert cluster.connected_to(queue) == {1}

    tallies = {name: Tally() for name in ("thread-safe", "caller-connection", "async")}
    began = time.monotonic()
    until = began + DURATION
    loads = [
        in_thread(thread_safe_load, urls, queue, until, tallies["thread-safe"]),
        in_thread(caller_connection_load, urls, queue, until, tallies["caller-connection"]),
    ]
    async_loaded = asyncio.ensure_future(async_load(urls, queue, until, tallies["async"]))
    events = []
    try:
        await asyncio.sleep(DURATION * 0.15)  # the schedule of the run, not synchronisation
        await asyncio.to_thread(cluster.kill, 1)
        events.append(f"{time.monotonic() - began:.1f} s: killed node 1 (everyone's)")
        await asyncio.sleep(DURATION * 0.2)
        await asyncio.to_thread(cluster.revive, 1)
        leader = await asyncio.to_thread(cluster.leader, queue)
        await asyncio.to_thread(cluster.kill, leader)
        killed_its_node = [1] + ([leader] if leader == 2 else [])  # it moved on to node 2
        events.append(
            f"{time.monotonic() - began:.1f} s: node 1 back, killed node {leader} (the leader)"
        )
        calls_then = sync_calc.calls, async_calc.calls
        await asyncio.sleep(DURATION * 0.2)
        await asyncio.to_thread(cluster.revive, leader)
        events.append(f"{time.monotonic() - began:.1f} s: node {leader} back")
        await async_loaded
        for load in loads:
            await asyncio.to_thread(load.join, TIMEOUT + 30)
            assert not load.is_alive()

        REPORT.append(f"a {DURATION:g} s run: " + "; ".join(events))
        for name, tally in tallies.items():
            row = "  ".join(f"{kind} {tally.counts[kind]:6d}" for kind in OUTCOMES)
            other = {k: v for k, v in tally.counts.items() if k not in OUTCOMES}
            REPORT.append(f"  {name:18s} {row}  {other or ''}")
            REPORT.append(f"  {'':18s} failed calls started at {windows(tally.failures, began)}")
        for name, tally in tallies.items():
            assert tally.wrong == [], (name, tally.wrong[:5])
            assert tally.late == [], (name, max(tally.late))
            assert set(tally.counts) <= set(OUTCOMES), (name, tally.counts)
            assert tally.counts["ok"] > 0, name
        assert sync_calc.calls > calls_then[0] and async_calc.calls > calls_then[1]
        # The thread-safe client's next call after a loss goes to a live node: only the
        # calls in flight when its node died (8 at most, each time) saw ConnectionLost.
        assert tallies["thread-safe"].counts["ConnectionLost"] <= 8 * len(killed_its_node)

        # Afterwards every client and server works: a fresh round of each client, and both
        # servers answer (each serves some of 40 calls).
        before = sync_calc.calls, async_calc.calls
        after = {name: Tally() for name in tallies}
        end = time.monotonic() + 3
        await asyncio.gather(
            asyncio.to_thread(thread_safe_load, urls, queue, end, after["thread-safe"]),
            asyncio.to_thread(caller_connection_load, urls, queue, end, after["caller-connection"]),
            async_load(urls, queue, end, after["async"]),
        )
        for name, tally in after.items():
            assert tally.counts["ok"] > 0, (name, tally.counts)
            assert tally.wrong == [] and tally.late == [], name
        assert sync_calc.calls > before[0] and async_calc.calls > before[1]
    finally:
        sync_server.stop()
        await asyncio.to_thread(serving.join, 30)
        await async_server.close()
    assert not serving.is_alive()
