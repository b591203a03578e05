"""Soak: mixed sync and async clients against sync and async servers sharing one queue.

Runs for --seconds (default 300), then prints calls, errors (must be 0) and the resident
memory of every process at the start and the end. Each process checks every result it gets.

    python benchmarks/soak.py [--seconds 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

URL = os.environ.get("AMQPRPC_TEST_URL", "amqp://guest:guest@127.0.0.1:5672/")


def rss_kib(pid: int | None = None) -> int:
    with open(f"/proc/{pid or os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Service:
    def mul(self, args: dict[str, int]) -> int:
        return args["A"] * args["B"]

    async def echo(self, arg: Any) -> Any:
        return arg


def serve(kind: str, queue: str) -> None:
    import amqprpc

    if kind == "sync":
        import amqprpc.sync

        server = amqprpc.sync.server_codec(URL, queue, amqprpc.Json, max_workers=8)
        server.register(Service())
        print("ready", flush=True)
        server.serve_forever()
        return

    import aioamqp

    async def main() -> None:
        _, protocol = await aioamqp.from_url(URL)
        server = await amqprpc.server_codec(protocol, queue, amqprpc.Json)
        server.register(Service())
        await server.started()
        print("ready", flush=True)
        await server.wait_closed()

    asyncio.run(main())


def client(kind: str, queue: str, seconds: float) -> None:
    import amqprpc

    calls = errors = 0
    start_rss = 0
    deadline = time.monotonic() + seconds
    if kind == "sync":
        import amqprpc.sync

        codec = amqprpc.sync.client_codec(URL, queue, amqprpc.Json, timeout=10)
        lock = threading.Lock()

        def worker(n: int) -> None:
            nonlocal calls, errors
            proxy = codec.client("Service")
            i = 0
            while time.monotonic() < deadline:
                i += 1
                try:
                    ok = proxy.Mul({"A": n, "B": i}) == n * i and proxy.Echo([n, i]) == [n, i]
                except amqprpc.RPCError:
                    ok = False
                with lock:
                    calls += 2
                    errors += not ok

        codec.call("Service.Mul", {"A": 1, "B": 1})
        start_rss = rss_kib()
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codec.close()
    else:
        import aioamqp

        async def main() -> None:
            nonlocal calls, errors, start_rss
            _, protocol = await aioamqp.from_url(URL)
            codec = await amqprpc.client_codec(protocol, queue, amqprpc.Json, timeout=10)
            proxy = codec.client("Service")

            async def worker(n: int) -> None:
                nonlocal calls, errors
                i = 0
                while time.monotonic() < deadline:
                    i += 1
                    try:
                        ok = await proxy.Mul({"A": n, "B": i}) == n * i
                    except amqprpc.RPCError:
                        ok = False
                    calls += 1
                    errors += not ok

            await proxy.Mul({"A": 1, "B": 1})
            start_rss = rss_kib()
            await asyncio.gather(*(worker(n) for n in range(50)))
            await codec.close()
            await protocol.close()

        asyncio.run(main())
    print(json.dumps({"calls": calls, "errors": errors, "rss_start": start_rss,
                      "rss_end": rss_kib()}), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--role", choices=["serve", "client"])
    parser.add_argument("--kind", choices=["sync", "async"])
    parser.add_argument("--queue")
    args = parser.parse_args()
    if args.role == "serve":
        serve(args.kind, args.queue)
        return
    if args.role == "client":
        client(args.kind, args.queue, args.seconds)
        return

    queue = f"amqprpc-soak-{uuid.uuid4().hex[:8]}"
    me = [sys.executable, __file__, "--queue", queue]
    servers = {
        kind: subprocess.Popen([*me, "--role", "serve", "--kind", kind], stdout=subprocess.PIPE,
                               text=True)
        for kind in ("sync", "async")
    }  # fmt: skip
    try:
        for proc in servers.values():
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        server_rss_start = {kind: rss_kib(proc.pid) for kind, proc in servers.items()}
        clients = {
            kind: subprocess.Popen(
                [*me, "--role", "client", "--kind", kind, "--seconds", str(args.seconds)],
                stdout=subprocess.PIPE, text=True,
            )
            for kind in ("sync", "async")
        }  # fmt: skip
        reports = {}
        for kind, proc in clients.items():
            out, _ = proc.communicate(timeout=args.seconds + 120)
            reports[kind] = json.loads(out.strip().splitlines()[-1])
        server_rss_end = {kind: rss_kib(proc.pid) for kind, proc in servers.items()}
    finally:
        for proc in servers.values():
            proc.terminate()
            proc.communicate(timeout=20)
        subprocess.run(["rabbitmqctl", "-q", "delete_queue", queue], capture_output=True)

    print(f"\nsoak: {args.seconds:.0f} s, sync (8 threads) and async (50 tasks) clients,"
          " sync and async servers on one queue")  # fmt: skip
    print(f"{'process':<22}{'calls':>10}{'errors':>8}{'RSS start KiB':>15}{'RSS end KiB':>13}")
    for kind, report in reports.items():
        print(f"{kind + ' client':<22}{report['calls']:>10}{report['errors']:>8}"
              f"{report['rss_start']:>15}{report['rss_end']:>13}")  # fmt: skip
    for kind in servers:
        print(f"{kind + ' server':<22}{'':>10}{'':>8}{server_rss_start[kind]:>15}"
              f"{server_rss_end[kind]:>13}")  # fmt: skip
    total_errors = sum(r["errors"] for r in reports.values())
    print(f"total calls {sum(r['calls'] for r in reports.values())}, errors {total_errors}")
    sys.exit(1 if total_errors else 0)


if __name__ == "__main__":
    main()
