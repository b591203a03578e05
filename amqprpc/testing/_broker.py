"""An in-memory broker that the real sync and async codecs run on, for tests without RabbitMQ.

Owns one virtual host's queues, their messages and consumers, and what RabbitMQ does with them
where amqprpc's guarantees depend on it: default-exchange routing, mandatory returns
(basic.return, 312 NO_ROUTE), per-message `expiration`, exclusive and auto-delete queues that go
with their connection, queue-declare equivalence (404/405/406), prefetch, round-robin among
consumers, ack/reject with RabbitMQ's 406 for an unknown tag, redelivery (flagged) of what a
closed channel left unacked, and consumer cancel when a queue is deleted. Faults come from
`Faults`; time from a real or a manual clock. Knows nothing about RPC beyond telling a request
from a reply for fault injection.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable

from .._errors import BrokerError, ConnectionLost
from .._events import (
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
from ._clock import ManualClock
from ._faults import Faults, is_reply, is_request
from ._links import LinkBase, MemoryAsyncLink, MemoryConnection, MemoryLink
from ._queues import Consumer, Message, Queue

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """One virtual host of an in-memory AMQP broker; thread-safe. Pass it where a connection
    goes: all four codec factories accept it.

    `clock`: `time.monotonic` by default; a `ManualClock` makes time stand still until the
    test calls `advance()`. `faults` arms dropped, late or duplicated replies and cut
    connections. `refuse_connections` (a reason) and `connect_delay` (seconds) make new
    connections fail or answer slowly.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock: Callable[[], float] = clock if clock is not None else time.monotonic
        self.faults = Faults()
        self.queues: dict[str, Queue] = {}
        self.links: list[LinkBase] = []
        self.log: list[tuple[str, object]] = []  # (what, detail): every publish, ack, reject
        self.refuse_connections: str | None = None
        self.connect_delay = 0.0
        self._lock = threading.RLock()
        self._tags = itertools.count(1)
        self._timers: list[threading.Timer] = []

    # -- what the codec factories accept ------------------------------------------------

    def connection(self) -> MemoryConnection:
        """A connection, for the codecs that take a caller's connection (`sync.client_codec`
        then gives the single-threaded client, not the thread-safe one)."""
        return MemoryConnection(self)

    def now(self) -> float:
        """The broker's clock."""
        return self.clock()

    def connect(self) -> MemoryLink:
        """A new connection and a blocking link on it (the Connector contract, which the
        thread-safe sync client and the sync server use). Raises ConnectionLost when
        `refuse_connections` is set."""
        if self.refuse_connections is not None:
            raise ConnectionLost(f"connecting to the in-memory broker: {self.refuse_connections}")
        if self.connect_delay:
            time.sleep(self.connect_delay)  # a broker slow to finish the handshake
        return MemoryLink(self)

    async def open_async_link(self) -> MemoryAsyncLink:
        """A new connection and an asyncio link on it (what the async codecs use)."""
        if self.refuse_connections is not None:
            raise ConnectionLost(f"connecting to the in-memory broker: {self.refuse_connections}")
        return MemoryAsyncLink(self, asyncio.get_running_loop())

    def attach(self, link: LinkBase) -> None:
        """Count `link` among the open ones (links call this as they open)."""
        with self._lock:
            self.links.append(link)

    # -- time -------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move a manual clock forward (timers fire, messages expire). Raises TypeError on a
        real clock."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() needs MemoryBroker(clock=ManualClock())")
        self.clock.advance(seconds)
        with self._lock:
            for found in list(self.queues.values()):
                self._drop_expired(found)

    # -- what a test can look at or do ------------------------------------------------------

    def declare_queue(self, name: str, *, durable: bool = False, auto_delete: bool = False,
                      arguments: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
        """Declare queue `name` as an operator or another service would, with no consumers
        (as a Go peer declares it, by default). Raises BrokerError 406 if it exists
        declared otherwise."""
        with self._lock:
            found = self.queues.get(name)
            if found is None:
                self.queues[name] = Queue(name, durable, False, auto_delete, None, arguments)
            elif (found.durable, found.auto_delete, found.arguments) != (
                durable, auto_delete, arguments
            ):  # fmt: skip
                raise BrokerError(406, f"PRECONDITION_FAILED - inequivalent '{name}'")

    def delete_queue(self, name: str) -> None:
        """Delete queue `name`: its messages go, and each consumer's link hears basic.cancel
        (RabbitMQ's consumer cancel notification). Raises KeyError if there is none."""
        with self._lock:
            found = self.queues.pop(name)
            for consumer in found.consumers:
                consumer.link.deliver_cancel(consumer.tag)

    def depth(self, name: str) -> int:
        """Messages ready in queue `name` (expired ones not counted)."""
        with self._lock:
            found = self.queues[name]
            self._drop_expired(found)
            return len(found.messages)

    def consumers(self, name: str) -> int:
        """Consumers of queue `name` (0 when it does not exist)."""
        with self._lock:
            found = self.queues.get(name)
            return len(found.consumers) if found is not None else 0

    def unacked(self, name: str) -> int:
        """Messages from queue `name` delivered and not yet acked or rejected."""
        with self._lock:
            return sum(1 for link in self.links for q, _ in link.unacked.values() if q == name)

    def cut(self, link: LinkBase) -> None:
        """Drop `link`'s connection, as a network failure does."""
        owner = link.connection
        if owner is None:
            self.close_link(link, "the connection was cut")
        else:
            self.close_connection(owner, "the connection was cut")

    def close_connection(self, connection: MemoryConnection, reason: str | None) -> None:
        """Close a shared connection: each of its channels, then its exclusive queues."""
        for each in list(connection.links):
            self.close_link(each, reason)
        with self._lock:
            for found in list(self.queues.values()):
                if found.owner is connection:
                    del self.queues[found.name]

    def cut_consumers(self, queue: str) -> int:
        """Drop the connection of every consumer of `queue` (a crash of its servers); their
        unacked messages go back to the queue, flagged redelivered. Returns how many."""
        with self._lock:
            found = self.queues.get(queue)
            links = {id(c.link): c.link for c in found.consumers} if found else {}
        for link in links.values():
            self.cut(link)
        return len(links)

    def cut_all(self) -> None:
        """Drop every connection."""
        for link in list(self.links):
            self.cut(link)

    def close(self) -> None:
        """Close every connection quietly (a test's end) and cancel pending timers."""
        for timer in self._timers:
            timer.cancel()
        for link in list(self.links):
            self.close_link(link, None)

    # -- the broker's side of each action --------------------------------------------------

    def perform(self, link: LinkBase, action: Action) -> Performed:
        """Carry out `action` for `link`. Raises BrokerError (closing the channel) where
        RabbitMQ would, ConnectionLost on a closed link."""
        with self._lock:
            if link.closed is not None:
                if isinstance(action, (CloseChannel, CancelConsume)):
                    return None  # its consumers went with it: nothing to do, as the adapters
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
                self._cancel(action.consumer_tag)
            elif isinstance(action, CloseChannel):
                self.close_link(link, None)
            else:
                raise TypeError(f"unknown action {action!r}")
            return None

    def _declare(self, link: LinkBase, action: DeclareQueue) -> QueueDeclared:
        found = self.queues.get(action.queue)
        owner = link.connection or link
        if found is None and action.passive:
            self._fail_channel(link, 404, f"NOT_FOUND - no queue '{action.queue}'")
        if found is None:
            found = self.queues[action.queue] = Queue(
                action.queue, action.durable, action.exclusive, action.auto_delete,
                owner if action.exclusive else None, arguments=action.arguments,
            )  # fmt: skip
        elif found.exclusive and found.owner is not owner:
            self._fail_channel(link, 405, f"RESOURCE_LOCKED - queue '{action.queue}'")
        elif not action.passive and (found.durable, found.auto_delete, found.arguments) != (
            action.durable, action.auto_delete, action.arguments
        ):  # fmt: skip
            self._fail_channel(link, 406, f"PRECONDITION_FAILED - inequivalent '{action.queue}'")
        self._drop_expired(found)
        return QueueDeclared(
            queue=found.name, message_count=len(found.messages), consumer_count=len(found.consumers)
        )

    def _consume(self, link: LinkBase, action: Consume) -> Consuming:
        found = self.queues.get(action.queue)
        if found is None:
            self._fail_channel(link, 404, f"NOT_FOUND - no queue '{action.queue}'")
        assert found is not None
        tag = f"ctag-{next(self._tags)}"
        found.consumers.append(Consumer(link, tag, action.queue, action.no_ack))
        self._dispatch(found)
        return Consuming(consumer_tag=tag)

    def _cancel(self, tag: str) -> None:
        for found in list(self.queues.values()):
            found.consumers = [c for c in found.consumers if c.tag != tag]
            if found.auto_delete and not found.consumers and found.name in self.queues:
                del self.queues[found.name]  # RabbitMQ: its last consumer went

    def _publish(self, link: LinkBase, publish: Publish) -> None:
        self.log.append(("publish", publish))
        copies = 1
        if is_reply(publish):
            fate = self.faults.on_reply()
            if fate.drop:
                return
            copies = fate.copies
            if fate.delay:
                self._later(fate.delay, lambda: self._route(link, publish, copies))
                return
        self._route(link, publish, copies)

    def _route(self, link: LinkBase, publish: Publish, copies: int = 1) -> None:
        with self._lock:
            found = self.queues.get(publish.routing_key) if publish.exchange == "" else None
            if found is None:
                if publish.mandatory and link.closed is None:
                    returned = Returned(
                        reply_code=312, reply_text="NO_ROUTE", routing_key=publish.routing_key,
                        properties=publish.properties, body=publish.body,
                    )  # fmt: skip
                    link.deliver_return(returned)
                return
            expiration = publish.properties.expiration
            expires = None if expiration is None else self.clock() + int(expiration) / 1000
            for _ in range(copies):
                found.messages.append(Message(publish, expires, publisher=link))
            cut = is_request(publish) and self.faults.on_request("cut_client", found.name)
            self._dispatch(found)
        if cut:
            self.cut(link)

    def _later(self, seconds: float, route: Callable[[], None]) -> None:
        if isinstance(self.clock, ManualClock):
            self.clock.call_at(self.clock() + seconds, route)
            return
        timer = threading.Timer(seconds, route)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _drop_expired(self, found: Queue) -> None:
        now = self.clock()
        while found.messages and (expires := found.messages[0].expires) is not None:
            if now < expires:
                break
            found.messages.popleft()  # dead at the head, as RabbitMQ drops it

    def _dispatch(self, found: Queue) -> None:
        crashed: list[LinkBase] = []
        while found.messages and found.consumers:
            self._drop_expired(found)
            if not found.messages:
                break
            consumer = self._next_consumer(found)
            if consumer is None:
                break  # every consumer is at its prefetch limit
            message = found.messages.popleft()
            link = consumer.link
            tag = link.next_tag()
            if not consumer.no_ack:
                link.unacked[tag] = (found.name, message)
            delivery = Delivery(
                properties=message.publish.properties, body=message.publish.body,
                delivery_tag=tag, redelivered=message.redelivered,
            )  # fmt: skip
            link.deliver(delivery)
            if is_request(message.publish) and self.faults.on_request("cut_server", found.name):
                crashed.append(link)
                break
        for link in crashed:
            self.cut(link)

    def _next_consumer(self, found: Queue) -> Consumer | None:
        for offset in range(len(found.consumers)):
            consumer = found.consumers[(found.turn + offset) % len(found.consumers)]
            link = consumer.link
            if consumer.no_ack or not link.prefetch or len(link.unacked) < link.prefetch:
                found.turn = (found.turn + offset + 1) % len(found.consumers)
                return consumer
        return None

    def _settle(
        self, link: LinkBase, tag: int, multiple: bool, what: str, requeue: bool = False
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

    def _fail_channel(self, link: LinkBase, code: int, text: str) -> None:
        self.close_link(link, f"{code} {text}")
        raise BrokerError(code, text)

    def close_link(self, link: LinkBase, reason: str | None) -> None:
        """Close one channel: by the broker or a fault (`reason`), or on request (None).
        Its exclusive queues go with its connection; its unacked messages are requeued."""
        with self._lock:
            if link.closed is not None:
                return
            link.closed = reason or "closed"
            if link in self.links:
                self.links.remove(link)
            owner = link.connection
            if owner is not None and link in owner.links:
                owner.links.remove(link)
            requeued = set()
            for found in list(self.queues.values()):
                found.consumers = [c for c in found.consumers if c.link is not link]
                mine = owner is None and found.owner is link  # a link on its own connection
                if mine or (found.auto_delete and not found.consumers):
                    del self.queues[found.name]
            for queue_name, message in reversed(list(link.unacked.values())):
                if queue_name in self.queues:
                    message.redelivered = True
                    self.queues[queue_name].messages.appendleft(message)
                    requeued.add(queue_name)
            link.unacked.clear()
            for queue_name in requeued:
                self._dispatch(self.queues[queue_name])
        link.report_closed(reason)
