"""aioamqp <-> amqprpc actions and events: the async adapter's `AsyncLink`.

`AioLink` performs the core's actions on one aioamqp channel and hands deliveries, returns and
the channel's end to its sink. Client-library exceptions become amqprpc errors here
(`map_exceptions`), and nowhere else. The only other module that touches aioamqp is
`_compat`, which fences the internals the hot path and header salvaging rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import aioamqp
import aioamqp.exceptions

from .._errors import BrokerError, ConnectionLost, RPCError
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
from .._urls import address as address_of
from ._base import BatchedLink, from_wire, to_wire
from ._compat import FrameReader, frame_writer, internals_usable
from ._wire import BatchWriter
from ._writes import Writes

__all__ = ["AioLink", "is_protocol", "map_exceptions"]

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


class AioLink(BatchedLink):
    """One aioamqp channel, seen through the core's actions and events (an AsyncLink)."""

    def __init__(
        self, channel: Any, writer: BatchWriter | None, reader: FrameReader | None
    ) -> None:
        super().__init__(writer, Writes.of(channel.protocol))
        self.channel = channel
        self._reader = reader
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
                    except ConnectionRefusedError:
                        raise ConnectionLost("connection refused") from None
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
        reader = FrameReader.of(protocol) if usable else None
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

    async def wait_closed(self) -> None:
        """Wait until the channel closes, for whatever reason."""
        await self.channel.close_event.wait()

    async def _watch(self) -> None:
        await self.channel.close_event.wait()
        if self._reader is not None:
            self._reader.forget(self.channel.channel_id)
        self._sink.closed("the channel or connection closed")

    def _errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        return map_exceptions(what)

    async def _perform(self, action: Action) -> Performed:
        channel = self.channel
        if isinstance(action, Publish):
            with map_exceptions(f"publishing to {action.routing_key!r}"):
                await self._bounded(
                    channel.basic_publish(
                        action.body,
                        action.exchange,
                        action.routing_key,
                        properties=to_wire(action.properties),
                        mandatory=action.mandatory,
                    ),
                    action.deadline,
                )
            return None
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

    def _deliver(self, delivery: Delivery) -> None:
        self._sink.delivered(delivery)

    # aioamqp awaits these callbacks inside its frame reader: they must not block.
    async def _delivered(self, channel: Any, body: bytes, envelope: Any, props: Any) -> None:
        delivery = Delivery(
            properties=from_wire(props),
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
            properties=from_wire(props),
            body=body,
        )
        self._sink.returned(returned)

