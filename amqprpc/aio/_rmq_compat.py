"""Every use of aiormq's and pamqp's private internals, fenced behind a version gate.

The aiormq link relies on two things that aiormq 7.2 does not offer publicly:

- **Reading frames** (`Tap`, in place of the connection's `FrameReceiver`). aiormq decodes
  every frame with pamqp in its reader task, and pamqp raises on content headers RabbitMQ
  passes on (a short string that is not UTF-8, a field-table timestamp beyond year 9999,
  tables nested deeper than Python's recursion limit): aiormq then closes the whole
  connection, and the broker hands the same message to the next server. The tap decodes such a
  header with the core's lenient decoder, so one hostile message costs one error reply, not
  the server or client (PROTOCOL.md section 9). It also reads the deliveries and returns of
  amqprpc's own channels whole, with the core's decoders, and hands them to their link:
  aiormq would decode them with pamqp, queue them to the channel's reader task and start a
  task per delivery. And it notes connection.blocked and connection.unblocked, which aiormq
  keeps to itself. Uses the reader task's `frame_receiver` (through its coroutine's frame),
  `FrameReceiver.reader` and `pamqp.frame._unmarshal_*_frame`.
- **One write per loop turn** (`frame_writer`, a `_wire.BatchWriter`). aiormq queues each
  message's frames for its writer task; the writer sends the frames the core encodes in one
  write per loop turn on aiormq's own stream writer. Uses the writer task's `writer` and
  `Connection.connection_tune`.

Both are used only when the installed versions are the ones tested (`SUPPORTED`) and the
internals are there (`missing_internals`); otherwise the link uses aiormq's public API (with
publisher confirms, which aiormq needs to report returns) and a WARNING names the versions.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from typing import Any

import aiormq.connection
import aiormq.exceptions
import pamqp.commands
import pamqp.exceptions
import pamqp.frame
import pamqp.header
import pamqp.heartbeat

from .._errors import ProtocolViolation
from .._events import Delivery, Returned
from .._versions import Range, installed, outside
from ._pamqp import PAMQP_FUNCS, header_frame
from ._wire import (
    DELIVER,
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    RETURN,
    BatchWriter,
    FrameSource,
    OutOfStep,
    shortstr_at,
)

__all__ = ["SUPPORTED", "Tap", "frame_writer", "internals_usable", "missing_internals", "versions"]

logger = logging.getLogger(__name__)

# The versions whose internals are known (and tested) to be as this module expects.
SUPPORTED: tuple[Range, ...] = (("aiormq", (7, 2), (8,)), ("pamqp", (4,), (5,)))

_BLOCKED = struct.pack(">HH", 10, 60)  # connection.blocked
_UNBLOCKED = struct.pack(">HH", 10, 61)  # connection.unblocked
_TAP = "_amqprpc_tap"


def versions() -> dict[str, str]:
    """The installed versions of the distributions whose internals are used."""
    return {name: installed(name) for name, _, _ in SUPPORTED}


def _task_local(connection: Any, task_name: str, local: str) -> Any:
    # A local of the coroutine that one of the connection's tasks runs (None when gone).
    task = getattr(connection, task_name, None)
    if task is None or task.done():
        return None
    frame = getattr(task.get_coro(), "cr_frame", None)
    return None if frame is None else frame.f_locals.get(local)


def missing_internals(connection: Any = None) -> list[str]:
    """What this module needs and the installed versions lack (empty when all is there).

    Checks the version gate, pamqp's frame functions, and (given one) an open connection's
    reader and writer.
    """
    missing = outside(SUPPORTED)
    missing += [f"pamqp.frame.{f}" for f in PAMQP_FUNCS if not hasattr(pamqp.frame, f)]
    if connection is not None:
        receiver = _task_local(connection, "_reader_task", "frame_receiver")
        if not isinstance(receiver, aiormq.connection.FrameReceiver) or not isinstance(
            getattr(receiver, "reader", None), asyncio.StreamReader
        ):
            missing.append("Connection._reader_task's frame_receiver")
        if not isinstance(_task_local(connection, "_writer_task", "writer"), asyncio.StreamWriter):
            missing.append("Connection._writer_task's writer")
        if not hasattr(getattr(connection, "connection_tune", None), "frame_max"):
            missing.append("Connection.connection_tune")
    return missing


_warned = False


def internals_usable(connection: Any) -> bool:
    """Whether `connection`'s internals are as tested; logs one WARNING (naming the versions)
    the first time they are not, after which the link uses aiormq's public API."""
    global _warned
    missing = missing_internals(connection)
    if missing and not _warned:
        _warned = True
        logger.warning(
            "aiormq internals differ from the tested ones (%s; installed: %s): using aiormq's "
            "API with publisher confirms; a content header pamqp cannot decode closes the "
            "connection",
            ", ".join(missing),
            ", ".join(f"{k} {v}" for k, v in versions().items()),
        )
    return not missing


