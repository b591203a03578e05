"""A demo: a server and its clients calling it, with timings, on the in-memory broker (no
RabbitMQ needed) or on a real one (`--url`).

    python -m amqprpc.demo [--url amqp://guest:guest@127.0.0.1:5672/] [--calls 2000]

Serves `Arith` on the async server, calls it from the async client (and from the sync one
when pika is installed), and prints what each step took. Exits non-zero if any answer is
wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import amqprpc
import amqprpc.aio

from .._urls import redacted
from ..testing import MemoryBroker

__all__ = ["Arith", "add_arguments", "demo", "main", "run"]


class Arith:
    """The demo's service, as examples/pyserver.py serves it."""

    def mul(self, args: dict[str, int]) -> int:
        """A * B, in the server's thread pool."""
        return args["A"] * args["B"]

    async def div(self, args: dict[str, int]) -> dict[str, int]:
        """Quotient and remainder, on the server's event loop."""
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return {"Quo": args["A"] // args["B"], "Rem": args["A"] % args["B"]}


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _timed(what: str, count: int, calls: Callable[[], Awaitable[None]]) -> None:
    started = time.perf_counter()
    await calls()
    took = time.perf_counter() - started
    rate = f"{count / took:>9,.0f} calls/s" if count > 1 else " " * 16
    _out(f"  {what:<44} {took * 1000:>9.1f} ms {rate}")


async def run(where: Any, calls: int) -> None:
    """Serve Arith on `where` (a MemoryBroker or URLs), call it `calls` times each way and
    print the timings. Raises AssertionError on a wrong answer."""
    queue = f"amqprpc-demo-{uuid.uuid4().hex[:8]}"
    server = await amqprpc.aio.server_codec(where, queue, amqprpc.Json)
    server.register(Arith())
    await server.started()
    client = await amqprpc.aio.client_codec(where, queue, amqprpc.Json, timeout=10)
    try:
        arith = client.client("Arith")

        async def first() -> None:
            assert await arith.Mul({"A": 6, "B": 7}) == 42

        async def sequential() -> None:
            for n in range(calls):
                assert await arith.Mul({"A": n, "B": 2}) == 2 * n

        async def concurrent() -> None:
            results = await asyncio.gather(*(arith.Mul({"A": n, "B": 3}) for n in range(calls)))
            assert results == [3 * n for n in range(calls)]

        async def error() -> None:
            try:
                await arith.Div({"A": 1, "B": 0})
            except amqprpc.RemoteError as exc:
                assert str(exc) == "divide by zero"
            else:
                raise AssertionError("Arith.Div by zero did not fail")

        await _timed("async: first call, Arith.Mul 6*7 = 42", 1, first)
        await _timed(f"async: {calls} calls, one after another", calls, sequential)
        await _timed(f"async: {calls} calls, all at once", calls, concurrent)
        await _timed("async: Arith.Div 1/0 -> RemoteError", 1, error)
        if importlib.util.find_spec("pika") is not None:
            await _sync_calls(where, queue, calls)
        else:
            _out("  (pip install 'amqprpc[pika]' to see the sync client too)")
    finally:
        await client.close()
        await server.close()


async def _sync_calls(where: Any, queue: str, calls: int) -> None:
    import amqprpc.sync

    codec = amqprpc.sync.client_codec(where, queue, amqprpc.Json, timeout=10)
    latencies: list[float] = []

    def sequential() -> None:
        for n in range(calls):
            started = time.perf_counter()
            assert codec.call("Arith.Mul", {"A": n, "B": 5}) == 5 * n
            latencies.append(time.perf_counter() - started)

    async def in_thread() -> None:
        await asyncio.to_thread(sequential)

    try:
        await _timed(f"sync (thread-safe client): {calls} calls", calls, in_thread)
    finally:
        await asyncio.to_thread(codec.close)
    p50 = statistics.median(latencies) * 1e6
    _out(f"  {'sync: median latency':<44} {p50:>9.0f} us")


def demo(urls: list[str] | None, calls: int) -> int:
    """Run the demo on `urls` (None: the in-memory broker), `calls` calls per step; prints
    the timings. Returns the exit status: 0 when every answer was right."""
    where: Any = urls if urls else MemoryBroker()
    shown = ", ".join(map(redacted, urls)) if urls else "the in-memory broker (amqprpc.testing)"
    _out(f"amqprpc {amqprpc.__version__} demo on {shown}")
    try:
        asyncio.run(run(where, calls))
    except amqprpc.RPCError as exc:
        _out(f"FAILED: {type(exc).__name__}: {exc}")
        return 1
    _out("every answer was right")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The demo's options: `--url` (repeatable) and `--calls`."""
    parser.add_argument("--url", action="append", help="a real broker (default: in memory)")
    parser.add_argument("--calls", type=int, default=2000, help="calls per step (2000)")


def main(argv: list[str] | None = None) -> int:
    """Run the demo with command-line arguments `argv`; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m amqprpc.demo", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    add_arguments(parser)
    args = parser.parse_args(argv)
    return demo(args.url, args.calls)
