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
    all come back in the same instant. `reset()` after a success."""

    def __init__(self, first: float = 0.25, most: float = 10.0) -> None:
        self.first = first
        self.most = most
        self._next = first

    def delay(self) -> float:
        """The wait before the next attempt; the one after it is twice as long."""
        delay = self._next
        self._next = min(self._next * 2, self.most)
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        """Connected: the next loss starts again from `first`."""
        self._next = self.first


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
