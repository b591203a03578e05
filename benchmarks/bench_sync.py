"""Sync clients: amqprpc (pika) against raw pika request/reply loops, same run, same server.

Rows:
- seq: sequential calls on a BlockingConnection, p50/p99 latency in microseconds; baseline: a
  raw pika loop that publishes a request and pumps the connection until its reply arrives.
- threads: 16 threads sharing one thread-safe amqprpc client, calls/s; baseline: 16 threads
  each running the raw pika loop on a connection of its own (pika is not thread-safe).
The server is the raw aioamqp server of bench_aio.py in a child process. Rows alternate A/B
for several rounds; the table shows medians and ranges.

    python benchmarks/bench_sync.py [--seq 2000] [--threads 16] [--calls 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika

import amqprpc
import amqprpc.sync

URL = os.environ.get("AMQPRPC_TEST_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVER = Path(__file__).with_name("bench_aio.py")


class RawClient:
    """Hand-written go-amqprpc client on plain pika: publish, pump until the reply."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.conn = pika.BlockingConnection(pika.URLParameters(URL))
        self.channel = self.conn.channel()
        self.reply_queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)
        self.replies: dict[str, bytes] = {}
        self.counter = 0

    def _on_reply(self, ch: Any, method: Any, props: Any, body: bytes) -> None:
        self.replies[props.message_id] = body

    def call(self, args: dict[str, int]) -> Any:
        call_id = str(self.counter)
        self.counter += 1
        props = pika.BasicProperties(
            reply_to="Arith.Mul",
            correlation_id=self.reply_queue,
            message_id=call_id,
            expiration="60000",
        )
        body = json.dumps(args, separators=(",", ":")).encode()
        self.channel.basic_publish("", self.queue, body, props, mandatory=True)
        while call_id not in self.replies:
            self.conn.process_data_events(time_limit=1)
        return json.loads(self.replies.pop(call_id))

    def close(self) -> None:
        self.conn.close()


def seq_row(kind: str, queue: str, calls: int) -> list[float]:
    if kind == "raw":
        raw = RawClient(queue)
        call: Callable[[dict[str, int]], Any] = raw.call
        close: Callable[[], None] = raw.close
    else:
        conn = pika.BlockingConnection(pika.URLParameters(URL))
        codec = amqprpc.sync.client_codec(conn, queue, amqprpc.Json)
        call = codec.client("Arith").Mul

        def close() -> None:
            codec.close()
            conn.close()

    for i in range(max(calls // 10, 1)):
        call({"A": i, "B": 2})
    latencies = []
    for i in range(calls):
        start = time.perf_counter()
        assert call({"A": i, "B": 2}) == 2 * i
        latencies.append((time.perf_counter() - start) * 1e6)
    close()
    return latencies


def threads_row(kind: str, queue: str, threads: int, calls: int) -> float:
    per_thread = calls // threads
    codec = None
    if kind == "amqprpc":
        codec = amqprpc.sync.client_codec(URL, queue, amqprpc.Json, timeout=60)
        codec.call("Arith.Mul", {"A": 1, "B": 1})  # connect before the clock starts
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        if codec is not None:
            mul = codec.client("Arith").Mul
            barrier.wait()
            for i in range(per_thread):
                assert mul({"A": i, "B": 2}) == 2 * i
        else:
            raw = RawClient(queue)
            barrier.wait()
            for i in range(per_thread):
                assert raw.call({"A": i, "B": 2}) == 2 * i
            raw.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    if codec is not None:
        codec.close()
    return per_thread * threads / elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    queue = f"amqprpc-bench-{uuid.uuid4().hex[:8]}"
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "--serve", "raw", "--queue", queue],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        p50: dict[str, list[float]] = {"raw": [], "amqprpc": []}
        p99: dict[str, list[float]] = {"raw": [], "amqprpc": []}
        tput: dict[str, list[float]] = {"raw": [], "amqprpc": []}
        for _ in range(args.rounds):
            for kind in ("raw", "amqprpc"):
                lat = seq_row(kind, queue, args.seq)
                p50[kind].append(pct(lat, 0.5))
                p99[kind].append(pct(lat, 0.99))
                tput[kind].append(threads_row(kind, queue, args.threads, args.calls))
    finally:
        server.terminate()
        server.wait(10)
        subprocess.run(["rabbitmqctl", "-q", "delete_queue", queue], capture_output=True)

    def med(values: list[float]) -> float:
        return statistics.median(values)

    def ratio(a: list[float], b: list[float]) -> str:
        rs = [x / y for x, y in zip(a, b, strict=True)]
        return f"{med(rs):.2f} ({min(rs):.2f}-{max(rs):.2f})"

    print(
        f"\nsync clients: seq {args.seq} calls; {args.threads} threads x "
        f"{args.calls // args.threads} calls; {args.rounds} rounds (medians)"
    )
    print(f"{'row':<44}{'raw pika':>14}{'amqprpc':>14}{'ratio (range)':>22}")
    print(
        f"{'seq p50 latency (us)':<44}{med(p50['raw']):>14.0f}{med(p50['amqprpc']):>14.0f}"
        f"{ratio(p50['amqprpc'], p50['raw']):>22}"
    )
    print(
        f"{'seq p99 latency (us)':<44}{med(p99['raw']):>14.0f}{med(p99['amqprpc']):>14.0f}"
        f"{ratio(p99['amqprpc'], p99['raw']):>22}"
    )
    print(
        f"{f'{args.threads} threads, calls/s':<44}{med(tput['raw']):>14.0f}"
        f"{med(tput['amqprpc']):>14.0f}{ratio(tput['amqprpc'], tput['raw']):>22}"
    )


if __name__ == "__main__":
    main()
