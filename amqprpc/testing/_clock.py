"""The in-memory broker's clocks: real time, or a `ManualClock` that moves only when a test
moves it, so that a 30-second timeout takes no real time.

Owns the manual clock's time and its timers (the async links' `call_at` and the delayed
messages of fault injection). Whoever waits on it (a blocking link's `process`) is woken
whenever it moves.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable

__all__ = ["ManualClock", "Timer"]


class Timer:
    """A callback due at a time on a ManualClock; `cancel()` forgets it."""

    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        """Do not run the callback."""
        self.cancelled = True


class ManualClock:
    """A clock that stands still until `advance()` moves it; thread-safe.

    Pass it to `MemoryBroker(clock=ManualClock())`: every link of that broker, blocking or
    async, then measures deadlines, timeouts and message expiry on it.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, Timer]] = []
        self._order = itertools.count()
        self._watchers: list[Callable[[], None]] = []

    def __call__(self) -> float:
        """The clock's time (seconds)."""
        return self._now

    def now(self) -> float:
        """The clock's time (seconds)."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by `seconds`, running the timers that fall due on the way,
        in order, each at its own time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back ({seconds} s)")
        target = self._now + seconds
        while True:
            with self._lock:
                while self._timers and self._timers[0][2].cancelled:
                    heapq.heappop(self._timers)
                if not self._timers or self._timers[0][0] > target:
                    self._now = target
                    break
                when, _, timer = heapq.heappop(self._timers)
                self._now = max(self._now, when)
            timer.callback()
        for watcher in list(self._watchers):
            watcher()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` (on the thread that advances the clock) once the clock reaches
        `when`. Returns the timer."""
        timer = Timer(when, callback)
        with self._lock:
            heapq.heappush(self._timers, (when, next(self._order), timer))
        return timer

    def watch(self, watcher: Callable[[], None]) -> None:
        """Call `watcher` after every move of the clock (a waiting link wakes to look)."""
        self._watchers.append(watcher)

    def unwatch(self, watcher: Callable[[], None]) -> None:
        """Stop calling `watcher`."""
        if watcher in self._watchers:
            self._watchers.remove(watcher)
