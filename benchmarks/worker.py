"""One benchmark process, started by run.py: a server, a client, or a broker-free measure.

    python benchmarks/worker.py server KIND QUEUE
    python benchmarks/worker.py client KIND QUEUE --calls N --inflight C --warmup W
    python benchmarks/worker.py core json|msgpack --calls N [--core-first]
    python benchmarks/worker.py memory --calls N [--core-first]

A server prints "ready" and serves until it is terminated. A client follows harness's
warm/go hand-shake and prints its figures as one JSON line. core and memory print one JSON
line with the library's figure and its baseline's, measured one after the other.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import tracemalloc
from typing import Any


def serve(kind: str, queue: str) -> None:
    import peers_aio

    if os.environ.get("AMQPRPC_BENCH_PROFILE"):
        # Under cProfile (run.py --profile) a terminated server must exit through Python
        # for its profile to be written.
        def stop(signum: int, frame: object) -> None:
            raise SystemExit(0)

        signal.signal(signal.SIGTERM, stop)

    asyncio.run(peers_aio.SERVERS[kind](queue))


def client(kind: str, queue: str, calls: int, inflight: int, warmup: int) -> None:
    import peers_aio
    import peers_sync

    if kind in peers_aio.CLIENTS:
        asyncio.run(peers_aio.CLIENTS[kind](queue, calls, inflight, warmup))
    else:
        peers_sync.CLIENTS[kind](queue, calls, inflight, warmup)


def core(formatter_name: str, calls: int, core_first: bool) -> dict[str, Any]:
    """bench_core.py's measure: CPU us per call of the sans-IO core, both sides together,
    against encoding and decoding the same argument and result and nothing else."""
    import bench_core

    import amqprpc

    formatter = amqprpc.Json() if formatter_name == "json" else amqprpc.MsgPack()
    bench_core.core_loop(formatter, min(calls, 1000))  # warm-up
    bench_core.baseline_loop(formatter, min(calls, 1000))
    figures: dict[str, Any] = {}
    order = ("core", "base") if core_first else ("base", "core")
    for which in order:
        loop = bench_core.core_loop if which == "core" else bench_core.baseline_loop
        figures[f"{which}_us"] = loop(formatter, calls)
    return figures


def table_memory(calls: int) -> float:
    """The least a pending-call table can hold: call id -> (deadline, token), with the ids
    kept by the callers, measured as bench_core.pending_memory measures the core's."""
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    table: dict[str, tuple[float, object]] = {}
    kept = []
    for i in range(calls):
        call_id = str(i)
        table[call_id] = (60.0 + i, None)
        kept.append(call_id)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(table) == calls
    return (after - before - kept.__sizeof__()) / calls


def memory(calls: int, core_first: bool) -> dict[str, Any]:
    """bench_core.py's bytes per pending call, against the bare table of table_memory."""
    import bench_core

    figures: dict[str, Any] = {}
    for which in ("core", "base") if core_first else ("base", "core"):
        measure = bench_core.pending_memory if which == "core" else table_memory
        figures[f"{which}_bytes"] = measure(calls)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    server_parser = sub.add_parser("server")
    server_parser.add_argument("kind")
    server_parser.add_argument("queue")
    client_parser = sub.add_parser("client")
    client_parser.add_argument("kind")
    client_parser.add_argument("queue")
    client_parser.add_argument("--calls", type=int, required=True)
    client_parser.add_argument("--inflight", type=int, default=1)
    client_parser.add_argument("--warmup", type=int, default=0)
    core_parser = sub.add_parser("core")
    core_parser.add_argument("formatter", choices=["json", "msgpack"])
    core_parser.add_argument("--calls", type=int, default=20_000)
    core_parser.add_argument("--core-first", action="store_true")
    memory_parser = sub.add_parser("memory")
    memory_parser.add_argument("--calls", type=int, default=10_000)
    memory_parser.add_argument("--core-first", action="store_true")
    args = parser.parse_args()
    if args.mode == "server":
        serve(args.kind, args.queue)
    elif args.mode == "client":
        client(args.kind, args.queue, args.calls, args.inflight, args.warmup)
    elif args.mode == "core":
        print(json.dumps(core(args.formatter, args.calls, args.core_first)), flush=True)
    else:
        print(json.dumps(memory(args.calls, args.core_first)), flush=True)


if __name__ == "__main__":
    main()
