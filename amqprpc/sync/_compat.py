"""Every use of pika's private internals, fenced behind a version gate.

- **Writing a round's frames at once** (`FrameWriter`). `BlockingChannel.basic_publish` runs
  pika's I/O loop until each message is written, and pika sends each frame with a system call
  of its own (three for a message). The writer gathers the frames the core encodes for
  publishes, acks and rejects (`_frames`, byte-identical to pika's) and hands them to pika's
  output as one buffer (`BlockingConnection._impl._output_marshaled_frames`, which keeps
  pika's byte counts for heartbeats) at the start of the next round of I/O, which every codec
  does next: a batch of calls, replies or acks costs one write. When something must be out at
  once (an early ack, before its handler starts), `write_now` waits for it as pika's own
  methods do (`BlockingChannel._flush_output`). Also uses `_impl._body_max_length` (the
  negotiated frame size) and `BlockingChannel.channel_number`.
- **Deadlines while the broker pushes back** (`bounded_io`). `process_data_events` returns
  only once pika's output is written, and a broker under a memory or disk alarm
  (connection.blocked) stops reading, so every wait would last as long as the alarm. While a
  link processes I/O, `_impl._get_write_buffer_size` (read only by that loop's end test)
  reports nothing pending: the loop then ends by its time limit, and pika's I/O loop writes
  the output whenever the socket takes it.
- **Salvaging content headers.** pika decodes every content header before anyone sees the
  message, and a header it cannot decode (a field-table timestamp beyond year 9999, tables
  nested deeper than Python's recursion limit; RabbitMQ passes both on) kills the whole
  connection. `salvage_frames` therefore wraps one connection's frame reader
  (`BlockingConnection._impl._read_frame`, reading `_impl._frame_buffer`): a frame pika decodes
  is used as is; a content-header frame it fails on is read by the core's lenient decoder
  instead, so one hostile message costs one error reply, not the server or client
  (PROTOCOL.md section 9).
- **The broker's server properties** (`server_properties`: product, version, ...), from the
  connection.start method, which pika keeps only on `BlockingConnection._impl`. `amqprpc
  doctor` reports them; outside the gate it says they are unknown.

They are used only when the installed pika is a tested version (`SUPPORTED`) and the attributes
are there (`missing_internals`); otherwise pika is left as it is, and a WARNING names the
version.
"""

from __future__ import annotations

import contextlib
import logging
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pika
import pika.adapters.blocking_connection
import pika.connection
import pika.exceptions
import pika.frame
import pika.spec

from .._envelope import Properties
from .._errors import ConnectionLost, ProtocolViolation
from .._events import Ack, Publish, Reject
from .._frames import (
    FRAME_OVERHEAD,
    decode_content_header,
    encode_ack,
    encode_publish,
    encode_reject,
)
from .._versions import Range, installed, outside

__all__ = [
    "SUPPORTED",
    "FrameWriter",
    "bounded_io",
    "internals_usable",
    "missing_internals",
    "salvage_frames",
    "server_properties",
]

logger = logging.getLogger(__name__)

SUPPORTED: tuple[Range, ...] = (("pika", (1, 3), (1, 5)),)

# What pika's decoders raise on a content header they cannot read (OverflowError and OSError
# from datetime.fromtimestamp, RecursionError from deep tables, struct.error, ...).
_DECODE_ERRORS = (
    ArithmeticError,
    LookupError,
    OSError,
    RecursionError,
    TypeError,
    ValueError,
    struct.error,
    pika.exceptions.AMQPError,
)
_SALVAGED = "_amqprpc_salvages_headers"
_IMPL_ATTRIBUTES = ("_read_frame", "_frame_buffer", "_body_max_length", "_get_write_buffer_size")
_warned = False


def missing_internals(connection: Any = None) -> list[str]:
    """What `salvage_frames` needs and the installed pika lacks (empty when all is there)."""
    missing = outside(SUPPORTED)
    if not hasattr(pika.frame, "Header") or not hasattr(pika.spec, "FRAME_HEADER"):
        missing.append("pika.frame.Header")
    if not callable(getattr(pika.connection.Connection, "_output_marshaled_frames", None)):
        missing.append("pika.connection.Connection._output_marshaled_frames")
    if not callable(
        getattr(pika.adapters.blocking_connection.BlockingChannel, "_flush_output", None)
    ):
        missing.append("BlockingChannel._flush_output")
    if connection is not None:
        impl = getattr(connection, "_impl", None)
        missing += [
            f"BlockingConnection._impl.{name}"
            for name in _IMPL_ATTRIBUTES
            if not hasattr(impl, name)
        ]
    return missing


