"""aioamqp <-> amqprpc actions and events: the async adapter's `AsyncLink`.

`AioLink` performs the core's actions on one aioamqp channel and hands deliveries, returns and
the channel's end to its sink. Client-library exceptions become amqprpc errors here
(`map_exceptions`), and nowhere else. The only other module that touches aioamqp is
`_compat`, which fences the internals the hot path and header salvaging rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import aioamqp
import aioamqp.exceptions

from .._envelope import Properties, read_properties
from .._errors import BrokerError, ConnectionLost, RPCError, UsageError
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
from .._link import AsyncLink, LinkSink, NoSink
from .._urls import address as address_of
from .._urls import urls_of
from ._compat import FrameReader, frame_writer, internals_usable
from ._wire import BatchWriter
from ._writes import Writes

__all__ = ["AioLink", "is_protocol", "link_for", "map_exceptions", "open_link"]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT = 10.0  # seconds for the TCP connect and the AMQP handshake, per URL

_CONNECTION_ERRORS = (aioamqp.exceptions.AmqpClosedConnection, ConnectionError, OSError)


@contextlib.contextmanager
def map_exceptions(what: str) -> Iterator[None]:
    """Turn aioamqp and socket exceptions raised inside into amqprpc errors."""
    try:
        yield
    except aioamqp.exceptions.ChannelClosed as exc:
        if exc.code and exc.code >= 400:  # AMQP 0-9-1 soft/hard error reply codes
            raise BrokerError(exc.code, f"{what}: {exc.message}") from exc
        raise ConnectionLost(f"{what}: channel closed") from exc
    except _CONNECTION_ERRORS as exc:
        raise ConnectionLost(f"{what}: connection closed") from exc
    except aioamqp.exceptions.AioamqpException as exc:
        raise RPCError(f"{what}: {exc!r}") from exc


def is_protocol(target: object) -> bool:
    """Whether `target` is an aioamqp connection (`AmqpProtocol`)."""
    return isinstance(target, aioamqp.AmqpProtocol)


def _to_wire(properties: Properties) -> dict[str, Any]:
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


def _from_wire(props: Any) -> Properties:
    return read_properties(props, type_attr="message_type", timestamp=_epoch_seconds)


class AioLink:
    """One aioamqp channel, seen through the core's actions and events (an AsyncLink)."""

    def __init__(
        self, channel: Any, writer: BatchWriter | None, reader: FrameReader | None
    ) -> None:
        self.channel = channel
        self._writer = writer
        self._reader = reader
        self._sink: LinkSink = NoSink()
        self._loop = asyncio.get_running_loop()
        self._background: set[asyncio.Task[Any]] = set()
        self._writes = Writes.of(channel.protocol)
        self._watcher = self._loop.create_task(self._watch())
        self._transport: Any = None  # set when the connection is the link's own (`connect`)

    @classmethod
    async def connect(cls, urls: Sequence[str], *, timeout: float = CONNECT_TIMEOUT) -> AioLink:
        """Open a connection of the link's own (closed with it) to the first of `urls` that
        answers, tried in order, each within `timeout` seconds, and a channel on it. Raises
        ConnectionLost naming every address tried (never a password), UsageError for a URL
        that is not amqp:// or amqps://."""
        failures = []
        for url in urls:
            address = address_of(url)
            try:
                with map_exceptions(f"connecting to {address}"):
                    try:
                        transport, protocol = await asyncio.wait_for(aioamqp.from_url(url), timeout)
                    except asyncio.TimeoutError:
                        raise ConnectionLost(f"no AMQP handshake within {timeout:g} s") from None
                    except aioamqp.exceptions.AmqpClosedConnection:
                        raise ConnectionLost(
                            "the broker closed the connection while opening it (wrong user "
                            "or password, or no such vhost?)"
                        ) from None
            except ConnectionLost as exc:
                failures.append(f"{address}: {exc}")
                continue
            try:
                link = await cls.open(protocol)
            except BaseException:
                transport.close()
                raise
            link._transport = transport
            return link
        raise ConnectionLost("cannot connect: " + "; ".join(failures))

    @classmethod
    async def open(cls, protocol: Any) -> AioLink:
        """Open a channel on an aioamqp connection (AmqpProtocol). Raises ConnectionLost."""
        usable = internals_usable(protocol)
        reader = FrameReader.of(protocol, _to_wire) if usable else None
        sink: list[AioLink] = []

        async def returned(channel: Any, body: bytes, envelope: Any, props: Any) -> None:
            sink[0]._returned(body, envelope, props)

        async def cancelled(channel: Any, consumer_tag: str) -> None:
            sink[0]._cancelled(consumer_tag)

        with map_exceptions("opening a channel"):
            channel = await protocol.channel(return_callback=returned)
            channel.add_cancellation_callback(cancelled)

        def backlog() -> None:
            link = sink[0]
            if link._writer is not None:
                link._writes.backlog(link._writer.drain)

        link = cls(channel, frame_writer(protocol, channel, backlog) if usable else None, reader)
        sink.append(link)
        return link

    @property
    def is_open(self) -> bool:
        """Whether the channel (and so its connection) is still open."""
        return bool(self.channel.is_open)

    def bind(self, sink: LinkSink) -> None:
        """Send deliveries, returns and the channel's end to `sink` from now on."""
        self._sink = sink

    def now(self) -> float:
        """The event loop's clock."""
        return self._loop.time()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        """Run `callback` at loop time `when`."""
        return self._loop.call_at(when, callback)

    async def wait_closed(self) -> None:
        """Wait until the channel closes, for whatever reason."""
        await self.channel.close_event.wait()

    async def _watch(self) -> None:
        await self.channel.close_event.wait()
        if self._reader is not None:
            self._reader.forget(self.channel.channel_id)
        self._sink.closed("the channel or connection closed")

    async def perform(self, action: Action) -> Performed:
        """Carry out one action. Returns the broker's answer, if any. Raises RPCError."""
        channel = self.channel
        writer = self._writer
        if isinstance(action, Publish):
            with map_exceptions(f"publishing to {action.routing_key!r}"):
                if writer is None:
                    await self._bounded(
                        channel.basic_publish(
                            action.body,
                            action.exchange,
                            action.routing_key,
                            properties=_to_wire(action.properties),
                            mandatory=action.mandatory,
                        ),
                        action.deadline,
                    )
                elif writer.publish(action):  # the hot path: one write a loop turn
                    await self._bounded(writer.drain(), action.deadline)
            return None
        if isinstance(action, Ack) and writer is not None:
            with map_exceptions("acknowledging"):
                if writer.ack(action):
                    await writer.drain()
            return None
        if isinstance(action, Reject) and writer is not None:
            with map_exceptions("rejecting"):
                if writer.reject(action):
                    await writer.drain()
            return None
        if writer is not None:
            writer.flush()  # aioamqp writes what follows itself: keep the order of frames
        if isinstance(action, Ack):
            with map_exceptions("acknowledging"):
                await channel.basic_client_ack(action.delivery_tag, multiple=action.multiple)
            return None
        if isinstance(action, Reject):
            with map_exceptions("rejecting"):
                await channel.basic_reject(action.delivery_tag, requeue=action.requeue)
            return None
        if isinstance(action, DeclareQueue):
            with map_exceptions(f"declaring queue {action.queue!r}"):
                ok = await channel.queue_declare(
                    action.queue,
                    passive=action.passive,
                    durable=action.durable,
                    exclusive=action.exclusive,
                    auto_delete=action.auto_delete,
                    arguments=dict(action.arguments) or None,
                )
            return QueueDeclared(
                queue=ok["queue"],
                message_count=ok["message_count"],
                consumer_count=ok["consumer_count"],
            )
        if isinstance(action, Qos):
            with map_exceptions("setting prefetch"):
                await channel.basic_qos(prefetch_count=action.prefetch_count)
            return None
        if isinstance(action, Consume):
            with map_exceptions(f"consuming {action.queue!r}"):
                ok = await channel.basic_consume(
                    self._delivered,
                    queue_name=action.queue,
                    no_ack=action.no_ack,
                    exclusive=action.exclusive,
                )
            if self._reader is not None:  # its deliveries come straight to the sink
                self._reader.consume(channel.channel_id, ok["consumer_tag"], self._deliver)
            return Consuming(consumer_tag=ok["consumer_tag"])
        if isinstance(action, CancelConsume):
            if self._reader is not None:
                self._reader.forget(channel.channel_id, action.consumer_tag)
            if self.is_open:
                with contextlib.suppress(RPCError), map_exceptions("cancelling the consumer"):
                    await channel.basic_cancel(action.consumer_tag)
            return None
        if isinstance(action, CloseChannel):
            self._watcher.cancel()
            if self._reader is not None:
                self._reader.forget(channel.channel_id)
            if self.is_open:
                with contextlib.suppress(RPCError), map_exceptions("closing the channel"):
                    await channel.close()
            if self._transport is not None:  # the connection is ours: it goes too
                with contextlib.suppress(RPCError), map_exceptions("closing the connection"):
                    if channel.protocol.state == aioamqp.protocol.OPEN:
                        await channel.protocol.close()
                self._transport.close()
            return None
        raise TypeError(f"unknown action {action!r}")

    @property
    def blocked(self) -> bool:
        """Whether a write on this link's connection has not drained for a while (a blocked
        broker stops reading)."""
        return self._writes.blocked

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

    def _deliver(self, delivery: Delivery) -> None:
        self._sink.delivered(delivery)

    # aioamqp awaits these callbacks inside its frame reader: they must not block.
    async def _delivered(self, channel: Any, body: bytes, envelope: Any, props: Any) -> None:
        delivery = Delivery(
            properties=_from_wire(props),
            body=body,
            delivery_tag=envelope.delivery_tag,
            redelivered=bool(envelope.is_redeliver),
        )
        self._sink.delivered(delivery)

    def _cancelled(self, consumer_tag: str) -> None:
        if self._reader is not None:
            self._reader.forget(self.channel.channel_id, consumer_tag)
        self._sink.cancelled(consumer_tag)

    def _returned(self, body: bytes, envelope: Any, props: Any) -> None:
        returned = Returned(
            reply_code=envelope.reply_code,
            reply_text=envelope.reply_text or "",
            routing_key=envelope.routing_key or "",
            properties=_from_wire(props),
            body=body,
        )
        self._sink.returned(returned)


async def link_for(target: object) -> tuple[AsyncLink, list[str] | None]:
    """A link on a caller's connection (see `open_link`), or on a connection of its own to a
    URL or the first answering one of a list of them. Returns the link and the URLs (None
    for a caller's connection). Raises UsageError, ConnectionLost or BrokerError."""
    urls = urls_of(target)
    if urls is None:
        return await open_link(target), None
    return await AioLink.connect(urls), urls


async def open_link(target: object) -> AsyncLink:
    """A link on `target`: an aioamqp connection (`AmqpProtocol`), or any object with an
    `async open_async_link()` that returns an AsyncLink (an in-memory broker, say).

    Raises UsageError for anything else, ConnectionLost when no channel can be opened.
    """
    if is_protocol(target):
        return await AioLink.open(target)
    opener = getattr(target, "open_async_link", None)
    if callable(opener):
        link: AsyncLink = await opener()
        return link
    raise UsageError(f"expected an aioamqp connection (AmqpProtocol), not {target!r}")
