"""Every use of aioamqp's and pamqp's private internals, fenced behind a version gate.

The async link relies on two things that aioamqp 0.15 does not offer publicly:

- **Reading frames** (`FrameReader`, in place of `protocol.get_frame`). aioamqp decodes every
  content header with pamqp inside its frame reader, and pamqp raises on headers RabbitMQ
  passes on: a short string that is not UTF-8 (a property or a table key), a field-table
  timestamp beyond year 9999, tables nested deeper than Python's recursion limit. aioamqp then
  logs the error and reads on from the middle of a frame, so the connection neither works nor
  closes. The reader decodes such a header with the core's lenient decoder, so one hostile
  message costs one error reply, not the server or client (PROTOCOL.md section 9). It also
  reads the deliveries of amqprpc's own consumers whole, with the core's decoders, and hands
  them to their link: aioamqp's dispatch and pamqp's decoding were a third of the CPU of a
  request or a reply. Uses `protocol.get_frame`, `protocol._stream_reader` and
  `pamqp.frame._unmarshal_*_frame`.
- **One write per loop turn** (`FrameWriter`). aioamqp sends a message as three socket writes
  and drains after each; the writer sends the frames the core encodes (`_frames`,
  byte-identical to pamqp's) in one write per loop turn on aioamqp's own stream writer, so
  heartbeat bookkeeping and flow control stay intact. Uses `protocol._stream_writer`,
  `protocol._drain`, `protocol.server_frame_max`, `protocol.state` and `channel.channel_id`.

Both are used only when the installed versions are the ones tested (`SUPPORTED`) and the
attributes are there (`missing_internals`); otherwise the link falls back to aioamqp's public
API and a WARNING names the versions.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any, NoReturn

import aioamqp.exceptions
import pamqp.commands
import pamqp.exceptions
import pamqp.frame
import pamqp.header
import pamqp.heartbeat

from .._errors import ConnectionLost, ProtocolViolation
from .._events import Ack, Delivery, Publish, Reject
from .._frames import decode_content_header, encode_ack, encode_publish, encode_reject
from .._versions import Range, installed, outside

__all__ = [
    "SUPPORTED",
    "FrameReader",
    "FrameWriter",
    "internals_usable",
    "missing_internals",
    "versions",
]

logger = logging.getLogger(__name__)

# The versions whose internals are known (and tested) to be as this module expects.
SUPPORTED: tuple[Range, ...] = (("aioamqp", (0, 15), (0, 16)), ("pamqp", (3, 2), (5,)))

_PROTOCOL_ATTRS = (
    "get_frame", "_stream_reader", "_stream_writer", "_drain", "server_frame_max", "state",
)  # fmt: skip
_PAMQP_FUNCS = ("_unmarshal_method_frame", "_unmarshal_header_frame", "_unmarshal_body_frame")
_OPEN = 1  # aioamqp.protocol.OPEN
_HIGH_WATER = 256 * 1024  # bytes buffered in the transport before a sender waits for a drain


def versions() -> dict[str, str]:
    """The installed versions of the distributions whose internals are used."""
    return {name: installed(name) for name, _, _ in SUPPORTED}


def missing_internals(protocol: Any = None) -> list[str]:
    """What this module needs and the installed versions lack (empty when all is there).

    Checks the version gate, pamqp's frame functions, and (given one) a connection's
    attributes.
    """
    missing = outside(SUPPORTED)
    missing += [f"pamqp.frame.{f}" for f in _PAMQP_FUNCS if not hasattr(pamqp.frame, f)]
    if protocol is not None:
        missing += [f"AmqpProtocol.{a}" for a in _PROTOCOL_ATTRS if not hasattr(protocol, a)]
        stream = getattr(protocol, "_stream_writer", None)
        if not hasattr(getattr(stream, "transport", None), "get_write_buffer_size"):
            missing.append("AmqpProtocol._stream_writer.transport")
    return missing


_warned = False


def internals_usable(protocol: Any) -> bool:
    """Whether `protocol`'s internals are as tested; logs one WARNING (naming the versions)
    the first time they are not, after which the link uses aioamqp's public API."""
    global _warned
    missing = missing_internals(protocol)
    if missing and not _warned:
        _warned = True
        logger.warning(
            "aioamqp internals differ from the tested ones (%s; installed: %s): publishing "
            "through aioamqp's API, without reading undecodable content headers leniently",
            ", ".join(missing),
            ", ".join(f"{k} {v}" for k, v in versions().items()),
        )
    return not missing


