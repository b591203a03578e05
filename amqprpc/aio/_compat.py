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
- **One write per loop turn** (`frame_writer`, a `_wire.BatchWriter`). aioamqp sends a
  message as three socket writes and drains after each; the writer sends the frames the core
  encodes (`_frames`, byte-identical to pamqp's) in one write per loop turn on aioamqp's own
  stream writer, so heartbeat bookkeeping and flow control stay intact. Uses
  `protocol._stream_writer`, `protocol._drain`, `protocol.server_frame_max`, `protocol.state`
  and `channel.channel_id`.

Both are used only when the installed versions are the ones tested (`SUPPORTED`) and the
attributes are there (`missing_internals`); otherwise the link falls back to aioamqp's public
API and a WARNING names the versions.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aioamqp.exceptions
import pamqp.commands
import pamqp.exceptions
import pamqp.frame
import pamqp.header
import pamqp.heartbeat

from .._errors import ProtocolViolation
from .._events import Delivery
from .._versions import Range, installed, outside
from ._pamqp import PAMQP_FUNCS, header_frame
from ._wire import (
    DELIVER,
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    BatchWriter,
    FrameSource,
    OutOfStep,
    shortstr_at,
)

__all__ = [
    "SUPPORTED",
    "FrameReader",
    "frame_writer",
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
_OPEN = 1  # aioamqp.protocol.OPEN


def versions() -> dict[str, str]:
    """The installed versions of the distributions whose internals are used."""
    return {name: installed(name) for name, _, _ in SUPPORTED}


def missing_internals(protocol: Any = None) -> list[str]:
    """What this module needs and the installed versions lack (empty when all is there).

    Checks the version gate, pamqp's frame functions, and (given one) a connection's
    attributes.
    """
    missing = outside(SUPPORTED)
    missing += [f"pamqp.frame.{f}" for f in PAMQP_FUNCS if not hasattr(pamqp.frame, f)]
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

_READER = "_amqprpc_frame_reader"
_HEARTBEAT = pamqp.heartbeat.Heartbeat()


class FrameReader:
    """Reads one connection's frames in aioamqp's place (its `get_frame`).

    As aioamqp's reader, with two differences. A content header pamqp cannot decode is read
    by the core's lenient decoder. And a delivery for a consumer an amqprpc link registered
    (`consume`) is read here whole (method, content header, body) with the core's decoders
    and handed to the link's callback; aioamqp sees a heartbeat in its place, which it skips.
    That takes aioamqp's dispatch and pamqp's decoding off every request and reply.
    """

    def __init__(self, protocol: Any) -> None:
        self._source = FrameSource(protocol._stream_reader, protocol._stream_writer.transport.abort)
        self._consumers: dict[tuple[int, str], Callable[[Delivery], None]] = {}

    @classmethod
    def of(cls, protocol: Any) -> FrameReader:
        """The reader of `protocol` (an AmqpProtocol), installed on first use."""
        reader: FrameReader | None = getattr(protocol, _READER, None)
        if reader is None:
            reader = cls(protocol)
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

    async def get_frame(self) -> tuple[int, Any]:
        """The next frame, decoded as aioamqp's reader decodes it."""
        # aioamqp stops reading on AmqpClosedConnection; the source closed the socket when the
        # stream is out of step, so the broker requeues this connection's unacked requests.
        try:
            kind, channel, payload = await self._source.frame()
            if kind == FRAME_METHOD:
                if self._consumers and payload[:4] == DELIVER:
                    deliver = self._consumers.get((channel, shortstr_at(payload, 4)[0]))
                    if deliver is not None:
                        deliver(await self._source.delivery(payload))
                        return 0, _HEARTBEAT
                return channel, pamqp.frame._unmarshal_method_frame(payload)
            if kind == FRAME_HEADER:
                return channel, header_frame(payload)
        except (OutOfStep, ProtocolViolation) as exc:
            raise aioamqp.exceptions.AmqpClosedConnection() from exc
        if kind == FRAME_BODY:
            return channel, pamqp.frame._unmarshal_body_frame(payload)
        if kind == FRAME_HEARTBEAT:
            return channel, _HEARTBEAT
        return channel, None


def frame_writer(
    protocol: Any, channel: Any, on_backlog: Callable[[], None] = lambda: None
) -> BatchWriter:
    """A writer of `channel`'s frames, once per loop turn, on aioamqp's own stream writer, so
    that heartbeat bookkeeping and flow control stay intact; drains with aioamqp's drain (and
    its lock)."""
    stream = protocol._stream_writer
    return BatchWriter(
        channel.channel_id,
        protocol.server_frame_max,
        stream.write,
        stream.transport,
        lambda: bool(protocol.state == _OPEN and channel.is_open),
        protocol._drain,
        on_backlog,
    )
