"""What the async links share, whatever their client library: the sink, the loop's clock and
timers, publishes bounded by their call's deadline, and the fast path that writes publishes,
acks and rejects once per loop turn (`_wire.BatchWriter`).

A backend's link subclasses `BatchedLink` and supplies `_perform` (the actions that go through
its client library's API) and `_errors` (its exception mapping). Imports no client library.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .._envelope import Properties, read_properties
from .._errors import RPCError
from .._events import Ack, Action, Performed, Publish, Reject
from .._link import LinkSink, NoSink
from ._wire import BatchWriter
from ._writes import Writes

__all__ = ["BatchedLink", "from_wire", "to_wire"]

logger = logging.getLogger(__name__.rpartition(".")[0] + "._link")


def to_wire(properties: Properties) -> dict[str, Any]:
    """`properties` as pamqp's Basic.Properties fields (aioamqp and aiormq use pamqp)."""
    wire: dict[str, Any] = {}
    for name in Properties.__slots__:
        value = getattr(properties, name)
        if value is None:
            continue
        if name == "type":
            name = "message_type"
        elif name == "timestamp":
            try:
                value = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
            except (ArithmeticError, OSError, ValueError):
                continue  # beyond what a datetime holds (year 9999): only a hostile peer's
        wire[name] = value
    return wire


def _epoch_seconds(stamp: Any) -> int | None:
    # pamqp gives timestamps as datetimes; the core keeps Unix seconds.
    return None if stamp is None else int(stamp.timestamp())


def from_wire(props: Any) -> Properties:
    """Properties from pamqp's Basic.Properties."""
    return read_properties(props, type_attr="message_type", timestamp=_epoch_seconds)


class BatchedLink:
    """The backend-neutral half of an AsyncLink over one channel."""

    def __init__(self, writer: BatchWriter | None, writes: Writes) -> None:
        self._writer = writer
        self._writes = writes  # the connection's writes waiting for a drain
        self._sink: LinkSink = NoSink()
        self._loop = asyncio.get_running_loop()
        self._background: set[asyncio.Task[Any]] = set()

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Turns the client library's exceptions raised inside into amqprpc errors."""
        raise NotImplementedError

    async def _perform(self, action: Action) -> Performed:
        """Carry out an action through the client library's API."""
        raise NotImplementedError

    def bind(self, sink: LinkSink) -> None:
        """Send deliveries, returns and the channel's end to `sink` from now on."""
        self._sink = sink

    def now(self) -> float:
        """The event loop's clock."""
        return self._loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """Run `callback` at loop time `when`."""
        return self._loop.call_at(when, callback)

    @property
    def blocked(self) -> bool:
        """Whether a write on this link's connection has not drained for a while (a blocked
        broker stops reading)."""
        return self._writes.blocked

    async def perform(self, action: Action) -> Performed:
        """Carry out one action. Returns the broker's answer, if any. Raises RPCError."""
        writer = self._writer
        if writer is not None:
            if isinstance(action, Publish):  # the hot path: one write a loop turn
                with self._errors(f"publishing to {action.routing_key!r}"):
                    if writer.publish(action):
                        await self._bounded(writer.drain(), action.deadline)
                return None
            if isinstance(action, Ack):
                with self._errors("acknowledging"):
                    if writer.ack(action):
                        await writer.drain()
                return None
            if isinstance(action, Reject):
                with self._errors("rejecting"):
                    if writer.reject(action):
                        await writer.drain()
                return None
            writer.flush()  # the library writes what follows itself: keep the order of frames
        return await self._perform(action)

    async def _bounded(self, write: Awaitable[Any], deadline: float | None) -> None:
        # Wait for a publish to be written, no later than its call's deadline: the frames stay
        # queued for the socket (a blocked broker reads them once its alarm clears), and the
        # call's timer ends the call. Shielded: a write is never cut between the frames of
        # one message.
        writing = self._writes.watch(write)
        if deadline is None:
            await writing
            return
        try:
            await asyncio.wait_for(asyncio.shield(writing), max(0.0, deadline - self._loop.time()))
        except asyncio.TimeoutError:
            pass

    def perform_soon(self, action: Action) -> None:
        """Send an action that needs no answer without waiting (from a callback), in order with
        the rest of this loop turn's frames. Raises ConnectionLost when the channel is closed."""
        writer = self._writer
        if writer is not None:  # queued for this turn's write, without waiting for a drain
            if isinstance(action, Publish):
                writer.publish(action)
                return
            if isinstance(action, Ack):
                writer.ack(action)
                return
            if isinstance(action, Reject):
                writer.reject(action)
                return
        task = self._loop.create_task(self._perform_quietly(action))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def flush(self) -> None:
        """Write the frames gathered for this loop turn now."""
        if self._writer is not None:
            self._writer.flush()

    async def _perform_quietly(self, action: Action) -> None:
        try:
            await self.perform(action)
        except RPCError as exc:  # the channel went: the broker requeues what is unacked
            logger.debug("could not perform %r: %s", action, exc)