class _TappedReceiver(aiormq.connection.FrameReceiver):
    # The class of a connection's FrameReceiver once tapped: aiormq's reader task iterates
    # it with `async for`, which looks `__anext__` up on the class each time.
    _amqprpc_tap: Tap

    async def get_frame(self) -> Any:
        return await self._amqprpc_tap.next_frame()

    async def __anext__(self) -> Any:
        return await self._amqprpc_tap.next_frame()


class Tap:
    """Reads one aiormq connection's frames in its FrameReceiver's place.

    As aiormq's receiver, with three differences: a content header pamqp cannot decode is read
    by the core's lenient decoder; the deliveries of consumers and the returns of channels that
    an amqprpc link registered are read here whole and handed to the link (aiormq sees a
    heartbeat in their place, which it skips); and connection.blocked/unblocked set `blocked`.
    """

    def __init__(self, receiver: Any, writer: asyncio.StreamWriter) -> None:
        self._receiver = receiver
        self._source = FrameSource(receiver.reader, writer.transport.abort)
        self._consumers: dict[tuple[int, str], Callable[[Delivery], None]] = {}
        self._returns: dict[int, Callable[[Returned], None]] = {}
        self.blocked = False

    @classmethod
    def of(cls, connection: Any) -> Tap:
        """The tap of `connection` (an open aiormq Connection), installed on first use."""
        tap: Tap | None = getattr(connection, _TAP, None)
        if tap is None:
            receiver = _task_local(connection, "_reader_task", "frame_receiver")
            writer = _task_local(connection, "_writer_task", "writer")
            tap = cls(receiver, writer)
            receiver._amqprpc_tap = tap
            receiver.__class__ = _TappedReceiver
            setattr(connection, _TAP, tap)
        return tap

    def consume(self, channel: int, consumer_tag: str, deliver: Callable[[Delivery], None]) -> None:
        """Hand deliveries for `consumer_tag` on `channel` to `deliver` from now on."""
        self._consumers[(channel, consumer_tag)] = deliver

    def on_return(self, channel: int, returned: Callable[[Returned], None]) -> None:
        """Hand the returns of `channel` to `returned` from now on."""
        self._returns[channel] = returned

    def forget(self, channel: int, consumer_tag: str | None = None) -> None:
        """Stop handing deliveries for one consumer (or everything of `channel`)."""
        for key in [k for k in self._consumers if k[0] == channel]:
            if consumer_tag is None or key[1] == consumer_tag:
                del self._consumers[key]
        if consumer_tag is None:
            self._returns.pop(channel, None)

    async def next_frame(self) -> tuple[int, int, Any]:
        """The next frame as aiormq's receiver returns it: (size, channel, frame)."""
        if self._receiver.reader.at_eof():
            raise StopAsyncIteration
        try:
            kind, channel, payload = await self._source.frame()
            weight = len(payload) + 8
            if kind == FRAME_METHOD:
                head = payload[:4]
                if head == DELIVER and self._consumers:
                    deliver = self._consumers.get((channel, shortstr_at(payload, 4)[0]))
                    if deliver is not None:
                        deliver(await self._source.delivery(payload))
                        return weight, 0, pamqp.heartbeat.Heartbeat()
                elif head == RETURN:
                    returned = self._returns.get(channel)
                    if returned is not None:
                        returned(await self._source.returned(payload))
                        return weight, 0, pamqp.heartbeat.Heartbeat()
                elif head == _BLOCKED:
                    self.blocked = True
                elif head == _UNBLOCKED:
                    self.blocked = False
                return weight, channel, pamqp.frame._unmarshal_method_frame(payload)
            if kind == FRAME_HEADER:
                return weight, channel, header_frame(payload)
        except ProtocolViolation as exc:  # never from RabbitMQ, which checks headers
            raise aiormq.exceptions.InvalidFrameError(str(exc)) from exc
        except OutOfStep as exc:
            raise aiormq.exceptions.AMQPConnectionError(f"reading frames: {exc}") from exc
        except pamqp.exceptions.PAMQPException as exc:
            raise aiormq.exceptions.InvalidFrameError(str(exc)) from exc
        if kind == FRAME_BODY:
            return weight, channel, pamqp.frame._unmarshal_body_frame(payload)
        if kind == FRAME_HEARTBEAT:
            return weight, channel, pamqp.heartbeat.Heartbeat()
        raise aiormq.exceptions.InvalidFrameError(f"unknown frame type {kind}")


def frame_writer(
    connection: Any, channel: Any, on_backlog: Callable[[], None] = lambda: None
) -> BatchWriter:
    """A writer of `channel`'s frames, once per loop turn, on aiormq's own stream writer."""
    stream: asyncio.StreamWriter = _task_local(connection, "_writer_task", "writer")
    return BatchWriter(
        channel.number,
        connection.connection_tune.frame_max,
        stream.write,
        stream.transport,
        lambda: not channel.is_closed,  # closed with its connection, too
        stream.drain,
        on_backlog,
    )
