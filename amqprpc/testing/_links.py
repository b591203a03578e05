"""The links to a MemoryBroker: what a caller-connection codec is handed (`MemoryConnection`),
and the Link contract, blocking (`MemoryLink`) and asyncio (`MemoryAsyncLink`).

Owns each link's side of the broker's state (its consumers' unacked deliveries, its prefetch,
its open or closed state) and how what the broker sends reaches the link's sink: through an
inbox that `process` empties (blocking), or scheduled on the link's event loop (asyncio).
Knows nothing about RPC.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._errors import ConnectionLost
from .._events import Action, Delivery, Performed, Returned
from .._link import LinkSink, NoSink
from ._clock import ManualClock

if TYPE_CHECKING:
    from ._broker import MemoryBroker
    from ._queues import Message

__all__ = ["LinkBase", "MemoryAsyncLink", "MemoryConnection", "MemoryLink"]


class MemoryConnection:
    """A connection to a MemoryBroker, for the codecs that take a caller's connection: its
    links (one per codec) share it, and `close()` drops them all."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.links: list[LinkBase] = []

    def open_link(self) -> MemoryLink:
        """A blocking link (a channel) on this connection."""
        link = MemoryLink(self.broker, self)
        self.links.append(link)
        return link

    async def open_async_link(self) -> MemoryAsyncLink:
        """An asyncio link (a channel) on this connection."""
        link = MemoryAsyncLink(self.broker, asyncio.get_running_loop(), self)
        self.links.append(link)
        return link

    def close(self) -> None:
        """Close the connection, its channels and its exclusive queues."""
        self.broker.close_connection(self, None)


class LinkBase:
    """What the broker keeps of each link (a channel on its own connection, unless it was
    opened on a MemoryConnection)."""

    def __init__(self, broker: MemoryBroker, connection: MemoryConnection | None) -> None:
        self.broker = broker
        self.connection = connection
        self.sink: LinkSink = NoSink()
        self.closed: str | None = None
        self.blocked = False  # the in-memory broker never blocks publishers
        self.prefetch = 0
        self.unacked: dict[int, tuple[str, Message]] = {}
        self._tags = itertools.count(1)
        broker.attach(self)

    @property
    def is_open(self) -> bool:
        """Whether the channel and its connection are open."""
        return self.closed is None

    def bind(self, sink: LinkSink) -> None:
        """Send deliveries, returns and the channel's end to `sink` from now on."""
        self.sink = sink

    def next_tag(self) -> int:
        """The next delivery tag on this channel."""
        return next(self._tags)

    def deliver(self, delivery: Delivery) -> None:
        """A message for one of this link's consumers."""
        self._post(lambda: self.sink.delivered(delivery))

    def deliver_return(self, returned: Returned) -> None:
        """A mandatory message came back (basic.return)."""
        self._post(lambda: self.sink.returned(returned))

    def deliver_cancel(self, consumer_tag: str) -> None:
        """The broker cancelled a consumer of this link (its queue was deleted)."""
        self._post(lambda: self.sink.cancelled(consumer_tag))

    def report_closed(self, reason: str | None) -> None:
        """The channel closed: by the broker or a fault (`reason`), or on request (None)."""
        raise NotImplementedError

    def _post(self, callback: Callable[[], None]) -> None:
        raise NotImplementedError


class MemoryLink(LinkBase):
    """A blocking link (the Link contract): what arrives waits in an inbox for `process`."""

    def __init__(self, broker: MemoryBroker, connection: MemoryConnection | None = None) -> None:
        super().__init__(broker, connection)
        self._inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._manual = isinstance(broker.clock, ManualClock)
        if isinstance(broker.clock, ManualClock):
            broker.clock.watch(self._wake)

    def now(self) -> float:
        """The broker's clock."""
        return self.broker.now()

    def perform(self, action: Action) -> Performed:
        """Carry out one action on the broker."""
        return self.broker.perform(self, action)

    def report_closed(self, reason: str | None) -> None:
        """Wakes `process`, which reports a fault."""
        if isinstance(self.broker.clock, ManualClock):
            self.broker.clock.unwatch(self._wake)
        self._inbox.put(lambda: None)

    def call_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run `callback` in the thread that calls `process`, soon."""
        if self.closed is not None:
            raise ConnectionLost(f"waking the link: {self.closed}")
        self._inbox.put(callback)

    def flush(self) -> None:
        """Nothing to do: the broker takes each action at once."""

    def process(self, time_limit: float | None) -> None:
        """Run what arrived, waiting up to `time_limit` seconds for the first of it (on a
        manual clock, until the clock moves). Raises ConnectionLost once the link is gone."""
        wait = None if self._manual else time_limit
        try:
            first = self._inbox.get(timeout=wait) if time_limit != 0 else None
        except queue.Empty:
            first = None
        if first is not None:
            first()
        while True:
            try:
                self._inbox.get_nowait()()
            except queue.Empty:
                break
        if self.closed is not None and self.closed != "closed":
            reason, self.closed = self.closed, "closed"
            self.sink.closed(reason)
            raise ConnectionLost(f"waiting for the broker: {reason}")
        if self.closed is not None:
            raise ConnectionLost("waiting for the broker: closed")

    def _wake(self) -> None:
        self._inbox.put(lambda: None)

    def _post(self, callback: Callable[[], None]) -> None:
        self._inbox.put(callback)


class _ManualHandle:
    """A timer on a manual clock that runs its callback on an event loop."""

    def __init__(self, clock: ManualClock, loop: asyncio.AbstractEventLoop, when: float,
                 callback: Callable[[], None]) -> None:  # fmt: skip
        self._loop = loop
        self._callback = callback
        self._cancelled = False
        self._timer = clock.call_at(when, self._fire)

    def _fire(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        if not self._cancelled:
            self._callback()

    def cancel(self) -> None:
        """Do not run the callback."""
        self._cancelled = True
        self._timer.cancel()


class MemoryAsyncLink(LinkBase):
    """An asyncio link (the AsyncLink contract): what arrives is scheduled on its loop."""

    def __init__(self, broker: MemoryBroker, loop: asyncio.AbstractEventLoop,
                 connection: MemoryConnection | None = None) -> None:  # fmt: skip
        super().__init__(broker, connection)
        self._loop = loop
        self._closed_event = asyncio.Event()

    def now(self) -> float:
        """The loop's time, or the broker's manual clock."""
        clock = self.broker.clock
        return clock() if isinstance(clock, ManualClock) else self._loop.time()

    async def perform(self, action: Action) -> Performed:
        """Carry out one action on the broker."""
        return self.broker.perform(self, action)

    def perform_soon(self, action: Action) -> None:
        """Carry out an action that needs no answer."""
        self.broker.perform(self, action)

    def flush(self) -> None:
        """Nothing to do: the broker takes each action at once."""

    def call_at(self, when: float, callback: Callable[[], None]) -> Any:
        """Run `callback` at `when` on the link's clock."""
        clock = self.broker.clock
        if isinstance(clock, ManualClock):
            return _ManualHandle(clock, self._loop, when, callback)
        return self._loop.call_at(when, callback)

    async def wait_closed(self) -> None:
        """Wait until the channel closes."""
        await self._closed_event.wait()

    def report_closed(self, reason: str | None) -> None:
        """Tell the codec on its loop, unless it asked for the close."""

        def closed() -> None:
            self._closed_event.set()
            if reason is not None:
                self.sink.closed(reason)

        self._post(closed)

    def _post(self, callback: Callable[[], Any]) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(callback)
