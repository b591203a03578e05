"""pika <-> amqprpc actions and events. The only module that imports pika.

`PikaLink` performs the core's actions on one `BlockingChannel` and feeds deliveries and
returns back as events; `run` is the blocking pump that drives a core op. pika exceptions
become amqprpc errors here (`map_exceptions`), and nowhere else. pika is not thread-safe:
everything here runs on the thread that owns the connection, except `call_threadsafe`.

pika decodes every content header before anyone sees the message, and a header it cannot
decode (a field-table timestamp beyond year 9999, tables nested deeper than Python's
recursion limit; RabbitMQ passes both on) kills the whole connection. A link therefore
reads such a header with the core's lenient decoder instead (`_salvage_frames`), so that one
hostile message costs one error reply, not the server or client (PROTOCOL.md section 9).
"""

from __future__ import annotations

import contextlib
import logging
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pika
import pika.exceptions
import pika.frame
import pika.spec

from .._envelope import Properties, lenient_properties
from .._errors import BrokerError, ConnectionLost, ProtocolViolation, RPCError, UsageError
from .._events import (
    Ack,
    Action,
    CallDone,
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

__all__ = ["PikaLink", "Slot", "connection_parameters", "is_connection", "map_exceptions", "run"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

clock = time.monotonic


@contextlib.contextmanager
def map_exceptions(what: str) -> Iterator[None]:
    """Turn pika and socket exceptions raised inside into amqprpc errors."""
    try:
        yield
    except pika.exceptions.ChannelClosedByBroker as exc:
        raise BrokerError(exc.reply_code, f"{what}: {exc.reply_text}") from exc
    except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
        raise ConnectionLost(f"{what}: {type(exc).__name__}") from exc
    except (ConnectionError, OSError) as exc:
        raise ConnectionLost(f"{what}: {exc}") from exc
    except pika.exceptions.AMQPError as exc:
        raise RPCError(f"{what}: {exc!r}") from exc


def connection_parameters(target: object) -> Any:
    """pika connection parameters from a URL string or parameters object.

    amqps:// URLs give TLS connections. pika reads TLS settings from an `ssl_options` query
    argument, a URL-encoded Python dict literal: `?ssl_options={'ca_certs': '/etc/ca.pem'}`
    trusts a private CA. Raises UsageError for anything else, or when those TLS files cannot
    be loaded. Its text never shows the password.
    """
    if isinstance(target, str):
        try:
            return pika.URLParameters(target)
        except (ValueError, TypeError, SyntaxError) as exc:  # SyntaxError: ssl_options literal
            # Their texts may quote parts of the URL, the password included: name the type only.
            raise UsageError(f"not an AMQP URL: {_redact(target)} ({type(exc).__name__})") from None
        except OSError as exc:  # FileNotFoundError, ssl.SSLError: from loading ssl_options files
            raise UsageError(f"cannot load the TLS files of {_redact(target)}: {exc}") from None
    if isinstance(target, pika.connection.Parameters):
        return target
    raise UsageError(f"expected a pika BlockingConnection, URL or parameters, not {target!r}")


def is_connection(target: object) -> bool:
    """Whether `target` is a pika BlockingConnection."""
    return isinstance(target, pika.BlockingConnection)


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return f"{scheme}{sep}{rest}"


def _to_wire(properties: Properties) -> Any:
    return pika.BasicProperties(
        **{name: getattr(properties, name) for name in Properties.__slots__}
    )


def _from_wire(props: Any) -> Properties:
    return lenient_properties({name: getattr(props, name, None) for name in Properties.__slots__})


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


def _salvage_frames(connection: Any) -> None:
    """Let `connection` survive content headers pika cannot decode (see the module docstring).

    Wraps the frame reader of this one connection: a frame pika decodes is used as is; a
    content-header frame it fails on is decoded by the core instead. Any other failure is
    pika's, unchanged.
    """
    impl = getattr(connection, "_impl", None)
    if impl is None or getattr(impl, _SALVAGED, False):
        return
    strict = impl._read_frame

    def read_frame() -> Any:
        try:
            return strict()
        except _DECODE_ERRORS as exc:
            salvaged = _salvage_header_frame(impl._frame_buffer)
            if salvaged is None:
                raise
            logger.warning("pika could not decode a content header (%r); read it leniently", exc)
            return salvaged

    impl._read_frame = read_frame
    setattr(impl, _SALVAGED, True)


def _salvage_header_frame(buffer: bytes) -> tuple[int, Any] | None:
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
    return end, pika.frame.Header(channel, body_size, _to_wire(properties))


class Slot:
    """The token of a call on a blocking client: `done` is filled when the call ends."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done: CallDone[Slot] | None = None


class PikaLink:
    """One pika BlockingChannel, seen through the core's actions and events."""

    def __init__(self, connection: Any, *, owned: bool) -> None:
        self.connection = connection
        self.owned = owned
        _salvage_frames(connection)
        with map_exceptions("opening a channel"):
            self.channel = connection.channel()
            self.channel.add_on_return_callback(self._returned)
        self.on_delivery: Callable[[Delivery], None] = _unhandled
        self.on_return: Callable[[Returned], None] = _unhandled
        self.on_deadline: Callable[[float], None] = _unhandled
        self.consumer_tag: str | None = None

    @classmethod
    def connect(cls, parameters: Any) -> PikaLink:
        """Open a connection of our own (closed with the link). Raises ConnectionLost."""
        with map_exceptions(f"connecting to {parameters.host}:{parameters.port}"):
            connection = pika.BlockingConnection(parameters)
        return cls(connection, owned=True)

    @property
    def is_open(self) -> bool:
        """Whether the channel and its connection are open."""
        return bool(self.connection.is_open and self.channel.is_open)

    def perform(self, action: Action) -> Event | QueueDeclared | None:
        """Carry out one action. Returns the event it produced, if any. Raises RPCError."""
        channel = self.channel
        if isinstance(action, Publish):
            with map_exceptions(f"publishing to {action.routing_key!r}"):
                channel.basic_publish(
                    action.exchange,
                    action.routing_key,
                    action.body,
                    _to_wire(action.properties),
                    mandatory=action.mandatory,
                )
            return None
        if isinstance(action, WaitFor):
            return self._wait(action)
        if isinstance(action, Ack):
            with map_exceptions("acknowledging"):
                channel.basic_ack(action.delivery_tag, multiple=action.multiple)
            return None
        if isinstance(action, Reject):
            with map_exceptions("rejecting"):
                channel.basic_reject(action.delivery_tag, requeue=action.requeue)
            return None
        if isinstance(action, DeclareQueue):
            with map_exceptions(f"declaring queue {action.queue!r}"):
                ok = channel.queue_declare(
                    action.queue,
                    durable=action.durable,
                    exclusive=action.exclusive,
                    auto_delete=action.auto_delete,
                ).method
            return QueueDeclared(ok.queue, ok.message_count, ok.consumer_count)
        if isinstance(action, Qos):
            with map_exceptions("setting prefetch"):
                channel.basic_qos(prefetch_count=action.prefetch_count)
            return None
        if isinstance(action, Consume):
            with map_exceptions(f"consuming {action.queue!r}"):
                self.consumer_tag = channel.basic_consume(
                    action.queue,
                    self._delivered,
                    auto_ack=action.no_ack,
                    exclusive=action.exclusive,
                )
            return None
        raise TypeError(f"unknown action {action!r}")

    def _wait(self, action: WaitFor) -> Event | None:
        # Pump pika's I/O until the call's slot is filled: a reply or a return, dispatched
        # by pika from process_data_events, or the deadline passing (the core expires it).
        slot: Slot = action.token  # type: ignore[assignment]
        while slot.done is None:
            now = clock()
            if now >= action.deadline:
                self.on_deadline(now)
                if slot.done is None:  # pragma: no cover - the core expired every late call
                    raise RPCError("deadline passed but the call did not end")
                break
            self.process(action.deadline - now)
        return slot.done

    def process(self, time_limit: float | None) -> None:
        """Run pika's I/O loop for at most `time_limit` seconds (returns early on events)."""
        with map_exceptions("waiting for the broker"):
            self.connection.process_data_events(time_limit=time_limit)

    def call_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the connection's thread (the one safe cross-thread call)."""
        with map_exceptions("waking the I/O thread"):
            self.connection.add_callback_threadsafe(callback)

    def stop_consuming(self) -> None:
        """Cancel our consumer; deliveries already received are still processed."""
        if self.consumer_tag is not None and self.is_open:
            with contextlib.suppress(RPCError), map_exceptions("cancelling the consumer"):
                self.channel.basic_cancel(self.consumer_tag)
        self.consumer_tag = None

    def close(self) -> None:
        """Close the channel, and the connection if the link opened it."""
        with contextlib.suppress(RPCError), map_exceptions("closing"):
            if self.channel.is_open:
                self.channel.close()
            if self.owned and self.connection.is_open:
                self.connection.close()

    def _delivered(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        delivery = Delivery(
            properties=_from_wire(props),
            body=body,
            delivery_tag=method.delivery_tag,
            redelivered=bool(method.redelivered),
        )
        self.on_delivery(delivery)

    def _returned(self, channel: Any, method: Any, props: Any, body: bytes) -> None:
        returned = Returned(
            reply_code=method.reply_code,
            reply_text=method.reply_text or "",
            routing_key=method.routing_key or "",
            properties=_from_wire(props),
            body=body,
        )
        self.on_return(returned)


def _unhandled(event: object) -> None:
    logger.debug("no handler for %r", event)


def run(op: Op[T], link: PikaLink) -> T:
    """Drive a core op to its end on `link`. Returns its value; raises what it raises.

    An exception from performing an action (or an interrupt while waiting) is thrown into the
    op, so the core can end the call it belongs to before it propagates.
    """
    try:
        action = next(op)
        while True:
            try:
                event = link.perform(action)
            except BaseException as exc:  # noqa: BLE001 - handed to the op, which re-raises
                action = op.throw(exc)
            else:
                action = op.send(event)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
