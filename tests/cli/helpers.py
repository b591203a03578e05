"""Running the `amqprpc` command as a child process, as a shell would: `run` for a command
that ends, `Served` for `amqprpc serve`, read line by line so tests wait for its start line
instead of sleeping."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

# Served by the tests from a temporary directory: a class, an instance, functions.
APP = """
import asyncio
import sys
import time


class Arith:
    def mul(self, args):
        return args["A"] * args["B"]

    def div(self, args):
        if args["B"] == 0:
            raise ZeroDivisionError("divide by zero")
        return {"Quo": args["A"] // args["B"], "Rem": args["A"] % args["B"]}

    def blob(self, arg):
        return b"\\x00\\x01\\xff"

    def slow(self, seconds):
        sys.stdout.write("running\\n")
        sys.stdout.flush()
        time.sleep(seconds)
        return "done"

    async def aslow(self, seconds):
        sys.stdout.write("running\\n")
        sys.stdout.flush()
        await asyncio.sleep(seconds)
        return "done"


calculator = Arith()


def add(pair):
    return pair[0] + pair[1]


async def add_async(pair):
    return pair[0] + pair[1]
"""

START = "serving "
STOP = "stopped serving queue"


def write_app(directory: Path) -> Path:
    """Write the served module (`cliapp`) into `directory`."""
    (directory / "cliapp.py").write_text(APP, encoding="utf-8")
    return directory


def run(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m amqprpc ARGS...` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "amqprpc", *args], capture_output=True, text=True, cwd=cwd,
        timeout=timeout,
    )  # fmt: skip


class _Lines:
    # A child's output stream, read on a thread into a queue, so a test can wait for a line.

    def __init__(self, stream: IO[str]) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 30) -> str:
        """The first line (from now on) that contains `text`; AssertionError if none comes."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"no line with {text!r} within {timeout} s: {self.seen}"
                ) from None
            if line is None:
                raise AssertionError(f"the stream ended without {text!r}: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def join(self) -> None:
        """Wait until the stream has ended (the child has exited)."""
        self._thread.join(10)

    def rest(self) -> str:
        """Everything up to the end of the stream (call after the child ended)."""
        self._thread.join(10)
        while (line := self._queue.get_nowait()) is not None:
            self.seen.append(line)
        return "".join(self.seen)


class Served:
    """`amqprpc serve ARGS...` in a child process (`python -m amqprpc`, or `command`),
    started when its start line is logged."""

    def __init__(self, *args: str, cwd: Path, command: tuple[str, ...] = ()) -> None:
        command = command or (sys.executable, "-m", "amqprpc")
        self.proc = subprocess.Popen(
            [*command, "serve", *args], cwd=cwd, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout = _Lines(self.proc.stdout)
        self.stderr = _Lines(self.proc.stderr)
        try:
            self.start_line = self.stderr.wait_for(START)
        except AssertionError:
            self.__exit__()
            raise

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        """Send `sig`; returns the exit code and the whole of stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        return code, self.stderr.rest()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for lines, stream in ((self.stdout, self.proc.stdout), (self.stderr, self.proc.stderr)):
            lines.join()
            assert stream is not None
            stream.close()
