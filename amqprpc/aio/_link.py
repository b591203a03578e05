"""aioamqp <-> amqprpc actions and events. The only module that imports aioamqp.

`AioLink` performs the core's actions on one aioamqp channel and feeds deliveries and
returns back as events; `run` is the async pump that drives a core op. Client-library
exceptions become amqprpc errors here (`map_exceptions`), and nowhere else.

aioamqp decodes every content header with pamqp inside its frame reader, and pamqp raises on
headers RabbitMQ passes on: a short string that is not UTF-8 (a property or a table key), a
field-table timestamp beyond year 9999, tables nested deeper than Python's recursion limit.
aioamqp then logs the error and reads on from the middle of a frame, so the connection
neither works nor closes. A link therefore reads frames for its connection itself
(`_salvage_frames`): as aioamqp does, except that a content header pamqp cannot decode is read
by the core's lenient decoder, so that one hostile message costs one error reply, not the
server or client (PROTOCOL.md section 9).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aioamqp
import aioamqp.exceptions
import pamqp.commands
import pamqp.exceptions
import pamqp.frame
import pamqp.header
import pamqp.heartbeat

from .._envelope import Properties, lenient_properties
from .._errors import BrokerError, ConnectionLost, ProtocolViolation, RPCError, UsageError
from .._events import (
    Ack,
    Action,
    Consume,
    DeclareQueue,
    Delivery,
    Event,
    Publish,
    Qos,
    Reject,
    Returned,
    WaitFor,
)
from .._frames import decode_content_header
from .._ops import Op, QueueDeclared
from ._writer import FrameWriter

__all__ = ["AioLink", "map_exceptions", "run"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

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


def _from_wire(props: Any) -> Properties:
    stamp = props.timestamp
    try:  # what arrives is nearly always well-formed: check it in one go
        return Properties(
            content_type=props.content_type,
            content_encoding=props.content_encoding,
            headers=props.headers,
            delivery_mode=props.delivery_mode,
            priority=props.priority,
            correlation_id=props.correlation_id,
            reply_to=props.reply_to,
            expiration=props.expiration,
            message_id=props.message_id,
            timestamp=None if stamp is None else int(stamp.timestamp()),
            type=props.message_type,
            user_id=props.user_id,
            app_id=props.app_id,
            cluster_id=props.cluster_id,
        )
    except (UsageError, AttributeError, TypeError, ValueError, OverflowError):
        pass
    fields = {name: getattr(props, name, None) for name in Properties.__slots__}
    fields["type"] = getattr(props, "message_type", None)
    stamp = fields["timestamp"]
    fields["timestamp"] = int(stamp.timestamp()) if isinstance(stamp, datetime.datetime) else None
    return lenient_properties(fields)


# What pamqp raises on a content header it cannot read: UnmarshalingException wraps struct.error
# and ValueError (UnicodeDecodeError, year out of range); the others escape it unwrapped.
_DECODE_ERRORS = (
    pamqp.exceptions.UnmarshalingException,
    ArithmeticError,
    OSError,
    RecursionError,
    ValueError,
)
_SALVAGED = "_amqprpc_salvages_headers"
_FRAME_HEADER, _FRAME_METHOD, _FRAME_BODY, _FRAME_HEARTBEAT = 2, 1, 3, 8
_FRAME_END = b"\xce"


def _salvage_frames(protocol: Any) -> None:
    """Let `protocol` (an AmqpProtocol) survive content headers pamqp cannot decode.

    Replaces this one connection's `get_frame` (aioamqp reads every frame through it) with
    `_read_frame` (see the module docstring).
    """
    if getattr(protocol, _SALVAGED, False) or not hasattr(protocol, "get_frame"):
        return

    async def get_frame() -> tuple[int, Any]:
        return await _read_frame(protocol._stream_reader)

    protocol.get_frame = get_frame
    setattr(protocol, _SALVAGED, True)


async def _read_frame(reader: Any) -> tuple[int, Any]:
    # aioamqp.frame.read (AMQP 0-9-1 section 4.2.3: type, channel, size, payload, 0xCE), except
    # for content headers pamqp cannot decode.
    if not reader:
        raise aioamqp.exceptions.AmqpClosedConnection()
    try:
        head = await reader.readexactly(7)
    except (asyncio.IncompleteReadError, OSError) as exc:
        raise aioamqp.exceptions.AmqpClosedConnection() from exc
    kind, channel, size = pamqp.frame.frame_parts(head)
    if size is None:
        raise aioamqp.exceptions.AmqpClosedConnection()
    rest = await reader.readexactly(size + 1)  # the payload and the frame-end octet together
    if rest[-1:] != _FRAME_END:
        raise aioamqp.exceptions.AmqpClosedConnection()  # out of step: nothing can be read
    payload = rest[:-1]
    frame: Any = None
    if kind == _FRAME_METHOD:
        frame = pamqp.frame._unmarshal_method_frame(payload)
    elif kind == _FRAME_HEADER:
        frame = _header_frame(payload)
    elif kind == _FRAME_BODY:
        frame = pamqp.frame._unmarshal_body_frame(payload)
    elif kind == _FRAME_HEARTBEAT:
        frame = pamqp.heartbeat.Heartbeat()
    return channel, frame


def _header_frame(payload: bytes) -> Any:
    try:
        return pamqp.frame._unmarshal_header_frame(payload)
    except _DECODE_ERRORS as exc:
        try:
            body_size, properties = decode_content_header(payload, lenient=True)
        except ProtocolViolation as unreadable:  # not from RabbitMQ, which checks tables
            raise aioamqp.exceptions.AmqpClosedConnection() from unreadable
        logger.warning("pamqp could not decode a content header (%s); read it leniently", exc)
    props = pamqp.commands.Basic.Properties()
    for name, value in _to_wire(properties).items():
        setattr(props, name, value)  # as pamqp's unmarshal does: no validation
    return pamqp.header.ContentHeader(body_size=body_size, properties=props)


class AioLink:
    """One aioamqp channel, seen through the core's actions and events."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.on_delivery: Callable[[Delivery], None] = _unhandled
        self.on_return: Callable[[Returned], None] = _unhandled
        self.on_wait: Callable[[WaitFor], None] = _unhandled
        self.consumer_tag: str | None = None
        self._writer: FrameWriter | None = None
        self._background: set[asyncio.Task[Any]] = set()

    @classmethod
    async def open(cls, protocol: Any) -> AioLink:
        """Open a channel on an aioamqp connection (AmqpProtocol). Raises ConnectionLost."""
        link = cls(None)
        _salvage_frames(protocol)
        with map_exceptions("opening a channel"):
            link.channel = await protocol.channel(return_callback=link._returned)
        link._writer = FrameWriter.attach(protocol, link.channel)
        return link

    @property
    def is_open(self) -> bool:
        """Whether the channel (and so its connection) is still open."""
        return bool(self.channel.is_open)

    async def wait_closed(self) -> None:
        """Wait until the channel closes, for whatever reason."""
        await self.channel.close_event.wait()

    async def perform(self, action: Action) -> Event | QueueDeclared | None:
        """Carry out one action. Returns the event it produced, if any. Raises RPCError."""
        channel = self.channel
        writer = self._writer
        if isinstance(action, Publish):
            if writer is not None:  # the hot path: frames built by the core, one write a turn
                with map_exceptions(f"publishing to {action.routing_key!r}"):
                    if writer.publish(action):
                        await writer.drain()
                return None
            with map_exceptions(f"publishing to {action.routing_key!r}"):
                await channel.basic_publish(
                    action.body,
                    action.exchange,
                    action.routing_key,
                    properties=_to_wire(action.properties),
                    mandatory=action.mandatory,
                )
            return None
        if isinstance(action, WaitFor):
            self.on_wait(action)
            token: Awaitable[Event] = action.token  # type: ignore[assignment]
            return await token
        if writer is not None:
            if isinstance(action, Ack):
                with map_exceptions("acknowledging"):
                    if writer.ack(action):
                        await writer.drain()
                return None
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
                    durable=action.durable,
                    exclusive=action.exclusive,
                    auto_delete=action.auto_delete,
                )
            return QueueDeclared(ok["queue"], ok["message_count"], ok["consumer_count"])
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
            self.consumer_tag = ok["consumer_tag"]
            return None
        raise TypeError(f"unknown action {action!r}")

    def flush(self) -> None:
        """Write the frames gathered for this loop turn now."""
        if self._writer is not None:
            self._writer.flush()

    def perform_soon(self, action: Ack | Reject) -> None:
        """Send an ack or reject without waiting (from a callback). Raises ConnectionLost."""
        if self._writer is not None:  # small frames: no wait for the drain
            if isinstance(action, Ack):
                self._writer.ack(action)
            else:
                self._writer.reject(action)
            return
        task = asyncio.get_running_loop().create_task(self._perform_quietly(action))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _perform_quietly(self, action: Ack | Reject) -> None:
        try:
            await self.perform(action)
        except RPCError as exc:  # the channel went: the broker requeues what is unacked
            logger.debug("could not acknowledge: %s", exc)

    async def stop_consuming(self) -> None:
        """Cancel our consumer (basic.cancel); deliveries stop once the broker confirms."""
        if self._writer is not None:
            self._writer.flush()
        if self.consumer_tag is not None and self.is_open:
            with contextlib.suppress(RPCError), map_exceptions("cancelling the consumer"):
                await self.channel.basic_cancel(self.consumer_tag)
            self.consumer_tag = None

    async def close(self) -> None:
        """Close the channel; a channel that is already closed is left as it is."""
        if self._writer is not None:
            self._writer.flush()
        if self.is_open:
            with contextlib.suppress(RPCError), map_exceptions("closing the channel"):
                await self.channel.close()

    # aioamqp awaits these callbacks inside its frame reader: they must not block.
    async def _delivered(self, channel: Any, body: bytes, envelope: Any, props: Any) -> None:
        delivery = Delivery(
            properties=_from_wire(props),
            body=body,
            delivery_tag=envelope.delivery_tag,
            redelivered=bool(envelope.is_redeliver),
        )
        self.on_delivery(delivery)

    async def _returned(self, channel: Any, body: bytes, envelope: Any, props: Any) -> None:
        returned = Returned(
            reply_code=envelope.reply_code,
            reply_text=envelope.reply_text or "",
            routing_key=envelope.routing_key or "",
            properties=_from_wire(props),
            body=body,
        )
        self.on_return(returned)


def _unhandled(event: object) -> None:
    logger.debug("no handler for %r", event)


async def run(op: Op[T], link: AioLink) -> T:
    """Drive a core op to its end on `link`. Returns its value; raises what it raises.

    An exception from performing an action (or a cancellation while waiting) is thrown into
    the op, so the core can end the call it belongs to before it propagates.
    """
    try:
        action = next(op)
        while True:
            try:
                event = await link.perform(action)
            except BaseException as exc:  # noqa: BLE001 - handed to the op, which re-raises
                action = op.throw(exc)
            else:
                action = op.send(event)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