# -- salvaging content headers ----------------------------------------------------------

# What pamqp raises on a content header it cannot read: UnmarshalingException wraps struct.error
# and ValueError (UnicodeDecodeError, year out of range); the others escape it unwrapped.
_DECODE_ERRORS = (
    pamqp.exceptions.UnmarshalingException,
    ArithmeticError,
    OSError,
    RecursionError,
    ValueError,
)
_READER = "_amqprpc_frame_reader"
_FRAME_HEADER, _FRAME_METHOD, _FRAME_BODY, _FRAME_HEARTBEAT = 2, 1, 3, 8
_FRAME_END = b"\xce"
_FRAME_HEAD = struct.Struct(">BHI")
_TAG_BIT = struct.Struct(">QB")
_DELIVER = struct.pack(">HH", 60, 60)  # basic.deliver
_HEARTBEAT = pamqp.heartbeat.Heartbeat()


class FrameReader:
    """Reads one connection's frames in aioamqp's place (its `get_frame`).

    As aioamqp's reader, with two differences. A content header pamqp cannot decode is read
    by the core's lenient decoder. And a delivery for a consumer an amqprpc link registered
    (`consume`) is read here whole (method, content header, body) with the core's decoders
    and handed to the link's callback; aioamqp sees a heartbeat in its place, which it skips.
    That takes aioamqp's dispatch and pamqp's decoding off every request and reply.
    """

    def __init__(self, protocol: Any, to_wire: Any) -> None:
        self._reader = protocol._stream_reader
        self._transport = protocol._stream_writer.transport
        self._to_wire = to_wire
        self._consumers: dict[tuple[int, str], Callable[[Delivery], None]] = {}

    @classmethod
    def of(cls, protocol: Any, to_wire: Any) -> FrameReader:
        """The reader of `protocol` (an AmqpProtocol), installed on first use."""
        reader: FrameReader | None = getattr(protocol, _READER, None)
        if reader is None:
            reader = cls(protocol, to_wire)
            protocol.get_frame = reader.get_frame
            setattr(protocol, _READER, reader)
        return reader

    def consume(self, channel: int, consumer_tag: str, deliver: Callable[[Delivery], None]) -> None:
        """Hand deliveries for `consumer_tag` on `channel` to `deliver` from now on."""
        self._consumers[(channel, consumer_tag)] = deliver

    def forget(self, channel: int, consumer_tag: str | None = None) -> None:
        """Stop handing deliveries for one consumer (or every consumer of `channel`)."""
        for key in [k for k in self._consumers if k[0] == channel]:
            if consumer_tag is None or key[1] == consumer_tag:
                del self._consumers[key]

    async def _raw(self) -> tuple[int, int, bytes]:
        # AMQP 0-9-1 section 4.2.3: type (octet), channel (short), size (long), payload, 0xCE.
        reader = self._reader
        if not reader:
            raise aioamqp.exceptions.AmqpClosedConnection()
        try:
            head = await reader.readexactly(7)
            kind, channel, size = _FRAME_HEAD.unpack(head)
            rest = await reader.readexactly(size + 1)  # the payload and the frame-end octet
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise aioamqp.exceptions.AmqpClosedConnection() from exc
        if rest[-1:] != _FRAME_END:
            self._out_of_step()
        return kind, channel, rest[:-1]

    def _out_of_step(self) -> NoReturn:
        # Nothing after this can be read. aioamqp stops reading on AmqpClosedConnection but
        # leaves the socket open, so the broker would keep this connection's unacked requests:
        # close it, so that they go to another server.
        self._transport.abort()
        raise aioamqp.exceptions.AmqpClosedConnection()

    async def get_frame(self) -> tuple[int, Any]:
        """The next frame, decoded as aioamqp's reader decodes it."""
        kind, channel, payload = await self._raw()
        if kind == _FRAME_METHOD:
            if self._consumers and payload[:4] == _DELIVER:
                deliver = self._consumers.get((channel, _shortstr_at(payload, 4)[0]))
                if deliver is not None:
                    deliver(await self._delivery(payload))
                    return 0, _HEARTBEAT
            return channel, pamqp.frame._unmarshal_method_frame(payload)
        if kind == _FRAME_HEADER:
            return channel, _header_frame(payload, self._to_wire)
        if kind == _FRAME_BODY:
            return channel, pamqp.frame._unmarshal_body_frame(payload)
        if kind == _FRAME_HEARTBEAT:
            return channel, _HEARTBEAT
        return channel, None

    async def _delivery(self, method: bytes) -> Delivery:
        # basic.deliver (class 60, method 60): consumer-tag, delivery-tag (u64), redelivered
        # (bit), exchange, routing-key; then its content header and body frames follow.
        _, pos = _shortstr_at(method, 4)
        delivery_tag, redelivered = _TAG_BIT.unpack_from(method, pos)
        kind, _, payload = await self._raw()
        if kind != _FRAME_HEADER:
            self._out_of_step()
        try:
            body_size, properties = decode_content_header(payload, lenient=True)
        except ProtocolViolation:  # not from RabbitMQ, which checks headers
            self._out_of_step()
        parts = []
        received = 0
        while received < body_size:
            kind, _, chunk = await self._raw()
            if kind != _FRAME_BODY:
                self._out_of_step()
            parts.append(chunk)
            received += len(chunk)
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        return Delivery(
            properties=properties,
            body=body,
            delivery_tag=delivery_tag,
            redelivered=bool(redelivered & 1),
        )


