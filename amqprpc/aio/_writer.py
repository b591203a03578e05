"""One write per loop turn for the frames of an aioamqp connection's hot path.

aioamqp sends a message as three socket writes (method, header, body frames) and waits for
the transport to drain after each; an ack drains again. On the hot path this module sends
instead the frames the core encodes (`_frames.encode_publish`, `encode_ack`, byte-identical
to pamqp's), gathered into one write per event-loop turn on aioamqp's own stream writer, so
heartbeat bookkeeping stays intact. Flow control stays too: a sender waits for the drain when
the transport's buffer is over its high-water mark.

It relies on aioamqp 0.15 internals (`protocol._stream_writer`, `protocol._drain`,
`protocol.server_frame_max`, `channel.channel_id`); `FrameWriter.attach` returns None when they
are not as expected, and the link then uses aioamqp's public methods.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .._errors import ConnectionLost
from .._events import Ack, Publish, Reject
from .._frames import encode_ack, encode_publish, encode_reject

__all__ = ["FrameWriter"]

logger = logging.getLogger(__name__)

_OPEN = 1  # aioamqp.protocol.OPEN
_HIGH_WATER = 256 * 1024  # bytes buffered in the transport before a sender waits for a drain


class FrameWriter:
    """Gathers one channel's frames and writes them once per loop turn."""

    def __init__(self, protocol: Any, channel: Any) -> None:
        self._protocol = protocol
        self._channel = channel
        self._channel_id: int = channel.channel_id
        self._stream = protocol._stream_writer
        self._transport = protocol._stream_writer.transport
        self._loop = asyncio.get_running_loop()
        self._pending: list[bytes] = []
        self._scheduled = False

    @classmethod
    def attach(cls, protocol: Any, channel: Any) -> FrameWriter | None:
        """A writer for `channel`, or None when aioamqp's internals are not as expected."""
        stream = getattr(protocol, "_stream_writer", None)
        if not (
            callable(getattr(stream, "write", None))
            and callable(getattr(getattr(stream, "transport", None), "get_write_buffer_size", None))
            and callable(getattr(protocol, "_drain", None))
            and isinstance(getattr(protocol, "server_frame_max", None), int)
            and isinstance(getattr(channel, "channel_id", None), int)
        ):
            logger.info("aioamqp internals differ from 0.15: publishing through its API")
            return None
        return cls(protocol, channel)

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
        if self._transport.is_closing():
            return  # the connection is going: the link's watchers fail what was in flight
        self._stream.write(data)

    async def drain(self) -> None:
        """Wait until the transport's buffer has room (aioamqp's drain, with its lock)."""
        self.flush()
        await self._protocol._drain()
