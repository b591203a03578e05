"""Every use of pika's private internals, fenced behind a version gate.

- **Publishing without a flush per message** (`unflushed_publish`). `BlockingChannel.
  basic_publish` runs pika's I/O loop until each message is written. The link publishes
  through the channel underneath (`BlockingChannel._impl.basic_publish`, pika's own
  `Channel.basic_publish`) instead, and the frames go out with the next round of I/O, which
  every codec does next (it waits for the reply, or goes on serving): a batch of publishes
  costs one flush, and a call one pass of the loop fewer.
- **Salvaging content headers.** pika decodes every content header before anyone sees the
  message, and a header it cannot decode (a field-table timestamp beyond year 9999, tables
  nested deeper than Python's recursion limit; RabbitMQ passes both on) kills the whole
  connection. `salvage_frames` therefore wraps one connection's frame reader
  (`BlockingConnection._impl._read_frame`, reading `_impl._frame_buffer`): a frame pika decodes
  is used as is; a content-header frame it fails on is read by the core's lenient decoder
  instead, so one hostile message costs one error reply, not the server or client
  (PROTOCOL.md section 9).

Both are used only when the installed pika is a tested version (`SUPPORTED`) and the attributes
are there (`missing_internals`); otherwise pika is left as it is, and a WARNING names the
version.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

import pika
import pika.channel
import pika.exceptions
import pika.frame
import pika.spec

from .._envelope import Properties
from .._errors import ProtocolViolation
from .._frames import decode_content_header
from .._versions import Range, installed, outside

__all__ = ["SUPPORTED", "missing_internals", "salvage_frames", "unflushed_publish"]

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
_warned = False


def missing_internals(connection: Any = None) -> list[str]:
    """What `salvage_frames` needs and the installed pika lacks (empty when all is there)."""
    missing = outside(SUPPORTED)
    if not hasattr(pika.frame, "Header") or not hasattr(pika.spec, "FRAME_HEADER"):
        missing.append("pika.frame.Header")
    if not callable(getattr(pika.channel.Channel, "basic_publish", None)):
        missing.append("pika.channel.Channel.basic_publish")
    if connection is not None:
        impl = getattr(connection, "_impl", None)
        missing += [
            f"BlockingConnection._impl.{name}"
            for name in ("_read_frame", "_frame_buffer")
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
            "pika internals differ from the tested ones (%s; installed: pika %s): publishing "
            "through BlockingChannel, without reading undecodable content headers leniently",
            ", ".join(missing),
            installed("pika"),
        )
    return not missing


def unflushed_publish(channel: Any) -> Callable[..., None]:
    """The publish of the pika Channel under a BlockingChannel: it queues the frames, and the
    next round of I/O writes them (call only when `internals_usable`)."""
    publish: Callable[..., None] = channel._impl.basic_publish
    return publish


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
