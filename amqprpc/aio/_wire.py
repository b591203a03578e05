"""AMQP frames on an asyncio stream, for the async links' fast paths: reading whole frames and
the messages of amqprpc's own consumers, and writing a channel's frames once per loop turn.

Shared by the aioamqp and the aiormq links' `_compat` modules, which install these on their
client library's connection. Imports no client library; the core's `_frames` encodes and
decodes the frames' contents.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable

from .._envelope import Properties
from .._errors import ConnectionLost, ProtocolViolation
from .._events import Ack, Delivery, Publish, Reject, Returned
from .._frames import decode_content_header, encode_ack, encode_publish, encode_reject

__all__ = [
    "DELIVER",
    "FRAME_BODY",
    "FRAME_HEADER",
    "FRAME_HEARTBEAT",
    "FRAME_METHOD",
    "RETURN",
    "BatchWriter",
    "FrameSource",
    "OutOfStep",
    "shortstr_at",
]

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
DELIVER = struct.pack(">HH", 60, 60)  # basic.deliver
RETURN = struct.pack(">HH", 60, 50)  # basic.return
_FRAME_END = b"\xce"
_FRAME_HEAD = struct.Struct(">BHI")
_TAG_BIT = struct.Struct(">QB")
_SHORT = struct.Struct(">H")
HIGH_WATER = 256 * 1024  # bytes buffered in the transport before a sender waits for a drain


class OutOfStep(Exception):
    """The stream ended, or what it carries is not AMQP frames in order: nothing after this can
    be read. The compat module turns it into its client library's connection error."""


def shortstr_at(payload: bytes, pos: int) -> tuple[str, int]:
    """The short string at `pos` (AMQP 0-9-1 section 4.2.5.3) and the position after it."""
    stop = pos + 1 + payload[pos]
    return payload[pos + 1 : stop].decode("utf-8", "replace"), stop


class FrameSource:
    """Whole frames from one connection's stream (AMQP 0-9-1 section 4.2.3), and the content
    (header and body frames) that follows a basic.deliver or basic.return."""

    def __init__(self, reader: asyncio.StreamReader, abort: Callable[[], None]) -> None:
        self._reader = reader
        self._abort = abort  # closes the socket: the broker then requeues what is unacked

    async def frame(self) -> tuple[int, int, bytes]:
        """The next frame: (type, channel, payload). Raises OutOfStep."""
        reader = self._reader
        try:
            head = await reader.readexactly(7)
            kind, channel, size = _FRAME_HEAD.unpack(head)
            rest = await reader.readexactly(size + 1)  # the payload and the frame-end octet
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise OutOfStep("the connection closed") from exc
        if rest[-1:] != _FRAME_END:
            self.out_of_step("a frame without its frame-end octet")
        return kind, channel, rest[:-1]

    def out_of_step(self, what: str) -> OutOfStep:
        """Close the socket and raise OutOfStep: after `what`, nothing can be read in step."""
        self._abort()
        raise OutOfStep(what)

    async def content(self) -> tuple[Properties, bytes]:
        """The content header and body frames after a content-bearing method, decoded by the
        core (leniently, as RabbitMQ passes on what a hostile peer sent). Raises OutOfStep."""
        kind, _, payload = await self.frame()
        if kind != FRAME_HEADER:
            self.out_of_step("a content-bearing method without its content header")
        try:
            body_size, properties = decode_content_header(payload, lenient=True)
        except ProtocolViolation:  # not from RabbitMQ, which checks headers
            self.out_of_step("an unreadable content header")
        parts = []
        received = 0
        while received < body_size:
            kind, _, chunk = await self.frame()
            if kind != FRAME_BODY:
                self.out_of_step("a content header without its body frames")
            parts.append(chunk)
            received += len(chunk)
        return properties, parts[0] if len(parts) == 1 else b"".join(parts)

    async def delivery(self, method: bytes) -> Delivery:
        """The message of a basic.deliver whose method payload is `method`. Raises OutOfStep."""
        # consumer-tag, delivery-tag (u64), redelivered (bit), exchange, routing-key.
        _, pos = shortstr_at(method, 4)
        delivery_tag, redelivered = _TAG_BIT.unpack_from(method, pos)
        properties, body = await self.content()
        return Delivery(
            properties=properties,
            body=body,
            delivery_tag=delivery_tag,
            redelivered=bool(redelivered & 1),
        )

    async def returned(self, method: bytes) -> Returned:
        """The message of a basic.return whose method payload is `method`. Raises OutOfStep."""
        # reply-code (short), reply-text, exchange, routing-key (short strings).
        (reply_code,) = _SHORT.unpack_from(method, 4)
        reply_text, pos = shortstr_at(method, 6)
        _, pos = shortstr_at(method, pos)
        routing_key, _ = shortstr_at(method, pos)
        properties, body = await self.content()
        return Returned(
            reply_code=reply_code,
            reply_text=reply_text,
            routing_key=routing_key,
            properties=properties,
            body=body,
        )


class BatchWriter:
    """Gathers one channel's publishes, acks and rejects and writes them once per loop turn,
    on the client library's own stream writer (so its heartbeats and flow control stay)."""

    def __init__(
        self,
        channel_id: int,
        frame_max: int,
        write: Callable[[bytes], None],
        transport: asyncio.BaseTransport,
        is_open: Callable[[], bool],
        drain: Callable[[], Awaitable[None]],
        on_backlog: Callable[[], None] = lambda: None,
    ) -> None:
        self._channel_id = channel_id
        self._frame_max = frame_max
        self._write = write
        self._transport: asyncio.WriteTransport = transport  # type: ignore[assignment]
        self._is_open = is_open  # the channel and its connection
        self._drain = drain
        self._on_backlog = on_backlog  # a write left the socket's buffer above high water
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []
        self._scheduled = False

    def _check_open(self) -> None:
        if not self._is_open():
            raise ConnectionLost("the channel or connection is closed")

    def publish(self, action: Publish) -> bool:
        """Queue a publish. Returns whether the caller should wait for `drain()`.

        Raises ConnectionLost when the channel is closed.
        """
        self._check_open()
        frames = encode_publish(
            self._channel_id,
            self._frame_max,
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
        return bool(self._transport.get_write_buffer_size() > HIGH_WATER)

    def flush(self) -> None:
        """Write what is queued now (also before any frame the client library writes itself)."""
        self._scheduled = False
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        if self._transport.is_closing() or not self._is_open():
            # The connection or the channel went between queueing and writing (the broker
            # closed the channel meanwhile): frames on a closed channel would close the whole
            # connection (504). The link's watchers fail what was in flight.
            return
        self._write(data)
        if self._transport.get_write_buffer_size() > HIGH_WATER:
            self._on_backlog()

    async def drain(self) -> None:
        """Wait until the transport's buffer has room."""
        self.flush()
        await self._drain()
