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

This script is the entry point; the rows are defined in suite.py, run by runner.py,
summarized by figures.py and shown by render.py.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness
from figures import summarize
from render import chart, fmt_target, table
from runner import Context, progress, run_group
from suite import (
    CORE_CALLS,
    PENDING,
    QUICK_CORE_CALLS,
    QUICK_ROUNDS,
    QUICK_WORKLOADS,
    ROUNDS,
    ROWS,
    ROWS_BY_NAME,
    SIDES,
    WORKLOADS,
    Row,
)

HERE = harness.HERE
ROOT = harness.ROOT
GOPATH = "/usr/share/gocode"


# -- the run --------------------------------------------------------------------------------


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
