"""amqprpc's benchmark suite: one command, one table, every figure against a baseline measured
in the same run.

    python benchmarks/run.py                     # the full run: 10 rounds, about 10 minutes
    python benchmarks/run.py --quick             # 3 rounds, fewer calls: about 2 minutes
    python benchmarks/run.py --rows tput,seq --rounds 7
    python benchmarks/run.py --list              # the rows and what they compare

Each round runs every selected row's sides back to back (baseline first in even rounds,
amqprpc first in odd ones); a row's figure is the median over rounds of its per-round ratio,
shown with its range. A side is a fresh server child process and a fresh client child process
on a new request queue; the client warms up, then the harness reads the server's CPU clock
and starts the measured calls (harness.py). Every row records calls/s, p50/p99 latency and
the CPU microseconds per call of the client (time.process_time() in the Python client; /proc
for the Go client) and of the server (/proc/<pid>/stat utime+stime).

Every server and every client runs in a child process of its own (worker.py for the Python
ones, peers_aio.py and peers_sync.py; the Go interop peer as the Go server and
go/benchclient as the Go client, built with `go build` in GOPATH mode at start-up), so all
rows measure the same way. The two Go rows share their Go -> Go baseline within a round. The
core and memory rows run bench_core.py's measures in a child, with their absolute targets.

Writes the figures to benchmarks/results.json and a chart of the ratios against their
targets to benchmarks/results.png (matplotlib; `pip install -e '.[bench]'`). With
`--profile DIR` the Python children run under cProfile, one .prof file each (figures then
distorted): `python -m pstats DIR/r1-amqprpc-aio-to-amqprpc-aio-server.prof`.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness

HERE = harness.HERE
ROOT = harness.ROOT
WORKER = HERE / "worker.py"
GOPATH = "/usr/share/gocode"


# -- what is measured -----------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    calls: int
    inflight: int
    warmup: int

    def describe(self) -> str:
        if self.inflight == 1:
            return f"{self.calls:,} calls one at a time after {self.warmup:,}"
        return f"{self.calls:,} calls, {self.inflight} in flight, after {self.warmup:,}"


WORKLOADS = {
    "tput": Workload(10_000, 100, 1_000),
    "seq": Workload(2_000, 1, 200),
    "threads": Workload(4_000, 16, 400),
}
QUICK_WORKLOADS = {
    "tput": Workload(5_000, 100, 500),
    "seq": Workload(1_000, 1, 100),
    "threads": Workload(2_000, 16, 200),
}
CORE_CALLS, QUICK_CORE_CALLS = 20_000, 5_000
# Rounds of A/B runs. The machine is shared and a side's figure can swing by 30% or more from
# one run to the next: more rounds give steadier medians (a round takes about a minute).
ROUNDS, QUICK_ROUNDS = 10, 3
PENDING = 10_000  # calls in flight for the memory row


@dataclass(frozen=True)
class Side:
    """One client kind against one server kind under one workload."""

    client: str
    server: str
    workload: str
    label: str

    @property
    def key(self) -> str:
        return f"{self.client}>{self.server}"


SIDES = {
    "aio": Side("amqprpc-aio", "amqprpc-aio", "tput", "amqprpc async -> amqprpc async server"),
    "raw-aio": Side("raw-aioamqp", "raw-aioamqp", "tput", "raw aioamqp -> raw aioamqp server"),
    "sync-seq": Side("amqprpc-seq", "raw-aioamqp", "seq", "amqprpc sync ClientCodec"),
    "pika-seq": Side("pika-seq", "raw-aioamqp", "seq", "raw pika BlockingConnection loop"),
    "sync-threads": Side(
        "amqprpc-threads", "raw-aioamqp", "threads", "16 threads, one ThreadSafeClientCodec"
    ),
    "pika-select": Side(
        "pika-select", "raw-aioamqp", "threads", "raw pika SelectConnection, 16 in flight"
    ),
    "go-py": Side("go", "amqprpc-aio", "tput", "Go client -> amqprpc async server"),
    "py-go": Side("amqprpc-aio", "go", "tput", "amqprpc async client -> Go server"),
    "go-go": Side("go", "go", "tput", "Go client -> Go server"),
    "aio-pika": Side("aio-pika", "aio-pika", "tput", "aio-pika JsonRPC -> aio-pika JsonRPC"),
}


@dataclass(frozen=True)
class Row:
    name: str
    title: str
    baseline: str
    group: str
    metric: str  # calls_per_s or p50_us (ratios), core_us or bytes (absolute)
    op: str  # ">=" or "<="
    target: float
    stretch: float | None = None
    ours: str | None = None
    base: str | None = None
    description: str = ""

    @property
    def absolute(self) -> bool:
        return self.metric in ("core_us", "bytes")

    def met(self, value: float, limit: float | None = None) -> bool:
        limit = self.target if limit is None else limit
        return value >= limit if self.op == ">=" else value <= limit


ROWS = [
    Row(
        "tput", "async tput", "raw aioamqp", "tput", "calls_per_s", ">=", 1.0, 1.3,
        ours="aio", base="raw-aio",
        description="amqprpc async client -> amqprpc async server, calls/s, against a raw "
        "aioamqp client and server on the same wire protocol with expiration, mandatory and "
        "ack-after-reply on",
    ),
    Row(
        "seq", "sync seq p50", "raw pika Blocking", "seq", "p50_us", "<=", 1.10,
        ours="sync-seq", base="pika-seq",
        description="amqprpc sync ClientCodec on a BlockingConnection, p50 latency of "
        "sequential calls, against a raw pika BlockingConnection loop; both call the raw "
        "aioamqp server (ack after reply)",
    ),
    Row(
        "threads", "sync 16 threads", "raw pika Select x16", "threads", "calls_per_s", ">=",
        0.8, ours="sync-threads", base="pika-select",
        description="16 threads sharing one ThreadSafeClientCodec, calls/s, against a raw pika "
        "SelectConnection loop keeping 16 calls in flight; both call the raw aioamqp server",
    ),
    Row(
        "go-to-py", "Go client -> py server", "Go -> Go", "go", "calls_per_s", ">=", 0.7,
        ours="go-py", base="go-go",
        description="the Go client against amqprpc's async server, calls/s, against the Go "
        "client and the Go peer server",
    ),
    Row(
        "py-to-go", "py client -> Go server", "Go -> Go", "go", "calls_per_s", ">=", 0.7,
        ours="py-go", base="go-go",
        description="amqprpc's async client against the Go peer server, calls/s, against the "
        "Go client and the Go peer server",
    ),
    Row(
        "aio-pika", "async tput vs aio-pika", "aio-pika JsonRPC", "aio-pika", "calls_per_s",
        ">=", 3.0, ours="aio", base="aio-pika",
        description="amqprpc async client and server, calls/s, against aio-pika's JsonRPC "
        "pattern on both sides (publisher confirms off, prefetch as ours)",
    ),
    Row(
        "core", "core CPU, Json", "encode+decode", "core", "core_us", "<=", 10.0,
        description="bench_core.py's measure: CPU us per call of the sans-IO core, client and "
        "server sides together, Json; baseline: encoding and decoding the same values only",
    ),
    Row(
        "core-msgpack", "core CPU, MsgPack", "encode+decode", "core-msgpack", "core_us", "<=",
        10.0, description="as core, with the MsgPack formatter",
    ),
    Row(
        "memory", "memory/pending call", "bare dict", "memory", "bytes", "<=", 1024.0,
        description="bench_core.py's bytes per pending call with 10,000 in flight (tracemalloc)"
        "; baseline: a dict of call id -> (deadline, token)",
    ),
]  # fmt: skip
ROWS_BY_NAME = {row.name: row for row in ROWS}


# -- running sides --------------------------------------------------------------------------


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


# -- figures --------------------------------------------------------------------------------


def spread(values: Sequence[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "per_round": list(values),
    }


def summarize(row: Row, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's figures over the rounds: per-round ratio, its median and range, and medians
    of what each side measured."""
    out: dict[str, Any] = {
        "row": row.name,
        "title": row.title,
        "description": row.description,
        "baseline": row.baseline,
        "target": {"op": row.op, "value": row.target, "stretch": row.stretch},
    }
    if row.absolute:
        key = "us" if row.metric == "core_us" else "bytes"
        per = [r[row.name] for r in rounds if row.name in r]
        values = [p[f"core_{key}"] for p in per]
        bases = [p[f"base_{key}"] for p in per]
        out["figure_unit"] = key
        out["ours"] = {f"{key}_per_call": spread(values)} if values else {}
        out["base"] = {f"{key}_per_call": spread(bases)} if bases else {}
        ratios = [v / b for v, b in zip(values, bases, strict=True)]
        out["ratio_to_baseline"] = spread(ratios) if ratios else None
        figure = values
    else:
        assert row.ours is not None and row.base is not None
        pairs = [(r[row.ours], r[row.base]) for r in rounds if row.ours in r and row.base in r]
        out["figure_unit"] = "ratio"
        out["sides"] = {"ours": SIDES[row.ours].label, "base": SIDES[row.base].label}
        for which, index in (("ours", 0), ("base", 1)):
            out[which] = {
                metric: spread([pair[index][metric] for pair in pairs])
                for metric in (
                    "calls_per_s", "p50_us", "p99_us", "client_cpu_us", "server_cpu_us"
                )
            } if pairs else {}  # fmt: skip
        figure = [ours[row.metric] / base[row.metric] for ours, base in pairs]
        out["ratio_to_baseline"] = spread(figure) if figure else None
    out["rounds_ok"] = len(figure)
    out["figure"] = spread(figure) if figure else None
    if figure:
        median = statistics.median(figure)
        out["met"] = row.met(median)
        out["stretch_met"] = row.stretch is not None and row.met(median, row.stretch)
    else:
        out["met"] = None
        out["stretch_met"] = None
    return out


