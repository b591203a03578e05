"""Running the benchmark rows: one side as a fresh server and client child process on a fresh
queue, a broker-free measure in a child, and one round of a group of rows."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from render import fmt_us
from suite import (
    CORE_CALLS,
    PENDING,
    QUICK_CORE_CALLS,
    QUICK_WORKLOADS,
    SIDES,
    WORKLOADS,
    Row,
    Side,
    Workload,
)

HERE = harness.HERE
WORKER = HERE / "worker.py"


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Context:
    run_id: str
    quick: bool
    go_bin: dict[str, str] = field(default_factory=dict)
    profile_dir: Path | None = None

    def python(self, role: str, side: Side, round_no: int) -> list[str]:
        """The interpreter's argv for a child; under cProfile with --profile."""
        if self.profile_dir is None:
            return [sys.executable]
        name = f"r{round_no + 1}-{side.client}-to-{side.server}-{role}.prof"
        return [sys.executable, "-m", "cProfile", "-o", str(self.profile_dir / name)]

    def workload(self, name: str) -> Workload:
        return (QUICK_WORKLOADS if self.quick else WORKLOADS)[name]

    def server_argv(self, side: Side, queue: str, round_no: int) -> list[str]:
        kind = side.server
        if kind == "go":
            return [self.go_bin["peer"], "-mode", "server", "-queue", queue, "-url", harness.URL]
        return [*self.python("server", side, round_no), str(WORKER), "server", kind, queue]

    def client_argv(self, side: Side, queue: str, work: Workload, round_no: int) -> list[str]:
        kind = side.client
        if kind == "go":
            return [
                self.go_bin["benchclient"], "-queue", queue, "-url", harness.URL,
                "-n", str(work.calls), "-c", str(work.inflight), "-warmup", str(work.warmup),
            ]  # fmt: skip
        return [
            *self.python("client", side, round_no), str(WORKER), "client", kind, queue,
            "--calls", str(work.calls),
            "--inflight", str(work.inflight), "--warmup", str(work.warmup),
        ]  # fmt: skip


def run_side(side: Side, ctx: Context, round_no: int) -> dict[str, Any]:
    """Run one side once: fresh server, fresh client, fresh queue (deleted after)."""
    work = ctx.workload(side.workload)
    queue = harness.new_queue(ctx.run_id)
    children: list[harness.Child] = []
    try:
        server = harness.Child(f"{side.server} server", ctx.server_argv(side, queue, round_no))
        children.append(server)
        server.expect("ready", 60)
        client = harness.Child(
            f"{side.client} client", ctx.client_argv(side, queue, work, round_no), stdin=True
        )
        children.insert(0, client)
        client.expect("warm", 300)
        server_cpu, client_cpu = server.cpu(), client.cpu()
        client.send("go")
        line = client.readline(600)
        server_cpu = server.cpu() - server_cpu
        try:
            client_cpu = client.cpu() - client_cpu
        except OSError:  # a Python client may be gone already; it reports its own
            client_cpu = math.nan
        figures: dict[str, Any] = json.loads(line)
    finally:
        for child in children:
            child.stop()
        harness.delete_queues([queue])
    if figures.get("failures"):
        raise harness.ChildError(f"{side.label}: {figures['failures']} calls failed")
    calls = figures["calls"]
    own_cpu = figures.pop("cpu_s", None)
    figures["calls_per_s"] = calls / figures["seconds"]
    figures["client_cpu_us"] = (client_cpu if own_cpu is None else own_cpu) / calls * 1e6
    figures["client_cpu_clock"] = "/proc" if own_cpu is None else "process_time"
    figures["server_cpu_us"] = server_cpu / calls * 1e6
    return figures


def run_worker(args: Sequence[str]) -> dict[str, Any]:
    """A broker-free measure in a child process (core, memory)."""
    child = harness.Child(args[0], [sys.executable, str(WORKER), *args])
    try:
        return json.loads(child.readline(600))  # type: ignore[no-any-return]
    finally:
        child.stop()


def run_group(rows: list[Row], round_no: int, ctx: Context) -> dict[str, Any]:
    """One round of one group of rows: their sides back to back, the order alternating."""
    first = rows[0]
    if first.metric == "core_us":
        fmt = "msgpack" if first.name.endswith("msgpack") else "json"
        calls = QUICK_CORE_CALLS if ctx.quick else CORE_CALLS
        args = ["core", fmt, "--calls", str(calls)] + (["--core-first"] if round_no % 2 else [])
        return {first.name: run_worker(args)}
    if first.metric == "bytes":
        args = ["memory", "--calls", str(PENDING)] + (["--core-first"] if round_no % 2 else [])
        return {first.name: run_worker(args)}
    keys: list[str] = []
    for row in rows:  # baselines first, then ours; Go -> Go once for both Go rows
        assert row.base is not None and row.ours is not None
        keys += [key for key in (row.base, row.ours) if key not in keys]
    if round_no % 2:
        keys.reverse()
    results: dict[str, Any] = {}
    for key in keys:
        side = SIDES[key]
        began = time.monotonic()
        try:
            results[key] = run_side(side, ctx, round_no)
        except (harness.ChildError, OSError, ValueError, KeyError) as exc:
            progress(f"    {side.label}: FAILED: {exc}")
            continue
        r = results[key]
        progress(
            f"    {side.label:<44} {r['calls_per_s']:>8.0f} calls/s  p50 {fmt_us(r['p50_us'])}"
            f"  p99 {fmt_us(r['p99_us'])}  CPU/call client {r['client_cpu_us']:.0f} us,"
            f" server {r['server_cpu_us']:.0f} us  ({time.monotonic() - began:.1f} s)"
        )
    return results
