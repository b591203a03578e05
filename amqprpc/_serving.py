"""What both server codecs share beyond the protocol: the read-only view they give of
themselves, and the schedule on which they connect again after losing their broker.

No I/O and no clock: the adapters wait the delays `Backoff` gives them on their own loops.
"""

from __future__ import annotations

import random
from typing import Any

from ._dispatch import Registry
from ._server import ServerProtocol, ServerStats

__all__ = ["Backoff", "ServerView"]


class Backoff:
    """Delays between reconnection attempts: `first` seconds, doubling up to `most`, each
    with jitter (between half and all of it), so that the servers a dead node dropped do not
    all come back in the same instant.

    A loss after a connection that lasted `stable` seconds is retried at once; one that
    follows its connection sooner waits, ever longer, so a connection that keeps failing
    right after it is made (a refused consume, say) is never retried in a tight loop.
    """

    def __init__(
        self, first: float = 0.25, most: float = 10.0, *, stable: float = 10.0, now: float = 0.0
    ) -> None:
        self.first = first
        self.most = most
        self.stable = stable
        self._next = first
        self._connected_at = now

    def delay(self) -> float:
        """The wait before the next attempt; the one after it is twice as long."""
        delay = self._next
        self._next = min(self._next * 2, self.most)
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        """The next loss starts again from `first`."""
        self._next = self.first

    def connected(self, now: float) -> None:
        """A connection was made (and set up) at `now`, on the adapter's clock."""
        self._connected_at = now

    def lost(self, now: float) -> float:
        """The connection went at `now`: the wait before the first attempt to connect again
        (0 when it had lasted `stable` seconds)."""
        if now - self._connected_at >= self.stable:
            self.reset()
            return 0.0
        return self.delay()


class ServerView:
    """What every server codec tells about itself; a codec sets `_proto`, `_queue` and
    `_link`."""

    _proto: ServerProtocol
    _queue: str
    _link: Any

    @property
    def blocked(self) -> bool:
        """Whether the broker has blocked this server's connection (a memory or disk alarm):
        replies wait. Each change is logged."""
        return bool(self._link.blocked)

    @property
    def queue(self) -> str:
        """The request queue served."""
        return self._queue

    @property
    def registry(self) -> Registry:
        """The dispatch table: which wire names this server answers."""
        return self._proto.registry

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered."""
        return self._proto.in_flight

    @property
    def stats(self) -> ServerStats:
        """Requests settled without running their handler (expired, loops, replies, ...)."""
        return self._proto.stats