def internals_usable(connection: Any) -> bool:
    """Whether `connection`'s internals are as tested; logs one WARNING (naming the version)
    the first time they are not, after which links use pika's public API alone."""
    global _warned
    missing = missing_internals(connection)
    if missing and not _warned:
        _warned = True
        logger.warning(
            "pika internals differ from the tested ones (%s; installed: pika %s): writing "
            "through BlockingChannel, without reading undecodable content headers leniently",
            ", ".join(missing),
            installed("pika"),
        )
    return not missing


def server_properties(connection: Any) -> dict[str, Any] | None:
    """The server properties the broker sent in connection.start (`product`, `version`,
    `cluster_name`, ...), or None outside the tested pika versions or when pika keeps them
    elsewhere."""
    if outside(SUPPORTED):
        return None
    properties = getattr(getattr(connection, "_impl", None), "server_properties", None)
    return dict(properties) if isinstance(properties, dict) else None


class FrameWriter:
    """Gathers one channel's frames and hands them to pika's output once a round."""

    def __init__(self, connection: Any, channel: Any) -> None:
        self._impl = connection._impl
        self._channel = channel
        self._number: int = channel.channel_number
        self._pending: list[bytes] = []

    def publish(self, action: Publish) -> None:
        """Queue a publish. Raises ConnectionLost when the channel is closed."""
        self._check_open()
        self._pending.append(
            encode_publish(
                self._number,
                self._impl._body_max_length + FRAME_OVERHEAD,
                exchange=action.exchange,
                routing_key=action.routing_key,
                mandatory=action.mandatory,
                properties=action.properties,
                body=action.body,
            )
        )

    def ack(self, action: Ack) -> None:
        """Queue an ack."""
        self._check_open()
        self._pending.append(encode_ack(self._number, action.delivery_tag, action.multiple))

    def reject(self, action: Reject) -> None:
        """Queue a reject."""
        self._check_open()
        self._pending.append(encode_reject(self._number, action.delivery_tag, action.requeue))

    def flush(self) -> None:
        """Hand what is queued to pika's output (written by its next round of I/O)."""
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if self._impl.is_open:
                self._impl._output_marshaled_frames([data])

    def write_now(self) -> None:
        """Hand what is queued to pika's output and wait until pika has written it (as
        BlockingChannel's own methods do, which may be called from its callbacks)."""
        self.flush()
        # Inside `bounded_io` (from a delivery callback), pika must still wait for the write.
        bounded = self._impl.__dict__.pop("_get_write_buffer_size", None)
        try:
            self._channel._flush_output()
        finally:
            if bounded is not None:
                self._impl._get_write_buffer_size = bounded

    def _check_open(self) -> None:
        if not (self._impl.is_open and self._channel.is_open):
            raise ConnectionLost("the channel or connection is closed")


def _nothing_pending() -> int:
    return 0


@contextlib.contextmanager
def bounded_io(connection: Any) -> Iterator[None]:
    """While inside, `connection.process_data_events(time_limit)` returns by its time limit
    even when output is still waiting to be written (see the module's docstring)."""
    impl = connection._impl
    outer = impl.__dict__.get("_get_write_buffer_size")  # set when nested: keep it so
    impl._get_write_buffer_size = _nothing_pending
    try:
        yield
    finally:
        if outer is not None:
            impl._get_write_buffer_size = outer
        else:
            with contextlib.suppress(AttributeError):
                del impl._get_write_buffer_size  # the class's own method again


def salvage_frames(connection: Any, to_wire: Callable[[Properties], Any]) -> None:
    """Let `connection` (a BlockingConnection) survive content headers pika cannot decode.

    `to_wire` turns the core's Properties into pika's. Call only when `internals_usable`.
    """
    impl = connection._impl
    if getattr(impl, _SALVAGED, False):
        return
    strict = impl._read_frame

    def read_frame() -> Any:
        try:
            return strict()
        except _DECODE_ERRORS as exc:
            salvaged = _salvage_header_frame(impl._frame_buffer, to_wire)
            if salvaged is None:
                raise
            logger.warning("pika could not decode a content header (%r); read it leniently", exc)
            return salvaged

    impl._read_frame = read_frame
    setattr(impl, _SALVAGED, True)


def _salvage_header_frame(
    buffer: bytes, to_wire: Callable[[Properties], Any]
) -> tuple[int, Any] | None:
    # AMQP 0-9-1 section 4.2.3: type (octet), channel (short), size (long), payload, 0xCE.
    if len(buffer) < 7:
        return None
    kind, channel, size = struct.unpack_from(">BHL", buffer)
    end = 7 + size + 1
    if kind != pika.spec.FRAME_HEADER or len(buffer) < end or buffer[end - 1] != 0xCE:
        return None
    try:
        body_size, properties = decode_content_header(bytes(buffer[7 : end - 1]), lenient=True)
    except (ProtocolViolation, struct.error):
        return None
    return end, pika.frame.Header(channel, body_size, to_wire(properties))