def fmt_us(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}ms"
    if value >= 1_000:
        return f"{value / 1000:.1f}ms"
    return f"{value:.0f}us"


def fmt_figure(summary: dict[str, Any], value: float) -> str:
    unit = summary["figure_unit"]
    if unit == "ratio":
        target = summary["target"]["value"]
        # Enough digits that a ratio just short of its target does not print as the target.
        return f"{value:.3f}x" if round(value, 2) == target != value else f"{value:.2f}x"
    if unit == "us":
        return f"{value:.1f}us"
    return f"{value:.0f}B"


def fmt_target(row: Row) -> str:
    unit = {"core_us": " us", "bytes": " B"}.get(row.metric, "x")
    limit = f"{row.target:g}" if row.metric != "bytes" else f"{row.target:.0f}"
    text = f"{row.op} {limit}{unit}"
    if row.stretch is not None:
        text += f" ({row.stretch:g}x)"
    return text


def table(summaries: list[dict[str, Any]]) -> str:
    header = [
        "row", "baseline", "calls/s", "p50", "p99", "CPU us/call client",
        "CPU us/call server", "median (range)", "target", "met?",
    ]  # fmt: skip
    lines = [header]
    for s in summaries:
        row = ROWS_BY_NAME[s["row"]]
        ours, base = s["ours"], s["base"]
        if not ours:
            cells = [row.title, row.baseline, "-", "-", "-", "-", "-", "FAILED", fmt_target(row)]
            lines.append([*cells, "error"])
            continue

        def pair(
            metric: str, fmt: Callable[[float], str], ours: Any = ours, base: Any = base
        ) -> str:
            return f"{fmt(ours[metric]['median'])}/{fmt(base[metric]['median'])}"

        if row.absolute:
            key = f"{s['figure_unit']}_per_call"
            base_text = f"{row.baseline} ({fmt_figure(s, base[key]['median'])})"
            cpu = pair(key, lambda v: f"{v:.1f}") if row.metric == "core_us" else "-"
            cells = [row.title, base_text, "-", "-", "-", cpu, "(both)" if cpu != "-" else "-"]
        else:
            cells = [
                row.title,
                row.baseline,
                pair("calls_per_s", lambda v: f"{v:.0f}"),
                pair("p50_us", fmt_us),
                pair("p99_us", fmt_us),
                pair("client_cpu_us", lambda v: f"{v:.0f}"),
                pair("server_cpu_us", lambda v: f"{v:.0f}"),
            ]
        fig = s["figure"]
        digits = 0 if s["figure_unit"] == "bytes" else 1 if s["figure_unit"] == "us" else 2
        figure = f"{fmt_figure(s, fig['median'])} ({fig['min']:.{digits}f}-{fig['max']:.{digits}f})"
        if s.get("rounds_missing"):
            figure += f" [{s['rounds_ok']} rounds]"
        met = "MET" if s["met"] else "not met"
        if s["stretch_met"]:
            met += " +stretch"
        lines.append([*cells, figure, fmt_target(row), met])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = []
    for n, line in enumerate(lines):
        rendered.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if n == 0:
            rendered.append("  ".join("-" * w for w in widths))
    return "\n".join(text.rstrip() for text in rendered)


