"""`amqprpc bench`: N calls with C in flight on the sync API's thread-safe client, then
calls/s, latency percentiles and errors by kind. A progress bar on stderr when it is a
terminal, else one final line there."""

from __future__ import annotations

import argparse
import collections
import functools
import math
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any

from .._errors import RemoteError
from ._common import (
    EXIT_CODES_HELP,
    EXIT_OK,
    EXIT_REMOTE,
    add_call_arguments,
    add_format_option,
    add_timeout_option,
    add_url_option,
    err,
    formatter_of,
    json_argument,
    out,
    reported,
    urls_of_args,
)

__all__ = ["HELP", "NAME", "Tally", "configure", "percentile", "run"]

NAME = "bench"
HELP = "call a method N times with C calls in flight; print calls/s and latencies"

EPILOG = f"""\
examples:
  amqprpc bench testrpc Arith.Mul '{{"A": 6, "B": 7}}' -n 10000 -c 100
  amqprpc bench testrpc Arith.Echo '"hi"' -n 1000 -c 1 --format msgpack

One call first (not counted) connects and checks the queue: if it fails with anything but
a remote error, bench stops with that call's exit code. Then N calls, C at a time, all on
one connection. Latency is measured from starting a call to its end, for every call, failed
ones included; errors are counted by kind (RemoteError, RPCTimeout, ...). The exit code is
1 when any call failed.

{EXIT_CODES_HELP}
"""

_BAR_WIDTH = 30
_REDRAW = 0.1  # seconds between redraws of the progress bar


def configure(parser: argparse.ArgumentParser) -> None:
    """Add `bench`'s arguments."""
    parser.description = "Call QUEUE's METHOD N times, C at a time, and report the rate."
    parser.epilog = EPILOG
    add_call_arguments(parser, "every call's argument, as JSON (default: null)")
    parser.add_argument("-n", type=_whole, default=1000, help="calls to make (default: 1000)")
    parser.add_argument("-c", type=_whole, default=10, help="calls in flight (default: 10)")
    add_format_option(parser)
    add_timeout_option(parser, 10.0)
    add_url_option(parser)
    parser.set_defaults(parser=parser)


def _whole(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


class Tally:
    """The calls that ended: their latencies and their errors by kind. Thread-safe."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.latencies: list[float] = []
        self.errors: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self.all_done = threading.Event()

    def ended(self, started: float, future: Future[Any]) -> None:
        """Record one call's end (a done-callback: it must not block)."""
        latency = time.perf_counter() - started
        exc = future.exception()
        with self._lock:
            self.latencies.append(latency)
            if exc is not None:
                self.errors[type(exc).__name__] += 1
            if len(self.latencies) == self.total:
                self.all_done.set()

    @property
    def done(self) -> int:
        """How many calls have ended."""
        return len(self.latencies)


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which `fraction` of `sorted_values` lie (nearest rank)."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; print the report. Returns the exit code."""
    argument = json_argument(args.parser, args.argument)
    return reported(NAME, lambda: _bench(args, argument))


def _bench(args: argparse.Namespace, argument: object) -> int:
    from ..sync import client_codec

    codec = client_codec(urls_of_args(args), args.queue, formatter_of(args), timeout=args.timeout)
    with codec:
        try:
            codec.call(args.method, argument)  # connects; no queue, no broker: stop here
        except RemoteError:
            pass  # a method that fails can still be measured
        tally = Tally(args.n)
        progress = _Progress(args.n)
        slots = threading.Semaphore(args.c)

        def ended(started: float, future: Future[Any]) -> None:
            tally.ended(started, future)
            slots.release()

        began = time.perf_counter()
        for _ in range(args.n):
            while not slots.acquire(timeout=_REDRAW):
                progress.draw(tally.done, time.perf_counter() - began)
            started = time.perf_counter()
            future = codec.call_async(args.method, argument)
            future.add_done_callback(functools.partial(ended, started))
            progress.draw(tally.done, time.perf_counter() - began)
        while not tally.all_done.wait(_REDRAW):
            progress.draw(tally.done, time.perf_counter() - began)
        elapsed = time.perf_counter() - began
    progress.finish(tally.done, elapsed)
    _report(tally, elapsed)
    return EXIT_REMOTE if tally.errors else EXIT_OK


def _report(tally: Tally, elapsed: float) -> None:
    latencies = sorted(tally.latencies)
    out(f"calls: {tally.done} in {elapsed:.2f} s, {tally.done / elapsed:.1f} calls/s")
    out(
        f"latency: p50 {percentile(latencies, 0.5) * 1000:.2f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.2f} ms, max {latencies[-1] * 1000:.2f} ms"
    )
    failed = sum(tally.errors.values())
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(tally.errors.items()))
    out(f"errors: {failed}" + (f" ({kinds})" if kinds else ""))


class _Progress:
    # A bar redrawn in place with "\r" when stderr is a terminal; otherwise silent until the
    # final line.

    def __init__(self, total: int) -> None:
        self.total = total
        self.tty = sys.stderr.isatty()
        self._drawn = 0.0

    def draw(self, done: int, elapsed: float) -> None:
        if not self.tty or elapsed - self._drawn < _REDRAW:
            return
        self._drawn = elapsed
        filled = _BAR_WIDTH * done // self.total
        rate = done / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        sys.stderr.write(f"\r[{bar}] {done}/{self.total} calls, {rate:.0f} calls/s ")
        sys.stderr.flush()

    def finish(self, done: int, elapsed: float) -> None:
        if self.tty:
            sys.stderr.write("\r" + " " * (_BAR_WIDTH + 50) + "\r")
        err(f"bench: {done}/{self.total} calls ended in {elapsed:.2f} s")
