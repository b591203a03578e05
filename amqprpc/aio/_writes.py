"""The writes of one aioamqp connection that wait for its socket to drain, watched for a
broker that stopped reading. Imports no client library.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

__all__ = ["STALLED_AFTER", "Writes"]

logger = logging.getLogger(__name__.rpartition(".")[0] + "._link")

# aioamqp tells the broker it does not take connection.blocked notices, so a broker that
# stopped reading (a memory or disk alarm) shows only as writes that do not drain: after this
# long, the link counts as blocked.
STALLED_AFTER = 1.0


class Writes:
    """The writes of one connection that wait for its socket to drain: all its links share
    one, so that one stalled publish marks every codec on the connection blocked."""

    _by_connection: ClassVar[weakref.WeakKeyDictionary[Any, Writes]] = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self._pending: set[asyncio.Future[Any]] = set()
        self.blocked = False

    @classmethod
    def of(cls, protocol: Any) -> Writes:
        found = cls._by_connection.get(protocol)
        if found is None:
            found = cls._by_connection[protocol] = cls()
        return found

    def watch(self, write: Awaitable[Any]) -> asyncio.Future[Any]:
        """Start `write`; returns it as a future, which marks the connection blocked if it
        has not finished after STALLED_AFTER seconds."""
        writing = asyncio.ensure_future(write)
        self._pending.add(writing)
        stalled = asyncio.get_running_loop().call_later(STALLED_AFTER, self._stalled, writing)
        writing.add_done_callback(lambda done: self._written(done, stalled))
        return writing

    def backlog(self, drain: Callable[[], Awaitable[None]]) -> None:
        """The socket's buffer is above high water after a write that nobody waits on (a
        large publish): watch it drain, unless a write is watched already."""
        if not self._pending:
            self.watch(drain())

    def _stalled(self, writing: asyncio.Future[Any]) -> None:
        if not writing.done() and not self.blocked:
            self.blocked = True
            logger.warning(
                "writes have not drained for %g s: the broker stopped reading (blocked by "
                "a memory or disk alarm?); calls still end by their deadlines",
                STALLED_AFTER,
            )

    def _written(self, writing: asyncio.Future[Any], stalled: asyncio.TimerHandle) -> None:
        stalled.cancel()
        self._pending.discard(writing)
        if not writing.cancelled():
            writing.exception()  # retrieved: a lost connection is the channel's news
        if self.blocked and not self._pending:
            self.blocked = False
            logger.warning("writes drain again: the connection is no longer blocked")
