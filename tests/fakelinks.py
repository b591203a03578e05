"""The links to a FakeBroker (tests/fakebroker.py): what a caller-connection codec is handed
(`FakeConnection`), and the Link contract, blocking (`FakeLink`) and asyncio (`FakeAsyncLink`).
"""

from __future__ import annotations

import asyncio
import itertools
import queue
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from amqprpc import ConnectionLost
from amqprpc.protocol import Action, Delivery, LinkSink, NoSink, Performed, Returned

if TYPE_CHECKING:
    from tests.fakebroker import FakeBroker, _Message


class FakeConnection:
    """What a caller hands a caller-connection codec: its links share this connection."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    def open_link(self) -> FakeLink:
        return FakeLink(self.broker)


class _LinkBase:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.sink: LinkSink = NoSink()
        self.closed: str | None = None
        self.blocked = False  # the fake never blocks publishers
        self.prefetch = 0
        self.unacked: dict[int, tuple[str, _Message]] = {}
        self._tags = itertools.count(1)
        with broker._lock:
            broker.links.append(self)

    @property
    def is_open(self) -> bool:
        return self.closed is None

    def bind(self, sink: LinkSink) -> None:
        self.sink = sink

    def next_tag(self) -> int:
        return next(self._tags)

    def deliver(self, delivery: Delivery) -> None:
        raise NotImplementedError

    def deliver_return(self, returned: Returned) -> None:
        raise NotImplementedError

    def deliver_cancel(self, consumer_tag: str) -> None:
        """The broker cancelled a consumer of this link (its queue was deleted)."""
        raise NotImplementedError

    def report_closed(self, reason: str | None) -> None:
        """The connection closed: by the peer or a fault (`reason`), or on purpose (None)."""
        raise NotImplementedError


class FakeLink(_LinkBase):
    """A blocking link (the Link contract): what arrives waits in an inbox for `process`."""

    def __init__(self, broker: FakeBroker) -> None:
        super().__init__(broker)
        self._inbox: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def now(self) -> float:
        return self.broker.clock()

    def perform(self, action: Action) -> Performed:
        return self.broker.perform(self, action)

    def deliver(self, delivery: Delivery) -> None:
        self._inbox.put(lambda: self.sink.delivered(delivery))

    def deliver_return(self, returned: Returned) -> None:
        self._inbox.put(lambda: self.sink.returned(returned))

    def deliver_cancel(self, consumer_tag: str) -> None:
        self._inbox.put(lambda: self.sink.cancelled(consumer_tag))

    def report_closed(self, reason: str | None) -> None:
        self._inbox.put(lambda: None)  # wakes `process`, which reports a fault

    def call_threadsafe(self, callback: Callable[[], None]) -> None:
        if self.closed is not None:
            raise ConnectionLost(f"waking the link: {self.closed}")
        self._inbox.put(callback)

    def flush(self) -> None:
        pass  # the fake delivers at once

    def process(self, time_limit: float | None) -> None:
        try:
            first = self._inbox.get(timeout=time_limit) if time_limit != 0 else None
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


class FakeAsyncLink(_LinkBase):
    """An asyncio link (the AsyncLink contract): what arrives is scheduled on its loop."""

    def __init__(self, broker: FakeBroker, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(broker)
        self._loop = loop
        self._closed_event = asyncio.Event()

    def now(self) -> float:
        return self._loop.time()

    async def perform(self, action: Action) -> Performed:
        return self.broker.perform(self, action)

    def perform_soon(self, action: Action) -> None:
        self.broker.perform(self, action)

    def flush(self) -> None:
        pass

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_at(when, callback)

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    def deliver(self, delivery: Delivery) -> None:
        self._soon(lambda: self.sink.delivered(delivery))

    def deliver_return(self, returned: Returned) -> None:
        self._soon(lambda: self.sink.returned(returned))

    def deliver_cancel(self, consumer_tag: str) -> None:
        self._soon(lambda: self.sink.cancelled(consumer_tag))

    def report_closed(self, reason: str | None) -> None:
        def closed() -> None:
            self._closed_event.set()
            if reason is not None:
                self.sink.closed(reason)

        self._soon(closed)

    def _soon(self, callback: Callable[[], Any]) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(callback)
