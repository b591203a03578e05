"""What every benchmark process shares: the broker URL, queue names, CPU clocks, percentiles,
child processes and the warm/go/result hand-shake between the harness and a client.

A client child prints "warm" after its warm-up and waits for a line on stdin; the harness
reads the server's CPU clock, answers "go", and the client runs the measured calls and prints
one JSON line. So neither side's warm-up, connection set-up nor teardown is in the figures.
"""

from __future__ import annotations

import json
import os
import queue as queue_module
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

URL = os.environ.get("AMQPRPC_TEST_URL", "amqp://guest:guest@127.0.0.1:5672/")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
QUEUE_PREFIX = "amqprpc-bench-"
_TICKS = os.sysconf("SC_CLK_TCK")


def new_queue(run_id: str) -> str:
    """A request queue name unique to this side of this round (deleted afterwards)."""
    return f"{QUEUE_PREFIX}{run_id}-{uuid.uuid4().hex[:8]}"


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) from /proc/<pid>/stat, in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile of `values` (nearest rank, as the Go client computes it)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """p50 and p99 of per-call latencies given in seconds, in microseconds."""
    return {
        "p50_us": percentile(latencies_s, 0.5) * 1e6,
        "p99_us": percentile(latencies_s, 0.99) * 1e6,
    }


# -- the client's half of the hand-shake ----------------------------------------------------


def wait_for_go() -> None:
    """Tell the harness the warm-up is over and block until it says go."""
    print("warm", flush=True)
    sys.stdin.readline()


def report(result: dict[str, Any]) -> None:
    """Print a client's figures as the one JSON line the harness reads."""
    print(json.dumps(result), flush=True)


# -- the harness's half ---------------------------------------------------------------------


class ChildError(RuntimeError):
    """A child process failed, said something unexpected, or took too long."""


class Child:
    """A child process whose stdout lines arrive on a queue (so reads can time out) and whose
    stderr goes to a temporary file, shown when something fails."""

    def __init__(self, name: str, argv: Sequence[str], *, stdin: bool = False) -> None:
        self.name = name
        self._stderr: TextIO = tempfile.TemporaryFile("w+")  # closed in stop()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]))
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self._lines: queue_module.Queue[str | None] = queue_module.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def readline(self, timeout: float) -> str:
        """The next line the child prints. Raises ChildError on exit or after `timeout`."""
        try:
            line = self._lines.get(timeout=timeout)
        except queue_module.Empty:
            raise ChildError(f"{self.name}: nothing after {timeout:g}s{self.tail()}") from None
        if line is None:
            code = self.proc.wait(5)
            raise ChildError(f"{self.name}: exited with {code}{self.tail()}")
        return line

    def expect(self, word: str, timeout: float) -> None:
        line = self.readline(timeout)
        if line.strip() != word:
            raise ChildError(f"{self.name}: expected {word!r}, got {line!r}{self.tail()}")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def tail(self, lines: int = 15) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().strip().splitlines()[-lines:]
        return ("\n    " + "\n    ".join(text)) if text else ""

    def stop(self, timeout: float = 10.0) -> None:
        """Let the child end by itself for `timeout` if its stdin was ours, else terminate."""
        try:
            self.close_stdin()
        except BrokenPipeError:
            pass
        if self.proc.poll() is None:
            if self.proc.stdin is None:
                self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        self._stderr.close()


def delete_queues(names: Sequence[str]) -> None:
    """Delete the benchmark's request queues (a missing one is fine)."""
    import pika
    import pika.exceptions

    connection = pika.BlockingConnection(pika.URLParameters(URL))
    try:
        channel = connection.channel()
        for name in names:
            try:
                channel.queue_delete(name)
            except pika.exceptions.ChannelClosedByBroker:
                channel = connection.channel()
    finally:
        connection.close()


def leftover_queues(run_id: str) -> list[str]:
    """Queues of this run still on the broker (there should be none), via rabbitmqctl."""
    try:
        listed = subprocess.run(
            ["rabbitmqctl", "-q", "list_queues", "name"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    prefix = f"{QUEUE_PREFIX}{run_id}-"
    return [name for name in listed.stdout.split() if name.startswith(prefix)]
