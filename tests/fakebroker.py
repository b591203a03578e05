"""An in-memory broker and links to it, for the adapter tiers (no RabbitMQ, no network).

`FakeBroker` behaves like RabbitMQ where amqprpc's guarantees depend on it: default-exchange
routing, mandatory returns (basic.return, 312 NO_ROUTE), per-message `expiration`, exclusive and
auto-delete queues that go with their connection, queue-declare equivalence (406/405),
prefetch, ack/reject with the 406 rules for unknown tags, and redelivery of what a closed
channel left unacked. Its links (tests/fakelinks.py) implement the Link contract (`FakeLink`,
blocking, and `FakeAsyncLink`), so the real codecs run on it unchanged:

    broker = FakeBroker()
    amqprpc.sync.client_codec(broker.connection(), "q", Json)   # caller-connection codec
    amqprpc.sync.client_codec(broker, "q", Json)                # thread-safe (a Connector)
    await amqprpc.aio.server_codec(broker, "q", Json)           # async (open_async_link)

Faults: `cut(link)` drops a connection as a network failure would; `refuse_connections` and
`connect_delay` make `connect` fail at once or answer too slowly.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from amqprpc import BrokerError, ConnectionLost
from amqprpc.protocol import (
    Ack,
    Action,
    CancelConsume,
    CloseChannel,
    Consume,
    Consuming,
    DeclareQueue,
    Delivery,
    Performed,
    Publish,
    Qos,
    QueueDeclared,
    Reject,
    Returned,
)
from tests.fakelinks import FakeAsyncLink, FakeConnection, FakeLink, _LinkBase

__all__ = ["FakeAsyncLink", "FakeBroker", "FakeConnection", "FakeLink"]


@dataclass
class _Message:
    publish: Publish
    expires: float | None
    redelivered: bool = False


@dataclass
class _Consumer:
    link: _LinkBase
    tag: str
    queue: str
    no_ack: bool


@dataclass
class _Queue:
    name: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    owner: _LinkBase | None
    arguments: tuple[tuple[str, str], ...] = ()
    messages: collections.deque[_Message] = field(default_factory=collections.deque)
    consumers: list[_Consumer] = field(default_factory=list)
    turn: int = 0


class FakeBroker:
    """One vhost's queues, in memory; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.queues: dict[str, _Queue] = {}
        self.links: list[_LinkBase] = []
        self.log: list[tuple[str, object]] = []  # (what, detail) of every publish, ack, reject
        self.refuse_connections: str | None = None  # connect() fails with this text
        self.connect_delay = 0.0  # seconds connect() takes (a broker that answers slowly)
        self._lock = threading.RLock()
        self._tags = itertools.count(1)

    # -- what the codec factories accept ------------------------------------------------

    def connection(self) -> FakeConnection:
        """A connection for a caller-connection codec (`open_link()` gives a FakeLink)."""
        return FakeConnection(self)

    def now(self) -> float:
        """The broker's clock (a Connector's)."""
        return self.clock()

    def connect(self) -> FakeLink:
        """Connect (a Connector): fails as refused, or answers after `connect_delay`."""
        if self.refuse_connections is not None:
            raise ConnectionLost(f"connecting to the fake broker: {self.refuse_connections}")
        if self.connect_delay:
            time.sleep(self.connect_delay)  # a broker slow to finish the handshake
        return FakeLink(self)

    async def open_async_link(self) -> FakeAsyncLink:
        """A link for the async codecs."""
        return FakeAsyncLink(self, asyncio.get_running_loop())

    # -- fault injection -------------------------------------------------------------------

    def cut(self, link: _LinkBase) -> None:
        """Drop `link`'s connection, as a network failure does."""
        self._close(link, "the connection was cut")

    def cut_all(self) -> None:
        """Drop every connection."""
        for link in list(self.links):
            self.cut(link)

    def delete_queue(self, name: str) -> None:
        """Delete queue `name` as an operator would: its messages go, and each consumer's
        link hears basic.cancel (RabbitMQ's consumer cancel notification)."""
        with self._lock:
            found = self.queues.pop(name)
            for consumer in found.consumers:
                consumer.link.deliver_cancel(consumer.tag)

    def depth(self, name: str) -> int:
        """Messages ready in queue `name`."""
        with self._lock:
            return len(self.queues[name].messages)

    def consumers(self, name: str) -> int:
        """Consumers of queue `name` (0 when it does not exist)."""
        with self._lock:
            found = self.queues.get(name)
            return len(found.consumers) if found is not None else 0

    # -- the broker's side of each action --------------------------------------------------

    def perform(self, link: _LinkBase, action: Action) -> Performed:
        with self._lock:
            if link.closed is not None:
                if isinstance(action, CloseChannel):
                    return None  # closing a closed channel: nothing to do, as pika's
                raise ConnectionLost(f"performing {type(action).__name__}: {link.closed}")
            if isinstance(action, Publish):
                self._publish(link, action)
            elif isinstance(action, Ack):
                self._settle(link, action.delivery_tag, action.multiple, "ack")
            elif isinstance(action, Reject):
                self._settle(link, action.delivery_tag, False, "reject", action.requeue)
            elif isinstance(action, DeclareQueue):
                return self._declare(link, action)
            elif isinstance(action, Qos):
                link.prefetch = action.prefetch_count
            elif isinstance(action, Consume):
                return self._consume(link, action)
            elif isinstance(action, CancelConsume):
                self._cancel(link, action.consumer_tag)
            elif isinstance(action, CloseChannel):
                self._close(link, None)
            else:
                raise TypeError(f"unknown action {action!r}")
            return None

    def _declare(self, link: _LinkBase, action: DeclareQueue) -> QueueDeclared:
        found = self.queues.get(action.queue)
        if found is None and action.passive:
            self._fail_channel(link, 404, f"NOT_FOUND - no queue '{action.queue}'")
        if found is None:
            found = self.queues[action.queue] = _Queue(
                action.queue, action.durable, action.exclusive, action.auto_delete,
                link if action.exclusive else None, arguments=action.arguments,
            )  # fmt: skip
        elif found.exclusive and found.owner is not link:
            self._fail_channel(link, 405, f"RESOURCE_LOCKED - queue '{action.queue}'")
        elif not action.passive and (found.durable, found.auto_delete, found.arguments) != (
            action.durable, action.auto_delete, action.arguments
        ):  # fmt: skip
            self._fail_channel(link, 406, f"PRECONDITION_FAILED - inequivalent '{action.queue}'")
        return QueueDeclared(
            queue=found.name, message_count=len(found.messages), consumer_count=len(found.consumers)
        )

    def _consume(self, link: _LinkBase, action: Consume) -> Consuming:
        found = self.queues.get(action.queue)
        if found is None:
            self._fail_channel(link, 404, f"NOT_FOUND - no queue '{action.queue}'")
        assert found is not None
        tag = f"ctag-{next(self._tags)}"
        found.consumers.append(_Consumer(link, tag, action.queue, action.no_ack))
        self._dispatch(found)
        return Consuming(consumer_tag=tag)

    def _cancel(self, link: _LinkBase, tag: str) -> None:
        for found in self.queues.values():
            found.consumers = [c for c in found.consumers if c.tag != tag]

    def _publish(self, link: _LinkBase, publish: Publish) -> None:
        self.log.append(("publish", publish))
        found = self.queues.get(publish.routing_key) if publish.exchange == "" else None
        if found is None:
            if publish.mandatory:
                link.deliver_return(
                    Returned(
                        reply_code=312,
                        reply_text="NO_ROUTE",
                        routing_key=publish.routing_key,
                        properties=publish.properties,
                        body=publish.body,
                    )
                )
            return
        expiration = publish.properties.expiration
        expires = None if expiration is None else self.clock() + int(expiration) / 1000
        found.messages.append(_Message(publish, expires))
        self._dispatch(found)

    def _dispatch(self, found: _Queue) -> None:
        while found.messages and found.consumers:
            message = found.messages[0]
            if message.expires is not None and self.clock() >= message.expires:
                found.messages.popleft()  # dead: dropped at the head, as RabbitMQ does
                continue
            consumer = self._next_consumer(found)
            if consumer is None:
                return  # every consumer is at its prefetch limit
            found.messages.popleft()
            link = consumer.link
            tag = link.next_tag()
            if not consumer.no_ack:
                link.unacked[tag] = (found.name, message)
            link.deliver(
                Delivery(
                    properties=message.publish.properties,
                    body=message.publish.body,
                    delivery_tag=tag,
                    redelivered=message.redelivered,
                )
            )

    def _next_consumer(self, found: _Queue) -> _Consumer | None:
        for offset in range(len(found.consumers)):
            consumer = found.consumers[(found.turn + offset) % len(found.consumers)]
            link = consumer.link
            if consumer.no_ack or not link.prefetch or len(link.unacked) < link.prefetch:
                found.turn = (found.turn + offset + 1) % len(found.consumers)
                return consumer
        return None

    def _settle(
        self, link: _LinkBase, tag: int, multiple: bool, what: str, requeue: bool = False
    ) -> None:
        tags = [t for t in link.unacked if t <= tag] if multiple else [tag]
        if tag not in link.unacked:
            self._fail_channel(link, 406, f"PRECONDITION_FAILED - unknown delivery tag {tag}")
        self.log.append((what, tags))
        touched = set()
        for settled in tags:
            name, message = link.unacked.pop(settled)
            touched.add(name)
            if requeue and name in self.queues:
                message.redelivered = True
                self.queues[name].messages.appendleft(message)
        for name in touched:
            if name in self.queues:
                self._dispatch(self.queues[name])

    def _fail_channel(self, link: _LinkBase, code: int, text: str) -> None:
        self._close(link, f"{code} {text}")
        raise BrokerError(code, text)

    def _close(self, link: _LinkBase, reason: str | None) -> None:
        with self._lock:
            if link.closed is not None:
                return
            link.closed = reason or "closed"
            if link in self.links:
                self.links.remove(link)
            requeued = set()
            for found in list(self.queues.values()):
                found.consumers = [c for c in found.consumers if c.link is not link]
                if found.owner is link or (found.auto_delete and not found.consumers):
                    del self.queues[found.name]
            for name, message in link.unacked.values():
                if name in self.queues:
                    message.redelivered = True
                    self.queues[name].messages.appendleft(message)
                    requeued.add(name)
            link.unacked.clear()
            for name in requeued:
                self._dispatch(self.queues[name])
        link.report_closed(reason)
