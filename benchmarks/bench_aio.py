"""Async throughput: amqprpc (aioamqp) against a raw aioamqp request/reply loop.

Each row runs N calls with C in flight from a client in this process to a server in a child
process, after a warm-up. The raw loop speaks the same wire protocol with every feature the
library uses switched on (mandatory, expiration, ack after reply), so the ratio is what the
library costs or saves. Rows alternate A/B for several rounds; the table shows medians.

    python benchmarks/bench_aio.py [--calls 10000] [--inflight 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import aioamqp

import amqprpc

URL = os.environ.get("AMQPRPC_TEST_URL", "amqp://guest:guest@127.0.0.1:5672/")


class Arith:
    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]


async def serve_amqprpc(queue: str) -> None:
    _, protocol = await aioamqp.from_url(URL)
    server = await amqprpc.server_codec(protocol, queue, amqprpc.Json, max_concurrency=200)

    async def mul(args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    server.register(mul, name="Arith.Mul")
    await server.started()
    print("ready", flush=True)
    await server.wait_closed()


async def serve_raw(queue: str) -> None:
    _, protocol = await aioamqp.from_url(URL)
    channel = await protocol.channel()
    await channel.queue_declare(queue)
    await channel.basic_qos(prefetch_count=200)

    async def on_request(ch: Any, body: bytes, envelope: Any, props: Any) -> None:
        args = json.loads(body)
        reply = json.dumps(args["A"] * args["B"], separators=(",", ":")).encode()
        properties = {
            "correlation_id": props.correlation_id,
            "reply_to": props.reply_to,
            "message_id": props.message_id,
        }
        await ch.basic_publish(reply, "", props.correlation_id, properties=properties)
        await ch.basic_client_ack(envelope.delivery_tag)

    await channel.basic_consume(on_request, queue_name=queue)
    print("ready", flush=True)
    await channel.close_event.wait()


async def client_amqprpc(queue: str, calls: int, inflight: int) -> float:
    _, protocol = await aioamqp.from_url(URL)
    codec = await amqprpc.client_codec(protocol, queue, amqprpc.Json, timeout=60)
    mul = codec.client("Arith").Mul

    async def worker(count: int) -> None:
        for i in range(count):
            assert await mul({"A": i, "B": 2}) == 2 * i

    async def burst(total: int) -> float:
        start = time.perf_counter()
        await asyncio.gather(*(worker(total // inflight) for _ in range(inflight)))
        return time.perf_counter() - start

    await burst(min(1000, calls))
    elapsed = await burst(calls)
    await codec.close()
    await protocol.close()
    return calls / elapsed


async def client_raw(queue: str, calls: int, inflight: int) -> float:
    _, protocol = await aioamqp.from_url(URL)
    futures: dict[str, asyncio.Future[bytes]] = {}

    async def on_reply(ch: Any, body: bytes, envelope: Any, props: Any) -> None:
        future = futures.pop(props.message_id, None)
        if future is not None:
            future.set_result(body)

    async def on_return(ch: Any, body: bytes, envelope: Any, props: Any) -> None:
        futures.pop(props.message_id).set_exception(LookupError("unroutable"))

    channel = await protocol.channel(return_callback=on_return)
    reply_queue = (await channel.queue_declare("", exclusive=True, auto_delete=True))["queue"]
    await channel.basic_consume(on_reply, queue_name=reply_queue, no_ack=True)
    counter = iter(range(1 << 62))
    loop = asyncio.get_running_loop()

    async def call(args: dict[str, int]) -> Any:
        call_id = str(next(counter))
        future = futures[call_id] = loop.create_future()
        properties = {
            "correlation_id": reply_queue,
            "reply_to": "Arith.Mul",
            "message_id": call_id,
            "expiration": "60000",
        }
        body = json.dumps(args, separators=(",", ":")).encode()
        await channel.basic_publish(body, "", queue, properties=properties, mandatory=True)
        return json.loads(await asyncio.wait_for(future, 60))

    async def worker(count: int) -> None:
        for i in range(count):
            assert await call({"A": i, "B": 2}) == 2 * i

    async def burst(total: int) -> float:
        start = time.perf_counter()
        await asyncio.gather(*(worker(total // inflight) for _ in range(inflight)))
        return time.perf_counter() - start

    await burst(min(1000, calls))
    elapsed = await burst(calls)
    await protocol.close()
    return calls / elapsed


def run_row(kind: str, calls: int, inflight: int) -> float:
    queue = f"amqprpc-bench-{uuid.uuid4().hex[:8]}"
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--queue", queue],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        client = client_amqprpc if kind == "amqprpc" else client_raw
        return asyncio.run(client(queue, calls, inflight))
    finally:
        server.terminate()
        server.wait(10)
        subprocess.run(["rabbitmqctl", "-q", "delete_queue", queue], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--inflight", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", choices=["amqprpc", "raw"])
    parser.add_argument("--queue")
    args = parser.parse_args()
    if args.serve:
        asyncio.run((serve_amqprpc if args.serve == "amqprpc" else serve_raw)(args.queue))
        return
    results: dict[str, list[float]] = {"raw": [], "amqprpc": []}
    for _ in range(args.rounds):
        for kind in ("raw", "amqprpc"):
            results[kind].append(run_row(kind, args.calls, args.inflight))
    ratios = [a / r for a, r in zip(results["amqprpc"], results["raw"], strict=True)]
    print(f"\nasync tput: {args.calls} calls, {args.inflight} in flight, {args.rounds} rounds")
    print(f"{'row':<34}{'calls/s (median)':>18}{'range':>20}")
    for kind, label in (
        ("raw", "raw aioamqp loop (baseline)"),
        ("amqprpc", "amqprpc async->async"),
    ):
        values = results[kind]
        span = f"{min(values):.0f}-{max(values):.0f}"
        print(f"{label:<34}{statistics.median(values):>18.0f}{span:>20}")
    print(
        f"{'ratio amqprpc/raw':<34}{statistics.median(ratios):>18.2f}"
        f"{f'{min(ratios):.2f}-{max(ratios):.2f}':>20}"
    )


if __name__ == "__main__":
    main()
