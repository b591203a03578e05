"""`amqprpc bench` on the real broker: the count, the rate, the latencies and the errors by
kind; a progress bar only on a terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from amqprpc.cli._bench import percentile

from .helpers import Served, run


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile(values, 1.0)) == (
        50.0, 99.0, 100.0,
    )  # fmt: skip
    assert percentile([7.0], 0.99) == 7.0


@pytest.mark.broker
def test_bench_reports_rate_latencies_and_errors(url: str, queue: str, app_dir: Path) -> None:
    with Served("cliapp:Arith", "--queue", queue, "--url", url, cwd=app_dir) as served:
        good = run("bench", queue, "Arith.Mul", '{"A": 6, "B": 7}', "-n", "500", "-c", "25",
                   "--url", url)  # fmt: skip
        bad = run("bench", queue, "Arith.Div", '{"A": 6, "B": 0}', "-n", "40", "-c", "4",
                  "--url", url)  # fmt: skip
        assert served.stop()[0] == 0
    assert good.returncode == 0, good.stderr
    assert re.search(r"^calls: 500 in [\d.]+ s, [\d.]+ calls/s$", good.stdout, re.M), good.stdout
    assert re.search(r"^latency: p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms$", good.stdout, re.M)
    assert "errors: 0\n" in good.stdout
    # Not a terminal: no bar, one final line.
    assert "\r" not in good.stderr and "bench: 500/500 calls ended" in good.stderr
    assert bad.returncode == 1
    assert "calls: 40 " in bad.stdout and "errors: 40 (RemoteError 40)" in bad.stdout


@pytest.mark.broker
def test_no_such_queue_stops_before_the_run(url: str, queue: str) -> None:
    result = run("bench", queue, "Arith.Mul", "1", "-n", "100", "--url", url)
    assert result.returncode == 4 and "calls:" not in result.stdout


@pytest.mark.broker
def test_a_terminal_gets_a_progress_bar(url: str, queue: str, app_dir: Path) -> None:
    with Served("cliapp:Arith", "--queue", queue, "--url", url, cwd=app_dir) as served:
        leader, follower = os.openpty()
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "amqprpc", "bench", queue, "Arith.Slow", "0.05", "-n", "20",
                 "-c", "2", "--url", url],
                stdout=subprocess.PIPE, stderr=follower, text=True, timeout=60,
            )  # fmt: skip
            os.close(follower)
            shown = b""
            while True:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # EIO: the terminal's other end is closed and drained
                    break
                if not chunk:
                    break
                shown += chunk
        finally:
            os.close(leader)
        assert served.stop()[0] == 0
    assert proc.returncode == 0, shown
    assert b"\r[" in shown and b"/20 calls" in shown
    assert b"bench: 20/20 calls ended" in shown
