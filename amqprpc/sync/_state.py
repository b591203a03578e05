"""What the sync adapter keeps per call and per connection: a blocking call's token
(`Slot`) and a connection's connection.blocked state (`BlockedState`). No pika import:
`_link.py` hands these pika's objects and calls them from its callbacks.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, ClassVar

from .._events import CallDone

__all__ = ["BlockedState", "Slot"]

logger = logging.getLogger(__name__)


class Slot:
    """The token of a call on a blocking client: `done` is filled when the call ends."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done: CallDone[Slot] | None = None


class BlockedState:
    """One connection's connection.blocked state, shared by every link on it: pika keeps
    the callbacks as long as the connection, so they are added once per connection."""

    _by_connection: ClassVar[weakref.WeakKeyDictionary[Any, BlockedState]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(self) -> None:
        self.blocked = False

    @classmethod
    def of(cls, connection: Any) -> BlockedState:
        """The state of `connection` (a pika BlockingConnection), watched from now on."""
        found = cls._by_connection.get(connection)
        if found is None:
            found = cls._by_connection[connection] = cls()
            connection.add_on_connection_blocked_callback(found._on_blocked)
            connection.add_on_connection_unblocked_callback(found._on_unblocked)
        return found

    def _on_blocked(self, connection: Any, frame: Any) -> None:
        self.blocked = True
        reason = getattr(frame.method, "reason", "") or "no reason given"
        logger.warning("the broker blocked the connection (%s): publishes wait", reason)

    def _on_unblocked(self, connection: Any, frame: Any) -> None:
        self.blocked = False
        logger.warning("the broker unblocked the connection")