def chart(summaries: list[dict[str, Any]], path: Path, subtitle: str) -> None:
    """A panel per row: the median figure as a bar, its range as a whisker, each round as a
    dot, the target as a dashed line (dotted: the stretch target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in summaries if s["figure"]]
    cols = min(3, max(1, len(shown)))
    rows_n = max(1, math.ceil(len(shown) / cols))
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.6 * cols, 3.6 * rows_n), squeeze=False)
    for ax in axes.flat[len(shown) :]:
        ax.axis("off")
    for ax, s in zip(axes.flat, shown, strict=False):
        row = ROWS_BY_NAME[s["row"]]
        f = s["figure"]
        color = "#2e7d32" if s["met"] else "#c62828"
        median = f["median"]
        ax.bar([0], [median], width=0.5, color=color, alpha=0.8, label="amqprpc")
        if row.absolute:  # the baseline's own figure, beside ours
            base = s["base"][f"{s['figure_unit']}_per_call"]["median"]
            ax.bar([0.45], [base], width=0.25, color="grey", alpha=0.6, label=row.baseline)
        ax.errorbar(
            [0], [median], yerr=[[median - f["min"]], [f["max"] - median]],
            fmt="none", ecolor="black", capsize=8, linewidth=1.2,
        )  # fmt: skip
        ax.scatter([0.0] * len(f["per_round"]), f["per_round"], color="black", s=10, zorder=3)
        ax.axhline(row.target, color="#1565c0", linestyle="--", linewidth=1.5, label="target")
        if row.stretch is not None:
            ax.axhline(row.stretch, color="#1565c0", linestyle=":", linewidth=1.5, label="stretch")
        if not row.absolute:
            ax.axhline(1.0, color="grey", linewidth=0.8)
        top = max(f["max"], row.target, row.stretch or 0.0) * 1.3
        ax.set_ylim(0, top)
        ax.set_xlim(-0.75, 0.9)
        ax.set_xticks([])
        ax.text(-0.27, median, fmt_figure(s, median), ha="right", va="center", fontsize=10)
        unit = {"ratio": "ratio to baseline", "us": "CPU us per call", "bytes": "bytes"}
        ax.set_ylabel(unit[s["figure_unit"]])
        verdict = "met" if s["met"] else "NOT met"
        ax.set_title(f"{row.title}\nvs {row.baseline}: {fmt_target(row)} {verdict}", fontsize=10)
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle(f"amqprpc benchmarks: median of rounds, whiskers = range\n{subtitle}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- the run --------------------------------------------------------------------------------


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def build_go(ctx: Context, workdir: Path) -> str | None:
    """Build the interop peer (server) and the bench client; returns why not, or None."""
    go = shutil.which("go")
    if go is None or not Path(GOPATH, "src/github.com/streadway/amqp").is_dir():
        return (
            "needs golang-go, golang-github-streadway-amqp-dev and "
            "golang-gopkg-vmihailenco-msgpack.v2-dev"
        )
    env = dict(os.environ, GOPATH=f"{GOPATH}:{ROOT / 'examples' / 'go'}", GO111MODULE="off")
    builds = {
        "peer": (ROOT / "tests" / "interop" / "go", "./peer"),
        "benchclient": (HERE / "go", "./benchclient"),
    }
    for name, (cwd, package) in builds.items():
        binary = workdir / name
        done = subprocess.run(
            [go, "build", "-o", str(binary), package],
            cwd=cwd, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            return f"go build {package} failed: {done.stderr.strip()}"
        ctx.go_bin[name] = str(binary)
    return None


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("amqprpc", "aioamqp", "pika", "aio-pika", "pamqp", "msgpack"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "missing"
    source = hashlib.sha256()
    for path in sorted((ROOT / "amqprpc").rglob("*.py")):
        source.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    found["amqprpc_source_sha256"] = source.hexdigest()[:16]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
        found["git_head"] = head.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, help="rounds of A/B runs (default 10; quick: 3)")
    parser.add_argument("--quick", action="store_true", help="fewer calls and 3 rounds")
    parser.add_argument(
        "--rows", default="all", help="comma-separated row names (see --list), or all"
    )
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    parser.add_argument("--json", type=Path, default=HERE / "results.json", help="JSON output")
    parser.add_argument("--png", type=Path, default=HERE / "results.png", help="chart output")
    parser.add_argument("--no-png", action="store_true", help="skip the chart")
    parser.add_argument("--no-json", action="store_true", help="skip the JSON file")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the Python clients and servers under cProfile, one .prof file each in DIR "
        "(the figures are then distorted: for finding where time goes, not for targets)",
    )
    args = parser.parse_args(argv)
    if args.rounds is None:
        args.rounds = QUICK_ROUNDS if args.quick else ROUNDS
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    names = [row.name for row in ROWS] if args.rows == "all" else args.rows.split(",")
    unknown = [name for name in names if name not in ROWS_BY_NAME]
    if unknown:
        parser.error(f"unknown rows {unknown}; rows: {', '.join(ROWS_BY_NAME)}")
    args.selected = [row for row in ROWS if row.name in names]
    return args


def list_rows() -> None:
    for row in ROWS:
        print(f"{row.name:<13} {fmt_target(row):<14} {row.description}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        list_rows()
        return 0
    started = time.monotonic()
    started_at = datetime.datetime.now(datetime.timezone.utc)
    ctx = Context(run_id=uuid.uuid4().hex[:6], quick=args.quick, profile_dir=args.profile)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        os.environ["AMQPRPC_BENCH_PROFILE"] = "1"  # servers then exit cleanly on SIGTERM
    selected: list[Row] = args.selected
    harness.delete_queues([])  # fails fast when the broker is down
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="amqprpc-bench-") as workdir:
        if any(row.group == "go" for row in selected):
            why = build_go(ctx, Path(workdir))
            if why is not None:
                progress(f"skipping the Go rows: {why}")
                skipped.update({row.name: why for row in selected if row.group == "go"})
                selected = [row for row in selected if row.group != "go"]
        groups: dict[str, list[Row]] = {}
        for row in selected:
            groups.setdefault(row.group, []).append(row)
        load_before = os.getloadavg()
        rounds: list[dict[str, Any]] = []
        for round_no in range(args.rounds):
            progress(f"round {round_no + 1}/{args.rounds}")
            results: dict[str, Any] = {}
            for group, rows in groups.items():
                progress(f"  {group}")
                results.update(run_group(rows, round_no, ctx))
            rounds.append(results)
    leftovers = harness.leftover_queues(ctx.run_id)
    if leftovers:
        progress(f"deleting queues left behind: {leftovers}")
        harness.delete_queues(leftovers)
    elapsed = time.monotonic() - started

    summaries = [summarize(row, rounds) for row in selected]
    for summary in summaries:
        summary["rounds_missing"] = args.rounds - summary["rounds_ok"]
    command = "python benchmarks/run.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    work = QUICK_WORKLOADS if args.quick else WORKLOADS
    subtitle = (
        f"{started_at:%Y-%m-%d %H:%M} UTC, {args.rounds} rounds{' (quick)' if args.quick else ''}"
        f", {os.cpu_count()} cores, load {load_before[0]:.1f}"
    )
    report = {
        "command": command,
        "started": started_at.isoformat(timespec="seconds"),
        "seconds": round(elapsed, 1),
        "rounds": args.rounds,
        "quick": args.quick,
        "profiled": args.profile is not None,
        "workloads": {name: vars(w) for name, w in work.items()},
        "core_calls": QUICK_CORE_CALLS if args.quick else CORE_CALLS,
        "pending_calls": PENDING,
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "platform": platform.platform(),
        },
        "versions": versions(),
        "skipped": skipped,
        "rows": summaries,
        "sides": {key: vars(side) for key, side in SIDES.items()},
        "rounds_raw": rounds,
    }
    if not args.no_json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if not args.no_png:
        chart(summaries, args.png, subtitle)

    print()
    print(f"amqprpc benchmarks: {subtitle}; every figure against a baseline of the same run")
    print(
        f"workloads: tput {work['tput'].describe()}; seq {work['seq'].describe()}; "
        f"threads {work['threads'].describe()}"
    )
    print(
        "cells: amqprpc/baseline, medians over rounds; median (range): the row's figure, the "
        "ratio amqprpc/baseline of each round (absolute for core and memory)\n"
    )
    print(table(summaries))
    print()
    met = [s["row"] for s in summaries if s["met"]]
    missed = [s["row"] for s in summaries if s["met"] is False]
    failed = [s["row"] for s in summaries if s["met"] is None]
    print(f"targets met: {len(met)} of {len(summaries)}: {', '.join(met) or 'none'}")
    if missed:
        print(f"targets NOT met: {', '.join(missed)}")
    if failed:
        print(f"rows that failed to run: {', '.join(failed)}")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")
    if args.profile is not None:
        print(f"PROFILED RUN (figures distorted): profiles in {args.profile}")
    outputs = [str(path) for path, off in ((args.json, args.no_json), (args.png, args.no_png))]
    written = [
        path for path, off in zip(outputs, (args.no_json, args.no_png), strict=True) if not off
    ]
    print(f"wrote {' and '.join(written) or 'no files'}; {elapsed / 60:.1f} minutes")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