def _header_frame(payload: bytes, to_wire: Any) -> Any:
    try:
        return pamqp.frame._unmarshal_header_frame(payload)
    except _DECODE_ERRORS as exc:
        try:
            body_size, properties = decode_content_header(payload, lenient=True)
        except ProtocolViolation as unreadable:  # not from RabbitMQ, which checks tables
            raise aioamqp.exceptions.AmqpClosedConnection() from unreadable
        logger.warning("pamqp could not decode a content header (%s); read it leniently", exc)
    props = pamqp.commands.Basic.Properties()
    for name, value in to_wire(properties).items():
        setattr(props, name, value)  # as pamqp's unmarshal does: no validation
    return pamqp.header.ContentHeader(body_size=body_size, properties=props)


def _shortstr_at(payload: bytes, pos: int) -> tuple[str, int]:
    stop = pos + 1 + payload[pos]
    return payload[pos + 1 : stop].decode("utf-8", "replace"), stop


# -- one write per loop turn -----------------------------------------------------------


class FrameWriter:
    """Gathers one channel's frames and writes them once per loop turn."""

    def __init__(
        self, protocol: Any, channel: Any, on_backlog: Callable[[], None] = lambda: None
    ) -> None:
        self._protocol = protocol
        self._channel = channel
        self._on_backlog = on_backlog  # a write left the socket's buffer above high water
        self._channel_id: int = channel.channel_id
        self._stream = protocol._stream_writer
        self._transport = protocol._stream_writer.transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []
        self._scheduled = False

    def _check_open(self) -> None:
        if self._protocol.state != _OPEN or not self._channel.is_open:
            raise ConnectionLost("the channel or connection is closed")

    def publish(self, action: Publish) -> bool:
        """Queue a publish. Returns whether the caller should wait for `drain()`.

        Raises ConnectionLost when the channel is closed.
        """
        self._check_open()
        frames = encode_publish(
            self._channel_id,
            self._protocol.server_frame_max,
            exchange=action.exchange,
            routing_key=action.routing_key,
            mandatory=action.mandatory,
            properties=action.properties,
            body=action.body,
        )
        return self._queue(frames)

    def ack(self, action: Ack) -> bool:
        """Queue an ack. Returns whether the caller should wait for `drain()`."""
        self._check_open()
        return self._queue(encode_ack(self._channel_id, action.delivery_tag, action.multiple))

    def reject(self, action: Reject) -> bool:
        """Queue a reject. Returns whether the caller should wait for `drain()`."""
        self._check_open()
        return self._queue(encode_reject(self._channel_id, action.delivery_tag, action.requeue))

    def _queue(self, frames: bytes) -> bool:
        self._pending.append(frames)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)
        return bool(self._transport.get_write_buffer_size() > _HIGH_WATER)

    def flush(self) -> None:
        """Write what is queued now (also before any frame aioamqp writes itself)."""
        self._scheduled = False
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if self._transport.is_closing() or not self._channel.is_open:
            # The connection or the channel went between queueing and writing (the broker
            # closed the channel meanwhile): frames on a closed channel would close the whole
            # connection (504). The link's watchers fail what was in flight.
            return
        self._stream.write(data)
        if self._transport.get_write_buffer_size() > _HIGH_WATER:
            self._on_backlog()

    async def drain(self) -> None:
        """Wait until the transport's buffer has room (aioamqp's drain, with its lock)."""
        self.flush()
        await self._protocol._drain()
