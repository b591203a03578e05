"""aiormq <-> amqprpc actions and events: the async adapter's second `AsyncLink`.

`RmqLink` performs the core's actions on one aiormq channel and hands deliveries, returns, the
broker's cancels and the channel's end to its sink. aiormq exceptions become amqprpc errors
here (`map_exceptions`), and nowhere else. The only other module that touches aiormq is
`_rmq_compat`, which fences the internals the hot path and header salvaging rely on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import aiormq
import aiormq.abc
import aiormq.channel
import aiormq.connection
import aiormq.exceptions
from pamqp import commands as spec

from .._errors import (
    BrokerError,
    ConnectionLost,
    RPCError,
    UsageError,
    connection_closed,
    login_refused,
    vhost_refused,
)
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
from .._urls import user_and_vhost
from ._base import BatchedLink, from_wire, to_wire
from ._rmq_compat import Tap, frame_writer, internals_usable
from ._wire import BatchWriter
from ._writes import Writes

__all__ = ["RmqLink", "is_connection", "map_exceptions"]

logger = logging.getLogger(__name__.rpartition(".")[0] + "._link")

CONNECT_TIMEOUT = 10.0  # seconds for the TCP connect and the AMQP handshake, per URL

# The reply codes of aiormq's close-reason classes (406 is ChannelPreconditionFailed).
_CHANNEL_CODES = {cls: code for code, cls in aiormq.channel.EXCEPTION_MAPPING.items()}
_CONNECTION_CODES = {cls: code for code, cls in aiormq.connection.EXCEPTION_MAPPING.items()}
_CONNECTION_ERRORS = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
)


def _close_reason(exc: Exception, codes: dict[Any, int]) -> tuple[int | None, str]:
    # aiormq raises a close reason as an exception class per reply code: read the code back.
    code = codes.get(type(exc))
    if code is not None:
        return code, str(exc.args[0]) if exc.args else ""
    if len(exc.args) >= 2 and isinstance(exc.args[0], int):  # ChannelClosed(code, text)
        return exc.args[0], str(exc.args[1])
    return None, ""


@contextlib.contextmanager
def map_exceptions(what: str) -> Iterator[None]:
    """Turn aiormq and socket exceptions raised inside into amqprpc errors."""
    try:
        yield
    except aiormq.exceptions.ChannelClosed as exc:
        code, text = _close_reason(exc, _CHANNEL_CODES)
        if code is not None and code >= 400:  # AMQP 0-9-1 soft/hard error reply codes
            raise BrokerError(code, f"{what}: {text}") from exc
        raise ConnectionLost(f"{what}: channel closed") from exc
    except aiormq.exceptions.ConnectionClosed as exc:
        code, text = _close_reason(exc, _CONNECTION_CODES)
        raise connection_closed(what, code, text) from exc
    except _CONNECTION_ERRORS as exc:
        raise ConnectionLost(f"{what}: connection closed") from exc
    except aiormq.exceptions.AMQPError as exc:
        raise RPCError(f"{what}: {exc!r}") from exc


async def _connected(url: str, address: str, timeout: float) -> Any:
    # One connection attempt, its failure named: the broker's refusals as BrokerError, the
    # rest as ConnectionLost (the next URL may answer).
    user, vhost = user_and_vhost(url)
    try:
        return await asyncio.wait_for(aiormq.connect(url), timeout)
    except asyncio.TimeoutError:
        raise ConnectionLost(f"no AMQP handshake within {timeout:g} s") from None
    except aiormq.exceptions.ProbableAuthenticationError as exc:
        raise login_refused(address, user) from exc
    except aiormq.exceptions.InvalidFrameError as exc:
        if "Connection.Close" not in str(exc):
            raise ConnectionLost(f"not an AMQP 0-9-1 broker? ({exc})") from exc
        # RabbitMQ answers connection.open with connection.close 530 NOT_ALLOWED.
        raise vhost_refused(address, user, vhost) from exc
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        # A TLS file the URL names (?cafile=, ?certfile=, ?keyfile=) cannot be read.
        raise UsageError(f"connecting to {address}: {exc}") from exc
    except (aiormq.exceptions.AMQPConnectionError, OSError) as exc:
        errno = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if errno == 111 or isinstance(exc, ConnectionRefusedError):  # ECONNREFUSED
            raise ConnectionLost("connection refused") from exc
        raise ConnectionLost(str(exc) or type(exc).__name__) from exc


def is_connection(target: object) -> bool:
    """Whether `target` is an aiormq connection."""
    return isinstance(target, aiormq.abc.AbstractConnection)


class RmqLink(BatchedLink):
    """One aiormq channel, seen through the core's actions and events (an AsyncLink)."""

    def __init__(self, channel: Any, writer: BatchWriter | None, tap: Tap | None) -> None:
        super().__init__(writer, Writes.of(channel.connection))
        self.channel = channel
        self._tap = tap
        self._own = False  # whether the connection is the link's own (`connect`)
        self._watcher = self._loop.create_task(self._watch())

    @classmethod
    async def connect(cls, urls: Sequence[str], *, timeout: float = CONNECT_TIMEOUT) -> RmqLink:
        """Open a connection of the link's own (closed with it) to the first of `urls` that
        answers, tried in order, each within `timeout` seconds, and a channel on it. Raises
        ConnectionLost naming every address tried and why it failed, BrokerError when the
        broker refuses the user (403, naming the user, never the password) or the virtual
        host (530)."""
        failures = []
        for url in urls:
            address = address_of(url)
            try:
                connection = await _connected(url, address, timeout)
            except ConnectionLost as exc:
                failures.append(f"{address}: {exc}")
                continue
            try:
                link = await cls.open(connection)
            except BaseException:
                await connection.close()
                raise
            link._own = True
            return link
        raise ConnectionLost("cannot connect: " + "; ".join(failures))

    @classmethod
    async def open(cls, connection: Any) -> RmqLink:
        """Open a channel on an aiormq connection. Raises ConnectionLost."""
        usable = internals_usable(connection)
        tap = Tap.of(connection) if usable else None
        with map_exceptions("opening a channel"):
            try:
                # Without the tap, aiormq reports a basic.return only with publisher confirms.
                channel = await connection.channel(
                    publisher_confirms=not usable, on_return_raises=False
                )
            except RuntimeError as exc:  # aiormq: "<connection> closed"
                raise ConnectionLost(f"opening a channel: {exc}") from exc
        sink: list[RmqLink] = []

        def backlog() -> None:
            link = sink[0]
            if link._writer is not None:
                link._writes.backlog(link._writer.drain)

        link = cls(channel, frame_writer(connection, channel, backlog) if usable else None, tap)
        sink.append(link)
        channel.on_consumer_cancel_callbacks.add(link._cancelled)
        if tap is not None:
            tap.on_return(channel.number, link._returned)
        else:
            channel.on_return_callbacks.add(link._returned_message)
        return link

    @property
    def is_open(self) -> bool:
        """Whether the channel and its connection are open."""
        # aiormq closes a connection's channels when it goes: the channel's state is enough
        # (and cheap, unlike Connection.is_opened, asked once a call).
        return not self.channel.is_closed

    @property
    def blocked(self) -> bool:
        """Whether the broker said connection.blocked (a memory or disk alarm), or a write on
        this link's connection has not drained for a while."""
        return (self._tap is not None and self._tap.blocked) or self._writes.blocked

    async def wait_closed(self) -> None:
        """Wait until the channel closes, for whatever reason."""
        await asyncio.wait({self.channel.closing})  # its close reason is not the waiter's

    async def _watch(self) -> None:
        await self.wait_closed()
        if self._tap is not None:
            self._tap.forget(self.channel.number)
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
                        exchange=action.exchange,
                        routing_key=action.routing_key,
                        properties=spec.Basic.Properties(**to_wire(action.properties)),
                        mandatory=action.mandatory,
                    ),
                    action.deadline,
                )
            return None
        if isinstance(action, Ack):
            with map_exceptions("acknowledging"):
                await channel.basic_ack(action.delivery_tag, multiple=action.multiple)
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
                queue=ok.queue or action.queue,
                message_count=ok.message_count or 0,
                consumer_count=ok.consumer_count or 0,
            )
        if isinstance(action, Qos):
            with map_exceptions("setting prefetch"):
                await channel.basic_qos(prefetch_count=action.prefetch_count)
            return None
        if isinstance(action, Consume):
            # The tag is chosen here, so that the tap hands deliveries to the link from the
            # first one on (the broker may send some before consume-ok arrives).
            tag = f"amqprpc.{uuid.uuid4().hex}"
            if self._tap is not None:
                self._tap.consume(channel.number, tag, self._sink_delivered)
            try:
                with map_exceptions(f"consuming {action.queue!r}"):
                    await channel.basic_consume(
                        action.queue,
                        self._delivered,
                        no_ack=action.no_ack,
                        exclusive=action.exclusive,
                        consumer_tag=tag,
                    )
            except BaseException:
                if self._tap is not None:
                    self._tap.forget(channel.number, tag)
                raise
            return Consuming(consumer_tag=tag)
        if isinstance(action, CancelConsume):
            if self._tap is not None:
                self._tap.forget(channel.number, action.consumer_tag)
            if self.is_open:
                with contextlib.suppress(RPCError), map_exceptions("cancelling the consumer"):
                    await channel.basic_cancel(action.consumer_tag)
            return None
        if isinstance(action, CloseChannel):
            if self._tap is not None:
                self._tap.forget(channel.number)
            if self.is_open:
                with contextlib.suppress(RPCError), map_exceptions("closing the channel"):
                    await channel.close()
            if self._own:  # the connection is ours: it goes too
                with contextlib.suppress(RPCError), map_exceptions("closing the connection"):
                    await channel.connection.close()
            self._watcher.cancel()
            return None
        raise TypeError(f"unknown action {action!r}")

    def _sink_delivered(self, delivery: Delivery) -> None:
        self._sink.delivered(delivery)

    # aiormq runs these callbacks as tasks (deliveries) or inside its reader (the others).
    async def _delivered(self, message: aiormq.abc.DeliveredMessage) -> None:
        frame: Any = message.delivery
        self._sink.delivered(
            Delivery(
                properties=from_wire(message.header.properties),
                body=message.body,
                delivery_tag=frame.delivery_tag,
                redelivered=bool(getattr(frame, "redelivered", False)),
            )
        )

    def _cancelled(self, frame: Any) -> None:
        if self._tap is not None:
            self._tap.forget(self.channel.number, frame.consumer_tag)
        self._sink.cancelled(frame.consumer_tag)

    def _returned(self, returned: Returned) -> None:
        self._sink.returned(returned)

    def _returned_message(self, message: aiormq.abc.DeliveredMessage) -> None:
        frame: Any = message.delivery
        self._sink.returned(
            Returned(
                reply_code=frame.reply_code,
                reply_text=frame.reply_text or "",
                routing_key=frame.routing_key or "",
                properties=from_wire(message.header.properties),
                body=message.body,
            )
        )

